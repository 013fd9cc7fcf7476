"""Coherence length (L = 2 pi K / sample width), size/disorder from several orders, and
the instrumental width from a calibrant."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..curve import Curve
from ..errors import FitError, InputError, ParameterError
from .fit import fit_peaks
from .index import weak_broad_component
from .profiles import SHAPES, integral_breadth, pvoigt_components, voigt_fwhm, voigt_lorentz_part

#: Silver behenate (001): d = 5.838 nm (SCIENCE.md section 1), q001 = 2 pi / d.
AGBH_D001_NM = 5.838
AGBH_Q001_INV_NM = 2.0 * math.pi / AGBH_D001_NM


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
            raise FitError(
                f"peak FWHM {fwhm_obs:.4g} nm^-1 is not wider than the instrument ({wi:.4g} nm^-1): the domain is larger than the resolution allows to measure"
            )
        w = math.sqrt(d)
        return w, w, 0.0
    if shape == "lorentz":
        w = fwhm_obs - wi
        if w <= 0:
            raise FitError(
                f"peak FWHM {fwhm_obs:.4g} nm^-1 is not wider than the instrument ({wi:.4g} nm^-1)"
            )
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
        raise FitError(
            f"peak FWHM {fwhm_obs:.4g} nm^-1 is not wider than the instrument ({wi:.4g} nm^-1)"
        )
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
    if np.unique(np.round(q, 9)).size < 3:
        return None
    # Size only (constant width): the weighted mean.
    wm = float(np.sum(w / e**2) / np.sum(1 / e**2))
    chi2_const = float(np.sum(((w - wm) / e) ** 2))
    out = {}
    for name, x in (("wh", q), ("pc", q * q)):
        A = np.vstack([np.ones_like(x), x]).T / e[:, None]
        b = w / e
        try:
            cov = np.linalg.inv(A.T @ A)
        except np.linalg.LinAlgError:
            return None  # the orders do not separate a slope (errors spanning decades)
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
    bic = {
        "size": chi2_const + ln_n,
        "williamson_hall": wh[4] + 2 * ln_n,
        "paracrystal": pc[4] + 2 * ln_n,
    }
    # Broadening only grows with q: a slope model needs a positive slope above 3 standard errors.
    for name, (slope, serr) in (
        ("williamson_hall", (wh[2], wh[3])),
        ("paracrystal", (pc[2], pc[3])),
    ):
        if not (slope > 3.0 * serr):
            bic[name] = float("inf")
    pref = min(bic, key=bic.get)
    return SizeDisorder(
        wh[0],
        wh[1],
        strain,
        strain_e,
        wh[4],
        pc[0],
        pc[1],
        g,
        ge,
        pc[4],
        pref,
        int(q.size),
        chi2_const,
    )


def instrument_fwhm_from_calibrant(
    curve: Curve, d_nm: float = AGBH_D001_NM, order: int = 1, window: float = 0.15
) -> float:
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
        raise InputError(
            f"calibrant {curve.name!r}: no peak found near {q0:.4f} nm^-1; check the file and the q unit"
        ) from None
    pk = min(pf.peaks, key=lambda p: abs(p.q_nm - q0) - 1e-6 * p.area)
    if abs(pk.q_nm - q0) > 0.03 * q0:
        raise InputError(
            f"calibrant {curve.name!r}: strongest peak at {pk.q_nm:.4f} nm^-1, not at {q0:.4f} nm^-1: "
            "the distance calibration is off by more than 3%; recalibrate first"
        )
    return float(pk.fwhm_inv_nm)


#: Two lines closer than this many FWHM are blended: neither free width is its own.
BLEND_FWHM = 1.5


def resolved_peak(i: int, pf, best, max_bragg_fwhm_frac: float = 0.15) -> bool:
    """Peak ``i`` stands alone: no other fitted peak and no other allowed ring of the
    indexing ``best`` (its predicted lines) within :data:`BLEND_FWHM` x its FWHM."""
    pk = pf.peaks[i]
    w = BLEND_FWHM * pk.fwhm_inv_nm
    for j, other in enumerate(pf.peaks):
        if j == i or other.fwhm_inv_nm > max_bragg_fwhm_frac * other.q_nm:
            continue  # a broad feature (form factor, liquid order) is background, not a neighbour
        if weak_broad_component(other.area, other.fwhm_inv_nm, pk.area, pk.fwhm_inv_nm):
            continue  # a weak broad component is the line's own foot or tail (index.tail_components)
        if abs(other.q_nm - pk.q_nm) < BLEND_FWHM * 0.5 * (pk.fwhm_inv_nm + other.fwhm_inv_nm):
            return False
    s_i = best.s_assigned[i]
    q_i = 2 * math.pi * math.sqrt(s_i) / best.a_nm if s_i else pk.q_nm
    for r in best.predicted:
        if abs(r.s - s_i) > 1e-9 and abs(r.q_nm - q_i) < w:
            return False
    return True


#: A free width is measured only when it spans at least this many q steps of the data
#: (narrower, it is below the sampling: any smaller width would fit as well) ...
MIN_FWHM_STEPS = 2.0
#: ... and stands at least this many standard errors above zero.
MIN_WIDTH_SIGNIFICANCE = 2.0


def width_measured(pk, q_nm) -> bool:
    """The free FWHM of peak ``pk`` is a measurement: at least :data:`MIN_FWHM_STEPS` data
    steps of ``q_nm`` (the curve's q) at its position, and :data:`MIN_WIDTH_SIGNIFICANCE`
    standard errors from zero. A noise blip fitted narrower than the sampling would give
    any coherence length at all (a real A15 curve gave 17 um from one)."""
    q = np.asarray(q_nm, float)
    if q.size < 2:
        return False
    step = float(np.interp(pk.q_nm, q[1:], np.abs(np.diff(q))))
    err = pk.fwhm_err_inv_nm
    return bool(
        pk.fwhm_inv_nm >= MIN_FWHM_STEPS * step
        and err is not None
        and np.isfinite(err)
        and MIN_WIDTH_SIGNIFICANCE * err < pk.fwhm_inv_nm
    )


def lattice_fit_coherence(
    lf, inst: float, K: float, width: str, q_nm: float = 0.0
) -> Coherence | None:
    """L from the lattice-tied width model at ``q_nm`` (0: extrapolated to q = 0)."""
    w = lf.lorentz_fwhm_at(q_nm)
    try:
        if lf.shape == "voigt":
            b = w if width == "fwhm" else 0.5 * math.pi * w  # the Lorentzian (sample) part
            L = 2 * math.pi * K / b
            return Coherence(L, L * lf.w0_err_inv_nm / w if w > 0 else float("nan"), b, K, width)
        return coherence_length(w, lf.w0_err_inv_nm, inst, lf.shape, K, width, lf.eta)
    except (FitError, ParameterError, ZeroDivisionError):
        return None
