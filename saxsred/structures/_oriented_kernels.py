"""numba kernels of the exact oriented-cube powder average (:mod:`saxsred.structures.oriented`).

The amplitude sum over cubes is done for a block of up to 128 cubes at a time with the
cube index innermost, so that the phase rotations and the sums over cubes vectorise;
sines and cosines come from :func:`sincos`, a branch-free polynomial that vectorises too
(libm's sin and cos are scalar calls, and they were most of the cost).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

#: cubes per block: the block's phase, rotation and cube-factor arrays stay in L1
JBLOCK = 128

_INV_2PI = 1.0 / (2.0 * math.pi)
_2PI = 2.0 * math.pi


#: Taylor coefficients of sin(h)/h and cos(h) in h^2, highest first (Horner)
_SIN_COEF = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(10, -1, -1))
_COS_COEF = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(10, -1, -1))


@njit(cache=True, fastmath=True)
def sincos(x):
    """(cos x, sin x) to about 2.4e-16 |x| + 4e-16, branch-free (vectorises).

    x is reduced to y in [-pi, pi] (the rounding of 2 pi costs about 2.4e-16 |x| in the
    phase), then h = y/2 in [-pi/2, pi/2] by Taylor series to h^21 / h^20 (truncation
    below 2e-17) and cos y = c^2 - s^2, sin y = 2 s c.
    """
    k = math.floor(x * _INV_2PI + 0.5)
    h = 0.5 * (x - k * _2PI)
    h2 = h * h
    s = 0.0
    for cf in _SIN_COEF:
        s = s * h2 + cf
    c = 0.0
    for cf in _COS_COEF:
        c = c * h2 + cf
    s *= h
    return c * c - s * s, 2.0 * s * c


@njit(cache=True, fastmath=True)
def _sinc(x):
    if abs(x) < 1e-8:
        return 1.0
    return math.sin(x) / x


@njit(parallel=True, cache=True, fastmath=True)
def oriented_sum(pos, body, half_edge, q0, dq, nq, dirs, wts, common, nchunks):
    """Powder average of |sum_j F_j(q n) exp(i q n.r_j)|^2 over the direction nodes ``dirs``.

    q runs over q0 + k dq, k < nq: the phase of each particle is advanced by one complex
    rotation per q step (the block is short, so the round-off stays near 1e-14).
    ``body[j]`` holds the cube's axes as rows (lab frame), so its body-frame components
    of n are body[j] @ n; F_j = prod_i sinc(q c_i e_j/2). With ``common`` every cube has
    the orientation and edge of cube 0, F factors out of the sum and costs nothing per cube.
    """
    n = pos.shape[0]
    m = dirs.shape[0]
    x = np.ascontiguousarray(pos[:, 0])
    y = np.ascontiguousarray(pos[:, 1])
    z = np.ascontiguousarray(pos[:, 2])
    # the cube axes scaled by the half edge, one contiguous array per component
    ax = np.empty((9, n))
    for j in range(n):
        for a in range(3):
            for b in range(3):
                ax[3 * a + b, j] = body[j, a, b] * half_edge[j]
    acc = np.zeros((nchunks, nq))
    iq3 = np.zeros(nq)
    for k in range(nq):
        qk = q0 + k * dq
        if qk > 0.0:
            iq3[k] = 1.0 / (qk * qk * qk)
    jb = JBLOCK
    for c in prange(nchunks):
        are = np.zeros(nq)
        aim = np.zeros(nq)
        cr = np.empty(jb)
        ci = np.empty(jb)
        rr = np.empty(jb)
        ri = np.empty(jb)
        # per-cube factor: sin(q b_i) (imaginary parts advanced by rotation) and 1/(b0 b1 b2)
        s0r = np.empty(jb)
        s0i = np.empty(jb)
        s1r = np.empty(jb)
        s1i = np.empty(jb)
        s2r = np.empty(jb)
        s2i = np.empty(jb)
        t0r = np.empty(jb)
        t0i = np.empty(jb)
        t1r = np.empty(jb)
        t1i = np.empty(jb)
        t2r = np.empty(jb)
        t2i = np.empty(jb)
        ib = np.empty(jb)
        for d in range(c, m, nchunks):
            nx = dirs[d, 0]
            ny = dirs[d, 1]
            nz = dirs[d, 2]
            are[:] = 0.0
            aim[:] = 0.0
            for j0 in range(0, n, jb):
                nb = min(jb, n - j0)
                for u in range(nb):
                    j = j0 + u
                    p = x[j] * nx + y[j] * ny + z[j] * nz
                    cr[u], ci[u] = sincos(q0 * p)
                    rr[u], ri[u] = sincos(dq * p)
                if common:
                    for k in range(nq):
                        sr = 0.0
                        si = 0.0
                        for u in range(nb):
                            a = cr[u]
                            b = ci[u]
                            sr += a
                            si += b
                            cr[u] = a * rr[u] - b * ri[u]
                            ci[u] = a * ri[u] + b * rr[u]
                        are[k] += sr
                        aim[k] += si
                    continue
                # each sinc(q b_i) = Im(exp(i q b_i)) / (q b_i), the sines advanced by rotation
                # like the phase; |b_i| is floored at 1e-9 nm (sinc there is 1 - 1e-19 q^2)
                for u in range(nb):
                    j = j0 + u
                    e0 = ax[0, j] * nx + ax[1, j] * ny + ax[2, j] * nz
                    e1 = ax[3, j] * nx + ax[4, j] * ny + ax[5, j] * nz
                    e2 = ax[6, j] * nx + ax[7, j] * ny + ax[8, j] * nz
                    e0 = e0 if abs(e0) >= 1e-9 else 1e-9
                    e1 = e1 if abs(e1) >= 1e-9 else 1e-9
                    e2 = e2 if abs(e2) >= 1e-9 else 1e-9
                    ib[u] = 1.0 / (e0 * e1 * e2)
                    s0r[u], s0i[u] = sincos(q0 * e0)
                    s1r[u], s1i[u] = sincos(q0 * e1)
                    s2r[u], s2i[u] = sincos(q0 * e2)
                    t0r[u], t0i[u] = sincos(dq * e0)
                    t1r[u], t1i[u] = sincos(dq * e1)
                    t2r[u], t2i[u] = sincos(dq * e2)
                for k in range(nq):
                    g = iq3[k]
                    # F = prod sin(q b_i) / (q^3 b0 b1 b2); at q = 0, F = 1 (fz, fm select it)
                    fz = 0.0 if g > 0.0 else 1.0
                    fm = 1.0 - fz
                    sr = 0.0
                    si = 0.0
                    for u in range(nb):
                        fu = fz + fm * (s0i[u] * s1i[u] * s2i[u] * ib[u])
                        a = cr[u]
                        b = ci[u]
                        sr += fu * a
                        si += fu * b
                        cr[u] = a * rr[u] - b * ri[u]
                        ci[u] = a * ri[u] + b * rr[u]
                        a = s0r[u]
                        b = s0i[u]
                        s0r[u] = a * t0r[u] - b * t0i[u]
                        s0i[u] = a * t0i[u] + b * t0r[u]
                        a = s1r[u]
                        b = s1i[u]
                        s1r[u] = a * t1r[u] - b * t1i[u]
                        s1i[u] = a * t1i[u] + b * t1r[u]
                        a = s2r[u]
                        b = s2i[u]
                        s2r[u] = a * t2r[u] - b * t2i[u]
                        s2i[u] = a * t2i[u] + b * t2r[u]
                    gs = g if g > 0.0 else 1.0
                    are[k] += sr * gs
                    aim[k] += si * gs
            w = wts[d]
            if common:
                e0 = (body[0, 0, 0] * nx + body[0, 0, 1] * ny + body[0, 0, 2] * nz) * half_edge[0]
                e1 = (body[0, 1, 0] * nx + body[0, 1, 1] * ny + body[0, 1, 2] * nz) * half_edge[0]
                e2 = (body[0, 2, 0] * nx + body[0, 2, 1] * ny + body[0, 2, 2] * nz) * half_edge[0]
                for k in range(nq):
                    qk = q0 + k * dq
                    fc = _sinc(qk * e0) * _sinc(qk * e1) * _sinc(qk * e2)
                    acc[c, k] += w * fc * fc * (are[k] * are[k] + aim[k] * aim[k])
            else:
                for k in range(nq):
                    acc[c, k] += w * (are[k] * are[k] + aim[k] * aim[k])
    out = np.zeros(nq)
    for c in range(nchunks):
        for k in range(nq):
            out[k] += acc[c, k]
    return out
