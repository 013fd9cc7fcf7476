"""PONI files (pyFAI format): keys checked against pyFAI's, read into a :class:`Geometry`.

pyFAI ignores a key it does not know (a misspelt ``Distnace`` leaves the distance at its
default of 1 m), so :func:`check_poni_text` refuses unknown keys and names the nearest
known one. ``saxsred calibrate`` writes the instrumental width into the comments
(:func:`poni_instrument_width`).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from .core import Geometry, check_plausible

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
