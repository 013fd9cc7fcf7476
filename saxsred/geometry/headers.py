"""Geometry from ESRF "SAXS keyword" headers and EDNA XML files, and back to a header.

ESRF headers give the PONI in pixels, Center_1 along the fast axis (x, columns) and
Center_2 along the slow axis (y, rows); pyFAI's poni1 is along the slow axis, so
poni1 = Center_2 * PSize_2 (swapping the two is the classic bug). :func:`load_geometry`
picks the reader from the file: PONI, EDNA XML, or the header of a frame.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..errors import GeometryError, InputError
from ..io.header import XEUSS_GAMMA_MAX_DEG, FrameMetadata
from .core import Geometry, check_plausible
from .poni import load_poni

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
    frame: see :data:`saxsred.io.header.XEUSS_GAMMA_MAX_DEG`); a Gamma above that is refused.
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
    from ..io.frames import read_frame

    fr = read_frame(p)
    return geometry_from_metadata(
        fr.metadata, fr.data.shape, source=p.name, accept_implausible=accept_implausible
    )


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
