"""Metadata beside the header: an EDNA XML of the same stem, a beamline log (BioCAT).

:func:`frame_metadata` merges, in order, the frame's own header, a Pilatus header inside
it, and these side files; each value's origin is kept in ``FrameMetadata.sources``.
:func:`file_stem` is the stem a frame file shares with its side files (and its outputs).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from .header import FrameMetadata, parse_metadata, pilatus_header


def file_stem(p: Path) -> str:
    """File name without its frame-format suffix (``a.edf.gz`` -> ``a``)."""
    name = p.name
    for suf in (
        ".edf.gz",
        ".edf.bz2",
        ".cbf.gz",
        ".tif",
        ".tiff",
        ".edf",
        ".cbf",
        ".h5",
        ".hdf5",
        ".nxs",
        ".npy",
    ):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return p.stem


def _edna_sidecar(p: Path) -> tuple[dict[str, str], dict[str, str]] | None:
    """EDNA/BM29 ``XSDataInputBioSaxs...`` XML beside a frame (same stem): its values as
    ESRF header keys, and where each came from."""
    import xml.etree.ElementTree as ET

    xml = p.with_name(file_stem(p) + ".xml")
    if not xml.is_file():
        return None
    try:
        root = ET.parse(xml).getroot()
    except (OSError, ET.ParseError):
        return None
    if not root.tag.startswith("XSDataInputBioSaxs"):
        return None
    keys: dict[str, str] = {}
    where: dict[str, str] = {}
    # beamStopDiode is the transmitted beam on the beamstop: the after-sample monitor (a current)
    for tag, key in (
        ("normalizationFactor", "NormalizationFactor"),
        ("exposureTime", "ExposureTime"),
        ("beamStopDiode", "Intensity1"),
        ("detectorDistance", "SampleDistance"),
        ("wavelength", "WaveLength"),
    ):
        node = root.find(f".//{tag}/value")
        if node is not None and node.text and node.text.strip():
            keys[key] = node.text.strip()
            where[key] = f"EDNA XML {xml.name} <{tag}>"
    return keys, where


_LOG_FRAME = re.compile(r"^(?P<prefix>.+?)(?:_data)?_(?P<num>\d+)$")


def _log_sidecar(p: Path, index: int) -> tuple[dict[str, str], dict[str, str]] | None:
    """A beamline log file beside the frame (BioCAT ``<prefix>.log``: ``#Key:\tvalue`` lines,
    then one row per frame with exposure_time, I0, I1, ...): the row of this frame."""
    stem = file_stem(p)
    m = _LOG_FRAME.match(stem)
    log = None
    prefix = stem
    while True:
        cand = p.with_name(prefix + ".log")
        if cand.is_file():
            log = cand
            break
        mm = re.match(r"^(.+)_[^_]+$", prefix)
        if not mm:
            return None
        prefix = mm.group(1)
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    info: dict[str, str] = {}
    columns: list[str] = []
    rows: list[list[str]] = []
    for line in lines:
        if line.startswith("#"):
            body = line[1:]
            if "\t" in body and ":" not in body.split("\t")[0]:
                columns = [c.strip() for c in body.split("\t")]
            elif ":" in body:
                k, v = body.split(":", 1)
                info[k.strip()] = v.strip()
        elif line.strip():
            rows.append([c.strip() for c in line.split("\t")])
    if not columns or not rows:
        return None
    per_file = int(float(info.get("Number of images per file", "0") or 0) or 0)
    file_no = int(m.group("num")) if (m and "_data_" in stem and m.group("num")) else 1
    frame_no = (file_no - 1) * per_file + index + 1 if per_file else index + 1
    want = f"{prefix}_{frame_no:06d}"
    row = next((r for r in rows if r and r[0] == want), None)
    if row is None:
        return None
    vals = dict(zip(columns, row))
    keys: dict[str, str] = {}
    where: dict[str, str] = {}
    label = f"beamline log {log.name}, row {want}"
    if "exposure_time" in vals:
        keys["ExposureTime"] = vals["exposure_time"]
        where["ExposureTime"] = f"{label}, column exposure_time"
    # BioCAT's I0 and I1 are ion chambers upstream of the sample (I1 after the guard slits,
    # the counter BioXTAS RAW's BioCAT settings normalise by): an incident-beam monitor.
    if "I1" in vals:
        keys["Intensity0"] = vals["I1"]
        where["Intensity0"] = f"{label}, column I1 (incident-beam ion chamber)"
    for c in columns[1:]:
        keys.setdefault(f"log_{c}", vals.get(c, ""))
    return keys, where


def sidecar_metadata(
    path: str | os.PathLike, index: int = 0
) -> tuple[dict[str, str], dict[str, str]]:
    """Metadata in files beside a frame: an EDNA XML of the same stem, a beamline log.

    Returns (keys as ESRF header names, where each came from); empty when there is none.
    """
    p = Path(path)
    keys: dict[str, str] = {}
    where: dict[str, str] = {}
    for found in (_edna_sidecar(p), _log_sidecar(p, index)):
        if found:
            for k, v in found[0].items():
                keys.setdefault(k, v)
            for k, v in found[1].items():
                where.setdefault(k, v)
    return keys, where


def frame_metadata(
    header: dict[str, str], path: str | os.PathLike | None = None, index: int = 0
) -> FrameMetadata:
    """Metadata of one frame: its header first, then a Pilatus header inside it, then side files.

    Each value's origin is in ``sources``: the header key, the Pilatus header line, or the
    side file and its tag/column.
    """
    meta = parse_metadata(header)
    extra: dict[str, str] = {}
    where: dict[str, str] = {}
    pil = pilatus_header(header)
    for k, v in pil.items():
        extra[k] = v
        where[k] = f"Pilatus header (TIFF/CBF description) {k}"
    if path is not None:
        side, side_where = sidecar_metadata(path, index)
        for k, v in side.items():
            extra.setdefault(k, v)
            where.setdefault(k, side_where.get(k, k))
    if not extra:
        return meta
    more = parse_metadata({k: v for k, v in extra.items() if k not in header}, where="")
    changes: dict[str, Any] = {}
    sources = dict(meta.sources)
    for name, src in more.sources.items():
        if name in ("rotations",) or getattr(meta, name, None) is not None:
            continue
        changes[name] = getattr(more, name)
        sources[name] = where.get(src.strip(), src.strip())
    if not changes:
        return meta
    return replace(meta, **changes, sources=sources)
