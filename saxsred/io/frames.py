"""Reading detector frames (fabio, h5py) into small typed :class:`Frame` objects.

Every format fabio reads (EDF, EDF.gz, CBF, TIFF, Eiger/NeXus HDF5 with several frames
per file) and ESRF ID02 LIMA HDF5 files, whose "SAXS keyword" header lives in
``/<entry>/instrument/<detector>/header``. Header keys are normalised into
:class:`FrameMetadata` (SI units); the raw header stays available.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance as prov_mod
from ..errors import InputError

# Header names, in order of preference (SCIENCE.md section 2: ID02 writes several).
_MONITOR1_KEYS = ("Intensity1ShutCor", "Intensity1", "HSI1", "Intensity1UnCor")
_MONITOR0_KEYS = ("Intensity0ShutCor", "Intensity0", "HSI0", "Intensity0UnCor")
_EXPOSURE_KEYS = (
    "ExposureTime",
    "HSTime",
    "acq_expo_time",
    "count_time",
    "exposure_time",
    "Exposure_time",
)
# What each monitor mode reads, for messages that list what a header does have.
MONITOR_KEYS = {
    "I1": _MONITOR1_KEYS + ("HSI1",),
    "I0": _MONITOR0_KEYS + ("HSI0",),
    "exposure": _EXPOSURE_KEYS,
}
# A monitor below this is not a count: usually a diode current in A or a ratio (the Xeuss
# writes Intensity1 = 2.4e-17), which would scale I by 1e17 without a word.
MONITOR_MIN_PLAUSIBLE = 1e-6


@dataclass(frozen=True)
class FrameMetadata:
    """Header values saxsred understands, normalised to SI units (None when absent).

    Attributes
    ----------
    exposure_s : exposure time (ExposureTime or HSTime).
    monitor : after-sample (transmitted-beam) monitor I1 (Intensity1ShutCor, Intensity1, HSI1 x HSI1Factor).
    monitor0 : before-sample monitor I0 (Intensity0ShutCor, Intensity0, HSI0 x HSI0Factor).
    transmission : sample transmission if the header gives it (``Transmission``).
    wavelength_m, distance_m : WaveLength, SampleDistance.
    center_1_px, center_2_px : PONI in pixels, Center_1 along the fast axis (x, columns),
        Center_2 along the slow axis (y, rows).
    psize_1_m, psize_2_m : pixel sizes along fast (1) and slow (2) axes.
    rot_1_rad, rot_2_rad, rot_3_rad : detector rotations (Rot_1/2/3 or DetectorRotation_1/2/3).
    dummy, ddummy : invalid-pixel marker and its tolerance.
    thickness_m : SampleThickness.
    normalization_factor : NormalizationFactor (absolute scale, ID02).
    binning : (BSize_1, BSize_2).
    files : dark/flat/mask file names named by the header (with their folders).
    rotation_convention : where the rotations came from: ``"none"``, ``"DetectorRotation"``,
        ``"Rot"`` (dahu) or ``"xeuss_arm"`` (Xenocs ``Delta``/``Gamma`` arm angles, degrees:
        Delta -> pyFAI rot2, Gamma -> pyFAI -rot1; see :func:`parse_metadata`).
    sources : for each value above that is set, where it came from (``"header Intensity1"``,
        ``"EDNA XML WT_001_00001.xml <exposureTime>"``, ``"BioCAT log vac_007.log, row
        vac_007_000001, column I1"``...).
    """

    exposure_s: float | None = None
    monitor: float | None = None
    monitor0: float | None = None
    transmission: float | None = None
    wavelength_m: float | None = None
    distance_m: float | None = None
    center_1_px: float | None = None
    center_2_px: float | None = None
    psize_1_m: float | None = None
    psize_2_m: float | None = None
    rot_1_rad: float = 0.0
    rot_2_rad: float = 0.0
    rot_3_rad: float = 0.0
    rotation_convention: str = "none"
    dummy: float | None = None
    ddummy: float | None = None
    thickness_m: float | None = None
    normalization_factor: float | None = None
    binning: tuple[int, int] = (1, 1)
    files: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Frame:
    """One detector frame: counts, header, normalised metadata, and where it came from.

    Attributes
    ----------
    data : 2-D array of raw counts (slow axis first: rows = y, columns = x).
    header : raw header, keys and values as strings.
    metadata : :class:`FrameMetadata`.
    path : source file.
    index : frame index within the file (0 for single-frame files).
    nframes : number of frames in the source file.
    checksum : checksum of the source file (computed once per file).
    """

    data: np.ndarray
    header: dict[str, str]
    metadata: FrameMetadata
    path: str
    index: int = 0
    nframes: int = 1
    checksum: str = ""

    @property
    def name(self) -> str:
        """File stem, with ``_<index>`` for multi-frame files."""
        stem = file_stem(Path(self.path))
        return f"{stem}_{self.index:04d}" if self.nframes > 1 else stem

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]


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


def _fk(header: dict[str, str], *keys: str) -> tuple[float | None, str | None]:
    """The first of ``keys`` whose value parses as a number, and that key."""
    for k in keys:
        if k in header:
            try:
                v = float(str(header[k]).split()[0])
            except (ValueError, IndexError):
                continue
            return v, k
    return None, None


def _f(header: dict[str, str], *keys: str) -> float | None:
    return _fk(header, *keys)[0]


# Xenocs Xeuss arm angles. Convention confirmed on a real Xeuss 3.0 glassy-carbon frame
# (tests/test_io_frames.py::test_xeuss_arm_angles_put_glassy_carbon_at_18): with the PONI at
# (Center_1, Center_2) and pyFAI rot2 = +Delta, the carbon (002) ring is at q = 17.8 nm^-1 and
# at the same q (+/- 0.1) in every column of the detector; with rot2 = -Delta it drifts from
# 18.8 to 20.9 nm^-1 across the detector, and Delta as rot1 puts no ring in the 14-23 band.
# Gamma (0.24 deg on that frame) moves q by < 0.1 nm^-1, too little to confirm its sign there:
# it is applied as rot1 = -Gamma (CEA's SWAXSanalysis convention, which the frame weakly
# prefers), and a Gamma above XEUSS_GAMMA_MAX_DEG is refused rather than guessed.
XEUSS_GAMMA_MAX_DEG = 1.0


def _binning(header: dict[str, str], key: str, where: str) -> int:
    value = _f(header, key)
    if value is None or value == 0:
        return 1
    if not math.isfinite(value) or value < 1 or value > 64 or value != int(value):
        raise InputError(
            f"{where}: {key} = {header.get(key)!r} is not a detector binning (a whole number"
            " from 1 to 64): correct or remove the key"
        )
    return int(value)


def parse_metadata(header: dict[str, str], where: str = "header") -> FrameMetadata:
    """Normalise an ESRF "SAXS keyword" header (or similar) into :class:`FrameMetadata`.

    Every value found is recorded in ``sources`` with the key it came from (``where``
    names the header: ``"header"`` for the frame's own, or a side file).
    """
    h = {str(k): str(v) for k, v in header.items()}
    src: dict[str, str] = {}

    def take(name: str, *keys: str) -> float | None:
        v, k = _fk(h, *keys)
        if v is not None:
            src[name] = f"{where} {k}"
        return v

    mon1 = take("monitor", *_MONITOR1_KEYS[:2])
    if mon1 is None and _f(h, "HSI1") is not None:
        mon1 = _f(h, "HSI1") * (_f(h, "HSI1Factor") or 1.0)  # type: ignore[operator]
        src["monitor"] = f"{where} HSI1 x HSI1Factor"
    if mon1 is None:
        mon1 = take("monitor", "Intensity1UnCor")
    mon0 = take("monitor0", *_MONITOR0_KEYS[:2])
    if mon0 is None and _f(h, "HSI0") is not None:
        mon0 = _f(h, "HSI0") * (_f(h, "HSI0Factor") or 1.0)  # type: ignore[operator]
        src["monitor0"] = f"{where} HSI0 x HSI0Factor"
    if mon0 is None:
        mon0 = take("monitor0", "Intensity0UnCor")
    if any(k in h for k in ("DetectorRotation_1", "DetectorRotation_2", "DetectorRotation_3")):
        rots = tuple(_f(h, f"DetectorRotation_{i}") or 0.0 for i in (1, 2, 3))
        conv = "DetectorRotation"
    elif any(k in h for k in ("Rot_1", "Rot_2", "Rot_3")):
        rots = tuple(_f(h, f"Rot_{i}") or 0.0 for i in (1, 2, 3))
        conv = "Rot"
    elif (_f(h, "Delta") or 0.0) != 0.0 or (_f(h, "Gamma") or 0.0) != 0.0:
        # Xeuss arm, in degrees. rot_1 is stored in the DetectorRotation convention (axis 1 =
        # fast, becomes pyFAI rot2), rot_2 becomes pyFAI rot1: see XEUSS_GAMMA_MAX_DEG above.
        rots = (math.radians(_f(h, "Delta") or 0.0), -math.radians(_f(h, "Gamma") or 0.0), 0.0)
        conv = "xeuss_arm"
    else:
        rots, conv = (0.0, 0.0, 0.0), "none"
    if conv != "none":
        src["rotations"] = (
            f"{where} "
            + {
                "DetectorRotation": "DetectorRotation_1/2/3 (rad)",
                "Rot": "Rot_1/2/3 (rad)",
                "xeuss_arm": "Delta/Gamma arm angles (deg): pyFAI rot2 = Delta, rot1 = -Gamma",
            }[conv]
        )
    files = {}
    for key in (
        "DarkFileName",
        "FlatfieldFileName",
        "DetectorMaskFileName",
        "MaskFileName",
        "WindowFileName",
    ):
        if key in h and h[key].strip():
            folder = h.get(key.replace("FileName", "FilePath"), "").strip()
            files[key] = os.path.join(folder, h[key].strip()) if folder else h[key].strip()
    bs1 = _binning(h, "BSize_1", where)
    bs2 = _binning(h, "BSize_2", where)
    return FrameMetadata(
        exposure_s=take("exposure_s", *_EXPOSURE_KEYS),
        monitor=mon1,
        monitor0=mon0,
        transmission=take("transmission", "Transmission", "SampleTransmission"),
        wavelength_m=take("wavelength_m", "WaveLength"),
        distance_m=take("distance_m", "SampleDistance"),
        center_1_px=take("center_1_px", "Center_1"),
        center_2_px=take("center_2_px", "Center_2"),
        psize_1_m=take("psize_1_m", "PSize_1"),
        psize_2_m=take("psize_2_m", "PSize_2"),
        rot_1_rad=rots[0],
        rot_2_rad=rots[1],
        rot_3_rad=rots[2],
        rotation_convention=conv,
        dummy=take("dummy", "Dummy"),
        ddummy=take("ddummy", "DDummy"),
        thickness_m=take("thickness_m", "SampleThickness"),
        normalization_factor=take("normalization_factor", "NormalizationFactor"),
        binning=(bs1, bs2),
        files=files,
        sources=src,
    )


def monitor_keys_present(header: dict[str, str]) -> list[str]:
    """The monitor and time keys a header has (any spelling saxsred reads), for messages."""
    keys = dict.fromkeys(k for ks in MONITOR_KEYS.values() for k in ks)
    return [k for k in keys if _f(header, k) is not None]


def missing_monitor_message(frame: Frame, mode: str) -> str:
    """One line for ``--monitor MODE`` on a frame without that monitor: what exists, what to do."""
    where = frame.path if frame.nframes == 1 else f"{frame.path} frame {frame.index}"
    wanted = "/".join(MONITOR_KEYS.get(mode, (mode,))[:3])
    have = monitor_keys_present(frame.header)
    md = frame.metadata
    alt = [
        m
        for m, v in (("I1", md.monitor), ("I0", md.monitor0), ("exposure", md.exposure_s))
        if v is not None and m != mode
    ]
    if have or alt:
        found = ", ".join(f"{k} = {frame.header[k]}" for k in have) or ", ".join(
            f"{m} from {md.sources.get({'I1': 'monitor', 'I0': 'monitor0', 'exposure': 'exposure_s'}[m], '?')}"
            for m in alt
        )
        todo = f"use --monitor {alt[0]}" if alt else "use --monitor none"
        return f"{where}: no {wanted} for --monitor {mode}; it has {found}: {todo} (or none and --scale)"
    return (
        f"{where}: no {wanted} for --monitor {mode}, and no monitor or exposure key at all; "
        "use --monitor none (relative scale) or add the monitor to the header"
    )


def check_monitor(value: float | None, key: str, where: str) -> None:
    """Refuse a monitor that is not positive and finite; warn when it is not a count.

    A value below :data:`MONITOR_MIN_PLAUSIBLE` (a diode current in A, a ratio) would
    multiply the intensities by its inverse: said in one :class:`InputWarning` line.
    """
    import warnings

    from ..errors import InputWarning

    if value is None:
        return
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"{where}: {key} = {value} must be positive and finite; the beam was off or the header is wrong"
        )
    if value < MONITOR_MIN_PLAUSIBLE:
        warnings.warn(
            f"{where}: {key} = {value:.3g} used as a monitor divides I by {value:.3g} (I ~ {1 / value:.1g} x counts); "
            "it looks like a current or a ratio, not counts: use --monitor exposure, or keep it and set --scale",
            InputWarning,
            stacklevel=2,
        )


# ------------------------------------------------------------- metadata beside the header

_PILATUS_LINE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_]*)[:=]?\s+(.+?)\s*$")


def pilatus_header(header: dict[str, str]) -> dict[str, str]:
    """The ``# Key value unit`` lines of a Pilatus/Eiger (camserver) header, as a dict.

    Pilatus TIFF frames keep them in the TIFF ImageDescription, CBF frames in
    ``_array_data.header_contents``: ``Exposure_time 5.0000000 s``, ``Wavelength 1.54 A``...
    """
    text = header.get("imageDescription") or header.get("_array_data.header_contents") or ""
    out: dict[str, str] = {}
    if "# " not in text:
        return out
    for line in str(text).replace("\r", "").splitlines():
        m = _PILATUS_LINE.match(line.strip())
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


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


class _CaptureErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _fabio_errors() -> Iterator[_CaptureErrors]:
    # fabio logs (does not raise) when a data block is shorter than its header says and
    # pads with zeros: capture that so a truncated frame is an error, not a silent zero.
    handler = _CaptureErrors()
    logger = logging.getLogger("fabio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _is_h5(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames in a file (cheap: does not read the pixel data of HDF5 files)."""
    p = _check_path(path)
    if _is_h5(p):
        ds, _ = _h5_locate(p)
        return ds[0]
    with _open_fabio(p) as img:
        return int(getattr(img, "nframes", 1) or 1)


def _check_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path (and --data for recipes)")
    if p.is_dir():
        raise InputError(f"{p}: is a folder; give frame files (a shell glob such as {p}/*.edf)")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file (0 bytes); was it written completely?")
    return p


_EDF_BYTES = {
    "unsignedbyte": 1,
    "signedbyte": 1,
    "unsigned8": 1,
    "signed8": 1,
    "unsignedshort": 2,
    "signedshort": 2,
    "unsigned16": 2,
    "signed16": 2,
    "unsignedinteger": 4,
    "signedinteger": 4,
    "unsigned32": 4,
    "signed32": 4,
    "unsignedlong": 4,
    "signedlong": 4,
    "floatvalue": 4,
    "float": 4,
    "floatieee32": 4,
    "real": 4,
    "doublevalue": 8,
    "double": 8,
    "floatieee64": 8,
    "signed64": 8,
    "unsigned64": 8,
}
# The most pixels a frame may declare (a 100-megapixel detector has 1e8).
MAX_FRAME_PIXELS = 2**30


def _edf_precheck(p: Path) -> None:
    """Refuse an EDF whose first header declares more data than the file can hold.

    fabio allocates what the header declares before reading: a header saying Dim_2 = 4e9
    would take all the memory (found by fuzzing). Compressed blocks may legitimately be
    smaller than declared, so they are bounded only by MAX_FRAME_PIXELS.
    """
    with open(p, "rb") as fh:
        head = fh.read(65536)
    if not head.lstrip().startswith(b"{") or b"}" not in head:
        return
    text = head[: head.index(b"}")].decode("latin-1")
    h: dict[str, str] = {}
    for part in text.lstrip("{ \r\n").split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            h[k.strip()] = v.strip()
    dims = []
    for key in ("Dim_1", "Dim_2", "Dim_3"):
        if key not in h:
            continue
        try:
            n = int(float(h[key]))
        except (ValueError, OverflowError):
            raise InputError(
                f"{p}: EDF header {key} = {h[key][:20]!r} is not a whole number; the header is damaged"
            ) from None
        if n <= 0:
            raise InputError(f"{p}: EDF header {key} = {n} must be positive; the header is damaged")
        dims.append(n)
    npix = math.prod(dims) if dims else 0
    if npix > MAX_FRAME_PIXELS:
        raise InputError(
            f"{p}: EDF header declares {npix:.3g} pixels (Dim_1 x Dim_2); the header is damaged"
        )
    nbytes = npix * _EDF_BYTES.get(h.get("DataType", "").lower(), 1)
    compressed = any(
        k.lower() == "compression" and v.lower() not in ("none", "") for k, v in h.items()
    )
    if nbytes and not compressed and p.suffix.lower() == ".edf" and nbytes > p.stat().st_size:
        raise InputError(
            f"{p}: EDF header declares {nbytes} bytes of data but the file has {p.stat().st_size}; "
            "the file is truncated or its header is wrong"
        )


@contextlib.contextmanager
def _open_fabio(p: Path):
    import fabio

    _edf_precheck(p)
    with _fabio_errors() as cap:
        try:
            img = fabio.open(str(p))
        except Exception as exc:  # fabio raises many types for unreadable files
            raise InputError(
                f"{p}: not a readable detector frame ({type(exc).__name__}: {str(exc)[:120]}); "
                "check the file is complete and in a format fabio reads"
            ) from None
    if any("incomplete" in m.lower() or "truncat" in m.lower() for m in cap.messages):
        raise InputError(
            f"{p}: truncated frame ({cap.messages[0][:100]}); the file is incomplete, "
            "copy it again or wait until it is written"
        )
    try:
        yield img
    finally:
        with contextlib.suppress(Exception):
            img.close()


# ---------------------------------------------------------------- HDF5 (ID02/LIMA, NeXus, Eiger)

_H5_DATA_PATHS = ("measurement/data", "data/data", "instrument/data")


def _h5_locate(p: Path) -> tuple[tuple[int, ...], str]:
    import h5py

    try:
        with h5py.File(p, "r") as fh:
            path = _h5_find_data(fh)
            if path is None:
                raise InputError(f"{p}: no 2-D or 3-D frame dataset found in the HDF5 file")
            ds = fh[path]
            shape = (1, *ds.shape) if ds.ndim == 2 else ds.shape
            return shape, path
    except OSError as exc:
        raise InputError(f"{p}: unreadable HDF5 file ({exc}); it may be truncated") from None


def _h5_find_data(fh) -> str | None:
    import h5py

    for entry in fh:
        g = fh[entry]
        if not isinstance(g, h5py.Group):
            continue
        for rel in _H5_DATA_PATHS:
            if rel in g and isinstance(g[rel], h5py.Dataset) and g[rel].ndim in (2, 3):
                return g[rel].name
        if "instrument" in g:
            for det in g["instrument"]:
                d = g["instrument"][det]
                if isinstance(d, h5py.Group) and "data" in d and d["data"].ndim in (2, 3):
                    return d["data"].name
    found: list[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (2, 3) and obj.size > 64 and not found:
            found.append(obj.name)

    fh.visititems(visit)
    return found[0] if found else None


def _h5_header(fh, data_path: str) -> dict[str, str]:
    import h5py

    parent = fh[data_path].parent
    header: dict[str, str] = {}
    for cand in (parent, parent.parent):
        if "header" in cand and isinstance(cand["header"], h5py.Group):
            for k, v in cand["header"].items():
                if isinstance(v, h5py.Dataset):
                    val = v[()]
                    if isinstance(val, bytes):
                        val = val.decode(errors="replace")
                    elif isinstance(val, np.ndarray) and val.size == 1:
                        val = val.item()
                        val = val.decode(errors="replace") if isinstance(val, bytes) else val
                    header[k] = str(val)
            break
    return header


def _read_h5(p: Path, indices: Sequence[int] | None, checksum: str) -> Iterator[Frame]:
    import h5py
    import hdf5plugin  # noqa: F401  (registers bitshuffle/LZ4 filters used by Eiger files)

    try:
        fh = h5py.File(p, "r")
    except OSError as exc:
        raise InputError(f"{p}: unreadable HDF5 file ({exc}); it may be truncated") from None
    with fh:
        path = _h5_find_data(fh)
        if path is None:
            raise InputError(f"{p}: no 2-D or 3-D frame dataset found in the HDF5 file")
        ds = fh[path]
        n = 1 if ds.ndim == 2 else ds.shape[0]
        header = _h5_header(fh, path)
        for i in _select(indices, n, p):
            try:
                arr = ds[()] if ds.ndim == 2 else ds[i]
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"{p}: frame {i} cannot be read ({exc}); the file may be truncated"
                ) from None
            yield Frame(
                np.asarray(arr), header, frame_metadata(header, p, i), str(p), i, n, checksum
            )


def _select(indices: Sequence[int] | None, n: int, p: Path) -> list[int]:
    if indices is None:
        return list(range(n))
    out = []
    for i in indices:
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise InputError(f"{p}: frame {i} requested but the file has {n} frame(s)")
        out.append(j)
    return out


def iter_frames(path: str | os.PathLike, frames: Sequence[int] | None = None) -> Iterator[Frame]:
    """Yield the frames of a file (all, or the given indices), one at a time.

    Parameters
    ----------
    path : EDF, EDF.gz, CBF, TIFF, NPY or HDF5 (Eiger/NeXus/ID02 LIMA) file.
    frames : frame indices to read (negative counts from the end); None reads all.

    Example
    -------
    >>> for frame in iter_frames("sample_data/sp_suspension.edf"):   # doctest: +SKIP
    ...     print(frame.name, frame.shape, frame.metadata.exposure_s)
    """
    p = _check_path(path)
    checksum = prov_mod.file_checksum(p)
    if _is_h5(p):
        yield from _read_h5(p, frames, checksum)
        return
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise InputError(f"{p}: unreadable .npy file ({exc})") from None
        arrs = arr[None] if arr.ndim == 2 else arr
        for i in _select(frames, arrs.shape[0], p):
            yield Frame(arrs[i], {}, FrameMetadata(), str(p), i, arrs.shape[0], checksum)
        return
    with _open_fabio(p) as img:
        n = int(getattr(img, "nframes", 1) or 1)
        for i in _select(frames, n, p):
            with _fabio_errors() as cap:
                try:
                    sub = img if i == 0 else img.getframe(i)
                    data = np.asarray(sub.data)
                except Exception as exc:
                    raise InputError(
                        f"{p}: frame {i} cannot be read ({type(exc).__name__}: {exc})"
                    ) from None
            if cap.messages and any("incomplete" in m.lower() for m in cap.messages):
                raise InputError(f"{p}: frame {i} is truncated; the file is incomplete")
            if data.ndim != 2 or data.size == 0:
                raise InputError(f"{p}: frame {i} has shape {data.shape}; expected a 2-D image")
            header = {str(k): str(v) for k, v in dict(sub.header).items()}
            yield Frame(data, header, frame_metadata(header, p, i), str(p), i, n, checksum)


def read_frame(path: str | os.PathLike, index: int = 0) -> Frame:
    """Read one frame of a file (default the first)."""
    return next(iter_frames(path, [index]))


def read_image(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Read a 2-D array (dark, flat, mask) from any frame format; the first frame of multi-frame files."""
    return read_frame(path).data
