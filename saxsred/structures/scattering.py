"""Scattering curves of a configuration: I(q), S_eff(q) = I / (N <P>), S(q) of the centres.

- ``kind="intensity"``: I(q) with F(0) = 1 (I(0) = N^2), by the exact oriented-cube powder
  average (:mod:`.oriented`, ``method="exact"``) or by the decoupling approximation
  (``method="decoupling"``) I = N [<P> + |<F>|^2 (S - 1)], S from the Debye histogram
  (:mod:`.debye`) and <F>, <P> orientation averages of one cube. Decoupling is exact in
  expectation only for orientations uncorrelated with positions; for cubes aligned with
  their lattice it misses the oriented weights |F(G)|^2 of each reflection: on a perfect
  12^3 SC block of 9.5 nm cubes at a = 11.4 nm it keeps the (111) line that the exact
  average suppresses (the (111)/(100) area ratio comes out more than 5x too high;
  tests/test_structures.py prints both). Its cost is the Debye histogram's.
- ``kind="effective"``: I / (N <P>), what a measured curve divided by its dilute curve gives.
- ``kind="structure"``: S(q) of the centres alone (Debye).
- ``resolution_fwhm_nm``: Gaussian smearing in q (FWHM), renormalised over the grid at its ends.

The sigma column of a model curve is its numerical accuracy, never zero: the stated
histogram error (q dr)^2/24 of the Debye route times the sum of |terms|, 1e-9 relative
for the exact quadrature; a peak stage reading it as noise sees a noise-free curve.
"""

from __future__ import annotations

import math

import numpy as np

from ..curve import Curve
from ..errors import ParameterError
from ..provenance import array_checksum, extend
from .build import Supraparticle
from .debye import debye_intensity_with_error
from .kinds import KINDS, METHODS
from .oriented import orientation_averaged_amplitude, oriented_intensity


def smear(q_nm, intensity, fwhm_nm: float) -> np.ndarray:
    """Gaussian resolution smearing (FWHM in nm^-1) of a curve on its own grid."""
    q = np.asarray(q_nm, float)
    y = np.asarray(intensity, float)
    if fwhm_nm <= 0:
        return y.copy()
    s = fwhm_nm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    dq = np.gradient(q) if q.size > 1 else np.ones(1)
    g = np.exp(-0.5 * ((q[:, None] - q[None, :]) / s) ** 2) * dq[None, :]
    return (g @ y) / g.sum(axis=1)


def cube_form_factor_average(q_nm, edge_nm: float) -> np.ndarray:
    """<P>(q) of one cube over orientations, P(0) = 1 (the form-factor stage's table)."""
    from ..formfactor import cube_form_factor

    return np.asarray(cube_form_factor(np.asarray(q_nm, float), edge_nm), float)


def scatter(
    sp: Supraparticle,
    q_nm,
    kind: str = "intensity",
    method: str = "exact",
    resolution_fwhm_nm: float = 0.0,
    bin_nm: float | None = None,
    name: str = "",
) -> Curve:
    """The scattering curve of a configuration as a :class:`~saxsred.curve.Curve` (module docstring).

    Example
    -------
    >>> from saxsred.structures import build_supraparticle
    >>> sp = build_supraparticle("SC", 11.4, 9.5, (4, 4, 4))
    >>> cv = scatter(sp, np.linspace(0.2, 1.0, 50), kind="structure")
    >>> round(float(cv.q_nm[np.argmax(cv.intensity)]), 2)      # near 2 pi / 11.4
    0.54
    """
    if kind not in KINDS:
        raise ParameterError(f"kind {kind!r}: use one of {KINDS}")
    if method not in METHODS:
        raise ParameterError(f"method {method!r}: use one of {METHODS}")
    if resolution_fwhm_nm < 0:
        raise ParameterError(f"resolution FWHM {resolution_fwhm_nm!r} nm^-1: must be >= 0")
    q = np.asarray(q_nm, float).ravel()
    if q.size < 2 or np.any(np.diff(q) <= 0) or q[0] < 0:
        raise ParameterError("q grid: at least 2 increasing values >= 0")
    n = sp.n
    if kind == "structure" or method == "decoupling":
        i_debye, e_debye = debye_intensity_with_error(sp.positions_nm, q, bin_nm)
        s = i_debye / n
    if kind == "structure":
        y = s
        err = e_debye / n
        unit = "S(q)"
    else:
        p = cube_form_factor_average(q, sp.edge_nm)
        if method == "exact":
            iq = oriented_intensity(sp, q)
            err = 1e-9 * np.abs(iq) + 1e-12 * n * n
        else:
            f = orientation_averaged_amplitude(q, sp.edge_nm)
            iq = n * (p + f * f * (s - 1.0))
            err = n * f * f * e_debye / n
        if kind == "intensity":
            y, unit = iq, "arb"
        else:
            y, unit = iq / (n * p), "S_eff"
            err = err / (n * p)
    if resolution_fwhm_nm > 0:
        y = smear(q, y, resolution_fwhm_nm)
    prov = extend(
        sp.provenance,
        "model scatter",
        kind=kind,
        method=method,
        resolution_fwhm_inv_nm=float(resolution_fwhm_nm),
        histogram_bin_nm=None if bin_nm is None else float(bin_nm),
        q_min_inv_nm=float(q[0]),
        q_max_inv_nm=float(q[-1]),
        npt=int(q.size),
        cubes=int(n),
        configuration_checksum=array_checksum(np.ascontiguousarray(sp.positions_nm)),
        normalisation="F(0) = 1: I(0) = N^2"
        if kind == "intensity"
        else ("I / (N <P>)" if kind == "effective" else "I_centres / N"),
    )
    return Curve(
        q,
        y,
        np.maximum(err, 1e-300),
        unit=unit if unit == "arb" else "arb",
        name=name or kind,
        provenance=prov,
    )
