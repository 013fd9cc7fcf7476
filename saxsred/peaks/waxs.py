"""WAXS of perovskite nanocrystals: pseudo-cubic indexing and Scherrer size.

The atomic reflections of a lead-halide perovskite index on a pseudo-cubic cell,
q_hkl = 2 pi sqrt(N) / a with N = h^2 + k^2 + l^2 (never 7, 15, 23, ...: not sums of three
squares), a = 0.5874 nm for CsPbBr3 (SCIENCE.md section 6; the orthorhombic Pnma cell
splits the lines slightly) and about 0.627 nm for MAPbI3. Lines of other phases (PbI2,
the FTO/SnO2 substrate) are left unexplained and listed.

Peaks are found over a rolling-minimum baseline and fitted with lmfit pseudo-Voigts on a
line (overlapping peaks together, one prefix each). The nanocrystal size follows from
each indexed peak's width by Scherrer, L = 2 pi K / dq, with the instrument's Gaussian
FWHM removed in quadrature and K = 0.886 (FWHM of a cube along <100>) unless told.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..curve import Curve, require_q_nm
from ..errors import FitError, ParameterError

K_CUBE_FWHM = 0.886
# Pseudo-cubic N = h^2 + k^2 + l^2 reachable by integers (Legendre: not 4^a (8b + 7)).
_ALLOWED_N = [
    n for n in range(1, 60) if not any(n == 4**a * (8 * b + 7) for a in range(4) for b in range(8))
]


def _hkl(n: int) -> list[int]:
    """The (h, k, l), h >= k >= l >= 0, with h^2 + k^2 + l^2 = n (first found)."""
    r = int(np.sqrt(n)) + 1
    for h in range(r, -1, -1):
        for k in range(h, -1, -1):
            for l in range(k, -1, -1):  # noqa: E741 (Miller index)
                if h * h + k * k + l * l == n:
                    return [h, k, l]
    raise ValueError(n)


@dataclass(frozen=True)
class WaxsPeak:
    """A fitted WAXS peak: position, FWHM (nm^-1), height; its index and Scherrer size if indexed."""

    q_inv_nm: float
    q_err_inv_nm: float
    fwhm_inv_nm: float
    fwhm_err_inv_nm: float
    height: float
    eta: float
    hkl: list[int] | None = None
    size_nm: float | None = None
    size_err_nm: float | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "q_inv_nm": self.q_inv_nm,
            "q_err_inv_nm": self.q_err_inv_nm,
            "fwhm_inv_nm": self.fwhm_inv_nm,
            "fwhm_err_inv_nm": self.fwhm_err_inv_nm,
            "height": self.height,
            "eta": self.eta,
            "hkl": self.hkl,
            "size_nm": self.size_nm,
            "size_err_nm": self.size_err_nm,
        }


@dataclass(frozen=True)
class WaxsAnalysis:
    """Pseudo-cubic indexing and Scherrer size of a WAXS curve."""

    a_nm: float
    a_err_nm: float
    indexed: tuple[WaxsPeak, ...]
    unexplained: tuple[WaxsPeak, ...]
    size_nm: float | None
    size_err_nm: float | None
    K: float
    instrument_fwhm_inv_nm: float
    edge_nm: float | None = None
    notes: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def size_over_edge(self) -> float | None:
        return self.size_nm / self.edge_nm if (self.size_nm and self.edge_nm) else None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "a_nm": self.a_nm,
            "a_err_nm": self.a_err_nm,
            "cell": "pseudo-cubic",
            "peaks": [p.to_json_dict() for p in self.indexed],
            "unexplained_peaks": [p.to_json_dict() for p in self.unexplained],
            "size_nm": self.size_nm,
            "size_err_nm": self.size_err_nm,
            "scherrer_K": self.K,
            "width_convention": "FWHM, instrument removed in quadrature (Gaussian)",
            "instrument_fwhm_inv_nm": self.instrument_fwhm_inv_nm,
            "saxs_edge_nm": self.edge_nm,
            "size_over_saxs_edge": self.size_over_edge,
            "notes": list(self.notes),
        }


def _baseline(q: np.ndarray, y: np.ndarray, window: int) -> np.ndarray:
    """Rolling minimum, then a rolling mean: a smooth floor under the peaks."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    return uniform_filter1d(minimum_filter1d(y, window, mode="nearest"), window, mode="nearest")


