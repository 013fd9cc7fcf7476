"""Reading detector frames (fabio, h5py) into small typed :class:`Frame` objects.

Every format fabio reads (EDF, EDF.gz, CBF, TIFF, Eiger/NeXus HDF5 with several frames
per file) and ESRF ID02 LIMA HDF5 files, whose "SAXS keyword" header lives in
``/<entry>/instrument/<detector>/header``. Header keys are normalised into
:class:`FrameMetadata` (SI units); the raw header stays available.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance as prov_mod
from ..errors import InputError

# Header names, in order of preference (SCIENCE.md section 2: ID02 writes several).
_MONITOR1_KEYS = ("Intensity1ShutCor", "Intensity1", "HSI1", "Intensity1UnCor")
_MONITOR0_KEYS = ("Intensity0ShutCor", "Intensity0", "HSI0", "Intensity0UnCor")
_EXPOSURE_KEYS = ("ExposureTime", "HSTime", "acq_expo_time", "count_time", "exposure_time")


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
    for suf in (".edf.gz", ".edf.bz2", ".cbf.gz", ".tif", ".tiff", ".edf", ".cbf", ".h5", ".hdf5", ".nxs", ".npy"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return p.stem


def _f(header: dict[str, str], *keys: str) -> float | None:
    for k in keys:
        if k in header:
            try:
                v = float(str(header[k]).split()[0])
            except (ValueError, IndexError):
                continue
            return v
    return None


def parse_metadata(header: dict[str, str]) -> FrameMetadata:
    """Normalise an ESRF "SAXS keyword" header (or similar) into :class:`FrameMetadata`."""
    h = {str(k): str(v) for k, v in header.items()}
    mon1 = _f(h, *_MONITOR1_KEYS[:2])
    if mon1 is None and "HSI1" in h:
        mon1 = _f(h, "HSI1") * (_f(h, "HSI1Factor") or 1.0)  # type: ignore[operator]
    if mon1 is None:
        mon1 = _f(h, "Intensity1UnCor")
    mon0 = _f(h, *_MONITOR0_KEYS[:2])
    if mon0 is None and "HSI0" in h:
        mon0 = _f(h, "HSI0") * (_f(h, "HSI0Factor") or 1.0)  # type: ignore[operator]
    if mon0 is None:
        mon0 = _f(h, "Intensity0UnCor")
    if any(k in h for k in ("DetectorRotation_1", "DetectorRotation_2", "DetectorRotation_3")):
        rots = tuple(_f(h, f"DetectorRotation_{i}") or 0.0 for i in (1, 2, 3))
        conv = "DetectorRotation"
    elif any(k in h for k in ("Rot_1", "Rot_2", "Rot_3")):
        rots = tuple(_f(h, f"Rot_{i}") or 0.0 for i in (1, 2, 3))
        conv = "Rot"
    else:
        rots, conv = (0.0, 0.0, 0.0), "none"
    files = {}
    for key in ("DarkFileName", "FlatfieldFileName", "DetectorMaskFileName", "MaskFileName", "WindowFileName"):
        if key in h and h[key].strip():
            folder = h.get(key.replace("FileName", "FilePath"), "").strip()
            files[key] = os.path.join(folder, h[key].strip()) if folder else h[key].strip()
    bs1 = _f(h, "BSize_1") or 1.0
    bs2 = _f(h, "BSize_2") or 1.0
    return FrameMetadata(
        exposure_s=_f(h, *_EXPOSURE_KEYS),
        monitor=mon1,
        monitor0=mon0,
        transmission=_f(h, "Transmission", "SampleTransmission"),
        wavelength_m=_f(h, "WaveLength"),
        distance_m=_f(h, "SampleDistance"),
        center_1_px=_f(h, "Center_1"),
        center_2_px=_f(h, "Center_2"),
        psize_1_m=_f(h, "PSize_1"),
        psize_2_m=_f(h, "PSize_2"),
        rot_1_rad=rots[0],
        rot_2_rad=rots[1],
        rot_3_rad=rots[2],
        rotation_convention=conv,
        dummy=_f(h, "Dummy"),
        ddummy=_f(h, "DDummy"),
        thickness_m=_f(h, "SampleThickness"),
        normalization_factor=_f(h, "NormalizationFactor"),
        binning=(int(bs1), int(bs2)),
        files=files,
    )


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


@contextlib.contextmanager
def _open_fabio(p: Path):
    import fabio

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
        meta = parse_metadata(header)
        for i in _select(indices, n, p):
            try:
                arr = ds[()] if ds.ndim == 2 else ds[i]
            except (OSError, ValueError) as exc:
                raise InputError(f"{p}: frame {i} cannot be read ({exc}); the file may be truncated") from None
            yield Frame(np.asarray(arr), header, meta, str(p), i, n, checksum)


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
                    raise InputError(f"{p}: frame {i} cannot be read ({type(exc).__name__}: {exc})") from None
            if cap.messages and any("incomplete" in m.lower() for m in cap.messages):
                raise InputError(f"{p}: frame {i} is truncated; the file is incomplete")
            if data.ndim != 2 or data.size == 0:
                raise InputError(f"{p}: frame {i} has shape {data.shape}; expected a 2-D image")
            header = {str(k): str(v) for k, v in dict(sub.header).items()}
            yield Frame(data, header, parse_metadata(header), str(p), i, n, checksum)


def read_frame(path: str | os.PathLike, index: int = 0) -> Frame:
    """Read one frame of a file (default the first)."""
    return next(iter_frames(path, [index]))


def read_image(path: str | os.PathLike, what: str = "image") -> np.ndarray:
    """Read a 2-D array (dark, flat, mask) from any frame format; the first frame of multi-frame files."""
    return read_frame(path).data
