"""Peak candidates: a Ricker matched filter of the error-normalised residual over a
clipped baseline (a candidate needs a significance above the threshold in sigma)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..curve import Curve
from ..errors import InputError
from .profiles import FWHM_PER_SIGMA


def poly_coordinate(q: np.ndarray) -> np.ndarray:
    return (2.0 * q - (q[0] + q[-1])) / max(q[-1] - q[0], 1e-300)


@dataclass(frozen=True)
class FoundPeaks:
    """Peak candidates from :func:`find_peaks`.

    ``q_nm``, ``fwhm_inv_nm`` (matched-filter scale), ``height`` (above the baseline) and
    ``significance`` (filter output in standard deviations), strongest first; the
    baseline the fits start from and the error bars used, on the curve's grid.
    """

    q_nm: np.ndarray
    fwhm_inv_nm: np.ndarray
    height: np.ndarray
    significance: np.ndarray
    baseline: np.ndarray
    sigma: np.ndarray
    threshold: float


def _baseline(y: np.ndarray, sig: np.ndarray, m: int, iterations: int = 30) -> np.ndarray:
    """Smooth baseline under the peaks: iterated clipped Savitzky-Golay smoothing.

    A cubic Savitzky-Golay filter over ``m`` points follows features broader than the
    window (form-factor oscillations) and not the peaks; each pass clips the data to
    the current baseline + 1 sigma, so the peaks are progressively cut away. Done on
    log y when y > 0 (I(q) spans decades).
    """
    from scipy.signal import savgol_filter

    m = int(min(m, y.size - 1 - (y.size % 2 == 0)))
    m = max(m | 1, 5)
    pos = np.all(y > 0)
    v = np.log(y) if pos else y
    sv = sig / np.abs(y) if pos else sig
    b = savgol_filter(v, m, 3, mode="interp")
    for _ in range(iterations):
        b_new = savgol_filter(np.minimum(v, b + sv), m, 3, mode="interp")
        # converged: the clipping no longer moves the baseline by a hundredth of sigma
        done = np.max(np.abs(b_new - b) / np.maximum(sv, 1e-300)) < 1e-2
        b = b_new
        if done:
            break
    return np.exp(b) if pos else b


def _flat_baseline(
    q: np.ndarray, y: np.ndarray, sig: np.ndarray, deg: int = 2, iterations: int = 30
) -> np.ndarray:
    """Quadratic baseline with the peaks clipped away (S_eff ~ 1, chi traces ~ constant)."""
    t = poly_coordinate(q)
    v = y.copy()
    b = np.full_like(y, float(np.median(y)))
    for _ in range(iterations):
        coef = np.polynomial.polynomial.polyfit(t, v, deg, w=1.0 / sig)
        b = np.polynomial.polynomial.polyval(t, coef)
        v = np.minimum(y, b + sig)
    return b


def _mirror(v: np.ndarray, m: int) -> np.ndarray:
    """Odd reflection about each end: keeps the local slope, so a slope is not taken for a peak."""
    left = 2 * v[0] - v[m:0:-1]
    right = 2 * v[-1] - v[-2 : -m - 2 : -1]
    return np.concatenate([left, v, right])


def matched_filter(r: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Ricker-filter output on the curve's grid, the ends even-reflected (a peak at the end stays a peak)."""
    h = k.size // 2
    return np.convolve(np.pad(r, h, mode="reflect"), k[::-1], mode="valid")


def ricker_kernel(width_pts: float) -> np.ndarray:
    """Unit-norm, zero-mean Ricker wavelet matched to a peak of FWHM ``width_pts``.

    Its inner product with a Gaussian of width sigma_p peaks at sigma_k = sqrt5 sigma_p.
    """
    s = math.sqrt(5.0) * width_pts / FWHM_PER_SIGMA
    half = int(math.ceil(5 * s))
    x = np.arange(-half, half + 1, dtype=float) / s
    k = (1.0 - x * x) * np.exp(-0.5 * x * x)
    k -= k.mean()
    return k / math.sqrt(np.sum(k * k))


def _uniform(q: np.ndarray) -> bool:
    d = np.diff(q)
    return bool(d.min() > 0 and d.max() < 1.5 * d.min())


