"""Peak shapes: unit-area Gaussian, Lorentzian, pseudo-Voigt and Voigt profiles, their
widths, integral breadths and analytic derivatives (the fits' Jacobians)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ..errors import ParameterError

SHAPES = ("gauss", "lorentz", "pvoigt", "voigt")
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # Gaussian FWHM / sigma


def gauss_profile(x: np.ndarray, fwhm: float) -> np.ndarray:
    """Unit-area Gaussian of full width at half maximum ``fwhm``."""
    s = fwhm / FWHM_PER_SIGMA
    return np.exp(-0.5 * (x / s) ** 2) / (s * math.sqrt(2.0 * math.pi))


def lorentz_profile(x: np.ndarray, fwhm: float) -> np.ndarray:
    """Unit-area Lorentzian (Cauchy) of FWHM ``fwhm``."""
    g = 0.5 * fwhm
    return (g / math.pi) / (x * x + g * g)


def pvoigt_profile(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt eta L + (1 - eta) G, both of FWHM ``fwhm``."""
    return eta * lorentz_profile(x, fwhm) + (1.0 - eta) * gauss_profile(x, fwhm)


def voigt_profile(x: np.ndarray, fwhm_g: float, fwhm_l: float) -> np.ndarray:
    """Unit-area Voigt: Gaussian of FWHM ``fwhm_g`` convolved with Lorentzian of FWHM ``fwhm_l``."""
    return special.voigt_profile(x, fwhm_g / FWHM_PER_SIGMA, 0.5 * fwhm_l)


def voigt_fwhm(fwhm_g, fwhm_l):
    """FWHM of a Voigt profile (Olivero & Longbothum 1977, 0.02% accurate)."""
    fl = np.asarray(fwhm_l, dtype=float)
    return 0.5346 * fl + np.sqrt(0.2166 * fl * fl + np.asarray(fwhm_g, dtype=float) ** 2)


def voigt_lorentz_part(fwhm: float, fwhm_g: float) -> float:
    """Lorentzian FWHM of a Voigt of total FWHM ``fwhm`` and Gaussian FWHM ``fwhm_g``.

    Inverts Olivero's formula: 0.0692 fL^2 - 1.0692 f fL + (f^2 - fG^2) = 0.
    """
    if fwhm_g >= fwhm:
        return 0.0
    a, b, c = 0.2166 - 0.5346**2, -2.0 * 0.5346 * fwhm, fwhm * fwhm - fwhm_g * fwhm_g
    a = -a  # 0.0692 written with its sign
    disc = b * b - 4.0 * a * c
    return float((-b - math.sqrt(max(disc, 0.0))) / (2.0 * a))


def pvoigt_components(fwhm: float, eta: float) -> tuple[float, float]:
    """Split a pseudo-Voigt (FWHM, eta) into the Gaussian and Lorentzian FWHM of a Voigt.

    Thompson-Cox-Hastings: eta = 1.36603 r - 0.47719 r^2 + 0.11116 r^3, r = fL/f, inverted
    numerically; fG then from Olivero's Voigt FWHM.
    """
    eta = min(max(float(eta), 0.0), 1.0)
    rr = np.linspace(0.0, 1.0, 2001)
    et = 1.36603 * rr - 0.47719 * rr**2 + 0.11116 * rr**3
    r = float(np.interp(eta, et, rr))
    fl = r * fwhm
    fg2 = (fwhm - 0.5346 * fl) ** 2 - 0.2166 * fl * fl
    return math.sqrt(max(fg2, 0.0)), fl


def integral_breadth(
    shape: str,
    fwhm: float,
    eta: float | None = None,
    fwhm_g: float | None = None,
    fwhm_l: float | None = None,
) -> float:
    """Integral breadth (area / height) of a unit-area profile given by its FWHM."""
    if shape == "gauss":
        return fwhm * math.sqrt(math.pi / (4.0 * math.log(2.0)))
    if shape == "lorentz":
        return 0.5 * math.pi * fwhm
    if shape == "pvoigt":
        h = float(pvoigt_profile(np.array(0.0), fwhm, eta if eta is not None else 0.5))
        return 1.0 / h
    if shape == "voigt":
        fg = fwhm_g or 0.0
        fl = fwhm_l if fwhm_l is not None else voigt_lorentz_part(fwhm, fg)
        return 1.0 / float(voigt_profile(np.array(0.0), fg, fl))
    raise ParameterError(f"shape {shape!r}: use one of {SHAPES}")


