"""Detector geometry (PONI files, ESRF "SAXS keyword" headers, EDNA XML) and masks.

The geometry is pyFAI's: a distance, the point of normal incidence (PONI) and three
rotations, plus pixel sizes and wavelength. ESRF headers give the PONI in pixels,
Center_1 along the fast axis (x, columns) and Center_2 along the slow axis (y, rows);
pyFAI's poni1 is along the slow axis, so poni1 = Center_2 * PSize_2 — swapping the two
is the classic bug.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GeometryError, InputError
from .io.frames import XEUSS_GAMMA_MAX_DEG, FrameMetadata

_REQUIRED_HEADER = ("SampleDistance", "WaveLength", "Center_1", "Center_2", "PSize_1", "PSize_2")


@dataclass(frozen=True)
class Geometry:
    """pyFAI geometry: distance and PONI in metres, rotations in radians, wavelength in metres.

    ``detector`` is a pyFAI detector name or ``"generic"`` (then the pixel sizes define it);
    ``shape`` is the detector shape (rows, columns) when known.
    """

    dist_m: float
    poni1_m: float
    poni2_m: float
    rot1_rad: float
    rot2_rad: float
    rot3_rad: float
    pixel1_m: float
    pixel2_m: float
    wavelength_m: float
    detector: str = "generic"
    shape: tuple[int, int] | None = None
    source: str = ""
    # instrumental Gaussian FWHM (nm^-1) measured on a calibrant (``saxsred calibrate``), if known
    instrument_fwhm_inv_nm: float | None = None

    def integrator(self):
        """A new pyFAI ``AzimuthalIntegrator`` for this geometry."""
        from pyFAI.detectors import Detector, detector_factory
        from pyFAI.integrator.azimuthal import AzimuthalIntegrator

        if self.detector and self.detector.lower() not in ("generic", "detector"):
            try:
                det = detector_factory(self.detector)
            except Exception:
                det = Detector(self.pixel1_m, self.pixel2_m, max_shape=self.shape)
            else:
                if (
                    abs(det.pixel1 - self.pixel1_m) > 1e-12
                    or abs(det.pixel2 - self.pixel2_m) > 1e-12
                ):
                    det = Detector(self.pixel1_m, self.pixel2_m, max_shape=self.shape)
        else:
            det = Detector(self.pixel1_m, self.pixel2_m, max_shape=self.shape)
        return AzimuthalIntegrator(
            dist=self.dist_m,
            poni1=self.poni1_m,
            poni2=self.poni2_m,
            rot1=self.rot1_rad,
            rot2=self.rot2_rad,
            rot3=self.rot3_rad,
            detector=det,
            wavelength=self.wavelength_m,
        )

    def with_shape(self, shape: tuple[int, int]) -> Geometry:
        return replace(self, shape=(int(shape[0]), int(shape[1])))

    def beam_center_px(self) -> tuple[float, float]:
        """Direct-beam position (x = fast, y = slow) in pixels (equals the PONI without tilt)."""
        ai = self.integrator()
        fit2d = ai.getFit2D()
        return float(fit2d["centerX"]), float(fit2d["centerY"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "dist_m": self.dist_m,
            "poni1_m": self.poni1_m,
            "poni2_m": self.poni2_m,
            "rot1_rad": self.rot1_rad,
            "rot2_rad": self.rot2_rad,
            "rot3_rad": self.rot3_rad,
            "pixel1_m": self.pixel1_m,
            "pixel2_m": self.pixel2_m,
            "wavelength_m": self.wavelength_m,
            "distance_m": self.dist_m,
            "detector": self.detector,
            "source": self.source,
        } | (
            {"instrument_fwhm_inv_nm": self.instrument_fwhm_inv_nm}
            if self.instrument_fwhm_inv_nm
            else {}
        )

    def q_map_nm(self, shape: tuple[int, int] | None = None) -> np.ndarray:
        """q (nm^-1) at every pixel centre."""
        ai = self.integrator()
        return ai.qArray(shape or self.shape)

    def write_poni(self, path: str | os.PathLike) -> Path:
        """Write a PONI file (pyFAI format 2) atomically, without a date (reproducible)."""
        import json

        from .io.atomic import write_text_atomic

        cfg = {
            "pixel1": self.pixel1_m,
            "pixel2": self.pixel2_m,
            "max_shape": list(self.shape) if self.shape else None,
        }
        text = (
            "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis\n"
            "# Written by saxsred\n"
            "poni_version: 2\n"
            "Detector: Detector\n"
            f"Detector_config: {json.dumps(cfg)}\n"
            f"Distance: {self.dist_m!r}\n"
            f"Poni1: {self.poni1_m!r}\n"
            f"Poni2: {self.poni2_m!r}\n"
            f"Rot1: {self.rot1_rad!r}\n"
            f"Rot2: {self.rot2_rad!r}\n"
            f"Rot3: {self.rot3_rad!r}\n"
            f"Wavelength: {self.wavelength_m!r}\n"
        )
        write_text_atomic(path, text)
        return Path(path)


# ------------------------------------------------------------------ validation of geometry input

# The keys pyFAI's PoniFile reads (pyFAI.io.ponifile, versions 1-3), as pyFAI writes them.
# pyFAI ignores any other key silently (a misspelt ``Distnace`` leaves the distance at
# its default of 1 m), so saxsred refuses them.
PONI_KEYS = (
    "poni_version",
    "Detector",
    "Detector_config",
    "Distance",
    "Dist",
    "Poni1",
    "Poni2",
    "Rot1",
    "Rot2",
    "Rot3",
    "Wavelength",
    "PixelSize1",
    "PixelSize2",
    "SplineFile",
    "Parallax",
)
_PONI_REQUIRED = ("Distance", "Poni1", "Poni2")
_PONI_FLOATS = (
    "Distance",
    "Dist",
    "Poni1",
    "Poni2",
    "Rot1",
    "Rot2",
    "Rot3",
    "Wavelength",
    "PixelSize1",
    "PixelSize2",
)

# Plausible ranges (SI units): what a SAXS/WAXS geometry can be. Outside them the value is
# almost always in the wrong unit; ``accept_implausible=True`` lets a user who means it through.
PLAUSIBLE = {
    "distance_m": (1e-3, 100.0),
    "wavelength_m": (1e-12, 2e-9),
    "pixel_m": (1e-6, 1e-2),
}


def nearest_key(key: str, known: tuple[str, ...] | list[str]) -> str | None:
    """The known key nearest to a misspelt one (case-insensitive), or None."""
    import difflib

    low = {k.lower(): k for k in known}
    hit = difflib.get_close_matches(key.lower(), list(low), n=1, cutoff=0.6)
    return low[hit[0]] if hit else None


def check_poni_text(text: str, where: str) -> dict[str, str]:
    """Check a PONI file's keys against pyFAI's; returns {Key: value} (comments skipped).

    Raises :class:`GeometryError` (one line) for an unknown key (naming the nearest known
    one), a line that is not ``Key: value``, a repeated key, a missing distance or PONI, or
    a number that does not parse.
    """
    known = {k.lower(): k for k in PONI_KEYS}
    found: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if ":" not in stripped:
            raise GeometryError(
                f"{where} line {n}: {stripped[:40]!r} is not 'Key: value'; fix the line"
            )
        key, value = (x.strip() for x in stripped.split(":", 1))
        canon = known.get(key.lower())
        if canon is None:
            near = nearest_key(key, PONI_KEYS)
            hint = f"did you mean '{near}'?" if near else f"pyFAI knows {', '.join(PONI_KEYS)}"
            raise GeometryError(f"{where} line {n}: unknown PONI key '{key}' ({hint}); fix the key")
        if canon in found:
            raise GeometryError(f"{where} line {n}: '{canon}' appears twice; keep one")
        if canon in _PONI_FLOATS:
            try:
                v = float(value)
            except ValueError:
                raise GeometryError(
                    f"{where} line {n}: {canon} = {value[:40]!r} is not a number; fix it"
                ) from None
            if not np.isfinite(v):
                raise GeometryError(f"{where} line {n}: {canon} = {value} is not finite; fix it")
        found[canon] = value
    if "Dist" in found and "Distance" not in found:
        found["Distance"] = found.pop("Dist")
    missing = [k for k in _PONI_REQUIRED if k not in found]
    if missing:
        raise GeometryError(
            f"{where}: PONI file lacks {', '.join(missing)} (pyFAI would silently default them); "
            "add them or recalibrate"
        )
    return found


def _unit_hint(value: float, lo: float, hi: float, factors: tuple[tuple[str, float], ...]) -> str:
    for label, f in factors:
        if lo <= value * f <= hi:
            return f"if it is in {label}, write {value * f:.6g}"
    return ""


def check_plausible(
    geo: Geometry, where: str, accept_implausible: bool = False, names: dict[str, str] | None = None
) -> None:
    """Refuse geometry values outside what an instrument can have (the metre/millimetre trap).

    Distance 1 mm to 100 m, wavelength 0.001 to 2 nm, pixels 1 um to 10 mm, rotations
    within +/- pi (radians). One line naming the key, the value and the fix; with
    ``accept_implausible`` the values pass (the user has said they mean them). ``names``
    renames the keys in messages (``{"Distance": "SampleDistance"}`` for ESRF headers).
    """
    names = names or {}
    checks = (
        ("Distance", geo.dist_m, *PLAUSIBLE["distance_m"], "m", (("mm", 1e-3), ("cm", 1e-2))),
        (
            "Wavelength",
            geo.wavelength_m,
            *PLAUSIBLE["wavelength_m"],
            "m",
            (("Angstrom", 1e-10), ("nm", 1e-9), ("pm", 1e-12)),
        ),
        ("PixelSize1", geo.pixel1_m, *PLAUSIBLE["pixel_m"], "m", (("um", 1e-6), ("mm", 1e-3))),
        ("PixelSize2", geo.pixel2_m, *PLAUSIBLE["pixel_m"], "m", (("um", 1e-6), ("mm", 1e-3))),
    )
    for key, v, lo, hi, unit, factors in checks:
        key = names.get(key, key)
        if not (np.isfinite(v) and v > 0):
            raise GeometryError(f"{where}: {key} = {v} must be positive and finite; fix it")
        if accept_implausible or lo <= v <= hi:
            continue
        hint = _unit_hint(v, lo, hi, factors)
        raise GeometryError(
            f"{where}: {key} = {v:.6g} {unit} is outside {lo:g}-{hi:g} {unit}; give metres"
            f"{' (' + hint + ')' if hint else ''}, or pass accept_implausible (--accept-implausible) if you mean it"
        )
    for key, v in (("Rot1", geo.rot1_rad), ("Rot2", geo.rot2_rad), ("Rot3", geo.rot3_rad)):
        key = names.get(key, key)
        if not np.isfinite(v):
            raise GeometryError(f"{where}: {key} = {v} is not finite; fix it")
        if abs(v) > np.pi and not accept_implausible:
            raise GeometryError(
                f"{where}: {key} = {v:.6g} rad is beyond +/- pi; rotations are in radians "
                f"(if it is in degrees, write {np.radians(v):.6g})"
            )


def load_poni(
    path: str | os.PathLike,
    shape: tuple[int, int] | None = None,
    accept_implausible: bool = False,
    wavelength_m: float | None = None,
) -> Geometry:
    """Read a pyFAI PONI file into a :class:`Geometry`.

    Keys are checked against pyFAI's (:data:`PONI_KEYS`: a misspelt key is an error naming
    the nearest known one) and values for plausibility (:func:`check_plausible`).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: PONI file not found; check --poni")
    if p.suffix.lower() != ".json":
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GeometryError(
                f"{p}: not a readable PONI text file ({type(exc).__name__}); give a .poni file"
            ) from None
        check_poni_text(text, str(p))
    import pyFAI

    try:
        ai = pyFAI.load(str(p))
    except Exception as exc:
        msg = " ".join(str(exc).split())[:120]
        raise GeometryError(
            f"{p}: not a valid PONI file ({type(exc).__name__}: {msg}); recalibrate or fix the file"
        ) from None
    if wavelength_m:
        ai.wavelength = float(wavelength_m)
    if not ai.wavelength:
        raise GeometryError(
            f"{p}: the PONI file has no Wavelength; add 'Wavelength: <m>' to it, "
            "or give --wavelength-nm / --energy-kev"
        )
    det = ai.detector
    name = type(det).__name__
    pix = (getattr(det, "pixel1", None), getattr(det, "pixel2", None))
    if any(v is None or not np.isfinite(v) for v in pix):
        raise GeometryError(
            f"{p}: the PONI file gives no pixel size (detector {name}); add PixelSize1/PixelSize2 "
            "or a Detector_config with pixel1/pixel2, or name a known detector"
        )
    shape = shape or (tuple(det.max_shape) if det.max_shape is not None else None)
    geo = Geometry(
        dist_m=float(ai.dist),
        poni1_m=float(ai.poni1),
        poni2_m=float(ai.poni2),
        rot1_rad=float(ai.rot1),
        rot2_rad=float(ai.rot2),
        rot3_rad=float(ai.rot3),
        pixel1_m=float(det.pixel1),
        pixel2_m=float(det.pixel2),
        wavelength_m=float(ai.wavelength),
        detector="generic" if name == "Detector" else det.name,
        shape=shape,
        source=p.name,
    )
    width = poni_instrument_width(p)
    if width is not None:
        geo = replace(geo, instrument_fwhm_inv_nm=width)
    check_plausible(geo, str(p), accept_implausible)
    return geo