def _noise_sigma(y: np.ndarray, sigma: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Error bars; where missing, a robust estimate from second differences relative to ``base``."""
    if np.all(sigma > 0) and np.all(np.isfinite(sigma)):
        return sigma
    scale = np.where(np.abs(base) > 0, np.abs(base), 1.0)
    d2 = np.diff(y / scale, 2)
    rel = 1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6.0)
    if d2.size >= 3 * NOISE_WINDOW:
        # Counting noise grows relative to the signal at high q: a running median of
        # |second difference| over NOISE_WINDOW points (wide against a Bragg peak of a few
        # points, so peaks do not count as noise), never below the global estimate.
        from scipy.ndimage import median_filter

        loc = (
            1.4826
            * median_filter(np.abs(d2 - np.median(d2)), size=NOISE_WINDOW, mode="nearest")
            / math.sqrt(6.0)
        )
        rel = np.maximum(np.pad(loc, 1, mode="edge"), rel)
    est = np.maximum(rel * scale, 1e-300)
    return np.where(sigma > 0, sigma, est)


#: Points of the running median that estimates missing error bars.
NOISE_WINDOW = 41


def _check_curve(curve: Curve, where: str) -> None:
    if len(curve) < 20:
        raise InputError(
            f"{where}: only {len(curve)} points in the q range; need at least 20 to find peaks (widen --qmin/--qmax)"
        )
    if not np.all(np.isfinite(curve.intensity)):
        raise InputError(f"{where}: intensity has NaN or inf; clean the curve first")
    if np.any(np.diff(curve.q_nm) <= 0):
        raise InputError(f"{where}: q must increase strictly; sort the curve")
    if np.any(curve.sigma < 0):
        raise InputError(f"{where}: negative error bars; check the sigma column")


def find_peaks(
    curve: Curve,
    threshold: float = 5.0,
    baseline_window: float = 0.2,
    max_fwhm_frac: float = 0.1,
    max_peaks: int = 30,
    flat_baseline: bool = False,
) -> FoundPeaks:
    """Find Bragg-peak candidates in S_eff(q) or I(q).

    The residual r = (y - B) / sigma over a clipped Savitzky-Golay baseline B (window
    ``baseline_window`` x the q range) is filtered with unit-norm Ricker wavelets of FWHM
    from 2 points to ``max_fwhm_frac`` x the q range; white noise gives filter outputs of
    unit standard deviation, so a candidate needs a maximum over q and over scale above
    ``threshold`` (in sigma). The zero-mean filter ignores slow baseline errors, and
    features still growing at the largest scale (form-factor oscillations) are not peaks.

    Parameters
    ----------
    curve : the curve (q increasing, roughly uniform grid).
    threshold : significance in standard deviations (default 5: about 1e-4 false peaks per curve).
    flat_baseline : the curve is S_eff (baseline about constant): the returned baseline for
        the fit is a constant (the fit multiplies it by a quadratic); otherwise the
        finder's baseline.
    """
    _check_curve(curve, curve.name or "curve")
    q, y = curve.q_nm, curve.intensity
    n = q.size
    span = q[-1] - q[0]
    dq = span / (n - 1)
    m = max(5, int(round(baseline_window * span / dq)))
    sig0 = _noise_sigma(y, curve.sigma, np.full_like(y, float(np.median(np.abs(y))) or 1.0))
    base = _flat_baseline(q, y, sig0) if flat_baseline else _baseline(y, sig0, m)
    sig = _noise_sigma(y, curve.sigma, base)
    # The null hypothesis (no peak) has the noise of the baseline level: where error bars
    # grow with the signal (counting statistics, relative errors of S_eff), dividing by the
    # pointwise sigma would flatten every strong peak's top into a plateau that the fine
    # filters see as two peaks. The residual is scaled by the noise floor instead, and
    # ``ratio`` (local / floor noise) keeps dips on a peak top in local noise units.
    given = bool(np.all(curve.sigma > 0) and np.all(np.isfinite(curve.sigma)))
    # (an estimated sigma is already the baseline-level noise: see _noise_sigma)
    floor = _noise_floor(sig, int(round(max(3.0, max_fwhm_frac * span / dq)))) if given else sig
    ratio = sig / floor
    r = (y - base) / floor
    if flat_baseline:
        # S_eff: the fit's baseline is a polynomial; a smoothed curve would swallow Lorentzian tails.
        base_fit = np.full_like(y, float(np.median(base)))
    else:
        base_fit = base
    wmax = max(3.0, max_fwhm_frac * span / dq)
    widths = np.unique(np.round(np.geomspace(2.0, wmax, 14), 2))
    widths = np.array([w for w in widths if ricker_kernel(w).size // 2 < n - 1])
    Z = np.array([matched_filter(r, ricker_kernel(w)) for w in widths])
    cands: list[tuple[float, int, float]] = []
    # A peak is a maximum in q and in scale: the filter output at its scale beats the next
    # larger scale there. Features still growing at the largest scale (form-factor
    # oscillations, slow baseline errors) are broader than any Bragg peak sought.
    for kk in range(widths.size - 1):
        z = Z[kk]
        inner = z[1:-1]
        loc = np.nonzero((inner > z[:-2]) & (inner >= z[2:]) & (inner > threshold))[0] + 1
        for i in loc:
            lo, hi = max(i - 1, 0), min(i + 2, n)
            if z[i] >= Z[kk + 1, lo:hi].max() and (kk == 0 or z[i] >= Z[kk - 1, lo:hi].max()):
                cands.append((float(z[i]), int(i), float(widths[kk])))
    # Non-maximum suppression: strongest first; a weaker candidate within 0.8 FWHM of a kept
    # one (the kept one's scale) is the same peak seen at another scale, or noise on its top.
    cands.sort(key=lambda c: -c[0])
    kept: list[tuple[float, int, float]] = []
    for zc, i, w in cands:
        if all(abs(i - j) > 0.8 * wj + 1 for _, j, wj in kept):
            kept.append((zc, i, w))
        if len(kept) >= max_peaks:
            break
    kept = _split_blends(kept, Z, widths, threshold, max_peaks, ratio)
    idx = np.array([c[1] for c in kept], dtype=int)
    return FoundPeaks(
        q_nm=q[idx] if idx.size else np.zeros(0),
        fwhm_inv_nm=np.array([c[2] for c in kept]) * dq,
        height=(y - base)[idx] if idx.size else np.zeros(0),
        significance=np.array([c[0] for c in kept]),
        baseline=base_fit,
        sigma=sig,
        threshold=threshold,
    )


def _noise_floor(sig: np.ndarray, width_pts: int) -> np.ndarray:
    """Error bars at the baseline level: a low running percentile of sigma over about two
    of the broadest peaks sought (peaks raise sigma only on their own few points), smoothed."""
    from scipy.ndimage import percentile_filter, uniform_filter1d

    size = max(5, 2 * width_pts + 1)
    if size >= sig.size:
        return np.full_like(sig, float(np.percentile(sig, 20)))
    low = percentile_filter(sig, 20, size=size, mode="nearest")
    return np.maximum(uniform_filter1d(low, size, mode="nearest"), 1e-300)


def _split_blends(kept, Z, widths, threshold, max_peaks, ratio=None):
    """Replace a candidate that is two overlapping peaks seen at one coarse scale by the two.

    At the nearest finer scale where two maxima above ``threshold`` lie inside the
    candidate's support with a dip between them deeper than ``threshold`` below the lower
    one (the filter output has unit noise at the noise floor; on a peak top the noise is
    ``ratio`` times larger and the dip must be too), the pair is kept instead. The free fit would otherwise start with one
    broad peak and find the pair only from its residual, one more fit round.
    """
    scale_of = {float(w): k for k, w in enumerate(widths)}
    out: list[tuple[float, int, float]] = []
    for zc, i, w in kept:
        parts = [(zc, i, w)]
        for kk in range(scale_of[w] - 1, -1, -1):
            if widths[kk] < w / 3:
                break  # finer scales see the noise on the top, not a pair (the fit's residual would)
            z = Z[kk]
            lo, hi = max(1, int(i - 0.8 * w - 1)), min(z.size - 1, int(i + 0.8 * w + 2))
            seg = z[lo:hi]
            inner = (
                np.nonzero(
                    (seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:]) & (seg[1:-1] > threshold)
                )[0]
                + 1
                + lo
            )
            if inner.size < 2:
                continue
            top = inner[np.argsort(-z[inner])[:2]]
            a, b = sorted(int(x) for x in top)
            noise = 1.0 if ratio is None else float(ratio[a : b + 1].max())
            if min(z[a], z[b]) < threshold * noise:
                continue  # not both significant against the noise on the peak top
            if b - a > widths[kk] and z[a : b + 1].min() < min(z[a], z[b]) - threshold * noise:
                parts = [(float(z[a]), a, float(widths[kk])), (float(z[b]), b, float(widths[kk]))]
                break
        out.extend(parts)
    # The same suppression as before: a part may land on a weaker candidate already kept.
    out.sort(key=lambda c: -c[0])
    final: list[tuple[float, int, float]] = []
    for zc, i, w in out:
        if all(abs(i - j) > 0.8 * max(w, wj) + 1 for _, j, wj in final):
            final.append((zc, i, w))
    return final[:max_peaks]
