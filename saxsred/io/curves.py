"""1-D curves: 3-column text (q nm^-1, I, sigma) and NXcanSAS HDF5, both ways.

Writers are deterministic (no dates, sorted provenance) and atomic. Readers accept the
files saxsred writes and common third-party text files (BioXTAS RAW, ESRF EDNA, Dioptas
``.xy``), and reject nonsense with one line naming the file and the fix.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .. import provenance as prov_mod
from ..curve import ChiProfile, Curve
from ..errors import InputError
from .atomic import atomic_path

_NUM_ROW = re.compile(r"^\s*[-+]?(\d|\.\d)")
_ANGSTROM_HINTS = ("1/a", "a^-1", "a-1", "å", "angstrom", "raw_version", "bioxtas", "### data:")
_NM_HINTS = ("1/nm", "nm^-1", "nm-1", "q*nm", "nm^{-1}", "q_nm")


def _detect_q_unit(header: str) -> str:
    h = header.lower()
    if any(k in h for k in _NM_HINTS):
        return "nm^-1"
    if any(k in h for k in _ANGSTROM_HINTS):
        return "A^-1"
    return "nm^-1"


def read_curve(path: str | os.PathLike, q_unit: str = "auto") -> Curve:
    """Read a 1-D curve written by saxsred or a third-party 2/3-column text file.

    Parameters
    ----------
    path : file name; ``.h5``/``.nxs``/``.hdf5`` are read as NXcanSAS, anything else as text.
    q_unit : ``"nm^-1"``, ``"A^-1"`` or ``"auto"`` (from the header: BioXTAS RAW files are in
        A^-1, saxsred and EDNA files say nm^-1; default nm^-1).

    Returns
    -------
    Curve with q in nm^-1. A 2-column file gets sigma = 0 and
    ``provenance["sigma_missing"] = True`` so that fits can say they are unweighted.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a curve file")
    if p.suffix.lower() in (".h5", ".hdf5", ".nxs", ".nx"):
        curve = _read_nxcansas(p)
    else:
        curve = _read_text(p, q_unit)
    _validate(curve, p)
    return curve


