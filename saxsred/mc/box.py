"""The periodic box in numba: minimum images and the Verlet neighbour list.

Positions live in the periodic box ``[-L/2, L/2)`` per axis (orthorhombic).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def wrap(d, L):
    return d - L * math.floor(d / L + 0.5)


@njit(cache=True, inline="always")
def min_image(d, L):
    """Minimum image of d for |d| < 1.5 L (both ends inside the box): a branch, no division.

    The hot loops call this ~30 times per trial move; the division of :func:`wrap` was
    most of the move's cost.
    """
    if d >= 0.5 * L:
        return d - L
    if d < -0.5 * L:
        return d + L
    return d


@njit(cache=True)
def build_nlist(pos, box, r_list, nbr, nn, ref):
    """Verlet list of all j with |r_ij| < r_list, nearest first; ``ref`` = positions now.

    Cell list with cells >= r_list when there are >= 3 cells per axis, else all pairs.
    Neighbours are sorted by distance so that face neighbours, the likeliest to
    overlap, are tested first. Returns False if a row overflows ``nbr``.
    """
    n = pos.shape[0]
    maxnb = nbr.shape[1]
    ok = True
    for i in range(n):
        nn[i] = 0
        ref[i, 0] = pos[i, 0]
        ref[i, 1] = pos[i, 1]
        ref[i, 2] = pos[i, 2]
    r2l = r_list * r_list
    dist = np.empty((n, maxnb))
    nc0 = int(box[0] // r_list)
    nc1 = int(box[1] // r_list)
    nc2 = int(box[2] // r_list)
    if nc0 >= 3 and nc1 >= 3 and nc2 >= 3:
        ncell = nc0 * nc1 * nc2
        head = -np.ones(ncell, dtype=np.int64)
        nxt = -np.ones(n, dtype=np.int64)
        cell = np.empty((n, 3), dtype=np.int64)
        for i in range(n):
            c0 = int((pos[i, 0] / box[0] + 0.5) * nc0) % nc0
            c1 = int((pos[i, 1] / box[1] + 0.5) * nc1) % nc1
            c2 = int((pos[i, 2] / box[2] + 0.5) * nc2) % nc2
            cell[i, 0] = c0
            cell[i, 1] = c1
            cell[i, 2] = c2
            c = (c0 * nc1 + c1) * nc2 + c2
            nxt[i] = head[c]
            head[c] = i
        for i in range(n):
            for a in range(-1, 2):
                for b in range(-1, 2):
                    for g in range(-1, 2):
                        c = (((cell[i, 0] + a) % nc0) * nc1 + (cell[i, 1] + b) % nc1) * nc2 + (
                            cell[i, 2] + g
                        ) % nc2
                        j = head[c]
                        while j >= 0:
                            if j != i:
                                dx = min_image(pos[j, 0] - pos[i, 0], box[0])
                                dy = min_image(pos[j, 1] - pos[i, 1], box[1])
                                dz = min_image(pos[j, 2] - pos[i, 2], box[2])
                                d2 = dx * dx + dy * dy + dz * dz
                                if d2 < r2l:
                                    k = nn[i]
                                    if k < maxnb:
                                        nbr[i, k] = j
                                        dist[i, k] = d2
                                        nn[i] = k + 1
                                    else:
                                        ok = False
                            j = nxt[j]
    else:
        for i in range(n):
            for j in range(n):
                if j == i:
                    continue
                dx = min_image(pos[j, 0] - pos[i, 0], box[0])
                dy = min_image(pos[j, 1] - pos[i, 1], box[1])
                dz = min_image(pos[j, 2] - pos[i, 2], box[2])
                d2 = dx * dx + dy * dy + dz * dz
                if d2 < r2l:
                    k = nn[i]
                    if k < maxnb:
                        nbr[i, k] = j
                        dist[i, k] = d2
                        nn[i] = k + 1
                    else:
                        ok = False
    # insertion sort by distance (rows are short, rebuilds are rare)
    for i in range(n):
        m = nn[i]
        for a in range(1, m):
            dj = dist[i, a]
            jj = nbr[i, a]
            b = a - 1
            while b >= 0 and dist[i, b] > dj:
                dist[i, b + 1] = dist[i, b]
                nbr[i, b + 1] = nbr[i, b]
                b -= 1
            dist[i, b + 1] = dj
            nbr[i, b + 1] = jj
    return ok
