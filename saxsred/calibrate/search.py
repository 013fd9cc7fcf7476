"""Coarse search of the beam centre and the distance before any refinement.

pyFAI's ring extraction takes the pixels inside a band of +/- a quarter ring spacing
around each expected ring: it only works when the starting geometry already puts every
ring inside its band. Headers are not that good (SCIENCE.md; issue 13: a real AgBh header
gave 2.46 m where the rings imply 1.185 m), so the centre and the distance are searched
first, from the rings themselves:

1. ring pixels: a white top-hat (frame minus its grey opening) keeps the sharp rings and
   drops the smooth background; pixels whose top-hat is significant (Poisson) are kept;
2. centre: the radii of those pixels (``D tan 2theta`` in pixels, which does not depend on
   the distance) form sharp peaks only about the true centre; the centre is the one that
   makes that histogram sharpest, searched coarse to fine;
3. distance: the radial profile's peaks are matched to the calibrant's lines for every
   distance on a log grid; the score is the fraction of the observed ring strength the
   lines explain times the fraction of the first expected lines that are seen. A distance
   a factor k too short explains every ring but predicts lines that are not there; one a
   factor k too long leaves rings unexplained: only the truth scores 1 on both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FitError


@dataclass(frozen=True)
class RingPixels:
    """Pixels that lie on sharp rings: positions (rows, cols, pixel centres) and weights."""

    rows: np.ndarray
    cols: np.ndarray
    weight: np.ndarray


@dataclass(frozen=True)
class ObservedRings:
    """Peaks of the ring-pixel radial profile: radius (px), strength, and the profile itself."""

    radius_px: np.ndarray
    strength: np.ndarray
    r_grid_px: np.ndarray
    profile: np.ndarray
    covered: np.ndarray


@dataclass(frozen=True)
class DistanceMatch:
    """Best distance of the scan, its score and the runner-up outside the best's basin."""

    dist_m: float
    score: float
    explained: float
    occupancy: float
    second_dist_m: float
    second_score: float


