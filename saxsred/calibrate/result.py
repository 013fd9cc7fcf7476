"""Result of a calibration and its PONI file (pyFAI format 2 with provenance comments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..geometry import Geometry
from .resolution import Resolution


@dataclass(frozen=True)
class RingResidual:
    """One calibrant ring: expected and measured q (control points in the refined geometry)."""

    ring: int
    d_nm: float
    q_calibrant_inv_nm: float
    q_measured_inv_nm: float
    residual_inv_nm: float
    rms_inv_nm: float
    n_points: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "ring": self.ring,
            "d_nm": self.d_nm,
            "q_calibrant_inv_nm": self.q_calibrant_inv_nm,
            "q_measured_inv_nm": self.q_measured_inv_nm,
            "residual_inv_nm": self.residual_inv_nm,
            "relative_residual": self.residual_inv_nm / self.q_calibrant_inv_nm,
            "rms_inv_nm": self.rms_inv_nm,
            "n_points": self.n_points,
        }


@dataclass(frozen=True)
class Calibration:
    """Result of :func:`calibrate`: the refined geometry and how well it fits the rings."""

    geometry: Geometry
    start: Geometry
    calibrant: str
    rings: tuple[RingResidual, ...]
    residual_rms_inv_nm: float
    residual_rms_px: float
    errors: dict[str, float]
    resolution: Resolution | None
    warnings: tuple[str, ...]
    control_points: np.ndarray
    search: dict[str, float]  # what the coarse search found (empty values when skipped)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def rings_used(self) -> int:
        return len(self.rings)

    def to_json_dict(self) -> dict[str, Any]:
        g = self.geometry
        out = {
            "distance_m": g.dist_m,
            "poni1_m": g.poni1_m,
            "poni2_m": g.poni2_m,
            "rot1_rad": g.rot1_rad,
            "rot2_rad": g.rot2_rad,
            "rot3_rad": g.rot3_rad,
            "wavelength_m": g.wavelength_m,
            "rings_used": self.rings_used,
            "residual_rms_inv_nm": self.residual_rms_inv_nm,
            "residual_rms_px": self.residual_rms_px,
            "warnings": list(self.warnings),
            "calibrant": self.calibrant,
            "beam_center_x_px": None,
            "beam_center_y_px": None,
            "rings": [r.to_json_dict() for r in self.rings],
            "control_points": int(self.control_points.shape[0]),
            "instrument_fwhm_inv_nm": self.resolution.instrument_fwhm_inv_nm
            if self.resolution
            else None,
            "resolution": self.resolution.to_json_dict() if self.resolution else None,
            "search": dict(self.search),
        }
        for k, v in self.errors.items():
            out[
                {
                    "dist": "distance_err_m",
                    "poni1": "poni1_err_m",
                    "poni2": "poni2_err_m",
                    "rot1": "rot1_err_rad",
                    "rot2": "rot2_err_rad",
                    "rot3": "rot3_err_rad",
                    "wavelength": "wavelength_err_m",
                }[k]
            ] = v
        bx, by = g.beam_center_px()
        out["beam_center_x_px"], out["beam_center_y_px"] = bx, by
        return out


def pyfai_detector(geometry: Geometry, shape: tuple[int, int]):
    det = geometry.with_shape(shape).integrator().detector
    if det.max_shape is None or tuple(det.max_shape) != tuple(shape):
        from pyFAI.detectors import Detector

        det = Detector(geometry.pixel1_m, geometry.pixel2_m, max_shape=shape)
    return det


def poni_text(result: Calibration) -> str:
    """PONI file (pyFAI format 2) of a calibration, with its provenance as comment lines.

    No date or host name: the same frame and options give the same bytes. The instrument
    width goes into a ``# saxsred instrument_fwhm_inv_nm:`` line that saxsred's PONI reader
    understands (pyFAI skips comments).
    """
    import json

    from ..provenance import to_json

    g = result.geometry
    det = pyfai_detector(g, g.shape) if g.shape else None
    if det is not None and type(det).__name__ != "Detector":
        dname, dcfg = det.name.replace(" ", ""), det.get_config()
    else:
        dname, dcfg = (
            "Detector",
            {
                "pixel1": g.pixel1_m,
                "pixel2": g.pixel2_m,
                "max_shape": list(g.shape) if g.shape else None,
            },
        )
    lines = [
        "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis",
        f"# Calibration by saxsred calibrate from {result.calibrant}: {result.rings_used} rings, "
        f"residual {result.residual_rms_inv_nm:.3g} nm^-1 rms ({result.residual_rms_px:.3g} px)",
    ]
    if result.resolution is not None:
        r = result.resolution
        lines.append(f"# saxsred instrument_fwhm_inv_nm: {r.instrument_fwhm_inv_nm!r}")
        lines.append(f"# saxsred instrument_width_source: {r.describe()}")
    for w in result.warnings:
        lines.append(f"# warning: {w}")
    lines.append(f"# provenance: {to_json(result.provenance, indent=None)}")
    lines += [
        "poni_version: 2",
        f"Detector: {dname}",
        f"Detector_config: {json.dumps(dcfg, sort_keys=True)}",
        f"Distance: {g.dist_m!r}",
        f"Poni1: {g.poni1_m!r}",
        f"Poni2: {g.poni2_m!r}",
        f"Rot1: {g.rot1_rad!r}",
        f"Rot2: {g.rot2_rad!r}",
        f"Rot3: {g.rot3_rad!r}",
        f"Wavelength: {g.wavelength_m!r}",
    ]
    return "\n".join(lines) + "\n"
