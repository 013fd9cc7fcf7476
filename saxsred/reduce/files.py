"""Files to curves: the one frame iterator (geometry per file, header-named dark/flat/mask,
one reducer per geometry), and the file-level jobs built on it (reduce, stream, chi)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .. import provenance as prov_mod
from ..curve import Curve
from ..errors import InputError, ParameterError
from ..geometry import Geometry
from ..io.frames import Frame
from .corrections import Corrections
from .integrate import Reducer
from .series import (
    FrameVerdict,
    WaterCalibration,
    average_curves,
    scale_curve,
    subtract_background,
    water_scale_factor,
)


@dataclass(frozen=True)
class ReduceJob:
    """Everything needed to reduce files: geometry source, corrections and output options."""

    corrections: Corrections = Corrections()
    poni: str | None = None
    background: tuple[str, ...] = ()
    background_transmission: float | None = None
    water: tuple[str, ...] = ()
    water_empty: tuple[str, ...] = ()
    water_thickness_mm: float | None = None
    average: bool = False
    alpha: float = 1e-3
    frames: tuple[int, ...] | None = None


def parse_frame_selection(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"0,2,5-9"`` into frame indices (None for all frames)."""
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ParameterError(f"--frames {text!r}: use indices and ranges such as 0,2,5-9") from None
    return tuple(out)


@dataclass(frozen=True)
class ReduceOutput:
    """Curves produced by :func:`reduce_files`, with the per-frame verdicts of averaging."""

    curves: tuple[Curve, ...]
    verdicts: tuple[FrameVerdict, ...] = ()
    water: WaterCalibration | None = None
    background: Curve | None = None


def geometry_for(frame: Frame, poni: str | Geometry | None) -> Geometry:
    """Geometry of a frame: the PONI file (or a loaded Geometry) if given, else the frame's ESRF header."""
    from ..geometry import geometry_from_metadata, load_geometry

    if isinstance(poni, Geometry):
        return poni
    if poni:
        return load_geometry(poni)
    return geometry_from_metadata(frame.metadata, shape=frame.data.shape, source=frame.path)


_HEADER_FILE_FIELDS = {
    "DarkFileName": "dark",
    "FlatfieldFileName": "flat",
    "DetectorMaskFileName": "mask",
    "MaskFileName": "mask",
}


def corrections_for(frame: Frame, c: Corrections, cache: dict | None = None) -> Corrections:
    """Corrections for a frame, completed with the dark/flat/mask files its header names.

    ESRF headers may name DarkFileName, FlatfieldFileName, (Detector)MaskFileName with a
    *FilePath folder. A named file is used when the user gave none of that kind and the
    file exists (as given, or next to the frame); a named file that cannot be found is
    recorded in the provenance as not applied.
    """
    from pathlib import Path

    from ..geometry import load_mask
    from ..io.frames import read_image

    named = frame.metadata.files
    if not named:
        return c
    key = tuple(sorted(named.items()))
    if cache is not None and key in cache:
        return cache[key]
    updates: dict[str, Any] = {}
    notes: dict[str, Any] = dict(c.provenance)
    for field_name, kind in _HEADER_FILE_FIELDS.items():
        if field_name not in named or getattr(c, kind) is not None or kind in updates:
            continue
        cand = Path(named[field_name])
        found = next((p for p in (cand, Path(frame.path).parent / cand.name) if p.is_file()), None)
        if found is None:
            notes[f"header_{kind}_not_found"] = named[field_name]
            continue
        if kind == "mask":
            updates[kind] = load_mask(found, shape=frame.data.shape)
        else:
            updates[kind] = np.asarray(read_image(found), dtype=np.float64)
        notes[f"{kind}_file"] = prov_mod.input_record(found)
    out = replace(c, **updates, provenance=notes) if (updates or notes != c.provenance) else c
    if cache is not None:
        cache[key] = out
    return out


def _loaded_poni(poni: str | Geometry | None) -> Geometry | None:
    from ..geometry import load_geometry

    if isinstance(poni, Geometry):  # already loaded (e.g. with accept_implausible)
        return poni
    return load_geometry(poni) if poni else None


def _reduce_paths(
    paths: Sequence[str],
    job: Corrections,
    poni: str | None,
    reducers: dict | None = None,
    frames: Sequence[int] | None = None,
) -> list[Curve]:
    from ..io.frames import iter_frames

    reducers = {} if reducers is None else reducers
    out = []
    poni_geo = _loaded_poni(poni) if isinstance(poni, str) else poni
    corr_cache: dict = {}
    for path in paths:
        for frame in iter_frames(path, frames):
            geo = geometry_for(frame, poni_geo)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            corr = corrections_for(frame, job, corr_cache)
            key = (geo, id(corr))
            red = reducers.get(key)
            if red is None:
                red = reducers[key] = Reducer(geo, corr)
            out.append(red.reduce(frame))
    return out


