"""Indexing: which lattices explain the peak positions, ranked by the evidence.

Positions with their errors decide which lattices are possible: a hypothesis (lattice,
a) explains a peak when a ring lies within the position tolerance. Intensities only rank
hypotheses that explain the positions equally well, and they enter with a stated, generous
model uncertainty (:data:`MODEL_UNCERTAINTY`): real superlattices depart from any one
intensity model by factors of several (cube alignment, polydispersity, disorder, preferred
orientation, a structure-factor tail under the peak). A predicted ring counts as absent
only where the data could have shown it: its predicted area divided by that factor stands
above the detection limit at its q, inside the data's range and away from its ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .. import lattice as _lat
from ..errors import ParameterError
from .predict import (
    CUBIC,
    LATTICES,
    Reflection,
    aligned_allowed,
    form_factor_table,
    lattice_shells,
    nn_distance,
    packing_fraction,
    reflection_arrays,
    ring_s,
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

    @property
    def space_group(self) -> str | None:
        return self.best.space_group if self.best else None


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


def _s_needed(q_hi, rel_tol, a):
    return (q_hi * (1 + 2 * rel_tol) * a / (2.0 * math.pi)) ** 2


def _refine_a(lattice, a0, qo, qerr, tol, rel_tol, q_hi):
    """a refined from a0 by matching positions only (no intensities: cheap), or None
    (also when the hypothesis would need more rings than :data:`saxsred.lattice.MAX_S`)."""
    a = a0
    for _ in range(3):
        if _s_needed(q_hi, rel_tol, a) > _lat.MAX_S:
            return None
        s_all = ring_s(lattice, _s_needed(q_hi, rel_tol, a))
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


#: Occam's weight per predicted visible ring in range (de Wolff: fewer rings, simpler cell).
SIMPLICITY = 0.02


def _simplicity(lattice, in_range, bsum) -> float:
    return SIMPLICITY * float(np.count_nonzero(in_range & (bsum > 0))) + 0.001 * LATTICES.index(
        lattice
    )


def _cost_floor(lattice, a, qo, tol, rel_tol, q_lo, q_hi, fwhm, margin=None) -> float:
    """A lower bound of :func:`_evaluate`'s cost at refined ``a`` from positions alone:
    its position, unexplained-peak and simplicity terms (the intensity, absent-ring and
    plausibility terms it leaves out are >= 0)."""
    if _s_needed(q_hi, rel_tol, a) > _lat.MAX_S:
        return math.inf
    s_all, bsum = _lat.ring_table(lattice, _s_needed(q_hi, rel_tol, a))
    qp = 2.0 * math.pi * np.sqrt(s_all) / a
    _, d, ok = _match(qo, qp, tol)
    nex = int(ok.sum())
    if nex == 0:
        return math.inf
    blend, _ = _blends(qo, qp, ok, fwhm)
    nb = float(blend.sum())
    return (
        float(np.mean((d[ok] / tol[ok]) ** 2))
        + 2.0 * (qo.size - nex - nb)
        + 0.5 * nb
        + _simplicity(lattice, _in_range(qp, q_lo, q_hi, rel_tol, fwhm, margin), bsum)
    )


#: An unexplained peak weaker than this fraction of the median peak area counts in the
#: ranking in proportion to its area (a weak artefact is not a strong line).
WEAK_PEAK_FRACTION = 0.1


def _unexplained_weight(areas, mask) -> float:
    """Unexplained peaks counted for the ranking: one each, less for peaks weaker than
    :data:`WEAK_PEAK_FRACTION` x the median area (all one each without areas)."""
    m = np.asarray(mask, bool)
    if areas is None or not np.all(np.isfinite(areas)) or not np.any(np.abs(areas) > 0):
        return float(m.sum())
    ref = WEAK_PEAK_FRACTION * float(np.median(np.abs(areas)))
    return float(np.sum(np.minimum(1.0, np.abs(areas[m]) / max(ref, 1e-300))))


def _evaluate(
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
):
    """Score the lattice at ``a`` (refined by :func:`_refine_a`): a :class:`Candidate`, or
    None when nothing matches or the cost is not below ``worse_than``."""
    n = qo.size
    if tol is None:
        tol = np.full(n, rel_tol) if qerr is None else np.maximum(rel_tol, 4.0 * qerr / qo)
    if _s_needed(q_hi, rel_tol, a) > _lat.MAX_S:
        return None
    shells, s_arr, qp, wpred = reflection_arrays(
        lattice, a, q_hi * (1 + 2 * rel_tol), edge, aligned_opt, kind, poly, pq
    )
    if background is not None and kind == "iq" and edge is None:
        # I(q) = P(q) S(q): without a particle model the smooth background under the
        # peaks stands in for P(q) (peaks on a form-factor background).
        wpred = wpred * np.maximum(np.asarray(background(qp), float), 0.0)
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
    if hidden is not None and absent_idx:
        # A ring within one FWHM of an observed feature (an indexed peak, or a broad blend
        # not indexed) is not resolved from it (HCP's (100) beside (002)): the data could
        # not have shown it apart, so it is not absent.
        hq, hw = (np.asarray(x, float) for x in hidden)
        # only a feature about as sharp as the Bragg peaks can hide a ring: a sharp ring
        # on a broad bump (form-factor oscillation, liquid order) would stand out of it
        sharp = hw <= 3.0 * float(np.median(fwhm)) if fwhm is not None and np.size(fwhm) else hw > 0
        hq, hw = hq[sharp], hw[sharp]
        near = np.abs(qp[absent_idx][:, None] - hq[None, :]) < hw[None, :]
        absent_idx = [k for k, h in zip(absent_idx, near.any(axis=1).tolist()) if not h]
    w_obs = wpred[j[ok]]
    lnf = math.log(MODEL_UNCERTAINTY)
    pos = w_obs > 0
    if areas is not None and np.all(np.isfinite(areas[ok])) and np.all(areas[ok] > 0) and pos.any():
        lr = np.log(areas[ok][pos]) - np.log(w_obs[pos])
        scale = float(np.exp(np.median(lr)))
        dev = np.abs(lr - math.log(scale))
        # Generous: only the part of a ratio beyond the model uncertainty counts; the
        # small variance term ranks hypotheses that explain the positions equally well.
        terms["intensities"] = float(np.mean(np.maximum(dev - lnf, 0.0) ** 2)) + 0.05 * float(
            np.var(lr)
        )
        # a peak on a ring the basis extinguishes (predicted zero): weak evidence against
        terms["intensities"] += 0.5 * float(np.count_nonzero(~pos))
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
            c1, c0 = np.polyfit(qq, lr, 1)
            if c1 < 0:
                pred_abs = np.exp(c0 + c1 * qp[absent_idx] ** 2) * wpred[absent_idx]
    else:
        # positions only: a ring is absent when, at the weakest explained ring's scale, it
        # would be MODEL_UNCERTAINTY^2 times stronger than that ring
        ref = float(np.min(w_obs[pos])) if pos.any() else 1.0
        det = np.full(len(absent_idx), ref * MODEL_UNCERTAINTY)
        pred_abs = wpred[absent_idx]
    strict = pred_abs / MODEL_UNCERTAINTY > np.maximum(det, 1e-300)
    absent_idx = [k for k, st in zip(absent_idx, strict.tolist()) if st]
    terms["absent"] = float(len(absent_idx))
    # Strong rings predicted below the lowest explained peak: the mark of a cell too large
    # (a superset lattice explains every position by density alone).
    n_low = sum(1 for k in absent_idx if qp[k] < float(np.min(qo[ok])))
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
    # Simplicity: fewer predicted rings in range (de Wolff's idea), then lattice order.
    bsum = _lat.ring_table(lattice, float(s_arr[-1]) if s_arr.size else 1.0)[1][: qp.size]
    terms["simplicity"] = _simplicity(lattice, in_range, bsum)
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
        unexplained_weight=_unexplained_weight(areas, ~ok & ~blend),
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
    detect_area=None,
    background=None,
    features=None,
) -> Indexing:
    """Index peak positions against the lattices of :mod:`saxsred.lattice`.

    For each lattice, the three lowest peaks are tried as each of its first twelve rings;
    every hypothesis is refined by weighted least squares (q = 2 pi sqrt(s)/a) and scored
    by a cost (lower is better) = positions (mean (dq/q / tol)^2) + 2 per unexplained peak
    + 1 per absent reflection (predicted area / :data:`MODEL_UNCERTAINTY` above the
    detection limit at its q) + the part of each ln(observed/predicted area) beyond
    ln(:data:`MODEL_UNCERTAINTY`), squared, plus a weak variance term that ranks
    equally good position fits + 5 if the cubes would overlap + :data:`SIMPLICITY` per
    predicted ring in range. The best candidate is assigned when it explains every peak
    (or at least three and 75% of them, the rest named in a note); a cost above
    ``max_cost`` is a warning, never a refusal. ``best`` is None only when no lattice
    explains the peaks. Peaks broader than :data:`MAX_BRAGG_FWHM_FRAC` x q are not
    indexed (form-factor or liquid-like features).

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
    features : (q, fwhm) of every observed feature, indexed or not (default: the peaks):
        a ring within one FWHM of one is hidden by it, never counted absent.
    detect_area : optional callable q -> smallest detectable peak area at q (the noise);
        default 3 x the median area error.
    background : optional callable q -> smooth background under the peaks; for I(q)
        without an edge it stands in for the form factor in the predicted intensities.

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
        lattices = AUTO_LATTICES if lattices == "auto" else (lattices,)
    lattices = tuple(_lat.resolve(lat) for lat in lattices)
    notes: list[str] = []
    fw_all = None if fwhm is None else np.asarray(fwhm, float).ravel()
    keep = np.ones(qo.size, bool)
    if fw_all is not None and fw_all.size == qo.size:
        keep = ~(fw_all > MAX_BRAGG_FWHM_FRAC * qo)
        for qb, wb in zip(qo[~keep], fw_all[~keep]):
            notes.append(
                f"feature at q = {qb:.4g} nm^-1 with FWHM/q = {wb / qb:.2f} > {MAX_BRAGG_FWHM_FRAC:g} "
                "(order over fewer than ~7 periods): not a Bragg peak, not indexed"
            )
        # A broad component whose half width holds the centre of a narrower peak is that
        # peak's foot (a real profile is no single Voigt: at high counts the free fit adds
        # a broad partner under each sharp line, e.g. silver behenate), not another line.
        for jj in np.nonzero(keep)[0].tolist():
            under = (fw_all < fw_all[jj]) & (np.abs(qo - qo[jj]) < 0.5 * fw_all[jj])
            if under.any():
                keep[jj] = False
                notes.append(
                    f"feature at q = {qo[jj]:.4g} nm^-1 (FWHM {fw_all[jj]:.3g}) lies under the narrower peak at "
                    f"{qo[np.nonzero(under)[0][0]]:.4g} nm^-1: part of its profile, not indexed"
                )
    if not keep.all():
        sub = index_peaks(
            qo[keep],
            None if q_err is None else np.asarray(q_err, float).ravel()[keep],
            None if areas is None else np.asarray(areas, float).ravel()[keep],
            None if area_err is None else np.asarray(area_err, float).ravel()[keep],
            lattices,
            edge_nm,
            aligned,
            kind,
            rel_tol,
            q_range,
            max_cost,
            polydispersity,
            fw_all[keep],
            detect_area,
            background,
            (qo, fw_all) if features is None else features,
        )
        pos = np.nonzero(keep)[0]

        def widen(t):
            out = [None] * qo.size
            for k, v in zip(pos.tolist(), t):
                out[k] = v
            return tuple(out)

        cands = tuple(
            replace(
                c,
                assignment=widen(c.assignment),
                s_assigned=widen(c.s_assigned),
                unexplained_q_nm=c.unexplained_q_nm,
            )
            for c in sub.candidates
        )
        best = (
            None
            if sub.best is None
            else cands[[c.lattice for c in sub.candidates].index(sub.best.lattice)]
        )
        return Indexing(cands, best, tuple(notes) + sub.notes, edge_nm)
    order = np.argsort(qo)
    inv = np.argsort(order)
    qs = qo[order]
    qe = None if q_err is None else np.asarray(q_err, float).ravel()[order]
    if qe is not None and not np.all(np.isfinite(qe) & (qe > 0)):
        qe = None
    ar = None if areas is None else np.asarray(areas, float).ravel()[order]
    ae = None if area_err is None else np.asarray(area_err, float).ravel()[order]
    fw = None if fwhm is None else np.asarray(fwhm, float).ravel()[order]
    if qs.size < 2:
        notes.append(
            "fewer than two peaks: no lattice can be indexed"
            + (
                f" (one peak at q = {qs[0]:.4g} nm^-1, d = 2 pi/q = {2 * math.pi / qs[0]:.4g} nm)"
                if qs.size
                else ""
            )
        )
        return Indexing((), None, tuple(notes), edge_nm)
    q_lo, q_hi = (
        (float(qs[0]), float(qs[-1])) if q_range is None else (float(q_range[0]), float(q_range[1]))
    )
    q_lo = min(q_lo, float(qs[0]))
    q_hi = max(q_hi, float(qs[-1]))
    pq = (
        form_factor_table(edge_nm, polydispersity, q_hi * (1 + 3 * rel_tol))
        if edge_nm is not None
        else None
    )
    best_per: dict[str, Candidate] = {}
    tol = np.full(qs.size, rel_tol) if qe is None else np.maximum(rel_tol, 4.0 * qe / qs)
    margin = _margin(fw)
    det_err = 3.0 * float(np.nanmedian(ae)) if ae is not None and np.any(np.isfinite(ae)) else None
    for lat in lattices:
        shells = lattice_shells(lat, 400.0)[:12]
        # Every hypothesis refined on positions alone, then scored in the order of its
        # position-only cost floor; one whose floor is no better than the best score so far
        # cannot win and is not scored (a shortcut that leaves the result unchanged).
        hyps: list[tuple[float, float]] = []
        seen: list[float] = []
        for qi in qs[: min(3, qs.size)]:
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
            cand = _evaluate(
                lat,
                a,
                qs,
                qe,
                ar,
                ae,
                edge_nm,
                kind,
                rel_tol,
                q_lo,
                q_hi,
                aligned,
                polydispersity,
                pq,
                fw,
                margin,
                det_err,
                best_per[lat].cost if lat in best_per else math.inf,
                tol,
                detect_area,
                background,
                features if features is not None else (None if fw is None else (qs, fw)),
            )
            if cand is not None:
                best_per[lat] = cand
    # Back to the input order of the peaks.
    cands = []
    for c in best_per.values():
        cands.append(
            replace(
                c,
                assignment=tuple(c.assignment[i] for i in inv),
                s_assigned=tuple(c.s_assigned[i] for i in inv),
            )
        )
    # Positions first: a lattice that leaves fewer peaks unexplained (or predicts strong
    # rings below the lowest peak) wins; then fewer rings the data would have shown; the
    # cost (intensities within their uncertainty, simplicity) ranks the rest.
    # A peak that is a blend of the lattice's own rings (broad, near the data's end) is
    # explained for the ranking: a denser superset cell must not win by putting a ring on it.
    # Rings the data would have shown but do not are evidence against a lattice too (the
    # mark of a superset cell explaining peaks by density, e.g. Ia-3d at sqrt2 x a_FCC):
    # ABSENT_PER_UNEXPLAINED of them weigh as much as one unexplained peak.
    cands.sort(
        key=lambda c: (
            round(
                c.unexplained_weight
                + c.n_absent_below
                + (c.terms.get("absent", 0.0) - c.n_absent_below) / ABSENT_PER_UNEXPLAINED,
                6,
            ),
            c.terms.get("absent", 0.0),
            c.cost,
        )
    )
    best = cands[0] if cands else None
    if best is not None:
        nex = sum(h is not None for h in best.assignment)
        n = qs.size
        # Two peaks rest on one ratio: only sharp ones (FWHM < 5% of q, order over 20+
        # periods) with positions inside the nominal tolerance count as evidence of order.
        two_weak = nex == 2 and (
            (fw is not None and np.any(fw > 0.05 * qs))
            or (qe is not None and np.any(4.0 * qe / qs > rel_tol))
        )
        # Share of the peak area the lattice explains: weak features left over (detector
        # edges, a second phase, an artefact) do not veto lines that carry nearly all of it.
        share = 0.0
        if ar is not None and np.all(np.isfinite(ar)) and np.sum(np.abs(ar)) > 0:
            expl = np.array([best.assignment[i] is not None for i in inv])
            share = float(np.sum(np.abs(ar[expl])) / np.sum(np.abs(ar)))
        if (
            nex < 2
            or two_weak
            or (nex < 3 and nex < n)
            or (best.n_unexplained >= 0.5 and nex < 0.75 * n and share < MIN_AREA_SHARE)
        ):
            notes.append(
                f"no periodic order explains the peaks: the best candidate, {best.lattice} a = {best.a_nm:.3f} nm, "
                f"explains {nex} of {n} peaks"
            )
            best = None
        else:
            if best.n_unexplained >= 0.5:
                notes.append(
                    f"{best.lattice} explains {nex} of {n} peaks; not explained (another phase, an artefact?): "
                    + ", ".join(f"{x:.4g}" for x in best.unexplained_q_nm)
                    + " nm^-1"
                )
            if nex == 2:
                notes.append(
                    "only two peaks indexed: the lattice type rests on one ratio; see the alternatives"
                )
            if best.cost > max_cost:
                notes.append(
                    f"weak evidence: {best.lattice} cost {best.cost:.2f} above {max_cost:g} "
                    f"(terms {', '.join(f'{k} {v:.2f}' for k, v in best.terms.items())}); intensity model uncertain "
                    f"by a factor {MODEL_UNCERTAINTY:g}"
                )
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
                + (
                    (
                        "reach it and show a peak there"
                        if seen
                        else "reach it and show no peak there"
                    )
                    if reach
                    else "do not reach it"
                )
                + f"; ranked by cost {best.lattice} {best.cost:.2f} < {c.lattice} {c.cost:.2f}"
            )
        elif c.cost - best.cost < 0.5 and c.n_unexplained <= best.n_unexplained:
            out.append(
                f"ambiguous: {c.lattice} a = {c.a_nm:.3f} nm scores close to {best.lattice} (cost {c.cost:.2f} vs {best.cost:.2f})"
            )
    return out
