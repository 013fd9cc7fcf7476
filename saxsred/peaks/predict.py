"""Predicted powder lines of a lattice: positions from :mod:`saxsred.lattice`, intensities
from multiplicity x basis factor x cube form factor (aligned or orientation-averaged) x Lorentz."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import lattice as _lat
from ..errors import ParameterError
from ..lattice import CUBIC, HCP_C_OVER_A, LATTICES, Ring, nn_distance, ring_s, ring_table  # noqa: F401 (re-exported)

#: Ring of a lattice (kept under its old name for callers of :func:`lattice_shells`).
Shell = Ring


def lattice_shells(lattice: str, smax: float) -> tuple[Ring, ...]:
    """Powder rings of ``lattice`` with (q a / 2 pi)^2 <= ``smax``, in increasing q (see :func:`saxsred.lattice.rings`)."""
    return _lat.rings(lattice, smax)


def packing_fraction(lattice: str, a_nm: float, edge_nm: float) -> float | None:
    """Volume fraction of cubes of edge e: sites per cell x e^3 / cell volume (3-D lattices)."""
    if lattice in CUBIC and lattice not in ("Pn-3m", "Ia-3d"):
        return _lat.sites_per_cell(lattice) * edge_nm**3 / a_nm**3
    if lattice == "HCP":
        c = HCP_C_OVER_A * a_nm
        return 2.0 * edge_nm**3 / (math.sqrt(3.0) / 2.0 * a_nm * a_nm * c)
    return None


def aligned_allowed(lattice: str, a_nm: float, edge_nm: float) -> bool:
    """Whether cubes aligned with the lattice axes fit: every neighbour vector d needs
    max_i |d_i| >= e (SC: a >= e; BCC, FCC: a/2 >= e, i.e. a >= 2e)."""
    if lattice == "SC":
        return a_nm >= edge_nm * (1 - 1e-9)
    if lattice in ("BCC", "FCC"):
        return a_nm >= 2.0 * edge_nm * (1 - 1e-9)
    return False


def formfactor_functions():
    """The form-factor module's oriented amplitude and orientation average (lazy import)."""
    from ..formfactor import cube_amplitude_oriented, cube_form_factor

    return cube_amplitude_oriented, cube_form_factor


@dataclass(frozen=True)
class Reflection:
    """One predicted powder line: ring ``s`` of ``lattice`` at ``q_nm``.

    ``weight`` is the predicted integrated intensity (arbitrary common scale):
    sum over the ring of basis factor x w(G), times the Lorentz factor 1/q^2, where w(G)
    is |F(G)|^2 (aligned cubes) or P(|G|) (orientation average), divided by P(|G|) when
    the data are S_eff = I / P (``kind="sq"``); w = 1 without an edge (point particles).
    """

    hkl: tuple[int, int, int]
    s: float
    q_nm: float
    multiplicity: int
    weight: float


def oriented_intensity(g_nm: np.ndarray, edge_nm: float, polydispersity: float = 0.0) -> np.ndarray:
    """|F(G)|^2 of cubes aligned with the axes, size-averaged with V^2 weights (Gaussian
    relative width ``polydispersity``, 9-point Gauss-Hermite), as <V^2 P> is for I(q)."""
    amp, _ = formfactor_functions()
    if polydispersity <= 0:
        f = np.asarray(amp(g_nm, edge_nm), float)
        return f * f
    x, wts = np.polynomial.hermite_e.hermegauss(9)
    es = edge_nm * (1.0 + polydispersity * x)
    ok = es > 0
    wv = wts[ok] * (es[ok] / edge_nm) ** 6
    wv /= wv.sum()
    return sum(wk * np.asarray(amp(g_nm, ek), float) ** 2 for wk, ek in zip(wv, es[ok]))


def form_factor_table(edge_nm: float, polydispersity: float, q_max_nm: float):
    """P(q) on a fine grid, interpolated in log: index_peaks asks for it thousands of times."""
    _, pq = formfactor_functions()
    grid = np.linspace(0.0, q_max_nm * 1.05 + 1e-9, 600)
    vals = np.log(np.maximum(np.asarray(pq(grid, edge_nm, polydispersity), float), 1e-300))
    return lambda q: np.exp(np.interp(q, grid, vals))


def reflections(
    lattice: str,
    a_nm: float,
    q_max_nm: float,
    edge_nm: float | None = None,
    aligned: bool | None = None,
    kind: str = "sq",
    polydispersity: float = 0.0,
    pq=None,
) -> list[Reflection]:
    """Predicted reflections of a lattice up to ``q_max_nm`` with their intensities.

    Parameters
    ----------
    lattice : one of :data:`LATTICES`.
    a_nm : lattice parameter (nm); HCP uses the ideal c/a = sqrt(8/3).
    q_max_nm : highest q (nm^-1).
    edge_nm : cube edge e; None for point particles.
    aligned : cubes aligned with the lattice axes; None decides by geometry
        (:func:`aligned_allowed`); only cubic lattices can be aligned.
    kind : ``"sq"`` for S_eff(q) = I/P data, ``"iq"`` for I(q).
    polydispersity : relative width of the edge distribution (size averages of |F|^2 and P).
    pq : optional callable q -> P(q) (a precomputed table); default the form-factor module.
    """
    shells, _, qs, wts = reflection_arrays(
        lattice, a_nm, q_max_nm, edge_nm, aligned, kind, polydispersity, pq
    )
    return [
        Reflection(sh.hkl, sh.s, float(q), sh.multiplicity, float(w))
        for sh, q, w in zip(shells, qs, wts)
    ]


def reflection_arrays(
    lattice,
    a_nm,
    q_max_nm,
    edge_nm=None,
    aligned=None,
    kind="sq",
    polydispersity=0.0,
    pq=None,
    with_basis=False,
):
    """(shells, s, q, weight) of :func:`reflections` as arrays (the indexer's inner loop);
    with ``with_basis`` also the rings' basis sums (multiplicity x |F_basis|^2 / n)."""
    if not (a_nm > 0 and np.isfinite(a_nm)):
        raise ParameterError(f"lattice parameter {a_nm!r} nm: must be positive")
    smax = (q_max_nm * a_nm / (2.0 * math.pi)) ** 2
    s_all, bsum = ring_table(lattice, smax)
    m = s_all.size
    shells = _lat.RingSequence(lattice, smax)
    if edge_nm is not None and aligned is None:
        aligned = aligned_allowed(lattice, a_nm, edge_nm)
    aligned = bool(aligned) and lattice in CUBIC and edge_nm is not None
    qs = 2.0 * math.pi * np.sqrt(s_all[:m]) / a_nm
    w = np.array(bsum, dtype=float)
    if edge_nm is not None and m and (aligned or kind == "iq"):
        if pq is None:
            _, pfun = formfactor_functions()
            p = np.asarray(pfun(qs, edge_nm, polydispersity), dtype=float)
        else:
            p = np.asarray(pq(qs), dtype=float)
        if aligned:
            for i, sh in enumerate(shells):
                f2 = oriented_intensity(sh.g * (2.0 * math.pi / a_nm), edge_nm, polydispersity)
                w[i] = float(np.sum(sh.basis * f2))
            if kind == "sq":
                w /= np.maximum(p, 1e-300)
        else:  # orientation average: P(q) in I(q), divided out of S_eff
            w *= p
    if with_basis:
        return shells, s_all[:m], qs, w / (qs * qs), bsum[:m]
    return shells, s_all[:m], qs, w / (qs * qs)
