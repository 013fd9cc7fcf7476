"""Correction chain: what a frame is divided by, and which pixels are masked.

Per frame (SCIENCE.md section 2, as ESRF ID02 does it)::

    I(q) = sum_pix (raw - dark) / sum_pix [flat * Omega_rel * P * N]
    N    = monitor * T_extra * thickness_cm * Omega_poni / K

where Omega_rel is pyFAI's relative solid angle (1 at the PONI), Omega_poni = p1 p2 / d^2
the absolute solid angle of a pixel at the PONI (so curves are per steradian, as dahu's),
P the polarisation factor, and K the absolute scale factor. The variance of each pixel is
raw + dark (both Poisson: the dark's own noise enters) and goes through pyFAI with the
same weights, so sigma is the propagated Poisson error of the mean in each q bin. pyFAI's
``error_model="poisson"`` does exactly this (variance = max(raw, 1) + dark) inside its
compiled preprocessing, without a second full-frame array.

Normalisation by the after-sample monitor I1 corrects incident flux and transmission
together; with only I0 (or an explicit transmission) the transmission is applied on top.

Example
-------
>>> red = Reducer(load_poni("calibration/saxs_1m.poni"), Corrections(npt=500))   # doctest: +SKIP
>>> curve = red.reduce(read_frame("sample_data/sp_suspension.edf"))               # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import provenance as prov_mod
from ..curve import X_UNITS
from ..errors import GeometryError, InputError, ParameterError
from ..geometry import (
    Geometry,
    beamstop_disk_mask,
    detector_gap_mask,
    hot_pixel_mask,
    shadow_mask,
    threshold_mask,
)
from ..io.frames import Frame, check_monitor, missing_monitor_message

#: Integration method pinned so that results are identical on every machine and worker:
#: no pixel splitting, CSR sparse matrix, Cython engine (OpenMP-free reduction order).
DEFAULT_METHOD = ("no", "csr", "cython")
#: Error models: pyFAI's, plus "none" (no sigma).
ERROR_MODELS = ("poisson", "azimuthal", "none")


@dataclass(frozen=True)
class Corrections:
    """Options of the correction chain.

    Attributes
    ----------
    dark, flat : 2-D arrays (same shape as the frame) or None. The dark is in counts for
        the same exposure; the flat is a relative efficiency (1 = nominal).
    mask : bool array, True = masked (pyFAI convention), or None.
    solid_angle : divide by the pixel solid angle (per steradian result).
    polarization_factor : pyFAI's factor (-1..1; 0.99 for a horizontally polarised
        undulator beam); None switches the correction off.
    monitor : "auto" (I1 if the header has it, else I0 x T, else exposure), "I1", "I0", "exposure", "none".
    transmission : sample transmission; None takes it from the header (Transmission key,
        or I1/I0 relative to ``empty_beam_ratio``) when the monitor needs it.
    empty_beam_ratio : I1/I0 measured without sample (for T = (I1/I0) / ratio).
    thickness_mm : sample thickness in mm (None: the header's SampleThickness; without
        either, no thickness normalisation).
    scale : absolute scale factor K (multiplies the result).
    mask_dummy, mask_negative : mask header Dummy values (tested on raw counts, before any
        subtraction) and negative counts (detector gaps).
    saturation : counts at or above this are masked (None: the dtype's maximum for
        unsigned integer frames, which detectors use as a sentinel).
    hot_pixels : also mask isolated hot pixels (median-filter test).
    npt : number of q bins. unit: pyFAI unit of the radial axis (the curve's ``x_unit``).
    q_range_nm : optional (min, max) of the radial axis, in ``unit`` (nm^-1 by default).
    method : pyFAI integration method (pinned by default for reproducibility).
    error_model : "poisson" (variance = counts + dark), "azimuthal" (pyFAI's scatter of the
        pixels in each bin) or "none" (sigma = 0, said in provenance).
    mask_below, mask_above : raw counts below / above these are masked (threshold mask).
    beamstop_radius_px : mask a disk of this radius (pixels) around the direct beam.
    beamstop_auto : mask the beamstop and its arm found as the dark region around the
        direct beam (:func:`saxsred.geometry.shadow_mask`).
    """

    dark: np.ndarray | None = None
    flat: np.ndarray | None = None
    mask: np.ndarray | None = None
    solid_angle: bool = True
    polarization_factor: float | None = 0.99
    monitor: str = "auto"
    transmission: float | None = None
    empty_beam_ratio: float | None = None
    thickness_mm: float | None = None
    scale: float = 1.0
    mask_dummy: bool = True
    mask_negative: bool = True
    saturation: float | None = None
    hot_pixels: bool = False
    npt: int = 1000
    unit: str = "q_nm^-1"
    q_range_nm: tuple[float, float] | None = None
    method: tuple[str, str, str] = DEFAULT_METHOD
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    error_model: str = "poisson"
    mask_below: float | None = None
    mask_above: float | None = None
    beamstop_radius_px: float | None = None
    beamstop_auto: bool = False

    def describe(self) -> dict[str, Any]:
        """Options as a JSON-able dict (arrays replaced by their checksums)."""
        out: dict[str, Any] = {}
        for k in self.__dataclass_fields__:
            if k == "provenance":
                continue
            v = getattr(self, k)
            if isinstance(v, np.ndarray):
                v = prov_mod.array_checksum(v)
            out[k] = v
        out.update(self.provenance)
        return out


@dataclass(frozen=True)
class Normalisation:
    """What a frame was divided by, and why (kept in provenance)."""

    factor: float
    monitor_kind: str
    monitor_value: float
    transmission: float | None
    thickness_cm: float | None
    solid_angle_poni_sr: float


def check_corrections(c: Corrections, shape: tuple[int, int], where: str) -> None:
    for name in ("dark", "flat", "mask"):
        arr = getattr(c, name)
        if arr is not None and tuple(np.shape(arr)) != tuple(shape):
            raise GeometryError(
                f"{where}: {name} shape {tuple(np.shape(arr))} does not match the frame {tuple(shape)}; "
                f"use the {name} of this detector"
            )
    if c.flat is not None and np.any(
        np.asarray(c.flat)[~(c.mask if c.mask is not None else False)] <= 0
    ):
        raise InputError(
            f"{where}: flat field has zero or negative values on unmasked pixels; mask them"
        )
    if c.npt < 2:
        raise ParameterError(f"npt = {c.npt}: need at least 2 q bins")
    if c.transmission is not None and not (
        math.isfinite(c.transmission) and 0 < c.transmission <= 1
    ):
        raise InputError(
            f"{where}: transmission {c.transmission} must be in (0, 1] (a fraction, not a percentage); "
            "fix --transmission"
        )
    if c.error_model not in ERROR_MODELS:
        raise ParameterError(f"error model {c.error_model!r}: use {', '.join(ERROR_MODELS)}")
    if c.unit not in X_UNITS or c.unit == "chi_deg":
        raise ParameterError(
            f"unit {c.unit!r}: use one of {', '.join(u for u in X_UNITS if u != 'chi_deg')}"
        )
    if c.q_range_nm is not None and not (
        len(c.q_range_nm) == 2
        and all(math.isfinite(v) for v in c.q_range_nm)
        and 0 <= c.q_range_nm[0] < c.q_range_nm[1]
    ):
        raise ParameterError(f"q range {c.q_range_nm}: need 0 <= min < max (in {c.unit})")
    if c.scale <= 0 or not math.isfinite(c.scale):
        raise ParameterError(f"scale factor {c.scale} must be positive")


def normalisation(frame: Frame, geometry: Geometry, c: Corrections) -> Normalisation:
    """The normalisation factor N of a frame (monitor x transmission x thickness x Omega_poni / K)."""
    md = frame.metadata
    where = frame.path if frame.nframes == 1 else f"{frame.path} frame {frame.index}"
    mode = c.monitor
    if mode == "auto":
        if md.monitor is not None:
            mode = "I1"
        elif md.monitor0 is not None:
            mode = "I0"
        elif md.exposure_s is not None:
            mode = "exposure"
        else:
            mode = "none"
    if mode == "I1":
        value = md.monitor
        key = "Intensity1 (after-sample monitor)"
    elif mode == "I0":
        value = md.monitor0
        key = "Intensity0 (before-sample monitor)"
    elif mode == "exposure":
        value = md.exposure_s
        key = "ExposureTime"
    elif mode == "none":
        value, key = 1.0, "none"
    else:
        raise ParameterError(f"monitor = {mode!r}: use auto, I1, I0, exposure or none")
    if value is None:
        raise InputError(missing_monitor_message(frame, mode))
    if mode != "none":
        src = md.sources.get(
            {"I1": "monitor", "I0": "monitor0", "exposure": "exposure_s"}[mode], key
        )
        check_monitor(value, src.removeprefix("header "), where)
    # Transmission: I1 already contains it; I0 and exposure need it applied.
    trans = c.transmission
    if trans is None and mode != "I1":
        if md.transmission is not None:
            trans = md.transmission
        elif c.empty_beam_ratio and md.monitor is not None and md.monitor0:
            trans = (md.monitor / md.monitor0) / c.empty_beam_ratio
    elif mode == "I1" and c.transmission is not None:
        trans = None  # I1 includes the transmission: never divide by it twice
    if trans is not None and not (math.isfinite(trans) and trans > 0):
        raise InputError(
            f"{where}: transmission {trans} is zero or negative; check the monitors or give --transmission"
        )
    thick_mm = c.thickness_mm
    if thick_mm is None and md.thickness_m is not None:
        thick_mm = md.thickness_m * 1e3
    if thick_mm is not None and not (math.isfinite(thick_mm) and thick_mm > 0):
        raise InputError(f"{where}: thickness {thick_mm} mm must be positive; give --thickness")
    thick_cm = thick_mm / 10.0 if thick_mm is not None else None
    omega = geometry.pixel1_m * geometry.pixel2_m / geometry.dist_m**2 if c.solid_angle else 1.0
    factor = value * (trans or 1.0) * (thick_cm or 1.0) * omega / c.scale
    return Normalisation(factor, mode, float(value), trans, thick_cm, omega)


def static_mask(geometry: Geometry, c: Corrections, shape: tuple[int, int]) -> np.ndarray:
    """The part of the mask that is the same for every frame: mask file and detector gaps."""
    m = np.zeros(shape, dtype=bool) if c.mask is None else np.array(c.mask, dtype=bool, copy=True)
    m |= detector_gap_mask(geometry, shape)
    if c.beamstop_radius_px:
        m |= beamstop_disk_mask(geometry, shape, c.beamstop_radius_px)
    return m


def dynamic_invalid(
    frame: Frame,
    c: Corrections,
    base: np.ndarray,
    q_map: np.ndarray | None = None,
    geometry: Geometry | None = None,
) -> np.ndarray | None:
    """Pixels of this frame that are invalid beyond the static mask: Dummy, negative,
    saturated, outside the thresholds, hot, in the beamstop's shadow (``beamstop_auto``,
    needs the geometry). None when there are none (the common case for a masked detector).

    Dummy pixels are found on the raw counts, before any subtraction: a valid pixel whose
    dark-subtracted value happens to equal Dummy stays valid.
    """
    raw = frame.data
    md = frame.metadata
    dyn = None

    def add(bad: np.ndarray) -> None:
        nonlocal dyn
        dyn = bad if dyn is None else (dyn | bad)

    neg_covers_dummy = (
        c.mask_negative and md.dummy is not None and md.dummy + (md.ddummy or 0.0) < 0
    )
    if c.mask_dummy and md.dummy is not None and not neg_covers_dummy:
        tol = md.ddummy or 0.0
        add(np.abs(raw - md.dummy) <= tol if tol > 0 else raw == md.dummy)
    if c.mask_negative and raw.dtype.kind in "if":
        add(raw < 0)
    sat = c.saturation
    if sat is None and raw.dtype.kind == "u":
        sat = np.iinfo(raw.dtype).max
    if sat is not None:
        add(raw >= sat)
    if c.mask_below is not None or c.mask_above is not None:
        add(threshold_mask(raw, c.mask_below, c.mask_above))
    if c.hot_pixels:
        excluded = base if dyn is None else (base | dyn)
        add(hot_pixel_mask(raw, q_map=q_map, mask=excluded))
    if c.beamstop_auto and geometry is not None:
        excluded = base if dyn is None else (base | dyn)
        add(shadow_mask(raw, geometry, invalid=excluded, q_map=q_map))
    if dyn is None:
        return None
    dyn &= ~base
    return dyn if dyn.any() else None


def pixel_mask(
    frame: Frame, geometry: Geometry, c: Corrections, static: np.ndarray | None = None
) -> np.ndarray:
    """Combined mask (True = masked): file mask, detector gaps, Dummy, negative, saturated, hot."""
    base = static_mask(geometry, c, frame.data.shape) if static is None else static
    q_map = geometry.q_map_nm(frame.data.shape) if (c.hot_pixels or c.beamstop_auto) else None
    dyn = dynamic_invalid(frame, c, base, q_map, geometry)
    return base if dyn is None else (base | dyn)


#: Keys of :func:`corrections_from_mapping` that name files (loaded, checksummed in provenance).
FILE_KEYS = ("dark", "flat", "mask")

#: Keys of :func:`corrections_from_mapping` that are plain options: every field of
#: :class:`Corrections` but the files, the pinned method and the provenance (a new field
#: is a new option everywhere, with its default in the dataclass only).
OPTION_KEYS = tuple(
    k for k in Corrections.__dataclass_fields__ if k not in (*FILE_KEYS, "method", "provenance")
)

#: Monitor choices (the CLI and the recipe schema take them from here).
MONITORS = ("auto", "I1", "I0", "exposure", "none")


def load_correction_file(
    kind: str, path: str | Any, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Read a dark or flat (float64 array) or a mask (bool, True = masked) from a file."""
    from ..geometry import load_mask
    from ..io.frames import read_image

    if kind == "mask":
        return load_mask(path, shape=shape) if shape is not None else load_mask(path)
    return np.asarray(read_image(path), dtype=np.float64)


