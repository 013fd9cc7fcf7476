"""Correction chain and integration: frames to I(q), with Poisson errors propagated.

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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import stats

from . import provenance as prov_mod
from .curve import ChiProfile, Curve
from .errors import GeometryError, InputError, ParameterError
from .geometry import Geometry, check_shape, detector_gap_mask, hot_pixel_mask
from .io.frames import Frame

#: Absolute differential scattering cross-section of water at 20 C (cm^-1),
#: Orthaber, Bergmann & Glatter, J. Appl. Cryst. 33 (2000) 218.
WATER_DSIGMA_20C = 0.01632

#: Integration method pinned so that results are identical on every machine and worker:
#: no pixel splitting, CSR sparse matrix, Cython engine (OpenMP-free reduction order).
DEFAULT_METHOD = ("no", "csr", "cython")


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
    npt : number of q bins. unit: pyFAI unit of the radial axis.
    q_range_nm : optional (qmin, qmax) in nm^-1.
    method : pyFAI integration method (pinned by default for reproducibility).
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


def _check_corrections(c: Corrections, shape: tuple[int, int], where: str) -> None:
    for name in ("dark", "flat", "mask"):
        arr = getattr(c, name)
        if arr is not None and tuple(np.shape(arr)) != tuple(shape):
            raise GeometryError(
                f"{where}: {name} shape {tuple(np.shape(arr))} does not match the frame {tuple(shape)}; "
                f"use the {name} of this detector"
            )
    if c.flat is not None and np.any(np.asarray(c.flat)[~(c.mask if c.mask is not None else False)] <= 0):
        raise InputError(f"{where}: flat field has zero or negative values on unmasked pixels; mask them")
    if c.npt < 2:
        raise ParameterError(f"npt = {c.npt}: need at least 2 q bins")
    if c.transmission is not None and not (0 < c.transmission <= 1.5):
        raise InputError(
            f"{where}: transmission {c.transmission} must be in (0, 1]; measure it or give --transmission"
        )
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
        raise InputError(f"{where}: header has no {key}; choose another --monitor or fix the header")
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"{where}: {key} = {value} must be positive; the beam was off or the header is wrong")
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
    return m


def dynamic_invalid(
    frame: Frame, c: Corrections, base: np.ndarray, q_map: np.ndarray | None = None
) -> np.ndarray | None:
    """Pixels of this frame that are invalid beyond the static mask: Dummy, negative,
    saturated, hot. None when there are none (the common case for a masked detector).

    Dummy pixels are found on the raw counts, before any subtraction: a valid pixel whose
    dark-subtracted value happens to equal Dummy stays valid.
    """
    raw = frame.data
    md = frame.metadata
    dyn = None

    def add(bad: np.ndarray) -> None:
        nonlocal dyn
        dyn = bad if dyn is None else (dyn | bad)

    neg_covers_dummy = c.mask_negative and md.dummy is not None and md.dummy + (md.ddummy or 0.0) < 0
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
    if c.hot_pixels:
        excluded = base if dyn is None else (base | dyn)
        add(hot_pixel_mask(raw, q_map=q_map, mask=excluded))
    if dyn is None:
        return None
    dyn &= ~base
    return dyn if dyn.any() else None


def pixel_mask(frame: Frame, geometry: Geometry, c: Corrections, static: np.ndarray | None = None) -> np.ndarray:
    """Combined mask (True = masked): file mask, detector gaps, Dummy, negative, saturated, hot."""
    base = static_mask(geometry, c, frame.data.shape) if static is None else static
    q_map = geometry.q_map_nm(frame.data.shape) if c.hot_pixels else None
    dyn = dynamic_invalid(frame, c, base, q_map)
    return base if dyn is None else (base | dyn)


def _sentinel(dtype: np.dtype) -> float:
    # A value no valid pixel holds, exactly representable in float32 (pyFAI's working type).
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else -1.0e9


def _header_dummy(frame: Frame, c: Corrections, dyn: np.ndarray) -> tuple[float, float] | None:
    """(dummy, delta) for pyFAI when this frame's invalid pixels are exactly its header
    Dummy pixels (integer counts, one value v): pyFAI's test |x - v| <= 0.5 then finds
    exactly the pixels equal to v, all of which ``dyn`` holds. None otherwise."""
    md = frame.metadata
    raw = frame.data
    if not c.mask_dummy or md.dummy is None or raw.dtype.kind not in "iu":
        return None
    tol = md.ddummy or 0.0
    lo, hi = math.ceil(md.dummy - tol), math.floor(md.dummy + tol)
    if lo != hi or abs(lo) >= 2**24:  # one integer value, exact in pyFAI's float32
        return None
    vals = raw[dyn]
    if vals.size == 0 or not np.all(vals == lo):
        return None
    return float(lo), 0.5


# pyFAI's dummy test with a tolerance (|x - dummy| <= delta) runs faster than its exact test
# (measured, about 0.6 ms per 1M frame); 0.5 cannot reach a valid count from the sentinel.
_SENTINEL_DELTA = 0.5


class Reducer:
    """Reduce many frames of one geometry, reusing pyFAI's integration engine.

    Parameters
    ----------
    geometry : :class:`~saxsred.geometry.Geometry`.
    corrections : :class:`Corrections`.
    """

    def __init__(self, geometry: Geometry, corrections: Corrections | None = None) -> None:
        self.geometry = geometry
        self.corrections = corrections or Corrections()
        self._ai = geometry.integrator()
        self._checked_shape: tuple[int, int] | None = None
        self._static_mask: np.ndarray | None = None
        self._flat: np.ndarray | None = None
        c = self.corrections
        self._options = c.describe()  # array checksums computed once, not per frame
        self._geometry_dict = geometry.as_dict()
        self._dark = None if c.dark is None else np.ascontiguousarray(c.dark, dtype=np.float32)

    def _q_map(self) -> np.ndarray:
        if getattr(self, "_qmap_cache", None) is None:
            self._qmap_cache = np.asarray(self._ai.qArray(self._checked_shape))
        return self._qmap_cache

    def _fused_flat(self, shape: tuple[int, int]) -> np.ndarray | None:
        # flat x relative solid angle x polarisation, computed once per detector shape and
        # handed to pyFAI as its flat: the same numbers (to float32 rounding, 1e-7) as
        # pyFAI's own corrections, without re-multiplying three arrays for every frame.
        c = self.corrections
        fused = None
        if c.solid_angle:
            fused = np.asarray(self._ai.solidAngleArray(shape), dtype=np.float64)
        if c.polarization_factor is not None:
            pol = np.asarray(self._ai.polarization(shape, factor=c.polarization_factor), dtype=np.float64)
            fused = pol if fused is None else fused * pol
        if c.flat is not None:
            fl = np.asarray(c.flat, dtype=np.float64)
            fused = fl if fused is None else fused * fl
        return None if fused is None else np.ascontiguousarray(fused, dtype=np.float32)

    # The pyFAI call (see _fused_flat); tests compare it to a plain pyFAI call.
    def integrate_arrays(
        self,
        raw: np.ndarray,
        mask: np.ndarray,
        norm: float,
        dark: np.ndarray | None = None,
        dummy: float | None = None,
        delta_dummy: float | None = _SENTINEL_DELTA,
    ):
        c = self.corrections
        if self._flat is None and self._checked_shape != raw.shape:
            self._flat = self._fused_flat(raw.shape)
        return self._ai.integrate1d(
            raw,
            c.npt,
            unit=c.unit,
            method=c.method,
            correctSolidAngle=False,
            polarization_factor=None,
            dark=dark,
            flat=self._flat,
            mask=mask,
            dummy=dummy,
            delta_dummy=None if dummy is None else delta_dummy,
            error_model="poisson",
            radial_range=c.q_range_nm,
            normalization_factor=norm,
        )

    def check(self, frame: Frame) -> None:
        where = frame.path
        shape = frame.data.shape
        if self._checked_shape == shape:
            return
        check_shape(self.geometry, shape, where)
        _check_corrections(self.corrections, shape, where)
        self._static_mask = static_mask(self.geometry, self.corrections, shape)
        self._n_static = int(np.count_nonzero(self._static_mask))
        self._flat = self._fused_flat(shape)
        self._checked_shape = shape

    def reduce(self, frame: Frame) -> Curve:
        """Integrate one frame to a :class:`~saxsred.curve.Curve` (per steradian, or cm^-1 when scaled)."""
        self.check(frame)
        raw = frame.data
        where = frame.path if frame.nframes == 1 else f"{frame.path} frame {frame.index}"
        if raw.dtype.kind == "f" and np.isnan(raw).any():
            raise InputError(
                f"{where}: frame contains NaN counts; mark invalid pixels with the header Dummy or a --mask"
            )
        c = self.corrections
        norm = normalisation(frame, self.geometry, c)
        # pyFAI builds its CSR engine (and the q bins) for one mask: keep the static mask
        # fixed and mark this frame's own invalid pixels with a sentinel value handed to
        # pyFAI as its dummy, so every frame shares one engine and one q grid.
        mask = self._static_mask
        dyn = dynamic_invalid(frame, c, mask, self._q_map() if c.hot_pixels else None)
        dummy = None
        n_masked = self._n_static
        delta = _SENTINEL_DELTA
        if dyn is not None:
            n_masked += int(np.count_nonzero(dyn))
            hd = _header_dummy(frame, c, dyn)
            if hd is not None:
                # Only the header's Dummy pixels: pyFAI's own dummy test finds exactly them
                # (no copy of the frame).
                dummy, delta = hd
            else:
                dummy = _sentinel(raw.dtype)
                raw = raw.copy()
                raw[dyn] = dummy
        if n_masked >= raw.size:
            raise InputError(f"{where}: every pixel is masked; check the mask and the Dummy value")
        res = self.integrate_arrays(raw, mask, norm.factor, self._dark, dummy, delta)
        q = np.asarray(res.radial, dtype=float)
        i = np.asarray(res.intensity, dtype=float)
        s = np.asarray(res.sigma, dtype=float)
        count = np.asarray(res.count, dtype=float) if res.count is not None else np.ones_like(q)
        keep = (count > 0) & np.isfinite(i) & np.isfinite(s)
        unit = "cm^-1" if (c.scale != 1.0 and norm.thickness_cm) else ("sr^-1" if c.solid_angle else "arb")
        prov = prov_mod.extend(
            {},
            "reduce",
            inputs=[{"file": frame.path.rsplit("/", 1)[-1], "checksum": frame.checksum, "frame": frame.index}],
            geometry=self._geometry_dict,
            options=self._options,
            normalisation={
                "factor": norm.factor,
                "monitor": norm.monitor_kind,
                "monitor_value": norm.monitor_value,
                "transmission": norm.transmission,
                "thickness_cm": norm.thickness_cm,
                "solid_angle_poni_sr": norm.solid_angle_poni_sr,
            },
            masked_pixels=n_masked,
        )
        prov["geometry"] = self._geometry_dict
        return Curve(q[keep], i[keep], s[keep], unit=unit, name=frame.name, provenance=prov)

    def cake(self, frame: Frame, npt_rad: int = 300, npt_azim: int = 360) -> Cake:
        """2-D integration (caking) to I(q, chi), normalised like :meth:`reduce`."""
        self.check(frame)
        c = self.corrections
        norm = normalisation(frame, self.geometry, c)
        mask = pixel_mask(frame, self.geometry, c, self._static_mask)
        raw = frame.data
        dark = self._dark
        res = self._ai.integrate2d(
            raw,
            npt_rad,
            npt_azim,
            unit=c.unit,
            method=("no", "histogram", "cython"),
            correctSolidAngle=False,
            polarization_factor=None,
            dark=dark,
            flat=self._flat,
            mask=mask,
            error_model="poisson",
            normalization_factor=norm.factor,
        )
        sigma = res.sigma if res.sigma is not None else np.full_like(res.intensity, np.nan)
        count = getattr(res, "count", None)
        return Cake(
            np.asarray(res.radial, float),
            np.asarray(res.azimuthal, float),
            np.asarray(res.intensity, float),
            np.asarray(sigma, float),
            None if count is None else np.asarray(count, float),
            name=frame.name,
        )

    def chi_profile(
        self, frame: Frame, q_band_nm: tuple[float, float], npt_chi: int = 360
    ) -> ChiProfile:
        """Azimuthal profile I(chi) over a q band, corrected for the radial gradient.

        Each valid pixel in the band is divided by the azimuthal average I(q) at its own q
        (the 1-D curve of the same frame, interpolated), the ratios are averaged in chi bins
        and multiplied by the mean of I over the band. An isotropic ring gives a flat
        profile whatever the slope of I(q) inside the band; a plain per-bin mean would
        instead carry the pixel sampling of each bin (which q its pixels sit at) into the
        profile wherever I(q) is steep, as on a Bragg peak. Errors are Poisson per pixel.
        """
        self.check(frame)
        qmin, qmax = q_band_nm
        if not (0 <= qmin < qmax):
            raise ParameterError(f"q band {q_band_nm}: need 0 <= qmin < qmax (nm^-1)")
        if npt_chi < 4:
            raise ParameterError(f"npt_chi = {npt_chi}: need at least 4 chi bins")
        shape = frame.data.shape
        if getattr(self, "_qchi", None) is None or self._qchi[0].shape != shape:
            self._qchi = (np.asarray(self._ai.qArray(shape)), np.rad2deg(np.asarray(self._ai.center_array(shape, unit="chi_rad"))))
        qmap, chimap = self._qchi
        c = self.corrections
        norm = normalisation(frame, self.geometry, c).factor
        curve = self.reduce(frame)
        mask = pixel_mask(frame, self.geometry, c, self._static_mask)
        band = (~mask) & (qmap >= qmin) & (qmap <= qmax)
        if band.sum() < npt_chi:
            raise ParameterError(
                f"q band {q_band_nm} nm^-1 holds {int(band.sum())} valid pixels, fewer than the {npt_chi} chi bins; "
                "widen the band or use fewer bins"
            )
        raw = frame.data[band].astype(np.float64)
        dark = self._dark[band].astype(np.float64) if self._dark is not None else 0.0
        corr = (self._flat[band].astype(np.float64) if self._flat is not None else 1.0) * norm
        i_pix = (raw - dark) / corr
        var_pix = (np.maximum(raw, 1.0) + dark) / corr**2
        ref = np.interp(qmap[band], curve.q_nm, curve.intensity)
        ok = ref > 0
        if not ok.any():
            raise ParameterError(f"q band {q_band_nm} nm^-1: the azimuthal average is not positive there")
        r = i_pix[ok] / ref[ok]
        vr = var_pix[ok] / ref[ok] ** 2
        edges = np.linspace(-180.0, 180.0, npt_chi + 1)
        idx = np.clip(np.digitize(chimap[band][ok], edges) - 1, 0, npt_chi - 1)
        n = np.bincount(idx, minlength=npt_chi)
        sr = np.bincount(idx, weights=r, minlength=npt_chi)
        sv = np.bincount(idx, weights=vr, minlength=npt_chi)
        level = float(np.mean(ref[ok]))
        filled = n > 0
        centers = 0.5 * (edges[:-1] + edges[1:])
        prof_i = level * sr[filled] / n[filled]
        prof_s = level * np.sqrt(sv[filled]) / n[filled]
        return ChiProfile(centers[filled], prof_i, prof_s, (float(qmin), float(qmax)), frame.name)


@dataclass(frozen=True)
class Cake:
    """2-D regrouped data: intensity[chi, q]."""

    q_nm: np.ndarray
    chi_deg: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    count: np.ndarray | None
    name: str = ""


def reduce_frame(frame: Frame, geometry: Geometry, corrections: Corrections | None = None) -> Curve:
    """Reduce one frame (a one-call convenience over :class:`Reducer`)."""
    return Reducer(geometry, corrections).reduce(frame)


# ------------------------------------------------------------------------- series, backgrounds


@dataclass(frozen=True)
class FrameVerdict:
    """Outlier test of one frame of a series against the median of the others."""

    name: str
    chi2_red: float
    p_value: float
    kept: bool


@dataclass(frozen=True)
class AverageResult:
    """Averaged curve of a series plus the per-frame verdicts."""

    curve: Curve
    verdicts: tuple[FrameVerdict, ...]

    @property
    def rejected(self) -> list[str]:
        return [v.name for v in self.verdicts if not v.kept]


def _common_grid(curves: Sequence[Curve], what: str) -> tuple[np.ndarray, list[Curve]]:
    """The q points shared by all curves (bins left empty by a frame's own invalid pixels
    drop out); curves on different binnings are an error."""
    q0 = curves[0].q_nm
    same = all(c.q_nm.shape == q0.shape and np.array_equal(c.q_nm, q0) for c in curves[1:])
    if same:
        return q0, list(curves)
    common = q0
    for c in curves[1:]:
        common = np.intersect1d(common, c.q_nm)
    if common.size < 0.9 * min(len(c) for c in curves):
        raise InputError(
            f"{what}: curves {curves[0].name!r} and {curves[-1].name!r} have different q grids; "
            "reduce them with the same geometry and --npt"
        )
    out = []
    for c in curves:
        k = np.isin(c.q_nm, common)
        out.append(replace(c, q_nm=c.q_nm[k], intensity=c.intensity[k], sigma=c.sigma[k]))
    return common, out


def average_curves(
    curves: Sequence[Curve], alpha: float = 1e-3, reject: bool = True, name: str | None = None
) -> AverageResult:
    """Average repeated curves of one sample, rejecting outlier frames.

    Each frame is compared to the median of the series with a chi-square test over all q
    bins, chi2 = sum((I_k - I_med)^2 / (sigma_k^2 + sigma_med^2)); a frame whose p-value
    is below ``alpha`` is rejected (beam damage, bubbles). The median is robust against the
    outliers themselves. The kept frames are averaged with equal weights (same exposure):
    I = mean, sigma = sqrt(sum sigma_k^2) / n.
    """
    if len(curves) == 0:
        raise InputError("average: no curves given")
    q, curves = _common_grid(curves, "average")
    i = np.vstack([c.intensity for c in curves])
    s = np.vstack([c.sigma for c in curves])
    n = len(curves)
    verdicts = []
    keep = np.ones(n, dtype=bool)
    if reject and n >= 3:
        med = np.median(i, axis=0)
        # sigma of the median ~ 1.2533 sigma/sqrt(n) for Gaussian noise
        s_med = 1.2533 * np.sqrt(np.mean(s**2, axis=0) / n)
        for k in range(n):
            var = s[k] ** 2 + s_med**2
            ok = var > 0
            chi2 = float(np.sum((i[k, ok] - med[ok]) ** 2 / var[ok]))
            dof = int(ok.sum())
            p = float(stats.chi2.sf(chi2, dof)) if dof else 1.0
            keep[k] = p >= alpha
            verdicts.append(FrameVerdict(curves[k].name, chi2 / max(dof, 1), p, bool(keep[k])))
        if not keep.any():
            raise InputError(
                "average: every frame failed the outlier test; the series is not stationary "
                "(check for beam damage) or the error bars are underestimated"
            )
    else:
        verdicts = [FrameVerdict(c.name, float("nan"), float("nan"), True) for c in curves]
    m = int(keep.sum())
    mean = i[keep].mean(axis=0)
    sig = np.sqrt(np.sum(s[keep] ** 2, axis=0)) / m
    prov = prov_mod.extend(
        curves[0].provenance,
        "average",
        frames=[c.name for c in curves],
        rejected=[v.name for v in verdicts if not v.kept],
        alpha=alpha,
        test="chi2 against series median",
    )
    out = Curve(q, mean, sig, unit=curves[0].unit, name=name or curves[0].name + "_avg", provenance=prov)
    return AverageResult(out, tuple(verdicts))


def subtract_background(sample: Curve, background: Curve, factor: float = 1.0) -> Curve:
    """I_sample - factor * I_background (both already normalised by their own monitor and
    transmission), errors in quadrature. The background is interpolated onto the sample
    grid when the grids differ; q outside the background's range is an error."""
    if factor < 0 or not math.isfinite(factor):
        raise ParameterError(f"background factor {factor} must be >= 0")
    if sample.unit != background.unit:
        raise InputError(
            f"subtract: {sample.name!r} is in {sample.unit} but background {background.name!r} in "
            f"{background.unit}; reduce both with the same options"
        )
    if sample.q_nm.shape == background.q_nm.shape and np.allclose(sample.q_nm, background.q_nm, rtol=1e-9):
        bi, bs = background.intensity, background.sigma
        q, si, ss = sample.q_nm, sample.intensity, sample.sigma
    else:
        lo = max(sample.q_nm[0], background.q_nm[0])
        hi = min(sample.q_nm[-1], background.q_nm[-1])
        sel = (sample.q_nm >= lo) & (sample.q_nm <= hi)
        if sel.sum() < 2:
            raise InputError(
                f"subtract: background {background.name!r} does not cover the q range of {sample.name!r}"
            )
        q, si, ss = sample.q_nm[sel], sample.intensity[sel], sample.sigma[sel]
        bi = np.interp(q, background.q_nm, background.intensity)
        bs = np.interp(q, background.q_nm, background.sigma)
    prov = prov_mod.extend(
        sample.provenance,
        "subtract",
        background=background.name,
        background_inputs=background.provenance.get("steps", [{}])[0].get("inputs"),
        factor=factor,
    )
    return Curve(q, si - factor * bi, np.hypot(ss, factor * bs), unit=sample.unit, name=sample.name, provenance=prov)


