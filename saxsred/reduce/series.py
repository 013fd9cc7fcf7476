"""Series of curves: average (outlier frames rejected), subtract a background, scale to
absolute units (water), merge SAXS with WAXS."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .. import provenance as prov_mod
from ..curve import Curve, check_same_x_unit, require_q_nm
from ..errors import InputError, ParameterError

#: Absolute differential scattering cross-section of water at 20 C (cm^-1),
#: Orthaber, Bergmann & Glatter, J. Appl. Cryst. 33 (2000) 218.
WATER_DSIGMA_20C = 0.01632


@dataclass(frozen=True)
class FrameVerdict:
    """Outlier test of one frame of a series against the median of the others.

    ``tested`` is False when no test was possible (fewer than 3 frames: the median of two
    is their mean, which no frame can differ from alone; or rejection switched off);
    ``chi2_red`` and ``p_value`` are then NaN and ``note`` says why.
    """

    name: str
    chi2_red: float
    p_value: float
    kept: bool
    tested: bool = True
    note: str = ""

    def describe(self) -> str:
        """One line for the user: the test's result, or why there was none."""
        if not self.tested:
            return f"{self.name}: not tested ({self.note}): kept"
        return f"{self.name}: chi2_red = {self.chi2_red:.3f}, p = {self.p_value:.3g}: {'kept' if self.kept else 'REJECTED'}"


def chi2_sf(chi2: float, dof: int) -> float:
    """P(X >= chi2) for chi-square with ``dof`` degrees of freedom (scipy, imported here:
    scipy.stats costs ~1 s of start-up that a command reducing frames never needs)."""
    from scipy.special import chdtrc

    return float(chdtrc(dof, chi2))


def series_name(names: Sequence[str], suffix: str = "average") -> str:
    """The name of a curve made from a series: the names' common stem without the frame
    numbers (``sp_001, sp_002`` -> ``sp_average``; ``run_0000 .. run_0009`` -> ``run_average``)."""
    stems = [re.sub(r"[_\-.]?\d+$", "", n) or n for n in names]
    if len(set(stems)) == 1:
        stem = stems[0]
    else:
        stem = os.path.commonprefix(list(names)).rstrip("_-.0123456789")
    return f"{stem}_{suffix}" if stem else suffix


@dataclass(frozen=True)
class AverageResult:
    """Averaged curve of a series plus the per-frame verdicts."""

    curve: Curve
    verdicts: tuple[FrameVerdict, ...]

    @property
    def rejected(self) -> list[str]:
        return [v.name for v in self.verdicts if not v.kept]


def _common_grid(curves: Sequence[Curve], what: str) -> tuple[np.ndarray, list[Curve]]:
    """The q points shared by all curves (bins left empty by a frame's own invalid pixels
    drop out); curves on different binnings are an error."""
    q0 = curves[0].q_nm
    same = all(c.q_nm.shape == q0.shape and np.array_equal(c.q_nm, q0) for c in curves[1:])
    if same:
        return q0, list(curves)
    common = q0
    for c in curves[1:]:
        common = np.intersect1d(common, c.q_nm)
    if common.size < 0.9 * min(len(c) for c in curves):
        raise InputError(
            f"{what}: curves {curves[0].name!r} and {curves[-1].name!r} have different q grids; "
            "reduce them with the same geometry and --npt"
        )
    out = []
    for c in curves:
        k = np.isin(c.q_nm, common)
        out.append(replace(c, q_nm=c.q_nm[k], intensity=c.intensity[k], sigma=c.sigma[k]))
    return common, out


