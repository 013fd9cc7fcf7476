"""Masks (True = masked, pyFAI's convention): mask files, detector gaps, hot pixels,
thresholds, the beamstop disk and the beamstop shadow found in the data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from .core import Geometry


def load_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask (EDF, TIFF, NPY, pyFAI .mask): returns bool, True = masked (pyFAI convention).

    Files from LIMA-style tools that mark *valid* pixels with 1 cannot be told apart
    automatically; saxsred follows pyFAI (non-zero = masked) and says so.
    """
    from ..io.frames import read_image

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: mask file not found; check --mask")
    try:
        arr = read_image(p)
    except InputError:
        raise
    m = np.asarray(arr) != 0
    if shape is not None and m.shape != tuple(shape):
        raise GeometryError(
            f"{p}: mask shape {m.shape} does not match the frame {tuple(shape)}; use the mask of this detector"
        )
    return m


def detector_gap_mask(geo: Geometry, shape: tuple[int, int]) -> np.ndarray:
    """The detector's own gaps (pyFAI's detector definition), True = masked; zeros if none."""
    if geo.detector.lower() in ("generic", "detector"):
        return np.zeros(shape, dtype=bool)
    try:
        m = geo.integrator().detector.mask
    except Exception:
        m = None
    if m is None or m.shape != tuple(shape):
        return np.zeros(shape, dtype=bool)
    return m.astype(bool)