@dataclass(frozen=True)
class WaterCalibration:
    """Absolute scale factor from a water measurement."""

    factor: float
    factor_err: float
    water_level: float
    water_level_err: float
    q_range_nm: tuple[float, float]
    reference_cm: float


def water_scale_factor(
    water: Curve,
    empty: Curve | None = None,
    q_range_nm: tuple[float, float] = (0.5, 2.0),
    reference_cm: float = WATER_DSIGMA_20C,
) -> WaterCalibration:
    """K such that K x (water - empty capillary) = 0.01632 cm^-1 (water at 20 C).

    Both curves must be normalised per unit thickness (reduce them with the water's
    thickness). The flat level is the weighted mean over ``q_range_nm`` where water is
    q-independent; K's error comes from that mean.
    """
    net = subtract_background(water, empty) if empty is not None else water
    sel = (net.q_nm >= q_range_nm[0]) & (net.q_nm <= q_range_nm[1]) & (net.sigma > 0)
    if sel.sum() < 3:
        raise InputError(f"water calibration: fewer than 3 points in q {q_range_nm} nm^-1; widen the range")
    w = 1.0 / net.sigma[sel] ** 2
    level = float(np.sum(w * net.intensity[sel]) / np.sum(w))
    level_err = float(np.sqrt(1.0 / np.sum(w)))
    if level <= 0:
        raise InputError(
            f"water calibration: water signal {level:.3g} is not positive after background subtraction; "
            "check the empty-capillary curve and the transmissions"
        )
    k = reference_cm / level
    return WaterCalibration(k, k * level_err / level, level, level_err, q_range_nm, reference_cm)