def average_curves(
    curves: Sequence[Curve], alpha: float = 1e-3, reject: bool = True, name: str | None = None
) -> AverageResult:
    """Average repeated curves of one sample, rejecting outlier frames.

    Each frame is compared to the median of the series with a chi-square test over all q
    bins, chi2 = sum((I_k - I_med)^2 / (sigma_k^2 + sigma_med^2)); a frame whose p-value
    is below ``alpha`` is rejected (beam damage, bubbles). The median is robust against the
    outliers themselves. The kept frames are averaged with equal weights (same exposure):
    I = mean, sigma = sqrt(sum sigma_k^2) / n.
    """
    if len(curves) == 0:
        raise InputError("average: no curves given")
    check_same_x_unit(curves, "average")
    q, curves = _common_grid(curves, "average")
    i = np.vstack([c.intensity for c in curves])
    s = np.vstack([c.sigma for c in curves])
    n = len(curves)
    verdicts = []
    keep = np.ones(n, dtype=bool)
    if reject and n >= 3:
        med = np.median(i, axis=0)
        # sigma of the median ~ 1.2533 sigma/sqrt(n) for Gaussian noise
        s_med = 1.2533 * np.sqrt(np.mean(s**2, axis=0) / n)
        for k in range(n):
            var = s[k] ** 2 + s_med**2
            ok = var > 0
            chi2 = float(np.sum((i[k, ok] - med[ok]) ** 2 / var[ok]))
            dof = int(ok.sum())
            p = float(chi2_sf(chi2, dof)) if dof else 1.0
            keep[k] = p >= alpha
            verdicts.append(FrameVerdict(curves[k].name, chi2 / max(dof, 1), p, bool(keep[k])))
        if not keep.any():
            raise InputError(
                "average: every frame failed the outlier test; the series is not stationary "
                "(check for beam damage) or the error bars are underestimated"
            )
    else:
        why = "outlier rejection off" if not reject else f"{n} frame(s): the test needs at least 3"
        verdicts = [
            FrameVerdict(c.name, float("nan"), float("nan"), True, False, why) for c in curves
        ]
    m = int(keep.sum())
    mean = i[keep].mean(axis=0)
    sig = np.sqrt(np.sum(s[keep] ** 2, axis=0)) / m
    prov = prov_mod.extend(
        curves[0].provenance,
        "average",
        frames=[c.name for c in curves],
        rejected=[v.name for v in verdicts if not v.kept],
        alpha=alpha,
        test="chi2 against series median",
    )
    out = Curve(
        q,
        mean,
        sig,
        unit=curves[0].unit,
        name=name or series_name([c.name for c in curves]),
        provenance=prov,
        x_unit=curves[0].x_unit,
        wavelength_nm=curves[0].wavelength_nm,
    )
    return AverageResult(out, tuple(verdicts))


def subtract_background(sample: Curve, background: Curve, factor: float = 1.0) -> Curve:
    """I_sample - factor * I_background (both already normalised by their own monitor and
    transmission), errors in quadrature. The background is interpolated onto the sample
    grid when the grids differ; q outside the background's range is an error."""
    if factor < 0 or not math.isfinite(factor):
        raise ParameterError(f"background factor {factor} must be >= 0")
    check_same_x_unit([sample, background], "subtract")
    if sample.unit != background.unit:
        raise InputError(
            f"subtract: {sample.name!r} is in {sample.unit} but background {background.name!r} in "
            f"{background.unit}; reduce both with the same options"
        )
    if sample.q_nm.shape == background.q_nm.shape and np.allclose(
        sample.q_nm, background.q_nm, rtol=1e-9
    ):
        bi, bs = background.intensity, background.sigma
        q, si, ss = sample.q_nm, sample.intensity, sample.sigma
    else:
        lo = max(sample.q_nm[0], background.q_nm[0])
        hi = min(sample.q_nm[-1], background.q_nm[-1])
        sel = (sample.q_nm >= lo) & (sample.q_nm <= hi)
        if sel.sum() < 2:
            raise InputError(
                f"subtract: background {background.name!r} does not cover the q range of {sample.name!r}"
            )
        q, si, ss = sample.q_nm[sel], sample.intensity[sel], sample.sigma[sel]
        bi = np.interp(q, background.q_nm, background.intensity)
        bs = np.interp(q, background.q_nm, background.sigma)
    prov = prov_mod.extend(
        sample.provenance,
        "subtract",
        background=background.name,
        background_inputs=background.provenance.get("steps", [{}])[0].get("inputs"),
        factor=factor,
    )
    return Curve(
        q,
        si - factor * bi,
        np.hypot(ss, factor * bs),
        unit=sample.unit,
        name=sample.name,
        provenance=prov,
        x_unit=sample.x_unit,
        wavelength_nm=sample.wavelength_nm,
    )


@dataclass(frozen=True)
class WaterCalibration:
    """Absolute scale factor from a water measurement."""

    factor: float
    factor_err: float
    water_level: float
    water_level_err: float
    q_range_nm: tuple[float, float]
    reference_cm: float


def water_scale_factor(
    water: Curve,
    empty: Curve | None = None,
    q_range_nm: tuple[float, float] = (0.5, 2.0),
    reference_cm: float = WATER_DSIGMA_20C,
) -> WaterCalibration:
    """K such that K x (water - empty capillary) = 0.01632 cm^-1 (water at 20 C).

    Both curves must be normalised per unit thickness (reduce them with the water's
    thickness). The flat level is the weighted mean over ``q_range_nm`` where water is
    q-independent; K's error comes from that mean.
    """
    net = subtract_background(water, empty) if empty is not None else water
    sel = (net.q_nm >= q_range_nm[0]) & (net.q_nm <= q_range_nm[1]) & (net.sigma > 0)
    if sel.sum() < 3:
        raise InputError(
            f"water calibration: fewer than 3 points in q {q_range_nm} nm^-1; widen the range"
        )
    w = 1.0 / net.sigma[sel] ** 2
    level = float(np.sum(w * net.intensity[sel]) / np.sum(w))
    level_err = float(np.sqrt(1.0 / np.sum(w)))
    if level <= 0:
        raise InputError(
            f"water calibration: water signal {level:.3g} is not positive after background subtraction; "
            "check the empty-capillary curve and the transmissions"
        )
    k = reference_cm / level
    return WaterCalibration(k, k * level_err / level, level, level_err, q_range_nm, reference_cm)


