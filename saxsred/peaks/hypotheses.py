"""Indexing hypotheses of one lattice, all at once: seeds refined on positions, cost floors.

:func:`index_peaks` tries the three lowest peaks as each of a lattice's first rings; every
seed a0 is refined by matching positions only (:func:`refine_many`), and each refined a is
bounded below by the position-only part of :func:`.score.evaluate`'s cost
(:func:`cost_floors`). Done for all seeds of a lattice in a few array operations instead of
a Python loop over them (tests/test_peaks.py checks them against the one-at-a-time
algorithm written in the test).
"""

from __future__ import annotations

import math

import numpy as np

from .. import lattice as _lat
from .score import in_range_mask, match_many, s_needed, simplicity_cost

TWO_PI = 2.0 * math.pi


def _table(lattice: str, smax: np.ndarray, live: np.ndarray):
    """(s, basis_sum) up to the largest live ``smax`` and each row's ring count (the rings
    :func:`saxsred.lattice.ring_table` gives for that row's own ``smax``)."""
    top = float(np.max(smax[live]))
    s_all, bsum = _lat.ring_table(lattice, top)
    m = np.searchsorted(s_all, smax + 1e-9, side="right")
    return s_all, bsum, np.where(live, m, 0)


def refine_many(lattice, a0, qo, qerr, tol, rel_tol, q_hi) -> np.ndarray:
    """Each seed ``a0`` refined by matching positions only (up to three weighted
    least-squares passes, q = 2 pi sqrt(s)/a); NaN where a seed has no answer (it would need
    rings beyond :data:`saxsred.lattice.MAX_S`, or matches no peak)."""
    a = np.array(a0, float)
    out = np.full(a.size, np.nan)
    live = np.ones(a.size, bool)
    wt = np.ones_like(qo) if qerr is None else 1.0 / np.maximum(qerr, 1e-12) ** 2
    for _ in range(3):
        smax = s_needed(q_hi, rel_tol, a)
        live &= smax <= _lat.MAX_S
        if not live.any():
            break
        s_all, _, m = _table(lattice, smax, live)
        live &= m > 0
        if not live.any():
            break
        qp = TWO_PI * np.sqrt(s_all)[None, :] / a[:, None]
        qp[np.arange(s_all.size)[None, :] >= m[:, None]] = np.inf
        j, _, ok = match_many(qo, qp, tol)
        live &= ok.any(axis=1)
        if not live.any():
            break
        k = np.sqrt(s_all[j])
        wk = np.where(ok, wt[None, :] * k, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.sum(wk * qo[None, :], axis=1) / np.sum(wk * k, axis=1)
            a_new = TWO_PI / u
        done = live & (np.abs(a_new - a) < 1e-9 * a)
        out[done] = a_new[done]
        live &= ~done
        a = np.where(live, a_new, a)
    out[live] = a[live]
    return out


def cost_floors(lattice, a, qo, tol, rel_tol, q_lo, q_hi, fwhm, margin) -> np.ndarray:
    """A lower bound of :func:`.score.evaluate`'s cost at each refined ``a`` from positions
    alone (inf where there is no hypothesis): its position, unexplained-peak and simplicity
    terms; the intensity, absent-ring and plausibility terms it leaves out are >= 0."""
    a = np.asarray(a, float)
    out = np.full(a.size, np.inf)
    smax = s_needed(q_hi, rel_tol, a)
    live = np.isfinite(a) & (smax <= _lat.MAX_S)
    if not live.any():
        return out
    s_all, bsum, m = _table(lattice, smax, live)
    cols = np.arange(s_all.size)[None, :]
    valid = cols < m[:, None]
    qp = np.where(valid, TWO_PI * np.sqrt(s_all)[None, :] / np.where(live, a, 1.0)[:, None], np.inf)
    _, d, ok = match_many(qo, qp, tol)
    nex = ok.sum(axis=1)
    if fwhm is None:
        nb = np.zeros(a.size)
    else:
        inside = (np.abs(qp[:, None, :] - qo[None, :, None]) < 0.5 * fwhm[None, :, None]) & ~ok[
            :, :, None
        ]
        nb = np.where(ok.all(axis=1), 0, inside.any(axis=2).sum(axis=1)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.sum(np.where(ok, (d / tol[None, :]) ** 2, 0.0), axis=1) / nex
    in_range = valid & in_range_mask(qp, q_lo, q_hi, rel_tol, fwhm, margin)
    simple = simplicity_cost(lattice, in_range, bsum[None, :])
    floor = pos + 2.0 * (qo.size - nex - nb) + 0.5 * nb + simple
    keep = live & (nex > 0)
    out[keep] = floor[keep]
    return out
