"""Lattice-tied global fit: ring centres 2 pi sqrt(s)/a from one a, widths from a size/
disorder model, one area per ring."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..curve import Curve
from ..errors import FitError, ParameterError
from .coherence import sample_width
from .find import find_peaks, poly_coordinate
from .fit import PeakFit, minimize_known_errors, scaled_stderr
from .index import Indexing
from .predict import Reflection, reflections
from .profiles import profile_derivatives


@dataclass(frozen=True)
class LatticeFit:
    """Lattice-tied global fit: centres 2 pi sqrt(s)/a, Voigt widths from the size model.

    Lorentzian FWHM w_L(q) = w0 + w1 q (``width_model="strain"``), w0 + w2 q^2
    (``"paracrystal"``) or w0 (``"size"``); Gaussian FWHM fixed to the instrument. With
    another ``shape`` (the free fit's choice: gauss, lorentz, pvoigt at its eta) the width
    model is the observed FWHM of that shape, instrument included.
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
    shape: str = "voigt"
    eta: float | None = None

    def lorentz_fwhm_at(self, q_nm: float) -> float:
        """The width model's FWHM (nm^-1) at ``q_nm``: w0 + slope x :func:`width_multiplier`."""
        return float(self.w0_inv_nm + self.slope * width_multiplier(self.width_model, q_nm))


def width_multiplier(kind: str, q):
    """What the width slope multiplies at ring position ``q`` (nm^-1): q for "strain",
    q^2 for "paracrystal", 0 for "size" (the one definition the fit and its readers share)."""
    q = np.asarray(q, float)
    return q if kind == "strain" else q * q if kind == "paracrystal" else np.zeros_like(q)


def _lattice_eval(
    q, t, base, a, w0, slope, kind, wg, ks, areas, b, want_jac=False, shape=None, eta=0.5
):
    """Lattice-tied model and (optionally) its derivatives by name."""
    c = (ks / a)[:, None]
    mult = width_multiplier(kind, c)
    wl = np.maximum(w0 + slope * mult, 1e-9)
    if shape is None or shape == "voigt":
        shape = "voigt" if wg > 0 else "lorentz"
    f, dfc, dfw, _ = profile_derivatives(q[None, :] - c, shape, wl, eta=eta, wg=wg)
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


def _lattice_model(q, t, base, u, w0, slope, kind, wg, ks, areas, b, shape=None, eta=0.5):
    return _lattice_eval(
        q, t, base, 1.0 / u, w0, slope, kind, wg, ks, areas, b, shape=shape, eta=eta
    )[0]


def lattice_parameters(shells, a0, w0, slope, areas, width_model, b=(1.0, 0.0, 0.0)):
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


def lattice_residual(
    q,
    y,
    sig,
    base,
    shells,
    width_model,
    instrument_fwhm,
    analytic_jac: bool = True,
    shape: str = "voigt",
    eta: float = 0.5,
    groups: np.ndarray | None = None,
):
    """Residual (params -> (model - y)/sigma) and analytic Jacobian of the lattice-tied model.

    With ``analytic_jac`` False the residual computes the model alone (for a fit with
    finite-difference derivatives, which never asks for the Jacobian)."""
    t = poly_coordinate(q)
    ks = np.array([2.0 * math.pi * math.sqrt(r.s) for r in shells])
    isig = 1.0 / sig
    wg = float(instrument_fwhm)
    # groups[k, g]: share of group g's area carried by shell k (rings closer than the
    # resolution share one free area); the identity when every ring is its own.
    G = np.eye(len(shells)) if groups is None else np.asarray(groups, float)
    n = G.shape[1]

    last: dict[str, Any] = {}

    def _call(p):
        # Model and derivatives together, kept for the Jacobian MINPACK asks for next at
        # the same point (one profile evaluation, with its Faddeeva function, per step).
        v = p.valuesdict()
        key = tuple(v.values())
        if last.get("key") != key:
            areas = G @ np.array([v[f"A{i}"] for i in range(n)])
            last["key"] = key
            last["mc"] = _lattice_eval(
                q,
                t,
                base,
                v["a"],
                v["w0"],
                v["slope"],
                width_model,
                wg,
                ks,
                areas,
                (v["b0"], v["b1"], v["b2"]),
                analytic_jac,
                shape,
                eta,
            )
        return last["mc"]

    def cols_of(p):
        cols = _call(p)[1]
        if groups is not None:
            f = np.array([cols[f"A{k}"] for k in range(G.shape[0])])
            cols = {k: c for k, c in cols.items() if not k.startswith("A")}
            for g in range(n):
                cols[f"A{g}"] = G[:, g] @ f
        return cols

    def resid(p):
        return (_call(p)[0] - y) * isig

    def jac(p):
        cols = cols_of(p)
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
    shape: str = "voigt",
    eta: float | None = None,
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
        r
        for r in reflections(best.lattice, best.a_nm, q[-1] * 1.01)
        if r.q_nm >= q[0] * 0.99 or any(abs(r.s - s) < 1e-9 for s in s_obs)
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
        if pk and shape != "voigt":
            wl0.append(pk.fwhm_inv_nm)
        elif pk:
            try:
                wl0.append(
                    sample_width(
                        pk.fwhm_inv_nm,
                        instrument_fwhm_inv_nm,
                        "voigt",
                        fwhm_g=instrument_fwhm_inv_nm,
                    )[2]
                )
            except FitError:
                wl0.append(pk.fwhm_inv_nm)
    w0 = float(np.median(wl0)) if wl0 else 0.01 * q[-1]
    # Bounded cost: the fit covers the indexed peaks (plus a few widths either side) and at
    # most MAX_GROUPS resolution groups; rings closer than GROUP_FWHM x the width share
    # one area (split by their predicted weights), which the data could not tell apart.
    wmax = float(np.max(wl0)) if wl0 else w0
    q_idx = [2.0 * math.pi * math.sqrt(s_) / best.a_nm for s_ in s_obs]
    lo = min(q_idx) - 4 * wmax if q_idx else q[0]
    hi = max(q_idx) + 4 * wmax if q_idx else q[-1]
    keep = [k for k, r in enumerate(shells) if lo - 3 * wmax <= r.q_nm <= hi + 3 * wmax]
    grp: list[list[int]] = []
    for k in keep:
        if grp and shells[k].q_nm - shells[grp[-1][-1]].q_nm < GROUP_FWHM * w0:
            grp[-1].append(k)
        else:
            grp.append([k])
    if len(grp) > MAX_GROUPS:
        grp = grp[:MAX_GROUPS]
        hi = min(hi, shells[grp[-1][-1]].q_nm + 2 * wmax)
    sel = (q >= lo) & (q <= hi)
    if np.count_nonzero(sel) < 10:
        sel = np.ones_like(q, bool)
    kept_idx = [k for g in grp for k in g]
    G = np.zeros((len(kept_idx), len(grp)))
    row = 0
    for gi, g in enumerate(grp):
        wts = np.array([max(shells[k].weight, 0.0) for k in g])
        wts = wts / wts.sum() if wts.sum() > 0 else np.full(len(g), 1.0 / len(g))
        for wk in wts:
            G[row, gi] = wk
            row += 1
    areas0 = [sum(areas0[k] for k in g) for g in grp]
    shells = tuple(shells[k] for k in kept_idx)
    q, y = q[sel], y[sel]
    baseline, sigma = np.asarray(baseline)[sel], np.asarray(sigma)[sel]
    pf_base = None if peakfit is None else np.asarray(peakfit.baseline)[sel]
    # A ring without a free-fit peak starts from the data's excess at its centre, never at
    # its bound 0: lmfit's bound transform has zero slope there, so an area started at 0
    # stays 0 whatever the data say.
    excess = np.interp([r.q_nm for r in shells], q, y - baseline)
    floor_area = 1e-3 * max([abs(A) for A in areas0] + [float(np.max(np.abs(y - baseline))) * w0])
    areas0 = [A if A > 0 else max(float(e) * w0, floor_area) for A, e in zip(areas0, excess)]
    b0 = (1.0, 0.0, 0.0)
    if pf_base is not None:
        # Same baseline representation: recover b from the free fit's baseline ratio.
        t = poly_coordinate(q)
        ratio = pf_base / baseline
        b0 = tuple(np.polyfit(t, ratio, 2)[::-1])
    pars = lattice_parameters(shells, best.a_nm, w0, 0.0, areas0, width_model, b0)
    eta = 0.5 if eta is None else float(eta)
    resid, jac = lattice_residual(
        q,
        y,
        sigma,
        baseline,
        shells,
        width_model,
        instrument_fwhm_inv_nm,
        shape=shape,
        eta=eta,
        groups=G,
    )
    res = minimize_known_errors(resid, pars, "lattice-tied fit", jac)
    return _lattice_result(
        res, best.lattice, shells, width_model, instrument_fwhm_inv_nm, q, baseline, shape, eta, G
    )


#: Rings closer than this many widths share one free area in the lattice-tied fit.
GROUP_FWHM = 0.15
#: At most this many free ring areas in the lattice-tied fit (the lowest in q).
MAX_GROUPS = 30


def _lattice_result(
    res, lattice, shells, width_model, instrument_fwhm, q, baseline, shape="voigt", eta=0.5, G=None
) -> LatticeFit:
    n = q.size
    redchi = res.chisqr / max(n - res.nvarys, 1)
    v = res.params
    ks = np.array([2.0 * math.pi * math.sqrt(r.s) for r in shells])
    G = np.eye(len(shells)) if G is None else G
    ga = np.array([v[f"A{i}"].value for i in range(G.shape[1])])
    ge = np.array([scaled_stderr(v[f"A{i}"], redchi) for i in range(G.shape[1])])
    areas = G @ ga
    aerr = np.abs(G) @ ge
    t = poly_coordinate(q)
    b = (v["b0"].value, v["b1"].value, v["b2"].value)
    model = _lattice_model(
        q,
        t,
        baseline,
        1.0 / v["a"].value,
        v["w0"].value,
        v["slope"].value,
        width_model,
        instrument_fwhm,
        ks,
        areas,
        b,
        shape,
        eta,
    )
    a = v["a"].value
    shells_out = tuple(replace(r, q_nm=2.0 * math.pi * math.sqrt(r.s) / a) for r in shells)
    return LatticeFit(
        lattice=lattice,
        a_nm=float(a),
        a_err_nm=scaled_stderr(v["a"], redchi),
        w0_inv_nm=float(v["w0"].value),
        w0_err_inv_nm=scaled_stderr(v["w0"], redchi),
        slope=float(v["slope"].value),
        slope_err=scaled_stderr(v["slope"], redchi) if v["slope"].vary else 0.0,
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
        shape=shape,
        eta=eta if shape == "pvoigt" else None,
    )