def find_waxs_peaks(
    curve: Curve,
    threshold: float = 5.0,
    max_fwhm_inv_nm: float = 2.0,
    qmin: float | None = None,
    qmax: float | None = None,
) -> list[WaxsPeak]:
    """Find and fit the peaks of a WAXS curve (q in nm^-1).

    Candidates are local maxima whose prominence over a rolling-minimum baseline exceeds
    ``threshold`` times the local error; each group of overlapping candidates is fitted
    with lmfit pseudo-Voigts (one prefix per peak) on a line.
    """
    from lmfit.models import LinearModel, PseudoVoigtModel
    from scipy.signal import find_peaks, peak_widths

    curve = require_q_nm(curve, f"WAXS peaks of {curve.name or 'curve'!r}")
    q, y, s = curve.q_nm, curve.intensity, curve.sigma
    sel = np.isfinite(q) & np.isfinite(y)
    if qmin is not None:
        sel &= q >= qmin
    if qmax is not None:
        sel &= q <= qmax
    q, y, s = q[sel], y[sel], s[sel]
    if q.size < 20:
        raise FitError(f"{curve.name}: fewer than 20 points in the q range; widen --qmin/--qmax")
    s = np.where(np.isfinite(s) & (s > 0), s, np.sqrt(np.maximum(np.abs(y), 1.0)))
    dq = float(np.median(np.diff(q)))
    window = max(5, int(2.5 * max_fwhm_inv_nm / dq))
    base = _baseline(q, y, window)
    pk, props = find_peaks(y - base, prominence=threshold * np.median(s), width=1)
    pk = [p for p, pr in zip(pk, props["prominences"], strict=True) if pr > threshold * s[p]]
    if not pk:
        return []
    w = peak_widths(y - base, pk, rel_height=0.5)[0] * dq
    w = np.clip(w, 2 * dq, max_fwhm_inv_nm)
    # groups: peaks whose +/- 3 FWHM windows overlap are fitted together
    groups: list[list[int]] = []
    for j in range(len(pk)):
        if groups and q[pk[j]] - 3 * w[j] < q[pk[groups[-1][-1]]] + 3 * w[groups[-1][-1]]:
            groups[-1].append(j)
        else:
            groups.append([j])
    out: list[WaxsPeak] = []
    for g in groups:
        lo = q[pk[g[0]]] - 3 * w[g[0]]
        hi = q[pk[g[-1]]] + 3 * w[g[-1]]
        m = (q >= lo) & (q <= hi)
        if m.sum() < 3 * len(g) + 3:
            continue
        model = LinearModel(prefix="b_")
        for n in range(len(g)):
            model = model + PseudoVoigtModel(prefix=f"p{n}_")
        pars = model.make_params()
        pars["b_slope"].set(value=0.0)
        pars["b_intercept"].set(value=float(np.interp(q[pk[g[0]]], q, base)))
        for n, j in enumerate(g):
            c, sg = q[pk[j]], w[j] / 2.0
            height = float(y[pk[j]] - base[pk[j]])
            pars[f"p{n}_center"].set(value=c, min=c - w[j], max=c + w[j])
            pars[f"p{n}_sigma"].set(value=sg, min=dq / 4, max=max_fwhm_inv_nm)
            pars[f"p{n}_fraction"].set(value=0.5, min=0.0, max=1.0)
            # pseudo-Voigt peak height = amplitude / sigma * (eta / pi + (1 - eta) / sqrt(2 pi)) (lmfit's form)
            pars[f"p{n}_amplitude"].set(
                value=height * sg / (0.5 / np.pi + 0.5 / np.sqrt(2 * np.pi)), min=0
            )
        fit = model.fit(
            y[m], pars, x=q[m], weights=1.0 / s[m], method="least_squares"
        )  # trf: bounds natively
        for n in range(len(g)):
            p = fit.params
            out.append(
                WaxsPeak(
                    q_inv_nm=float(p[f"p{n}_center"].value),
                    q_err_inv_nm=float(p[f"p{n}_center"].stderr or np.nan),
                    fwhm_inv_nm=float(p[f"p{n}_fwhm"].value),
                    fwhm_err_inv_nm=float(p[f"p{n}_fwhm"].stderr or np.nan),
                    height=float(p[f"p{n}_height"].value),
                    eta=float(p[f"p{n}_fraction"].value),
                )
            )
    return sorted(out, key=lambda pk_: pk_.q_inv_nm)


