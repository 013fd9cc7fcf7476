"""Instrumental resolution from the calibrant: the width of its lowest ring.

The lowest ring of a calibrant with large crystallites is as narrow as the instrument
lets it be (beam size, pixel size over distance, wavelength spread): its FWHM in q is the
instrument's Gaussian width. Where the calibrant's crystallite size L is known, its own
Scherrer width 2 pi K / L (K = 0.9, FWHM) is removed in quadrature (both Gaussian;
SCIENCE.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import FitError

SCHERRER_K = 0.9


@dataclass(frozen=True)
class Resolution:
    """Width of the lowest calibrant ring, and the instrument's after removing the crystallites'."""

    ring: int
    d_nm: float
    q_inv_nm: float
    fwhm_observed_inv_nm: float
    fwhm_observed_err_inv_nm: float
    crystallite_nm: float | None
    fwhm_size_inv_nm: float
    instrument_fwhm_inv_nm: float
    calibrant: str

    def describe(self) -> str:
        size = (
            f"crystallite size {self.crystallite_nm:g} nm removed in quadrature (K = {SCHERRER_K})"
            if self.crystallite_nm
            else "crystallite size unknown, taken as large"
        )
        return (
            f"FWHM of the {self.calibrant} ring d = {self.d_nm:.5g} nm at q = {self.q_inv_nm:.5g} nm^-1 "
            f"(Gaussian fit, {self.fwhm_observed_inv_nm:.4g} nm^-1 observed; {size})"
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "ring": self.ring,
            "d_nm": self.d_nm,
            "q_inv_nm": self.q_inv_nm,
            "fwhm_observed_inv_nm": self.fwhm_observed_inv_nm,
            "fwhm_observed_err_inv_nm": self.fwhm_observed_err_inv_nm,
            "crystallite_nm": self.crystallite_nm,
            "fwhm_size_inv_nm": self.fwhm_size_inv_nm,
            "instrument_fwhm_inv_nm": self.instrument_fwhm_inv_nm,
            "convention": "Gaussian FWHM in q",
            "source": self.describe(),
        }


def instrument_resolution(
    data: np.ndarray,
    mask: np.ndarray,
    geometry,
    calibrant,
    crystallite_nm: float | None = None,
    npt: int | None = None,
) -> Resolution:
    """Fit the lowest calibrant ring seen on the detector with a Gaussian on a line (lmfit).

    ``geometry`` is the refined :class:`~saxsred.geometry.Geometry`; ``calibrant`` a pyFAI
    calibrant at its wavelength. The curve is integrated with pyFAI (q in nm^-1, no
    polarisation: a width does not need it) at about one bin per pixel.
    """
    from lmfit.models import GaussianModel, LinearModel

    ai = geometry.with_shape(data.shape).integrator()
    q_map = ai.qArray(data.shape)
    valid = ~np.asarray(mask, bool)
    qmin, qmax = float(q_map[valid].min()), float(q_map[valid].max())
    lam_nm = geometry.wavelength_m * 1e9
    q_lines = [
        (k, 4 * np.pi * np.sin(t / 2) / lam_nm)
        for k, t in enumerate(calibrant.get_2th())
        if t is not None
    ]
    d_ang = list(calibrant.dspacing)
    for k, q0 in q_lines:
        if not (qmin < q0 < qmax):
            continue
        nxt = [q for j, q in q_lines if q > q0 * (1 + 1e-6)]
        prv = [q for j, q in q_lines if q < q0 * (1 - 1e-6)]
        half = 0.4 * min([(nxt[0] - q0) if nxt else q0, (q0 - prv[-1]) if prv else q0, 0.2 * q0])
        r_px = (
            geometry.dist_m * np.tan(2 * np.arcsin(q0 * lam_nm / (4 * np.pi))) / geometry.pixel1_m
        )
        n = npt or int(max(2000, 2 * np.hypot(*data.shape)))
        res = ai.integrate1d(
            np.asarray(data, dtype=np.float32),
            n,
            unit="q_nm^-1",
            mask=mask.astype(np.int8),
            radial_range=(max(q0 - half, qmin), min(q0 + half, qmax)),
            correctSolidAngle=True,
            method=("no", "histogram", "cython"),
        )
        q, i = np.asarray(res.radial), np.asarray(res.intensity)
        ok = np.isfinite(i) & (i != 0)
        if ok.sum() < 12 or r_px < 3:
            continue
        q, i = q[ok], i[ok]
        model = GaussianModel() + LinearModel()
        pars = model.make_params(
            center=q0,
            sigma=max(half / 8, (q[1] - q[0])),
            amplitude=max(float(np.ptp(i)), 1e-12) * half / 4,
            slope=0.0,
            intercept=float(np.median(i)),
        )
        pars["center"].set(min=q0 - half / 2, max=q0 + half / 2)
        pars["sigma"].set(min=(q[1] - q[0]) / 4, max=half)
        fit = model.fit(i, pars, x=q)
        height = fit.params["height"].value
        noise = float(np.std(fit.residual)) if fit.residual.size else np.inf
        if not (fit.success and height > 5 * noise and height > 0):
            continue
        fw = float(fit.params["fwhm"].value)
        fw_err = float(fit.params["fwhm"].stderr or np.nan)
        size_w = 2 * np.pi * SCHERRER_K / crystallite_nm if crystallite_nm else 0.0
        inst = float(np.sqrt(max(fw**2 - size_w**2, 0.0)))
        return Resolution(
            int(k),
            float(d_ang[k] / 10),
            float(fit.params["center"].value),
            fw,
            fw_err,
            crystallite_nm,
            float(size_w),
            inst,
            calibrant.name,
        )
    raise FitError(f"no {calibrant.name} ring on the detector could be fitted for its width")
