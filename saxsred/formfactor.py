"""Form factors of nanocrystals, fits of dilute suspensions, effective structure factors.

Physics (``../shared/SCIENCE.md`` section 3):

- Cube of edge e, oriented along x, y, z: amplitude F(q)/V = prod_i sinc(q_i e / 2).
- Orientation average P(q) = (1/4 pi) int dOmega |F/V|^2 depends on x = q e alone (no closed
  form; minima at x = 7.16, 12.97, 19.27, 25.42; Guinier exp(-x^2/12); Porod 12 pi / x^4).
  It is tabulated once on a fine x grid by Gauss-Legendre quadrature over the 1/48
  symmetric wedge of directions (converged to ~1e-11) and interpolated with a cubic spline
  in ln P (error < 2e-7); beyond the table (x > 120) Porod's law with fitted
  face-interference terms takes over (see :func:`_build_table`).
- Rectangular prism a x b x c: the same over one octant, one table per aspect ratio.
- Sphere of diameter d: P = [3 (sin x - x cos x) / x^3]^2 with x = q d / 2.
- Size distributions (Gaussian or Schulz, relative width ``polydispersity``): the
  intensity-weighted average <V^2 P>/<V^2>, which is 1 at q = 0.

Normalisation (absolute units). A dilute suspension of volume fraction phi and
scattering-length-density contrast drho scatters
``I(q) = phi drho^2 <V^2 P(q)> / <V> + background``, so
``I(0) = phi drho^2 <V^2>/<V>`` (:func:`forward_intensity_cm`). :func:`dilute_intensity`
writes the same thing as ``scale * <V^2 P>/<V^2> + background``: ``scale`` is I(0) above
background, in the unit of the data; with data in cm^-1, :func:`volume_fraction` turns a
fitted scale back into phi for a given contrast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from . import provenance as prov_mod
from .curve import Curve
from .errors import FitError, InputError, ParameterError

SHAPES = ("cube", "sphere", "prism")
DISTRIBUTIONS = ("gaussian", "schulz")

# Table of the orientation-averaged cube P(x): grid step and extent. A cubic spline in
# ln P on this grid interpolates to < 2e-7 relative (tests/test_formfactor.py).
_TABLE_STEP = 0.025
_CUBE_TABLE_XMAX = 120.0
_PRISM_TABLE_XMAX = 60.0  # in units of the largest edge: q * max(a, b, c)
# Positions of the first minimum of P(x) (used for the automatic start of fits).
_FIRST_MINIMUM_X = {"cube": 7.159, "sphere": 4.4934 * 2.0}

# Below this relative width a size distribution is treated as monodisperse.
_PD_MONO = 1e-6
# 1 (1e-6 A^-2) = 1e10 cm^-2; nm^3 = 1e-21 cm^3.
_SLD_UNIT_CM2 = 1.0e10
_NM3_CM3 = 1.0e-21


@lru_cache(maxsize=64)
def _leggauss(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: numpy solves an eigenproblem)."""
    z, w = np.polynomial.legendre.leggauss(int(n))
    z.flags.writeable = False
    w.flags.writeable = False
    return z, w


# --------------------------------------------------------------------------- amplitudes
def _sinc(t: np.ndarray) -> np.ndarray:
    """sin(t)/t with the removable singularity at 0 filled (series below 1e-4)."""
    t = np.asarray(t, dtype=float)
    small = np.abs(t) < 1e-4
    ts = np.where(small, 1.0, t)
    return np.where(small, 1.0 - t * t / 6.0, np.sin(ts) / ts)


def cube_amplitude_oriented(qvec_nm, edge_nm: float) -> np.ndarray:
    """Normalised amplitude F(q)/V of a cube aligned with the x, y, z axes.

    F/V = prod_i sinc(q_i e / 2), so F(0) = 1 and |F|^2 weights a Bragg reflection of
    cubes aligned with their lattice (SCIENCE.md section 4).

    Parameters
    ----------
    qvec_nm : array (..., 3), scattering vectors in nm^-1.
    edge_nm : cube edge e (nm).

    Returns
    -------
    array (...) of F/V.

    Example
    -------
    >>> float(cube_amplitude_oriented([0.0, 0.0, 0.0], 9.5))
    1.0
    """
    q = np.asarray(qvec_nm, dtype=float)
    if q.shape[-1] != 3:
        raise ParameterError(f"qvec_nm has shape {q.shape}: the last axis must hold (qx, qy, qz)")
    return np.prod(_sinc(q * (0.5 * float(edge_nm))), axis=-1)


# ------------------------------------------------------------------- orientation nodes
def _cube_wedge_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes over the 1/48 wedge u_z >= u_x >= u_y >= 0 of the sphere.

    phi in [0, pi/4] and theta in [0, atan(1/cos phi)] (u_z >= u_x); the weights include
    sin(theta) and 48/(4 pi), so they sum to 1.
    """
    z, w = _leggauss(n)
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


def _octant_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes in theta, phi over one octant; weights sum to 1."""
    z, w = _leggauss(n)
    ang = (z + 1.0) * (np.pi / 4.0)
    wang = w * (np.pi / 4.0)
    th, ph = np.meshgrid(ang, ang, indexing="ij")
    st = np.sin(th)
    u = np.stack([(st * np.cos(ph)).ravel(), (st * np.sin(ph)).ravel(), np.cos(th).ravel()])
    wt = (np.outer(wang, wang) * st).ravel() * (8.0 / (4.0 * np.pi))
    return u, wt