def index_pseudocubic(
    q_peaks: np.ndarray,
    a_range: tuple[float, float] = (0.55, 0.70),
    tol_rel: float = 0.006,
    weights: np.ndarray | None = None,
) -> tuple[float, list[int | None]]:
    """Pseudo-cubic a (nm) that indexes the most peak weight, and each peak's N (None: unexplained).

    Scans a over ``a_range`` (0.02 % steps); a peak is explained when it lies within
    ``tol_rel`` of an allowed line. Ties go to the candidate with the smaller summed misfit.
    """
    q = np.asarray(q_peaks, dtype=np.float64)
    wts = np.ones_like(q) if weights is None else np.asarray(weights, dtype=np.float64)
    ns = np.array(_ALLOWED_N, dtype=np.float64)
    best = (-1.0, np.inf, a_range[0])
    for a in np.exp(np.arange(np.log(a_range[0]), np.log(a_range[1]), 2e-4)):
        qn = 2 * np.pi * np.sqrt(ns) / a
        rel = np.min(np.abs(q[:, None] / qn[None, :] - 1.0), axis=1)
        ok = rel < tol_rel
        score = float(np.sum(wts[ok]))
        mis = float(np.sum(rel[ok] ** 2))
        if score > best[0] + 1e-12 or (abs(score - best[0]) <= 1e-12 and mis < best[1]):
            best = (score, mis, float(a))
    a = best[2]
    qn = 2 * np.pi * np.sqrt(ns) / a
    out: list[int | None] = []
    for qi in q:
        k = int(np.argmin(np.abs(qi / qn - 1.0)))
        out.append(int(ns[k]) if abs(qi / qn[k] - 1.0) < tol_rel else None)
    return a, out


