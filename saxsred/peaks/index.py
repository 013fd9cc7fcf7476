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
from .hypotheses import cost_floors, refine_many
from .predict import form_factor_table, lattice_shells
from .score import (
    ABSENT_PER_UNEXPLAINED,
    AUTO_LATTICES,
    MAX_BRAGG_FWHM_FRAC,
    MIN_AREA_SHARE,
    MODEL_UNCERTAINTY,
    SIMPLICITY,
    WEAK_PEAK_FRACTION,
    Candidate,
    end_margin,
    evaluate,
)


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
    features : (q, fwhm) or (q, fwhm, area) of every observed feature, indexed or not
        (default: the peaks): a ring within one FWHM of one about as sharp as the ring would
        be (and, with areas, strong enough to hold it) is hidden by it, never counted absent.
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
        ar_all = None if areas is None else np.abs(np.asarray(areas, float).ravel())
        for jj in np.nonzero(keep)[0].tolist():
            # within the broad component's half width; or within its FWHM when it is also
            # the weaker of the two (the one-sided wing of a paracrystal's line)
            near = np.abs(qo - qo[jj])
            under = (fw_all < fw_all[jj]) & (
                (near < 0.5 * fw_all[jj])
                | (
                    (near < fw_all[jj])
                    & (ar_all is not None)
                    & (ar_all > (ar_all[jj] if ar_all is not None else 0.0))
                )
            )
            if under.any():
                keep[jj] = False
                notes.append(
                    f"feature at q = {qo[jj]:.4g} nm^-1 (FWHM {fw_all[jj]:.3g}) lies under the narrower peak at "
                    f"{qo[np.nonzero(under)[0][0]]:.4g} nm^-1: part of its profile, not indexed"
                )
        if ar_all is not None:
            for jj, ii in tail_components(qo, fw_all, ar_all, keep):
                keep[jj] = False
                notes.append(
                    f"feature at q = {qo[jj]:.4g} nm^-1 (FWHM {fw_all[jj]:.3g}) is a weak broad component in the "
                    f"tail of the line at {qo[ii]:.4g} nm^-1 (a paracrystal's or a distorted lattice's lines are "
                    "no single symmetric profile): part of it, not indexed"
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
            (qo, fw_all, ar_all) if features is None else features,
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
    widths: dict[bytes, tuple[float, float, float] | None] = {}  # width law per explained set
    tol = np.full(qs.size, rel_tol) if qe is None else np.maximum(rel_tol, 4.0 * qe / qs)
    margin = end_margin(fw)
    det_err = 3.0 * float(np.nanmedian(ae)) if ae is not None and np.any(np.isfinite(ae)) else None
    for lat in lattices:
        shells = lattice_shells(lat, 400.0)[:12]
        # Every hypothesis refined on positions alone, then scored in the order of its
        # position-only cost floor; one whose floor is no better than the best score so far
        # cannot win and is not scored (a shortcut that leaves the result unchanged).
        seen: list[float] = []
        for qi in qs[: min(3, qs.size)]:
            for sh in shells:
                a0 = 2.0 * math.pi * math.sqrt(sh.s) / qi
                if not any(abs(a0 - t) < 1e-3 * a0 for t in seen):
                    seen.append(a0)
        refined: list[float] = []
        for a in refine_many(lat, seen, qs, qe, tol, rel_tol, q_hi).tolist():
            if math.isfinite(a) and not any(abs(a - h) < 1e-9 * a for h in refined):
                refined.append(a)
        floors = cost_floors(lat, refined, qs, tol, rel_tol, q_lo, q_hi, fw, margin)
        hyps = list(zip(floors.tolist(), refined))
        for floor, a in sorted(hyps):
            if lat in best_per and floor >= best_per[lat].cost:
                break
            cand = evaluate(
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
                features if features is not None else (None if fw is None else (qs, fw, ar)),
                widths,
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
    def explained_key(c: Candidate) -> float:
        return (
            c.unexplained_weight
            + c.n_absent_below
            + (c.terms.get("absent", 0.0) - c.n_absent_below) / ABSENT_PER_UNEXPLAINED
        )

    def rest_key(c: Candidate) -> tuple[float, float]:
        # unexplained peaks weighed by their area (as in explained_key) and a blend's half
        # penalty left out: a lattice that puts one ring on a broad blend explains it no
        # better than one whose several rings fall under it
        cost = c.cost - c.terms.get("unexplained", 0.0) + 2.0 * c.unexplained_weight
        return (c.terms.get("absent", 0.0), round(cost, 6))

    cands.sort(key=lambda c: (round(explained_key(c), 6), *rest_key(c)))
    if cands:
        # Lattices within EXPLAINED_TIE of the best explain the peaks equally well (a
        # blip of a few per cent of the weak-peak threshold must not decide): among them
        # the rings the data would have shown, then the cost (intensities, simplicity) rank.
        k0 = explained_key(cands[0])
        tied = [c for c in cands if explained_key(c) <= k0 + EXPLAINED_TIE]
        cands = sorted(tied, key=rest_key) + [c for c in cands if c not in tied]
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
            or (
                best.n_unexplained >= 0.5
                and nex + best.n_blends < 0.75 * n  # a blend of its own rings is accounted for
                and share < MIN_AREA_SHARE
            )
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


#: explained-peak weights closer than this are a tie (see index_peaks' ranking)
EXPLAINED_TIE = 0.1
#: a tail component is weaker than its line by this factor (area) ...
TAIL_AREA_RATIO = 0.25
#: ... and broader by this factor (FWHM) ...
TAIL_BROADER = 1.5
#: ... and its centre within this many of its own FWHMs of the tail's reach so far
TAIL_GAP = 1.5


def weak_broad_component(area, fwhm, line_area, line_fwhm) -> bool:
    """A component at most :data:`TAIL_AREA_RATIO` of a line's area and at least
    :data:`TAIL_BROADER` x its FWHM: what a line's foot or tail looks like in a free fit."""
    return bool(abs(area) <= TAIL_AREA_RATIO * abs(line_area) and fwhm >= TAIL_BROADER * line_fwhm)


def tail_components(q, fwhm, areas, keep) -> list[tuple[int, int]]:
    """(component, line) pairs: weak broad components that continue a strong line's tail.

    Walking out from each kept line (strongest first) on either side, a component at most
    :data:`TAIL_AREA_RATIO` of the line's area and :data:`TAIL_BROADER` x its FWHM
    belongs to the line's tail when the gap between its centre and the tail's reach so far
    (the line's half width, then each tail component's) is below :data:`TAIL_GAP` x its
    own FWHM. A free fit of symmetric profiles describes a one-sided, slowly decaying line
    (the powder average of a paracrystal's reflection) by the line plus a train of such
    components; they are not reflections of their own.
    """
    q = np.asarray(q, float)
    fw = np.asarray(fwhm, float)
    ar = np.abs(np.asarray(areas, float))
    out: list[tuple[int, int]] = []
    taken = ~np.asarray(keep, bool)
    for i in np.argsort(-ar).tolist():
        if taken[i]:
            continue
        for side in (1.0, -1.0):
            reach = q[i] + side * 0.5 * fw[i]
            idx = [k for k in np.argsort(side * q).tolist() if side * (q[k] - q[i]) > 0]
            for k in idx:
                if taken[k] or not weak_broad_component(ar[k], fw[k], ar[i], fw[i]):
                    break
                if side * (q[k] - reach) >= TAIL_GAP * fw[k]:
                    break
                taken[k] = True
                out.append((k, i))
                reach = q[k] + side * 0.5 * fw[k]
    return out


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


__all__ = [
    "ABSENT_PER_UNEXPLAINED",
    "AUTO_LATTICES",
    "MAX_BRAGG_FWHM_FRAC",
    "MIN_AREA_SHARE",
    "MODEL_UNCERTAINTY",
    "SIMPLICITY",
    "WEAK_PEAK_FRACTION",
    "Candidate",
    "Indexing",
    "index_peaks",
]