def scale_curve(curve: Curve, factor: float, factor_err: float = 0.0, unit: str = "cm^-1") -> Curve:
    """Apply an absolute scale factor (error propagated), recording it in provenance."""
    if not (factor > 0 and math.isfinite(factor)):
        raise ParameterError(f"scale factor {factor} must be positive")
    out = curve.scaled(factor, factor_err, unit=unit)
    return replace(out, provenance=prov_mod.extend(curve.provenance, "scale", factor=factor, factor_err=factor_err))


# ------------------------------------------------------------------------------- file level


@dataclass(frozen=True)
class ReduceJob:
    """Everything needed to reduce files: geometry source, corrections and output options."""

    corrections: Corrections = Corrections()
    poni: str | None = None
    background: tuple[str, ...] = ()
    background_transmission: float | None = None
    water: tuple[str, ...] = ()
    water_empty: tuple[str, ...] = ()
    water_thickness_mm: float | None = None
    average: bool = False
    alpha: float = 1e-3
    frames: tuple[int, ...] | None = None


def parse_frame_selection(text: str | None) -> tuple[int, ...] | None:
    """Parse ``"0,2,5-9"`` into frame indices (None for all frames)."""
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, part)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise ParameterError(f"--frames {text!r}: use indices and ranges such as 0,2,5-9") from None
    return tuple(out)


