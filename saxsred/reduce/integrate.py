"""Integration: one pyFAI engine per geometry turns corrected frames into I(q), I(q, chi), I(chi).

The correction chain (:mod:`saxsred.reduce.corrections`) is folded into what pyFAI is
handed: the flat, solid angle and polarisation as one fused flat, the normalisation
factor, and this frame's invalid pixels as a dummy value so that every frame shares one
CSR engine and one q grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import provenance as prov_mod
from ..curve import ChiProfile, Curve
from ..errors import InputError, ParameterError
from ..geometry import Geometry, check_shape
from ..io.frames import Frame
from .corrections import (
    Corrections,
    check_corrections,
    dynamic_invalid,
    normalisation,
    pixel_mask,
    static_mask,
)


def sentinel_value(dtype: np.dtype) -> float:
    # A value no valid pixel holds, exactly representable in float32 (pyFAI's working type).
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else -1.0e9


def header_dummy(frame: Frame, c: Corrections, dyn: np.ndarray) -> tuple[float, float] | None:
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
SENTINEL_DELTA = 0.5


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
            pol = np.asarray(
                self._ai.polarization(shape, factor=c.polarization_factor), dtype=np.float64
            )
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
        delta_dummy: float | None = SENTINEL_DELTA,
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
            error_model=None if c.error_model == "none" else c.error_model,
            radial_range=c.q_range_nm,
            normalization_factor=norm,
        )

    def check(self, frame: Frame) -> None:
        where = frame.path
        shape = frame.data.shape
        if self._checked_shape == shape:
            return
        check_shape(self.geometry, shape, where)
        check_corrections(self.corrections, shape, where)
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
        dyn = dynamic_invalid(
            frame,
            c,
            mask,
            self._q_map() if (c.hot_pixels or c.beamstop_auto) else None,
            self.geometry,
        )
        dummy = None
        n_masked = self._n_static
        delta = SENTINEL_DELTA
        if dyn is not None:
            n_masked += int(np.count_nonzero(dyn))
            hd = header_dummy(frame, c, dyn)
            if hd is not None:
                # Only the header's Dummy pixels: pyFAI's own dummy test finds exactly them
                # (no copy of the frame).
                dummy, delta = hd
            else:
                dummy = sentinel_value(raw.dtype)
                raw = raw.copy()
                raw[dyn] = dummy
        if n_masked >= raw.size:
            raise InputError(f"{where}: every pixel is masked; check the mask and the Dummy value")
        res = self.integrate_arrays(raw, mask, norm.factor, self._dark, dummy, delta)
        q = np.asarray(res.radial, dtype=float)
        i = np.asarray(res.intensity, dtype=float)
        s = np.zeros_like(i) if res.sigma is None else np.asarray(res.sigma, dtype=float)
        count = np.asarray(res.count, dtype=float) if res.count is not None else np.ones_like(q)
        keep = (count > 0) & np.isfinite(i) & np.isfinite(s)
        unit = (
            "cm^-1"
            if (c.scale != 1.0 and norm.thickness_cm)
            else ("sr^-1" if c.solid_angle else "arb")
        )
        prov = prov_mod.extend(
            {},
            "reduce",
            inputs=[
                {
                    "file": frame.path.rsplit("/", 1)[-1],
                    "checksum": frame.checksum,
                    "frame": frame.index,
                }
            ],
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
        # the abscissa is labelled with the unit it was integrated in (curve.x_unit)
        return Curve(
            q[keep],
            i[keep],
            s[keep],
            unit=unit,
            name=frame.name,
            provenance=prov,
            x_unit=c.unit,
            wavelength_nm=self.geometry.wavelength_m * 1e9,
        )

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
            self._qchi = (
                np.asarray(self._ai.qArray(shape)),
                np.rad2deg(np.asarray(self._ai.center_array(shape, unit="chi_rad"))),
            )
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
            raise ParameterError(
                f"q band {q_band_nm} nm^-1: the azimuthal average is not positive there"
            )
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
