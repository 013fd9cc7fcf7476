"""The effective structure factor S_eff(q) of a supraparticle sample (SCIENCE.md section 3).

S_eff(q) = [I_SP(q) / c_SP] / [I_dilute(q) / c_dil], with the measured dilute curve or the
fitted form factor in its place; the concentration ratio is given or fitted so that
S_eff -> 1 at high q. Points where the dilute signal is too weak or the form factor has a
sharp minimum are flagged. Errors are propagated from both inputs; where an input carries
no error information the S_eff errors are estimated from its own scatter and said so,
never written as zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import provenance as prov_mod
from ..curve import Curve, require_q_nm
from ..errors import FitError, InputError, ParameterError
from .result import FormFactorFit


@dataclass(frozen=True)
class StructureFactor:
    """S_eff(q) = [I_sample / c_sample] / [I_dilute / c_dilute] with its errors.

    ``flagged`` marks points not to be trusted: the dilute signal is too weak (relative
    error above the limit, or not positive) or the form factor is near a sharp minimum
    (curvature of ln I_dilute in ln q above the limit). ``concentration_ratio`` is
    c_sample / c_dilute (fitted so that S_eff -> 1 at high q when
    ``concentration_ratio_fitted``); its error is a common scale error of all points and
    is not included in ``sigma``. ``sigma_method`` says where ``sigma`` comes from:
    propagated from both inputs' errors (each measured, estimated by the reader, or the
    fit covariance), or estimated from S_eff's own scatter when an input has none.
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
    sigma_method: str = "propagated"

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


def interp_curve(q_target: np.ndarray, curve: Curve) -> tuple[np.ndarray, np.ndarray]:
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


def log_curvature(q: np.ndarray, i: np.ndarray, smooth: bool) -> np.ndarray:
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
    sample = require_q_nm(sample, f"S_eff sample {sample.name!r}")
    if not isinstance(dilute, FormFactorFit):
        dilute = require_q_nm(dilute, f"S_eff dilute {dilute.name!r}")
    q = sample.q_nm
    name_s = sample.name or "sample"
    sources = {"sample": sigma_source(sample), "dilute": sigma_source(dilute)}
    if isinstance(dilute, FormFactorFit):
        name_d = "form-factor fit"
        lo, hi = q.min(), q.max()
        qs = q[q > 0] if q.min() <= 0 else q
        idil = dilute.model_curve(qs, include_background=False)
        sdil = dilute.model_sigma(qs)
        curv = log_curvature(qs, idil, smooth=False)
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
        idil, sdil = interp_curve(qs, dilute)
        curv = log_curvature(dilute.q_nm, dilute.intensity, smooth=True)
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
        r, r_err = ratio_high_q(isam[sel], ssam[sel], idil[sel], sdil[sel], qs[sel])
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
    no_sigma = [k for k, v in sources.items() if v == "none"]
    if no_sigma:
        # Zeros are not errors: with an input that carries none, the propagated sigma
        # would be too small (or zero). Estimate it from S_eff's own scatter instead.
        sig, desc = scatter_sigma(qs, s, flagged)
        sigma_method = f"estimated: {' and '.join(no_sigma)} without sigma, so {desc}"
    else:
        # Say which errors were measured and which the reader estimated from scatter.
        sigma_method = (
            f"propagated from the errors of the sample ({sources['sample']}) "
            f"and the dilute ({sources['dilute']})"
        )
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
        sigma_sources=sources,
        sigma_method=sigma_method,
    )
    return StructureFactor(
        qs,
        s,
        sig,
        flagged,
        r,
        fitted,
        r_err,
        name=f"s_eff_{name_s}",
        provenance=prov,
        sigma_method=sigma_method,
    )


def sigma_source(data: Curve | FormFactorFit) -> str:
    """Where an input's errors come from: ``"measured"``, ``"estimated"`` (by the reader,
    from the data's scatter), ``"fit covariance"`` or ``"none"`` (all zero: no errors)."""
    if isinstance(data, FormFactorFit):
        # An unweighted fit's covariance assumes sigma = |I|: no error information.
        known = data.covariance is not None and data.free_params and data.weighted
        return "fit covariance" if known else "none"
    if not np.any(data.sigma > 0):
        return "none"
    return "estimated" if data.provenance.get("sigma_missing") else "measured"


def scatter_sigma(q: np.ndarray, s: np.ndarray, flagged: np.ndarray) -> tuple[np.ndarray, str]:
    """Standard deviations of S_eff from its own point-to-point scatter over the unflagged
    points (:func:`saxsred.io.curves.estimate_sigma`), interpolated onto flagged ones."""
    from ..io.curves import estimate_sigma

    keep = ~flagged & np.isfinite(s)
    est, desc = estimate_sigma(s[keep])
    out = np.interp(q, q[keep], est)
    return out, desc


def ratio_high_q(i_s, s_s, i_d, s_d, q) -> tuple[float, float]:
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
