"""The user's geometry overrides: wavelength (nm) or energy (keV), and Dioptas orientation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import GeometryError
from .core import Geometry

# h c in keV nm (CODATA 2018): lambda[nm] = 1.239841984 / E[keV]
HC_KEV_NM = 1.239841984


def wavelength_from(
    wavelength_nm: float | None = None, energy_kev: float | None = None
) -> float | None:
    """Wavelength in metres from ``--wavelength-nm`` or ``--energy-kev`` (None if neither)."""
    if wavelength_nm is not None and energy_kev is not None:
        raise GeometryError(
            "give the wavelength (--wavelength-nm) or the energy (--energy-kev), not both"
        )
    if wavelength_nm is not None:
        if not (np.isfinite(wavelength_nm) and 1e-3 <= wavelength_nm <= 2.0):
            raise GeometryError(
                f"wavelength {wavelength_nm} nm is outside 0.001-2 nm; give nanometres "
                "(0.1 nm = 1 Angstrom = 12.4 keV)"
            )
        return float(wavelength_nm) * 1e-9
    if energy_kev is not None:
        if not (np.isfinite(energy_kev) and 0.6 <= energy_kev <= 1240.0):
            raise GeometryError(
                f"energy {energy_kev} keV is outside 0.6-1240 keV; give kilo-electronvolts"
            )
        return HC_KEV_NM / float(energy_kev) * 1e-9
    return None


def from_dioptas(geo: Geometry, shape: tuple[int, int] | None = None) -> Geometry:
    """Geometry of a Dioptas PONI converted to the image as fabio reads it.

    Dioptas calibrates the image flipped upside-down (``np.flipud`` of fabio's array), so
    its row axis runs the other way: row i here is row N1-1-i there. Reversing axis 1 is a
    mirror y -> -y of the detector frame; conjugating the rotations by it keeps rot1 (about
    y) and reverses rot2 (about x) and rot3 (about the beam), and the PONI along y becomes
    N1 * pixel1 - poni1. The data are never flipped. Needs the detector shape.
    """
    shape = shape or geo.shape
    if shape is None:
        raise GeometryError(
            f"{geo.source or 'PONI'}: the detector shape is needed to convert a Dioptas PONI; "
            "give the frame (or a PONI with the detector)"
        )
    return replace(
        geo,
        poni1_m=shape[0] * geo.pixel1_m - geo.poni1_m,
        rot2_rad=-geo.rot2_rad,
        rot3_rad=-geo.rot3_rad,
        shape=tuple(shape),
        source=f"{geo.source} (Dioptas, converted)",
    )


def apply_overrides(
    geo: Geometry,
    wavelength_nm: float | None = None,
    energy_kev: float | None = None,
    dioptas: bool = False,
    shape: tuple[int, int] | None = None,
) -> Geometry:
    """Geometry with the user's overrides: wavelength (nm) or energy (keV), Dioptas orientation."""
    lam = wavelength_from(wavelength_nm, energy_kev)
    if lam is not None:
        geo = replace(geo, wavelength_m=lam)
    if dioptas:
        geo = from_dioptas(geo, shape)
    return geo
