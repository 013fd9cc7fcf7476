"""Detector geometry (PONI files, ESRF "SAXS keyword" headers, EDNA XML) and masks.

The geometry is pyFAI's: a distance, the point of normal incidence (PONI) and three
rotations, plus pixel sizes and wavelength. ESRF headers give the PONI in pixels,
Center_1 along the fast axis (x, columns) and Center_2 along the slow axis (y, rows);
pyFAI's poni1 is along the slow axis, so poni1 = Center_2 * PSize_2 — swapping the two
is the classic bug.

Modules
-------
core       :class:`Geometry` (pyFAI's geometry as a frozen dataclass), plausibility and
           shape checks
poni       PONI files: keys checked against pyFAI's, :func:`load_poni`
headers    ESRF headers and EDNA XML to a geometry and back; :func:`load_geometry` picks
           the reader from the file
overrides  wavelength / energy overrides and the Dioptas orientation
masks      mask files, detector gaps, hot pixels, thresholds, beamstop disk and shadow

Every public name is importable from ``saxsred.geometry``.
"""

from .core import PLAUSIBLE, Geometry, check_plausible, check_shape
from .headers import (
    geometry_from_edna_xml,
    geometry_from_metadata,
    geometry_to_header,
    load_geometry,
)
from .masks import (
    beamstop_disk_mask,
    detector_gap_mask,
    hot_pixel_mask,
    load_mask,
    shadow_mask,
    threshold_mask,
)
from .overrides import HC_KEV_NM, apply_overrides, from_dioptas, wavelength_from
from .poni import PONI_KEYS, check_poni_text, load_poni, nearest_key, poni_instrument_width

__all__ = [
    "HC_KEV_NM",
    "PLAUSIBLE",
    "PONI_KEYS",
    "Geometry",
    "apply_overrides",
    "beamstop_disk_mask",
    "check_plausible",
    "check_poni_text",
    "check_shape",
    "detector_gap_mask",
    "from_dioptas",
    "geometry_from_edna_xml",
    "geometry_from_metadata",
    "geometry_to_header",
    "hot_pixel_mask",
    "load_geometry",
    "load_mask",
    "load_poni",
    "nearest_key",
    "poni_instrument_width",
    "shadow_mask",
    "threshold_mask",
    "wavelength_from",
]
