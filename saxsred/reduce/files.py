"""Files to curves: the one frame iterator (geometry per file, header-named dark/flat/mask,
one reducer per geometry), and the file-level jobs built on it (reduce, stream, chi)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import provenance as prov_mod
from ..curve import Curve
from ..errors import InputError, ParameterError
from ..geometry import Geometry
from ..io.frames import Frame
from .corrections import Corrections, load_correction_file
from .integrate import Reducer
from .series import (
    FrameVerdict,
    WaterCalibration,
    average_curves,
    scale_curve,
    series_name,
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


def header_files(
    frame: Frame, c: Corrections | None = None
) -> tuple[dict[str, Path], dict[str, str]]:
    """The dark, flat and mask files a frame's ESRF header names (DarkFileName,
    FlatfieldFileName, (Detector)MaskFileName, with a *FilePath folder), for the kinds
    ``c`` does not already give: ({kind: path found}, {kind: name not found}). A named
    file is looked for as given, then next to the frame (and next to its link target)."""
    found: dict[str, Path] = {}
    missing: dict[str, str] = {}
    named = frame.metadata.files
    for field_name, kind in _HEADER_FILE_FIELDS.items():
        if (
            field_name not in named
            or kind in found
            or (c is not None and getattr(c, kind) is not None)
        ):
            continue
        cand = Path(named[field_name])
        # beside the frame as given, then beside its link target (frames staged as symlinks)
        beside = (
            Path(frame.path).parent / cand.name,
            Path(os.path.realpath(frame.path)).parent / cand.name,
        )
        hit = next((p for p in (cand, *beside) if p.is_file()), None)
        if hit is None:
            missing[kind] = named[field_name]
        else:
            found[kind] = hit
            missing.pop(kind, None)
    return found, missing


def corrections_for(frame: Frame, c: Corrections, cache: dict | None = None) -> Corrections:
    """Corrections for a frame, completed with the dark/flat/mask files its header names
    (see :func:`header_files`). A named file is used when the user gave none of that kind;
    one that cannot be found is recorded in the provenance as not applied. ``cache`` maps
    the files found to the completed Corrections (each file read once per run)."""
    if not frame.metadata.files:
        return c
    found, missing = header_files(frame, c)
    key = (tuple(sorted((k, str(p)) for k, p in found.items())), tuple(sorted(missing.items())))
    if cache is not None and key in cache:
        return cache[key]
    notes: dict[str, Any] = dict(c.provenance)
    for kind, name in missing.items():
        notes[f"header_{kind}_not_found"] = name
    updates: dict[str, Any] = {}
    for kind, path in found.items():
        updates[kind] = load_correction_file(
            kind, path, shape=frame.data.shape if kind == "mask" else None
        )
        notes[f"{kind}_file"] = prov_mod.input_record(path)
    out = replace(c, **updates, provenance=notes) if (updates or notes != c.provenance) else c
    if cache is not None:
        cache[key] = out
    return out


def load_poni_arg(poni: str | Geometry | None) -> Geometry | None:
    """A ``--poni`` argument as a Geometry (a path is read; a Geometry is kept as loaded,
    e.g. with ``accept_implausible``); None: each frame's own header."""
    from ..geometry import load_geometry

    if isinstance(poni, Geometry):
        return poni
    return load_geometry(poni) if poni else None


class ReducerCache:
    """The reducers of a run, per frame: one geometry per file (the PONI given, else the
    frame's own header), the dark, flat and mask its header names (ESRF keys
    ``DarkFileName``, ``FlatfieldFileName``, ``(Detector)MaskFileName``; see
    :func:`corrections_for`) when none of that kind was given, and one :class:`Reducer`
    (one pyFAI engine) per (geometry, corrections).

    Every route that turns files into curves (serial ``reduce``, ``--workers``, ``run``,
    ``watch``, ``--chi``, the demo) gets its reducers here, so none can skip a step.
    """

    def __init__(
        self, corrections: Corrections | None = None, poni: str | Geometry | None = None
    ) -> None:
        self.corrections = corrections if corrections is not None else Corrections()
        self.poni = load_poni_arg(poni)
        self._corrections: dict = {}  # header-named files -> completed Corrections (kept alive)
        self._reducers: dict = {}  # (geometry, id of those Corrections) -> Reducer

    def reducer(self, frame: Frame) -> Reducer:
        """The reducer for this frame (built on first use, then reused)."""
        geo = geometry_for(frame, self.poni)
        if geo.shape is None:
            geo = geo.with_shape(frame.data.shape)
        corr = corrections_for(frame, self.corrections, self._corrections)
        key = (geo, id(corr))
        red = self._reducers.get(key)
        if red is None:
            red = self._reducers[key] = Reducer(geo, corr)
        return red


