"""Model supraparticles and their scattering: forward models for tests, sample data and comparisons.

:func:`bragg_structure_factor` is the effective structure factor S_eff(q) = I_SP / P of
a powder of crystalline supraparticles (SCIENCE.md section 4):

    S_eff(q) = 1 + amplitude x sum_rings  W_ring x profile(q - q_ring)

    W_ring = (2 pi)^3 / V_cell x sum_{G in ring} [|F_b(G)|^2 / n_b] x w(G) / (4 pi q_ring^2)

- q_ring = 2 pi sqrt(s) / a, s = h^2 + k^2 + l^2 for cubic lattices (BCC h+k+l even,
  FCC h,k,l unmixed), 4/3 (h^2 + hk + k^2) + l^2 (a/c)^2 for HCP (ideal c/a), n^2 for
  lamellar; |F_b|^2 / n_b the basis factor per particle.
- w(G) = |F(G)|^2 / P(|G|) for cubes aligned with the lattice axes (F the oriented cube
  amplitude prod_i sinc(G_i e/2), P the orientation average, both from
  :mod:`saxsred.formfactor`); w = 1 for misaligned cubes or point particles (S then
  factorises). Only cubic lattices can hold aligned cubes.
- (2 pi)^3 / V_cell / (4 pi q^2): the powder average of the reciprocal-lattice delta
  functions (Lorentz factor 1/q^2), so ``amplitude`` = 1 is a fully crystalline sample
  of point-like order; 2-D and 1-D lattices use the same nominal normalisation with a
  as the missing lengths.
- profile: unit area, sample FWHM w(q) = 2 pi K / L + (pi/2) g^2 a q^2 (finite domains of
  size L, Hosemann paracrystal disorder g, both on the FWHM), shape Gaussian, Lorentzian
  or pseudo-Voigt; convolved exactly with a Gaussian instrument of FWHM
  ``instrument_fwhm_inv_nm`` (Lorentzian -> Voigt, Gaussian -> quadrature).
- The weight is evaluated at the ring's centre; the thermal diffuse and Debye-Waller
  terms are left out.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ..peaks import (
    CUBIC,
    HCP_C_OVER_A,
    LATTICES,
    aligned_allowed,
    formfactor_functions,
    gauss_profile,
    lattice_shells,
    lorentz_profile,
    oriented_intensity,
    voigt_profile,
)

_CELL_SITES = {"SC": 1, "BCC": 2, "FCC": 4}


def _cell_volume(lattice: str, a: float) -> float:
    if lattice in CUBIC:
        return a**3
    if lattice == "HCP":
        return math.sqrt(3.0) / 2.0 * a * a * HCP_C_OVER_A * a
    if lattice == "hex2d":
        return math.sqrt(3.0) / 2.0 * a * a * a
    return a**3


def ring_weights(
    lattice: str,
    a_nm: float,
    q_max_nm: float,
    edge_nm: float | None = None,
    aligned: bool | None = None,
    polydispersity: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """Rings of ``lattice`` up to ``q_max_nm``: (q_ring, W_ring, hkl), W as in the module docstring."""
    if lattice not in LATTICES:
        raise ParameterError(f"lattice {lattice!r}: use one of {LATTICES}")
    if not (a_nm > 0):
        raise ParameterError(f"lattice parameter {a_nm!r} nm: must be positive")
    smax = (q_max_nm * a_nm / (2.0 * math.pi)) ** 2
    shells = lattice_shells(lattice, smax)
    shells = [sh for sh in shells if sh.s <= smax + 1e-9]
    if not shells:
        return np.zeros(0), np.zeros(0), []
    qs = np.array([2.0 * math.pi * math.sqrt(sh.s) / a_nm for sh in shells])
    if edge_nm is not None and aligned is None:
        aligned = aligned_allowed(lattice, a_nm, edge_nm)
    aligned = bool(aligned) and edge_nm is not None and lattice in CUBIC
    if aligned:
        _, cube_form_factor = formfactor_functions()
        p = np.asarray(cube_form_factor(qs, edge_nm, polydispersity), float)
    norm = (2.0 * math.pi) ** 3 / _cell_volume(lattice, a_nm) / _CELL_SITES.get(lattice, 1)
    # (2 pi)^3 / V_cell with the basis factor |F_b|^2/n_b = n_b per allowed G: per site.
    w = np.empty(len(shells))
    for i, sh in enumerate(shells):
        if aligned:
            f2 = oriented_intensity(sh.g * (2.0 * math.pi / a_nm), edge_nm, polydispersity)
            tot = float(np.sum(sh.basis * f2)) / max(float(p[i]), 1e-300)
        else:
            tot = float(np.sum(sh.basis))
        w[i] = norm * tot / (4.0 * math.pi * qs[i] ** 2)
    return qs, w, [sh.hkl for sh in shells]


def bragg_structure_factor(
    q_nm,
    lattice: str = "SC",
    a_nm: float = 11.4,
    coherence_nm: float = 166.0,
    edge_nm: float | None = 9.5,
    aligned: bool | None = True,
    shape: str = "lorentz",
    eta: float = 0.5,
    amplitude: float = 1.0,
    disorder_g: float = 0.0,
    instrument_fwhm_inv_nm: float = 0.0,
    qmax_hkl: float | None = None,
    K: float = 1.0,
    polydispersity: float = 0.0,
) -> np.ndarray:
    """Effective structure factor S_eff(q) of a powder of supraparticles (model in the module docstring).

    Parameters
    ----------
    q_nm : q grid (nm^-1).
    lattice : "SC", "BCC", "FCC", "HCP", "hex2d" or "lamellar".
    a_nm : lattice parameter (nm).
    coherence_nm : coherence length L (nm): size FWHM 2 pi K / L.
    edge_nm : cube edge (nm), or None for point particles.
    aligned : cubes aligned with the lattice axes (True, the paper's case); None decides
        by geometry (SC a >= e; BCC, FCC a >= 2e); False: orientation average.
    shape : sample profile "lorentz" (default), "gauss" or "pvoigt" (mixing ``eta``).
    amplitude : crystalline fraction scale (1 = fully crystalline).
    disorder_g : paracrystal g = sigma_d / a; FWHM grows by (pi/2) g^2 a q^2.
    instrument_fwhm_inv_nm : Gaussian instrumental FWHM (nm^-1), convolved exactly.
    qmax_hkl : include rings up to this q (default: the grid's maximum + 10 widths).
    K : Scherrer constant of the size width.
    polydispersity : relative edge spread; |F(G)|^2 and P are size-averaged (V^2 weights)
        as in I_SP / I_dilute.

    Example
    -------
    >>> q = np.linspace(0.3, 1.5, 1000)
    >>> s = bragg_structure_factor(q)            # the paper's SC, a = 11.4 nm, L = 166 nm
    >>> round(float(q[np.argmax(np.where(q < 0.65, s, 0))]), 2)   # the (100) ring
    0.55
    """
    q = np.asarray(q_nm, dtype=float)
    if shape not in ("lorentz", "gauss", "pvoigt"):
        raise ParameterError(f"profile shape {shape!r}: use lorentz, gauss or pvoigt")
    if not (coherence_nm > 0):
        raise ParameterError(f"coherence length {coherence_nm!r} nm: must be positive")
    if instrument_fwhm_inv_nm < 0 or disorder_g < 0:
        raise ParameterError("instrument FWHM and disorder g must be >= 0")
    w_size = 2.0 * math.pi * K / coherence_nm
    qtop = (
        qmax_hkl
        if qmax_hkl is not None
        else float(np.max(q)) + 10.0 * (w_size + instrument_fwhm_inv_nm)
    )
    qs, ws, _ = ring_weights(lattice, a_nm, qtop, edge_nm, aligned, polydispersity)
    s = np.ones_like(q)
    wi = float(instrument_fwhm_inv_nm)
    for qr, wr in zip(qs, ws):
        fw = w_size + 0.5 * math.pi * disorder_g**2 * a_nm * qr * qr
        x = q - qr
        if shape == "gauss":
            prof = gauss_profile(x, math.hypot(fw, wi))
        elif shape == "lorentz":
            prof = voigt_profile(x, wi, fw) if wi > 0 else lorentz_profile(x, fw)
        else:
            lor = voigt_profile(x, wi, fw) if wi > 0 else lorentz_profile(x, fw)
            prof = eta * lor + (1.0 - eta) * gauss_profile(x, math.hypot(fw, wi))
        s += amplitude * wr * prof
    return s


def sc_supraparticle_intensity(q_nm, edge_nm: float = 9.5, **kw) -> np.ndarray:
    """I(q) (relative to the dilute form factor at q = 0) of aligned-cube supraparticles:
    P(q) x S_eff(q), with P the orientation-averaged cube form factor."""
    _, cube_form_factor = formfactor_functions()
    q = np.asarray(q_nm, float)
    p = np.asarray(cube_form_factor(q, edge_nm, kw.get("polydispersity", 0.0)), float)
    return p * bragg_structure_factor(q, edge_nm=edge_nm, **kw)
