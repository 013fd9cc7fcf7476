"""Calibration: a detector geometry from a calibrant frame (pyFAI's calibrants, ring extraction and model).

``calibrate(frame, "AgBh", start)`` searches the beam centre and the distance from the
rings themselves (:mod:`.search`: headers can be off by a factor of two), extracts control
points and refines distance, PONI and tilts with pyFAI (:mod:`.refine`; wavelength fixed
unless asked), reports each ring's residual in q, the width of the lowest ring as the
instrument's resolution (:mod:`.resolution`) and how far the result is from the header.

Example
-------
>>> from saxsred.io.frames import read_frame                    # doctest: +SKIP
>>> cal = calibrate_frame(read_frame("agbh.edf"), "AgBh")        # doctest: +SKIP
>>> cal.geometry.dist_m, cal.residual_rms_inv_nm, cal.warnings   # doctest: +SKIP
"""

from .core import (
    CALIBRANTS,
    calibrant_for,
    calibrate,
    calibrate_frame,
    calibration_mask,
    start_geometry,
)
from .resolution import Resolution, instrument_resolution
from .result import Calibration, RingResidual, poni_text

__all__ = [
    "CALIBRANTS",
    "Calibration",
    "Resolution",
    "RingResidual",
    "calibrant_for",
    "calibrate",
    "calibrate_frame",
    "calibration_mask",
    "instrument_resolution",
    "poni_text",
    "start_geometry",
]
