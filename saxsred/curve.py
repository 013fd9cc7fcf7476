"""The 1-D curve: the data object that every stage after integration works on."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InputError, InputWarning

# Abscissa units, spelled as pyFAI spells them (``integrate1d(unit=...)``), so a recipe's
# ``unit`` and a curve's ``x_unit`` are the same string.
X_UNITS = ("q_nm^-1", "q_A^-1", "2th_deg", "2th_rad", "chi_deg", "r_mm")
# What each is, for headers and messages.
X_UNIT_LABELS = {
    "q_nm^-1": "q (nm^-1)",
    "q_A^-1": "q (A^-1)",
    "2th_deg": "scattering angle 2theta (degrees)",
    "2th_rad": "scattering angle 2theta (radians)",
    "chi_deg": "azimuthal angle chi (degrees)",
    "r_mm": "radius on the detector (mm)",
}
# NXcanSAS/NeXus unit strings of the abscissa, both ways.
X_UNIT_NX = {
    "q_nm^-1": "1/nm",
    "q_A^-1": "1/angstrom",
    "2th_deg": "degree",
    "2th_rad": "rad",
    "chi_deg": "degree",
    "r_mm": "mm",
}


def normalize_x_unit(unit: str, where: str = "") -> str:
    """The canonical abscissa unit for a user's spelling (``"nm^-1"``, ``"1/A"``, ``"2th_deg"``...).

    Raises :class:`InputError` (one line) for a unit saxsred cannot convert.
    """
    u = str(unit).strip()
    key = u.lower().replace(" ", "").replace("**", "^").replace("å", "a").replace("angstrom", "a")
    key = key.removeprefix("q_").removeprefix("q")
    table = {
        "nm^-1": "q_nm^-1",
        "1/nm": "q_nm^-1",
        "nm-1": "q_nm^-1",
        "inv_nm": "q_nm^-1",
        "nm^{-1}": "q_nm^-1",
        "a^-1": "q_A^-1",
        "1/a": "q_A^-1",
        "a-1": "q_A^-1",
        "inv_a": "q_A^-1",
        "a^{-1}": "q_A^-1",
        "2th_deg": "2th_deg",
        "2theta_deg": "2th_deg",
        "2theta": "2th_deg",
        "tth": "2th_deg",
        "deg2theta": "2th_deg",
        "2th_rad": "2th_rad",
        "2theta_rad": "2th_rad",
        "chi_deg": "chi_deg",
        "chi": "chi_deg",
        "r_mm": "r_mm",
    }
    out = table.get(key) or (u if u in X_UNITS else None)
    if out is None:
        raise InputError(
            f"{where + ': ' if where else ''}abscissa unit {u!r} is not one saxsred can convert; "
            f"use one of {', '.join(X_UNITS)} (or nm^-1, A^-1)"
        )
    return out


@dataclass(frozen=True)
class Curve:
    """A 1-D scattering curve I(q) with standard deviations.

    Attributes
    ----------
    q_nm : array
        The abscissa, increasing: q = 4 pi sin(theta)/lambda in nm^-1 for the default
        ``x_unit = "q_nm^-1"`` (what every stage after reduction works on); in ``x_unit``
        otherwise. A stage that needs q calls :meth:`to_q_nm` (or :func:`require_q_nm`).
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
    x_unit : str
        Abscissa unit, one of :data:`X_UNITS` (pyFAI's spelling): ``"q_nm^-1"`` (default),
        ``"q_A^-1"``, ``"2th_deg"``, ``"2th_rad"``, ``"chi_deg"``, ``"r_mm"``.
    wavelength_nm : float or None
        X-ray wavelength (nm) when known: what turns a 2theta abscissa into q.
    """

    q_nm: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    unit: str = "arb"
    name: str = ""
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    x_unit: str = "q_nm^-1"
    wavelength_nm: float | None = None

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
        if self.x_unit not in X_UNITS:
            object.__setattr__(
                self, "x_unit", normalize_x_unit(self.x_unit, f"curve {self.name!r}")
            )
        wl = self.wavelength_nm
        if wl is not None and not (math.isfinite(wl) and 1e-3 <= wl <= 2.0):
            raise InputError(
                f"curve {self.name!r}: wavelength {wl} nm is outside 0.001-2 nm; give it in nm"
            )

    def __len__(self) -> int:
        return self.q_nm.size

    @property
    def x(self) -> np.ndarray:
        """The abscissa in ``x_unit`` (the same array as ``q_nm``, named for what it is)."""
        return self.q_nm

    @property
    def is_q_nm(self) -> bool:
        """True when the abscissa is q in nm^-1."""
        return self.x_unit == "q_nm^-1"

    def to_q_nm(self, where: str = "") -> Curve:
        """This curve with q in nm^-1: A^-1 x 10, 2theta via the wavelength; refused otherwise.

        A conversion is stated in ``provenance["notes"]`` and as an :class:`InputWarning`.

        Raises
        ------
        InputError
            For 2theta without a wavelength, chi or a detector radius (one line naming
            ``where`` and the fix).
        """
        if self.x_unit == "q_nm^-1":
            return self
        at = f"{where or 'curve ' + repr(self.name)}"
        if self.x_unit == "q_A^-1":
            q = self.q_nm * 10.0
            note = "q converted from A^-1 to nm^-1 (x 10)"
        elif self.x_unit in ("2th_deg", "2th_rad"):
            if self.wavelength_nm is None:
                raise InputError(
                    f"{at}: abscissa is 2theta ({self.x_unit}) and no wavelength is known, so q "
                    "cannot be computed; give the wavelength (--wavelength NM, or a header line "
                    "'# wavelength_nm: ...')"
                )
            tth = np.deg2rad(self.q_nm) if self.x_unit == "2th_deg" else self.q_nm
            q = 4.0 * np.pi * np.sin(tth / 2.0) / self.wavelength_nm
            note = (
                f"q computed from {self.x_unit} with wavelength {self.wavelength_nm:.6g} nm "
                "(q = 4 pi sin(2theta/2) / lambda)"
            )
        else:
            raise InputError(
                f"{at}: abscissa is {X_UNIT_LABELS[self.x_unit]}, not q; this stage needs a "
                "curve in q (reduce with unit q_nm^-1)"
            )
        warnings.warn(f"{self.name or 'curve'}: {note}", InputWarning, stacklevel=2)
        prov = dict(self.provenance)
        prov["notes"] = [*prov.get("notes", []), note]
        return replace(self, q_nm=q, x_unit="q_nm^-1", provenance=prov)

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


def require_q_nm(curve: Curve, where: str = "") -> Curve:
    """The curve with q in nm^-1 (:meth:`Curve.to_q_nm`): what every stage after reduction calls.

    Example
    -------
    >>> c = require_q_nm(read_curve("CeO2.xy"), "peaks")   # doctest: +SKIP
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"{where}: expected a Curve, got {type(curve).__name__}")
    return curve.to_q_nm(where)


def check_same_x_unit(curves, what: str) -> None:
    """Refuse to combine curves whose abscissae are in different units (one line)."""
    units = {c.x_unit for c in curves}
    if len(units) > 1:
        names = ", ".join(f"{c.name!r} in {c.x_unit}" for c in curves[:4])
        raise InputError(
            f"{what}: curves on different abscissae ({names}); reduce them with the same unit"
        )


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
