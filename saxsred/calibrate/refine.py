"""Control points and geometry refinement with pyFAI's own machinery.

Control points come from pyFAI's ``SingleGeometry.extract_cp`` (the "massif" peak search
inside a band of +/- a quarter ring spacing around each expected ring, as pyFAI-calib2
does); the geometry is refined by ``GeometryRefinement.refine3`` (least squares on
2theta, wavelength fixed unless asked). A band without a ring still yields points (the
massif finds local maxima of the noise), so every ring is checked after each refinement:
a real ring's points sit on its line to a pixel, noise points spread over the band.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import FitError

PARAMS = ("dist", "poni1", "poni2", "rot1", "rot2", "rot3")


@dataclass(frozen=True)
class Refinement:
    """pyFAI parameters after refinement and the control points that decided them.

    ``points``: rows (row px, col px, ring index into the calibrant's line list);
    ``residual_px``: each point's radial distance from its line in the refined geometry.
    """

    param: dict[str, float]
    points: np.ndarray
    residual_px: np.ndarray
    tth_obs_rad: np.ndarray
    errors: dict[str, float]


def _quiet():
    # pyFAI logs a warning per band and per refinement step: the caller reports instead
    for name in ("pyFAI", "pyFAI.massif", "pyFAI.goniometer", "pyFAI.geometryRefinement"):
        logging.getLogger(name).setLevel(logging.ERROR)


def tth_points(gr, pos1: np.ndarray, pos2: np.ndarray, pos3: np.ndarray, param) -> np.ndarray:
    """pyFAI's 2theta of points at detector positions (m) for parameters (dist, poni1, poni2, rot1..3).

    The numpy path of pyFAI's ``calc_pos_zyx`` (its rotation matrix, its axes) with the
    pixel positions computed once: pyFAI's own ``tth`` recomputes them on every call,
    which dominated the refinement's time.
    """
    coord = np.vstack((pos1 - param[1], pos2 - param[2], param[0] + pos3))
    t1, t2, t3 = gr.rotation_matrix(param) @ coord
    return np.arctan2(np.hypot(t1, t2), t3)


def _residual_px(gr, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radial residual (px) of each point from its ring, and the points' 2theta."""
    tth = gr.tth(pts[:, 0], pts[:, 1])
    tth_cal = np.asarray(gr.calibrant.get_2th(), dtype=np.float64)[pts[:, 2].astype(int)]
    # dr = D d(tan 2theta) = D d2theta / cos^2(2theta) for the untilted detector
    pix = np.sqrt(gr.pixel1 * gr.pixel2)
    return (tth - tth_cal) * gr.dist / np.cos(tth_cal) ** 2 / pix, tth


def _refine(gr, fix) -> np.ndarray:
    """Least squares of pyFAI's 2theta model on the control points (``gr.tth``, ``calc_2th``).

    ``GeometryRefinement.refine3`` stops on an absolute tolerance of the summed squared
    2theta (1e-12 rad^2), which small-angle rings (residuals of 1e-6 rad) meet before
    the tilts have moved: scipy's ``least_squares`` on the same residuals, with parameters
    scaled by the Jacobian, converges for SAXS and WAXS alike. Returns the covariance of
    the free parameters (order of ``PARAMS`` less ``fix``).
    """
    from scipy.optimize import least_squares

    free = [k for k in PARAMS if k not in fix]
    base = np.array([float(getattr(gr, k)) for k in PARAMS])
    d1, d2 = gr.data[:, 0], gr.data[:, 1]
    tth_cal = np.asarray(gr.calibrant.get_2th(), dtype=np.float64)[gr.data[:, 2].astype(int)]
    idx = [PARAMS.index(k) for k in free]
    pos1, pos2, pos3 = gr.detector.calc_cartesian_positions(d1, d2)
    pos3 = np.zeros_like(pos1) if pos3 is None else pos3

    def resid(x):
        p = base.copy()
        p[idx] = x
        return tth_points(gr, pos1, pos2, pos3, p) - tth_cal

    sol = least_squares(
        resid, base[idx], x_scale="jac", method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15
    )
    p = base.copy()
    p[idx] = sol.x
    gr.set_param(p)
    dof = max(len(d1) - len(idx), 1)
    s2 = float(np.dot(sol.fun, sol.fun)) / dof
    try:
        cov = np.linalg.inv(sol.jac.T @ sol.jac) * s2
    except np.linalg.LinAlgError:
        cov = np.full((len(idx), len(idx)), np.nan)
    return cov


def _one_ring_fix(gr, pts: np.ndarray, k: int) -> tuple[str, ...]:
    """Parameters a pass cannot refine: tilts in the first pass and with one ring; with one
    short arc (under half a circle about the beam) the PONI as well."""
    if np.unique(pts[:, 2]).size >= 2:
        return ("rot1", "rot2") if k == 0 else ()
    chi = gr.chi(pts[:, 0], pts[:, 1])
    sectors = np.unique(np.floor(np.degrees(chi) / 10.0)).size
    return ("rot1", "rot2") if sectors >= 18 else ("poni1", "poni2", "rot1", "rot2")


def _clean(res: np.ndarray, rings: np.ndarray, ring_tol_px: float) -> np.ndarray:
    """Keep the points of real rings (median |residual| within ``ring_tol_px``), less outliers."""
    keep = np.zeros(res.size, dtype=bool)
    for k in np.unique(rings):
        sel = rings == k
        r = res[sel]
        if r.size < 5 or np.median(np.abs(r - np.median(r))) > ring_tol_px:
            continue
        mad = 1.4826 * np.median(np.abs(r - np.median(r)))
        keep[np.flatnonzero(sel)[np.abs(r - np.median(r)) <= max(4.0 * mad, 1.0)]] = True
    return keep


def refine_geometry(
    data: np.ndarray,
    mask: np.ndarray,
    detector,
    calibrant,
    start: dict[str, float],
    first_rings: int | None,
    fix: tuple[str, ...] = ("wavelength", "rot3"),
    pts_per_deg: float = 1.0,
    passes: int = 3,
    seed: int = 0,
) -> Refinement:
    """Extract control points and refine ``start`` (pyFAI parameter names, metres, radians).

    The first pass uses the ``first_rings`` lowest rings (those the coarse search saw) and
    refines the distance and the PONI only; the later passes use every ring in the frame
    and free the tilts (all but ``fix``).
    """
    _quiet()
    # pyFAI's massif visits the candidate pixels in an order drawn from numpy's global
    # random state: fix it for the extraction (same frame -> same PONI bytes) and give the
    # caller's state back afterwards
    state = np.random.get_state()  # noqa: NPY002 (pyFAI draws from the legacy global state)
    np.random.seed(seed)  # noqa: NPY002
    try:
        return _refine_geometry(
            data, mask, detector, calibrant, start, first_rings, fix, pts_per_deg, passes
        )
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _refine_geometry(
    data, mask, detector, calibrant, start, first_rings, fix, pts_per_deg, passes
) -> Refinement:
    from pyFAI.goniometer import SingleGeometry

    detector.mask = np.asarray(mask, dtype=np.int8)
    geo = {k: float(start[k]) for k in PARAMS}
    geo["wavelength"] = float(start["wavelength"])
    sg = SingleGeometry(
        "calibrant",
        image=np.asarray(data, dtype=np.float32),
        calibrant=calibrant,
        detector=detector,
        geometry=geo,
    )
    gr = sg.geometry_refinement
    gr.auto_gc = False  # pyFAI collects garbage on every parameter change otherwise
    pts = np.empty((0, 3))
    res = np.empty(0)
    cov = np.full((6, 6), np.nan)
    for k in range(passes):
        max_rings = first_rings if k == 0 else None
        if k == 0 and first_rings is None:  # no search was made: take every ring, judge them below
            max_rings = None
        cp = sg.extract_cp(max_rings=max_rings, pts_per_deg=pts_per_deg)
        allp = np.asarray(cp.getList(), dtype=np.float64).reshape(-1, 3)
        if allp.shape[0] < 10:
            break
        res_all, _ = _residual_px(gr, allp)
        # the first pass's bands are only as good as the coarse search: wide tolerance
        keep = _clean(
            res_all - (np.median(res_all) if k == 0 else 0.0), allp[:, 2], 4.0 if k == 0 else 1.5
        )
        if keep.sum() < 10:
            break
        pts = allp[keep]
        gr.data = pts
        # one ring (often a short arc) cannot separate tilts and PONI from the distance:
        # only the distance is refined, the rest stays as given
        fix_k = tuple(fix) + _one_ring_fix(gr, pts, k)
        cov = _refine(gr, fix_k)
        res, _ = _residual_px(gr, pts)
        # drop what the refined geometry shows to be off its ring, refine once more
        keep2 = _clean(res, pts[:, 2], 1.5)
        if 10 <= keep2.sum() < keep.sum():
            pts = pts[keep2]
            gr.data = pts
            cov = _refine(gr, fix_k)
        res, _ = _residual_px(gr, pts)
    fix = tuple(fix) + (_one_ring_fix(gr, pts, 1) if pts.shape[0] else ())
    if pts.shape[0] < 10:
        raise FitError(
            "fewer than 10 control points on the calibrant's rings: the rings do not match the calibrant "
            "(check --calibrant, the wavelength and the starting distance)"
        )
    res, tth = _residual_px(gr, pts)
    param = {k: float(getattr(gr, k)) for k in PARAMS}
    param["wavelength"] = float(gr.wavelength)
    free = [k for k in PARAMS if k not in fix]
    errors = {
        k: float(np.sqrt(cov[i, i])) if np.isfinite(cov[i, i]) and cov[i, i] >= 0 else float("nan")
        for i, k in enumerate(free)
    }
    return Refinement(param, pts, res, tth, errors)