def hot_pixel_mask(
    data: np.ndarray,
    q_map: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    nsigma: float = 10.0,
    rel: float = 0.25,
    ratio: float = 4.0,
    ratio_ring: float = 1.5,
) -> np.ndarray:
    """Isolated hot pixels, True = masked.

    With a q map (the usual case, from the geometry) a pixel is hot when it exceeds the
    median of the pixels at its own q (an azimuthal median in rings about half a pixel
    wide) by ``nsigma`` Poisson standard deviations plus ``rel`` of that median: rings,
    even sharp calibrant lines, are compared with themselves, and a hot pixel sitting on a
    ring is still found. Without a q map, a pixel is hot when it is ``ratio`` times its
    brightest 8-neighbour and above it by ``nsigma`` standard deviations (weak hot pixels
    on bright features then pass: mask those with a file).
    """
    d = np.asarray(data, dtype=np.float64)
    valid = np.isfinite(d) if mask is None else (~np.asarray(mask, bool) & np.isfinite(d))
    if q_map is None:
        from scipy.ndimage import maximum_filter

        footprint = np.ones((3, 3), dtype=bool)
        footprint[1, 1] = False
        nmax = maximum_filter(
            np.where(valid, d, 0.0), footprint=footprint, mode="constant", cval=0.0
        )
        return (
            valid & (d - nmax > nsigma * np.sqrt(np.maximum(nmax, 1.0)) + 5.0) & (d > ratio * nmax)
        )
    q = np.asarray(q_map, dtype=np.float64)
    qv, dv = q[valid], d[valid]
    if qv.size == 0:
        return np.zeros(d.shape, dtype=bool)
    # ring width: half the q step between neighbouring pixels along the steepest direction
    step = (
        np.nanmedian(np.abs(np.diff(q, axis=1)))
        if q.shape[1] > 1
        else np.nanmedian(np.abs(np.diff(q, axis=0)))
    )
    width = max(0.5 * float(step), 1e-12)
    ring = np.floor((qv - qv.min()) / width).astype(np.int64)
    order = np.lexsort((dv, ring))
    ring_sorted = ring[order]
    starts = np.flatnonzero(np.r_[True, ring_sorted[1:] != ring_sorted[:-1]])
    counts = np.diff(np.r_[starts, ring_sorted.size])
    med_sorted = dv[order][starts + counts // 2]
    expected = np.empty_like(dv)
    expected[order] = np.repeat(med_sorted, counts)
    exp_pos = np.maximum(expected, 1.0)
    hot_v = (dv - expected > nsigma * np.sqrt(exp_pos) + rel * exp_pos) & (
        np.repeat(counts, counts)[np.argsort(order)] >= 5
    )
    out = np.zeros(d.shape, dtype=bool)
    out[valid] = hot_v
    if out.any():
        # and isolated: clearly brighter than every neighbour (a sharp ring's crest has a
        # neighbour along the ring nearly as bright)
        from scipy.ndimage import maximum_filter

        footprint = np.ones((3, 3), dtype=bool)
        footprint[1, 1] = False
        nmax = maximum_filter(
            np.where(valid, d, 0.0), footprint=footprint, mode="constant", cval=0.0
        )
        out &= d > ratio_ring * nmax
    return out


def threshold_mask(
    data: np.ndarray, below: float | None = None, above: float | None = None
) -> np.ndarray:
    """Pixels with raw counts < ``below`` or > ``above`` (True = masked); NaN is masked too.

    Tested on the raw counts, before any correction, like pyFAI's ``dummy`` handling.
    """
    d = np.asarray(data)
    m = ~np.isfinite(d) if d.dtype.kind == "f" else np.zeros(d.shape, dtype=bool)
    if below is not None:
        m |= d < below
    if above is not None:
        m |= d > above
    return m


def beamstop_disk_mask(geo: Geometry, shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """A disk of ``radius_px`` pixels around the direct beam (True = masked)."""
    if not (np.isfinite(radius_px) and radius_px >= 0):
        raise GeometryError(
            f"beamstop radius {radius_px} px must be >= 0; give --beamstop-radius in pixels"
        )
    bx, by = geo.with_shape(shape).beam_center_px()
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    # pyFAI's beam centre is in pixel-corner coordinates: the centre of pixel (i, j) is (j + 0.5, i + 0.5)
    return (xx + 0.5 - bx) ** 2 + (yy + 0.5 - by) ** 2 < radius_px**2


def shadow_mask(
    data: np.ndarray,
    geo: Geometry,
    invalid: np.ndarray | None = None,
    fraction: float = 0.5,
    size: int = 7,
    grow: int = 3,
    q_map: np.ndarray | None = None,
) -> np.ndarray:
    """The beamstop and its arm, found as the dark region around the direct beam (True = masked).

    A pixel is in a shadow when the mean of its ``size`` x ``size`` neighbourhood is below
    ``fraction`` of the median of that smoothed image on its own ring (same q, half-pixel
    rings): the local mean averages Poisson noise away (49 pixels of 2 counts: 10 %), so a
    shadow that removes half the flux stands out by five standard deviations even where a
    single pixel holds a count or two. Only dark regions that reach the direct beam are kept
    (a beamstop touches it; a dark gap between Bragg spots of an oriented sample does not);
    they are grown by ``grow`` pixels to cover the penumbra.
    """
    from scipy import ndimage

    d = np.asarray(data, dtype=np.float64)
    bad = ~np.isfinite(d) if invalid is None else (np.asarray(invalid, bool) | ~np.isfinite(d))
    shape = d.shape
    w = ndimage.uniform_filter((~bad).astype(np.float64), size)
    mean = ndimage.uniform_filter(np.where(bad, 0.0, d), size) / np.maximum(w, 1e-12)
    ok = ~bad & (w > 0.3)
    q = geo.with_shape(shape).q_map_nm(shape) if q_map is None else np.asarray(q_map)
    step = (
        np.nanmedian(np.abs(np.diff(q, axis=1)))
        if shape[1] > 1
        else np.nanmedian(np.abs(np.diff(q, axis=0)))
    )
    ring = np.floor(q / max(float(step), 1e-12)).astype(np.int64)
    # ring medians of the (already smoothed) image from every 3rd pixel each way: the
    # same medians to within the smoothing's own noise, nine times fewer pixels to sort
    sub = np.zeros(shape, dtype=bool)
    sub[::3, ::3] = True
    sub &= ok
    labels = np.unique(ring[sub])
    if labels.size == 0:
        return np.zeros(shape, dtype=bool)
    med = ndimage.median(mean[sub], ring[sub], index=labels)
    lut = np.full(int(ring.max()) + 1, np.nan)
    lut[labels] = med
    expected = lut[ring]
    dark = ok & (mean < fraction * expected)  # NaN (a ring without samples) compares False
    comp, n = ndimage.label(dark | bad, structure=np.ones((3, 3), bool))
    bx, by = geo.with_shape(shape).beam_center_px()
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    near = (xx + 0.5 - bx) ** 2 + (yy + 0.5 - by) ** 2 < (3 * size) ** 2
    keep = np.unique(comp[near & (comp > 0)])
    shadow = np.isin(comp, keep) & dark
    if grow > 0 and shadow.any():
        shadow = ndimage.binary_dilation(shadow, iterations=grow)
    return shadow & ~bad