def scale_curve(curve: Curve, factor: float, factor_err: float = 0.0, unit: str = "cm^-1") -> Curve:
    """Apply an absolute scale factor (error propagated), recording it in provenance."""
    if not (factor > 0 and math.isfinite(factor)):
        raise ParameterError(f"scale factor {factor} must be positive")
    out = curve.scaled(factor, factor_err, unit=unit)
    return replace(
        out,
        provenance=prov_mod.extend(curve.provenance, "scale", factor=factor, factor_err=factor_err),
    )


@dataclass(frozen=True)
class MergeResult:
    """A merged SAXS+WAXS curve and the factor applied to the WAXS curve."""

    curve: Curve
    factor: float
    factor_err: float
    overlap_nm: tuple[float, float]


def merge_curves(
    saxs: Curve, waxs: Curve, overlap_nm: tuple[float, float] | None = None, scale_waxs: bool = True
) -> MergeResult:
    """Merge a SAXS and a WAXS curve over their overlap.

    The WAXS curve is scaled onto the SAXS one by the weighted least-squares factor over the
    overlap (SAXS interpolated on the WAXS points; the factor's error from that fit); below
    the overlap midpoint the SAXS points are kept, above it the scaled WAXS points.
    Both curves are brought to q in nm^-1 first (:func:`~saxsred.curve.require_q_nm`).
    """
    saxs, waxs = require_q_nm(saxs, "merge (SAXS)"), require_q_nm(waxs, "merge (WAXS)")
    lo = max(saxs.q_nm[0], waxs.q_nm[0])
    hi = min(saxs.q_nm[-1], waxs.q_nm[-1])
    if overlap_nm is not None:
        lo, hi = max(lo, overlap_nm[0]), min(hi, overlap_nm[1])
    sel = (waxs.q_nm >= lo) & (waxs.q_nm <= hi)
    if hi <= lo or sel.sum() < 3:
        raise InputError(
            f"merge: {saxs.name!r} ({saxs.q_nm[0]:.3g}-{saxs.q_nm[-1]:.3g} nm^-1) and {waxs.name!r} "
            f"({waxs.q_nm[0]:.3g}-{waxs.q_nm[-1]:.3g} nm^-1) overlap in fewer than 3 points"
        )
    s_i = np.interp(waxs.q_nm[sel], saxs.q_nm, saxs.intensity)
    s_s = np.interp(waxs.q_nm[sel], saxs.q_nm, saxs.sigma)
    w_i, w_s = waxs.intensity[sel], waxs.sigma[sel]
    if scale_waxs:
        # minimise sum (s - k w)^2 / (sigma_s^2 + k^2 sigma_w^2), one fixed-point pass from k0
        k = float(np.sum(s_i * w_i) / np.sum(w_i * w_i))
        for _ in range(5):
            var = s_s**2 + (k * w_s) ** 2
            var = np.where(var > 0, var, np.median(var[var > 0]) if np.any(var > 0) else 1.0)
            k = float(np.sum(s_i * w_i / var) / np.sum(w_i * w_i / var))
        k_err = float(1.0 / np.sqrt(np.sum(w_i * w_i / var)))
    else:
        k, k_err = 1.0, 0.0
    mid = 0.5 * (lo + hi)
    a = saxs.q_nm < mid
    b = waxs.q_nm >= mid
    wx = waxs.scaled(k, k_err)
    q = np.concatenate([saxs.q_nm[a], wx.q_nm[b]])
    i = np.concatenate([saxs.intensity[a], wx.intensity[b]])
    s = np.concatenate([saxs.sigma[a], wx.sigma[b]])
    prov = prov_mod.extend(
        saxs.provenance, "merge", waxs=waxs.name, factor=k, factor_err=k_err, overlap_nm=[lo, hi]
    )
    return MergeResult(
        Curve(q, i, s, unit=saxs.unit, name=f"{saxs.name}_merged", provenance=prov),
        k,
        k_err,
        (lo, hi),
    )