_HEADER_NAMES = {
    "Distance": "SampleDistance",
    "Wavelength": "WaveLength",
    "PixelSize1": "PSize_2",
    "PixelSize2": "PSize_1",
    "Rot1": "rotation (rot1)",
    "Rot2": "rotation (rot2)",
    "Rot3": "rotation (rot3)",
}


def geometry_from_metadata(
    meta: FrameMetadata,
    shape: tuple[int, int] | None = None,
    source: str = "header",
    accept_implausible: bool = False,
) -> Geometry:
    """Geometry from ESRF "SAXS keyword" header values.

    Center_1/Center_2 are the PONI in pixels along fast (x) and slow (y) axes and
    SampleDistance the distance to it, as pyFAI's ``setSPD`` reads them. Untilted
    geometry goes through ``setSPD`` (called with keyword arguments). ``setSPD`` refuses
    nonzero rotations, so tilted headers are converted here with the ewoksid02 convention
    (SCIENCE.md section 2): DetectorRotation_1 (axis 1 = fast) is pyFAI's rot2,
    DetectorRotation_2 (slow) is rot1, DetectorRotation_3 is rot3; dahu's Rot_1/2/3 name
    the same axes and are mapped the same way. Xenocs Xeuss arm angles (``Delta``/``Gamma``,
    degrees) become pyFAI rot2 = Delta and rot1 = -Gamma (confirmed on a glassy-carbon
    frame: see :data:`saxsred.io.frames.XEUSS_GAMMA_MAX_DEG`); a Gamma above that is refused.
    Binning (BSize) multiplies the pixel size
    when PSize is the unbinned one only if the header says so: ID02 writes binned PSize,
    which is used as is.
    """
    missing = [
        k
        for k, v in (
            ("SampleDistance", meta.distance_m),
            ("WaveLength", meta.wavelength_m),
            ("Center_1", meta.center_1_px),
            ("Center_2", meta.center_2_px),
            ("PSize_1", meta.psize_1_m),
            ("PSize_2", meta.psize_2_m),
        )
        if v is None
    ]
    if missing:
        raise GeometryError(
            f"{source}: header lacks {', '.join(missing)} needed for the geometry; "
            "give a PONI file with --poni"
        )
    for name, v in (
        ("SampleDistance", meta.distance_m),
        ("WaveLength", meta.wavelength_m),
        ("PSize_1", meta.psize_1_m),
        ("PSize_2", meta.psize_2_m),
    ):
        if not (np.isfinite(v) and v > 0):  # type: ignore[arg-type]
            raise GeometryError(
                f"{source}: header {name} = {v} must be positive; fix the header or give --poni"
            )
    if (
        meta.rotation_convention == "xeuss_arm"
        and abs(np.degrees(meta.rot_2_rad)) > XEUSS_GAMMA_MAX_DEG
    ):
        raise GeometryError(
            f"{source}: Xeuss arm Gamma = {-np.degrees(meta.rot_2_rad):.3g} deg; its sign convention is confirmed "
            f"only to {XEUSS_GAMMA_MAX_DEG:g} deg (a ring of known q is needed), so it is not guessed: "
            "calibrate this detector position (saxsred calibrate / pyFAI-calib2) and give the PONI with --poni"
        )
    if meta.rot_1_rad == 0 and meta.rot_2_rad == 0 and meta.rot_3_rad == 0:
        from pyFAI.geometry import Geometry as PyFAIGeometry

        g = PyFAIGeometry()
        g.setSPD(
            SampleDistance=meta.distance_m,
            Center_1=meta.center_1_px,
            Center_2=meta.center_2_px,
            PSize_1=meta.psize_1_m,
            PSize_2=meta.psize_2_m,
            WaveLength=meta.wavelength_m,
        )
        geo = Geometry(
            dist_m=float(g.dist),
            poni1_m=float(g.poni1),
            poni2_m=float(g.poni2),
            rot1_rad=0.0,
            rot2_rad=0.0,
            rot3_rad=0.0,
            pixel1_m=float(meta.psize_2_m),  # type: ignore[arg-type]
            pixel2_m=float(meta.psize_1_m),  # type: ignore[arg-type]
            wavelength_m=float(meta.wavelength_m),  # type: ignore[arg-type]
            shape=shape,
            source=source,
        )
        check_plausible(geo, source, accept_implausible, _HEADER_NAMES)
        return geo
    geo = Geometry(
        dist_m=float(meta.distance_m),  # type: ignore[arg-type]
        poni1_m=float(meta.center_2_px) * float(meta.psize_2_m),  # type: ignore[arg-type]
        poni2_m=float(meta.center_1_px) * float(meta.psize_1_m),  # type: ignore[arg-type]
        rot1_rad=float(meta.rot_2_rad),
        rot2_rad=float(meta.rot_1_rad),
        rot3_rad=float(meta.rot_3_rad),
        pixel1_m=float(meta.psize_2_m),  # type: ignore[arg-type]
        pixel2_m=float(meta.psize_1_m),  # type: ignore[arg-type]
        wavelength_m=float(meta.wavelength_m),  # type: ignore[arg-type]
        shape=shape,
        source=source,
    )
    check_plausible(geo, source, accept_implausible, _HEADER_NAMES)
    return geo


