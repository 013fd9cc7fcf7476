"""Oriented-cube amplitude sum averaged over supraparticle orientations (the exact powder average).

For cubes whose orientation is correlated with their positions (aligned with the
lattice, the paper's case) I(q) does not factorise into P(q) S(q); the exact powder
intensity is

    I(q) = < | sum_j F_j(q n) exp(i q n . r_j) |^2 >_{n on the unit sphere},
    F_j(q) = prod_i sinc((R_j^T q)_i e / 2)   (F(0) = 1: I(0) = N^2),

which is what a powder of randomly oriented supraparticles gives (turning the
supraparticle is turning n). It is what suppresses (111)-type reflections of aligned cubes.

Quadrature (stated accuracy): on the sphere of radius q the amplitude is a band-limited
function of n with spherical-harmonic degree at most l_max ~ q R + (a few) (q R)^(1/3)
(R the largest |r_j| plus the cube's half-diagonal: plane waves exp(i q n.r) hold degrees
l with j_l(q r) != 0, and j_l decays faster than exponentially for l > q r). |A|^2 has
degree 2 l_max, which a product rule integrates exactly: Gauss-Legendre in cos(theta) with
l_max + 1 nodes and the trapezoid rule in phi with 2 l_max + 2 points. With
l_max = q R + 6 (q R)^(1/3) + 10 the neglected tail is below 1e-12 of the sum (checked in
the tests against the Debye sum, which the same code must reproduce when F = 1, and
against a rule with twice the nodes). Cost: about 2 (q R)^2 directions per q.

Symmetry: |A(-q)| = |A(q)| for any real configuration of centro-symmetric cubes, so only
half the sphere is evaluated. A configuration that is invariant under the 16 operations of
D4h (a perfect block with nx = ny = nz... checked numerically, not assumed) lets the grid
be cut by 16: the product grid is D4h-invariant but not invariant under the 3-fold axes of
Oh, so the full 48-fold cut would need a Lebedev grid, whose highest tabulated degree (131)
covers only q R < about 60. A disordered configuration needs the whole (half) sphere.
q points are done in blocks of up to 64 that share one direction set (the block's largest
q sets l_max); inside a uniform block each particle's phase advances by one complex
rotation per q step, with the cube index innermost so that the rotations vectorise, and
the two starting phases per cube and direction come from a vectorised polynomial sin/cos
(:mod:`._oriented_kernels`; round-off about 1e-14 relative).
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads

from ..errors import ParameterError
from . import _oriented_kernels as OK
from .build import Supraparticle, quaternion_to_matrix

BLOCK = 64


def degree_bound(q_nm: float, radius_nm: float) -> int:
    """l_max for a plane wave on the sphere of radius q over a body of radius R."""
    x = float(q_nm) * float(radius_nm)
    return int(math.ceil(x + 6.0 * x ** (1.0 / 3.0) + 10.0))


def sphere_rule(lmax: int, symmetry: str = "inversion") -> tuple[np.ndarray, np.ndarray]:
    """Direction nodes (m, 3) and weights (sum 1) integrating degree <= 2 lmax exactly.

    ``symmetry``: "none" (whole sphere), "inversion" (half: I(n) = I(-n)) or "d4h"
    (1/16: invariance under the mirrors x, y, z and the swap x <-> y).
    """
    nt = int(lmax) + 1
    nt += nt % 2  # even: no node on the equator, the halves pair up exactly
    nphi = 2 * int(lmax) + 2
    nphi = 8 * int(math.ceil(nphi / 8))  # invariant under phi -> -phi, phi + pi/2
    mu, wmu = np.polynomial.legendre.leggauss(nt)
    wmu = wmu / 2.0
    phi = 2.0 * math.pi * np.arange(nphi) / nphi
    wphi = np.full(nphi, 1.0 / nphi)
    if symmetry in ("inversion", "d4h"):
        keep = mu > 0
        mu, wmu = mu[keep], 2.0 * wmu[keep]
    if symmetry == "d4h":
        k = np.arange(nphi // 8 + 1)
        phi = 2.0 * math.pi * k / nphi
        mult = np.where((k == 0) | (k == nphi // 8), 4.0, 8.0)
        wphi = mult / nphi
    elif symmetry not in ("none", "inversion"):
        raise ParameterError(f"symmetry {symmetry!r}: use none, inversion or d4h")
    st = np.sqrt(1.0 - mu * mu)
    dirs = np.stack(
        [
            np.outer(st, np.cos(phi)).ravel(),
            np.outer(st, np.sin(phi)).ravel(),
            np.repeat(mu, phi.size),
        ],
        -1,
    )
    w = np.outer(wmu, wphi).ravel()
    return np.ascontiguousarray(dirs), w


def _d4h_invariant(pos: np.ndarray, body: np.ndarray, aligned: bool, tol: float) -> bool:
    """Whether the set of centres (and aligned, axis-parallel cubes) maps onto itself under D4h."""
    if not aligned or not np.allclose(np.abs(body[0]), np.eye(3), atol=1e-12):
        return False
    from scipy.spatial import cKDTree

    tree = cKDTree(pos)
    for op in (
        np.diag([-1.0, 1, 1]),
        np.diag([1.0, -1, 1]),
        np.diag([1.0, 1, -1]),
        np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]]),
    ):
        d, _ = tree.query(pos @ op.T, k=1)
        if np.max(d) > tol:
            return False
    return True


def _blocks(q: np.ndarray):
    """Runs of at most BLOCK points with uniform spacing (to 1e-9 relative)."""
    i = 0
    n = q.size
    while i < n:
        j = i + 1
        if j < n:
            dq = q[j] - q[i]
            while (
                j + 1 < n
                and j + 1 - i < BLOCK
                and abs((q[j + 1] - q[j]) - dq) <= 1e-9 * max(abs(dq), 1e-300)
            ):
                j += 1
            j += 1
        yield i, j
        i = j


def oriented_intensity(
    sp: Supraparticle,
    q_nm,
    symmetry: str = "auto",
    point_particles: bool = False,
    extra_degree: int = 0,
) -> np.ndarray:
    """Exact powder intensity <|sum_j F_j e^{i q.r_j}|^2> of a supraparticle (module docstring).

    Parameters
    ----------
    sp : the configuration (positions nm, quaternions, edge).
    q_nm : q values (nm^-1), best a uniform grid (phases advance by rotation).
    symmetry : "auto" (D4h cut when the configuration is invariant, else inversion),
        "inversion" or "none".
    point_particles : F = 1 (then the result is the Debye sum of the centres).
    extra_degree : added to l_max (a convergence check).

    Returns
    -------
    I(q) with F(0) = 1, so I(0) = N^2 (units of the single-cube forward intensity).
    """
    q = np.asarray(q_nm, float).ravel()
    if q.size and (np.any(q < 0) or not np.all(np.isfinite(q))):
        raise ParameterError("q must be finite and >= 0")
    pos = np.ascontiguousarray(sp.positions_nm - sp.positions_nm.mean(axis=0))
    mats = quaternion_to_matrix(sp.orientations)
    body = np.ascontiguousarray(np.transpose(mats, (0, 2, 1)))  # rows: the cube axes in the lab
    half = np.full(sp.n, 0.0 if point_particles else 0.5 * sp.edge_nm)
    aligned = point_particles or sp.aligned
    radius = float(np.sqrt(np.max(np.sum(pos * pos, axis=1)))) + (
        0.0 if point_particles else 0.5 * math.sqrt(3) * sp.edge_nm
    )
    if symmetry == "auto":
        tol = 1e-6 * max(radius, 1.0)
        sym = (
            "d4h"
            if _d4h_invariant(pos, body, aligned, tol)
            or (point_particles and _d4h_invariant(pos, np.eye(3)[None], True, tol))
            else "inversion"
        )
    else:
        sym = symmetry
    out = np.empty(q.size)
    nch = max(1, 4 * get_num_threads())
    for i, j in _blocks(q):
        qb = q[i:j]
        dirs, w = sphere_rule(degree_bound(float(qb.max()), radius) + int(extra_degree), sym)
        dq = float(qb[1] - qb[0]) if qb.size > 1 else 0.0
        out[i:j] = OK.oriented_sum(
            pos, body, half, float(qb[0]), dq, qb.size, dirs, w, aligned, nch
        )
    return out


def orientation_averaged_amplitude(q_nm, edge_nm: float, n_nodes: int = 48) -> np.ndarray:
    """<F>(q) of a cube over random orientations, F(0) = 1 (decoupling approximation).

    Gauss-Legendre in cos(theta) and phi over one octant (F is even in each component);
    F has degree about q e sqrt(3)/2 on the sphere, so ``n_nodes`` = 48 is exact to
    1e-10 up to q e of about 60 and more nodes are taken above that.
    """
    q = np.asarray(q_nm, float)
    n = max(int(n_nodes), int(0.5 * float(np.max(q, initial=0.0)) * edge_nm) + 16)
    x, wx = np.polynomial.legendre.leggauss(n)
    mu = 0.5 * (x + 1.0)
    phi = 0.25 * math.pi * (x + 1.0)
    wm = 0.5 * wx
    wp = 0.5 * wx  # phi in [0, pi/2] with weight normalised to 1: (pi/4) wx / (pi/2)
    st = np.sqrt(1.0 - mu * mu)
    n3 = np.stack(
        [np.outer(st, np.cos(phi)), np.outer(st, np.sin(phi)), np.outer(mu, np.ones_like(phi))], -1
    ).reshape(-1, 3)
    w = np.outer(wm, wp).ravel()
    h = 0.5 * edge_nm * q[..., None, None] * n3  # (..., m, 3)
    f = np.prod(np.sinc(h / math.pi), axis=-1)
    return np.sum(f * w, axis=-1)
