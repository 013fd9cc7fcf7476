"""Bounded cost on long curves: the free fit split into independent segments.

Peaks far apart do not share parameters: the free fit of 25 peaks on 2000 points (about
80 parameters, every profile on every point) costs far more than 25 fits of one peak on
its own stretch. Groups of peaks separated by more than :data:`SEGMENT_GAP` FWHM are
fitted apart, each on its own stretch of the curve (the stretches partition the grid,
cut half-way between groups) with its own baseline scale; one shape is then chosen for
all by the summed BIC, and the segments that preferred another shape are refitted with
it. A Lorentzian tail :data:`SEGMENT_GAP` / 2 FWHM from its centre is below 1.5% of the
peak height, and the segment's baseline absorbs it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..curve import Curve
from ..errors import FitError
from .find import FoundPeaks
from .fit import PeakFit, fit_peaks
from .profiles import SHAPES

#: Groups of peaks further apart than this many FWHM are fitted apart.
SEGMENT_GAP = 8.0
#: Curves with fewer peaks are fitted in one piece (the split saves nothing).
SEGMENT_MIN_PEAKS = 8
#: A segment has at least this many points (else it joins its neighbour).
SEGMENT_MIN_POINTS = 20


def segment_bounds(q: np.ndarray, centres: np.ndarray, fwhm: np.ndarray) -> list[tuple[int, int]]:
    """Index ranges [i0, i1) partitioning ``q`` into stretches of peak groups."""
    o = np.argsort(centres)
    c, w = centres[o], fwhm[o]
    cuts = []
    for k in range(c.size - 1):
        if c[k + 1] - c[k] > SEGMENT_GAP * 0.5 * (w[k] + w[k + 1]):
            cuts.append(int(np.searchsorted(q, 0.5 * (c[k] + c[k + 1]))))
    edges = [0] + cuts + [q.size]
    out: list[tuple[int, int]] = []
    for i0, i1 in zip(edges[:-1], edges[1:]):
        if out and (i1 - i0 < SEGMENT_MIN_POINTS or out[-1][1] - out[-1][0] < SEGMENT_MIN_POINTS):
            out[-1] = (out[-1][0], i1)
        else:
            out.append((i0, i1))
    return out


def _sub_found(found: FoundPeaks, q: np.ndarray, i0: int, i1: int) -> FoundPeaks:
    m = (found.q_nm >= q[i0]) & (found.q_nm <= q[i1 - 1])
    return replace(
        found,
        q_nm=found.q_nm[m],
        fwhm_inv_nm=found.fwhm_inv_nm[m],
        height=found.height[m],
        significance=found.significance[m],
        baseline=found.baseline[i0:i1],
        sigma=found.sigma[i0:i1],
    )


def _chi2(pf: PeakFit) -> float:
    return float(np.sum(((pf.data - pf.model) / pf.sigma) ** 2))


def fit_peaks_by_segment(
    curve: Curve,
    found: FoundPeaks,
    shapes: tuple[str, ...] = SHAPES,
    threshold: float = 5.0,
    instrument_fwhm_inv_nm: float | None = None,
) -> PeakFit:
    """:func:`saxsred.peaks.fit.fit_peaks`, split into independent segments when the curve
    has :data:`SEGMENT_MIN_PEAKS` or more peaks in separate groups (same result type;
    ``eta`` / ``fwhm_g_inv_nm`` are then the median of the segments' shared values)."""
    q, y = curve.q_nm, curve.intensity
    bounds = (
        segment_bounds(q, found.q_nm, found.fwhm_inv_nm)
        if found.q_nm.size >= SEGMENT_MIN_PEAKS
        else [(0, q.size)]
    )
    kw = dict(threshold=threshold, instrument_fwhm_inv_nm=instrument_fwhm_inv_nm)
    if len(bounds) == 1:
        return fit_peaks(curve, found, shapes=shapes, **kw)
    parts: list[tuple[int, int, PeakFit | None]] = []
    for i0, i1 in bounds:
        sub = Curve(q[i0:i1], y[i0:i1], curve.sigma[i0:i1], name=curve.name)
        fs = _sub_found(found, q, i0, i1)
        pf = None
        if fs.q_nm.size:
            try:
                pf = fit_peaks(sub, fs, shapes=shapes, **kw)
            except FitError:
                pf = None  # nothing significant left in this stretch
        parts.append((i0, i1, pf))
    fitted = [p for _, _, p in parts if p is not None]
    if not fitted:
        raise FitError(f"{curve.name or 'curve'}: no significant peak left after fitting")
    common = [s for s in shapes if all(s in p.bic for p in fitted)]
    n = q.size

    wg_fixed = bool(instrument_fwhm_inv_nm and instrument_fwhm_inv_nm > 0)
    extra = {"gauss": 0, "lorentz": 0, "pvoigt": 1, "voigt": 0 if wg_fixed else 1}

    def k_chi(p: PeakFit, s: str) -> tuple[float, float]:
        # The segment's BIC_s = chi^2_s + k_s ln n_segment; k_s from the chosen shape's
        # count (its chi^2 is known) and the shapes' shared-parameter difference.
        k = (p.bic[p.shape] - _chi2(p)) / math.log(p.q_nm.size) + extra[s] - extra[p.shape]
        return k, p.bic[s] - k * math.log(p.q_nm.size)

    # Global BIC per shape: summed chi^2 + summed parameter count x ln(n of the whole curve).
    bic = {}
    for s in common:
        kc = [k_chi(p, s) for p in fitted]
        bic[s] = float(sum(c for _, c in kc) + sum(k for k, _ in kc) * math.log(n))
    best = min(bic, key=bic.get) if bic else fitted[0].shape
    out = []
    for i0, i1, pf in parts:
        if pf is not None and pf.shape != best:
            sub = Curve(q[i0:i1], y[i0:i1], curve.sigma[i0:i1], name=curve.name)
            pf = fit_peaks(sub, _sub_found(found, q, i0, i1), shapes=(best,), **kw)
        out.append((i0, i1, pf))
    model = np.array(found.baseline, float, copy=True)
    bl = np.array(found.baseline, float, copy=True)
    peaks, nfev, chi, kk, etas, wgs, not_fitted = [], 0, 0.0, 0.0, [], [], {}
    for i0, i1, pf in out:
        if pf is None:
            chi += float(np.sum(((y[i0:i1] - bl[i0:i1]) / found.sigma[i0:i1]) ** 2))
            continue
        model[i0:i1], bl[i0:i1] = pf.model, pf.baseline
        peaks.extend(pf.peaks)
        nfev += pf.nfev
        c2 = _chi2(pf)
        chi += c2
        kk += (pf.bic[best] - c2) / math.log(pf.q_nm.size)
        if pf.eta is not None:
            etas.append(pf.eta)
        if pf.fwhm_g_inv_nm is not None:
            wgs.append(pf.fwhm_g_inv_nm)
        not_fitted.update(pf.not_fitted)
    bic[best] = float(chi + kk * math.log(n))
    return PeakFit(
        peaks=tuple(sorted(peaks, key=lambda p: p.q_nm)),
        shape=best,
        eta=float(np.median(etas)) if etas else None,
        fwhm_g_inv_nm=float(np.median(wgs)) if wgs else None,
        bic=bic,
        chi2_red=float(chi / max(n - kk, 1)),
        q_nm=q,
        data=y,
        sigma=found.sigma,
        model=model,
        baseline=bl,
        nfev=nfev,
        not_fitted=not_fitted,
    )