def load_geometry(
    path: str | os.PathLike,
    shape: tuple[int, int] | None = None,
    accept_implausible: bool = False,
    wavelength_m: float | None = None,
) -> Geometry:
    """Geometry from a PONI file, an EDNA XML file, or the ESRF header of a frame file.

    Values are checked for plausibility (:func:`check_plausible`) unless ``accept_implausible``.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: geometry file not found; check --poni")
    if p.is_dir():
        raise InputError(
            f"{p}: is a folder; give a PONI file, an EDNA XML file or a frame with a header"
        )
    if p.suffix.lower() == ".xml":
        return geometry_from_edna_xml(p, shape, accept_implausible)
    if p.suffix.lower() in (".poni", ".txt", ".cfg") or p.read_bytes()[:64].lstrip().startswith(
        b"#"
    ):
        return load_poni(p, shape, accept_implausible, wavelength_m=wavelength_m)
    from .io.frames import read_frame

    fr = read_frame(p)
    return geometry_from_metadata(
        fr.metadata, fr.data.shape, source=p.name, accept_implausible=accept_implausible
    )


# ----------------------------------------------------- overrides (wavelength, energy, Dioptas)

# h c in keV nm (CODATA 2018): lambda[nm] = 1.239841984 / E[keV]
HC_KEV_NM = 1.239841984


def wavelength_from(
    wavelength_nm: float | None = None, energy_kev: float | None = None
) -> float | None:
    """Wavelength in metres from ``--wavelength-nm`` or ``--energy-kev`` (None if neither)."""
    if wavelength_nm is not None and energy_kev is not None:
        raise GeometryError(
            "give the wavelength (--wavelength-nm) or the energy (--energy-kev), not both"
        )
    if wavelength_nm is not None:
        if not (np.isfinite(wavelength_nm) and 1e-3 <= wavelength_nm <= 2.0):
            raise GeometryError(
                f"wavelength {wavelength_nm} nm is outside 0.001-2 nm; give nanometres "
                "(0.1 nm = 1 Angstrom = 12.4 keV)"
            )
        return float(wavelength_nm) * 1e-9
    if energy_kev is not None:
        if not (np.isfinite(energy_kev) and 0.6 <= energy_kev <= 1240.0):
            raise GeometryError(
                f"energy {energy_kev} keV is outside 0.6-1240 keV; give kilo-electronvolts"
            )
        return HC_KEV_NM / float(energy_kev) * 1e-9
    return None


def from_dioptas(geo: Geometry, shape: tuple[int, int] | None = None) -> Geometry:
    """Geometry of a Dioptas PONI converted to the image as fabio reads it.

    Dioptas calibrates the image flipped upside-down (``np.flipud`` of fabio's array), so
    its row axis runs the other way: row i here is row N1-1-i there. Reversing axis 1 is a
    mirror y -> -y of the detector frame; conjugating the rotations by it keeps rot1 (about
    y) and reverses rot2 (about x) and rot3 (about the beam), and the PONI along y becomes
    N1 * pixel1 - poni1. The data are never flipped. Needs the detector shape.
    """
    shape = shape or geo.shape
    if shape is None:
        raise GeometryError(
            f"{geo.source or 'PONI'}: the detector shape is needed to convert a Dioptas PONI; "
            "give the frame (or a PONI with the detector)"
        )
    return replace(
        geo,
        poni1_m=shape[0] * geo.pixel1_m - geo.poni1_m,
        rot2_rad=-geo.rot2_rad,
        rot3_rad=-geo.rot3_rad,
        shape=tuple(shape),
        source=f"{geo.source} (Dioptas, converted)",
    )


def apply_overrides(
    geo: Geometry,
    wavelength_nm: float | None = None,
    energy_kev: float | None = None,
    dioptas: bool = False,
    shape: tuple[int, int] | None = None,
) -> Geometry:
    """Geometry with the user's overrides: wavelength (nm) or energy (keV), Dioptas orientation."""
    lam = wavelength_from(wavelength_nm, energy_kev)
    if lam is not None:
        geo = replace(geo, wavelength_m=lam)
    if dioptas:
        geo = from_dioptas(geo, shape)
    return geo


def poni_instrument_width(path: str | os.PathLike) -> float | None:
    """Instrumental FWHM (nm^-1) that ``saxsred calibrate`` wrote into a PONI's comments, or None."""
    import re

    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    m = re.search(r"^#\s*saxsred instrument_fwhm_inv_nm:\s*([0-9.eE+-]+)\s*$", text, re.MULTILINE)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        return None
    return v if np.isfinite(v) and v > 0 else None


def geometry_to_header(geo: Geometry) -> dict[str, str]:
    """ESRF "SAXS keyword" header entries for a geometry (inverse of :func:`geometry_from_metadata`)."""
    h = {
        "SampleDistance": repr(geo.dist_m),
        "WaveLength": repr(geo.wavelength_m),
        "Center_1": repr(geo.poni2_m / geo.pixel2_m),
        "Center_2": repr(geo.poni1_m / geo.pixel1_m),
        "PSize_1": repr(geo.pixel2_m),
        "PSize_2": repr(geo.pixel1_m),
    }
    if geo.rot1_rad or geo.rot2_rad or geo.rot3_rad:
        h["DetectorRotation_1"] = repr(geo.rot2_rad)
        h["DetectorRotation_2"] = repr(geo.rot1_rad)
        h["DetectorRotation_3"] = repr(geo.rot3_rad)
    return h


def geometry_from_edna_xml(
    path: str | os.PathLike, shape: tuple[int, int] | None = None, accept_implausible: bool = False
) -> Geometry:
    """Geometry from an ESRF EDNA/BM29 ``XSDataInputBioSaxs...`` XML file.

    beamCenter_1 is along the fast axis (x), beamCenter_2 along the slow axis (y), in pixels;
    detectorDistance, pixelSize_1/2 and wavelength in metres (untilted detector).
    """
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError) as exc:
        raise InputError(f"{p}: not a readable EDNA XML file ({exc})") from None

    def val(tag: str) -> float:
        node = root.find(f".//{tag}/value")
        if node is None or node.text is None:
            raise GeometryError(f"{p}: EDNA XML lacks <{tag}>; give a PONI file instead")
        try:
            return float(node.text)
        except ValueError:
            raise GeometryError(
                f"{p}: EDNA XML <{tag}> = {node.text.strip()[:30]!r} is not a number; fix it"
            ) from None

    meta = FrameMetadata(
        distance_m=val("detectorDistance"),
        wavelength_m=val("wavelength"),
        center_1_px=val("beamCenter_1"),
        center_2_px=val("beamCenter_2"),
        psize_1_m=val("pixelSize_1"),
        psize_2_m=val("pixelSize_2"),
    )
    return geometry_from_metadata(meta, shape, source=p.name, accept_implausible=accept_implausible)


