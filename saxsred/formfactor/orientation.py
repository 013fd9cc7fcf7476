"""Orientation averages of box-shaped particles and the tabulated P(x).

A box (cube or rectangular prism a x b x c) oriented along x, y, z has the normalised
amplitude F/V = prod_i sinc(q_i l_i / 2). Its orientation average
P(x) = (1/4 pi) int dOmega |F/V|^2 depends on x = q a alone for a fixed aspect ratio, so
it is tabulated once on a fine x grid (Gauss-Legendre quadrature over the 1/48 symmetric
wedge of directions for the cube, one octant for a prism, converged to ~1e-11) and
interpolated with a cubic spline in ln P (error < 2e-7). Beyond the cube table (x > 120)
Porod's law with fitted face-interference terms takes over (:func:`build_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Grid step of the P(x) tables: a cubic spline in ln P on this grid interpolates to
# < 2e-7 relative (tests/test_formfactor.py).
TABLE_STEP = 0.025


@lru_cache(maxsize=64)
def leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: numpy solves an eigenproblem)."""
    z, w = np.polynomial.legendre.leggauss(int(n))
    z.flags.writeable = False
    w.flags.writeable = False
    return z, w


def sinc(t: np.ndarray) -> np.ndarray:
    """sin(t)/t with the removable singularity at 0 filled (series below 1e-4)."""
    t = np.asarray(t, dtype=float)
    small = np.abs(t) < 1e-4
    ts = np.where(small, 1.0, t)
    return np.where(small, 1.0 - t * t / 6.0, np.sin(ts) / ts)


def cube_wedge_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes over the 1/48 wedge u_z >= u_x >= u_y >= 0 of the sphere.

    phi in [0, pi/4] and theta in [0, atan(1/cos phi)] (u_z >= u_x); the weights include
    sin(theta) and 48/(4 pi), so they sum to 1.
    """
    z, w = leggauss(n)
    phi = (z + 1.0) * (np.pi / 8.0)
    wphi = w * (np.pi / 8.0)
    tmax = np.arctan(1.0 / np.cos(phi))
    th = (z[None, :] + 1.0) * tmax[:, None] / 2.0
    wth = w[None, :] * tmax[:, None] / 2.0
    st = np.sin(th)
    u = np.stack(
        [
            (st * np.cos(phi)[:, None]).ravel(),
            (st * np.sin(phi)[:, None]).ravel(),
            np.cos(th).ravel(),
        ]
    )
    wt = (wphi[:, None] * wth * st).ravel() * (48.0 / (4.0 * np.pi))
    return u, wt


def octant_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes in theta, phi over one octant; weights sum to 1."""
    z, w = leggauss(n)
    ang = (z + 1.0) * (np.pi / 4.0)
    wang = w * (np.pi / 4.0)
    th, ph = np.meshgrid(ang, ang, indexing="ij")
    st = np.sin(th)
    u = np.stack([(st * np.cos(ph)).ravel(), (st * np.sin(ph)).ravel(), np.cos(th).ravel()])
    wt = (np.outer(wang, wang) * st).ravel() * (8.0 / (4.0 * np.pi))
    return u, wt


