"""Free-peak global fit: every peak its own centre and width, one shape for all, the
shape chosen by BIC; lmfit with analytic Jacobians and error bars taken as known."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..curve import Curve
from ..errors import FitError, ParameterError
from .find import FoundPeaks, find_peaks, matched_filter, poly_coordinate, ricker_kernel
from .profiles import (
    SHAPES,
    peak_sum,
    profile_derivatives,
    pvoigt_components,
    pvoigt_profile,
    voigt_fwhm,
)


@dataclass(frozen=True)
class Peak:
    """One fitted peak: centre, FWHM, area (integrated over q) with standard errors."""

    q_nm: float
    q_err_nm: float
    fwhm_inv_nm: float
    fwhm_err_inv_nm: float
    area: float
    area_err: float
    hkl: tuple[int, int, int] | None = None
    fwhm_g_inv_nm: float | None = None  # Gaussian part (Voigt)
    fwhm_l_inv_nm: float | None = None  # Lorentzian part (Voigt)


@dataclass(frozen=True)
class PeakFit:
    """Free-peak global fit: every peak its own centre and width, one shape for all.

    ``shape`` was chosen by BIC among ``bic`` (shape -> BIC = chi^2 + k ln n); ``eta`` is
    the shared pseudo-Voigt mixing, ``fwhm_g_inv_nm`` the shared Voigt Gaussian FWHM.
    """

    peaks: tuple[Peak, ...]
    shape: str
    eta: float | None
    fwhm_g_inv_nm: float | None
    bic: dict[str, float]
    chi2_red: float
    q_nm: np.ndarray
    data: np.ndarray
    sigma: np.ndarray
    model: np.ndarray
    baseline: np.ndarray
    nfev: int = 0
    not_fitted: dict[str, str] = field(default_factory=dict)  # shape -> why its fit was not needed


def _own_covariance(res, jac) -> None:
    """Covariance (J^T J)^-1 of the varying parameters at the solution, J the analytic
    Jacobian of the residual (model - y)/sigma in the parameters' own units; the error bars
    are taken as known (not scaled by chi^2). Also right for a parameter that ends on a
    bound (an absent ring's area at 0), where lmfit's bounded-parameter transform makes
    its covariance singular."""
    names = [k for k, p in res.params.items() if p.vary]
    J = np.asarray(jac(res.params), float)
    jtj = J.T @ J
    try:
        cov = np.linalg.inv(jtj)
        if not np.all(np.isfinite(cov)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(jtj)
    res.covar = cov
    res.var_names = names
    for i, k in enumerate(names):
        v = cov[i, i]
        res.params[k].stderr = float(math.sqrt(v)) if v > 0 else float("nan")


MAX_NFEV_BASE = 100
MAX_NFEV_PER_PARAM = 4


def minimize_known_errors(resid, params, where: str, jac=None):
    import lmfit

    kws = {} if jac is None else {"Dfun": jac}
    # With the analytic Jacobian the covariance is ours (one Jacobian and a small inverse)
    # instead of lmfit's, which needs an extra fit when a parameter ends on its bound.
    kws["calc_covar"] = jac is None
    # Bounded cost: a fit that has not converged in this many evaluations will not (MINPACK's
    # default allows 2000 per parameter); its result is used as it stands.
    nvar = sum(1 for p in params.values() if p.vary)
    kws["max_nfev"] = MAX_NFEV_BASE + MAX_NFEV_PER_PARAM * nvar
    try:
        res = lmfit.minimize(
            resid, params, method="leastsq", scale_covar=False, nan_policy="raise", **kws
        )
        if jac is not None:
            _own_covariance(res, jac)
        elif res.covar is None:
            # A parameter sitting on its bound (an absent ring's area at 0) makes the
            # covariance singular: fix those at the bound and refit from the solution.
            p2 = res.params.copy()
            fixed = 0
            for par in p2.values():
                if par.vary and (
                    (
                        np.isfinite(par.min)
                        and par.value - par.min <= 1e-9 * max(1.0, abs(par.min)) + 1e-12
                    )
                    or (
                        np.isfinite(par.max)
                        and par.max - par.value <= 1e-9 * max(1.0, abs(par.max))
                    )
                ):
                    par.vary = False
                    fixed += 1
            if fixed:
                nfev = res.nfev
                res = lmfit.minimize(
                    resid, p2, method="leastsq", scale_covar=False, nan_policy="raise", **kws
                )
                res.nfev += nfev
    except ValueError as exc:
        raise FitError(
            f"{where}: the fit produced NaN ({exc}); check the data range and error bars"
        ) from None
    return res


def scaled_stderr(p, redchi: float) -> float:
    # Known error bars: the covariance as is, inflated by sqrt(chi2_red) when the model
    # does not describe the data within them (never deflated).
    e = p.stderr
    if e is None or not np.isfinite(e):
        return float("nan")
    return float(e) * math.sqrt(max(redchi, 1.0))


def _fit_shape(
    q, y, sig, base, t, shape, c0, a0, w0, eta0=0.5, wg0=None, wmax=None, start=None, wg_fixed=False
):
    import lmfit

    n = len(c0)
    span = q[-1] - q[0]
    dq = span / (q.size - 1)
    wmax = wmax or 0.12 * span
    pars = lmfit.Parameters()
    pars.add("b0", value=1.0)
    pars.add("b1", value=0.0)
    pars.add("b2", value=0.0)
    for i in range(n):
        pars.add(
            f"c{i}", value=c0[i], min=c0[i] - max(w0[i], 2 * dq), max=c0[i] + max(w0[i], 2 * dq)
        )
        pars.add(f"a{i}", value=max(a0[i], 1e-12), min=0.0)
        pars.add(f"w{i}", value=min(max(w0[i], 1.5 * dq), 0.9 * wmax), min=0.5 * dq, max=wmax)
    if shape == "pvoigt":
        pars.add("eta", value=eta0, min=0.0, max=1.0)
    if shape == "voigt" and wg_fixed:
        pars.add("wg", value=float(wg0), vary=False)
    elif shape == "voigt":
        wg_start = wg0 if wg0 is not None else 0.5 * float(np.median(w0))
        pars.add("wg", value=max(wg_start, 0.05 * dq), min=0.01 * dq, max=wmax)
    isig = 1.0 / sig
    cnames = [f"c{i}" for i in range(n)]
    anames = [f"a{i}" for i in range(n)]
    wnames = [f"w{i}" for i in range(n)]
    cache: dict[str, Any] = {}

    def unpack(p):
        v = p.valuesdict()
        c = np.array([v[k] for k in cnames])[:, None]
        a = np.array([v[k] for k in anames])[:, None]
        w = np.array([v[k] for k in wnames])[:, None]
        return v, c, a, w

    def profiles(p):
        # MINPACK asks for the Jacobian at the point whose residual it just took: the
        # profiles (and their derivatives) of the last point are reused.
        v, c, a, w = unpack(p)
        key = tuple(v.values())
        if cache.get("key") != key:
            cache["key"] = key
            cache["d"] = profile_derivatives(
                q[None, :] - c, shape, w, v.get("eta", 0.5), v.get("wg", 0.0)
            )
        return v, a, cache["d"]

    def resid(p):
        v, a, (f, _, _, _) = profiles(p)
        bl = base * (v["b0"] + v["b1"] * t + v["b2"] * t * t)
        return (bl + np.sum(a * f, axis=0) - y) * isig

    def jac(p):
        v, a, (f, dc, dw, dsh) = profiles(p)
        cols = {"b0": base, "b1": base * t, "b2": base * t * t}
        for i in range(n):
            cols[cnames[i]] = a[i] * dc[i]
            cols[anames[i]] = f[i]
            cols[wnames[i]] = a[i] * dw[i]
        if shape == "pvoigt":
            cols["eta"] = np.sum(a * dsh, axis=0)
        if shape == "voigt":
            cols["wg"] = np.sum(a * dsh, axis=0)
        return np.column_stack([cols[k] for k, par in p.items() if par.vary]) * isig[:, None]

    if start is not None:
        # Refit from a solution (e.g. to get the covariance of the chosen shape).
        for k, par in start.items():
            if k in pars:
                pars[k].set(value=par.value)
    res = minimize_known_errors(resid, pars, "free-peak fit", jac)
    res.jac_fn = jac
    return res, resid


def _unpack(res, n, shape):
    v = res.params
    c = np.array([v[f"c{i}"].value for i in range(n)])
    a = np.array([v[f"a{i}"].value for i in range(n)])
    w = np.array([v[f"w{i}"].value for i in range(n)])
    return c, a, w


def fit_peaks(
    curve: Curve,
    found: FoundPeaks | None = None,
    shapes: tuple[str, ...] = SHAPES,
    threshold: float = 5.0,
    min_area_snr: float = 3.0,
    max_rounds: int = 2,
    instrument_fwhm_inv_nm: float | None = None,
) -> PeakFit:
    """Fit all peaks together over the baseline (lmfit), each with its own centre and width.

    The model is B(q) (b0 + b1 t + b2 t^2) + sum_i A_i f(q - c_i; w_i), B the SNIP
    baseline of :func:`find_peaks`, t the q range mapped onto [-1, 1], f one unit-area
    shape. Pseudo-Voigt first; peaks the residual still shows (filter significance above
    ``threshold``) are added and peaks with area below ``min_area_snr`` standard errors
    dropped; then every shape in ``shapes`` is refitted from that solution and the one with
    the lowest BIC = chi^2 + k ln n (error bars taken as known) is kept. When the
    pseudo-Voigt's eta is well determined and within a standard error of 0 or 1, the
    opposite pure shape is not fitted (its chi^2 cannot be lower than the pseudo-Voigt's,
    which the pure shape at that bound matches; ``not_fitted`` says so). With
    ``instrument_fwhm_inv_nm`` the Voigt's Gaussian FWHM is fixed to it (the resolution),
    else fitted (one value for all peaks). Standard errors come from the analytic
    Jacobian at the solution, (J^T J)^-1, scaled by sqrt(chi^2_red) when that exceeds 1.
    """
    for s in shapes:
        if s not in SHAPES:
            raise ParameterError(f"peak shape {s!r}: use one of {SHAPES}")
    found = found or find_peaks(curve, threshold=threshold)
    q, y = curve.q_nm, curve.intensity
    base, sig = found.baseline, found.sigma
    t = poly_coordinate(q)
    if found.q_nm.size == 0:
        raise FitError(f"{curve.name or 'curve'}: no peak above {found.threshold:g} sigma to fit")
    order = np.argsort(found.q_nm)
    c = found.q_nm[order]
    w = found.fwhm_inv_nm[order]
    a = np.maximum(found.height[order], 0) * w * 1.2
    eta = 0.5
    nfev = 0
    added: list[tuple[float, float]] = []  # residual peaks added (position, FWHM)
    rejected: list[float] = []  # positions not to add again
    res = None
    for _round in range(max_rounds + 1):
        res, resid = _fit_shape(q, y, sig, base, t, "pvoigt", c, a, w, eta)
        nfev += res.nfev
        c, a, w = _unpack(res, c.size, "pvoigt")
        eta = res.params["eta"].value
        aerr = np.array([res.params[f"a{i}"].stderr or np.inf for i in range(c.size)])
        keep = a > min_area_snr * aerr
        changed = False
        if not keep.all() and keep.any():
            for cd, wd in zip(c[~keep].tolist(), w[~keep].tolist()):
                # a dropped peak, and the residual positions it was added from (it may have moved)
                rejected.append(cd)
                rejected.extend(qa for qa, wa in added if abs(qa - cd) < 3.0 * max(wa, wd))
            c, a, w = c[keep], a[keep], w[keep]
            changed = True
        # Residual search: peaks hidden in a shoulder or left out by the finder.
        rr = resid(res.params)
        # Where the model misses the data by more than the error bars (chi2_red > 1: real
        # peak shapes, an estimated sigma) the residual's noise is that much larger: a
        # residual peak must stand out of it, not of the nominal error bars.
        rchi = float(np.sum(rr * rr)) / max(q.size - len(res.params), 1)
        extra = _residual_peaks(
            q, rr, threshold * math.sqrt(max(rchi, 1.0)), c, w, rejected, sig, eta, min_area_snr
        )
        if extra:
            # A new peak changes the residual elsewhere: earlier rejections may not hold.
            rejected.clear()
            for qe, we, ie in extra:
                added.append((qe, we))
                c = np.append(c, qe)
                w = np.append(w, we)
                a = np.append(a, max(-rr[ie] * sig[ie], 1e-6 * np.max(a)) * we)
            o = np.argsort(c)
            c, a, w = c[o], a[o], w[o]
            changed = True
        if not changed:
            break
    if c.size == 0:
        raise FitError(f"{curve.name or 'curve'}: no significant peak left after fitting")
    n = q.size
    if res is None or len(res.params) != 3 * c.size + 4:  # the last round changed the peaks
        res, resid = _fit_shape(q, y, sig, base, t, "pvoigt", c, a, w, eta)
        nfev += res.nfev
        c, a, w = _unpack(res, c.size, "pvoigt")
        eta = res.params["eta"].value
    fits: dict[str, Any] = {}
    not_fitted: dict[str, str] = {}
    if "pvoigt" in shapes:
        fits["pvoigt"] = res
    # The pseudo-Voigt holds both pure shapes (eta = 0, 1). When its eta is well
    # determined and at a bound (within one standard error), that pure shape fits as well
    # with one parameter fewer, and the opposite pure shape, whose chi^2 cannot be below
    # the pseudo-Voigt's, cannot beat it on BIC: that fit is not run.
    eta_err = res.params["eta"].stderr
    eta_err = float(eta_err) if eta_err is not None and np.isfinite(eta_err) else math.inf
    tol = max(eta_err, 1e-6) if eta_err < 0.1 else -1.0
    at = {"gauss": eta <= tol, "lorentz": 1.0 - eta <= tol}
    other = {"gauss": "lorentz", "lorentz": "gauss"}
    bound = {"gauss": 0.0, "lorentz": 1.0}
    for shape in ("gauss", "lorentz"):
        if shape not in shapes:
            continue
        if at[other[shape]] and other[shape] in shapes:
            not_fitted[shape] = (
                f"not fitted: the pseudo-Voigt's eta = {eta:.4f} +/- {eta_err:.2g} is at the "
                f"{other[shape]} bound, and a {shape} cannot have a lower chi^2"
            )
            continue
        # eta well inside (0, 1): pinning it to this shape's bound raises chi^2 by about
        # ((eta - bound) / eta_err)^2 (the pseudo-Voigt's chi^2 is quadratic in eta near its
        # minimum); when that exceeds the BIC's ln n for the parameter saved by 4, this
        # shape cannot win and is not fitted.
        dchi = ((eta - bound[shape]) / eta_err) ** 2 if 0 < eta_err < math.inf else 0.0
        if "pvoigt" in shapes and dchi > math.log(q.size) + 4.0:
            not_fitted[shape] = (
                f"not fitted: the pseudo-Voigt's eta = {eta:.4f} +/- {eta_err:.2g} lies "
                f"{math.sqrt(dchi):.1f} standard errors from the {shape} bound: a {shape} would raise chi^2 by "
                f"about {dchi:.3g}, more than the BIC's ln n = {math.log(q.size):.2f} it saves"
            )
            continue
        # from the pseudo-Voigt's solution (a few steps when eta is at this shape's bound)
        r2, _ = _fit_shape(q, y, sig, base, t, shape, c, a, w, eta, start=res.params)
        nfev += r2.nfev
        fits[shape] = r2
    if "voigt" in shapes:
        fl_start = np.array([pvoigt_components(wi, eta)[1] for wi in w]) + 1e-3 * w
        if instrument_fwhm_inv_nm and instrument_fwhm_inv_nm > 0:
            # Gaussian part = the instrument's resolution; the Lorentzians are the sample.
            r2, _ = _fit_shape(
                q,
                y,
                sig,
                base,
                t,
                "voigt",
                c,
                a,
                fl_start,
                eta,
                float(instrument_fwhm_inv_nm),
                wg_fixed=True,
            )
        else:
            r2, _ = _fit_shape(
                q,
                y,
                sig,
                base,
                t,
                "voigt",
                c,
                a,
                fl_start,
                eta,
                pvoigt_components(float(np.median(w)), eta)[0],
            )
        nfev += r2.nfev
        fits["voigt"] = r2
    bic = {s: float(r.chisqr + r.nvarys * math.log(n)) for s, r in fits.items()}
    best = min(bic, key=bic.get)
    r = fits[best]
    cb, ab, wb = _unpack(r, c.size, best)
    redchi = r.chisqr / max(n - r.nvarys, 1)
    eta_b = r.params["eta"].value if best == "pvoigt" else None
    wg_b = r.params["wg"].value if best == "voigt" else None
    peaks = []
    for i in range(cb.size):
        ce = scaled_stderr(r.params[f"c{i}"], redchi)
        ae = scaled_stderr(r.params[f"a{i}"], redchi)
        we = scaled_stderr(r.params[f"w{i}"], redchi)
        if best == "voigt":
            tot = float(voigt_fwhm(wg_b, wb[i]))
            peaks.append(
                Peak(
                    cb[i],
                    ce,
                    tot,
                    we * tot / max(wb[i], 1e-300) if np.isfinite(we) else we,
                    ab[i],
                    ae,
                    None,
                    wg_b,
                    wb[i],
                )
            )
        else:
            peaks.append(Peak(cb[i], ce, wb[i], we, ab[i], ae))
    v = r.params.valuesdict()
    model = base * (v["b0"] + v["b1"] * t + v["b2"] * t * t) + peak_sum(
        q, best, cb, ab, wb, v.get("eta", 0.5), v.get("wg", 0.0)
    )
    bl = base * (v["b0"] + v["b1"] * t + v["b2"] * t * t)
    return PeakFit(
        tuple(peaks), best, eta_b, wg_b, bic, float(redchi), q, y, sig, model, bl, nfev, not_fitted
    )


def _top_inside(excess: np.ndarray, i: int, wf: float) -> int | None:
    """For a filter maximum at an end of the data: the index of a maximum of the excess
    (smoothed) within two widths of that end that stands above the end value by more than
    its noise, or None. The tail of a ring centred beyond the range rises to the end and
    has none; a ring centred just inside has one."""
    n = excess.size
    m = max(3, int(wf / 3) | 1)
    sm = np.convolve(excess, np.ones(m) / m, mode="same")
    span = max(3, int(2 * wf))
    lo, hi = (
        (max(1, n - 1 - span), n - 1 - m // 2) if i > n // 2 else (1 + m // 2, min(n - 2, span))
    )
    if hi - lo < 2:
        return None
    seg = np.arange(lo, hi)
    top = seg[(sm[seg] > sm[seg - 1]) & (sm[seg] >= sm[seg + 1])]
    end = sm[hi] if i > n // 2 else sm[lo]
    top = top[sm[top] > end + 1.0 / math.sqrt(m)]
    return int(top[np.argmax(sm[top])]) if top.size else None


def _residual_peaks(q, rr, threshold, c, w, rejected=(), sig=None, eta=0.5, min_area_snr=0.0):
    """Significant peaks left in the normalised residual rr = (model - data)/sigma.

    Ricker filter at the fitted widths; returns up to two (q, fwhm, index) away from the
    fitted centres; at an end of the data only with a top inside it (see :func:`_top_inside`),
    not within a width
    of a position in ``rejected`` (peaks an earlier round added and dropped again). With
    ``sig``, a candidate must also hold ``min_area_snr``: its area fitted alone to the
    residual (a linear least-squares projection, optimistic since its neighbours stay
    fixed) over that area's standard error; misfit structure at a strong peak's flank
    passes the zero-mean filter but is no peak, and adding it would cost a fit round.
    """
    n = q.size
    dq = (q[-1] - q[0]) / (n - 1)
    out: list[tuple[float, float, int]] = []
    if c.size == 0:
        return out
    for wf in np.unique(np.clip(np.round(w / dq, 1), 2.0, None)):
        k = ricker_kernel(wf)
        if k.size // 2 >= n - 1:
            continue
        z = matched_filter(-rr, k)
        i = int(np.argmax(z))
        if z[i] > threshold and not (2 <= i <= n - 3 and z[i - 1] <= z[i] >= z[i + 1]):
            i = _top_inside(-rr, i, wf)  # at an end of the data: is there a top inside?
            if i is None:
                continue
        if z[i] > threshold:
            qi = q[i]
            if (
                np.all(np.abs(qi - c) > np.maximum(0.3 * wf * dq, 0.8 * w))
                and all(abs(qi - o[0]) > wf * dq for o in out)
                and all(abs(qi - r) > wf * dq for r in rejected)
            ):
                if sig is not None and min_area_snr > 0:
                    g = pvoigt_profile(q - qi, wf * dq, eta) / sig
                    gg = float(g @ g)
                    if gg <= 0 or -float(rr @ g) / math.sqrt(gg) < min_area_snr:
                        continue
                out.append((float(qi), float(wf * dq), i))
    return out[:2]