def check_shape(geo: Geometry, shape: tuple[int, int], where: str) -> None:
    """Raise GeometryError if a frame's shape disagrees with the geometry's detector."""
    if geo.shape is not None and tuple(geo.shape) != tuple(shape):
        raise GeometryError(
            f"{where}: frame shape {tuple(shape)} does not match the detector of {geo.source or 'the geometry'} "
            f"{tuple(geo.shape)}; use the PONI/mask of this detector (or its binning)"
        )


# ------------------------------------------------------------------------------------- masks


def load_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask (EDF, TIFF, NPY, pyFAI .mask): returns bool, True = masked (pyFAI convention).

    Files from LIMA-style tools that mark *valid* pixels with 1 cannot be told apart
    automatically; saxsred follows pyFAI (non-zero = masked) and says so.
    """
    from .io.frames import read_image

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: mask file not found; check --mask")
    try:
        arr = read_image(p)
    except InputError:
        raise
    m = np.asarray(arr) != 0
    if shape is not None and m.shape != tuple(shape):
        raise GeometryError(
            f"{p}: mask shape {m.shape} does not match the frame {tuple(shape)}; use the mask of this detector"
        )
    return m


def detector_gap_mask(geo: Geometry, shape: tuple[int, int]) -> np.ndarray:
    """The detector's own gaps (pyFAI's detector definition), True = masked; zeros if none."""
    if geo.detector.lower() in ("generic", "detector"):
        return np.zeros(shape, dtype=bool)
    try:
        m = geo.integrator().detector.mask
    except Exception:
        m = None
    if m is None or m.shape != tuple(shape):
        return np.zeros(shape, dtype=bool)
    return m.astype(bool)


def hot_pixel_mask(
    data: np.ndarray,
    q_map: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    nsigma: float = 10.0,
    rel: float = 0.25,
    ratio: float = 4.0,
    ratio_ring: float = 1.5,
) -> np.ndarray:
    """Isolated hot pixels, True = masked.

    With a q map (the usual case, from the geometry) a pixel is hot when it exceeds the
    median of the pixels at its own q (an azimuthal median in rings about half a pixel
    wide) by ``nsigma`` Poisson standard deviations plus ``rel`` of that median: rings,
    even sharp calibrant lines, are compared with themselves, and a hot pixel sitting on a
    ring is still found. Without a q map, a pixel is hot when it is ``ratio`` times its
    brightest 8-neighbour and above it by ``nsigma`` standard deviations (weak hot pixels
    on bright features then pass: mask those with a file).
    """
    d = np.asarray(data, dtype=np.float64)
    valid = np.isfinite(d) if mask is None else (~np.asarray(mask, bool) & np.isfinite(d))
    if q_map is None:
        from scipy.ndimage import maximum_filter

        footprint = np.ones((3, 3), dtype=bool)
        footprint[1, 1] = False
        nmax = maximum_filter(
            np.where(valid, d, 0.0), footprint=footprint, mode="constant", cval=0.0
        )
        return (
            valid & (d - nmax > nsigma * np.sqrt(np.maximum(nmax, 1.0)) + 5.0) & (d > ratio * nmax)
        )
    q = np.asarray(q_map, dtype=np.float64)
    qv, dv = q[valid], d[valid]
    if qv.size == 0:
        return np.zeros(d.shape, dtype=bool)
    # ring width: half the q step between neighbouring pixels along the steepest direction
    step = (
        np.nanmedian(np.abs(np.diff(q, axis=1)))
        if q.shape[1] > 1
        else np.nanmedian(np.abs(np.diff(q, axis=0)))
    )
    width = max(0.5 * float(step), 1e-12)
    ring = np.floor((qv - qv.min()) / width).astype(np.int64)
    order = np.lexsort((dv, ring))
    ring_sorted = ring[order]
    starts = np.flatnonzero(np.r_[True, ring_sorted[1:] != ring_sorted[:-1]])
    counts = np.diff(np.r_[starts, ring_sorted.size])
    med_sorted = dv[order][starts + counts // 2]
    expected = np.empty_like(dv)
    expected[order] = np.repeat(med_sorted, counts)
    exp_pos = np.maximum(expected, 1.0)
    hot_v = (dv - expected > nsigma * np.sqrt(exp_pos) + rel * exp_pos) & (
        np.repeat(counts, counts)[np.argsort(order)] >= 5
    )
    out = np.zeros(d.shape, dtype=bool)
    out[valid] = hot_v
    if out.any():
        # and isolated: clearly brighter than every neighbour (a sharp ring's crest has a
        # neighbour along the ring nearly as bright)
        from scipy.ndimage import maximum_filter

        footprint = np.ones((3, 3), dtype=bool)
        footprint[1, 1] = False
        nmax = maximum_filter(
            np.where(valid, d, 0.0), footprint=footprint, mode="constant", cval=0.0
        )
        out &= d > ratio_ring * nmax
    return out


def threshold_mask(
    data: np.ndarray, below: float | None = None, above: float | None = None
) -> np.ndarray:
    """Pixels with raw counts < ``below`` or > ``above`` (True = masked); NaN is masked too.

    Tested on the raw counts, before any correction, like pyFAI's ``dummy`` handling.
    """
    d = np.asarray(data)
    m = ~np.isfinite(d) if d.dtype.kind == "f" else np.zeros(d.shape, dtype=bool)
    if below is not None:
        m |= d < below
    if above is not None:
        m |= d > above
    return m


def beamstop_disk_mask(geo: Geometry, shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """A disk of ``radius_px`` pixels around the direct beam (True = masked)."""
    if not (np.isfinite(radius_px) and radius_px >= 0):
        raise GeometryError(
            f"beamstop radius {radius_px} px must be >= 0; give --beamstop-radius in pixels"
        )
    bx, by = geo.with_shape(shape).beam_center_px()
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    # pyFAI's beam centre is in pixel-corner coordinates: the centre of pixel (i, j) is (j + 0.5, i + 0.5)
    return (xx + 0.5 - bx) ** 2 + (yy + 0.5 - by) ** 2 < radius_px**2


def shadow_mask(
    data: np.ndarray,
    geo: Geometry,
    invalid: np.ndarray | None = None,
    fraction: float = 0.5,
    size: int = 7,
    grow: int = 3,
    q_map: np.ndarray | None = None,
) -> np.ndarray:
    """The beamstop and its arm, found as the dark region around the direct beam (True = masked).

    A pixel is in a shadow when the mean of its ``size`` x ``size`` neighbourhood is below
    ``fraction`` of the median of that smoothed image on its own ring (same q, half-pixel
    rings): the local mean averages Poisson noise away (49 pixels of 2 counts: 10 %), so a
    shadow that removes half the flux stands out by five standard deviations even where a
    single pixel holds a count or two. Only dark regions that reach the direct beam are kept
    (a beamstop touches it; a dark gap between Bragg spots of an oriented sample does not);
    they are grown by ``grow`` pixels to cover the penumbra.
    """
    from scipy import ndimage

    d = np.asarray(data, dtype=np.float64)
    bad = ~np.isfinite(d) if invalid is None else (np.asarray(invalid, bool) | ~np.isfinite(d))
    shape = d.shape
    w = ndimage.uniform_filter((~bad).astype(np.float64), size)
    mean = ndimage.uniform_filter(np.where(bad, 0.0, d), size) / np.maximum(w, 1e-12)
    ok = ~bad & (w > 0.3)
    q = geo.with_shape(shape).q_map_nm(shape) if q_map is None else np.asarray(q_map)
    step = (
        np.nanmedian(np.abs(np.diff(q, axis=1)))
        if shape[1] > 1
        else np.nanmedian(np.abs(np.diff(q, axis=0)))
    )
    ring = np.floor(q / max(float(step), 1e-12)).astype(np.int64)
    # ring medians of the (already smoothed) image from every 3rd pixel each way: the
    # same medians to within the smoothing's own noise, nine times fewer pixels to sort
    sub = np.zeros(shape, dtype=bool)
    sub[::3, ::3] = True
    sub &= ok
    labels = np.unique(ring[sub])
    if labels.size == 0:
        return np.zeros(shape, dtype=bool)
    med = ndimage.median(mean[sub], ring[sub], index=labels)
    lut = np.full(int(ring.max()) + 1, np.nan)
    lut[labels] = med
    expected = lut[ring]
    dark = ok & (mean < fraction * expected)  # NaN (a ring without samples) compares False
    comp, n = ndimage.label(dark | bad, structure=np.ones((3, 3), bool))
    bx, by = geo.with_shape(shape).beam_center_px()
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    near = (xx + 0.5 - bx) ** 2 + (yy + 0.5 - by) ** 2 < (3 * size) ** 2
    keep = np.unique(comp[near & (comp > 0)])
    shadow = np.isin(comp, keep) & dark
    if grow > 0 and shadow.any():
        shadow = ndimage.binary_dilation(shadow, iterations=grow)
    return shadow & ~bad
