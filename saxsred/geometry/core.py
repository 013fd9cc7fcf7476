"""The :class:`Geometry` object (pyFAI's geometry as a frozen dataclass) and its checks.

The geometry is pyFAI's: a distance, the point of normal incidence (PONI) and three
rotations, plus pixel sizes and wavelength. :func:`check_plausible` refuses values no
instrument can have (the metre/millimetre trap); :func:`check_shape` a frame that does not
belong to the detector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryError


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

        from ..io.atomic import write_text_atomic

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


# ------------------------------------------------------------------ plausibility and shape

# Plausible ranges (SI units): what a SAXS/WAXS geometry can be. Outside them the value is
# almost always in the wrong unit; ``accept_implausible=True`` lets a user who means it through.
PLAUSIBLE = {
    "distance_m": (1e-3, 100.0),
    "wavelength_m": (1e-12, 2e-9),
    "pixel_m": (1e-6, 1e-2),
}


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


def check_shape(geo: Geometry, shape: tuple[int, int], where: str) -> None:
    """Raise GeometryError if a frame's shape disagrees with the geometry's detector."""
    if geo.shape is not None and tuple(geo.shape) != tuple(shape):
        raise GeometryError(
            f"{where}: frame shape {tuple(shape)} does not match the detector of {geo.source or 'the geometry'} "
            f"{tuple(geo.shape)}; use the PONI/mask of this detector (or its binning)"
        )