def analyze_waxs(
    curve: Curve,
    a_range: tuple[float, float] = (0.55, 0.70),
    K: float = K_CUBE_FWHM,
    instrument_fwhm_inv_nm: float = 0.0,
    edge_nm: float | None = None,
    threshold: float = 5.0,
    tol_rel: float = 0.006,
    qmin: float | None = None,
    qmax: float | None = None,
) -> WaxsAnalysis:
    """Index a WAXS curve on a pseudo-cubic perovskite cell and size the nanocrystals (Scherrer).

    Parameters
    ----------
    curve : WAXS I(q), q in nm^-1.
    a_range : pseudo-cubic lattice constants searched (nm).
    K : Scherrer constant for the FWHM (0.886: cube along <100>; 0.9 by convention).
    instrument_fwhm_inv_nm : Gaussian instrumental FWHM, removed in quadrature.
    edge_nm : the SAXS cube edge, to compare the Scherrer size with.
    """
    if not (K > 0):
        raise ParameterError(f"Scherrer K = {K}: must be positive")
    if not (instrument_fwhm_inv_nm >= 0):
        raise ParameterError(f"instrument FWHM {instrument_fwhm_inv_nm}: must be >= 0 nm^-1")
    peaks = find_waxs_peaks(curve, threshold=threshold, qmin=qmin, qmax=qmax)
    if len(peaks) < 2:
        raise FitError(
            f"{curve.name}: fewer than two WAXS peaks found; check the q range and the unit"
        )
    q = np.array([p.q_inv_nm for p in peaks])
    # every line counts the same: one strong substrate line must not pick the cell
    a0, ns = index_pseudocubic(q, a_range, tol_rel)
    idx = [i for i, n in enumerate(ns) if n is not None]
    if len(idx) < 2:
        raise FitError(
            f"{curve.name}: fewer than two peaks index on a pseudo-cubic cell with a in "
            f"{a_range[0]}-{a_range[1]} nm; not a perovskite pattern (or the q unit is wrong)"
        )
    # weighted least squares through the origin: q_i = (2 pi sqrt N_i) x, x = 1/a
    x = np.array([2 * np.pi * np.sqrt(ns[i]) for i in idx])
    qi = q[idx]
    err = np.array([peaks[i].q_err_inv_nm for i in idx])
    err = np.where(
        np.isfinite(err) & (err > 0),
        err,
        np.nanmedian(np.where(err > 0, err, np.nan)) if np.any(err > 0) else 1e-3 * qi,
    )
    w = 1.0 / err**2
    inv_a = float(np.sum(w * x * qi) / np.sum(w * x * x))
    chi2 = float(np.sum(w * (qi - inv_a * x) ** 2)) / max(len(idx) - 1, 1)
    inv_a_err = float(np.sqrt(max(chi2, 1.0) / np.sum(w * x * x)))
    a = 1.0 / inv_a
    a_err = inv_a_err / inv_a**2
    indexed, unexplained, sizes, size_errs = [], [], [], []
    notes = [
        f"a searched over {a_range[0]}-{a_range[1]} nm, lines within {tol_rel:.1%} of q_hkl indexed (a0 = {a0:.4f} nm)"
    ]
    for i, p in enumerate(peaks):
        if ns[i] is None:
            unexplained.append(p)
            continue
        w_s2 = p.fwhm_inv_nm**2 - instrument_fwhm_inv_nm**2
        size = size_err = None
        if w_s2 > 0:
            ws = float(np.sqrt(w_s2))
            size = 2 * np.pi * K / ws
            if np.isfinite(p.fwhm_err_inv_nm):
                size_err = size * (p.fwhm_inv_nm / ws) * p.fwhm_err_inv_nm / ws
        else:
            notes.append(
                f"peak at {p.q_inv_nm:.3f} nm^-1 is not wider than the instrument: no size"
            )
        indexed.append(
            WaxsPeak(
                p.q_inv_nm,
                p.q_err_inv_nm,
                p.fwhm_inv_nm,
                p.fwhm_err_inv_nm,
                p.height,
                p.eta,
                _hkl(int(ns[i])),
                size,
                size_err,
            )
        )
        if size is not None and size_err is not None and size_err < 0.3 * size:
            sizes.append(size)
            size_errs.append(size_err)
    size_nm = size_err_nm = None
    if sizes:
        sw = 1.0 / np.square(size_errs)
        size_nm = float(np.sum(sw * np.array(sizes)) / np.sum(sw))
        # the spread between reflections (shape, strain) usually exceeds the fit errors
        size_err_nm = float(
            max(
                np.sqrt(1.0 / np.sum(sw)),
                np.std(sizes) / np.sqrt(len(sizes)) if len(sizes) > 1 else 0,
            )
        )
    for p in unexplained:
        notes.append(
            f"unexplained line at q = {p.q_inv_nm:.3f} nm^-1 ({p.q_inv_nm / 10:.3f} A^-1): another phase "
            "(e.g. PbI2, substrate)"
        )
    if instrument_fwhm_inv_nm == 0 and size_nm:
        notes.append(
            "no instrument width removed: the sizes are lower bounds (give the calibrant's width)"
        )
    if edge_nm and size_nm:
        notes.append(
            f"Scherrer size {size_nm:.2f} nm is {size_nm / edge_nm:.2f} x the SAXS cube edge {edge_nm:.2f} nm"
        )
    return WaxsAnalysis(
        a,
        a_err,
        tuple(indexed),
        tuple(unexplained),
        size_nm,
        size_err_nm,
        K,
        float(instrument_fwhm_inv_nm),
        edge_nm,
        tuple(notes),
    )
