"""The 1-D curve: the data object that every stage after integration works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Curve:
    """A 1-D scattering curve I(q) with standard deviations.

    Attributes
    ----------
    q_nm : array
        Scattering vector magnitude q = 4 pi sin(theta)/lambda in nm^-1, increasing.
    intensity : array
        I(q), in ``unit``.
    sigma : array
        One standard deviation of ``intensity`` (same unit). Never negative.
    unit : str
        Intensity unit: ``"cm^-1"`` (absolute), ``"sr^-1"`` (per solid angle) or ``"arb"``.
    name : str
        Short name (usually the file stem).
    provenance : dict
        Inputs with checksums, options and software versions; each stage extends it.
    """

    q_nm: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    unit: str = "arb"
    name: str = ""
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        q = np.asarray(self.q_nm, dtype=float)
        i = np.asarray(self.intensity, dtype=float)
        s = np.asarray(self.sigma, dtype=float)
        if not (q.ndim == i.ndim == s.ndim == 1 and q.shape == i.shape == s.shape):
            raise InputError(
                f"curve {self.name!r}: q, I and sigma must be 1-D arrays of one length "
                f"(got {q.shape}, {i.shape}, {s.shape})"
            )
        object.__setattr__(self, "q_nm", q)
        object.__setattr__(self, "intensity", i)
        object.__setattr__(self, "sigma", s)

    def __len__(self) -> int:
        return self.q_nm.size

    def select(self, qmin: float | None = None, qmax: float | None = None) -> Curve:
        """Return the points with qmin <= q <= qmax (and finite values)."""
        keep = np.isfinite(self.intensity) & np.isfinite(self.q_nm)
        if qmin is not None:
            keep &= self.q_nm >= qmin
        if qmax is not None:
            keep &= self.q_nm <= qmax
        return replace(
            self, q_nm=self.q_nm[keep], intensity=self.intensity[keep], sigma=self.sigma[keep]
        )

    def scaled(self, factor: float, factor_err: float = 0.0, unit: str | None = None) -> Curve:
        """Multiply by ``factor`` (with its standard error propagated in quadrature)."""
        i = self.intensity * factor
        s = np.hypot(self.sigma * factor, self.intensity * factor_err)
        return replace(self, intensity=i, sigma=s, unit=unit or self.unit)


@dataclass(frozen=True)
class ChiProfile:
    """Azimuthal trace at constant q: intensity(chi) averaged over a q band.

    chi_deg follows pyFAI (degrees, -180..180, 0 along +x, the fast axis).
    """

    chi_deg: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    q_band_nm: tuple[float, float]
    name: str = ""
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