_SQ2PI = math.sqrt(2.0 * math.pi)
_SQPI = math.sqrt(math.pi)


# Asymptotic series of the Faddeeva function in the upper half plane,
# w(z) ~ (i / sqrt(pi)) sum_k (2k-1)!! / 2^k z^-(2k+1); six terms leave a relative error
# below 2e-11 for |z| >= 12.
_W_ASYM = (1.0, 0.5, 0.75, 1.875, 6.5625, 29.53125)
_W_ZMIN = 12.0


def wofz_with_derivative(z: np.ndarray):
    """Faddeeva w(z) (Im z > 0) and w'(z): scipy's wofz near the peaks, the asymptotic
    series (and its derivative, which avoids the cancellation in -2 z w + 2i/sqrt(pi)) in
    the far tails, where most points of a global fit lie."""
    near = np.abs(z) < _W_ZMIN
    w = np.empty_like(z)
    dw = np.empty_like(z)
    if near.any():
        zn = z[near]
        wn = special.wofz(zn)
        w[near] = wn
        dw[near] = -2.0 * zn * wn + 2j / _SQPI
    far = ~near
    if far.any():
        u = 1.0 / z[far]
        u2 = u * u
        sw = np.zeros_like(u)
        sd = np.zeros_like(u)
        for k in range(len(_W_ASYM) - 1, -1, -1):  # Horner in u^2
            sw = sw * u2 + _W_ASYM[k]
            sd = sd * u2 + _W_ASYM[k] * (2 * k + 1)
        w[far] = (1j / _SQPI) * u * sw
        dw[far] = (-1j / _SQPI) * u2 * sd
    return w, dw


def profile_derivatives(
    x: np.ndarray, shape: str, w: np.ndarray, eta: float = 0.5, wg: float = 0.0
):
    """Unit-area profiles of all peaks at once and their analytic derivatives.

    ``x`` = q - c, shape (n_peaks, n_q); ``w`` the FWHM column (Lorentzian FWHM for a
    Voigt, whose Gaussian FWHM ``wg`` is shared). Returns f, df/dc, df/dw, df/dshape
    (d/d eta for a pseudo-Voigt, d/d wg for a Voigt, else None). The analytic Jacobian
    makes each Levenberg-Marquardt step cost two model evaluations instead of one per
    parameter.
    """
    if shape in ("gauss", "pvoigt"):
        sg = w / FWHM_PER_SIGMA
        u = x / sg
        G = np.exp(-0.5 * u * u) / (sg * _SQ2PI)
        dGc = G * u / sg
        dGw = G * (u * u - 1.0) / w
        if shape == "gauss":
            return G, dGc, dGw, None
    if shape in ("lorentz", "pvoigt") or (shape == "voigt" and wg <= 0):
        g = 0.5 * w
        den = x * x + g * g
        L = (g / math.pi) / den
        dLc = L * 2.0 * x / den
        dLw = 0.5 * (x * x - g * g) / (math.pi * den * den)
        if shape == "lorentz":
            return L, dLc, dLw, None
        if shape == "voigt":
            return L, dLc, dLw, np.zeros_like(L)
        return (
            eta * L + (1 - eta) * G,
            eta * dLc + (1 - eta) * dGc,
            eta * dLw + (1 - eta) * dGw,
            L - G,
        )
    if shape == "voigt":
        sg = wg / FWHM_PER_SIGMA
        gam = 0.5 * w
        z = (x + 1j * gam) / (sg * math.sqrt(2.0))
        wz, dw = wofz_with_derivative(z)
        V = wz.real / (sg * _SQ2PI)
        dVx = dw.real / (sg * _SQ2PI) / (sg * math.sqrt(2.0))
        dVg = -dw.imag / (2.0 * _SQPI * sg * sg)
        dVs = -V / sg - (z * dw).real / (sg * sg * _SQ2PI)
        return V, -dVx, 0.5 * dVg, dVs / FWHM_PER_SIGMA
    raise ParameterError(f"shape {shape!r}: use one of {SHAPES}")


def peak_sum(x, shape, c, area, w, eta=0.5, wg=0.0):
    out = np.zeros_like(x)
    for ci, ai, wi in zip(c, area, w):
        d = x - ci
        if shape == "gauss":
            out += ai * gauss_profile(d, wi)
        elif shape == "lorentz":
            out += ai * lorentz_profile(d, wi)
        elif shape == "pvoigt":
            out += ai * pvoigt_profile(d, wi, eta)
        else:
            out += ai * voigt_profile(d, wg, wi)
    return out