def _nodes_for(aspect: tuple[float, float] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    if aspect is None:
        return _cube_wedge_nodes(n)
    u, w = _octant_nodes(n)
    return u * np.array([1.0, aspect[0], aspect[1]])[:, None], w


def _n_nodes(xmax: float, aspect: tuple[float, float] | None) -> int:
    """Nodes per angle converging the average to ~1e-10 up to x = xmax (tested)."""
    if aspect is None:
        return int(16 + 0.4 * xmax)
    return int(30 + 0.8 * xmax * max(1.0, *aspect))


def orientation_average_direct(
    x, aspect: tuple[float, float] | None = None, n: int | None = None
) -> np.ndarray:
    """Orientation average <|F/V|^2> of a cube (aspect None) or prism by direct quadrature.

    ``x`` is q times the edge a; ``aspect`` = (b/a, c/a). ``n`` nodes per angle (default
    converged to ~1e-10). Slow path: the tables use it beyond their range and tests use
    it as the reference.
    """
    x = np.atleast_1d(np.asarray(x, dtype=float))
    out = np.empty(x.shape)
    flat = x.ravel()
    res = np.empty(flat.shape)
    order = np.argsort(flat)
    for chunk in np.array_split(order, max(1, flat.size // 64)):
        if chunk.size == 0:
            continue
        nn = n or _n_nodes(float(flat[chunk].max()), aspect)
        u, w = _nodes_for(aspect, nn)
        a = (0.5 * flat[chunk])[:, None] * u[0]
        b = (0.5 * flat[chunk])[:, None] * u[1]
        c = (0.5 * flat[chunk])[:, None] * u[2]
        res[chunk] = ((_sinc(a) * _sinc(b) * _sinc(c)) ** 2) @ w
    out[...] = res.reshape(x.shape)
    return out


@dataclass(frozen=True)
class _PTable:
    """Cubic spline of ln P on a uniform x grid: coefficients c[k, i] of (x - x_i)^(3-k)."""

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
            return self._interp(x)
        out = np.empty(x.shape)
        out[inside] = self._interp(x[inside])
        xo = x[~inside]
        if self.asym is None:  # prisms: exact but slow direct quadrature
            out[~inside] = orientation_average_direct(xo, self.aspect)
        else:
            out[~inside] = (
                self.porod * xo**-4 * (1.0 + _asymptotic_basis(xo, self.ratios) @ self.asym)
            )
        return out

    def _interp(self, x: np.ndarray) -> np.ndarray:
        i = np.minimum((x * (1.0 / self.step)).astype(np.intp), self.coef.shape[1] - 1)
        t = x - i * self.step
        c = self.coef
        return np.exp(((c[0, i] * t + c[1, i]) * t + c[2, i]) * t + c[3, i])


def _build_table(
    aspect: tuple[float, float] | None, xmax: float, step: float = _TABLE_STEP
) -> _PTable:
    """Tabulate P(x) on x = k * step with one fixed node set, using the Chebyshev
    recurrence sin((k+1) h) = 2 cos(h) sin(k h) - sin((k-1) h) so that each grid point
    costs a few multiply-adds per node instead of three sines (0.1 s for the cube)."""
    from scipy.interpolate import CubicSpline

    u, w = _nodes_for(aspect, _n_nodes(xmax, aspect))
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
        asym, *_ = np.linalg.lstsq(_asymptotic_basis(xs[tail], ratios), r, rcond=None)
    return _PTable(step, float(xs[-1]), np.ascontiguousarray(spline.c), aspect, porod, ratios, asym)


def _asymptotic_basis(x: np.ndarray, ratios: tuple[float, ...]) -> np.ndarray:
    cols = [np.ones_like(x), 1.0 / x, x**-2]
    for rk in ratios:
        for f in (np.cos, np.sin):
            cols += [f(rk * x), f(rk * x) / x, f(rk * x) / x**2]
    return np.stack(cols, axis=-1)


@lru_cache(maxsize=1)
def _cube_table() -> _PTable:
    # Deterministic: the same numbers on every call; built on first use (~0.1 s).
    return _build_table(None, _CUBE_TABLE_XMAX)


@lru_cache(maxsize=8)
def _prism_table(aspect: tuple[float, float]) -> _PTable:
    return _build_table(aspect, _PRISM_TABLE_XMAX / max(1.0, *aspect))


def _sphere_p(x: np.ndarray) -> np.ndarray:
    """[3 (sin x - x cos x)/x^3]^2, with its Taylor series below x = 0.05 (cancellation)."""
    x = np.abs(np.asarray(x, dtype=float))
    small = x < 0.05
    xs = np.where(small, 1.0, x)
    f = 3.0 * (np.sin(xs) - xs * np.cos(xs)) / xs**3
    x2 = x * x
    fs = 1.0 - x2 / 10.0 + x2 * x2 / 280.0 - x2**3 / 15120.0
    f = np.where(small, fs, f)
    return f * f


def _shape_p(shape: str, aspect: tuple[float, float] | None):
    """P as a function of x = q * size for a shape (size: cube edge, prism a, sphere diameter)."""
    if shape == "cube":
        return _cube_table()
    if shape == "prism":
        asp = _check_aspect(aspect)
        if asp == (1.0, 1.0):
            return _cube_table()
        return _prism_table(asp)
    if shape == "sphere":
        return lambda x: _sphere_p(0.5 * np.asarray(x, dtype=float))
    raise ParameterError(f"shape {shape!r}: choose one of {', '.join(SHAPES)}")


def _check_aspect(aspect) -> tuple[float, float]:
    if aspect is None:
        return (1.0, 1.0)
    try:
        b, c = (float(v) for v in aspect)
    except (TypeError, ValueError):
        raise ParameterError(f"aspect {aspect!r}: give two ratios (b/a, c/a)") from None
    if not (b > 0 and c > 0 and math.isfinite(b) and math.isfinite(c)):
        raise ParameterError(f"aspect {aspect!r}: ratios b/a and c/a must be positive")
    return (b, c)


# ------------------------------------------------------------------ size distributions
def size_nodes(
    polydispersity: float,
    distribution: str = "gaussian",
    x_max: float = 30.0,
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Relative sizes eps = e/e0 and weights w (sum 1) of the number distribution.

    Parameters
    ----------
    polydispersity : relative standard deviation sigma_e / e0.
    distribution : ``"gaussian"`` (truncated at e > 0) or ``"schulz"``
        (p(eps) ~ eps^(z-1) exp(-z eps), z = 1/sigma^2, as in sasmodels).
    x_max : the largest q * e0 to be evaluated; sets the default number of nodes so that
        the oscillations of P(q e) across the distribution are resolved.
    size_points, size_nsigma : with ``size_nsigma`` set, sasmodels' rule: ``size_points``
        (default 35) equally spaced sizes over +/- size_nsigma sigma weighted by the pdf.
        Otherwise Gauss-Legendre with ``size_points`` nodes (default adaptive) over the
        whole distribution, wide enough for the V^2 = e^6 weighted tail (converged to 1e-4).
    """
    sig = float(polydispersity)
    if distribution not in DISTRIBUTIONS:
        raise ParameterError(
            f"distribution {distribution!r}: choose one of {', '.join(DISTRIBUTIONS)}"
        )
    if not (sig >= 0 and math.isfinite(sig)):
        raise ParameterError(f"polydispersity {polydispersity!r}: must be >= 0 (relative width)")
    if sig < _PD_MONO:  # the distribution's effect is O(sigma^2) < 1e-12: monodisperse
        return np.ones(1), np.ones(1)
    if size_nsigma is not None:
        n = int(size_points or 35)
        eps = 1.0 + sig * np.linspace(-size_nsigma, size_nsigma, n)
        eps = eps[eps > 0]
        p = _pdf(eps, sig, distribution)
    else:
        if distribution == "gaussian":
            lo, hi = max(1.0 - 7.0 * sig, 1e-3), 1.0 + 8.0 * sig
        else:
            from scipy.stats import gamma

            # Quantiles of the V^2-weighted Schulz (a gamma with shape z + 6, z = 1/sig^2).
            z = 1.0 / (sig * sig)
            lo = float(gamma.ppf(1e-12, z + 6.0, scale=1.0 / z))
            hi = float(gamma.ppf(1.0 - 1e-12, z + 6.0, scale=1.0 / z))
            lo = max(lo, 1e-3)
        n = int(size_points or (24 + math.ceil(0.75 * max(x_max, 1.0) * (hi - lo))))
        z, w = _leggauss(n)
        eps = lo + (hi - lo) * 0.5 * (z + 1.0)
        p = w * _pdf(eps, sig, distribution)
    p = p / p.sum()
    return eps, p


def _pdf(eps: np.ndarray, sig: float, distribution: str) -> np.ndarray:
    if distribution == "gaussian":
        return np.exp(-0.5 * ((eps - 1.0) / sig) ** 2)
    from scipy.special import gammaln

    z = 1.0 / (sig * sig)
    return np.exp(z * np.log(z) + (z - 1.0) * np.log(eps) - eps * z - gammaln(z))


def _size_average(
    pfun,
    q: np.ndarray,
    size: float,
    polydispersity: float,
    distribution: str,
    size_points: int | None,
    size_nsigma: float | None,
) -> np.ndarray:
    """<V^2 P(q e)>/<V^2> over the size distribution (V ~ e^3 for every shape here)."""
    q = np.asarray(q, dtype=float)
    if 0 <= polydispersity < _PD_MONO:
        return pfun(q * size)
    xmax = float(np.max(np.abs(q))) * size if q.size else 1.0
    eps, w = size_nodes(polydispersity, distribution, xmax, size_points, size_nsigma)
    wv = w * eps**6
    wv = wv / wv.sum()
    x = np.multiply.outer(q.ravel() * size, eps)
    return (pfun(x) @ wv).reshape(q.shape)


def _check_size(name: str, value: float) -> float:
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ParameterError(f"{name} {value!r}: must be a positive length in nm")
    return v


def cube_form_factor(
    q_nm,
    edge_nm: float,
    polydispersity: float = 0.0,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Orientation-averaged form factor of cubes, <V^2 P(q)>/<V^2> (1 at q = 0).

    Parameters
    ----------
    q_nm : q values (nm^-1).
    edge_nm : mean edge e (nm).
    polydispersity : relative width sigma_e/e of the edge distribution (0: monodisperse).
    distribution : ``"gaussian"`` or ``"schulz"``.
    size_points, size_nsigma : size quadrature, see :func:`size_nodes`
        (``size_points=35, size_nsigma=3`` reproduces sasmodels' default discretisation).

    Example
    -------
    >>> p = cube_form_factor([0.0, 0.754], 9.5)   # q e = 7.16: the first minimum
    >>> round(float(p[0]), 6)
    1.0
    """
    e = _check_size("edge", edge_nm)
    return _size_average(
        _cube_table(),
        np.asarray(q_nm, float),
        e,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def sphere_form_factor(
    q_nm,
    diameter_nm: float,
    polydispersity: float = 0.0,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Form factor of spheres of diameter d, <V^2 P>/<V^2> with P = [3 j1(x)/x]^2, x = q d/2."""
    d = _check_size("diameter", diameter_nm)
    return _size_average(
        _shape_p("sphere", None),
        np.asarray(q_nm, float),
        d,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def prism_form_factor(
    q_nm,
    a_nm: float,
    b_nm: float,
    c_nm: float,
    polydispersity: float = 0.0,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Orientation-averaged form factor of a rectangular prism a x b x c (nm).

    Polydispersity scales all three edges together (fixed aspect ratios, as sasmodels'
    ``rectangular_prism`` with ``length_a_pd``).
    """
    a = _check_size("a", a_nm)
    aspect = (_check_size("b", b_nm) / a, _check_size("c", c_nm) / a)
    return _size_average(
        _shape_p("prism", aspect),
        np.asarray(q_nm, float),
        a,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


# ------------------------------------------------------------------------ forward model
def _smear(fun, q: np.ndarray, smearing) -> np.ndarray:
    """Gaussian resolution: I_s(q) = int I(q') N(q' - q; sigma_q) dq' by 15-point
    Gauss-Hermite quadrature; ``smearing`` is sigma_q (nm^-1), a number or one per q.
    I(q) is even in q, so q' < 0 uses |q'|."""
    sq = np.broadcast_to(np.asarray(smearing, dtype=float), q.shape)
    if np.any(~np.isfinite(sq)) or np.any(sq < 0):
        raise ParameterError("smearing: the resolution sigma_q must be finite and >= 0 (nm^-1)")
    t, w = np.polynomial.hermite_e.hermegauss(15)
    w = w / w.sum()
    qq = np.abs(q[:, None] + sq[:, None] * t[None, :])
    return fun(qq.ravel()).reshape(qq.shape) @ w


def form_factor(
    q_nm,
    size_nm: float,
    polydispersity: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """<V^2 P>/<V^2> for any shape: cube (size = edge), sphere (diameter), prism (edge a,
    ``aspect`` = (b/a, c/a))."""
    s = _check_size("size", size_nm)
    pfun = _shape_p(shape, aspect)
    return _size_average(
        pfun,
        np.asarray(q_nm, float),
        s,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def dilute_intensity(
    q_nm,
    edge_nm: float,
    polydispersity: float = 0.0,
    scale: float = 1.0,
    background: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
    smearing=None,
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Scattering of a dilute suspension: I = scale <V^2 P(q)>/<V^2> + background.

    ``scale`` is I(0) - background in the unit of the data; in cm^-1 it equals
    phi drho^2 <V^2>/<V> (:func:`forward_intensity_cm`, :func:`volume_fraction`).
    ``edge_nm`` is the cube edge, the sphere diameter or the prism's edge a.
    ``smearing``: Gaussian resolution sigma_q (nm^-1), one number or one per q.
    """
    q = np.asarray(q_nm, dtype=float)

    def fun(qq):
        return form_factor(
            qq, edge_nm, polydispersity, shape, distribution, aspect, size_points, size_nsigma
        )

    p = fun(q) if smearing is None else _smear(fun, q, smearing)
    return scale * p + background


def _volume_nm3(size_nm: float, shape: str, aspect) -> float:
    if shape == "sphere":
        return math.pi / 6.0 * size_nm**3
    b, c = _check_aspect(aspect) if shape == "prism" else (1.0, 1.0)
    return size_nm**3 * b * c


def forward_intensity_cm(
    volume_fraction: float,
    edge_nm: float,
    sld_contrast: float,
    polydispersity: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
) -> float:
    """I(0) in cm^-1 of a dilute suspension: phi drho^2 <V^2>/<V>.

    ``sld_contrast`` in 1e-6 A^-2 (CsPbBr3 in toluene at 12.2 keV: 31.8 - 7.99 = 23.8),
    ``edge_nm`` the mean edge (sphere: diameter). A 9.5 nm cube gives 4.9e4 phi cm^-1.
    """
    eps, w = size_nodes(polydispersity, distribution, 1.0)
    m6, m3 = float(w @ eps**6), float(w @ eps**3)
    v_cm3 = _volume_nm3(_check_size("edge", edge_nm), shape, aspect) * _NM3_CM3
    drho = sld_contrast * _SLD_UNIT_CM2
    return float(volume_fraction) * drho * drho * v_cm3 * m6 / m3


def volume_fraction(
    scale_cm: float,
    edge_nm: float,
    sld_contrast: float,
    polydispersity: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
) -> float:
    """Volume fraction phi from a fitted ``scale`` in cm^-1 (inverse of :func:`forward_intensity_cm`)."""
    unit = forward_intensity_cm(
        1.0, edge_nm, sld_contrast, polydispersity, shape, distribution, aspect
    )
    return float(scale_cm) / unit


# ------------------------------------------------------------------------------- fitting
_PARAMS = ("edge", "polydispersity", "scale", "background")


@dataclass(frozen=True)
class FormFactorFit:
    """Result of :func:`fit_form_factor`.

    ``edge_nm`` is the cube edge, the sphere diameter or the prism's edge a. Errors are
    one standard deviation from the fit covariance (multiplied by sqrt(reduced chi2)
    when that exceeds 1). ``correlations[p1][p2]`` are the correlation coefficients.
    """

    shape: str
    edge_nm: float
    edge_err_nm: float
    polydispersity: float
    polydispersity_err: float
    scale: float
    scale_err: float
    background: float
    background_err: float
    reduced_chi2: float
    correlations: dict[str, dict[str, float]]
    q_nm: np.ndarray
    model: np.ndarray
    residuals: np.ndarray
    report: str
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    distribution: str = "gaussian"
    aspect: tuple[float, float] | None = None
    smearing: Any = None
    unit: str = "arb"
    covariance: np.ndarray | None = None
    free_params: tuple[str, ...] = _PARAMS

    def model_curve(self, q_nm, include_background: bool = True) -> np.ndarray:
        """The fitted I(q) on any q grid (nm^-1); without the flat background if asked.

        Resolution smearing is applied only on the fitted q grid (it is per point)."""
        q = np.asarray(q_nm, dtype=float)
        sm = self.smearing
        if (
            sm is not None
            and np.ndim(sm)
            and (q.shape != self.q_nm.shape or not np.array_equal(q, self.q_nm))
        ):
            sm = float(np.interp(q.mean(), self.q_nm, np.asarray(sm)))
        return dilute_intensity(
            q,
            self.edge_nm,
            self.polydispersity,
            self.scale,
            self.background if include_background else 0.0,
            self.shape,
            self.distribution,
            self.aspect,
            sm,
        )

    def volume_fraction(self, sld_contrast: float) -> float:
        """Volume fraction phi from the fitted scale, for data in cm^-1 (contrast in 1e-6 A^-2)."""
        if self.unit != "cm^-1":
            raise InputError(
                f"volume fraction needs data in cm^-1 (this fit's data are in {self.unit!r}); "
                "scale the curve to absolute units first"
            )
        return volume_fraction(
            self.scale,
            self.edge_nm,
            sld_contrast,
            self.polydispersity,
            self.shape,
            self.distribution,
            self.aspect,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """Flat JSON-ready summary (snake_case keys, units in the names)."""

        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None

        out: dict[str, Any] = {
            "shape": self.shape,
            "distribution": self.distribution,
            "edge_nm": num(self.edge_nm),
            "edge_err_nm": num(self.edge_err_nm),
            "polydispersity": num(self.polydispersity),
            "polydispersity_err": num(self.polydispersity_err),
            "scale": num(self.scale),
            "scale_err": num(self.scale_err),
            "background": num(self.background),
            "background_err": num(self.background_err),
            "reduced_chi2": num(self.reduced_chi2),
            "intensity_unit": self.unit,
            "q_min_nm": num(self.q_nm.min()),
            "q_max_nm": num(self.q_nm.max()),
            "n_points": int(self.q_nm.size),
            "correlations": {
                k: {k2: num(v2) for k2, v2 in v.items()} for k, v in self.correlations.items()
            },
        }
        if self.shape == "sphere":
            out["diameter_nm"] = out["edge_nm"]
        if self.shape == "prism":
            out["aspect"] = list(self.aspect or (1.0, 1.0))
        init = self.provenance.get("steps", [{}])[-1].get("initial") if self.provenance else None
        if init:
            out["initial"] = init
        return out


def _weights(curve: Curve) -> tuple[np.ndarray, bool]:
    """1/sigma, or relative weights 1/|I| when the file had no sigma column."""
    s = curve.sigma
    if np.all(s == 0) or curve.provenance.get("sigma_missing"):
        return 1.0 / np.maximum(np.abs(curve.intensity), 1e-300), False
    if np.any(s <= 0):
        n = int(np.sum(s <= 0))
        raise InputError(
            f"curve {curve.name!r}: {n} point(s) with sigma <= 0; remove them or give "
            "a sigma column with positive standard deviations"
        )
    return 1.0 / s, True


def _linear_scale_bkg(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares y ~ scale * p + bkg; returns scale, bkg, chi2."""
    a = np.stack([p * w, w], axis=1)
    sol, *_ = np.linalg.lstsq(a, y * w, rcond=None)
    scale, bkg = float(sol[0]), float(sol[1])
    if scale <= 0:
        return 0.0, 0.0, math.inf
    r = (scale * p + bkg - y) * w
    return scale, bkg, float(r @ r)


def _guinier_size(q: np.ndarray, y: np.ndarray, shape: str, aspect) -> float | None:
    """Size from a Guinier fit ln I = ln I0 - (q Rg)^2/3 over q Rg < 1.2 (iterated).

    Rg^2 = e^2/4 for a cube, (a^2+b^2+c^2)/12 for a prism, (3/5)(d/2)^2 for a sphere."""
    ok = y > 0
    q, y = q[ok], y[ok]
    if q.size < 5:
        return None
    n = max(5, q.size // 10)
    rg = None
    for _ in range(6):
        sel = slice(0, n) if rg is None else q * rg < 1.2
        qq, yy = q[sel], y[sel]
        if qq.size < 4:
            break
        slope = np.polyfit(qq * qq, np.log(yy), 1)[0]
        if not slope < 0:
            return None
        rg = math.sqrt(-3.0 * slope)
    if rg is None:
        return None
    if shape == "sphere":
        return 2.0 * rg * math.sqrt(5.0 / 3.0)
    b, c = _check_aspect(aspect) if shape == "prism" else (1.0, 1.0)
    return rg * math.sqrt(12.0 / (1.0 + b * b + c * c))


def _first_minimum_size(q: np.ndarray, y: np.ndarray, shape: str) -> float | None:
    """Size from the first local minimum of q^4 I (smoothed), x_min / q_min."""
    if shape not in _FIRST_MINIMUM_X or q.size < 15:
        return None
    ok = y > 0
    if ok.sum() < 15:
        return None
    lq, ly = np.log(q[ok]), np.log(y[ok] * q[ok] ** 4)
    grid = np.linspace(lq[0], lq[-1], 200)
    g = np.interp(grid, lq, ly)
    k = 7
    sm = np.convolve(np.pad(g, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="same")[k:-k]
    interior = np.flatnonzero((sm[1:-1] < sm[:-2]) & (sm[1:-1] <= sm[2:])) + 1
    for i in interior:
        if i < 10 or i > grid.size - 10:
            continue
        if sm[max(0, i - 25) : i].max() - sm[i] > 0.05:
            # q^4 P(x) has its first minimum at x = 7.04 (cube) where P has 7.16.
            xm = 7.04 if shape == "cube" else 2 * 4.49
            return xm / math.exp(grid[i])
    return None


def _initial_values(q, y, w, shape, distribution, aspect) -> dict[str, Any]:
    """Start values without user input: Guinier and first-minimum estimates refined by a
    coarse grid search over edge and polydispersity (scale, background solved linearly)."""
    guinier = _guinier_size(q, y, shape, aspect)
    minimum = _first_minimum_size(q, y, shape)
    lo, hi = 1.0 / q.max(), 25.0 / max(q.min(), q.max() / 500.0)
    if shape == "prism":  # stay inside the prism table (its outside is slow)
        hi = min(hi, 0.95 * _PRISM_TABLE_XMAX / max(1.0, *aspect) / q.max())
    grid = list(np.geomspace(lo, hi, 60))
    for s in (guinier, minimum):
        if s and lo / 3 < s < hi * 3:
            grid += list(s * np.geomspace(0.8, 1.25, 9))
    pfun = _shape_p(shape, aspect)
    best = (math.inf, None, None, None, None)
    for e in grid:
        for pd in (0.04, 0.1, 0.2):
            p = _size_average(pfun, q, e, pd, distribution, 24, None)
            sc, bk, chi2 = _linear_scale_bkg(p, y, w)
            if chi2 < best[0]:
                best = (chi2, e, pd, sc, bk)
    if best[1] is None:
        raise FitError(
            "no start values: the data cannot be described by a positive form factor "
            "plus background; check the q range and the solvent subtraction"
        )
    return {
        "edge_nm": best[1],
        "polydispersity": best[2],
        "scale": best[3],
        "background": best[4],
        "guinier_edge_nm": guinier,
        "first_minimum_edge_nm": minimum,
    }


def fit_form_factor(
    curve: Curve,
    shape: str = "cube",
    qmin: float | None = None,
    qmax: float | None = None,
    distribution: str = "gaussian",
    smearing=None,
    aspect: tuple[float, float] | None = None,
    initial: dict[str, float] | None = None,
    fix: tuple[str, ...] = (),
    size_points: int | None = None,
) -> FormFactorFit:
    """Fit a dilute-suspension curve with I = scale <V^2 P>/<V^2> + background (lmfit).

    Parameters
    ----------
    curve : solvent-subtracted I(q) with sigma (weights 1/sigma; relative weights and a
        note in the provenance when the file had no sigma).
    shape : ``"cube"``, ``"sphere"`` (edge_nm is then the diameter) or ``"prism"``
        (``aspect`` = (b/a, c/a) fixed; edge_nm is a).
    qmin, qmax : fit range (nm^-1).
    distribution : size distribution, ``"gaussian"`` or ``"schulz"``.
    smearing : Gaussian resolution sigma_q (nm^-1), one number or one per point of the
        selected range; None for no smearing.
    initial : optional start values (``edge_nm``, ``polydispersity``, ``scale``,
        ``background``); by default found from a Guinier fit, the first minimum and a
        grid search.
    fix : names among ``edge``, ``polydispersity``, ``scale``, ``background`` held fixed.

    Returns
    -------
    FormFactorFit

    Raises
    ------
    FitError when the fit does not converge, a parameter ends at a bound, the covariance
    cannot be estimated, or the size or scale is not determined by the data.
    """
    import lmfit

    if shape not in SHAPES:
        raise ParameterError(f"shape {shape!r}: choose one of {', '.join(SHAPES)}")
    if distribution not in DISTRIBUTIONS:
        raise ParameterError(
            f"distribution {distribution!r}: choose one of {', '.join(DISTRIBUTIONS)}"
        )
    if shape == "prism":
        aspect = _check_aspect(aspect)
    elif shape == "cube":
        aspect = None
    src = curve.name or "curve"
    sel = curve.select(qmin, qmax)
    sel = sel.select(1e-12 if qmin is None else qmin, qmax)  # q = 0 carries no size information
    if len(sel) < 8:
        raise InputError(
            f"{src}: only {len(sel)} points in the fit range "
            f"[{qmin}, {qmax}] nm^-1; widen --qmin/--qmax (at least 8 needed)"
        )
    q, y = sel.q_nm, sel.intensity
    w, weighted = _weights(sel)
    if smearing is not None:
        sm = np.asarray(smearing, dtype=float)
        if sm.ndim and sm.shape != q.shape:
            raise ParameterError(
                f"smearing has {sm.size} values; give one number or one per "
                f"point in the fit range ({q.size})"
            )
    init = _initial_values(q, y, w, shape, distribution, aspect)
    if initial:
        init.update({k: v for k, v in initial.items() if v is not None})
    e0 = float(init["edge_nm"])
    e_lo, e_hi = e0 / 4.0, e0 * 4.0
    pd_max = 0.45
    # A fixed size quadrature, chosen once from the widest sizes the fit may try: its
    # nodes move smoothly with the parameters, so finite-difference Jacobians are clean.
    npts = size_points or min(
        200, 24 + math.ceil(0.75 * q.max() * e0 * 1.5 * min(15.0 * pd_max, 1.0 + 8.0 * pd_max))
    )
    pfun = _shape_p(shape, aspect)

    def model(e, pd, sc, bk):
        def f(qq):
            return _size_average(pfun, qq, e, pd, distribution, npts, None)

        p = f(q) if smearing is None else _smear(f, q, smearing)
        return sc * p + bk

    params = lmfit.Parameters()
    params.add("edge", value=e0, min=e_lo, max=e_hi, vary="edge" not in fix)
    pd0 = float(np.clip(init["polydispersity"], 0.0, pd_max * 0.9))
    params.add("polydispersity", value=pd0, min=0.0, max=pd_max, vary="polydispersity" not in fix)
    params.add("scale", value=float(init["scale"]), min=0.0, vary="scale" not in fix)
    params.add("background", value=float(init["background"]), vary="background" not in fix)

    def resid(pars):
        v = pars.valuesdict()
        return (model(v["edge"], v["polydispersity"], v["scale"], v["background"]) - y) * w

    try:
        res = lmfit.minimize(resid, params, method="leastsq", scale_covar=False, nan_policy="raise")
    except (ValueError, FloatingPointError) as exc:
        raise FitError(
            f"{src}: the form-factor fit failed ({exc}); check the q range and the data"
        ) from None
    notes = []
    v = res.params
    # lmfit puts a bounded parameter through a sin transform: at the bound pd = 0 its
    # derivative vanishes and no covariance exists. pd -> 0 is a real answer
    # (monodisperse): refit with pd fixed at 0 and say so.
    if v["polydispersity"].vary and v["polydispersity"].value < 1e-3:
        params["polydispersity"].set(value=0.0, vary=False)
        for k in ("edge", "scale", "background"):
            params[k].set(value=v[k].value)
        res = lmfit.minimize(resid, params, method="leastsq", scale_covar=False, nan_policy="raise")
        v = res.params
        notes.append("polydispersity went to its lower bound 0 and was fixed there (monodisperse)")
    _check_fit(res, src, e_lo, e_hi, pd_max)
    redchi = float(res.redchi)
    inflate = math.sqrt(redchi) if redchi > 1 else 1.0
    if inflate > 1:
        notes.append(f"errors multiplied by sqrt(reduced chi2) = {inflate:.4f}")
    if not weighted:
        notes.append("no sigma in the data: relative (1/I) weights, chi2 is not absolute")

    def err(name):
        p = v[name]
        return (
            float(p.stderr) * inflate
            if p.vary and p.stderr is not None
            else (0.0 if not p.vary else math.nan)
        )

    if v["edge"].vary and not (err("edge") < 0.5 * v["edge"].value):
        raise FitError(
            f"{src}: the size is not determined by the data (edge = {v['edge'].value:.3g} +/- "
            f"{err('edge'):.2g} nm); use a q range that reaches q*edge > 3"
        )
    if v["scale"].vary and not (3.0 * err("scale") < v["scale"].value):
        raise FitError(
            f"{src}: no significant particle scattering (scale = {v['scale'].value:.3g} +/- "
            f"{err('scale'):.2g}); is this a dilute-suspension curve after solvent subtraction?"
        )
    names = [n for n in _PARAMS if v[n].vary]
    cov = np.asarray(res.covar, dtype=float) * inflate**2 if res.covar is not None else None
    corr = {n: {m: float(v[n].correl.get(m, 0.0)) for m in names if m != n} for n in names}
    mod = model(v["edge"].value, v["polydispersity"].value, v["scale"].value, v["background"].value)
    report = lmfit.fit_report(res)
    if notes:
        report += "\n[[Notes]]\n" + "\n".join(f"    {n}" for n in notes)
    initial_rec = {k: (None if val is None else float(val)) for k, val in init.items()}
    prov = prov_mod.extend(
        curve.provenance,
        "fit_form_factor",
        shape=shape,
        distribution=distribution,
        aspect=list(aspect) if aspect else None,
        qmin_nm=float(q.min()),
        qmax_nm=float(q.max()),
        n_points=int(q.size),
        smearing_sigma_q_nm=None if smearing is None else np.asarray(smearing, float).tolist(),
        size_points=int(npts),
        weighted=weighted,
        initial=initial_rec,
        fixed=list(fix),
        notes=notes,
    )
    return FormFactorFit(
        shape=shape,
        edge_nm=float(v["edge"].value),
        edge_err_nm=err("edge"),
        polydispersity=float(v["polydispersity"].value),
        polydispersity_err=err("polydispersity"),
        scale=float(v["scale"].value),
        scale_err=err("scale"),
        background=float(v["background"].value),
        background_err=err("background"),
        reduced_chi2=redchi,
        correlations=corr,
        q_nm=q,
        model=mod,
        residuals=(y - mod) * w,
        report=report,
        provenance=prov,
        distribution=distribution,
        aspect=aspect,
        smearing=None
        if smearing is None
        else (float(smearing) if np.ndim(smearing) == 0 else np.asarray(smearing, float)),
        unit=curve.unit,
        covariance=cov,
        free_params=tuple(names),
    )


def _check_fit(res, src: str, e_lo: float, e_hi: float, pd_max: float) -> None:
    v = res.params
    if not res.success:
        raise FitError(
            f"{src}: the form-factor fit did not converge ({res.message}); "
            "narrow the q range or give start values"
        )
    vals = [p.value for p in v.values()]
    if not all(math.isfinite(x) for x in vals) or not math.isfinite(res.redchi):
        raise FitError(
            f"{src}: the form-factor fit gave non-finite values; check the data for outliers"
        )
    e = v["edge"].value
    if v["edge"].vary and (e < e_lo * 1.01 or e > e_hi * 0.99):
        raise FitError(
            f"{src}: the fitted size ran to its bound ({e:.3g} nm, allowed {e_lo:.3g}-{e_hi:.3g}); "
            "the data do not look like this shape's form factor in this q range"
        )
    if v["polydispersity"].vary and v["polydispersity"].value > pd_max * 0.99:
        raise FitError(
            f"{src}: the polydispersity ran to its bound {pd_max}; the curve has no "
            "form-factor features to fit (check the q range or the shape)"
        )
    if not res.errorbars or any(
        p.vary and (p.stderr is None or not math.isfinite(p.stderr)) for p in v.values()
    ):
        raise FitError(
            f"{src}: the fit covariance could not be estimated (parameters not determined "
            "by the data); widen the q range or fix the polydispersity"
        )


# -------------------------------------------------------------- effective structure factor
@dataclass(frozen=True)
class StructureFactor:
    """S_eff(q) = [I_sample / c_sample] / [I_dilute / c_dilute] with its errors.

    ``flagged`` marks points not to be trusted: the dilute signal is too weak (relative
    error above the limit, or not positive) or the form factor is near a sharp minimum
    (curvature of ln I_dilute in ln q above the limit). ``concentration_ratio`` is
    c_sample / c_dilute (fitted so that S_eff -> 1 at high q when
    ``concentration_ratio_fitted``); its error is a common scale error of all points and
    is not included in ``sigma``.
    """

    q_nm: np.ndarray
    s: np.ndarray
    sigma: np.ndarray
    flagged: np.ndarray
    concentration_ratio: float
    concentration_ratio_fitted: bool
    concentration_ratio_err: float = 0.0
    name: str = "s_eff"
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def as_curve(self) -> Curve:
        """The unflagged points as a :class:`Curve` (unit ``"arb"``: S_eff is dimensionless)."""
        keep = ~self.flagged
        prov = dict(self.provenance)
        return Curve(
            self.q_nm[keep],
            self.s[keep],
            self.sigma[keep],
            unit="arb",
            name=self.name,
            provenance=prov,
        )


def _interp_curve(q_target: np.ndarray, curve: Curve) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate a curve onto q_target (inside its range): log-log where I > 0, linear
    otherwise; variances combine as (1-t)^2 s1^2 + t^2 s2^2 (independent points)."""
    q, i, s = curve.q_nm, curve.intensity, curve.sigma
    k = np.clip(np.searchsorted(q, q_target, side="right") - 1, 0, q.size - 2)
    q1, q2 = q[k], q[k + 1]
    pos = (q1 > 0) & (i[k] > 0) & (i[k + 1] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_lin = (q_target - q1) / (q2 - q1)
        t_log = np.log(q_target / q1) / np.log(q2 / q1)
    t = np.where(pos, t_log, t_lin)
    t = np.clip(np.nan_to_num(t), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        val_log = np.exp(
            (1 - t) * np.log(np.where(pos, i[k], 1.0)) + t * np.log(np.where(pos, i[k + 1], 1.0))
        )
    val = np.where(pos, val_log, (1 - t) * i[k] + t * i[k + 1])
    # In log interpolation the weights of the two points on I are (1-t) I/I1 and t I/I2.
    a1 = np.where(pos, (1 - t) * val / np.where(pos, i[k], 1.0), 1 - t)
    a2 = np.where(pos, t * val / np.where(pos, i[k + 1], 1.0), t)
    sig = np.sqrt((a1 * s[k]) ** 2 + (a2 * s[k + 1]) ** 2)
    return val, sig


def _log_curvature(q: np.ndarray, i: np.ndarray, smooth: bool) -> np.ndarray:
    """d^2 ln I / d(ln q)^2, on a uniform ln q grid; smoothed (Savitzky-Golay over
    +/- 0.04 in ln q) for measured curves."""
    from scipy.signal import savgol_filter

    ok = (i > 0) & (q > 0)
    out = np.zeros(q.shape)
    if ok.sum() < 7:
        return out
    lq, li = np.log(q[ok]), np.log(i[ok])
    step = max(float(np.median(np.diff(lq))), 1e-4)
    grid = np.arange(lq[0], lq[-1] + step / 2, step)
    if grid.size < 7:
        return out
    g = np.interp(grid, lq, li)
    if smooth:
        win = max(7, int(0.08 / step) | 1)
        win = min(win, grid.size - (1 - grid.size % 2))
        d2 = savgol_filter(g, win, 3, deriv=2, delta=step)
    else:
        d2 = np.gradient(np.gradient(g, step), step)
    out[ok] = np.interp(lq, grid, d2)
    return out


def effective_structure_factor(
    sample: Curve,
    dilute: Curve | FormFactorFit,
    concentration_ratio: float | None = None,
    high_q_fraction: float = 0.25,
    max_relative_error: float = 0.25,
    max_curvature: float = 300.0,
    s_one_range_nm: tuple[float, float] | None = None,
) -> StructureFactor:
    """S_eff(q) of a supraparticle sample: its curve divided by the dilute form factor.

    Parameters
    ----------
    sample : I_SP(q), solvent subtracted.
    dilute : the measured dilute curve (interpolated onto the sample grid over the
        overlap) or a :class:`FormFactorFit`, whose particle term scale <V^2 P>/<V^2>
        (without its flat background) replaces it; the fit's parameter covariance is
        propagated into sigma.
    concentration_ratio : c_sample / c_dilute. None: fitted as the weighted mean of
        I_SP / I_dilute over the highest ``high_q_fraction`` of the overlap, i.e.
        assuming S_eff -> 1 there (stated in the provenance).
    max_relative_error : flag points whose dilute relative error exceeds this.
    s_one_range_nm : (qlo, qhi) where S_eff = 1 is assumed when fitting the ratio,
        instead of the highest ``high_q_fraction`` of the points.
    max_curvature : flag points where d^2 ln I_dil / d(ln q)^2 exceeds this (a sharp
        form-factor minimum: there a 1 % size mismatch between the two samples biases
        S_eff by more than ~1 %). 300 keeps the shallow minima of >= 8 % polydisperse
        cubes and flags those of monodisperse cubes and spheres.

    Raises
    ------
    InputError when the q ranges do not overlap or too few points remain.
    """
    q = sample.q_nm
    name_s = sample.name or "sample"
    if isinstance(dilute, FormFactorFit):
        name_d = "form-factor fit"
        lo, hi = q.min(), q.max()
        qs = q[q > 0] if q.min() <= 0 else q
        idil = dilute.model_curve(qs, include_background=False)
        sdil = _model_sigma(dilute, qs)
        curv = _log_curvature(qs, idil, smooth=False)
    else:
        name_d = dilute.name or "dilute"
        lo, hi = max(q.min(), dilute.q_nm.min()), min(q.max(), dilute.q_nm.max())
        if not hi > lo:
            raise InputError(
                f"{name_s} ({q.min():.4g}-{q.max():.4g} nm^-1) and {name_d} "
                f"({dilute.q_nm.min():.4g}-{dilute.q_nm.max():.4g} nm^-1): the q ranges do not overlap; "
                "measure the dilute suspension over the sample's q range or use --model"
            )
        qs = q[(q >= lo) & (q <= hi)]
        idil, sdil = _interp_curve(qs, dilute)
        curv = _log_curvature(dilute.q_nm, dilute.intensity, smooth=True)
        curv = np.interp(qs, dilute.q_nm, curv)
    inside = np.isin(q, qs)
    isam, ssam = sample.intensity[inside], sample.sigma[inside]
    if qs.size < 3:
        raise InputError(
            f"{name_s} and {name_d}: only {qs.size} common q points; the overlap is too small"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_d = np.where(idil > 0, sdil / idil, np.inf)
        ratio = isam / idil
        ratio_sig = np.sqrt((ssam / idil) ** 2 + (ratio * rel_d) ** 2)
    weak = ~(rel_d <= max_relative_error)
    minimum = curv > max_curvature
    flagged = weak | minimum | ~np.isfinite(ratio)
    if (~flagged).sum() < 3:
        raise InputError(
            f"{name_s} / {name_d}: fewer than 3 points left after flagging weak or "
            "minimum points; check the dilute curve's signal"
        )
    fitted = concentration_ratio is None
    r_err = 0.0
    if fitted:
        good = np.flatnonzero(~flagged)
        if s_one_range_nm is not None:
            qlo, qhi = (float(v) for v in s_one_range_nm)
            sel = good[(qs[good] >= qlo) & (qs[good] <= qhi)]
            if sel.size < 3:
                raise ParameterError(
                    f"S = 1 range {qlo:g}-{qhi:g} nm^-1 holds {sel.size} usable points; "
                    "widen it (at least 3)"
                )
        else:
            n_hi = max(3, int(math.ceil(high_q_fraction * good.size)))
            sel = good[-n_hi:]
        r, r_err = _ratio_high_q(isam[sel], ssam[sel], idil[sel], sdil[sel], qs[sel])
        if not r > 0:
            raise FitError(
                f"{name_s} / {name_d}: the fitted concentration ratio is {r:.3g} (not positive); "
                "give it with --concentration-ratio"
            )
        q_from = float(qs[sel[0]])
        how = (
            f"concentration ratio fitted so that S_eff -> 1 (weighted ratio of sums of I_sample and I_dilute) "
            f"over q = {q_from:.4g}-{float(qs[sel[-1]]):.4g} nm^-1 ({sel.size} points)"
        )
    else:
        r = float(concentration_ratio)
        if not (r > 0 and math.isfinite(r)):
            raise ParameterError(f"concentration ratio {concentration_ratio!r}: must be positive")
        q_from = None
        how = "concentration ratio given"
    s = ratio / r
    sig = ratio_sig / r
    prov = prov_mod.extend(
        sample.provenance,
        "effective_structure_factor",
        dilute=name_d
        if isinstance(dilute, FormFactorFit)
        else dilute.provenance.get("source", name_d),
        dilute_model=isinstance(dilute, FormFactorFit),
        concentration_ratio=r,
        concentration_ratio_err=r_err,
        concentration_ratio_fitted=fitted,
        concentration_ratio_method=how,
        s_to_one_from_q_nm=q_from,
        overlap_nm=[float(lo), float(hi)],
        n_points=int(qs.size),
        n_dropped_outside_overlap=int(q.size - qs.size),
        n_flagged=int(flagged.sum()),
        n_flagged_weak=int(weak.sum()),
        n_flagged_minimum=int((minimum & ~weak).sum()),
        max_relative_error=max_relative_error,
        max_curvature=max_curvature,
    )
    return StructureFactor(
        qs, s, sig, flagged, r, fitted, r_err, name=f"s_eff_{name_s}", provenance=prov
    )


def _ratio_high_q(i_s, s_s, i_d, s_d, q) -> tuple[float, float]:
    """c_sample/c_dilute where S_eff = 1: R = sum(u I_s) / sum(u I_d).

    The weights u = I_d~ / (s_s^2 + R^2 s_d^2) use a power-law fit I_d~ of the dilute
    curve, not the noisy points themselves: a mean of the noisy ratios I_s/I_d weighted
    by their own errors is biased low by about the squared relative error (1-2 %)."""
    ok = i_d > 0
    if ok.sum() >= 2 and np.ptp(q[ok]) > 0:
        coef = np.polyfit(np.log(q[ok]), np.log(i_d[ok]), 1)
        smooth = np.exp(np.polyval(coef, np.log(q)))
    else:
        smooth = np.full(q.shape, max(float(np.mean(i_d)), 1e-300))
    r = float(np.sum(i_s) / np.sum(i_d)) if np.sum(i_d) != 0 else float("nan")
    for _ in range(5):
        var = s_s**2 + r * r * s_d**2
        if not np.all(var > 0):
            var = np.ones(q.shape)
        u = smooth / var
        r = float(np.sum(u * i_s) / np.sum(u * i_d))
    den = float(np.sum(u * i_d))
    err = math.sqrt(float(np.sum(u * u * var))) / abs(den) if den else float("nan")
    chi2 = float(np.sum((i_s - r * i_d) ** 2 / var)) / max(q.size - 1, 1)
    return r, err * math.sqrt(max(chi2, 1.0))


def _model_sigma(fit: FormFactorFit, q: np.ndarray) -> np.ndarray:
    """Standard deviation of the fitted particle term from the parameter covariance
    (numerical Jacobian; the background is not part of it)."""
    names = list(fit.free_params)
    cov = fit.covariance
    base = fit.model_curve(q, include_background=False)
    if cov is None or not names:
        return np.zeros(q.shape)
    vals = {
        "edge": fit.edge_nm,
        "polydispersity": fit.polydispersity,
        "scale": fit.scale,
        "background": fit.background,
    }
    cols = []
    for n in names:
        if n == "background":
            cols.append(np.zeros(q.shape))
            continue
        h = 1e-4 * max(abs(vals[n]), 1e-2)
        pv = dict(vals)
        pv[n] = vals[n] + h
        f2 = replace(
            fit, edge_nm=pv["edge"], polydispersity=pv["polydispersity"], scale=pv["scale"]
        )
        cols.append((f2.model_curve(q, include_background=False) - base) / h)
    jac = np.stack(cols, axis=1)
    var = np.einsum("ij,jk,ik->i", jac, cov, jac)
    return np.sqrt(np.maximum(var, 0.0))