def reduce_files(paths: Sequence[str], job: ReduceJob) -> ReduceOutput:
    """Reduce frame files to curves: integrate, subtract background, scale, average.

    Parameters
    ----------
    paths : frame files (every frame of multi-frame files is reduced).
    job : :class:`ReduceJob` (corrections, PONI, background and water files, averaging).

    Returns
    -------
    :class:`ReduceOutput`; write it with :func:`write_curves`.
    """
    if not paths:
        raise InputError("reduce: no frame files given")
    c = job.corrections
    reducers: dict = {}
    bg_curve = None
    if job.background:
        bg_corr = replace(c, transmission=job.background_transmission)
        bgs = _reduce_paths(job.background, bg_corr, job.poni, reducers)
        bg_curve = (
            average_curves(bgs, alpha=job.alpha, name="background").curve
            if len(bgs) > 1
            else bgs[0]
        )
    water_cal = None
    if job.water:
        w_corr = replace(
            c, transmission=None, thickness_mm=job.water_thickness_mm or c.thickness_mm, scale=1.0
        )
        waters = _reduce_paths(job.water, w_corr, job.poni, reducers)
        water = average_curves(waters, alpha=job.alpha).curve if len(waters) > 1 else waters[0]
        empty = None
        if job.water_empty:
            empties = _reduce_paths(job.water_empty, w_corr, job.poni, reducers)
            empty = (
                average_curves(empties, alpha=job.alpha).curve if len(empties) > 1 else empties[0]
            )
        water_cal = water_scale_factor(water, empty)
    curves = _reduce_paths(paths, c, job.poni, reducers, job.frames)
    verdicts: tuple[FrameVerdict, ...] = ()
    if job.average:
        avg = average_curves(curves, alpha=job.alpha, name=curves[0].name + "_average")
        curves = [avg.curve]
        verdicts = avg.verdicts
    if bg_curve is not None:
        curves = [subtract_background(cv, bg_curve) for cv in curves]
    if water_cal is not None:
        curves = [scale_curve(cv, water_cal.factor, water_cal.factor_err) for cv in curves]
    return ReduceOutput(tuple(curves), verdicts, water_cal, bg_curve)


def write_curves(
    curves: Sequence[Curve],
    outdir: str,
    formats: Sequence[str] = ("h5", "dat"),
    checksums: dict[str, str] | None = None,
) -> list[str]:
    """Write each curve as ``outdir/<name>.h5`` (NXcanSAS) and ``outdir/<name>.dat`` (atomic);
    ``checksums`` receives {path: checksum} of what was written."""
    from pathlib import Path

    from ..io.curves import write_dat, write_nxcansas

    out = Path(outdir)
    written = []
    for cv in curves:
        prov_json = prov_mod.to_json(cv.provenance, indent=None)  # once for both files
        if "h5" in formats:
            written.append(
                str(
                    write_nxcansas(
                        cv, out / f"{cv.name}.h5", prov_json=prov_json, checksums=checksums
                    )
                )
            )
        if "dat" in formats:
            written.append(
                str(write_dat(cv, out / f"{cv.name}.dat", prov_json=prov_json, checksums=checksums))
            )
    return written


def reduce_stream(
    paths: Sequence[str], job: ReduceJob, outdir: str, formats: Sequence[str] = ("h5", "dat")
) -> list[str]:
    """Reduce frame by frame and write each curve as soon as it exists.

    One :class:`Reducer` per geometry is reused for every frame (pyFAI's CSR engine is built
    once); only one frame is in memory at a time. Writes are synchronous: pyFAI's engine
    holds the GIL, so a writer thread would not overlap with it (measured). Every path is
    checked before the first frame is read, so a missing file writes nothing.
    """
    from pathlib import Path

    from ..io.frames import iter_frames

    if not paths:
        raise InputError("reduce: no frame files given")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file; check the path")
    reducers: dict = {}
    written: list[str] = []
    poni_geo = _loaded_poni(job.poni)
    corr_cache: dict = {}
    for path in paths:
        for frame in iter_frames(path, job.frames):
            geo = geometry_for(frame, poni_geo)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            corr = corrections_for(frame, job.corrections, corr_cache)
            red = reducers.get((geo, id(corr)))
            if red is None:
                red = reducers[(geo, id(corr))] = Reducer(geo, corr)
            written.extend(write_curves([red.reduce(frame)], outdir, formats))
    return written


def chi_profiles(
    paths: Sequence[str],
    job: ReduceJob,
    q_band_nm: tuple[float, float],
    outdir: str,
    npt_chi: int = 360,
) -> list[str]:
    """Write ``outdir/<name>_chi.dat`` (chi deg, I, sigma) for every frame: the azimuthal trace
    over ``q_band_nm``, normalised like the 1-D curves."""
    from pathlib import Path

    from ..io.curves import write_chi
    from ..io.frames import iter_frames

    poni_geo = _loaded_poni(job.poni)
    written = []
    reducers: dict = {}
    for path in paths:
        for frame in iter_frames(path, job.frames):
            geo = geometry_for(frame, poni_geo)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            red = reducers.get(geo) or reducers.setdefault(geo, Reducer(geo, job.corrections))
            prof = red.chi_profile(frame, q_band_nm, npt_chi=npt_chi)
            prof = replace(
                prof,
                provenance=prov_mod.extend(
                    {},
                    "chi_profile",
                    frame=frame.name,
                    checksum=frame.checksum,
                    q_band_nm=list(q_band_nm),
                ),
            )
            written.append(str(write_chi(prof, Path(outdir) / f"{frame.name}_chi.dat")))
    return written
