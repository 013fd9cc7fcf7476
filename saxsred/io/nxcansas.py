"""NXcanSAS (v1.1) HDF5 curves, both ways: the files SasView/sasdata read.

The writer is deterministic (no HDF5 object times, provenance as space-padded JSON) and
atomic; the tree of a given shape is built once and patched per curve
(:func:`write_nxcansas`). ``I@units`` follows the NXcanSAS definition (1/cm, 1/m or
"arbitrary"); saxsred's own intensity unit stays in the provenance. The reader
(:func:`read_nxcansas`) accepts the files saxsred writes and other NXcanSAS files in
1/nm or 1/angstrom.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from .. import provenance as prov_mod
from ..curve import X_UNIT_NX, Curve
from ..errors import InputError
from .atomic import atomic_path


def read_nxcansas(p: Path) -> Curve:
    """Read the first SASdata of an NXcanSAS file (q, I, Idev, units, wavelength, provenance)."""
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
            axes = (_attr(data, "I_axes") or "Q").split(",")[0]
            q = np.asarray(data[axes][()], dtype=float)
            qunits = _attr(data[axes], "units") or "1/nm"
            wl_nm = _nx_wavelength_nm(entry)
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
    x_unit = _nx_x_unit(axes, str(qunits), p)
    iunit = {"1/cm": "cm^-1", "1/sr": "sr^-1", "arbitrary": "arb"}.get(iunit, iunit)
    prov = dict(prov) if isinstance(prov, dict) else {}
    if iunit == "arb" and prov.get("intensity_unit") in ("sr^-1", "arb"):
        iunit = prov["intensity_unit"]  # "arbitrary" in NXcanSAS terms; saxsred's own unit kept
    prov["source"] = prov_mod.input_record(p)
    return Curve(
        q, i, s, unit=iunit, name=p.stem, provenance=prov, x_unit=x_unit, wavelength_nm=wl_nm
    )


# NXcanSAS axis dataset names for abscissae that are not q (NXcanSAS itself knows only Q;
# a 2theta curve is written under its own name rather than mislabelled as Q).
X_AXIS_NAMES = {
    "q_nm^-1": "Q",
    "q_A^-1": "Q",
    "2th_deg": "two_theta",
    "2th_rad": "two_theta",
    "chi_deg": "chi",
    "r_mm": "r",
}


def _nx_x_unit(axis: str, units: str, p: Path) -> str:
    u = units.strip().lower().replace(" ", "")
    if axis.lower() in ("q", "qx", "qy") or u.startswith("1/") or "^-1" in u:
        table = {
            "1/nm": "q_nm^-1",
            "nm^-1": "q_nm^-1",
            "1/a": "q_A^-1",
            "1/angstrom": "q_A^-1",
            "a^-1": "q_A^-1",
            "1/m": "",
            "1/å": "q_A^-1",
        }
        out = table.get(u)
        if out:
            return out
    elif axis == "two_theta" and u in ("degree", "degrees", "deg"):
        return "2th_deg"
    elif axis == "two_theta" and u in ("rad", "radian", "radians"):
        return "2th_rad"
    elif axis == "chi" and u in ("degree", "degrees", "deg"):
        return "chi_deg"
    elif axis == "r" and u == "mm":
        return "r_mm"
    raise InputError(
        f"{p}: axis {axis!r} with units {units!r} is not one saxsred can convert; re-export in 1/nm or 1/angstrom"
    )


def _nx_wavelength_nm(entry) -> float | None:
    for path in (
        "sasinstrument/sassource/incident_wavelength",
        "instrument/source/incident_wavelength",
    ):
        if path in entry:
            try:
                v = float(np.asarray(entry[path][()]).ravel()[0])
            except (TypeError, ValueError, IndexError):
                return None
            u = str(_attr(entry[path], "units") or "nm").strip().lower()
            f = {"nm": 1.0, "a": 0.1, "angstrom": 0.1, "å": 0.1, "m": 1e9}.get(u)
            wl = v * f if f else None
            return wl if wl is not None and 1e-3 <= wl <= 2.0 else None
    return None


def _attr(obj, key):
    v = obj.attrs.get(key)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.ndarray) and v.size == 1:
        v = v.item()
        if isinstance(v, bytes):
            v = v.decode()
    return v


# NXcanSAS I@units: 1/m, 1/cm, m2/g, cm2/g or "arbitrary" (the definition's list). A curve
# per steradian is not in absolute units: "arbitrary", with its unit kept in the
# provenance (intensity_unit) and in the .dat header; the reader restores it from there.
_UNIT_NX = {"cm^-1": "1/cm", "m^-1": "1/m", "sr^-1": "arbitrary", "arb": "arbitrary"}


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


def _build_nxcansas(
    fh: h5py.File, n: int, iunit: str, title: bytes, run: bytes, geo: dict, prov_len: int
) -> None:
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
    # the abscissa under its own name and units (Q in 1/nm or 1/angstrom; two_theta, chi, r otherwise)
    x_unit = geo.get("x_unit", "q_nm^-1")
    axis = X_AXIS_NAMES[x_unit]
    d.attrs["signal"] = "I"
    d.attrs["I_axes"] = axis
    d.attrs[f"{axis}_indices"] = np.array([0], dtype=np.int32)
    zeros = np.zeros(n, dtype="<f8")
    _ds(d, axis, zeros, units=X_UNIT_NX[x_unit])
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


def _nx_image(
    n: int, iunit: str, title: bytes, run: bytes, geo: dict, prov_len: int
) -> tuple[bytes, dict[str, int]]:
    import io

    key = (
        n,
        iunit,
        len(title),
        len(run),
        prov_len,
        geo.get("wavelength_m"),
        geo.get("distance_m"),
        str(geo.get("detector")),
        geo.get("x_unit"),
    )
    hit = _NX_IMAGES.get(key)
    if hit is not None:
        return hit
    buf = io.BytesIO()
    with h5py.File(buf, "w", libver=("v108", "v108")) as fh:
        _build_nxcansas(fh, n, iunit, title, run, geo, prov_len)
        offsets = {
            name: fh[path].id.get_offset()
            for name, path in (
                ("Q", f"sasentry01/sasdata01/{X_AXIS_NAMES[geo.get('x_unit', 'q_nm^-1')]}"),
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
    if prov_json is None:  # as write_curves does: the unit NXcanSAS cannot name stays in provenance
        prov_json = prov_mod.to_json(
            {**curve.provenance, "intensity_unit": curve.unit}, indent=None
        )
    prov = prov_json.encode()
    prov_len = -(-max(len(prov), 1) // 1024) * 1024
    title_b = (title or curve.name or "saxsred curve").encode()
    run_b = (curve.name or "0").encode()
    geo = curve.provenance.get("geometry") if curve.provenance else None
    geo = dict(geo) if isinstance(geo, dict) else {}
    geo["x_unit"] = curve.x_unit
    if curve.wavelength_nm is not None and "wavelength_m" not in geo:
        geo["wavelength_m"] = curve.wavelength_nm * 1e-9
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