def iter_reducers(
    paths: Sequence[str], cache: ReducerCache, frames: Sequence[int] | None = None
) -> Iterator[tuple[Frame, Reducer]]:
    """The one frame iterator: (frame, its reducer) for the selected frames of each file,
    one frame in memory at a time. Frames are named after the path as given (a symlink's
    own name, never its target's)."""
    from ..io.frames import iter_frames

    for path in paths:
        for frame in iter_frames(path, frames):
            yield frame, cache.reducer(frame)


def iter_curves(
    paths: Sequence[str],
    corrections: Corrections | None = None,
    poni: str | Geometry | None = None,
    frames: Sequence[int] | None = None,
    cache: ReducerCache | None = None,
) -> Iterator[Curve]:
    """Files and a frame selection in, curves out (see :class:`ReducerCache`).

    Example
    -------
    >>> for curve in iter_curves(["sp_001.edf"], Corrections(npt=500), poni="saxs_1m.poni"):  # doctest: +SKIP
    ...     print(curve.name, curve.unit)
    """
    cache = cache if cache is not None else ReducerCache(corrections, poni)
    for frame, red in iter_reducers(paths, cache, frames):
        yield red.reduce(frame)


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
    caches: dict[int, ReducerCache] = {}

    def curves_of(
        files: Sequence[str], corr: Corrections, frames: Sequence[int] | None = None
    ) -> list[Curve]:
        cache = caches.setdefault(id(corr), ReducerCache(corr, job.poni))
        return list(iter_curves(files, cache=cache, frames=frames))

    bg_curve = None
    if job.background:
        bg_corr = replace(c, transmission=job.background_transmission)
        bgs = curves_of(job.background, bg_corr)
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
        waters = curves_of(job.water, w_corr)
        water = average_curves(waters, alpha=job.alpha).curve if len(waters) > 1 else waters[0]
        empty = None
        if job.water_empty:
            empties = curves_of(job.water_empty, w_corr)
            empty = (
                average_curves(empties, alpha=job.alpha).curve if len(empties) > 1 else empties[0]
            )
        water_cal = water_scale_factor(water, empty)
    curves = curves_of(paths, c, job.frames)
    verdicts: tuple[FrameVerdict, ...] = ()
    if job.average:
        avg = average_curves(curves, alpha=job.alpha, name=series_name([cv.name for cv in curves]))
        curves = [avg.curve]
        verdicts = avg.verdicts
    if bg_curve is not None:
        curves = [subtract_background(cv, bg_curve) for cv in curves]
    if water_cal is not None:
        curves = [scale_curve(cv, water_cal.factor, water_cal.factor_err) for cv in curves]
    return ReduceOutput(tuple(curves), verdicts, water_cal, bg_curve)


#: What a per-steradian curve means (in its provenance and .dat header).
INTENSITY_SR_NOTE = (
    "sr^-1: counts per unit monitor per steradian of pixel solid angle (d Sigma/d Omega up to the "
    "absolute scale K, thickness and transmission as recorded); not absolute units, so NXcanSAS "
    "I@units = 'arbitrary' until scaled to 1/cm"
)


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
        # the intensity unit travels in the provenance too: NXcanSAS can only call a
        # per-steradian curve "arbitrary" (its I@units list has no 1/sr)
        prov = {**cv.provenance, "intensity_unit": cv.unit}
        if cv.unit == "sr^-1":
            prov["intensity_unit_note"] = INTENSITY_SR_NOTE
        prov_json = prov_mod.to_json(prov, indent=None)  # once for both files
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

    if not paths:
        raise InputError("reduce: no frame files given")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file; check the path")
    written: list[str] = []
    for curve in iter_curves(paths, job.corrections, job.poni, job.frames):
        written.extend(write_curves([curve], outdir, formats))
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

    written = []
    for frame, red in iter_reducers(paths, ReducerCache(job.corrections, job.poni), job.frames):
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