@dataclass(frozen=True)
class ReduceOutput:
    """Curves produced by :func:`reduce_files`, with the per-frame verdicts of averaging."""

    curves: tuple[Curve, ...]
    verdicts: tuple[FrameVerdict, ...] = ()
    water: WaterCalibration | None = None
    background: Curve | None = None


def geometry_for(frame: Frame, poni: str | Geometry | None) -> Geometry:
    """Geometry of a frame: the PONI file (or a loaded Geometry) if given, else the frame's ESRF header."""
    from .geometry import geometry_from_metadata, load_geometry

    if isinstance(poni, Geometry):
        return poni
    if poni:
        return load_geometry(poni)
    return geometry_from_metadata(frame.metadata, shape=frame.data.shape, source=frame.path)


_HEADER_FILE_FIELDS = {"DarkFileName": "dark", "FlatfieldFileName": "flat", "DetectorMaskFileName": "mask", "MaskFileName": "mask"}


def corrections_for(frame: Frame, c: Corrections, cache: dict | None = None) -> Corrections:
    """Corrections for a frame, completed with the dark/flat/mask files its header names.

    ESRF headers may name DarkFileName, FlatfieldFileName, (Detector)MaskFileName with a
    *FilePath folder. A named file is used when the user gave none of that kind and the
    file exists (as given, or next to the frame); a named file that cannot be found is
    recorded in the provenance as not applied.
    """
    from pathlib import Path

    from .geometry import load_mask
    from .io.frames import read_image

    named = frame.metadata.files
    if not named:
        return c
    key = tuple(sorted(named.items()))
    if cache is not None and key in cache:
        return cache[key]
    updates: dict[str, Any] = {}
    notes: dict[str, Any] = dict(c.provenance)
    for field_name, kind in _HEADER_FILE_FIELDS.items():
        if field_name not in named or getattr(c, kind) is not None or kind in updates:
            continue
        cand = Path(named[field_name])
        found = next((p for p in (cand, Path(frame.path).parent / cand.name) if p.is_file()), None)
        if found is None:
            notes[f"header_{kind}_not_found"] = named[field_name]
            continue
        if kind == "mask":
            updates[kind] = load_mask(found, shape=frame.data.shape)
        else:
            updates[kind] = np.asarray(read_image(found), dtype=np.float64)
        notes[f"{kind}_file"] = prov_mod.input_record(found)
    out = replace(c, **updates, provenance=notes) if (updates or notes != c.provenance) else c
    if cache is not None:
        cache[key] = out
    return out


