"""Scoring one indexing hypothesis (a lattice and its parameter) against the peaks.

Positions first: a hypothesis explains a peak when a ring lies within the position
tolerance; unexplained peaks, blends of the lattice's own rings, rings the data would have
shown but do not (absent: predicted area / :data:`MODEL_UNCERTAINTY` above the detection
limit, not hidden under an observed feature), intensities within their stated model
uncertainty, and Occam's simplicity make up the cost. :func:`evaluate` returns a
:class:`Candidate`; :mod:`.index` ranks them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import lattice as _lat
from .predict import (
    CUBIC,
    LATTICES,
    Reflection,
    aligned_allowed,
    nn_distance,
    packing_fraction,
    reflection_arrays,
)

#: Factor by which a predicted intensity may be off either way (stated in every result).
MODEL_UNCERTAINTY = 10.0
#: A lattice explaining fewer than 75% of the peaks is still assigned when its peaks carry
#: this share of the total peak area (the rest are weak features, listed in a note).
MIN_AREA_SHARE = 0.9
#: In the ranking, this many absent rings weigh as much as one unexplained peak.
ABSENT_PER_UNEXPLAINED = 2.0
#: Lattices tried by ``lattices="auto"``.
AUTO_LATTICES = _lat.LATTICES
#: A feature broader than this fraction of its q (order over fewer than ~7 periods) is no
#: Bragg peak of a lattice (form-factor oscillations, liquid-like order): not indexed.
MAX_BRAGG_FWHM_FRAC = 0.15


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
    nn_distance_nm: float | None
    ligand_gap_nm: float | None
    packing_fraction: float | None
    plausible: bool
    notes: tuple[str, ...] = ()
    n_unexplained: float = 0.0
    n_absent_below: int = 0
    n_blends: int = 0
    unexplained_weight: float = 0.0

    @property
    def space_group(self) -> str:
        return _lat.space_group(self.lattice)


def wls_a(qo, qerr, s):
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


def match_many(qo, qp, tol):
    """Nearest ring ``j`` of each peak (the first on ties) for every row of ``qp`` (rings
    as q, +inf where a row has none), relative offsets ``d`` and which peaks it explains:
    within ``tol``, one peak per ring (the nearest wins; the first on ties)."""
    diff = np.abs(qo[None, :, None] - qp[:, None, :])
    j = np.argmin(diff, axis=2)
    qsel = np.take_along_axis(qp, j, axis=1)
    d = (qo[None, :] - qsel) / qo[None, :]
    ad = np.abs(d)
    ok = ad < tol[None, :]
    n = qo.size
    if n > 1:
        same = (j[:, :, None] == j[:, None, :]) & ok[:, None, :] & ok[:, :, None]
        idx = np.arange(n)
        better = (ad[:, None, :] < ad[:, :, None]) | (
            (ad[:, None, :] == ad[:, :, None]) & (idx[None, None, :] < idx[None, :, None])
        )
        ok &= ~(same & better).any(axis=2)
    return j, d, ok


def match_rings(qo: np.ndarray, qp: np.ndarray, tol: np.ndarray):
    """:func:`match_many` for one set of rings ``qp``: (j, d, ok) of each peak."""
    j, d, ok = match_many(qo, np.asarray(qp, float)[None, :], tol)
    return j[0], d[0], ok[0]


def s_needed(q_hi, rel_tol, a):
    return (q_hi * (1 + 2 * rel_tol) * a / (2.0 * math.pi)) ** 2


def blend_peaks(qo, qp, ok, fwhm):
    """Unexplained peaks with rings inside their half width (a blend of overlapping rings
    the free fit merged) and the rings they cover."""
    if fwhm is None or ok.all():
        return np.zeros(qo.size, bool), set()
    inside = (np.abs(qp[None, :] - qo[:, None]) < 0.5 * fwhm[:, None]) & ~ok[:, None]
    return inside.any(axis=1), set(np.nonzero(inside.any(axis=0))[0].tolist())


def end_margin(fwhm) -> float:
    return float(np.median(fwhm)) if fwhm is not None and np.size(fwhm) else 0.0


def in_range_mask(qp, q_lo, q_hi, rel_tol, fwhm, margin=None):
    # A ring closer than one peak width to either end of the data cannot be seen whole:
    # it is neither evidence for nor against the lattice.
    if margin is None:
        margin = end_margin(fwhm)
    return (qp >= q_lo * (1 - rel_tol) + margin) & (qp <= q_hi * (1 + rel_tol) - margin)


#: Occam's weight per predicted visible ring in range (de Wolff: fewer rings, simpler cell).
SIMPLICITY = 0.02


def simplicity_cost(lattice, in_range, bsum):
    """SIMPLICITY per visible ring in range, plus the lattice's order; a float, or one per
    row of a 2-D ``in_range``."""
    cost = SIMPLICITY * np.count_nonzero(in_range & (bsum > 0), axis=-1) + 0.001 * LATTICES.index(
        lattice
    )
    return float(cost) if np.ndim(cost) == 0 else cost


def median(x) -> float:
    """np.median of a small array (the same value) without its overhead."""
    v = np.sort(np.ravel(x))
    n = v.size
    if n == 0:
        return float("nan")
    return float(v[n // 2]) if n % 2 else 0.5 * (float(v[n // 2 - 1]) + float(v[n // 2]))


def line_fit(x, y) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through (x, y): np.polyfit(x, y, 1) in
    closed form (the indexer calls it for every hypothesis; polyfit's overhead dominated)."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    xm = float(x.mean())
    ym = float(y.mean())
    dx = x - xm
    sxx = float(np.dot(dx, dx))
    slope = float(np.dot(dx, y - ym)) / sxx if sxx > 0 else 0.0
    return slope, ym - slope * xm


def width_law(q_obs, fwhm_obs) -> tuple[float, float, float] | None:
    """(p, c, floor) of the FWHM expected from the explained peaks' widths:
    FWHM = max(exp(c) q^p, floor), p within [0, 2] (size: 0; strain: 1; paracrystal: 2) fitted
    to them, floor the narrowest; p = 0 and their median where they span too little q; None
    without widths."""
    if fwhm_obs is None or np.size(fwhm_obs) == 0:
        return None
    qw = np.asarray(q_obs, float)
    w = np.asarray(fwhm_obs, float)
    good = np.isfinite(w) & (w > 0) & (qw > 0)
    if not good.any():
        return None
    qw, w = qw[good], w[good]
    if qw.size < 2 or np.ptp(np.log(qw)) < 0.05:
        return 0.0, math.log(median(w)), float(np.min(w))
    p, c = line_fit(np.log(qw), np.log(w))
    p = float(np.clip(p, 0.0, 2.0))
    c = float(np.mean(np.log(w) - p * np.log(qw)))
    return p, c, float(np.min(w))


def expected_widths(law, q_at) -> np.ndarray:
    """FWHM expected at ``q_at`` by a :func:`width_law` (p, c, floor)."""
    p, c, floor = law
    q_at = np.asarray(q_at, float)
    if p == 0.0:
        return np.full(q_at.shape, max(math.exp(c), floor))
    return np.maximum(np.exp(c + p * np.log(np.maximum(q_at, 1e-12))), floor)


#: An unexplained peak weaker than this fraction of the median peak area counts in the
#: ranking in proportion to its area (a weak artefact is not a strong line).
WEAK_PEAK_FRACTION = 0.1


def unexplained_weight(areas, mask) -> float:
    """Unexplained peaks counted for the ranking: one each, less for peaks weaker than
    :data:`WEAK_PEAK_FRACTION` x the median area (all one each without areas)."""
    m = np.asarray(mask, bool)
    if areas is None or not np.all(np.isfinite(areas)) or not np.any(np.abs(areas) > 0):
        return float(m.sum())
    ref = WEAK_PEAK_FRACTION * median(np.abs(areas))
    return float(np.sum(np.minimum(1.0, np.abs(areas[m]) / max(ref, 1e-300))))


def evaluate(
    lattice,
    a,
    qo,
    qerr,
    areas,
    area_err,
    edge,
    kind,
    rel_tol,
    q_lo,
    q_hi,
    aligned_opt,
    poly=0.0,
    pq=None,
    fwhm=None,
    margin=None,
    det_err=None,
    worse_than=math.inf,
    tol=None,
    detect_area=None,
    background=None,
    hidden=None,
    widths=None,
):
    """Score the lattice at ``a`` (refined on positions, :func:`.hypotheses.refine_many`): a :class:`Candidate`, or
    None when nothing matches or the cost is not below ``worse_than`` (decided as soon as
    the terms known so far reach it). ``widths``: an optional dict that caches the width law
    of each explained set across the hypotheses of one indexing run."""
    n = qo.size
    if tol is None:
        tol = np.full(n, rel_tol) if qerr is None else np.maximum(rel_tol, 4.0 * qerr / qo)
    if s_needed(q_hi, rel_tol, a) > _lat.MAX_S:
        return None
    shells, s_arr, qp, wpred, bsum = reflection_arrays(
        lattice, a, q_hi * (1 + 2 * rel_tol), edge, aligned_opt, kind, poly, pq, with_basis=True
    )
    if background is not None and kind == "iq" and edge is None:
        # I(q) = P(q) S(q): without a particle model the smooth background under the
        # peaks stands in for P(q) (peaks on a form-factor background).
        wpred = wpred * np.maximum(np.asarray(background(qp), float), 0.0)
    j, d, ok = match_rings(qo, qp, tol)
    nex = int(ok.sum())
    if nex == 0:
        return None
    s = s_arr[j[ok]]
    a, a_err, _ = wls_a(qo[ok], None if qerr is None else qerr[ok], s)
    terms: dict[str, float] = {}
    x = d[ok] / tol[ok]
    terms["positions"] = float(np.dot(x, x)) / nex
    # A peak off every ring but with rings inside its half width is a blend of
    # overlapping rings (the free fit merged them): half a penalty, and its rings are
    # not counted as absent.
    blend, covered = blend_peaks(qo, qp, ok, fwhm)
    # (the rings under a blend are judged with the observed features below when they are
    # known: a blend too weak to hold a ring does not excuse it)
    used = set(j[ok].tolist()) | (covered if hidden is None else set())
    terms["unexplained"] = 2.0 * float(n - nex - blend.sum()) + 0.5 * float(blend.sum())
    in_range = in_range_mask(qp, q_lo, q_hi, rel_tol, fwhm, margin)
    absent_idx = [k for k in np.nonzero(in_range)[0].tolist() if k not in used]
    w_obs = wpred[j[ok]]
    lnf = math.log(MODEL_UNCERTAINTY)
    pos = w_obs > 0
    scaled = bool(
        areas is not None and np.all(np.isfinite(areas[ok])) and np.all(areas[ok] > 0) and pos.any()
    )
    if scaled:
        lr = np.log(areas[ok][pos]) - np.log(w_obs[pos])
        scale = math.exp(median(lr))
        dev = np.abs(lr - math.log(scale))
        # Generous: only the part of a ratio beyond the model uncertainty counts; the
        # small variance term ranks hypotheses that explain the positions equally well.
        beyond = np.maximum(dev - lnf, 0.0)
        spread = lr - float(np.sum(lr)) / lr.size
        terms["intensities"] = (
            float(np.dot(beyond, beyond)) / beyond.size
            + 0.05 * float(np.dot(spread, spread)) / spread.size
        )
        # a peak on a ring the basis extinguishes (predicted zero): weak evidence against
        terms["intensities"] += 0.5 * float(np.count_nonzero(~pos))
    # Simplicity: fewer predicted rings in range (de Wolff's idea), then lattice order.
    simple = simplicity_cost(lattice, in_range, bsum)
    if float(sum(terms.values())) + simple >= worse_than:
        return None  # the terms still to come (absent rings, plausibility) are >= 0
    if scaled:
        if detect_area is not None:
            det = np.asarray(detect_area(qp[absent_idx]), float)
        else:
            if det_err is None and area_err is not None and np.any(np.isfinite(area_err)):
                det_err = 3.0 * float(np.nanmedian(area_err))
            det = np.full(
                len(absent_idx), det_err if det_err is not None else 0.3 * float(np.min(areas[ok]))
            )
        pred_abs = scale * wpred[absent_idx]
        if int(pos.sum()) >= 3:
            # Wilson plot: ln(observed/predicted) = c0 - B q^2 over the explained rings
            # (disorder, Debye-Waller, polydispersity weaken high orders; B >= 0), so that a
            # high-order ring is predicted at the strength the low orders imply.
            qq = qo[ok][pos] ** 2
            c1, c0 = line_fit(qq, lr)
            if c1 < 0:
                pred_abs = np.exp(c0 + c1 * qp[absent_idx] ** 2) * wpred[absent_idx]
    else:
        # positions only: a ring is absent when, at the weakest explained ring's scale, it
        # would be MODEL_UNCERTAINTY^2 times stronger than that ring
        ref = float(np.min(w_obs[pos])) if pos.any() else 1.0
        det = np.full(len(absent_idx), ref * MODEL_UNCERTAINTY)
        pred_abs = wpred[absent_idx]
    strict = pred_abs / MODEL_UNCERTAINTY > np.maximum(det, 1e-300)
    if hidden is not None and absent_idx:
        # A ring within one FWHM of an observed feature (an indexed peak, or a broad blend
        # not indexed) is not resolved from it (HCP's (100) beside (002)): the data could
        # not have shown it apart, so it is not absent. Only a feature about as sharp as
        # the ring would be can hide it (a sharp ring on a broad bump, a form-factor
        # oscillation or liquid order, would stand out of it); the ring's width is what the
        # explained peaks imply at its q (widths that grow with order, as a paracrystal's
        # or a strained lattice's do, make high-order rings as broad as the blends that
        # cover them). With feature areas, only a feature that could hold the ring hides it
        # (at least its predicted area / MODEL_UNCERTAINTY): a strong ring is not hidden by
        # a weak blip.
        hq, hw = (np.asarray(x, float) for x in hidden[:2])
        near = np.abs(qp[absent_idx][:, None] - hq[None, :]) < hw[None, :]
        # rings near no feature are absent whatever the widths: a lower bound of the cost
        if (
            float(sum(terms.values()))
            + simple
            + float(np.count_nonzero(strict & ~near.any(axis=1)))
            >= worse_than
        ):
            return None
        key = ok.tobytes()
        if widths is not None and key in widths:
            law = widths[key]
        else:
            law = width_law(qo[ok], None if fwhm is None else fwhm[ok])
            if widths is not None:
                widths[key] = law
        if law is None:  # no widths known: any feature near the ring hides it
            w_ring = np.full(len(absent_idx), np.inf)
        else:
            w_ring = expected_widths(law, qp[absent_idx])
        near &= hw[None, :] <= 3.0 * w_ring[:, None]
        if scaled and len(hidden) > 2 and hidden[2] is not None:
            ha = np.abs(np.asarray(hidden[2], float))
            near &= ha[None, :] >= (pred_abs / MODEL_UNCERTAINTY)[:, None]
        strict &= ~near.any(axis=1)
    absent_idx = [k for k, st in zip(absent_idx, strict.tolist()) if st]
    terms["absent"] = float(len(absent_idx))
    # Strong rings predicted below the lowest explained peak: the mark of a cell too large
    # (a superset lattice explains every position by density alone).
    q_first = float(np.min(qo[ok]))
    n_low = sum(1 for k in absent_idx if qp[k] < q_first)
    nn = nn_distance(lattice, a)
    gap = pf = None
    plausible = True
    notes = []
    aligned = False
    if edge is not None and nn is not None:
        gap = nn - edge
        pf = packing_fraction(lattice, a, edge)
        aligned = (
            bool(aligned_opt) if aligned_opt is not None else aligned_allowed(lattice, a, edge)
        )
        aligned = aligned and lattice in CUBIC
        if nn < edge:
            plausible = False
            terms["plausibility"] = 5.0
            notes.append(
                f"nearest-neighbour distance {nn:.2f} nm < cube edge {edge:.2f} nm: cubes would overlap"
            )
        if lattice in ("BCC", "FCC") and not aligned:
            notes.append(
                f"cubes aligned with a {lattice} lattice need a >= 2e = {2 * edge:.1f} nm; at a = {a:.2f} nm they "
                "must be misaligned, and misaligned cubes do not suppress reflections"
            )
    terms["simplicity"] = simple
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
        nn_distance_nm=None if nn is None else float(nn),
        ligand_gap_nm=None if gap is None else float(gap),
        packing_fraction=None if pf is None else float(pf),
        plausible=plausible,
        notes=tuple(notes),
        n_unexplained=float(n - nex - blend.sum()) + 0.25 * float(blend.sum()),
        n_absent_below=int(n_low),
        n_blends=int(blend.sum()),
        unexplained_weight=unexplained_weight(areas, ~ok & ~blend),
    )
