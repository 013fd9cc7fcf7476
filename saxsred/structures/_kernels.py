"""numba kernels of the structures stage: pair-distance histogram, Debye sums, the SC block model.

The oriented-cube amplitude sum is in :mod:`._oriented_kernels`.

Pure functions on arrays; each has an independent check in ``tests/test_structures*.py``
(a direct O(N^2 q) sum, freud, analytic Laue functions).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: packed histogram word: pair count above bit PACK_SHIFT, sum of sub-bin offsets below it
PACK_SHIFT = 40


@njit(parallel=True, cache=True, fastmath=True)
def pair_histogram(pos, inv_dr, nbins, nchunks, fbits, flush_rows):
    """Histogram of the N(N-1)/2 pair distances: (count, sum of sub-bin offsets) per bin of width 1/inv_dr.

    Each row is done in two passes so that the distance loop vectorises like the bare
    floor (:func:`pair_distance_floor`): (1) r * inv_dr * 2^fbits truncated to int32 for all
    j > i into a row buffer, (2) one integer add per pair into a per-chunk int64 word
    ``count << PACK_SHIFT | sum of offsets``, offset = the low ``fbits`` bits (the position of
    r inside its bin in units of dr / 2^fbits). One read-modify-write per pair instead of
    two, and the words (8 bytes per bin) stay in L2. Words are flushed into float64 every
    ``flush_rows`` rows, before a count could reach 2^(63 - PACK_SHIFT) = 2^23 (the caller
    picks flush_rows <= 2^23 / N; the offsets then sum below 2^(fbits + 23) <= 2^PACK_SHIFT
    for fbits <= 17).
    Rows i and n-2-i are folded into one task (n pairs each) so that the chunks balance;
    each chunk owns a row of the output, summed by the caller (no atomics, no races).
    Requires nbins * 2^fbits <= 2^31 (the int32 buffer).
    """
    n = pos.shape[0]
    x = np.ascontiguousarray(pos[:, 0])
    y = np.ascontiguousarray(pos[:, 1])
    z = np.ascontiguousarray(pos[:, 2])
    cnt = np.zeros((nchunks, nbins), np.float64)
    off = np.zeros((nchunks, nbins), np.float64)
    scale = inv_dr * float(1 << fbits)
    mask = (1 << fbits) - 1
    one = np.int64(1) << PACK_SHIFT
    low = one - 1
    ntask = n // 2
    for c in prange(nchunks):
        h = np.zeros(nbins, np.int64)
        buf = np.empty(max(n, 1), np.int32)
        rows = 0
        for t in range(c, ntask, nchunks):
            for side in range(2):
                i = t if side == 0 else n - 2 - t
                if side == 1 and i == t:
                    continue
                if i < 0:
                    continue
                xi = x[i]
                yi = y[i]
                zi = z[i]
                m = n - 1 - i
                for jj in range(m):
                    j = i + 1 + jj
                    dx = x[j] - xi
                    dy = y[j] - yi
                    dz = z[j] - zi
                    buf[jj] = np.int32(math.sqrt(dx * dx + dy * dy + dz * dz) * scale)
                for jj in range(m):
                    v = buf[jj]
                    h[v >> fbits] += one + (v & mask)
                rows += 1
                if rows >= flush_rows:
                    for b in range(nbins):
                        hv = h[b]
                        if hv != 0:
                            cnt[c, b] += float(hv >> PACK_SHIFT)
                            off[c, b] += float(hv & low)
                            h[b] = 0
                    rows = 0
        for b in range(nbins):
            hv = h[b]
            if hv != 0:
                cnt[c, b] += float(hv >> PACK_SHIFT)
                off[c, b] += float(hv & low)
    return cnt, off


@njit(parallel=True, cache=True, fastmath=True)
def pair_histogram_float(pos, inv_dr, nbins, nchunks):
    """(count, sum of r) per bin in float64, one fused loop: the fallback for more than 2^23 bins."""
    n = pos.shape[0]
    x = np.ascontiguousarray(pos[:, 0])
    y = np.ascontiguousarray(pos[:, 1])
    z = np.ascontiguousarray(pos[:, 2])
    cnt = np.zeros((nchunks, nbins), np.float64)
    rs = np.zeros((nchunks, nbins), np.float64)
    ntask = n // 2
    for c in prange(nchunks):
        for t in range(c, ntask, nchunks):
            for side in range(2):
                i = t if side == 0 else n - 2 - t
                if side == 1 and i == t:
                    continue
                if i < 0:
                    continue
                xi = x[i]
                yi = y[i]
                zi = z[i]
                for j in range(i + 1, n):
                    dx = x[j] - xi
                    dy = y[j] - yi
                    dz = z[j] - zi
                    r = math.sqrt(dx * dx + dy * dy + dz * dz)
                    b = min(int(r * inv_dr), nbins - 1)
                    cnt[c, b] += 1.0
                    rs[c, b] += r
    return cnt, rs


@njit(parallel=True, cache=True, fastmath=True)
def pair_distance_floor(pos, nchunks):
    """The floor of any Debye code: the N(N-1)/2 distances and nothing else (their sum)."""
    n = pos.shape[0]
    x = np.ascontiguousarray(pos[:, 0])
    y = np.ascontiguousarray(pos[:, 1])
    z = np.ascontiguousarray(pos[:, 2])
    acc = np.zeros(nchunks)
    ntask = n // 2
    for c in prange(nchunks):
        s = 0.0
        for t in range(c, ntask, nchunks):
            for side in range(2):
                i = t if side == 0 else n - 2 - t
                if side == 1 and i == t:
                    continue
                if i < 0:
                    continue
                xi = x[i]
                yi = y[i]
                zi = z[i]
                for j in range(i + 1, n):
                    dx = x[j] - xi
                    dy = y[j] - yi
                    dz = z[j] - zi
                    s += math.sqrt(dx * dx + dy * dy + dz * dz)
        acc[c] = s
    return acc.sum()


@njit(parallel=True, cache=True, fastmath=True)
def debye_sum(q, r, w, absolute):
    """sum_b w_b sinc(q r_b) for every q (r_b > 0); with ``absolute`` sum_b w_b |sinc(q r_b)|."""
    out = np.empty(q.size)
    for k in prange(q.size):
        qk = q[k]
        s = 0.0
        if qk == 0.0:
            for b in range(r.size):
                s += w[b]
        else:
            for b in range(r.size):
                x = qk * r[b]
                v = math.sin(x) / x
                s += w[b] * (abs(v) if absolute else v)
        out[k] = s
    return out


@njit(parallel=True, cache=True, fastmath=True)
def debye_sum_uniform(q0, dq, nq, r, w, nchunks):
    """(sum_b w_b sinc(q_k r_b), sum_b w_b |sinc(q_k r_b)|) on the uniform grid q_k = q0 + k dq.

    The n_bins x n_q sines cost two sin/cos per bin: sin(q_k r_b) is the imaginary part of
    exp(i q0 r_b) exp(i dq r_b)^k, advanced by one complex rotation per q step; the loop
    over bins (inner) vectorises. Round-off grows by about one ulp per step (1e-13 after
    500 steps), far below the histogram's (q dr)^2/24.
    """
    nb = r.size
    acc = np.zeros((nchunks, nq))
    aab = np.zeros((nchunks, nq))
    per = (nb + nchunks - 1) // nchunks
    for c in prange(nchunks):
        lo = c * per
        hi = min(nb, lo + per)
        m = max(hi - lo, 0)
        cr = np.empty(m)
        ci = np.empty(m)
        rr = np.empty(m)
        ri = np.empty(m)
        wr = np.empty(m)
        for b in range(m):
            rb = r[lo + b]
            cr[b] = math.cos(q0 * rb)
            ci[b] = math.sin(q0 * rb)
            rr[b] = math.cos(dq * rb)
            ri[b] = math.sin(dq * rb)
            wr[b] = w[lo + b] / rb
        for k in range(nq):
            qk = q0 + k * dq
            s = 0.0
            sa = 0.0
            if qk == 0.0:
                for b in range(m):
                    s += w[lo + b]
                sa = s
            else:
                for b in range(m):
                    s += wr[b] * ci[b]
                    sa += wr[b] * abs(ci[b])
                s /= qk
                sa /= qk
            acc[c, k] = s
            aab[c, k] = sa
            for b in range(m):
                t = cr[b] * rr[b] - ci[b] * ri[b]
                ci[b] = cr[b] * ri[b] + ci[b] * rr[b]
                cr[b] = t
    out = np.zeros(nq)
    oab = np.zeros(nq)
    for c in range(nchunks):
        for k in range(nq):
            out[k] += acc[c, k]
            oab[k] += aab[c, k]
    return out, oab


@njit(parallel=True, cache=True, fastmath=True)
def direct_debye(pos, q):
    """Reference O(N^2 q) Debye sum sum_jk sinc(q r_jk) (tests, benchmarks)."""
    n = pos.shape[0]
    out = np.empty(q.size)
    for k in prange(q.size):
        s = float(n)
        for i in range(n):
            for j in range(i + 1, n):
                dx = pos[j, 0] - pos[i, 0]
                dy = pos[j, 1] - pos[i, 1]
                dz = pos[j, 2] - pos[i, 2]
                x = q[k] * math.sqrt(dx * dx + dy * dy + dz * dz)
                s += 2.0 * (math.sin(x) / x if x > 0 else 1.0)
        out[k] = s
    return out


@njit(cache=True, fastmath=True)
def _sinc(x):
    if abs(x) < 1e-8:
        return 1.0
    return math.sin(x) / x


@njit(cache=True, fastmath=True)
def _laue(x, n):
    """sin(n x/2)/sin(x/2) for integer n: the amplitude of n unit-spaced points centred on 0."""
    s = math.sin(0.5 * x)
    if abs(s) < 1e-9:
        m = round(x / (2.0 * math.pi))  # at a reciprocal-lattice point: the limit with its sign
        return float(n) if (m * (n - 1)) % 2 == 0 else -float(n)
    return math.sin(0.5 * n * x) / s


@njit(parallel=True, cache=True, fastmath=True)
def cuboid_model_sum(q, dirs, wts, a, n, half_edge, p_bulk, p_surf, dw_sigma, nsites, nbulk):
    """Ensemble-average powder intensity of an n x n x n simple-cubic cuboid of aligned cubes (n integer).

    <I(q)> = <|F(q)|^2 [sum_j p_j + D^2 (M^2 - sum_j p_j^2)]>_directions, with occupancy
    p_j (bulk/surface), uncorrelated Gaussian displacements (D = exp(-q^2 sigma^2 / 2)) and
    M = p_b B_n + (p_s - p_b)(B_n - B_{n-2}) the mean amplitude, B_n the 3-D Laue amplitude
    of a centred n^3 block.
    """
    nsurf = nsites - nbulk
    sp = p_bulk * nbulk + p_surf * nsurf
    sp2 = p_bulk * p_bulk * nbulk + p_surf * p_surf * nsurf
    out = np.empty(q.size)
    for k in prange(q.size):
        qk = q[k]
        d2 = math.exp(-qk * qk * dw_sigma * dw_sigma)
        s = 0.0
        for d in range(dirs.shape[0]):
            x0 = qk * dirs[d, 0]
            x1 = qk * dirs[d, 1]
            x2 = qk * dirs[d, 2]
            f = _sinc(x0 * half_edge) * _sinc(x1 * half_edge) * _sinc(x2 * half_edge)
            bn = _laue(x0 * a, n) * _laue(x1 * a, n) * _laue(x2 * a, n)
            if n > 2:
                bi = _laue(x0 * a, n - 2) * _laue(x1 * a, n - 2) * _laue(x2 * a, n - 2)
            else:
                bi = 0.0
            mm = p_bulk * bi + p_surf * (bn - bi)
            s += wts[d] * f * f * (sp + d2 * (mm * mm - sp2))
        out[k] = s
    return out