def corrections_from_mapping(
    options: dict[str, Any], provenance: dict[str, Any] | None = None
) -> Corrections:
    """The one :class:`Corrections` builder: from a mapping of option names to values.

    ``dark``, ``flat`` and ``mask`` are file paths (read here, recorded with their checksums
    as ``<kind>_file`` in the provenance) or arrays; the other keys are those of
    :data:`OPTION_KEYS`. A key absent or None takes the default of :class:`Corrections`
    (the one place defaults live), except ``polarization_factor``: None or False switches
    the correction off, as it does on the command line (``--polarization off``). Unknown
    keys are an error (the CLI and the recipe schema pass only known ones).

    Example
    -------
    >>> corrections_from_mapping({"npt": 500, "monitor": "I1"}).npt
    500
    """
    unknown = sorted(set(options) - set(FILE_KEYS) - set(OPTION_KEYS))
    if unknown:
        raise ParameterError(
            f"unknown correction option(s) {', '.join(unknown)}; allowed: {', '.join(FILE_KEYS + OPTION_KEYS)}"
        )
    kw: dict[str, Any] = {}
    prov = dict(provenance or {})
    for kind in FILE_KEYS:
        v = options.get(kind)
        if v is None:
            continue
        if isinstance(v, np.ndarray):
            kw[kind] = v
        else:
            kw[kind] = load_correction_file(kind, v)
            prov[f"{kind}_file"] = prov_mod.input_record(v)
    for key in OPTION_KEYS:
        if key not in options:
            continue
        v = options[key]
        if key == "polarization_factor":
            kw[key] = None if v is None or v is False else float(v)
        elif v is not None:
            kw[key] = tuple(v) if key == "q_range_nm" else v
    if "monitor" in kw and kw["monitor"] not in MONITORS:
        raise ParameterError(f"monitor = {kw['monitor']!r}: use {', '.join(MONITORS)}")
    return Corrections(**kw, provenance=prov)