def _loaded_poni(poni: str | None) -> Geometry | None:
    from .geometry import load_geometry

    return load_geometry(poni) if poni else None


def _reduce_paths(
    paths: Sequence[str], job: Corrections, poni: str | None, reducers: dict | None = None,
    frames: Sequence[int] | None = None,
) -> list[Curve]:
    from .io.frames import iter_frames

    reducers = {} if reducers is None else reducers
    out = []
    poni_geo = _loaded_poni(poni) if isinstance(poni, str) else poni
    corr_cache: dict = {}
    for path in paths:
        for frame in iter_frames(path, frames):
            geo = geometry_for(frame, poni_geo)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            corr = corrections_for(frame, job, corr_cache)
            key = (geo, id(corr))
            red = reducers.get(key)
            if red is None:
                red = reducers[key] = Reducer(geo, corr)
            out.append(red.reduce(frame))
    return out


def reduce_files(paths: Sequence[str], job: ReduceJob) -> ReduceOutput:
    """Reduce frame files to curves: integrate, subtract background, scale, average.

    Parameters
    ----------
    paths : frame files (every frame of multi-frame files is reduced).
    job : :class:`ReduceJob` (corrections, PONI, background and water files, averaging).

    Returns
    -------
    :class:`ReduceOutput`; write it with :func:`write_curves`.
    """
    if not paths:
        raise InputError("reduce: no frame files given")
    c = job.corrections
    reducers: dict = {}
    bg_curve = None
    if job.background:
        bg_corr = replace(c, transmission=job.background_transmission)
        bgs = _reduce_paths(job.background, bg_corr, job.poni, reducers)
        bg_curve = average_curves(bgs, alpha=job.alpha, name="background").curve if len(bgs) > 1 else bgs[0]
    water_cal = None
    if job.water:
        w_corr = replace(c, transmission=None, thickness_mm=job.water_thickness_mm or c.thickness_mm, scale=1.0)
        waters = _reduce_paths(job.water, w_corr, job.poni, reducers)
        water = average_curves(waters, alpha=job.alpha).curve if len(waters) > 1 else waters[0]
        empty = None
        if job.water_empty:
            empties = _reduce_paths(job.water_empty, w_corr, job.poni, reducers)
            empty = average_curves(empties, alpha=job.alpha).curve if len(empties) > 1 else empties[0]
        water_cal = water_scale_factor(water, empty)
    curves = _reduce_paths(paths, c, job.poni, reducers, job.frames)
    verdicts: tuple[FrameVerdict, ...] = ()
    if job.average:
        avg = average_curves(curves, alpha=job.alpha, name=curves[0].name + "_average")
        curves = [avg.curve]
        verdicts = avg.verdicts
    if bg_curve is not None:
        curves = [subtract_background(cv, bg_curve) for cv in curves]
    if water_cal is not None:
        curves = [scale_curve(cv, water_cal.factor, water_cal.factor_err) for cv in curves]
    return ReduceOutput(tuple(curves), verdicts, water_cal, bg_curve)