def ring_pixels(
    data: np.ndarray,
    mask: np.ndarray,
    size: int = 9,
    nsigma: float = 4.0,
    max_fraction: float = 0.06,
) -> RingPixels:
    """Significant sharp-ring pixels of a calibrant frame.

    Parameters
    ----------
    data : frame (counts).
    mask : True = invalid.
    size : top-hat footprint (px): wider than a ring, narrower than the background's changes.
    nsigma : significance of the top-hat above the opening's Poisson noise.
    max_fraction : at most this fraction of the valid pixels (the most significant) is kept.
    """
    from scipy.ndimage import binary_dilation, grey_opening

    d = np.asarray(data, dtype=np.float64)
    bad = np.asarray(mask, bool) | ~np.isfinite(d)
    # masked pixels take a low value so that they never look like a ring; pixels next to
    # the mask are dropped (the opening is biased there)
    filled = np.where(bad, np.nanmin(np.where(bad, np.inf, d)) if (~bad).any() else 0.0, d)
    opening = grey_opening(filled, size=(size, size))
    top = filled - opening
    near_bad = binary_dilation(bad, iterations=size // 2 + 1)
    noise = np.sqrt(np.maximum(opening, 1.0))
    signif = np.where(near_bad, 0.0, top / noise)
    ok = signif > nsigma
    n_valid = int((~bad).sum())
    keep = max(int(max_fraction * n_valid), 1)
    if ok.sum() > keep:
        thr = np.partition(signif[ok], ok.sum() - keep)[ok.sum() - keep]
        ok &= signif >= thr
    rows, cols = np.nonzero(ok)
    if rows.size < 50:
        raise FitError(
            "fewer than 50 pixels lie on sharp rings: is this a calibrant frame (and is the mask right)?"
        )
    return RingPixels(rows.astype(np.float64) + 0.5, cols.astype(np.float64) + 0.5, top[ok])


def _radii_px(rows: np.ndarray, cols: np.ndarray, center: tuple[float, float]) -> np.ndarray:
    """Distance (px) of pixel centres from a beam centre (row, col), the untilted ring radius."""
    return np.hypot(rows - center[0], cols - center[1])


def _sharpness(r: np.ndarray, w: np.ndarray, bin_px: float) -> float:
    idx = np.floor(r / bin_px).astype(np.int64)
    h = np.bincount(idx, weights=w)
    return float(np.dot(h, h))


def search_center(
    rp: RingPixels, center: tuple[float, float], radius_px: float = 24.0
) -> tuple[float, float]:
    """Beam centre (row, col in px) that makes the ring pixels' radius histogram sharpest.

    Rings are circles about the beam centre for an untilted detector (ellipses a tilt of a
    degree hardly changes): the histogram of the ring pixels' distances to a trial centre
    is sharpest at the true one. Coarse-to-fine grid, +/- ``radius_px`` around ``center``.
    """
    # a bounded subsample keeps every pass cheap (the histogram shape needs ~20k pixels)
    step_sub = max(1, rp.rows.size // 10000)
    rows, cols, w = rp.rows[::step_sub], rp.cols[::step_sub], np.sqrt(rp.weight[::step_sub])
    best = (float(center[0]), float(center[1]))
    for half, step in ((radius_px, 4.0), (4.0, 1.0), (1.0, 0.25), (0.25, 0.0625)):
        offs = np.arange(-half, half + 1e-9, step)
        scores = np.array(
            [
                [
                    _sharpness(
                        _radii_px(rows, cols, (best[0] + o1, best[1] + o2)), w, max(step, 0.25)
                    )
                    for o2 in offs
                ]
                for o1 in offs
            ]
        )
        i, j = np.unravel_index(np.argmax(scores), scores.shape)
        best = (best[0] + offs[i], best[1] + offs[j])
    return best


def observed_rings(
    rp: RingPixels,
    valid_rows: np.ndarray,
    valid_cols: np.ndarray,
    center: tuple[float, float],
    bin_px: float = 0.5,
    r_min_px: float = 4.0,
) -> ObservedRings:
    """Radial profile of the ring pixels (mean top-hat per valid pixel) and its peaks."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    r = _radii_px(rp.rows, rp.cols, center)
    rv = _radii_px(valid_rows, valid_cols, center)
    n = int(np.ceil(max(r.max(), rv.max()) / bin_px)) + 2
    s = np.bincount(np.floor(r / bin_px).astype(np.int64), weights=rp.weight, minlength=n)[:n]
    c = np.bincount(np.floor(rv / bin_px).astype(np.int64), minlength=n)[:n].astype(np.float64)
    covered = c > 0
    covered[: int(r_min_px / bin_px)] = False  # the centre itself: no ring to see
    prof = np.where(covered, s / np.maximum(c, 1.0), 0.0)
    prof = gaussian_filter1d(prof, 1.0)
    grid = (np.arange(n) + 0.5) * bin_px
    if not np.any(prof > 0):
        raise FitError("no ring found in the frame")
    noise = np.median(prof[prof > 0]) + 1e-300
    peaks, props = find_peaks(prof, prominence=3.0 * noise, distance=max(1, int(1.5 / bin_px)))
    if peaks.size == 0:
        peaks, props = find_peaks(prof, prominence=0.3 * prof.max())
    # a ring's weight is its whole signal (prominence times the pixels at its radius): the
    # mean profile alone would let the few pixels about the beam stop outweigh every ring
    strength = props["prominences"] * c[peaks]
    return ObservedRings(grid[peaks], strength, grid, prof, covered)


def match_distance(
    obs: ObservedRings,
    tth_lines: np.ndarray,
    pixel_m: float,
    d0: float,
    scale_range: tuple[float, float] = (0.2, 5.0),
    n_first: int = 8,
) -> DistanceMatch:
    """Distance whose calibrant lines best explain the observed ring radii.

    For the untilted detector ``r = D tan(2theta) / pixel``, so a candidate distance D
    predicts the radii of every line. Scan D over ``d0`` times ``scale_range`` on a log
    grid (0.3 % steps), then refine around the best.
    """
    r_obs = obs.radius_px
    a = obs.strength / obs.strength.sum()
    tth = np.sort(np.asarray(tth_lines, dtype=np.float64))
    tan_l = np.tan(
        tth[np.isfinite(tth) & (tth < np.deg2rad(85.0))]
    )  # a flat detector sees 2theta < 90 deg
    r_cov = obs.r_grid_px[obs.covered]
    r_lo, r_hi = r_cov.min(), r_obs.max()

    def score(dist: float, rel_tol: float) -> tuple[float, float, float]:
        pred = dist * tan_l / pixel_m
        tol = np.maximum(1.5, rel_tol * r_obs)
        k = np.searchsorted(pred, r_obs)
        dl = np.abs(r_obs - pred[np.clip(k - 1, 0, pred.size - 1)])
        dr = np.abs(r_obs - pred[np.clip(k, 0, pred.size - 1)])
        near = np.minimum(dl, dr)
        explained = float(np.sum(a * np.exp(-0.5 * (near / tol) ** 2)))
        inr = pred[(pred > r_lo + 2) & (pred < r_hi + 2)][:n_first]
        if inr.size == 0:
            return 0.0, explained, 0.0
        # a predicted line where the detector sees nothing (gap, mask) is not held against D
        idx = np.clip(
            np.floor(inr / (obs.r_grid_px[1] - obs.r_grid_px[0])).astype(int),
            0,
            obs.covered.size - 1,
        )
        inr = inr[obs.covered[idx]]
        if inr.size == 0:
            return 0.0, explained, 0.0
        seen = np.min(np.abs(inr[:, None] - r_obs[None, :]), axis=1) < 3 * np.maximum(
            1.5, rel_tol * inr
        )
        occ = float(seen.mean())
        return explained * occ, explained, occ

    lo, hi = np.log(d0 * scale_range[0]), np.log(d0 * scale_range[1])
    grid = np.exp(np.arange(lo, hi, 0.003))
    sc = np.array([score(d, 0.004)[0] for d in grid])
    order = np.argsort(sc)[::-1]
    best = grid[order[0]]
    # runner-up: best score more than 3 % away in distance from the winner
    far = np.abs(np.log(grid / best)) > 0.03
    second = grid[far][np.argmax(sc[far])] if far.any() else best
    fine = best * np.exp(np.arange(-0.004, 0.004, 0.0001))
    fs = np.array([score(d, 0.0015)[0] for d in fine])
    # the tight-tolerance score is a plateau-free peak: take the score-weighted centre
    if fs.max() > 0:
        top = fs >= fs.max() * 0.98
        dist = float(np.exp(np.average(np.log(fine[top]), weights=fs[top])))
    else:  # rings too distorted (tilt) for the tight tolerance: the coarse best stands
        dist = float(best)
    s, e, o = score(dist, 0.004)
    return DistanceMatch(dist, s, e, o, float(second), float(sc[far].max()) if far.any() else 0.0)
