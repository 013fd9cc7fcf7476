"""Reading detector frames (fabio, h5py) into small typed :class:`Frame` objects.

Every format fabio reads (EDF, EDF.gz, CBF, TIFF, Eiger/NeXus HDF5 with several frames
per file) and ESRF ID02 LIMA HDF5 files, whose "SAXS keyword" header lives in
``/<entry>/instrument/<detector>/header``. Header keys are normalised into
:class:`FrameMetadata` (SI units; :mod:`saxsred.io.header`, and :mod:`saxsred.io.sidecars`
for metadata in files beside the frame); the raw header stays available. A damaged file
(truncated, a header declaring more data than the file holds) is one :class:`InputError`
line, never a library traceback or a frame padded with zeros.

The header and side-file names (:class:`FrameMetadata`, :func:`parse_metadata`,
:func:`frame_metadata`, :func:`check_monitor`, :func:`file_stem`...) are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import provenance as prov_mod
from ..errors import InputError
from .header import (
    MONITOR_KEYS,
    MONITOR_MIN_PLAUSIBLE,
    XEUSS_GAMMA_MAX_DEG,
    FrameMetadata,
    check_monitor,
    monitor_keys_present,
    parse_metadata,
    pilatus_header,
)
from .sidecars import file_stem, frame_metadata, sidecar_metadata

__all__ = [
    "MAX_FRAME_PIXELS",
    "MONITOR_KEYS",
    "MONITOR_MIN_PLAUSIBLE",
    "XEUSS_GAMMA_MAX_DEG",
    "Frame",
    "FrameMetadata",
    "check_monitor",
    "count_frames",
    "file_stem",
    "frame_metadata",
    "iter_frames",
    "missing_monitor_message",
    "monitor_keys_present",
    "parse_metadata",
    "pilatus_header",
    "read_frame",
    "read_image",
    "sidecar_metadata",
]


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


# ------------------------------------------------------------------ files and fabio


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
