"""Bragg peaks: find, fit, index and size the supraparticle lattice.

From a reduced curve (the effective structure factor S_eff(q) of the form-factor stage,
or I(q) over a smooth baseline) to "simple cubic, a = 11.4 +/- 0.1 nm, ordered over about
166 nm", with the evidence a referee asks for (SCIENCE.md section 4):

1. :func:`find_peaks`: candidates from the data. A Ricker (Mexican-hat) matched filter of
   the error-normalised residual over a SNIP baseline; a candidate needs a filter
   significance above ``threshold`` standard deviations (default 5), so noise does not
   become peaks and weak but real peaks are kept.
2. :func:`fit_peaks`: all peaks fitted together over the baseline with lmfit, shapes
   Gaussian, Lorentzian, pseudo-Voigt (one shared eta) and Voigt (one shared Gaussian
   width); the shape is chosen by the Bayesian information criterion with known error
   bars, BIC = chi^2 + k ln n.
3. :func:`index_peaks`: SC, BCC, FCC, HCP (ideal c/a), 2-D hexagonal, lamellar; lattice
   parameter by weighted least squares through the origin, q = 2 pi sqrt(s)/a; a cost per
   candidate from positions, unexplained peaks, predicted-but-absent reflections and
   intensities (multiplicity x oriented cube amplitude |F(G)|^2 x Lorentz 1/q^2), plus
   physical plausibility when the cube edge is known.
4. :func:`fit_lattice`: the lattice-tied global fit: centres 2 pi sqrt(s)/a from one a,
   Voigt peaks whose Gaussian part is fixed to the instrument and whose Lorentzian FWHM
   follows the size/disorder model w(q) = 2 pi K/L (+ slope q or q^2).
5. :func:`coherence_length`, :func:`size_disorder`: L = 2 pi K / dq_sample with the
   instrument removed according to the shape; Williamson-Hall (q) and paracrystal (q^2)
   fits with three or more orders.
6. :func:`analyze_peaks`: the one-call stage; :func:`fit_azimuthal_peaks` for chi traces.

Widths are FWHM in nm^-1 unless a name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special

from .curve import Curve
from .errors import FitError, InputError, ParameterError

LATTICES = ("SC", "BCC", "FCC", "HCP", "hex2d", "lamellar")
SHAPES = ("gauss", "lorentz", "pvoigt", "voigt")
CUBIC = ("SC", "BCC", "FCC")
_FG = 2.0 * math.sqrt(2.0 * math.log(2.0))  # Gaussian FWHM / sigma
#: Silver behenate (001): d = 5.838 nm (SCIENCE.md section 1), q001 = 2 pi / d.
AGBH_D001_NM = 5.838
AGBH_Q001_INV_NM = 2.0 * math.pi / AGBH_D001_NM
#: HCP with touching spheres: c/a = sqrt(8/3).
HCP_C_OVER_A = math.sqrt(8.0 / 3.0)
#: Packing fraction of one particle per lattice site: sites per conventional cell / volume.
_SITES = {"SC": 1, "BCC": 2, "FCC": 4}


# --------------------------------------------------------------------------- profiles
def gauss_profile(x: np.ndarray, fwhm: float) -> np.ndarray:
    """Unit-area Gaussian of full width at half maximum ``fwhm``."""
    s = fwhm / _FG
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
    return special.voigt_profile(x, fwhm_g / _FG, 0.5 * fwhm_l)


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


def integral_breadth(shape: str, fwhm: float, eta: float | None = None, fwhm_g: float | None = None, fwhm_l: float | None = None) -> float:
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


# --------------------------------------------------------------------------- lattices
@dataclass(frozen=True)
class Shell:
    """All reciprocal-lattice vectors of one |G| (one powder ring).

    ``s`` = (|G| a / 2 pi)^2; ``g`` the vectors in units of 2 pi / a (cartesian, shape
    (m, 3)); ``basis`` the basis factor |F_basis(G)|^2 / n_basis of each (1 for a
    Bravais lattice); ``hkl`` the family with the largest summed basis factor.
    """

    s: float
    hkl: tuple[int, int, int]
    g: np.ndarray
    basis: np.ndarray
    multiplicity: int = field(init=False)  # vectors with a non-zero basis factor
    basis_sum: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "multiplicity", int(np.count_nonzero(self.basis > 1e-9)))
        object.__setattr__(self, "basis_sum", float(np.sum(self.basis)))


@lru_cache(maxsize=64)
def _shells_cached(lattice: str, smax: float) -> tuple[Shell, ...]:
    # Pure memo of crystallography (does not change results).
    if lattice in CUBIC:
        hmax = int(math.isqrt(int(smax))) + 1
        r = np.arange(-hmax, hmax + 1)
        h, k, l_ = (x.ravel() for x in np.meshgrid(r, r, r, indexing="ij"))
        s = (h * h + k * k + l_ * l_).astype(float)
        ok = (s > 0) & (s <= smax + 1e-9)
        if lattice == "BCC":
            ok &= (h + k + l_) % 2 == 0
        elif lattice == "FCC":
            par = np.abs(h) % 2 + np.abs(k) % 2 + np.abs(l_) % 2
            ok &= (par == 0) | (par == 3)
        h, k, l_, s = h[ok], k[ok], l_[ok], s[ok]
        g = np.stack([h, k, l_], -1).astype(float)
        # BCC, FCC in the conventional cell: |F_b|^2 / n_b = n_b (4/2, 16/4).
        w = np.full(s.size, float(_SITES[lattice]))
        fam = -np.sort(-np.abs(np.stack([h, k, l_], -1)), axis=1)
    elif lattice in ("HCP", "hex2d"):
        ac2 = (1.0 / HCP_C_OVER_A) ** 2 if lattice == "HCP" else 0.0
        hmax = int(math.sqrt(smax)) + 2
        lmax = int(math.sqrt(smax / ac2)) + 1 if ac2 else 0
        r = np.arange(-hmax, hmax + 1)
        rl = np.arange(-lmax, lmax + 1)
        h, k, l_ = (x.ravel() for x in np.meshgrid(r, r, rl, indexing="ij"))
        s = 4.0 / 3.0 * (h * h + h * k + k * k) + l_ * l_ * ac2
        if lattice == "HCP":
            # basis (0,0,0), (1/3,2/3,1/2): |F|^2 = 4 cos^2(pi((h+2k)/3 + l/2)); n_b = 2
            w = 4.0 * np.cos(np.pi * ((h + 2 * k) / 3.0 + l_ / 2.0)) ** 2 / 2.0
        else:
            w = np.ones(s.size)
        ok = (s > 1e-9) & (s <= smax + 1e-9) & (w > 1e-9)
        h, k, l_, s, w = h[ok], k[ok], l_[ok], np.round(s[ok], 9), w[ok]
        g = np.stack([h, (h + 2 * k) / math.sqrt(3.0), l_ * math.sqrt(ac2)], -1).astype(float)
        hk = -np.sort(-np.abs(np.stack([h, k], -1)), axis=1)
        fam = np.concatenate([hk, np.abs(l_)[:, None]], axis=1)
    elif lattice == "lamellar":
        n = np.arange(1, int(math.sqrt(smax)) + 1)
        n = np.concatenate([n, -n])
        s = (n * n).astype(float)
        g = np.stack([0 * n, 0 * n, n], -1).astype(float)
        w = np.ones(s.size)
        fam = np.stack([0 * n, 0 * n, np.abs(n)], -1)
    else:
        raise ParameterError(f"lattice {lattice!r}: use one of {LATTICES}")
    shells = []
    for ss in np.unique(s):
        sel = s == ss
        fams, inv = np.unique(fam[sel], axis=0, return_inverse=True)
        fw = np.bincount(inv.ravel(), weights=w[sel], minlength=len(fams))
        # The family with the largest summed basis factor names the ring (ties: highest h).
        order = sorted(range(len(fams)), key=lambda i: (fw[i], tuple(fams[i])))
        best = tuple(int(x) for x in fams[order[-1]])
        shells.append(Shell(float(ss), best, g[sel], w[sel]))
    return tuple(shells)


def _bucket(smax: float) -> float:
    # Shells are computed for the next power of two of smax (a memo many calls share), then cut.
    return float(2 ** max(4, math.ceil(math.log2(max(smax, 1.0)))))


@lru_cache(maxsize=64)
def _s_cached(lattice: str, bucket: float) -> np.ndarray:
    return np.array([sh.s for sh in _shells_cached(lattice, bucket)])


def lattice_shells(lattice: str, smax: float) -> tuple[Shell, ...]:
    """Powder rings of ``lattice`` with (q a / 2 pi)^2 <= ``smax``, in increasing q."""
    b = _bucket(smax)
    n = int(np.searchsorted(_s_cached(lattice, b), smax + 1e-9, side="right"))
    return _shells_cached(lattice, b)[:n]


def _ring_s(lattice: str, smax: float) -> np.ndarray:
    """The s values of :func:`lattice_shells` (no Shell objects: the indexer's inner loop)."""
    s_all = _s_cached(lattice, _bucket(smax))
    return s_all[: int(np.searchsorted(s_all, smax + 1e-9, side="right"))]


def nn_distance(lattice: str, a_nm: float) -> float:
    """Nearest-neighbour distance: SC a, BCC a sqrt3/2, FCC a/sqrt2, HCP/hex2d a, lamellar a."""
    return {"SC": 1.0, "BCC": math.sqrt(3.0) / 2.0, "FCC": 1.0 / math.sqrt(2.0)}.get(lattice, 1.0) * a_nm


def packing_fraction(lattice: str, a_nm: float, edge_nm: float) -> float | None:
    """Volume fraction of cubes of edge e: sites per cell x e^3 / cell volume (3-D lattices)."""
    if lattice in _SITES:
        return _SITES[lattice] * edge_nm**3 / a_nm**3
    if lattice == "HCP":
        c = HCP_C_OVER_A * a_nm
        return 2.0 * edge_nm**3 / (math.sqrt(3.0) / 2.0 * a_nm * a_nm * c)
    return None


def aligned_allowed(lattice: str, a_nm: float, edge_nm: float) -> bool:
    """Whether cubes aligned with the lattice axes fit: every neighbour vector d needs
    max_i |d_i| >= e (SC: a >= e; BCC, FCC: a/2 >= e, i.e. a >= 2e)."""
    if lattice == "SC":
        return a_nm >= edge_nm * (1 - 1e-9)
    if lattice in ("BCC", "FCC"):
        return a_nm >= 2.0 * edge_nm * (1 - 1e-9)
    return False


def _formfactor():
    """The form-factor module's oriented amplitude and orientation average (lazy import)."""
    from .formfactor import cube_amplitude_oriented, cube_form_factor

    return cube_amplitude_oriented, cube_form_factor


@dataclass(frozen=True)
class Reflection:
    """One predicted powder line: ring ``s`` of ``lattice`` at ``q_nm``.

    ``weight`` is the predicted integrated intensity (arbitrary common scale):
    sum over the ring of basis factor x w(G), times the Lorentz factor 1/q^2, where w(G)
    is |F(G)|^2 (aligned cubes) or P(|G|) (orientation average), divided by P(|G|) when
    the data are S_eff = I / P (``kind="sq"``); w = 1 without an edge (point particles).
    """

    hkl: tuple[int, int, int]
    s: float
    q_nm: float
    multiplicity: int
    weight: float


def oriented_intensity(g_nm: np.ndarray, edge_nm: float, polydispersity: float = 0.0) -> np.ndarray:
    """|F(G)|^2 of cubes aligned with the axes, size-averaged with V^2 weights (Gaussian
    relative width ``polydispersity``, 9-point Gauss-Hermite), as <V^2 P> is for I(q)."""
    amp, _ = _formfactor()
    if polydispersity <= 0:
        f = np.asarray(amp(g_nm, edge_nm), float)
        return f * f
    x, wts = np.polynomial.hermite_e.hermegauss(9)
    es = edge_nm * (1.0 + polydispersity * x)
    ok = es > 0
    wv = wts[ok] * (es[ok] / edge_nm) ** 6
    wv /= wv.sum()
    return sum(wk * np.asarray(amp(g_nm, ek), float) ** 2 for wk, ek in zip(wv, es[ok]))


def _p_table(edge_nm: float, polydispersity: float, q_max_nm: float):
    """P(q) on a fine grid, interpolated in log: index_peaks asks for it thousands of times."""
    _, pq = _formfactor()
    grid = np.linspace(0.0, q_max_nm * 1.05 + 1e-9, 600)
    vals = np.log(np.maximum(np.asarray(pq(grid, edge_nm, polydispersity), float), 1e-300))
    return lambda q: np.exp(np.interp(q, grid, vals))


def reflections(
    lattice: str,
    a_nm: float,
    q_max_nm: float,
    edge_nm: float | None = None,
    aligned: bool | None = None,
    kind: str = "sq",
    polydispersity: float = 0.0,
    pq=None,
) -> list[Reflection]:
    """Predicted reflections of a lattice up to ``q_max_nm`` with their intensities.

    Parameters
    ----------
    lattice : one of :data:`LATTICES`.
    a_nm : lattice parameter (nm); HCP uses the ideal c/a = sqrt(8/3).
    q_max_nm : highest q (nm^-1).
    edge_nm : cube edge e; None for point particles.
    aligned : cubes aligned with the lattice axes; None decides by geometry
        (:func:`aligned_allowed`); only cubic lattices can be aligned.
    kind : ``"sq"`` for S_eff(q) = I/P data, ``"iq"`` for I(q).
    polydispersity : relative width of the edge distribution (size averages of |F|^2 and P).
    pq : optional callable q -> P(q) (a precomputed table); default the form-factor module.
    """
    shells, _, qs, wts = _reflection_arrays(lattice, a_nm, q_max_nm, edge_nm, aligned, kind, polydispersity, pq)
    return [Reflection(sh.hkl, sh.s, float(q), sh.multiplicity, float(w)) for sh, q, w in zip(shells, qs, wts)]


@lru_cache(maxsize=64)
def _basis_sums(lattice: str, bucket: float) -> np.ndarray:
    return np.array([sh.basis_sum for sh in _shells_cached(lattice, bucket)])


def _reflection_arrays(lattice, a_nm, q_max_nm, edge_nm=None, aligned=None, kind="sq", polydispersity=0.0, pq=None):
    """(shells, s, q, weight) of :func:`reflections` as arrays (the indexer's inner loop)."""
    if not (a_nm > 0 and np.isfinite(a_nm)):
        raise ParameterError(f"lattice parameter {a_nm!r} nm: must be positive")
    smax = (q_max_nm * a_nm / (2.0 * math.pi)) ** 2
    b = _bucket(smax)
    s_all = _s_cached(lattice, b)
    m = int(np.searchsorted(s_all, smax + 1e-9, side="right"))
    shells = _shells_cached(lattice, b)[:m]
    if edge_nm is not None and aligned is None:
        aligned = aligned_allowed(lattice, a_nm, edge_nm)
    aligned = bool(aligned) and lattice in CUBIC and edge_nm is not None
    qs = 2.0 * math.pi * np.sqrt(s_all[:m]) / a_nm
    w = _basis_sums(lattice, b)[:m].copy()
    if edge_nm is not None and m and (aligned or kind == "iq"):
        if pq is None:
            _, pfun = _formfactor()
            p = np.asarray(pfun(qs, edge_nm, polydispersity), dtype=float)
        else:
            p = np.asarray(pq(qs), dtype=float)
        if aligned:
            for i, sh in enumerate(shells):
                f2 = oriented_intensity(sh.g * (2.0 * math.pi / a_nm), edge_nm, polydispersity)
                w[i] = float(np.sum(sh.basis * f2))
            if kind == "sq":
                w /= np.maximum(p, 1e-300)
        else:  # orientation average: P(q) in I(q), divided out of S_eff
            w *= p
    return shells, s_all[:m], qs, w / (qs * qs)


# --------------------------------------------------------------------------- finding
@dataclass(frozen=True)
class FoundPeaks:
    """Peak candidates from :func:`find_peaks`.

    ``q_nm``, ``fwhm_inv_nm`` (matched-filter scale), ``height`` (above the baseline) and
    ``significance`` (filter output in standard deviations), strongest first; the
    baseline the fits start from and the error bars used, on the curve's grid.
    """

    q_nm: np.ndarray
    fwhm_inv_nm: np.ndarray
    height: np.ndarray
    significance: np.ndarray
    baseline: np.ndarray
    sigma: np.ndarray
    threshold: float


def _baseline(y: np.ndarray, sig: np.ndarray, m: int, iterations: int = 30) -> np.ndarray:
    """Smooth baseline under the peaks: iterated clipped Savitzky-Golay smoothing.

    A cubic Savitzky-Golay filter over ``m`` points follows features broader than the
    window (form-factor oscillations) and not the peaks; each pass clips the data to
    the current baseline + 1 sigma, so the peaks are progressively cut away. Done on
    log y when y > 0 (I(q) spans decades).
    """
    from scipy.signal import savgol_filter

    m = int(min(m, y.size - 1 - (y.size % 2 == 0)))
    m = max(m | 1, 5)
    pos = np.all(y > 0)
    v = np.log(y) if pos else y
    sv = sig / np.abs(y) if pos else sig
    b = savgol_filter(v, m, 3, mode="interp")
    for _ in range(iterations):
        b = savgol_filter(np.minimum(v, b + sv), m, 3, mode="interp")
    return np.exp(b) if pos else b


def _flat_baseline(q: np.ndarray, y: np.ndarray, sig: np.ndarray, deg: int = 2, iterations: int = 30) -> np.ndarray:
    """Quadratic baseline with the peaks clipped away (S_eff ~ 1, chi traces ~ constant)."""
    t = _tpoly(q)
    v = y.copy()
    b = np.full_like(y, float(np.median(y)))
    for _ in range(iterations):
        coef = np.polynomial.polynomial.polyfit(t, v, deg, w=1.0 / sig)
        b = np.polynomial.polynomial.polyval(t, coef)
        v = np.minimum(y, b + sig)
    return b


def _mirror(v: np.ndarray, m: int) -> np.ndarray:
    """Odd reflection about each end: keeps the local slope, so a slope is not taken for a peak."""
    left = 2 * v[0] - v[m:0:-1]
    right = 2 * v[-1] - v[-2 : -m - 2 : -1]
    return np.concatenate([left, v, right])


def _filter(r: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Ricker-filter output on the curve's grid, the ends even-reflected (a peak at the end stays a peak)."""
    h = k.size // 2
    return np.convolve(np.pad(r, h, mode="reflect"), k[::-1], mode="valid")


def _ricker(width_pts: float) -> np.ndarray:
    """Unit-norm, zero-mean Ricker wavelet matched to a peak of FWHM ``width_pts``.

    Its inner product with a Gaussian of width sigma_p peaks at sigma_k = sqrt5 sigma_p.
    """
    s = math.sqrt(5.0) * width_pts / _FG
    half = int(math.ceil(5 * s))
    x = np.arange(-half, half + 1, dtype=float) / s
    k = (1.0 - x * x) * np.exp(-0.5 * x * x)
    k -= k.mean()
    return k / math.sqrt(np.sum(k * k))


def _uniform(q: np.ndarray) -> bool:
    d = np.diff(q)
    return bool(d.min() > 0 and d.max() < 1.5 * d.min())


def _noise_sigma(y: np.ndarray, sigma: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Error bars; where missing, a robust estimate from second differences relative to ``base``."""
    if np.all(sigma > 0) and np.all(np.isfinite(sigma)):
        return sigma
    scale = np.where(np.abs(base) > 0, np.abs(base), 1.0)
    d2 = np.diff(y / scale, 2)
    rel = 1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6.0)
    est = np.maximum(rel * scale, 1e-300)
    return np.where(sigma > 0, sigma, est)


def _check_curve(curve: Curve, where: str) -> None:
    if len(curve) < 20:
        raise InputError(f"{where}: only {len(curve)} points in the q range; need at least 20 to find peaks (widen --qmin/--qmax)")
    if not np.all(np.isfinite(curve.intensity)):
        raise InputError(f"{where}: intensity has NaN or inf; clean the curve first")
    if np.any(np.diff(curve.q_nm) <= 0):
        raise InputError(f"{where}: q must increase strictly; sort the curve")
    if np.any(curve.sigma < 0):
        raise InputError(f"{where}: negative error bars; check the sigma column")


def find_peaks(
    curve: Curve,
    threshold: float = 5.0,
    baseline_window: float = 0.1,
    max_fwhm_frac: float = 0.1,
    max_peaks: int = 24,
    flat_baseline: bool = False,
) -> FoundPeaks:
    """Find Bragg-peak candidates in S_eff(q) or I(q).

    The residual r = (y - B) / sigma over a clipped Savitzky-Golay baseline B (window
    ``baseline_window`` x the q range) is filtered with unit-norm Ricker wavelets of FWHM
    from 2 points to ``max_fwhm_frac`` x the q range; white noise gives filter outputs of
    unit standard deviation, so a candidate needs a maximum over q and over scale above
    ``threshold`` (in sigma). The zero-mean filter ignores slow baseline errors, and
    features still growing at the largest scale (form-factor oscillations) are not peaks.

    Parameters
    ----------
    curve : the curve (q increasing, roughly uniform grid).
    threshold : significance in standard deviations (default 5: about 1e-4 false peaks per curve).
    flat_baseline : the curve is S_eff (baseline about constant): the returned baseline for
        the fit is a constant (the fit multiplies it by a quadratic); otherwise the
        finder's baseline.
    """
    _check_curve(curve, curve.name or "curve")
    q, y = curve.q_nm, curve.intensity
    n = q.size
    span = q[-1] - q[0]
    dq = span / (n - 1)
    m = max(5, int(round(baseline_window * span / dq)))
    sig0 = _noise_sigma(y, curve.sigma, np.full_like(y, float(np.median(np.abs(y))) or 1.0))
    base = _flat_baseline(q, y, sig0) if flat_baseline else _baseline(y, sig0, m)
    sig = _noise_sigma(y, curve.sigma, base)
    r = (y - base) / sig
    if flat_baseline:
        # S_eff: the fit's baseline is a polynomial; a smoothed curve would swallow Lorentzian tails.
        base_fit = np.full_like(y, float(np.median(base)))
    else:
        base_fit = base
    wmax = max(3.0, max_fwhm_frac * span / dq)
    widths = np.unique(np.round(np.geomspace(2.0, wmax, 14), 2))
    widths = np.array([w for w in widths if _ricker(w).size // 2 < n - 1])
    Z = np.array([_filter(r, _ricker(w)) for w in widths])
    cands: list[tuple[float, int, float]] = []
    # A peak is a maximum in q and in scale: the filter output at its scale beats the next
    # larger scale there. Features still growing at the largest scale (form-factor
    # oscillations, slow baseline errors) are broader than any Bragg peak sought.
    for kk in range(widths.size - 1):
        z = Z[kk]
        inner = z[1:-1]
        loc = np.nonzero((inner > z[:-2]) & (inner >= z[2:]) & (inner > threshold))[0] + 1
        for i in loc:
            lo, hi = max(i - 1, 0), min(i + 2, n)
            if z[i] >= Z[kk + 1, lo:hi].max() and (kk == 0 or z[i] >= Z[kk - 1, lo:hi].max()):
                cands.append((float(z[i]), int(i), float(widths[kk])))
    # Non-maximum suppression: strongest first; a weaker candidate within 0.8 FWHM of a kept
    # one (the kept one's scale) is the same peak seen at another scale, or noise on its top.
    cands.sort(key=lambda c: -c[0])
    kept: list[tuple[float, int, float]] = []
    for zc, i, w in cands:
        if all(abs(i - j) > 0.8 * wj + 1 for _, j, wj in kept):
            kept.append((zc, i, w))
        if len(kept) >= max_peaks:
            break
    kept = _split_blends(kept, Z, widths, threshold, max_peaks)
    idx = np.array([c[1] for c in kept], dtype=int)
    return FoundPeaks(
        q_nm=q[idx] if idx.size else np.zeros(0),
        fwhm_inv_nm=np.array([c[2] for c in kept]) * dq,
        height=(y - base)[idx] if idx.size else np.zeros(0),
        significance=np.array([c[0] for c in kept]),
        baseline=base_fit,
        sigma=sig,
        threshold=threshold,
    )


def _split_blends(kept, Z, widths, threshold, max_peaks):
    """Replace a candidate that is two overlapping peaks seen at one coarse scale by the two.

    At the nearest finer scale where two maxima above ``threshold`` lie inside the
    candidate's support with a dip between them deeper than ``threshold`` below the lower
    one (the filter output has unit noise, so the dip is significant, not noise on one
    broad top), the pair is kept instead. The free fit would otherwise start with one
    broad peak and find the pair only from its residual, one more fit round.
    """
    scale_of = {float(w): k for k, w in enumerate(widths)}
    out: list[tuple[float, int, float]] = []
    for zc, i, w in kept:
        parts = [(zc, i, w)]
        for kk in range(scale_of[w] - 1, -1, -1):
            z = Z[kk]
            lo, hi = max(1, int(i - 0.8 * w - 1)), min(z.size - 1, int(i + 0.8 * w + 2))
            seg = z[lo:hi]
            inner = np.nonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:]) & (seg[1:-1] > threshold))[0] + 1 + lo
            if inner.size < 2:
                continue
            top = inner[np.argsort(-z[inner])[:2]]
            a, b = sorted(int(x) for x in top)
            if b - a > widths[kk] and z[a:b + 1].min() < min(z[a], z[b]) - threshold:
                parts = [(float(z[a]), a, float(widths[kk])), (float(z[b]), b, float(widths[kk]))]
                break
        out.extend(parts)
    # The same suppression as before: a part may land on a weaker candidate already kept.
    out.sort(key=lambda c: -c[0])
    final: list[tuple[float, int, float]] = []
    for zc, i, w in out:
        if all(abs(i - j) > 0.8 * max(w, wj) + 1 for _, j, wj in final):
            final.append((zc, i, w))
    return final[:max_peaks]


# --------------------------------------------------------------------------- fit engine
_SQ2PI = math.sqrt(2.0 * math.pi)
_SQPI = math.sqrt(math.pi)


# Asymptotic series of the Faddeeva function in the upper half plane,
# w(z) ~ (i / sqrt(pi)) sum_k (2k-1)!! / 2^k z^-(2k+1); six terms leave a relative error
# below 2e-11 for |z| >= 12.
_W_ASYM = (1.0, 0.5, 0.75, 1.875, 6.5625, 29.53125)
_W_ZMIN = 12.0


def _wofz_with_derivative(z: np.ndarray):
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


def _profiles(x: np.ndarray, shape: str, w: np.ndarray, eta: float = 0.5, wg: float = 0.0):
    """Unit-area profiles of all peaks at once and their analytic derivatives.

    ``x`` = q - c, shape (n_peaks, n_q); ``w`` the FWHM column (Lorentzian FWHM for a
    Voigt, whose Gaussian FWHM ``wg`` is shared). Returns f, df/dc, df/dw, df/dshape
    (d/d eta for a pseudo-Voigt, d/d wg for a Voigt, else None). The analytic Jacobian
    makes each Levenberg-Marquardt step cost two model evaluations instead of one per
    parameter.
    """
    if shape in ("gauss", "pvoigt"):
        sg = w / _FG
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
        return eta * L + (1 - eta) * G, eta * dLc + (1 - eta) * dGc, eta * dLw + (1 - eta) * dGw, L - G
    if shape == "voigt":
        sg = wg / _FG
        gam = 0.5 * w
        z = (x + 1j * gam) / (sg * math.sqrt(2.0))
        wz, dw = _wofz_with_derivative(z)
        V = wz.real / (sg * _SQ2PI)
        dVx = dw.real / (sg * _SQ2PI) / (sg * math.sqrt(2.0))
        dVg = -dw.imag / (2.0 * _SQPI * sg * sg)
        dVs = -V / sg - (z * dw).real / (sg * sg * _SQ2PI)
        return V, -dVx, 0.5 * dVg, dVs / _FG
    raise ParameterError(f"shape {shape!r}: use one of {SHAPES}")


# --------------------------------------------------------------------------- free fit
@dataclass(frozen=True)
class Peak:
    """One fitted peak: centre, FWHM, area (integrated over q) with standard errors."""

    q_nm: float
    q_err_nm: float
    fwhm_inv_nm: float
    fwhm_err_inv_nm: float
    area: float
    area_err: float
    hkl: tuple[int, int, int] | None = None
    fwhm_g_inv_nm: float | None = None  # Gaussian part (Voigt)
    fwhm_l_inv_nm: float | None = None  # Lorentzian part (Voigt)


@dataclass(frozen=True)
class PeakFit:
    """Free-peak global fit: every peak its own centre and width, one shape for all.

    ``shape`` was chosen by BIC among ``bic`` (shape -> BIC = chi^2 + k ln n); ``eta`` is
    the shared pseudo-Voigt mixing, ``fwhm_g_inv_nm`` the shared Voigt Gaussian FWHM.
    """

    peaks: tuple[Peak, ...]
    shape: str
    eta: float | None
    fwhm_g_inv_nm: float | None
    bic: dict[str, float]
    chi2_red: float
    q_nm: np.ndarray
    data: np.ndarray
    sigma: np.ndarray
    model: np.ndarray
    baseline: np.ndarray
    nfev: int = 0
    not_fitted: dict[str, str] = field(default_factory=dict)  # shape -> why its fit was not needed


def _tpoly(q: np.ndarray) -> np.ndarray:
    return (2.0 * q - (q[0] + q[-1])) / max(q[-1] - q[0], 1e-300)


def _peak_sum(x, shape, c, area, w, eta=0.5, wg=0.0):
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


def _own_covariance(res, jac) -> None:
    """Covariance (J^T J)^-1 of the varying parameters at the solution, J the analytic
    Jacobian of the residual (model - y)/sigma in the parameters' own units; the error bars
    are taken as known (not scaled by chi^2). Also right for a parameter that ends on a
    bound (an absent ring's area at 0), where lmfit's bounded-parameter transform makes
    its covariance singular."""
    names = [k for k, p in res.params.items() if p.vary]
    J = np.asarray(jac(res.params), float)
    jtj = J.T @ J
    try:
        cov = np.linalg.inv(jtj)
        if not np.all(np.isfinite(cov)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(jtj)
    res.covar = cov
    res.var_names = names
    for i, k in enumerate(names):
        v = cov[i, i]
        res.params[k].stderr = float(math.sqrt(v)) if v > 0 else float("nan")


def _minimize(resid, params, where: str, jac=None):
    import lmfit

    kws = {} if jac is None else {"Dfun": jac}
    # With the analytic Jacobian the covariance is ours (one Jacobian and a small inverse)
    # instead of lmfit's, which needs an extra fit when a parameter ends on its bound.
    kws["calc_covar"] = jac is None
    try:
        res = lmfit.minimize(resid, params, method="leastsq", scale_covar=False, nan_policy="raise", **kws)
        if jac is not None:
            _own_covariance(res, jac)
        elif res.covar is None:
            # A parameter sitting on its bound (an absent ring's area at 0) makes the
            # covariance singular: fix those at the bound and refit from the solution.
            p2 = res.params.copy()
            fixed = 0
            for par in p2.values():
                if par.vary and (
                    (np.isfinite(par.min) and par.value - par.min <= 1e-9 * max(1.0, abs(par.min)) + 1e-12)
                    or (np.isfinite(par.max) and par.max - par.value <= 1e-9 * max(1.0, abs(par.max)))
                ):
                    par.vary = False
                    fixed += 1
            if fixed:
                nfev = res.nfev
                res = lmfit.minimize(resid, p2, method="leastsq", scale_covar=False, nan_policy="raise", **kws)
                res.nfev += nfev
    except ValueError as exc:
        raise FitError(f"{where}: the fit produced NaN ({exc}); check the data range and error bars") from None
    return res


def _stderr(p, redchi: float) -> float:
    # Known error bars: the covariance as is, inflated by sqrt(chi2_red) when the model
    # does not describe the data within them (never deflated).
    e = p.stderr
    if e is None or not np.isfinite(e):
        return float("nan")
    return float(e) * math.sqrt(max(redchi, 1.0))


def _fit_shape(q, y, sig, base, t, shape, c0, a0, w0, eta0=0.5, wg0=None, wmax=None, start=None,
               wg_fixed=False):
    import lmfit

    n = len(c0)
    span = q[-1] - q[0]
    dq = span / (q.size - 1)
    wmax = wmax or 0.12 * span
    pars = lmfit.Parameters()
    pars.add("b0", value=1.0)
    pars.add("b1", value=0.0)
    pars.add("b2", value=0.0)
    for i in range(n):
        pars.add(f"c{i}", value=c0[i], min=c0[i] - max(w0[i], 2 * dq), max=c0[i] + max(w0[i], 2 * dq))
        pars.add(f"a{i}", value=max(a0[i], 1e-12), min=0.0)
        pars.add(f"w{i}", value=min(max(w0[i], 1.5 * dq), 0.9 * wmax), min=0.5 * dq, max=wmax)
    if shape == "pvoigt":
        pars.add("eta", value=eta0, min=0.0, max=1.0)
    if shape == "voigt" and wg_fixed:
        pars.add("wg", value=float(wg0), vary=False)
    elif shape == "voigt":
        wg_start = wg0 if wg0 is not None else 0.5 * float(np.median(w0))
        pars.add("wg", value=max(wg_start, 0.05 * dq), min=0.01 * dq, max=wmax)
    isig = 1.0 / sig
    cnames = [f"c{i}" for i in range(n)]
    anames = [f"a{i}" for i in range(n)]
    wnames = [f"w{i}" for i in range(n)]
    cache: dict[str, Any] = {}

    def unpack(p):
        v = p.valuesdict()
        c = np.array([v[k] for k in cnames])[:, None]
        a = np.array([v[k] for k in anames])[:, None]
        w = np.array([v[k] for k in wnames])[:, None]
        return v, c, a, w

    def profiles(p):
        # MINPACK asks for the Jacobian at the point whose residual it just took: the
        # profiles (and their derivatives) of the last point are reused.
        v, c, a, w = unpack(p)
        key = tuple(v.values())
        if cache.get("key") != key:
            cache["key"] = key
            cache["d"] = _profiles(q[None, :] - c, shape, w, v.get("eta", 0.5), v.get("wg", 0.0))
        return v, a, cache["d"]

    def resid(p):
        v, a, (f, _, _, _) = profiles(p)
        bl = base * (v["b0"] + v["b1"] * t + v["b2"] * t * t)
        return (bl + np.sum(a * f, axis=0) - y) * isig

    def jac(p):
        v, a, (f, dc, dw, dsh) = profiles(p)
        cols = {"b0": base, "b1": base * t, "b2": base * t * t}
        for i in range(n):
            cols[cnames[i]] = a[i] * dc[i]
            cols[anames[i]] = f[i]
            cols[wnames[i]] = a[i] * dw[i]
        if shape == "pvoigt":
            cols["eta"] = np.sum(a * dsh, axis=0)
        if shape == "voigt":
            cols["wg"] = np.sum(a * dsh, axis=0)
        return np.column_stack([cols[k] for k, par in p.items() if par.vary]) * isig[:, None]

    if start is not None:
        # Refit from a solution (e.g. to get the covariance of the chosen shape).
        for k, par in start.items():
            if k in pars:
                pars[k].set(value=par.value)
    res = _minimize(resid, pars, "free-peak fit", jac)
    res.jac_fn = jac
    return res, resid


def _unpack(res, n, shape):
    v = res.params
    c = np.array([v[f"c{i}"].value for i in range(n)])
    a = np.array([v[f"a{i}"].value for i in range(n)])
    w = np.array([v[f"w{i}"].value for i in range(n)])
    return c, a, w


def fit_peaks(
    curve: Curve,
    found: FoundPeaks | None = None,
    shapes: tuple[str, ...] = SHAPES,
    threshold: float = 5.0,
    min_area_snr: float = 3.0,
    max_rounds: int = 2,
    instrument_fwhm_inv_nm: float | None = None,
) -> PeakFit:
    """Fit all peaks together over the baseline (lmfit), each with its own centre and width.

    The model is B(q) (b0 + b1 t + b2 t^2) + sum_i A_i f(q - c_i; w_i), B the SNIP
    baseline of :func:`find_peaks`, t the q range mapped onto [-1, 1], f one unit-area
    shape. Pseudo-Voigt first; peaks the residual still shows (filter significance above
    ``threshold``) are added and peaks with area below ``min_area_snr`` standard errors
    dropped; then every shape in ``shapes`` is refitted from that solution and the one with
    the lowest BIC = chi^2 + k ln n (error bars taken as known) is kept. When the
    pseudo-Voigt's eta is well determined and within a standard error of 0 or 1, the
    opposite pure shape is not fitted (its chi^2 cannot be lower than the pseudo-Voigt's,
    which the pure shape at that bound matches; ``not_fitted`` says so). With
    ``instrument_fwhm_inv_nm`` the Voigt's Gaussian FWHM is fixed to it (the resolution),
    else fitted (one value for all peaks). Standard errors come from the analytic
    Jacobian at the solution, (J^T J)^-1, scaled by sqrt(chi^2_red) when that exceeds 1.
    """
    for s in shapes:
        if s not in SHAPES:
            raise ParameterError(f"peak shape {s!r}: use one of {SHAPES}")
    found = found or find_peaks(curve, threshold=threshold)
    q, y = curve.q_nm, curve.intensity
    base, sig = found.baseline, found.sigma
    t = _tpoly(q)
    if found.q_nm.size == 0:
        raise FitError(f"{curve.name or 'curve'}: no peak above {found.threshold:g} sigma to fit")
    order = np.argsort(found.q_nm)
    c = found.q_nm[order]
    w = found.fwhm_inv_nm[order]
    a = np.maximum(found.height[order], 0) * w * 1.2
    eta = 0.5
    nfev = 0
    added: list[tuple[float, float]] = []  # residual peaks added (position, FWHM)
    rejected: list[float] = []  # positions not to add again
    res = None
    for _round in range(max_rounds + 1):
        res, resid = _fit_shape(q, y, sig, base, t, "pvoigt", c, a, w, eta)
        nfev += res.nfev
        c, a, w = _unpack(res, c.size, "pvoigt")
        eta = res.params["eta"].value
        aerr = np.array([res.params[f"a{i}"].stderr or np.inf for i in range(c.size)])
        keep = a > min_area_snr * aerr
        changed = False
        if not keep.all() and keep.any():
            for cd, wd in zip(c[~keep].tolist(), w[~keep].tolist()):
                # a dropped peak, and the residual positions it was added from (it may have moved)
                rejected.append(cd)
                rejected.extend(qa for qa, wa in added if abs(qa - cd) < 3.0 * max(wa, wd))
            c, a, w = c[keep], a[keep], w[keep]
            changed = True
        # Residual search: peaks hidden in a shoulder or left out by the finder.
        rr = resid(res.params)
        extra = _residual_peaks(q, rr, threshold, c, w, rejected, sig, eta, min_area_snr)
        if extra:
            # A new peak changes the residual elsewhere: earlier rejections may not hold.
            rejected.clear()
            for qe, we, ie in extra:
                added.append((qe, we))
                c = np.append(c, qe)
                w = np.append(w, we)
                a = np.append(a, max(-rr[ie] * sig[ie], 1e-6 * np.max(a)) * we)
            o = np.argsort(c)
            c, a, w = c[o], a[o], w[o]
            changed = True
        if not changed:
            break
    if c.size == 0:
        raise FitError(f"{curve.name or 'curve'}: no significant peak left after fitting")
    n = q.size
    if res is None or len(res.params) != 3 * c.size + 4:  # the last round changed the peaks
        res, resid = _fit_shape(q, y, sig, base, t, "pvoigt", c, a, w, eta)
        nfev += res.nfev
        c, a, w = _unpack(res, c.size, "pvoigt")
        eta = res.params["eta"].value
    fits: dict[str, Any] = {}
    not_fitted: dict[str, str] = {}
    if "pvoigt" in shapes:
        fits["pvoigt"] = res
    # The pseudo-Voigt holds both pure shapes (eta = 0, 1). When its eta is well
    # determined and at a bound (within one standard error), that pure shape fits as well
    # with one parameter fewer, and the opposite pure shape, whose chi^2 cannot be below
    # the pseudo-Voigt's, cannot beat it on BIC: that fit is not run.
    eta_err = res.params["eta"].stderr
    eta_err = float(eta_err) if eta_err is not None and np.isfinite(eta_err) else math.inf
    tol = max(eta_err, 1e-6) if eta_err < 0.1 else -1.0
    at = {"gauss": eta <= tol, "lorentz": 1.0 - eta <= tol}
    other = {"gauss": "lorentz", "lorentz": "gauss"}
    for shape in ("gauss", "lorentz"):
        if shape not in shapes:
            continue
        if at[other[shape]] and other[shape] in shapes:
            not_fitted[shape] = (
                f"not fitted: the pseudo-Voigt's eta = {eta:.4f} +/- {eta_err:.2g} is at the "
                f"{other[shape]} bound, and a {shape} cannot have a lower chi^2"
            )
            continue
        # from the pseudo-Voigt's solution (a few steps when eta is at this shape's bound)
        r2, _ = _fit_shape(q, y, sig, base, t, shape, c, a, w, eta, start=res.params)
        nfev += r2.nfev
        fits[shape] = r2
    if "voigt" in shapes:
        fl_start = np.array([pvoigt_components(wi, eta)[1] for wi in w]) + 1e-3 * w
        if instrument_fwhm_inv_nm and instrument_fwhm_inv_nm > 0:
            # Gaussian part = the instrument's resolution; the Lorentzians are the sample.
            r2, _ = _fit_shape(q, y, sig, base, t, "voigt", c, a, fl_start, eta, float(instrument_fwhm_inv_nm), wg_fixed=True)
        else:
            r2, _ = _fit_shape(q, y, sig, base, t, "voigt", c, a, fl_start, eta, pvoigt_components(float(np.median(w)), eta)[0])
        nfev += r2.nfev
        fits["voigt"] = r2
    bic = {s: float(r.chisqr + r.nvarys * math.log(n)) for s, r in fits.items()}
    best = min(bic, key=bic.get)
    r = fits[best]
    cb, ab, wb = _unpack(r, c.size, best)
    redchi = r.chisqr / max(n - r.nvarys, 1)
    eta_b = r.params["eta"].value if best == "pvoigt" else None
    wg_b = r.params["wg"].value if best == "voigt" else None
    peaks = []
    for i in range(cb.size):
        ce = _stderr(r.params[f"c{i}"], redchi)
        ae = _stderr(r.params[f"a{i}"], redchi)
        we = _stderr(r.params[f"w{i}"], redchi)
        if best == "voigt":
            tot = float(voigt_fwhm(wg_b, wb[i]))
            peaks.append(Peak(cb[i], ce, tot, we * tot / max(wb[i], 1e-300) if np.isfinite(we) else we, ab[i], ae, None, wg_b, wb[i]))
        else:
            peaks.append(Peak(cb[i], ce, wb[i], we, ab[i], ae))
    v = r.params.valuesdict()
    model = base * (v["b0"] + v["b1"] * t + v["b2"] * t * t) + _peak_sum(q, best, cb, ab, wb, v.get("eta", 0.5), v.get("wg", 0.0))
    bl = base * (v["b0"] + v["b1"] * t + v["b2"] * t * t)
    return PeakFit(tuple(peaks), best, eta_b, wg_b, bic, float(redchi), q, y, sig, model, bl, nfev, not_fitted)


def _top_inside(excess: np.ndarray, i: int, wf: float) -> int | None:
    """For a filter maximum at an end of the data: the index of a maximum of the excess
    (smoothed) within two widths of that end that stands above the end value by more than
    its noise, or None. The tail of a ring centred beyond the range rises to the end and
    has none; a ring centred just inside has one."""
    n = excess.size
    m = max(3, int(wf / 3) | 1)
    sm = np.convolve(excess, np.ones(m) / m, mode="same")
    span = max(3, int(2 * wf))
    lo, hi = (max(1, n - 1 - span), n - 1 - m // 2) if i > n // 2 else (1 + m // 2, min(n - 2, span))
    if hi - lo < 2:
        return None
    seg = np.arange(lo, hi)
    top = seg[(sm[seg] > sm[seg - 1]) & (sm[seg] >= sm[seg + 1])]
    end = sm[hi] if i > n // 2 else sm[lo]
    top = top[sm[top] > end + 1.0 / math.sqrt(m)]
    return int(top[np.argmax(sm[top])]) if top.size else None


def _residual_peaks(q, rr, threshold, c, w, rejected=(), sig=None, eta=0.5, min_area_snr=0.0):
    """Significant peaks left in the normalised residual rr = (model - data)/sigma.

    Ricker filter at the fitted widths; returns up to two (q, fwhm, index) away from the
    fitted centres; at an end of the data only with a top inside it (see :func:`_top_inside`),
    not within a width
    of a position in ``rejected`` (peaks an earlier round added and dropped again). With
    ``sig``, a candidate must also hold ``min_area_snr``: its area fitted alone to the
    residual (a linear least-squares projection, optimistic since its neighbours stay
    fixed) over that area's standard error; misfit structure at a strong peak's flank
    passes the zero-mean filter but is no peak, and adding it would cost a fit round.
    """
    n = q.size
    dq = (q[-1] - q[0]) / (n - 1)
    out: list[tuple[float, float, int]] = []
    if c.size == 0:
        return out
    for wf in np.unique(np.clip(np.round(w / dq, 1), 2.0, None)):
        k = _ricker(wf)
        if k.size // 2 >= n - 1:
            continue
        z = _filter(-rr, k)
        i = int(np.argmax(z))
        if z[i] > threshold and not (2 <= i <= n - 3 and z[i - 1] <= z[i] >= z[i + 1]):
            i = _top_inside(-rr, i, wf)  # at an end of the data: is there a top inside?
            if i is None:
                continue
        if z[i] > threshold:
            qi = q[i]
            if (np.all(np.abs(qi - c) > 0.3 * wf * dq) and all(abs(qi - o[0]) > wf * dq for o in out)
                    and all(abs(qi - r) > wf * dq for r in rejected)):
                if sig is not None and min_area_snr > 0:
                    g = pvoigt_profile(q - qi, wf * dq, eta) / sig
                    gg = float(g @ g)
                    if gg <= 0 or -float(rr @ g) / math.sqrt(gg) < min_area_snr:
                        continue
                out.append((float(qi), float(wf * dq), i))
    return out[:2]


# --------------------------------------------------------------------------- indexing
@dataclass(frozen=True)
class Candidate:
    """One indexing hypothesis: a lattice and its parameter, with the evidence.

    ``cost`` is the sum of ``terms`` (lower is better); ``score`` = 1 / (1 + cost).
    ``assignment`` maps each observed peak (input order) to an hkl or None.
    """

    lattice: str
    a_nm: float
    a_err_nm: float
    cost: float
    score: float
    terms: dict[str, float]
    assignment: tuple[tuple[int, int, int] | None, ...]
    s_assigned: tuple[float | None, ...]
    predicted: tuple[Reflection, ...]
    absent: tuple[Reflection, ...]
    unexplained_q_nm: tuple[float, ...]
    aligned: bool
    nn_distance_nm: float
    ligand_gap_nm: float | None
    packing_fraction: float | None
    plausible: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Indexing:
    """Ranked lattice candidates (best first); ``best`` is None when nothing is ordered."""

    candidates: tuple[Candidate, ...]
    best: Candidate | None
    notes: tuple[str, ...]
    edge_nm: float | None = None

    @property
    def lattice(self) -> str | None:
        return self.best.lattice if self.best else None


def _wls_a(qo, qerr, s):
    """Least squares through the origin, q_i = u sqrt(s_i), u = 2 pi / a.

    Weights 1/q_err^2 (equal when unknown); the standard error uses the residual scatter
    (Birge ratio) when it exceeds the error bars, or alone when they are unknown.
    """
    k = np.sqrt(s)
    if qerr is None:
        wt = np.ones_like(qo)
    else:
        wt = 1.0 / np.maximum(qerr, 1e-12) ** 2
    wk = wt * k
    skk = float(np.dot(wk, k))
    u = float(np.dot(wk, qo)) / skk
    res = qo - u * k
    dof = qo.size - 1
    var_u = 1.0 / skk
    if dof > 0:
        s2 = float(np.dot(wt * res, res)) / dof
        var_u *= s2 if qerr is None else max(s2, 1.0)
    elif qerr is None:
        var_u = float("nan")
    a = 2.0 * math.pi / u
    return a, a * math.sqrt(var_u) / u, u


def _match(qo: np.ndarray, qp: np.ndarray, tol: np.ndarray):
    """Nearest ring j of each peak, relative offsets d and which peaks it explains (one
    ring explains one peak: the nearest wins)."""
    j = np.argmin(np.abs(qo[:, None] - qp[None, :]), axis=1)
    d = (qo - qp[j]) / qo
    ok = np.abs(d) < tol
    jo = j[ok].tolist()
    if len(jo) > 1 and len(set(jo)) < len(jo):
        for jj in set(jo):
            idx = np.nonzero(ok & (j == jj))[0]
            if idx.size > 1:
                bestk = idx[np.argmin(np.abs(d[idx]))]
                ok[idx[idx != bestk]] = False
    return j, d, ok


def _refine_a(lattice, a0, qo, qerr, tol, rel_tol, q_hi):
    """a refined from a0 by matching positions only (no intensities: cheap), or None."""
    a = a0
    for _ in range(3):
        s_all = _ring_s(lattice, (q_hi * (1 + 2 * rel_tol) * a / (2.0 * math.pi)) ** 2)
        if s_all.size == 0:
            return None
        j, _, ok = _match(qo, 2.0 * math.pi * np.sqrt(s_all) / a, tol)
        if not ok.any():
            return None
        a_new = _wls_a(qo[ok], None if qerr is None else qerr[ok], s_all[j[ok]])[0]
        if abs(a_new - a) < 1e-9 * a:
            return a_new
        a = a_new
    return a


def _blends(qo, qp, ok, fwhm):
    """Unexplained peaks with rings inside their half width (a blend of overlapping rings
    the free fit merged) and the rings they cover."""
    if fwhm is None or ok.all():
        return np.zeros(qo.size, bool), set()
    inside = (np.abs(qp[None, :] - qo[:, None]) < 0.5 * fwhm[:, None]) & ~ok[:, None]
    return inside.any(axis=1), set(np.nonzero(inside.any(axis=0))[0].tolist())


def _margin(fwhm) -> float:
    return float(np.median(fwhm)) if fwhm is not None and np.size(fwhm) else 0.0


def _in_range(qp, q_lo, q_hi, rel_tol, fwhm, margin=None):
    # A ring closer than one peak width to either end of the data cannot be seen whole:
    # it is neither evidence for nor against the lattice.
    if margin is None:
        margin = _margin(fwhm)
    return (qp >= q_lo * (1 - rel_tol) + margin) & (qp <= q_hi * (1 + rel_tol) - margin)


def _cost_floor(lattice, a, qo, tol, rel_tol, q_lo, q_hi, fwhm, margin=None) -> float:
    """A lower bound of :func:`_evaluate`'s cost at refined ``a`` from positions alone:
    its position, unexplained-peak and simplicity terms (the intensity, absent-ring and
    plausibility terms it leaves out are >= 0)."""
    s_all = _ring_s(lattice, (q_hi * (1 + 2 * rel_tol) * a / (2.0 * math.pi)) ** 2)
    qp = 2.0 * math.pi * np.sqrt(s_all) / a
    _, d, ok = _match(qo, qp, tol)
    nex = int(ok.sum())
    if nex == 0:
        return math.inf
    blend, _ = _blends(qo, qp, ok, fwhm)
    nb = float(blend.sum())
    return (float(np.mean((d[ok] / tol[ok]) ** 2)) + 2.0 * (qo.size - nex - nb) + 0.5 * nb
            + 0.01 * float(_in_range(qp, q_lo, q_hi, rel_tol, fwhm, margin).sum()) + 0.001 * LATTICES.index(lattice))


def _evaluate(lattice, a, qo, qerr, areas, area_err, edge, kind, rel_tol, q_lo, q_hi, aligned_opt, poly=0.0, pq=None, fwhm=None,
              margin=None, det_err=None, worse_than=math.inf, tol=None):
    """Score the lattice at ``a`` (refined by :func:`_refine_a`): a :class:`Candidate`, or
    None when nothing matches or the cost is not below ``worse_than``."""
    n = qo.size
    if tol is None:
        tol = np.full(n, rel_tol) if qerr is None else np.maximum(rel_tol, 4.0 * qerr / qo)
    shells, s_arr, qp, wpred = _reflection_arrays(lattice, a, q_hi * (1 + 2 * rel_tol), edge, aligned_opt, kind, poly, pq)
    j, d, ok = _match(qo, qp, tol)
    nex = int(ok.sum())
    if nex == 0:
        return None
    s = s_arr[j[ok]]
    a, a_err, _ = _wls_a(qo[ok], None if qerr is None else qerr[ok], s)
    terms: dict[str, float] = {}
    terms["positions"] = float(np.mean((d[ok] / tol[ok]) ** 2))
    # A peak off every ring but with rings inside its half width is a blend of
    # overlapping rings (the free fit merged them): half a penalty, and its rings are
    # not counted as absent.
    blend, covered = _blends(qo, qp, ok, fwhm)
    used = set(j[ok].tolist()) | covered
    terms["unexplained"] = 2.0 * float(n - nex - blend.sum()) + 0.5 * float(blend.sum())
    in_range = _in_range(qp, q_lo, q_hi, rel_tol, fwhm, margin)
    absent_idx = [k for k in np.nonzero(in_range)[0].tolist() if k not in used]
    w_obs = wpred[j[ok]]
    if areas is not None and np.all(np.isfinite(areas[ok])) and np.all(areas[ok] > 0):
        lr = np.log(areas[ok]) - np.log(np.maximum(w_obs, 1e-300))
        scale = float(np.exp(np.mean(lr)))
        terms["intensities"] = 2.0 * float(np.var(lr)) if nex > 1 else 0.0
        det = 0.3 * float(np.min(areas[ok]))
        if det_err is None and area_err is not None and np.any(np.isfinite(area_err)):
            det_err = 3.0 * float(np.nanmedian(area_err))
        if det_err is not None:
            det = min(det, det_err)
        det = max(det, 1e-300)
        pred_abs = scale * wpred[absent_idx]
    else:
        det = 0.3 * float(np.min(w_obs)) if w_obs.size else 1.0
        pred_abs = wpred[absent_idx]
    pen = np.clip(1.0 + np.log10(np.maximum(pred_abs, 1e-300) / det), 0.0, 2.0)
    terms["absent"] = float(np.sum(pen))
    nn = nn_distance(lattice, a)
    gap = pf = None
    plausible = True
    notes = []
    aligned = False
    if edge is not None:
        gap = nn - edge
        pf = packing_fraction(lattice, a, edge)
        aligned = bool(aligned_opt) if aligned_opt is not None else aligned_allowed(lattice, a, edge)
        aligned = aligned and lattice in CUBIC
        if nn < edge:
            plausible = False
            terms["plausibility"] = 5.0
            notes.append(f"nearest-neighbour distance {nn:.2f} nm < cube edge {edge:.2f} nm: cubes would overlap")
        if lattice in ("BCC", "FCC") and not aligned:
            notes.append(
                f"cubes aligned with a {lattice} lattice need a >= 2e = {2 * edge:.1f} nm; at a = {a:.2f} nm they "
                "must be misaligned, and misaligned cubes do not suppress reflections"
            )
    # Simplicity: fewer predicted rings in range (de Wolff's idea), then lattice order.
    terms["simplicity"] = 0.01 * float(in_range.sum()) + 0.001 * LATTICES.index(lattice)
    cost = float(sum(terms.values()))
    if cost >= worse_than:
        return None

    def refl(k: int) -> Reflection:
        sh = shells[k]
        return Reflection(sh.hkl, sh.s, float(qp[k]), sh.multiplicity, float(wpred[k]))

    assign: list[tuple[int, int, int] | None] = [None] * n
    s_as: list[float | None] = [None] * n
    for i in range(n):
        if ok[i]:
            assign[i] = shells[j[i]].hkl
            s_as[i] = shells[j[i]].s
    return Candidate(
        lattice=lattice,
        a_nm=float(a),
        a_err_nm=float(a_err),
        cost=cost,
        score=1.0 / (1.0 + cost),
        terms=terms,
        assignment=tuple(assign),
        s_assigned=tuple(s_as),
        predicted=tuple(refl(k) for k in np.nonzero(in_range)[0].tolist()),
        absent=tuple(refl(k) for k in absent_idx),
        unexplained_q_nm=tuple(float(x) for x in qo[~ok]),
        aligned=aligned,
        nn_distance_nm=float(nn),
        ligand_gap_nm=None if gap is None else float(gap),
        packing_fraction=None if pf is None else float(pf),
        plausible=plausible,
        notes=tuple(notes),
    )


def index_peaks(
    positions,
    q_err=None,
    areas=None,
    area_err=None,
    lattices: tuple[str, ...] | str = "auto",
    edge_nm: float | None = None,
    aligned: bool | None = None,
    kind: str = "sq",
    rel_tol: float = 0.01,
    q_range: tuple[float, float] | None = None,
    max_cost: float = 4.0,
    polydispersity: float = 0.0,
    fwhm=None,
) -> Indexing:
    """Index peak positions against SC, BCC, FCC, HCP, hex2d and lamellar lattices.

    For each lattice, the two lowest peaks are tried as each of its first ten rings; every
    hypothesis is refined by weighted least squares (q = 2 pi sqrt(s)/a) and scored by a
    cost (lower is better) = positions (mean (dq/q / tol)^2) + 2 per unexplained peak +
    absent reflections (0..2 each, by predicted intensity over the detection level) +
    2 x variance of ln(observed/predicted area) when areas are given + 5 if the cubes
    would overlap (nearest-neighbour distance < edge) + a small simplicity term.

    Parameters
    ----------
    positions : peak centres (nm^-1); q_err : their standard errors (optional).
    areas, area_err : integrated peak areas (optional; sharpen the ranking).
    lattices : "auto" (all) or one name or a tuple of names.
    edge_nm : cube edge (nm): enables oriented-cube intensities, plausibility, packing.
    aligned : force (True/False) aligned cubes; None decides from the geometry.
    kind : "sq" (areas from S_eff) or "iq" (areas from I(q)).
    rel_tol : relative position tolerance for a peak to be explained.
    q_range : q range of the data (nm^-1) for predicted-but-absent lines (default: the peaks').
    max_cost : above this the best candidate is not accepted (lattice None).
    polydispersity : relative edge spread for the predicted intensities (damps form-factor minima).
    fwhm : peak FWHMs (optional): a peak between rings within its half width is a blend.

    Example
    -------
    >>> ix = index_peaks([0.55, 0.78, 1.11, 1.23], edge_nm=9.5)   # doctest: +SKIP
    >>> ix.best.lattice, round(ix.best.a_nm, 2)                   # doctest: +SKIP
    ('SC', 11.38)
    """
    qo = np.asarray(positions, dtype=float).ravel()
    if qo.size and (not np.all(np.isfinite(qo)) or np.any(qo <= 0)):
        raise ParameterError(f"peak positions {qo.tolist()}: must be positive and finite (nm^-1)")
    if edge_nm is not None and not (edge_nm > 0):
        raise ParameterError(f"edge {edge_nm!r} nm: must be positive")
    if kind not in ("sq", "iq"):
        raise ParameterError(f"kind {kind!r}: use 'sq' or 'iq'")
    if isinstance(lattices, str):
        lattices = LATTICES if lattices == "auto" else (lattices,)
    for lat in lattices:
        if lat not in LATTICES:
            raise ParameterError(f"lattice {lat!r}: use auto or one of {LATTICES}")
    order = np.argsort(qo)
    inv = np.argsort(order)
    qs = qo[order]
    qe = None if q_err is None else np.asarray(q_err, float).ravel()[order]
    if qe is not None and not np.all(np.isfinite(qe) & (qe > 0)):
        qe = None
    ar = None if areas is None else np.asarray(areas, float).ravel()[order]
    ae = None if area_err is None else np.asarray(area_err, float).ravel()[order]
    fw = None if fwhm is None else np.asarray(fwhm, float).ravel()[order]
    notes: list[str] = []
    if qs.size < 2:
        notes.append(
            "fewer than two peaks: no lattice can be indexed"
            + (f" (one peak at q = {qs[0]:.4g} nm^-1, d = 2 pi/q = {2 * math.pi / qs[0]:.4g} nm)" if qs.size else "")
        )
        return Indexing((), None, tuple(notes), edge_nm)
    q_lo, q_hi = (float(qs[0]), float(qs[-1])) if q_range is None else (float(q_range[0]), float(q_range[1]))
    q_lo = min(q_lo, float(qs[0]))
    q_hi = max(q_hi, float(qs[-1]))
    pq = _p_table(edge_nm, polydispersity, q_hi * (1 + 3 * rel_tol)) if edge_nm is not None else None
    best_per: dict[str, Candidate] = {}
    tol = np.full(qs.size, rel_tol) if qe is None else np.maximum(rel_tol, 4.0 * qe / qs)
    margin = _margin(fw)
    det_err = 3.0 * float(np.nanmedian(ae)) if ae is not None and np.any(np.isfinite(ae)) else None
    for lat in lattices:
        shells = lattice_shells(lat, 400.0)[:10]
        # Every hypothesis refined on positions alone, then scored in the order of its
        # position-only cost floor; one whose floor is no better than the best score so far
        # cannot win and is not scored (a shortcut that leaves the result unchanged).
        hyps: list[tuple[float, float]] = []
        seen: list[float] = []
        for qi in qs[: min(2, qs.size)]:
            for sh in shells:
                a0 = 2.0 * math.pi * math.sqrt(sh.s) / qi
                if any(abs(a0 - t) < 1e-3 * a0 for t in seen):
                    continue
                seen.append(a0)
                a = _refine_a(lat, a0, qs, qe, tol, rel_tol, q_hi)
                if a is None or any(abs(a - h[1]) < 1e-9 * a for h in hyps):
                    continue
                hyps.append((_cost_floor(lat, a, qs, tol, rel_tol, q_lo, q_hi, fw, margin), a))
        for floor, a in sorted(hyps):
            if lat in best_per and floor >= best_per[lat].cost:
                break
            cand = _evaluate(lat, a, qs, qe, ar, ae, edge_nm, kind, rel_tol, q_lo, q_hi, aligned, polydispersity, pq, fw,
                             margin, det_err, best_per[lat].cost if lat in best_per else math.inf, tol)
            if cand is not None:
                best_per[lat] = cand
    # Back to the input order of the peaks.
    cands = []
    for c in best_per.values():
        cands.append(
            replace(c, assignment=tuple(c.assignment[i] for i in inv), s_assigned=tuple(c.s_assigned[i] for i in inv))
        )
    cands.sort(key=lambda c: c.cost)
    best = cands[0] if cands else None
    if best is not None:
        nex = sum(h is not None for h in best.assignment)
        if nex < 2 or best.cost > max_cost or nex < 0.5 * qs.size:
            notes.append(
                f"best candidate {best.lattice} a = {best.a_nm:.3f} nm explains {nex} of {qs.size} peaks "
                f"with cost {best.cost:.2f} (limit {max_cost:g}): no lattice assigned"
            )
            best = None
    if best is not None:
        notes.extend(_ambiguity_notes(best, cands, qs, q_hi))
    return Indexing(tuple(cands), best, tuple(notes), edge_nm)


def _ambiguity_notes(best: Candidate, cands, qs, q_hi) -> list[str]:
    out = []
    for c in cands[1:]:
        if c.lattice == best.lattice:
            continue
        r = c.a_nm / best.a_nm
        # SC (100),(110),(200),(210) = BCC (110),(200),(220),(310) with a_BCC = sqrt2 a_SC.
        pair = {best.lattice, c.lattice} == {"SC", "BCC"}
        if pair and abs(r - (math.sqrt(2) if best.lattice == "SC" else 1 / math.sqrt(2))) < 0.01:
            a_sc = best.a_nm if best.lattice == "SC" else c.a_nm
            q7 = 2.0 * math.pi * math.sqrt(7.0) / a_sc
            reach = q_hi >= q7 * 0.995
            seen = bool(np.any(np.abs(qs - q7) < 0.01 * q7))
            out.append(
                f"SC a = {a_sc:.3f} nm and BCC a = {a_sc * math.sqrt(2):.3f} nm share the ratios 1 : sqrt2 : 2 : sqrt5; "
                f"the first line that separates them is q100 sqrt7 = {q7:.4g} nm^-1 (BCC (321) only): the data "
                + (("reach it and show a peak there" if seen else "reach it and show no peak there") if reach else "do not reach it")
                + f"; ranked by cost {best.lattice} {best.cost:.2f} < {c.lattice} {c.cost:.2f}"
            )
        elif c.cost - best.cost < 0.3:
            out.append(
                f"ambiguous: {c.lattice} a = {c.a_nm:.3f} nm scores close to {best.lattice} (cost {c.cost:.2f} vs {best.cost:.2f})"
            )
    return out


# --------------------------------------------------------------------------- coherence
@dataclass(frozen=True)
class Coherence:
    """Coherence length L = 2 pi K / dq_sample, with the convention used."""

    length_nm: float
    length_err_nm: float
    sample_width_inv_nm: float
    K: float
    width: str  # "fwhm" or "integral_breadth"

    @property
    def convention(self) -> str:
        return f"K={self.K:g}, {'FWHM' if self.width == 'fwhm' else 'integral breadth'}"


def sample_width(
    fwhm_obs: float,
    instrument_fwhm: float = 0.0,
    shape: str = "gauss",
    eta: float | None = None,
    fwhm_g: float | None = None,
) -> tuple[float, float, float]:
    """Remove a Gaussian instrumental width from an observed peak, according to its shape.

    Gaussian: quadrature; Lorentzian: linear subtraction; Voigt: the Gaussian part
    ``fwhm_g`` (or the Voigt FWHM split by Olivero's formula) loses the instrument in
    quadrature, the Lorentzian part is kept; pseudo-Voigt: split into Gaussian and
    Lorentzian parts (Thompson-Cox-Hastings) and treated as a Voigt.

    Returns (sample FWHM, its Gaussian part, its Lorentzian part), all in nm^-1.
    """
    wi = float(instrument_fwhm or 0.0)
    if shape == "gauss":
        d = fwhm_obs * fwhm_obs - wi * wi
        if d <= 0:
            raise FitError(f"peak FWHM {fwhm_obs:.4g} nm^-1 is not wider than the instrument ({wi:.4g} nm^-1): the domain is larger than the resolution allows to measure")
        w = math.sqrt(d)
        return w, w, 0.0
    if shape == "lorentz":
        w = fwhm_obs - wi
        if w <= 0:
            raise FitError(f"peak FWHM {fwhm_obs:.4g} nm^-1 is not wider than the instrument ({wi:.4g} nm^-1)")
        return w, 0.0, w
    if shape == "pvoigt":
        fg, fl = pvoigt_components(fwhm_obs, 0.5 if eta is None else eta)
    elif shape == "voigt":
        fg = fwhm_g if fwhm_g is not None else wi
        fl = voigt_lorentz_part(fwhm_obs, fg)
    else:
        raise ParameterError(f"shape {shape!r}: use one of {SHAPES}")
    gs = math.sqrt(max(fg * fg - wi * wi, 0.0))
    w = float(voigt_fwhm(gs, fl))
    if w <= 0:
        raise FitError(f"peak FWHM {fwhm_obs:.4g} nm^-1 is not wider than the instrument ({wi:.4g} nm^-1)")
    return w, gs, fl


def coherence_length(
    fwhm_obs: float,
    fwhm_err: float = 0.0,
    instrument_fwhm: float = 0.0,
    shape: str = "gauss",
    K: float = 1.0,
    width: str = "fwhm",
    eta: float | None = None,
    fwhm_g: float | None = None,
) -> Coherence:
    """Coherence length (size of the ordered domain) L = 2 pi K / dq_sample.

    Parameters
    ----------
    fwhm_obs : observed FWHM (nm^-1); fwhm_err its standard error.
    instrument_fwhm : Gaussian instrumental FWHM (nm^-1), removed per ``shape`` (:func:`sample_width`).
    K : Scherrer constant (default 1, the paper's; 0.886 for a cube's FWHM along <100>).
    width : ``"fwhm"`` (default, the paper's) or ``"integral_breadth"``.

    Example
    -------
    >>> round(coherence_length(0.0378).length_nm, 1)   # 2 pi / 0.0378 (paper: 166.3 nm)
    166.2
    """
    if not (fwhm_obs > 0 and np.isfinite(fwhm_obs)):
        raise ParameterError(f"peak FWHM {fwhm_obs!r} nm^-1: must be positive")
    if width not in ("fwhm", "integral_breadth"):
        raise ParameterError(f"width convention {width!r}: use 'fwhm' or 'integral_breadth'")
    w, fg, fl = sample_width(fwhm_obs, instrument_fwhm, shape, eta, fwhm_g)
    if width == "integral_breadth":
        if fl <= 0:
            b = integral_breadth("gauss", w)
        elif fg <= 0:
            b = integral_breadth("lorentz", w)
        else:
            b = integral_breadth("voigt", w, fwhm_g=fg, fwhm_l=fl)
        ratio = b / w
    else:
        b, ratio = w, 1.0
    L = 2.0 * math.pi * K / b
    # d L / d fwhm_obs by finite difference (the removal is nonlinear).
    err = 0.0
    if fwhm_err and np.isfinite(fwhm_err) and fwhm_err > 0:
        h = 1e-3 * fwhm_obs
        try:
            w2 = sample_width(fwhm_obs + h, instrument_fwhm, shape, eta, fwhm_g)[0]
            dw = (w2 - w) / h
        except FitError:
            dw = 1.0
        err = L / w * abs(dw) * fwhm_err
    return Coherence(float(L), float(err), float(b / ratio if width == "fwhm" else b), K, width)


@dataclass(frozen=True)
class SizeDisorder:
    """Domain size and lattice disorder from the widths of >= 3 orders.

    Williamson-Hall: w(q) = 2 pi K / L + 2 eps q (microstrain eps);
    paracrystal (Hosemann): w(q) = 2 pi K / L + (pi/2) g^2 d q^2 (g = sigma_d / d, d the
    lattice spacing a), both on sample FWHM; ``preferred`` ("size", "williamson_hall" or
    "paracrystal") by the lowest BIC = chi^2 + k ln n, "size" being a constant width; a
    slope model must have a slope above 3 standard errors (broadening grows with q).
    """

    wh_length_nm: float
    wh_length_err_nm: float
    wh_strain: float
    wh_strain_err: float
    wh_chi2: float
    pc_length_nm: float
    pc_length_err_nm: float
    pc_g: float
    pc_g_err: float
    pc_chi2: float
    preferred: str
    n_orders: int
    size_chi2: float = float("nan")


def size_disorder(q_nm, fwhm_sample, fwhm_err, a_nm: float, K: float = 1.0) -> SizeDisorder | None:
    """Separate domain size from disorder with Williamson-Hall and paracrystal fits.

    Weighted straight lines of w against q and against q^2; None with fewer than three
    distinct orders.
    """
    q = np.asarray(q_nm, float)
    w = np.asarray(fwhm_sample, float)
    e = np.asarray(fwhm_err, float)
    ok = np.isfinite(q) & np.isfinite(w) & np.isfinite(e) & (e > 0) & (w > 0)
    q, w, e = q[ok], w[ok], e[ok]
    if q.size < 3:
        return None
    # Size only (constant width): the weighted mean.
    wm = float(np.sum(w / e**2) / np.sum(1 / e**2))
    chi2_const = float(np.sum(((w - wm) / e) ** 2))
    out = {}
    for name, x in (("wh", q), ("pc", q * q)):
        A = np.vstack([np.ones_like(x), x]).T / e[:, None]
        b = w / e
        cov = np.linalg.inv(A.T @ A)
        p = cov @ A.T @ b
        chi2 = float(np.sum((A @ p - b) ** 2))
        infl = max(chi2 / max(q.size - 2, 1), 1.0)
        perr = np.sqrt(np.diag(cov) * infl)
        w0, w0e = p[0], perr[0]
        L = 2 * math.pi * K / w0 if w0 > 0 else float("inf")
        Le = L * w0e / w0 if w0 > 0 else float("nan")
        out[name] = (L, Le, p[1], perr[1], chi2)
    wh, pc = out["wh"], out["pc"]
    strain, strain_e = wh[2] / 2.0, wh[3] / 2.0
    c2, c2e = pc[2], pc[3]
    g = math.sqrt(max(2.0 * c2 / (math.pi * a_nm), 0.0))
    ge = (c2e / (math.pi * a_nm * g)) if g > 0 else math.sqrt(2.0 * c2e / (math.pi * a_nm))
    # BIC with known errors: chi^2 + k ln n (k = 1 for size only, 2 with a slope).
    ln_n = math.log(q.size)
    bic = {"size": chi2_const + ln_n, "williamson_hall": wh[4] + 2 * ln_n, "paracrystal": pc[4] + 2 * ln_n}
    # Broadening only grows with q: a slope model needs a positive slope above 3 standard errors.
    for name, (slope, serr) in (("williamson_hall", (wh[2], wh[3])), ("paracrystal", (pc[2], pc[3]))):
        if not (slope > 3.0 * serr):
            bic[name] = float("inf")
    pref = min(bic, key=bic.get)
    return SizeDisorder(wh[0], wh[1], strain, strain_e, wh[4], pc[0], pc[1], g, ge, pc[4], pref, int(q.size), chi2_const)


def instrument_fwhm_from_calibrant(curve: Curve, d_nm: float = AGBH_D001_NM, order: int = 1, window: float = 0.15) -> float:
    """Instrumental FWHM (nm^-1) from a calibrant peak (default silver behenate 001, q = 1.0763 nm^-1).

    The peak within +/- ``window`` x q of 2 pi n / d is fitted (free shape, BIC); its FWHM
    is taken as the instrument's (AgBH crystallites are taken as large).
    """
    q0 = 2.0 * math.pi * order / d_nm
    sel = curve.select(q0 * (1 - window), q0 * (1 + window))
    if len(sel) < 20:
        raise InputError(
            f"calibrant {curve.name!r}: fewer than 20 points within {window:.0%} of the expected peak at "
            f"{q0:.4f} nm^-1 (d = {d_nm} nm); is this a silver-behenate curve in nm^-1?"
        )
    try:
        pf = fit_peaks(sel)
    except FitError:
        raise InputError(f"calibrant {curve.name!r}: no peak found near {q0:.4f} nm^-1; check the file and the q unit") from None
    pk = min(pf.peaks, key=lambda p: abs(p.q_nm - q0) - 1e-6 * p.area)
    if abs(pk.q_nm - q0) > 0.03 * q0:
        raise InputError(
            f"calibrant {curve.name!r}: strongest peak at {pk.q_nm:.4f} nm^-1, not at {q0:.4f} nm^-1: "
            "the distance calibration is off by more than 3%; recalibrate first"
        )
    return float(pk.fwhm_inv_nm)


# --------------------------------------------------------------------------- lattice fit
@dataclass(frozen=True)
class LatticeFit:
    """Lattice-tied global fit: centres 2 pi sqrt(s)/a, Voigt widths from the size model.

    Lorentzian FWHM w_L(q) = w0 + w1 q (``width_model="strain"``), w0 + w2 q^2
    (``"paracrystal"``) or w0 (``"size"``); Gaussian FWHM fixed to the instrument.
    """

    lattice: str
    a_nm: float
    a_err_nm: float
    w0_inv_nm: float
    w0_err_inv_nm: float
    slope: float
    slope_err: float
    width_model: str
    instrument_fwhm_inv_nm: float
    shells: tuple[Reflection, ...]
    areas: np.ndarray
    area_errs: np.ndarray
    chi2_red: float
    q_nm: np.ndarray
    model: np.ndarray
    baseline: np.ndarray
    nfev: int
    params: dict[str, float] = field(default_factory=dict)


def _lattice_eval(q, t, base, a, w0, slope, kind, wg, ks, areas, b, want_jac=False):
    """Lattice-tied model and (optionally) its derivatives by name."""
    c = (ks / a)[:, None]
    mult = c if kind == "strain" else c * c if kind == "paracrystal" else np.zeros_like(c)
    wl = np.maximum(w0 + slope * mult, 1e-9)
    shape = "voigt" if wg > 0 else "lorentz"
    f, dfc, dfw, _ = _profiles(q[None, :] - c, shape, wl, wg=wg)
    A = np.asarray(areas, float)[:, None]
    bl = base * (b[0] + b[1] * t + b[2] * t * t)
    m = bl + np.sum(A * f, axis=0)
    if not want_jac:
        return m, None
    dc_da = -c / a
    dmult_da = dc_da if kind == "strain" else 2.0 * c * dc_da if kind == "paracrystal" else 0.0 * c
    cols = {
        "a": np.sum(A * (dfc * dc_da + dfw * slope * dmult_da), axis=0),
        "w0": np.sum(A * dfw, axis=0),
        "slope": np.sum(A * dfw * mult, axis=0),
        "b0": base,
        "b1": base * t,
        "b2": base * t * t,
    }
    for i in range(len(ks)):
        cols[f"A{i}"] = f[i]
    return m, cols


def _lattice_model(q, t, base, u, w0, slope, kind, wg, ks, areas, b):
    return _lattice_eval(q, t, base, 1.0 / u, w0, slope, kind, wg, ks, areas, b)[0]


def lattice_parameters(
    shells, a0, w0, slope, areas, width_model, b=(1.0, 0.0, 0.0)
):
    """lmfit Parameters of the lattice-tied model (also used as the benchmark's floor)."""
    import lmfit

    p = lmfit.Parameters()
    p.add("a", value=a0, min=0.5 * a0, max=2.0 * a0)
    p.add("w0", value=max(w0, 1e-6), min=0.0)
    p.add("slope", value=max(slope, 0.0), min=0.0, vary=width_model != "size")
    for i, A in enumerate(areas):
        p.add(f"A{i}", value=max(A, 0.0), min=0.0)
    for i, bi in enumerate(b):
        p.add(f"b{i}", value=bi)
    return p


def lattice_residual(q, y, sig, base, shells, width_model, instrument_fwhm, analytic_jac: bool = True):
    """Residual (params -> (model - y)/sigma) and analytic Jacobian of the lattice-tied model.

    With ``analytic_jac`` False the residual computes the model alone (for a fit with
    finite-difference derivatives, which never asks for the Jacobian)."""
    t = _tpoly(q)
    ks = np.array([2.0 * math.pi * math.sqrt(r.s) for r in shells])
    isig = 1.0 / sig
    wg = float(instrument_fwhm)
    n = len(shells)

    last: dict[str, Any] = {}

    def _call(p):
        # Model and derivatives together, kept for the Jacobian MINPACK asks for next at
        # the same point (one profile evaluation, with its Faddeeva function, per step).
        v = p.valuesdict()
        key = tuple(v.values())
        if last.get("key") != key:
            areas = [v[f"A{i}"] for i in range(n)]
            last["key"] = key
            last["mc"] = _lattice_eval(q, t, base, v["a"], v["w0"], v["slope"], width_model, wg, ks, areas,
                                       (v["b0"], v["b1"], v["b2"]), analytic_jac)
        return last["mc"]

    def resid(p):
        return (_call(p)[0] - y) * isig

    def jac(p):
        cols = _call(p)[1]
        names = [k for k, par in p.items() if par.vary]
        return np.column_stack([cols[k] for k in names]) * isig[:, None]

    return resid, jac


def fit_lattice(
    curve: Curve,
    indexing: Indexing,
    peakfit: PeakFit | None = None,
    instrument_fwhm_inv_nm: float = 0.0,
    width_model: str = "auto",
    baseline: np.ndarray | None = None,
    sigma: np.ndarray | None = None,
) -> LatticeFit:
    """Lattice-tied global Voigt fit of all rings of the best candidate within the data.

    Centres 2 pi sqrt(s)/a from one a; Lorentzian FWHM from the size/disorder model
    (``width_model`` "size", "strain", "paracrystal" or "auto": paracrystal with three or
    more indexed orders, else size); Gaussian FWHM fixed to ``instrument_fwhm_inv_nm``;
    one free area per indexed ring; baseline as in :func:`fit_peaks`.
    """
    best = indexing.best
    if best is None:
        raise FitError("lattice fit: no lattice was indexed; nothing to tie the peaks to")
    q, y = curve.q_nm, curve.intensity
    if baseline is None or sigma is None:
        fp = find_peaks(curve)
        baseline, sigma = fp.baseline, fp.sigma
    # Every ring of the lattice within the data (indexed or not): a ring hidden under a
    # neighbour's flank still has its area fitted (>= 0) instead of widening the neighbour.
    s_obs = sorted({s for s in best.s_assigned if s is not None})
    shells = tuple(
        r for r in reflections(best.lattice, best.a_nm, q[-1] * 1.01) if r.q_nm >= q[0] * 0.99 or any(abs(r.s - s) < 1e-9 for s in s_obs)
    )
    if width_model == "auto":
        width_model = "paracrystal" if len(s_obs) >= 3 else "size"
    if width_model not in ("size", "strain", "paracrystal"):
        raise ParameterError(f"width model {width_model!r}: use auto, size, strain or paracrystal")
    # Start: areas and widths from the free fit when given.
    areas0 = []
    wl0 = []
    for r in shells:
        pk = None
        if peakfit is not None:
            pk = min(peakfit.peaks, key=lambda p, qq=r.q_nm: abs(p.q_nm - qq))
            if abs(pk.q_nm - r.q_nm) > 0.02 * r.q_nm:
                pk = None
        areas0.append(pk.area if pk else 0.0)
        if pk:
            try:
                wl0.append(sample_width(pk.fwhm_inv_nm, instrument_fwhm_inv_nm, "voigt", fwhm_g=instrument_fwhm_inv_nm)[2])
            except FitError:
                wl0.append(pk.fwhm_inv_nm)
    w0 = float(np.min(wl0)) if wl0 else 0.01 * q[-1]
    b0 = (1.0, 0.0, 0.0)
    if peakfit is not None:
        # Same baseline representation: recover b from the free fit's baseline ratio.
        t = _tpoly(q)
        ratio = peakfit.baseline / baseline
        b0 = tuple(np.polyfit(t, ratio, 2)[::-1])
    pars = lattice_parameters(shells, best.a_nm, w0, 0.0, areas0, width_model, b0)
    resid, jac = lattice_residual(q, y, sigma, baseline, shells, width_model, instrument_fwhm_inv_nm)
    res = _minimize(resid, pars, "lattice-tied fit", jac)
    return _lattice_result(res, best.lattice, shells, width_model, instrument_fwhm_inv_nm, q, baseline)


def _lattice_result(res, lattice, shells, width_model, instrument_fwhm, q, baseline) -> LatticeFit:
    n = q.size
    redchi = res.chisqr / max(n - res.nvarys, 1)
    v = res.params
    ks = np.array([2.0 * math.pi * math.sqrt(r.s) for r in shells])
    areas = np.array([v[f"A{i}"].value for i in range(len(shells))])
    aerr = np.array([_stderr(v[f"A{i}"], redchi) for i in range(len(shells))])
    t = _tpoly(q)
    b = (v["b0"].value, v["b1"].value, v["b2"].value)
    model = _lattice_model(q, t, baseline, 1.0 / v["a"].value, v["w0"].value, v["slope"].value, width_model, instrument_fwhm, ks, areas, b)
    a = v["a"].value
    shells_out = tuple(replace(r, q_nm=2.0 * math.pi * math.sqrt(r.s) / a) for r in shells)
    return LatticeFit(
        lattice=lattice,
        a_nm=float(a),
        a_err_nm=_stderr(v["a"], redchi),
        w0_inv_nm=float(v["w0"].value),
        w0_err_inv_nm=_stderr(v["w0"], redchi),
        slope=float(v["slope"].value),
        slope_err=_stderr(v["slope"], redchi) if v["slope"].vary else 0.0,
        width_model=width_model,
        instrument_fwhm_inv_nm=float(instrument_fwhm),
        shells=shells_out,
        areas=areas,
        area_errs=aerr,
        chi2_red=float(redchi),
        q_nm=q,
        model=model,
        baseline=baseline * (b[0] + b[1] * t + b[2] * t * t),
        nfev=int(res.nfev),
        params={k: float(p.value) for k, p in v.items()},
    )


# --------------------------------------------------------------------------- one call
@dataclass(frozen=True)
class PeakAnalysis:
    """Everything the peak stage found, with the conventions used (see :meth:`to_json_dict`)."""

    curve: Curve
    found: FoundPeaks | None
    peakfit: PeakFit | None
    indexing: Indexing | None
    latticefit: LatticeFit | None
    lattice: str | None
    a_nm: float | None
    a_err_stat_nm: float | None
    a_err_calib_nm: float | None
    a_wls_nm: float | None
    a_wls_err_nm: float | None
    coherence: Coherence | None
    coherence_per_peak: tuple[Coherence | None, ...]
    sizedisorder: SizeDisorder | None
    instrument_fwhm_inv_nm: float
    calib_rel_err: float
    kind: str
    notes: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def a_err_nm(self) -> float | None:
        if self.a_err_stat_nm is None or self.a_err_calib_nm is None:
            return None
        return math.hypot(self.a_err_stat_nm, self.a_err_calib_nm)

    def to_json_dict(self) -> dict[str, Any]:
        """The stage's result as a JSON-ready dict (NaN and inf become None)."""
        best = self.indexing.best if self.indexing else None
        edge = self.indexing.edge_nm if self.indexing else None
        peaks = []
        if self.peakfit is not None:
            for i, pk in enumerate(self.peakfit.peaks):
                coh = self.coherence_per_peak[i] if i < len(self.coherence_per_peak) else None
                peaks.append(
                    {
                        "q_inv_nm": pk.q_nm,
                        "q_err_inv_nm": pk.q_err_nm,
                        "fwhm_inv_nm": pk.fwhm_inv_nm,
                        "fwhm_err_inv_nm": pk.fwhm_err_inv_nm,
                        "area": pk.area,
                        "area_err": pk.area_err,
                        "hkl": None if best is None or best.assignment[i] is None else list(best.assignment[i]),
                        "coherence_length_nm": coh.length_nm if coh else None,
                        "coherence_length_err_nm": coh.length_err_nm if coh else None,
                    }
                )
        alts = []
        if self.indexing is not None:
            for c in self.indexing.candidates:
                alts.append(
                    {
                        "lattice": c.lattice,
                        "a_nm": c.a_nm,
                        "score": c.score,
                        "cost": c.cost,
                        "cost_terms": dict(c.terms),
                        "nn_distance_nm": c.nn_distance_nm,
                        "packing_fraction": c.packing_fraction,
                        "aligned_cubes": c.aligned,
                        "plausible": c.plausible,
                        "absent_hkl": [list(r.hkl) for r in c.absent],
                    }
                )
        coh = self.coherence
        sd = self.sizedisorder
        lf = self.latticefit
        d: dict[str, Any] = {
            "lattice": self.lattice,
            "a_nm": self.a_nm,
            "a_err_nm": self.a_err_nm,
            "a_err_stat_nm": self.a_err_stat_nm,
            "a_err_calib_nm": self.a_err_calib_nm,
            "calib_rel_err": self.calib_rel_err,
            "a_wls_nm": self.a_wls_nm,
            "a_wls_err_stat_nm": self.a_wls_err_nm,
            "nn_distance_nm": nn_distance(self.lattice, self.a_nm) if self.lattice and self.a_nm else None,
            "ligand_gap_nm": nn_distance(self.lattice, self.a_nm) - edge if best and self.a_nm and edge else None,
            "packing_fraction": packing_fraction(self.lattice, self.a_nm, edge) if best and self.a_nm and edge else None,
            "edge_nm": self.indexing.edge_nm if self.indexing else None,
            "aligned_cubes": best.aligned if best else None,
            "coherence_length_nm": coh.length_nm if coh else None,
            "coherence_length_err_nm": coh.length_err_nm if coh else None,
            "coherence_convention": coh.convention if coh else "K=1, FWHM",
            "instrument_fwhm_inv_nm": self.instrument_fwhm_inv_nm,
            "input_kind": self.kind,
            "peak_shape": self.peakfit.shape if self.peakfit else None,
            "shape_criterion": "BIC = chi2 + k ln n",
            "shape_bic": dict(self.peakfit.bic) if self.peakfit else None,
            "shape_not_fitted": dict(self.peakfit.not_fitted) if self.peakfit else None,
            "free_fit_chi2_red": self.peakfit.chi2_red if self.peakfit else None,
            "lattice_fit": None
            if lf is None
            else {
                "a_nm": lf.a_nm,
                "a_err_stat_nm": lf.a_err_nm,
                "width_model": lf.width_model,
                "lorentz_fwhm_q0_inv_nm": lf.w0_inv_nm,
                "lorentz_fwhm_q0_err_inv_nm": lf.w0_err_inv_nm,
                "width_slope": lf.slope,
                "width_slope_err": lf.slope_err,
                "chi2_red": lf.chi2_red,
                "rings": [{"hkl": list(r.hkl), "q_inv_nm": r.q_nm, "area": float(A), "area_err": float(e)} for r, A, e in zip(lf.shells, lf.areas, lf.area_errs)],
            },
            "size_disorder": None
            if sd is None
            else {
                "n_orders": sd.n_orders,
                "williamson_hall": {"length_nm": sd.wh_length_nm, "length_err_nm": sd.wh_length_err_nm, "strain": sd.wh_strain, "strain_err": sd.wh_strain_err, "chi2": sd.wh_chi2},
                "paracrystal": {"length_nm": sd.pc_length_nm, "length_err_nm": sd.pc_length_err_nm, "g": sd.pc_g, "g_err": sd.pc_g_err, "chi2": sd.pc_chi2},
                "size_only_chi2": sd.size_chi2,
                "preferred": sd.preferred,
            },
            "peaks": peaks,
            "alternatives": alts,
            "absent_reflections": [{"hkl": list(r.hkl), "q_inv_nm": r.q_nm, "predicted_weight": r.weight} for r in best.absent] if best else [],
            "unexplained_peaks_q_inv_nm": list(best.unexplained_q_nm) if best else [p["q_inv_nm"] for p in peaks],
            "notes": list(self.notes) + (list(self.indexing.notes) if self.indexing else []) + (list(best.notes) if best else []),
            "provenance": self.provenance,
        }
        return _clean_json(d)


def _clean_json(obj):
    if isinstance(obj, dict):
        return {str(k): _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean_json(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


def analyze_peaks(
    curve: Curve,
    lattice: str = "auto",
    edge_nm: float | None = None,
    instrument_fwhm_inv_nm: float = 0.0,
    calib_rel_err: float = 0.005,
    kind: str = "sq",
    threshold: float = 5.0,
    K: float = 1.0,
    width: str = "fwhm",
    shapes: tuple[str, ...] = SHAPES,
    qmin: float | None = None,
    qmax: float | None = None,
    polydispersity: float = 0.0,
) -> PeakAnalysis:
    """The peak stage in one call: find, fit (free and lattice-tied), index, size.

    Parameters
    ----------
    curve : S_eff(q) (``kind="sq"``) or I(q) (``kind="iq"``), q in nm^-1.
    lattice : "auto" or one of :data:`LATTICES` (forces the indexing).
    edge_nm : cube edge from the form-factor fit (nm); enables oriented-cube intensities,
        plausibility, ligand gap and packing fraction.
    instrument_fwhm_inv_nm : Gaussian instrumental FWHM (nm^-1), e.g. from
        :func:`instrument_fwhm_from_calibrant`.
    calib_rel_err : relative distance-calibration uncertainty (0.5%): a_err_calib = a x it.
    K, width : Scherrer constant and width convention ("fwhm" or "integral_breadth").
    polydispersity : relative edge spread for the predicted intensities.

    Returns
    -------
    PeakAnalysis; ``lattice`` None when nothing ordered is found.
    """
    if not (0 <= calib_rel_err < 1):
        raise ParameterError(f"calibration relative error {calib_rel_err!r}: must be in [0, 1)")
    if instrument_fwhm_inv_nm < 0 or not np.isfinite(instrument_fwhm_inv_nm):
        raise ParameterError(f"instrument FWHM {instrument_fwhm_inv_nm!r} nm^-1: must be >= 0")
    if K <= 0:
        raise ParameterError(f"Scherrer constant K = {K!r}: must be positive")
    if width not in ("fwhm", "integral_breadth"):
        raise ParameterError(f"width convention {width!r}: use 'fwhm' or 'integral_breadth'")
    cv = curve.select(qmin, qmax)
    name = curve.name or "curve"
    if qmin is not None or qmax is not None:
        if len(cv) < 20:
            raise InputError(f"{name}: only {len(cv)} points between qmin={qmin} and qmax={qmax} nm^-1; widen the range")
    cv = replace(cv, q_nm=cv.q_nm, intensity=cv.intensity)
    found = find_peaks(cv, threshold=threshold, flat_baseline=kind == "sq")
    notes: list[str] = []
    prov_rec = dict(
        lattice=lattice, edge_nm=edge_nm, instrument_fwhm_inv_nm=instrument_fwhm_inv_nm, calib_rel_err=calib_rel_err,
        kind=kind, threshold=threshold, K=K, width=width, qmin=qmin, qmax=qmax, polydispersity=polydispersity,
    )
    from .provenance import extend

    prov = extend(curve.provenance, "peaks", **prov_rec)
    empty = dict(
        curve=cv, found=found, lattice=None, a_nm=None, a_err_stat_nm=None, a_err_calib_nm=None, a_wls_nm=None,
        a_wls_err_nm=None, coherence=None, coherence_per_peak=(), sizedisorder=None,
        instrument_fwhm_inv_nm=instrument_fwhm_inv_nm, calib_rel_err=calib_rel_err, kind=kind, provenance=prov,
    )
    if found.q_nm.size == 0:
        notes.append(f"no peak above {threshold:g} sigma: nothing ordered")
        return PeakAnalysis(peakfit=None, indexing=None, latticefit=None, notes=tuple(notes), **empty)
    pf = fit_peaks(cv, found, shapes=shapes, threshold=threshold, instrument_fwhm_inv_nm=instrument_fwhm_inv_nm)
    qs = np.array([p.q_nm for p in pf.peaks])
    qe = np.array([p.q_err_nm for p in pf.peaks])
    ar = np.array([p.area for p in pf.peaks])
    ae = np.array([p.area_err for p in pf.peaks])
    fws = np.array([p.fwhm_inv_nm for p in pf.peaks])
    ix = index_peaks(qs, qe, ar, ae, fwhm=fws, lattices=lattice, edge_nm=edge_nm, kind=kind, q_range=(cv.q_nm[0], cv.q_nm[-1]), polydispersity=polydispersity)
    # Per-peak coherence lengths (free fit, instrument removed per the chosen shape).
    coh_pp = []
    for pk in pf.peaks:
        try:
            coh_pp.append(
                coherence_length(pk.fwhm_inv_nm, pk.fwhm_err_inv_nm, instrument_fwhm_inv_nm, pf.shape, K, width, pf.eta, pk.fwhm_g_inv_nm)
            )
        except (FitError, ParameterError):
            coh_pp.append(None)
    if ix.best is None:
        return PeakAnalysis(peakfit=pf, indexing=ix, latticefit=None, notes=tuple(notes), **{**empty, "coherence_per_peak": tuple(coh_pp)})
    best = ix.best
    peaks = tuple(replace(p, hkl=best.assignment[i]) for i, p in enumerate(pf.peaks))
    pf = replace(pf, peaks=peaks)
    # Size / disorder from the free widths of the indexed orders (one per ring).
    sd = None
    idxd = [i for i, h in enumerate(best.assignment) if h is not None]
    ws = [coh_pp[i].sample_width_inv_nm if coh_pp[i] else np.nan for i in idxd]
    we = [pf.peaks[i].fwhm_err_inv_nm for i in idxd]
    if len(idxd) >= 3:
        sd = size_disorder(qs[idxd], ws, we, best.a_nm, K)
    wmodel = "size"
    if sd is not None:
        wmodel = {"size": "size", "williamson_hall": "strain", "paracrystal": "paracrystal"}[sd.preferred]
    lf = None
    try:
        lf = fit_lattice(cv, ix, pf, instrument_fwhm_inv_nm, wmodel, found.baseline, found.sigma)
    except FitError as exc:
        notes.append(f"lattice-tied fit failed: {exc}")
    if lf is not None and np.isfinite(lf.a_err_nm) and abs(lf.a_nm - best.a_nm) < 0.02 * best.a_nm:
        a, a_stat = lf.a_nm, lf.a_err_nm
        wl0, wl0e = lf.w0_inv_nm, lf.w0_err_inv_nm
        L_src = "lattice-tied Voigt fit (Lorentzian FWHM extrapolated to q = 0)"
    else:
        a, a_stat = best.a_nm, best.a_err_nm
        lf = None
        first = idxd[0]
        wl0 = coh_pp[first].sample_width_inv_nm if coh_pp[first] else np.nan
        wl0e = pf.peaks[first].fwhm_err_inv_nm
        L_src = "free fit of the first indexed peak"
    coh = None
    if np.isfinite(wl0) and wl0 > 0:
        # The sample part is Lorentzian in the lattice fit: its FWHM or integral breadth.
        b = wl0 if width == "fwhm" else 0.5 * math.pi * wl0
        be = wl0e if width == "fwhm" else 0.5 * math.pi * wl0e
        L = 2 * math.pi * K / b
        coh = Coherence(L, L * be / b if np.isfinite(be) else float("nan"), b, K, width)
    notes.append(f"coherence length from the {L_src}; convention K={K:g}, {'FWHM' if width == 'fwhm' else 'integral breadth'}")
    return PeakAnalysis(
        curve=cv, found=found, peakfit=pf, indexing=ix, latticefit=lf, lattice=best.lattice, a_nm=float(a),
        a_err_stat_nm=float(a_stat), a_err_calib_nm=float(calib_rel_err * a), a_wls_nm=best.a_nm,
        a_wls_err_nm=best.a_err_nm, coherence=coh, coherence_per_peak=tuple(coh_pp), sizedisorder=sd,
        instrument_fwhm_inv_nm=instrument_fwhm_inv_nm, calib_rel_err=calib_rel_err, kind=kind,
        notes=tuple(notes), provenance=prov,
    )


# --------------------------------------------------------------------------- azimuthal
@dataclass(frozen=True)
class AzimuthalFit:
    """Multi-Gaussian fit of a chi profile: centres and FWHM (degrees), mean FWHM +/- spread."""

    centers_deg: np.ndarray
    fwhm_deg: np.ndarray
    fwhm_err_deg: np.ndarray
    amplitudes: np.ndarray
    mean_fwhm_deg: float
    spread_fwhm_deg: float
    n_peaks: int
    chi2_red: float
    chi_deg: np.ndarray
    model: np.ndarray


def fit_azimuthal_peaks(
    chi_deg, intensity, sigma=None, n_peaks: int | None = None, threshold: float = 5.0, period_deg: float = 360.0
) -> AzimuthalFit:
    """Fit the peaks of an azimuthal trace with Gaussians on a constant background.

    The profile is periodic (``period_deg``): each Gaussian is summed with its images at
    +/- one period, so peaks at the seam are whole. Peaks are found as in
    :func:`find_peaks` (or the ``n_peaks`` strongest are taken); the result is the mean
    FWHM +/- its spread (sample standard deviation over peaks), the paper's orientational
    order measure (9.6 +/- 1.4 degrees over 12 peaks).
    """
    import lmfit

    chi = np.asarray(chi_deg, float)
    y = np.asarray(intensity, float)
    if chi.ndim != 1 or chi.shape != y.shape or chi.size < 20:
        raise InputError(f"azimuthal trace: need chi and intensity as 1-D arrays of one length >= 20 (got {chi.shape}, {y.shape})")
    if not (np.all(np.isfinite(chi)) and np.all(np.isfinite(y))):
        raise InputError("azimuthal trace: chi or intensity has NaN or inf; clean the trace first")
    o = np.argsort(chi)
    chi, y = chi[o], y[o]
    s = np.zeros_like(y) if sigma is None else np.asarray(sigma, float)[o]
    dchi = (chi[-1] - chi[0]) / (chi.size - 1)
    wrap = chi[-1] - chi[0] > 0.9 * period_deg
    # Periodic trace: roll it so that the seam lies in the lowest valley; then no peak is cut.
    shift = int(np.argmin(np.convolve(y, np.ones(5) / 5, mode="same"))) if wrap else 0
    yr = np.roll(y, -shift)
    sr = np.roll(s, -shift)
    xr = np.arange(chi.size, dtype=float) * dchi + 1.0
    fp = find_peaks(Curve(xr, yr, sr, name="chi"), threshold=threshold, max_peaks=200, flat_baseline=True)
    c = chi[0] + ((fp.q_nm - 1.0) / dchi + shift) * dchi
    if wrap:
        c = (c - chi[0]) % period_deg + chi[0]
    h, w, z = fp.height, fp.fwhm_inv_nm, fp.significance
    sig = np.roll(fp.sigma, shift)
    bg0 = float(np.median(fp.baseline))
    if n_peaks is not None:
        o2 = np.argsort(-z)[:n_peaks]
        c, h, w = c[o2], h[o2], w[o2]
    if c.size == 0:
        raise FitError(f"azimuthal trace: no peak above {threshold:g} sigma")
    pars = lmfit.Parameters()
    pars.add("bg", value=bg0)
    for i in range(c.size):
        pars.add(f"c{i}", value=c[i], min=c[i] - 2 * max(w[i], dchi), max=c[i] + 2 * max(w[i], dchi))
        pars.add(f"h{i}", value=max(h[i], 1e-12), min=0.0)
        pars.add(f"w{i}", value=max(w[i], 2 * dchi), min=0.5 * dchi, max=0.5 * period_deg)
    isig = 1.0 / sig
    shifts = (-period_deg, 0.0, period_deg) if wrap else (0.0,)

    def model(v):
        m = np.full_like(chi, v["bg"])
        for i in range(c.size):
            sd = v[f"w{i}"] / _FG
            for sh in shifts:
                m += v[f"h{i}"] * np.exp(-0.5 * ((chi - v[f"c{i}"] - sh) / sd) ** 2)
        return m

    res = _minimize(lambda p: (model(p.valuesdict()) - y) * isig, pars, "azimuthal fit")
    redchi = res.chisqr / max(chi.size - res.nvarys, 1)
    fw = np.array([res.params[f"w{i}"].value for i in range(c.size)])
    fe = np.array([_stderr(res.params[f"w{i}"], redchi) for i in range(c.size)])
    cc = np.array([res.params[f"c{i}"].value for i in range(c.size)])
    hh = np.array([res.params[f"h{i}"].value for i in range(c.size)])
    o3 = np.argsort(cc)
    spread = float(np.std(fw, ddof=1)) if fw.size > 1 else 0.0
    return AzimuthalFit(cc[o3], fw[o3], fe[o3], hh[o3], float(np.mean(fw)), spread, int(c.size), float(redchi), chi, model(res.params.valuesdict()))
