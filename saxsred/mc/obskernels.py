"""Numba kernels of the per-sample observables: O(N) vacancy analysis, list-based checks.

The driver samples these every few sweeps, so each must cost a small fraction of a
sweep (N trial moves): they walk the particles once, or the neighbour list once, and
allocate nothing of size N^2. Units and conventions as in :mod:`saxsred.mc._kernels`
and :mod:`saxsred.mc.cubes` (positions in ``[-L/2, L/2)``, rotation matrices row-major,
9 floats per cube).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .box import min_image
from .cubes import cubes_overlap


@njit(cache=True)
def lattice_displacements(pos, box, n_cells, spacing):
    """Nearest simple-cubic site (N, 3 ints) and displacement from it (N, 3), drift removed.

    Sites sit at -L/2 + a (i + 1/2). The drift (single-particle moves let the whole
    crystal wander) is the circular mean of the fractional coordinates per axis, so it
    is well defined even when it approaches a/2.
    """
    n = pos.shape[0]
    a = spacing
    idx = np.empty((n, 3), dtype=np.int64)
    d = np.empty((n, 3))
    two_pi = 2.0 * math.pi
    for ax in range(3):
        s = 0.0
        c = 0.0
        for i in range(n):
            u = (pos[i, ax] + 0.5 * box[ax]) / a - 0.5
            s += math.sin(two_pi * u)
            c += math.cos(two_pi * u)
        drift = math.atan2(s / n, c / n) / two_pi
        nc = n_cells[ax]
        for i in range(n):
            u = (pos[i, ax] + 0.5 * box[ax]) / a - 0.5 - drift
            k = np.rint(u)
            d[i, ax] = (u - k) * a
            idx[i, ax] = int(k) % nc
    return idx, d


@njit(cache=True)
def vacancy_spreads(idx, d, n_cells, spacing, threshold):
    """Per row axis: particles in deficient rows displaced along the row by > threshold * a.

    A row along ``axis`` is deficient when it holds fewer particles than sites. Returns
    the three counts (float) and, per axis, the row occupancy (rows flattened as
    ``i_p1 * n_p2 + i_p2`` with p1 < p2 the two other axes), padded to the largest.
    """
    n = idx.shape[0]
    lim = threshold * spacing
    spreads = np.zeros(3)
    mrow = max(n_cells[1] * n_cells[2], max(n_cells[0] * n_cells[2], n_cells[0] * n_cells[1]))
    counts = np.zeros((3, mrow), dtype=np.int64)
    for axis in range(3):
        p1 = 1 if axis == 0 else 0
        p2 = 1 if axis == 2 else 2
        n2 = n_cells[p2]
        for i in range(n):
            counts[axis, idx[i, p1] * n2 + idx[i, p2]] += 1
        full = n_cells[axis]
        c = 0
        for i in range(n):
            if abs(d[i, axis]) > lim and counts[axis, idx[i, p1] * n2 + idx[i, p2]] < full:
                c += 1
        spreads[axis] = c
    return spreads, counts


@njit(cache=True)
def block_checks(pos, rot, box, nbr, nn, hard, bond_range):
    """One pass over the neighbour-list pairs: (overlapping pairs, bonds, largest cluster).

    Bonds are pairs with centres closer than ``bond_range``; the largest cluster joins
    them by union-find. Exact for all pairs while the Verlet list is valid and holds
    every pair closer than max(sqrt(3) if ``hard``, ``bond_range``); O(N x list length)
    instead of the O(N^2) of ``count_overlaps``/``count_bonds``. Centres must lie in the
    box.
    """
    n = pos.shape[0]
    parent = np.arange(n)
    b2 = bond_range * bond_range
    n_ov = 0
    n_b = 0
    for i in range(n):
        for k in range(nn[i]):
            j = nbr[i, k]
            if j <= i:
                continue
            tx = min_image(pos[j, 0] - pos[i, 0], box[0])
            ty = min_image(pos[j, 1] - pos[i, 1], box[1])
            tz = min_image(pos[j, 2] - pos[i, 2], box[2])
            r2 = tx * tx + ty * ty + tz * tz
            if r2 < b2:
                n_b += 1
                ri = _root(parent, i)
                rj = _root(parent, j)
                if ri != rj:
                    parent[ri] = rj
            if hard and r2 <= 3.0 and cubes_overlap(tx, ty, tz, rot[i], rot[j]):
                n_ov += 1
    return n_ov, n_b, _largest(parent)


@njit(cache=True)
def _root(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]  # path halving
        i = parent[i]
    return i


@njit(cache=True)
def largest_cluster_in_list(pos, box, nbr, nn, bond_range):
    """Largest cluster of centres closer than ``bond_range`` (union-find over list pairs).

    Valid while the list holds every pair closer than ``bond_range``.
    """
    n = pos.shape[0]
    parent = np.arange(n)
    b2 = bond_range * bond_range
    for i in range(n):
        for k in range(nn[i]):
            j = nbr[i, k]
            if j <= i:
                continue
            tx = pos[j, 0] - pos[i, 0]
            ty = pos[j, 1] - pos[i, 1]
            tz = pos[j, 2] - pos[i, 2]
            tx = min_image(tx, box[0])
            ty = min_image(ty, box[1])
            tz = min_image(tz, box[2])
            if tx * tx + ty * ty + tz * tz < b2:
                ri = _root(parent, i)
                rj = _root(parent, j)
                if ri != rj:
                    parent[ri] = rj
    return _largest(parent)


@njit(cache=True)
def _largest(parent):
    n = parent.shape[0]
    size = np.zeros(n, dtype=np.int64)
    best = 0
    for i in range(n):
        r = _root(parent, i)
        size[r] += 1
        if size[r] > best:
            best = size[r]
    return best
