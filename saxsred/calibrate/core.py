"""The calibration stage: a detector geometry from a calibrant frame (pyFAI's calibrants, ring extraction and model).

``calibrate(frame, "AgBh", start)`` searches the beam centre and the distance from the
rings themselves (:mod:`.search`: headers can be off by a factor of two), extracts control
points and refines distance, PONI and tilts with pyFAI (:mod:`.refine`; wavelength fixed
unless asked), reports each ring's residual in q, the width of the lowest ring as the
instrument's resolution (:mod:`.resolution`) and how far the result is from the header.

Example
-------
>>> from saxsred.io.frames import read_frame                    # doctest: +SKIP
>>> cal = calibrate_frame(read_frame("agbh.edf"), "AgBh")        # doctest: +SKIP
>>> cal.geometry.dist_m, cal.residual_rms_inv_nm, cal.warnings   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import FitError, GeometryError, ParameterError
from ..geometry import Geometry, detector_gap_mask, geometry_from_metadata
from ..io.frames import Frame
from .refine import PARAMS, refine_geometry
from .resolution import instrument_resolution
from .result import Calibration, RingResidual, pyfai_detector
from .search import match_distance, observed_rings, ring_pixels, search_center

__all__ = [
    "CALIBRANTS",
    "calibrant_for",
    "calibrate",
    "calibrate_frame",
    "calibration_mask",
    "start_geometry",
]

# The calibrants a user names on the command line, as pyFAI calls them. pyFAI's LaB6 is
# a = 0.4156826 nm (NIST SRM 660c), CeO2 a = 0.54113 nm (Fm-3m), Si a = 0.543123 nm,
# AgBh d001 = 5.838 nm (SCIENCE.md section 1).
CALIBRANTS = {"agbh": "AgBh", "lab6": "LaB6", "ceo2": "CeO2", "si": "Si"}

# Tolerances beyond which the refined geometry "disagrees with the header": a distance a
# percent off shifts every q by a percent (twice the paper's calibration error), a centre
# a few pixels off smears the first rings.
HEADER_DIST_TOL = 0.01
HEADER_CENTER_TOL_PX = 3.0
# A frame whose rings the calibrant explains less than this is not that calibrant.
MIN_MATCH_SCORE = 0.5
MAX_RMS_PX = 1.5
# Beyond this starting tilt rings are far from circles about the beam: no coarse search.
MAX_SEARCH_TILT_DEG = 5.0


def calibrant_for(name: str, wavelength_m: float):
    """pyFAI calibrant by name (AgBh, LaB6, CeO2, Si or any pyFAI name, any case) at a wavelength."""
    from pyFAI.calibrant import CALIBRANT_FACTORY

    known = {k.lower(): k for k in CALIBRANT_FACTORY.keys()}
    key = CALIBRANTS.get(name.lower()) or known.get(name.lower())
    if key is None:
        raise ParameterError(
            f"--calibrant {name}: unknown; use AgBh, LaB6, CeO2, Si or a pyFAI calibrant "
            f"({', '.join(sorted(known.values())[:12])}, ...)"
        )
    cal = CALIBRANT_FACTORY(key)
    cal.wavelength = float(wavelength_m)
    return cal


def calibration_mask(
    frame: Frame, geometry: Geometry, mask: np.ndarray | None = None
) -> np.ndarray:
    """Pixels not to use (True): the user's mask, the detector's gaps, Dummy, negative and non-finite."""
    d = np.asarray(frame.data, dtype=np.float64)
    m = ~np.isfinite(d) | (d < 0)
    if mask is not None:
        m |= np.asarray(mask, bool)
    m |= detector_gap_mask(geometry, d.shape)
    meta = frame.metadata
    if meta.dummy is not None:
        m |= np.abs(d - meta.dummy) <= (meta.ddummy or 0.0) + 1e-12 * abs(meta.dummy)
    return m


def _as_pyfai(geo: Geometry, shape):
    from pyFAI.geometry import Geometry as PG

    return PG(
        dist=geo.dist_m,
        poni1=geo.poni1_m,
        poni2=geo.poni2_m,
        rot1=geo.rot1_rad,
        rot2=geo.rot2_rad,
        rot3=geo.rot3_rad,
        detector=pyfai_detector(geo, shape),
        wavelength=geo.wavelength_m,
    )


def _q_nm(tth: np.ndarray, wavelength_m: float) -> np.ndarray:
    return 4e-9 * np.pi * np.sin(np.asarray(tth) / 2.0) / wavelength_m


def _ring_residuals(cal, ref, wavelength_m: float) -> tuple[tuple[RingResidual, ...], float]:
    tth_lines = np.asarray(cal.get_2th(), dtype=np.float64)
    d_lines = np.asarray(cal.dspacing, dtype=np.float64)  # Angstrom
    q_obs = _q_nm(ref.tth_obs_rad, wavelength_m)
    rings = ref.points[:, 2].astype(int)
    q_cal_pts = _q_nm(tth_lines[rings], wavelength_m)
    out = []
    for k in np.unique(rings):
        sel = rings == k
        dq = q_obs[sel] - q_cal_pts[sel]
        out.append(
            RingResidual(
                int(k),
                float(d_lines[k] / 10.0),
                float(q_cal_pts[sel][0]),
                float(np.mean(q_obs[sel])),
                float(np.mean(dq)),
                float(np.sqrt(np.mean(dq**2))),
                int(sel.sum()),
            )
        )
    rms = float(np.sqrt(np.mean((q_obs - q_cal_pts) ** 2)))
    return tuple(out), rms


def _header_warnings(result: Geometry, header: Geometry, shape, label: str) -> list[str]:
    """Warnings naming the header (or starting PONI) and by how much it differs from the result."""
    out = []
    rel = header.dist_m / result.dist_m - 1.0
    if abs(rel) > HEADER_DIST_TOL:
        out.append(
            f"{label} distance {header.dist_m:.4g} m differs from the refined {result.dist_m:.4g} m by "
            f"{100 * rel:+.1f}% (factor {header.dist_m / result.dist_m:.3g})"
        )
    hx, hy = header.with_shape(shape).beam_center_px()
    rx, ry = result.with_shape(shape).beam_center_px()
    shift = float(np.hypot(hx - rx, hy - ry))
    if shift > HEADER_CENTER_TOL_PX:
        out.append(
            f"{label} beam centre (x {hx:.1f}, y {hy:.1f}) px differs from the refined (x {rx:.1f}, "
            f"y {ry:.1f}) px by {shift:.1f} px"
        )
    relw = header.wavelength_m / result.wavelength_m - 1.0
    if abs(relw) > 1e-4:
        out.append(
            f"{label} wavelength {header.wavelength_m * 1e9:.5g} nm differs from the refined "
            f"{result.wavelength_m * 1e9:.5g} nm by {100 * relw:+.2f}%"
        )
    return out


def calibrate(
    data: np.ndarray,
    mask: np.ndarray,
    start: Geometry,
    calibrant: str,
    refine_wavelength: bool = False,
    header: Geometry | None = None,
    header_label: str = "header",
    crystallite_nm: float | None = None,
    search_radius_px: float = 24.0,
    distance_range: tuple[float, float] = (0.2, 5.0),
    pts_per_deg: float = 1.0,
) -> Calibration:
    """Refine a geometry from a calibrant frame.

    Parameters
    ----------
    data : frame counts (rows = slow axis y, columns = fast axis x).
    mask : True = invalid pixel (see :func:`calibration_mask`).
    start : starting geometry (header or guess PONI) with the wavelength to use.
    calibrant : AgBh, LaB6, CeO2, Si or a pyFAI calibrant name.
    refine_wavelength : refine the wavelength too (it is fixed otherwise).
    header : the geometry the frame's header states, for the "differs from the header" warnings.
    crystallite_nm : the calibrant's crystallite size, removed from the lowest ring's width.
    search_radius_px, distance_range : how far the coarse search looks from ``start``.

    Returns
    -------
    Calibration
    """
    from pyFAI.geometry import Geometry as PG

    shape = tuple(int(s) for s in data.shape)
    if not start.wavelength_m or not np.isfinite(start.wavelength_m):
        raise GeometryError(
            "no wavelength for the calibration: give --wavelength-nm or --energy-kev"
        )
    cal = calibrant_for(calibrant, start.wavelength_m)
    mask = np.asarray(mask, bool)
    if (~mask).sum() < 1000:
        raise GeometryError("fewer than 1000 valid pixels: check the mask (True/nonzero = masked)")
    pix = float(np.sqrt(start.pixel1_m * start.pixel2_m))
    pg0 = _as_pyfai(start, shape)
    f2d = pg0.getFit2D()
    # pyFAI's Fit2D centre is in pixel-corner units (0 = edge of the first pixel), like our rows/cols
    centre0 = (float(f2d["centerY"]), float(f2d["centerX"]))
    if float(f2d["tilt"]) > MAX_SEARCH_TILT_DEG:
        # rings far from circles: the coarse search's model does not hold; refine from the guess
        return _finish(
            data,
            mask,
            start,
            cal,
            dict(start_p0(start)),
            None,
            refine_wavelength,
            header,
            header_label,
            crystallite_nm,
            pts_per_deg,
            {"skipped_for_tilt_deg": float(f2d["tilt"])},
            pg0.detector,
        )
    rp = ring_pixels(data, mask)
    centre = search_center(rp, centre0, radius_px=search_radius_px)
    step = max(1, int(np.sqrt((~mask).sum() / 250000)))
    vr, vc = np.nonzero(~mask[::step, ::step])
    obs = observed_rings(rp, vr * step + 0.5, vc * step + 0.5, centre)
    tth_lines = np.asarray(cal.get_2th(), dtype=np.float64)
    m = match_distance(
        obs, tth_lines, pix, float(f2d["directDist"]) * 1e-3, scale_range=distance_range
    )
    search = {
        "match_score": m.score,
        "explained": m.explained,
        "lines_seen": m.occupancy,
        "direct_distance_m": m.dist_m,
        "runner_up_distance_m": m.second_dist_m,
        "runner_up_score": m.second_score,
        "beam_center_x_px": centre[1],
        "beam_center_y_px": centre[0],
    }
    if m.score < MIN_MATCH_SCORE:
        raise FitError(
            f"the rings do not match {cal.name}: at best {100 * m.explained:.0f}% of the ring intensity lies on its "
            f"lines with {100 * m.occupancy:.0f}% of the first lines seen (distance {m.dist_m:.4g} m); "
            "check --calibrant and the wavelength"
        )
    pg = PG(detector=pg0.detector, wavelength=start.wavelength_m)
    pg.setFit2D(
        m.dist_m * 1e3,
        centre[1],
        centre[0],
        tilt=f2d["tilt"],
        tiltPlanRotation=f2d["tiltPlanRotation"],
    )
    tan_max = obs.radius_px.max() * pix / m.dist_m
    first = int(np.searchsorted(np.tan(np.where(tth_lines < 1.5, tth_lines, 1.5)), tan_max * 1.01))
    start_p = {k: float(getattr(pg, k)) for k in PARAMS}
    start_p["rot3"] = start.rot3_rad
    start_p["wavelength"] = start.wavelength_m
    return _finish(
        data,
        mask,
        start,
        cal,
        start_p,
        max(first, 2),
        refine_wavelength,
        header,
        header_label,
        crystallite_nm,
        pts_per_deg,
        search,
        pg0.detector,
    )


def start_p0(start: Geometry) -> dict[str, float]:
    return {
        "dist": start.dist_m,
        "poni1": start.poni1_m,
        "poni2": start.poni2_m,
        "rot1": start.rot1_rad,
        "rot2": start.rot2_rad,
        "rot3": start.rot3_rad,
        "wavelength": start.wavelength_m,
    }


def _finish(
    data,
    mask,
    start,
    cal,
    start_p,
    first,
    refine_wavelength,
    header,
    header_label,
    crystallite_nm,
    pts_per_deg,
    search,
    detector,
) -> Calibration:
    """Refinement from the searched (or given) start, checks, residuals, resolution, warnings."""
    shape = tuple(int(s) for s in data.shape)
    fix = ("rot3",) if refine_wavelength else ("wavelength", "rot3")
    ref = refine_geometry(
        data, mask, detector, cal, start_p, first, fix=fix, pts_per_deg=pts_per_deg
    )
    rms_px = float(np.sqrt(np.mean(ref.residual_px**2)))
    p = ref.param
    if rms_px > MAX_RMS_PX:
        raise FitError(
            f"the rings do not fit {cal.name}: control points are {rms_px:.2f} px rms off its lines after "
            "refinement; check --calibrant, the wavelength and the mask"
        )
    geo = replace(
        start,
        dist_m=p["dist"],
        poni1_m=p["poni1"],
        poni2_m=p["poni2"],
        rot1_rad=p["rot1"],
        rot2_rad=p["rot2"],
        rot3_rad=p["rot3"],
        wavelength_m=p["wavelength"],
        shape=shape,
    )
    cal.wavelength = p["wavelength"]
    rings, rms_q = _ring_residuals(cal, ref, p["wavelength"])
    warnings: list[str] = []
    if len(rings) < 2:
        kept = "PONI and tilts" if "poni1" not in ref.errors else "tilts"
        warnings.append(
            f"only one ring ({cal.name} d = {rings[0].d_nm:.5g} nm) was used: the {kept} were kept "
            "from the start; check the result against a second frame"
        )
    if header is not None:
        warnings += _header_warnings(geo, header, shape, header_label)
    try:
        res = instrument_resolution(data, mask, geo, cal, crystallite_nm=crystallite_nm)
    except FitError as exc:
        res = None
        warnings.append(f"no instrument width: {exc}")
    geo = replace(
        geo, instrument_fwhm_inv_nm=res.instrument_fwhm_inv_nm if res is not None else None
    )
    return Calibration(
        geo,
        start,
        cal.name,
        rings,
        rms_q,
        rms_px,
        dict(ref.errors),
        res,
        tuple(warnings),
        ref.points,
        search,
    )


def start_geometry(
    frame: Frame, poni: Geometry | None, wavelength_m: float | None
) -> tuple[Geometry, Geometry | None]:
    """Starting geometry (the guess PONI, else the header) and the header's own geometry if any."""
    header = None
    meta = frame.metadata
    if meta.distance_m is not None and meta.center_1_px is not None:
        m2 = replace(meta, wavelength_m=meta.wavelength_m or wavelength_m or 1e-10)
        try:
            header = geometry_from_metadata(
                m2, frame.data.shape, source="header", accept_implausible=True
            )
        except GeometryError:
            header = None
        if header is not None and meta.wavelength_m is None:
            header = replace(header, wavelength_m=wavelength_m or float("nan"))
    start = poni if poni is not None else header
    if start is None:
        raise GeometryError(
            f"{frame.path}: the header has no geometry (SampleDistance, Center_1/2, PSize_1/2); "
            "give a starting PONI with --poni"
        )
    if wavelength_m:
        start = replace(start, wavelength_m=float(wavelength_m))
        if header is not None:
            header = (
                replace(header, wavelength_m=float(wavelength_m))
                if meta.wavelength_m is None
                else header
            )
    return start, header


def calibrate_frame(
    frame: Frame,
    calibrant: str,
    poni: Geometry | None = None,
    wavelength_m: float | None = None,
    mask: np.ndarray | None = None,
    **kw: Any,
) -> Calibration:
    """:func:`calibrate` on a frame: start from ``poni`` (a guess) or the frame's header.

    The refined geometry is compared with the header's whenever the frame has one.
    """
    from .. import provenance as prov_mod

    start, header = start_geometry(frame, poni, wavelength_m)
    full_mask = calibration_mask(frame, start, mask)
    ref, label = (header, "header") if header is not None else (start, "starting PONI")
    res = calibrate(frame.data, full_mask, start, calibrant, header=ref, header_label=label, **kw)
    prov = prov_mod.extend(
        {},
        "calibrate",
        inputs=[{"file": frame.path.rsplit("/", 1)[-1], "checksum": frame.checksum}],
        calibrant=res.calibrant,
        start=start.as_dict(),
        options={k: v for k, v in kw.items()},
        refine_wavelength=bool(kw.get("refine_wavelength", False)),
    )
    return replace(res, provenance=prov)