def write_curves(
    curves: Sequence[Curve], outdir: str, formats: Sequence[str] = ("h5", "dat"), checksums: dict[str, str] | None = None
) -> list[str]:
    """Write each curve as ``outdir/<name>.h5`` (NXcanSAS) and ``outdir/<name>.dat`` (atomic);
    ``checksums`` receives {path: checksum} of what was written."""
    from pathlib import Path

    from .io.curves import write_dat, write_nxcansas

    out = Path(outdir)
    written = []
    for cv in curves:
        prov_json = prov_mod.to_json(cv.provenance, indent=None)  # once for both files
        if "h5" in formats:
            written.append(str(write_nxcansas(cv, out / f"{cv.name}.h5", prov_json=prov_json, checksums=checksums)))
        if "dat" in formats:
            written.append(str(write_dat(cv, out / f"{cv.name}.dat", prov_json=prov_json, checksums=checksums)))
    return written


def reduce_stream(
    paths: Sequence[str], job: ReduceJob, outdir: str, formats: Sequence[str] = ("h5", "dat")
) -> list[str]:
    """Reduce frame by frame and write each curve as soon as it exists.

    One :class:`Reducer` per geometry is reused for every frame (pyFAI's CSR engine is built
    once); only one frame is in memory at a time. Writes are synchronous: pyFAI's engine
    holds the GIL, so a writer thread would not overlap with it (measured). Every path is
    checked before the first frame is read, so a missing file writes nothing.
    """
    from pathlib import Path

    from .io.frames import iter_frames

    if not paths:
        raise InputError("reduce: no frame files given")
    for p in paths:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file; check the path")
    reducers: dict = {}
    written: list[str] = []
    poni_geo = _loaded_poni(job.poni)
    corr_cache: dict = {}
    for path in paths:
        for frame in iter_frames(path, job.frames):
            geo = geometry_for(frame, poni_geo)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            corr = corrections_for(frame, job.corrections, corr_cache)
            red = reducers.get((geo, id(corr)))
            if red is None:
                red = reducers[(geo, id(corr))] = Reducer(geo, corr)
            written.extend(write_curves([red.reduce(frame)], outdir, formats))
    return written


