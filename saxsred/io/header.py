"""Frame headers normalised into :class:`FrameMetadata` (SI units, with where each value came from).

ESRF "SAXS keyword" headers (and the similar ones of Xenocs, dahu, LIMA) name the same
quantity in several ways (SCIENCE.md section 2); :func:`parse_metadata` reads them in
order of preference. :func:`check_monitor` refuses a monitor that cannot be a count;
:func:`pilatus_header` reads the ``# Key value`` lines Pilatus and Eiger frames carry.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

# Header names, in order of preference (SCIENCE.md section 2: ID02 writes several).
_MONITOR1_KEYS = ("Intensity1ShutCor", "Intensity1", "HSI1", "Intensity1UnCor")


_MONITOR0_KEYS = ("Intensity0ShutCor", "Intensity0", "HSI0", "Intensity0UnCor")


_EXPOSURE_KEYS = (
    "ExposureTime",
    "HSTime",
    "acq_expo_time",
    "count_time",
    "exposure_time",
    "Exposure_time",
)


# What each monitor mode reads, for messages that list what a header does have.
MONITOR_KEYS = {
    "I1": _MONITOR1_KEYS + ("HSI1",),
    "I0": _MONITOR0_KEYS + ("HSI0",),
    "exposure": _EXPOSURE_KEYS,
}


# A monitor below this is not a count: usually a diode current in A or a ratio (the Xeuss
# writes Intensity1 = 2.4e-17), which would scale I by 1e17 without a word.
MONITOR_MIN_PLAUSIBLE = 1e-6


@dataclass(frozen=True)
class FrameMetadata:
    """Header values saxsred understands, normalised to SI units (None when absent).

    Attributes
    ----------
    exposure_s : exposure time (ExposureTime or HSTime).
    monitor : after-sample (transmitted-beam) monitor I1 (Intensity1ShutCor, Intensity1, HSI1 x HSI1Factor).
    monitor0 : before-sample monitor I0 (Intensity0ShutCor, Intensity0, HSI0 x HSI0Factor).
    transmission : sample transmission if the header gives it (``Transmission``).
    wavelength_m, distance_m : WaveLength, SampleDistance.
    center_1_px, center_2_px : PONI in pixels, Center_1 along the fast axis (x, columns),
        Center_2 along the slow axis (y, rows).
    psize_1_m, psize_2_m : pixel sizes along fast (1) and slow (2) axes.
    rot_1_rad, rot_2_rad, rot_3_rad : detector rotations (Rot_1/2/3 or DetectorRotation_1/2/3).
    dummy, ddummy : invalid-pixel marker and its tolerance.
    thickness_m : SampleThickness.
    normalization_factor : NormalizationFactor (absolute scale, ID02).
    binning : (BSize_1, BSize_2).
    files : dark/flat/mask file names named by the header (with their folders).
    rotation_convention : where the rotations came from: ``"none"``, ``"DetectorRotation"``,
        ``"Rot"`` (dahu) or ``"xeuss_arm"`` (Xenocs ``Delta``/``Gamma`` arm angles, degrees:
        Delta -> pyFAI rot2, Gamma -> pyFAI -rot1; see :func:`parse_metadata`).
    sources : for each value above that is set, where it came from (``"header Intensity1"``,
        ``"EDNA XML WT_001_00001.xml <exposureTime>"``, ``"BioCAT log vac_007.log, row
        vac_007_000001, column I1"``...).
    """

    exposure_s: float | None = None
    monitor: float | None = None
    monitor0: float | None = None
    transmission: float | None = None
    wavelength_m: float | None = None
    distance_m: float | None = None
    center_1_px: float | None = None
    center_2_px: float | None = None
    psize_1_m: float | None = None
    psize_2_m: float | None = None
    rot_1_rad: float = 0.0
    rot_2_rad: float = 0.0
    rot_3_rad: float = 0.0
    rotation_convention: str = "none"
    dummy: float | None = None
    ddummy: float | None = None
    thickness_m: float | None = None
    normalization_factor: float | None = None
    binning: tuple[int, int] = (1, 1)
    files: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _fk(header: dict[str, str], *keys: str) -> tuple[float | None, str | None]:
    """The first of ``keys`` whose value parses as a number, and that key."""
    for k in keys:
        if k in header:
            try:
                v = float(str(header[k]).split()[0])
            except (ValueError, IndexError):
                continue
            return v, k
    return None, None


def _f(header: dict[str, str], *keys: str) -> float | None:
    return _fk(header, *keys)[0]


# Xenocs Xeuss arm angles. Convention confirmed on a real Xeuss 3.0 glassy-carbon frame
# (tests/test_io_frames.py::test_xeuss_arm_angles_put_glassy_carbon_at_18): with the PONI at
# (Center_1, Center_2) and pyFAI rot2 = +Delta, the carbon (002) ring is at q = 17.8 nm^-1 and
# at the same q (+/- 0.1) in every column of the detector; with rot2 = -Delta it drifts from
# 18.8 to 20.9 nm^-1 across the detector, and Delta as rot1 puts no ring in the 14-23 band.
# Gamma (0.24 deg on that frame) moves q by < 0.1 nm^-1, too little to confirm its sign there:
# it is applied as rot1 = -Gamma (CEA's SWAXSanalysis convention, which the frame weakly
# prefers), and a Gamma above XEUSS_GAMMA_MAX_DEG is refused rather than guessed.
XEUSS_GAMMA_MAX_DEG = 1.0


def _binning(header: dict[str, str], key: str, where: str) -> int:
    value = _f(header, key)
    if value is None or value == 0:
        return 1
    if not math.isfinite(value) or value < 1 or value > 64 or value != int(value):
        raise InputError(
            f"{where}: {key} = {header.get(key)!r} is not a detector binning (a whole number"
            " from 1 to 64): correct or remove the key"
        )
    return int(value)


def parse_metadata(header: dict[str, str], where: str = "header") -> FrameMetadata:
    """Normalise an ESRF "SAXS keyword" header (or similar) into :class:`FrameMetadata`.

    Every value found is recorded in ``sources`` with the key it came from (``where``
    names the header: ``"header"`` for the frame's own, or a side file).
    """
    h = {str(k): str(v) for k, v in header.items()}
    src: dict[str, str] = {}

    def take(name: str, *keys: str) -> float | None:
        v, k = _fk(h, *keys)
        if v is not None:
            src[name] = f"{where} {k}"
        return v

    mon1 = take("monitor", *_MONITOR1_KEYS[:2])
    if mon1 is None and _f(h, "HSI1") is not None:
        mon1 = _f(h, "HSI1") * (_f(h, "HSI1Factor") or 1.0)  # type: ignore[operator]
        src["monitor"] = f"{where} HSI1 x HSI1Factor"
    if mon1 is None:
        mon1 = take("monitor", "Intensity1UnCor")
    mon0 = take("monitor0", *_MONITOR0_KEYS[:2])
    if mon0 is None and _f(h, "HSI0") is not None:
        mon0 = _f(h, "HSI0") * (_f(h, "HSI0Factor") or 1.0)  # type: ignore[operator]
        src["monitor0"] = f"{where} HSI0 x HSI0Factor"
    if mon0 is None:
        mon0 = take("monitor0", "Intensity0UnCor")
    if any(k in h for k in ("DetectorRotation_1", "DetectorRotation_2", "DetectorRotation_3")):
        rots = tuple(_f(h, f"DetectorRotation_{i}") or 0.0 for i in (1, 2, 3))
        conv = "DetectorRotation"
    elif any(k in h for k in ("Rot_1", "Rot_2", "Rot_3")):
        rots = tuple(_f(h, f"Rot_{i}") or 0.0 for i in (1, 2, 3))
        conv = "Rot"
    elif (_f(h, "Delta") or 0.0) != 0.0 or (_f(h, "Gamma") or 0.0) != 0.0:
        # Xeuss arm, in degrees. rot_1 is stored in the DetectorRotation convention (axis 1 =
        # fast, becomes pyFAI rot2), rot_2 becomes pyFAI rot1: see XEUSS_GAMMA_MAX_DEG above.
        rots = (math.radians(_f(h, "Delta") or 0.0), -math.radians(_f(h, "Gamma") or 0.0), 0.0)
        conv = "xeuss_arm"
    else:
        rots, conv = (0.0, 0.0, 0.0), "none"
    if conv != "none":
        src["rotations"] = (
            f"{where} "
            + {
                "DetectorRotation": "DetectorRotation_1/2/3 (rad)",
                "Rot": "Rot_1/2/3 (rad)",
                "xeuss_arm": "Delta/Gamma arm angles (deg): pyFAI rot2 = Delta, rot1 = -Gamma",
            }[conv]
        )
    files = {}
    for key in (
        "DarkFileName",
        "FlatfieldFileName",
        "DetectorMaskFileName",
        "MaskFileName",
        "WindowFileName",
    ):
        if key in h and h[key].strip():
            folder = h.get(key.replace("FileName", "FilePath"), "").strip()
            files[key] = os.path.join(folder, h[key].strip()) if folder else h[key].strip()
    bs1 = _binning(h, "BSize_1", where)
    bs2 = _binning(h, "BSize_2", where)
    return FrameMetadata(
        exposure_s=take("exposure_s", *_EXPOSURE_KEYS),
        monitor=mon1,
        monitor0=mon0,
        transmission=take("transmission", "Transmission", "SampleTransmission"),
        wavelength_m=take("wavelength_m", "WaveLength"),
        distance_m=take("distance_m", "SampleDistance"),
        center_1_px=take("center_1_px", "Center_1"),
        center_2_px=take("center_2_px", "Center_2"),
        psize_1_m=take("psize_1_m", "PSize_1"),
        psize_2_m=take("psize_2_m", "PSize_2"),
        rot_1_rad=rots[0],
        rot_2_rad=rots[1],
        rot_3_rad=rots[2],
        rotation_convention=conv,
        dummy=take("dummy", "Dummy"),
        ddummy=take("ddummy", "DDummy"),
        thickness_m=take("thickness_m", "SampleThickness"),
        normalization_factor=take("normalization_factor", "NormalizationFactor"),
        binning=(bs1, bs2),
        files=files,
        sources=src,
    )


def monitor_keys_present(header: dict[str, str]) -> list[str]:
    """The monitor and time keys a header has (any spelling saxsred reads), for messages."""
    keys = dict.fromkeys(k for ks in MONITOR_KEYS.values() for k in ks)
    return [k for k in keys if _f(header, k) is not None]


def check_monitor(value: float | None, key: str, where: str) -> None:
    """Refuse a monitor that is not positive and finite; warn when it is not a count.

    A value below :data:`MONITOR_MIN_PLAUSIBLE` (a diode current in A, a ratio) would
    multiply the intensities by its inverse: said in one :class:`InputWarning` line.
    """
    import warnings

    from ..errors import InputWarning

    if value is None:
        return
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"{where}: {key} = {value} must be positive and finite; the beam was off or the header is wrong"
        )
    if value < MONITOR_MIN_PLAUSIBLE:
        warnings.warn(
            f"{where}: {key} = {value:.3g} used as a monitor divides I by {value:.3g} (I ~ {1 / value:.1g} x counts); "
            "it looks like a current or a ratio, not counts: use --monitor exposure, or keep it and set --scale",
            InputWarning,
            stacklevel=2,
        )


# ------------------------------------------------------------- Pilatus/Eiger (camserver) header

_PILATUS_LINE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_]*)[:=]?\s+(.+?)\s*$")


def pilatus_header(header: dict[str, str]) -> dict[str, str]:
    """The ``# Key value unit`` lines of a Pilatus/Eiger (camserver) header, as a dict.

    Pilatus TIFF frames keep them in the TIFF ImageDescription, CBF frames in
    ``_array_data.header_contents``: ``Exposure_time 5.0000000 s``, ``Wavelength 1.54 A``...
    """
    text = header.get("imageDescription") or header.get("_array_data.header_contents") or ""
    out: dict[str, str] = {}
    if "# " not in text:
        return out
    for line in str(text).replace("\r", "").splitlines():
        m = _PILATUS_LINE.match(line.strip())
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out