def _read_text(p: Path, q_unit: str) -> Curve:
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror}); check permissions") from None
    header_lines: list[str] = []
    rows: list[list[float]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.lstrip().startswith(("#", "!", ";", "%")) or not _NUM_ROW.match(line):
            header_lines.append(line)
            continue
        parts = re.split(r"[,\s]+", line.strip())
        try:
            rows.append([float(x) for x in parts])
        except ValueError:
            header_lines.append(line)
            continue
    if not rows:
        raise InputError(f"{p}: no numeric rows found; expected columns q, I[, sigma]")
    ncol = max(set(len(r) for r in rows), key=lambda n: sum(len(r) == n for r in rows))
    if ncol < 2:
        raise InputError(f"{p}: only one column; a curve needs q and I (and sigma)")
    data = np.array([r[:3] for r in rows if len(r) == ncol], dtype=float)
    unit = _detect_q_unit("\n".join(header_lines)) if q_unit == "auto" else q_unit
    q = data[:, 0] * (10.0 if unit in ("A^-1", "1/A") else 1.0)
    i = data[:, 1]
    sigma_missing = data.shape[1] < 3
    s = data[:, 2] if not sigma_missing else np.zeros_like(i)
    iunit = "arb"
    prov = {}
    for line in header_lines:
        m = re.match(r"#\s*intensity_unit\s*[:=]\s*(\S+)", line)
        if m:
            iunit = m.group(1)
        m = re.match(r"#\s*provenance\s*[:=]\s*(\{.*\})\s*$", line)
        if m:
            try:
                prov = json.loads(m.group(1))
            except json.JSONDecodeError:
                prov = {}
    prov = dict(prov)
    prov["source"] = prov_mod.input_record(p)
    if sigma_missing:
        prov["sigma_missing"] = True
    return Curve(q, i, s, unit=iunit, name=p.stem, provenance=prov)


def _read_nxcansas(p: Path) -> Curve:
    try:
        with h5py.File(p, "r") as fh:
            entry = None
            for key in fh:
                g = fh[key]
                if _attr(g, "canSAS_class") == "SASentry" or _attr(g, "NX_class") == "NXentry":
                    entry = g
                    break
            if entry is None:
                raise InputError(f"{p}: no SASentry group; not an NXcanSAS file")
            data = None
            for key in entry:
                g = entry[key]
                if isinstance(g, h5py.Group) and (
                    _attr(g, "canSAS_class") == "SASdata" or _attr(g, "NX_class") == "NXdata"
                ):
                    data = g
                    break
            if data is None:
                raise InputError(f"{p}: no SASdata group in {entry.name}")
            sig = _attr(data, "signal") or "I"
            i = np.asarray(data[sig][()], dtype=float)
            axes = _attr(data, "I_axes") or "Q"
            q = np.asarray(data[axes.split(",")[0]][()], dtype=float)
            qunits = _attr(data[axes.split(",")[0]], "units") or "1/nm"
            unc = _attr(data[sig], "uncertainties") or "Idev"
            s = np.asarray(data[unc][()], dtype=float) if unc in data else np.zeros_like(i)
            iunit = _attr(data[sig], "units") or "arb"
            prov = {}
            for key in entry:
                g = entry[key]
                if isinstance(g, h5py.Group) and _attr(g, "canSAS_class") == "SASprocess":
                    if "provenance" in g:
                        raw = g["provenance"][()]
                        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
                        try:
                            prov = json.loads(raw)
                        except json.JSONDecodeError:
                            prov = {}
    except OSError as exc:
        raise InputError(f"{p}: not a readable HDF5 file ({exc}); re-export it") from None
    except KeyError as exc:
        raise InputError(f"{p}: NXcanSAS dataset missing ({exc}); re-export it") from None
    if qunits.strip() in ("1/A", "1/angstrom", "A^-1"):
        q = q * 10.0
    iunit = {"1/cm": "cm^-1", "1/sr": "sr^-1", "arbitrary": "arb"}.get(iunit, iunit)
    prov = dict(prov)
    prov["source"] = prov_mod.input_record(p)
    return Curve(q, i, s, unit=iunit, name=p.stem, provenance=prov)


def _attr(obj, key):
    v = obj.attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.item()
        if isinstance(v, bytes):
            v = v.decode()
    return v


def _validate(curve: Curve, p: Path) -> None:
    if len(curve) == 0:
        raise InputError(f"{p}: the curve is empty")
    if not np.all(np.isfinite(curve.q_nm)):
        raise InputError(f"{p}: q contains NaN or infinity; remove those rows")
    if np.any(curve.q_nm < 0):
        raise InputError(f"{p}: negative q values; q must be >= 0 (is the first column q?)")
    bad = ~np.isfinite(curve.intensity) | ~np.isfinite(curve.sigma)
    if np.any(bad):
        n = int(bad.sum())
        raise InputError(
            f"{p}: {n} row(s) with NaN or infinite intensity/sigma (first at q = "
            f"{curve.q_nm[bad][0]:.4g} nm^-1); remove or mask them before analysis"
        )
    if np.any(curve.sigma < 0):
        raise InputError(f"{p}: negative sigma values; the third column must be a standard deviation")
    if np.any(np.diff(curve.q_nm) <= 0):
        raise InputError(f"{p}: q is not strictly increasing; sort the rows and remove duplicates")


_UNIT_NX = {"cm^-1": "1/cm", "sr^-1": "1/sr", "arb": "arbitrary"}


_Q_STRINGS: dict[str, list[str]] = {}


def _q_strings(q: np.ndarray) -> list[str]:
    key = prov_mod.array_checksum(q)
    out = _Q_STRINGS.get(key)
    if out is None:
        if len(_Q_STRINGS) >= 8:
            _Q_STRINGS.clear()
        out = _Q_STRINGS[key] = [f"{v:.8e}" for v in q.tolist()]
    return out


def write_dat(
    curve: Curve, path: str | os.PathLike, prov_json: str | None = None, checksums: dict[str, str] | None = None
) -> Path:
    """Write a 3-column text file (q nm^-1, I, sigma) with a commented provenance header.

    ``prov_json``: the curve's provenance already serialised (``to_json(..., indent=None)``).
    ``checksums``: receives {path: checksum of the bytes written} (no read-back).
    """
    p = Path(path)
    lines = [
        "# saxsred 1-D curve",
        f"# name: {curve.name}",
        f"# intensity_unit: {curve.unit}",
        "# q_unit: nm^-1",
        f"# provenance: {prov_json or prov_mod.to_json(curve.provenance, indent=None)}",
        "# columns: q_nm^-1 I sigma",
    ]
    # One %-format over a flat tuple (three times faster than a per-row f-string), with
    # the q column formatted once per q grid: every frame of a geometry shares it.
    n = len(curve)
    cells: list[Any] = [None] * (3 * n)
    cells[0::3] = _q_strings(curve.q_nm)
    cells[1::3] = curve.intensity.tolist()
    cells[2::3] = curve.sigma.tolist()
    body = ("%s %.8e %.8e\n" * n) % tuple(cells)
    data = ("\n".join(lines) + "\n" + body).encode("utf-8")
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    if checksums is not None:
        checksums[str(p)] = prov_mod.bytes_checksum(data)
    return p


def _ds(group: h5py.Group, name: str, data, **attrs) -> h5py.Dataset:
    if isinstance(data, str):
        d = group.create_dataset(name, data=data, dtype=h5py.string_dtype(), track_times=False)
    else:
        d = group.create_dataset(name, data=np.asarray(data), track_times=False)
    for k, v in attrs.items():
        d.attrs[k] = v
    return d


def _group(parent: h5py.Group, name: str, nx: str, cansas: str | None = None) -> h5py.Group:
    g = parent.create_group(name)
    g.attrs["NX_class"] = nx
    if cansas:
        g.attrs["canSAS_class"] = cansas
    return g


def _build_nxcansas(fh: h5py.File, n: int, iunit: str, title: bytes, run: bytes, geo: dict, prov_len: int) -> None:
    """The NXcanSAS v1.1 tree with placeholder data: Q, I, Idev of n points, title and run as
    fixed-length strings, provenance as a fixed-length (space-padded) JSON string."""
    fh.attrs["default"] = "sasentry01"
    e = _group(fh, "sasentry01", "NXentry", "SASentry")
    e.attrs["version"] = "1.1"
    e.attrs["default"] = "sasdata01"
    _ds(e, "definition", "NXcanSAS")
    e.create_dataset("title", data=np.bytes_(title), track_times=False)
    e.create_dataset("run", data=np.bytes_(run), track_times=False)
    d = _group(e, "sasdata01", "NXdata", "SASdata")
    d.attrs["signal"] = "I"
    d.attrs["I_axes"] = "Q"
    d.attrs["Q_indices"] = np.array([0], dtype=np.int32)
    zeros = np.zeros(n, dtype="<f8")
    _ds(d, "Q", zeros, units="1/nm")
    _ds(d, "I", zeros, units=iunit, uncertainties="Idev")
    _ds(d, "Idev", zeros, units=iunit)
    inst = _group(e, "sasinstrument", "NXinstrument", "SASinstrument")
    src = _group(inst, "sassource", "NXsource", "SASsource")
    _ds(src, "radiation", "x-ray")
    if "wavelength_m" in geo:
        _ds(src, "incident_wavelength", geo["wavelength_m"] * 1e9, units="nm")
    det = _group(inst, "sasdetector", "NXdetector", "SASdetector")
    _ds(det, "name", str(geo.get("detector", "detector")))
    if "distance_m" in geo:
        _ds(det, "SDD", geo["distance_m"], units="m")
    proc = _group(e, "sasprocess01", "NXprocess", "SASprocess")
    _ds(proc, "name", "saxsred")
    proc.create_dataset("provenance", data=np.bytes_(b" " * prov_len), track_times=False)


# Built HDF5 images of the NXcanSAS tree, keyed by everything that shapes the file; each
# holds the byte offsets of the parts that change from curve to curve. Writing a curve is
# then a copy and a few patches instead of ~40 HDF5 object creations: the bytes are the
# same as building the tree anew each time (and so is every run's output).
_NX_IMAGES: dict[tuple, tuple[bytes, dict[str, int]]] = {}


def _nx_image(n: int, iunit: str, title: bytes, run: bytes, geo: dict, prov_len: int) -> tuple[bytes, dict[str, int]]:
    import io

    key = (n, iunit, len(title), len(run), prov_len, geo.get("wavelength_m"), geo.get("distance_m"), str(geo.get("detector")))
    hit = _NX_IMAGES.get(key)
    if hit is not None:
        return hit
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver=("v108", "v108")) as fh:
        _build_nxcansas(fh, n, iunit, title, run, geo, prov_len)
        offsets = {
            name: fh[path].id.get_offset()
            for name, path in (
                ("Q", "sasentry01/sasdata01/Q"),
                ("I", "sasentry01/sasdata01/I"),
                ("Idev", "sasentry01/sasdata01/Idev"),
                ("title", "sasentry01/title"),
                ("run", "sasentry01/run"),
                ("provenance", "sasentry01/sasprocess01/provenance"),
            )
        }
    if any(v is None for v in offsets.values()):  # pragma: no cover - layout not contiguous
        raise RuntimeError("NXcanSAS template without contiguous storage")
    if len(_NX_IMAGES) > 64:
        _NX_IMAGES.clear()
    _NX_IMAGES[key] = hit = (buf.getvalue(), offsets)
    return hit