@dataclass(frozen=True)
class MergeResult:
    """A merged SAXS+WAXS curve and the factor applied to the WAXS curve."""

    curve: Curve
    factor: float
    factor_err: float
    overlap_nm: tuple[float, float]


def merge_curves(
    saxs: Curve, waxs: Curve, overlap_nm: tuple[float, float] | None = None, scale_waxs: bool = True
) -> MergeResult:
    """Merge a SAXS and a WAXS curve over their overlap.

    The WAXS curve is scaled onto the SAXS one by the weighted least-squares factor over the
    overlap (SAXS interpolated on the WAXS points; the factor's error from that fit); below
    the overlap midpoint the SAXS points are kept, above it the scaled WAXS points.
    """
    lo = max(saxs.q_nm[0], waxs.q_nm[0])
    hi = min(saxs.q_nm[-1], waxs.q_nm[-1])
    if overlap_nm is not None:
        lo, hi = max(lo, overlap_nm[0]), min(hi, overlap_nm[1])
    sel = (waxs.q_nm >= lo) & (waxs.q_nm <= hi)
    if hi <= lo or sel.sum() < 3:
        raise InputError(
            f"merge: {saxs.name!r} ({saxs.q_nm[0]:.3g}-{saxs.q_nm[-1]:.3g} nm^-1) and {waxs.name!r} "
            f"({waxs.q_nm[0]:.3g}-{waxs.q_nm[-1]:.3g} nm^-1) overlap in fewer than 3 points"
        )
    s_i = np.interp(waxs.q_nm[sel], saxs.q_nm, saxs.intensity)
    s_s = np.interp(waxs.q_nm[sel], saxs.q_nm, saxs.sigma)
    w_i, w_s = waxs.intensity[sel], waxs.sigma[sel]
    if scale_waxs:
        # minimise sum (s - k w)^2 / (sigma_s^2 + k^2 sigma_w^2), one fixed-point pass from k0
        k = float(np.sum(s_i * w_i) / np.sum(w_i * w_i))
        for _ in range(5):
            var = s_s**2 + (k * w_s) ** 2
            var = np.where(var > 0, var, np.median(var[var > 0]) if np.any(var > 0) else 1.0)
            k = float(np.sum(s_i * w_i / var) / np.sum(w_i * w_i / var))
        k_err = float(1.0 / np.sqrt(np.sum(w_i * w_i / var)))
    else:
        k, k_err = 1.0, 0.0
    mid = 0.5 * (lo + hi)
    a = saxs.q_nm < mid
    b = waxs.q_nm >= mid
    wx = waxs.scaled(k, k_err)
    q = np.concatenate([saxs.q_nm[a], wx.q_nm[b]])
    i = np.concatenate([saxs.intensity[a], wx.intensity[b]])
    s = np.concatenate([saxs.sigma[a], wx.sigma[b]])
    prov = prov_mod.extend(saxs.provenance, "merge", waxs=waxs.name, factor=k, factor_err=k_err, overlap_nm=[lo, hi])
    return MergeResult(Curve(q, i, s, unit=saxs.unit, name=f"{saxs.name}_merged", provenance=prov), k, k_err, (lo, hi))


def chi_profiles(
    paths: Sequence[str], job: ReduceJob, q_band_nm: tuple[float, float], outdir: str, npt_chi: int = 360
) -> list[str]:
    """Write ``outdir/<name>_chi.dat`` (chi deg, I, sigma) for every frame: the azimuthal trace
    over ``q_band_nm``, normalised like the 1-D curves."""
    from pathlib import Path

    from .io.curves import write_chi
    from .io.frames import iter_frames

    poni_geo = _loaded_poni(job.poni)
    written = []
    reducers: dict = {}
    for path in paths:
        for frame in iter_frames(path, job.frames):
            geo = geometry_for(frame, poni_geo)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            red = reducers.get(geo) or reducers.setdefault(geo, Reducer(geo, job.corrections))
            prof = red.chi_profile(frame, q_band_nm, npt_chi=npt_chi)
            prof = replace(prof, provenance=prov_mod.extend({}, "chi_profile", frame=frame.name,
                                                             checksum=frame.checksum, q_band_nm=list(q_band_nm)))
            written.append(str(write_chi(prof, Path(outdir) / f"{frame.name}_chi.dat")))
    return written