def box_nodes(aspect: tuple[float, float] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions scaled by the edges (1, b/a, c/a) and their weights; cube: the wedge."""
    if aspect is None:
        return cube_wedge_nodes(n)
    u, w = octant_nodes(n)
    return u * np.array([1.0, aspect[0], aspect[1]])[:, None], w


def nodes_needed(xmax: float, aspect: tuple[float, float] | None) -> int:
    """Nodes per angle converging the average to ~1e-10 up to x = xmax (tested)."""
    if aspect is None:
        return int(16 + 0.4 * xmax)
    return int(30 + 0.8 * xmax * max(1.0, *aspect))


def orientation_average_direct(
    x, aspect: tuple[float, float] | None = None, n: int | None = None
) -> np.ndarray:
    """Orientation average <|F/V|^2> of a cube (aspect None) or prism by direct quadrature.

    Parameters
    ----------
    x : array
        q times the edge a.
    aspect : (b/a, c/a) or None
        Edge ratios of a prism; None for the cube (1/48 wedge of directions).
    n : int, optional
        Nodes per angle (default: converged to ~1e-10).

    Returns
    -------
    array of P(x). The slow path: tables use it beyond their range, tests as reference.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    out = np.empty(x.shape)
    flat = x.ravel()
    res = np.empty(flat.shape)
    order = np.argsort(flat)
    for chunk in np.array_split(order, max(1, flat.size // 64)):
        if chunk.size == 0:
            continue
        nn = n or nodes_needed(float(flat[chunk].max()), aspect)
        u, w = box_nodes(aspect, nn)
        a = (0.5 * flat[chunk])[:, None] * u[0]
        b = (0.5 * flat[chunk])[:, None] * u[1]
        c = (0.5 * flat[chunk])[:, None] * u[2]
        res[chunk] = ((sinc(a) * sinc(b) * sinc(c)) ** 2) @ w
    out[...] = res.reshape(x.shape)
    return out


def asymptotic_basis(x: np.ndarray, ratios: tuple[float, ...]) -> np.ndarray:
    """Columns 1, 1/x, 1/x^2 and the face-pair terms cos/sin(r x) with 1/x corrections."""
    cols = [np.ones_like(x), 1.0 / x, x**-2]
    for rk in ratios:
        for f in (np.cos, np.sin):
            cols += [f(rk * x), f(rk * x) / x, f(rk * x) / x**2]
    return np.stack(cols, axis=-1)


@dataclass(frozen=True)
class PTable:
    """Cubic spline of ln P on a uniform x grid: coefficients c[k, i] of (x - x_i)^(3-k).

    Calling it gives P(|x|); beyond ``xmax`` the Porod asymptote with fitted interference
    terms (cube) or the direct quadrature (prisms) answers.
    """

    step: float
    xmax: float
    coef: np.ndarray
    aspect: tuple[float, float] | None
    porod: float
    ratios: tuple[float, ...]
    asym: np.ndarray | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.abs(np.asarray(x, dtype=float))
        inside = x < self.xmax
        if inside.all():
            return self.interpolate(x)
        out = np.empty(x.shape)
        out[inside] = self.interpolate(x[inside])
        xo = x[~inside]
        if self.asym is None:  # prisms: exact but slow direct quadrature
            out[~inside] = orientation_average_direct(xo, self.aspect)
        else:
            out[~inside] = (
                self.porod * xo**-4 * (1.0 + asymptotic_basis(xo, self.ratios) @ self.asym)
            )
        return out

    def interpolate(self, x: np.ndarray) -> np.ndarray:
        """The spline itself, for 0 <= x < xmax."""
        i = np.minimum((x * (1.0 / self.step)).astype(np.intp), self.coef.shape[1] - 1)
        t = x - i * self.step
        c = self.coef
        return np.exp(((c[0, i] * t + c[1, i]) * t + c[2, i]) * t + c[3, i])


def build_table(
    aspect: tuple[float, float] | None, xmax: float, step: float = TABLE_STEP
) -> PTable:
    """Tabulate P(x) on x = k * step with one fixed node set.

    The Chebyshev recurrence sin((k+1) h) = 2 cos(h) sin(k h) - sin((k-1) h) makes each
    grid point cost a few multiply-adds per node instead of three sines (0.1 s for the
    cube).

    Parameters
    ----------
    aspect : (b/a, c/a) or None for the cube.
    xmax : the table's extent in x = q a.
    step : grid step.

    Returns
    -------
    PTable
    """
    from scipy.interpolate import CubicSpline

    u, w = box_nodes(aspect, nodes_needed(xmax, aspect))
    half = 0.5 * step * u
    c2 = 2.0 * np.cos(half)
    inv = 1.0 / half
    s_prev = np.zeros_like(half)
    s = np.sin(half)
    nk = int(round(xmax / step))
    vals = np.empty(nk + 1)
    vals[0] = 1.0
    for k in range(1, nk + 1):
        a = s * inv * (1.0 / k)
        a *= a
        vals[k] = (a[0] * a[1] * a[2]) @ w
        s, s_prev = c2 * s - s_prev, s
    xs = np.arange(nk + 1) * step
    # P is even in x: zero slope of ln P at the origin.
    spline = CubicSpline(xs, np.log(vals), bc_type=((1, 0.0), "not-a-knot"))
    # Beyond the cube table: Porod's law 12 pi/x^4 times 1 + r(x), r the face-pair
    # interference terms cos x, sin x with 1/x corrections, least-squares fitted to the
    # last 40 % of the table. It holds the monodisperse curve to ~1 % of the Porod level
    # and the 5-10 % polydisperse average to ~1e-3 up to x = 200 (tests). Prisms (whose
    # short edges are far from asymptotic there) use the direct quadrature instead.
    ratios = (1.0,)
    b, c = aspect or (1.0, 1.0)
    porod = 2.0 * np.pi * 2.0 * (b + c + b * c) / (b * c) ** 2
    asym = None
    if aspect is None:
        tail = xs >= 0.6 * xs[-1]
        r = vals[tail] * xs[tail] ** 4 / porod - 1.0
        asym, *_ = np.linalg.lstsq(asymptotic_basis(xs[tail], ratios), r, rcond=None)
    return PTable(step, float(xs[-1]), np.ascontiguousarray(spline.c), aspect, porod, ratios, asym)