def write_nxcansas(
    curve: Curve,
    path: str | os.PathLike,
    title: str | None = None,
    prov_json: str | None = None,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Write an NXcanSAS (v1.1) HDF5 file readable by SasView/sasdata.

    The provenance goes into ``sasentry01/sasprocess01/provenance`` as JSON (padded with
    spaces to a multiple of 1 KiB). HDF5 object times are not tracked, so the same curve
    gives a byte-identical file.
    """
    p = Path(path)
    prov = (prov_json or prov_mod.to_json(curve.provenance, indent=None)).encode()
    prov_len = -(-max(len(prov), 1) // 1024) * 1024
    title_b = (title or curve.name or "saxsred curve").encode()
    run_b = (curve.name or "0").encode()
    geo = curve.provenance.get("geometry") if curve.provenance else None
    geo = geo if isinstance(geo, dict) else {}
    iunit = _UNIT_NX.get(curve.unit, curve.unit)
    image, off = _nx_image(len(curve), iunit, title_b, run_b, geo, prov_len)
    img = bytearray(image)
    n8 = 8 * len(curve)
    for name, arr in (("Q", curve.q_nm), ("I", curve.intensity), ("Idev", curve.sigma)):
        img[off[name] : off[name] + n8] = np.ascontiguousarray(arr, dtype="<f8").tobytes()
    img[off["title"] : off["title"] + len(title_b)] = title_b
    img[off["run"] : off["run"] + len(run_b)] = run_b
    img[off["provenance"] : off["provenance"] + prov_len] = prov.ljust(prov_len, b" ")
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(img)
    if checksums is not None:
        checksums[str(p)] = prov_mod.bytes_checksum(img)
    return p


def write_chi(profile: ChiProfile, path: str | os.PathLike) -> Path:
    """Write an azimuthal profile as 3 columns (chi deg, I, sigma) with a commented header."""
    p = Path(path)
    lo, hi = profile.q_band_nm
    lines = [
        "# saxsred azimuthal profile",
        f"# name: {profile.name}",
        f"# q_band_nm: {lo!r} {hi!r}",
        f"# provenance: {json.dumps(prov_mod._jsonable(profile.provenance), sort_keys=True)}",
        "# columns: chi_deg I sigma",
    ]
    body = "\n".join(f"{c:.6f} {i:.8e} {s:.8e}" for c, i, s in zip(profile.chi_deg, profile.intensity, profile.sigma))
    with atomic_path(p) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n" + body + "\n")
    return p


def read_chi(path: str | os.PathLike) -> ChiProfile:
    """Read an azimuthal profile (chi deg, I[, sigma]) written by saxsred or a 2/3-column text file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; check the path")
    band = (float("nan"), float("nan"))
    rows = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"#\s*q_band_nm:\s*(\S+)\s+(\S+)", line)
        if m:
            band = (float(m.group(1)), float(m.group(2)))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append([float(x) for x in re.split(r"[,\s]+", line.strip())][:3])
        except ValueError:
            continue
    if not rows:
        raise InputError(f"{p}: no numeric rows; expected columns chi_deg, I[, sigma]")
    n = min(len(r) for r in rows)
    if n < 2:
        raise InputError(f"{p}: only one column; an azimuthal profile needs chi and I")
    d = np.array([r[:n] for r in rows])
    sig = d[:, 2] if n >= 3 else np.zeros(len(d))
    if not np.all(np.isfinite(d)):
        raise InputError(f"{p}: NaN or infinite values; remove those rows")
    return ChiProfile(d[:, 0], d[:, 1], sig, band, p.stem, {"source": prov_mod.input_record(p)})
