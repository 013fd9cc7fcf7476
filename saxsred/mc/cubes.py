"""Unit cubes in numba: rotation matrices from quaternions, the exact overlap test, contact.

Units: cube edge sigma = 1. Orientations are unit quaternions ``(w, x, y, z)`` (HOOMD
order) with their rotation matrices as 9 floats, row-major (column k is body axis k in
the lab frame). :func:`cubes_overlap` is the 15-axis separating-axis test behind sphere
shortcuts (:func:`sat_overlap` the test alone, for callers that did the shortcuts);
:func:`contact_scale` the separation scale at which two cubes touch (pressure).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Padding added to |R_ij| in the separating-axis test. For (nearly) parallel edges the
#: cross-product axes are round-off (|L| ~ 1e-16): both sides of the test are noise and
#: ~1% of overlapping aligned pairs would be called disjoint (Ericson, Real-Time
#: Collision Detection, 4.4.1). 1e-12 is 1000x the round-off of the projections here;
#: the price is a conservative error on the contact distance below ~sqrt(eps) = 1e-6.
SAT_EPS = 1e-12


HALF = 0.5  # half edge of the unit cube


R_IN2 = 1.0  # (inscribed-sphere diameter)^2: centres closer than sigma always overlap


R_OUT2 = 3.0  # (circumscribed-sphere diameter)^2 = (sqrt(3) sigma)^2: farther never do


@njit(cache=True, inline="always")
def quat_to_rot(w, x, y, z, out):
    """Rotation matrix (row-major, 9 floats) of the unit quaternion (w, x, y, z)."""
    out[0] = 1.0 - 2.0 * (y * y + z * z)
    out[1] = 2.0 * (x * y - w * z)
    out[2] = 2.0 * (x * z + w * y)
    out[3] = 2.0 * (x * y + w * z)
    out[4] = 1.0 - 2.0 * (x * x + z * z)
    out[5] = 2.0 * (y * z - w * x)
    out[6] = 2.0 * (x * z - w * y)
    out[7] = 2.0 * (y * z + w * x)
    out[8] = 1.0 - 2.0 * (x * x + y * y)


@njit(cache=True)
def quats_to_rots(q):
    """Rotation matrices (n, 9) of unit quaternions (n, 4)."""
    n = q.shape[0]
    out = np.empty((n, 9))
    for i in range(n):
        quat_to_rot(q[i, 0], q[i, 1], q[i, 2], q[i, 3], out[i])
    return out


@njit(cache=True, inline="always")
def sat_overlap(tx, ty, tz, A, B, eps):
    """True if unit cubes A and B overlap (touching counts); t = centre B - centre A."""
    h = HALF
    # T in A's frame and R_ij = a_i . b_j (columns of the row-major matrices)
    T0 = tx * A[0] + ty * A[3] + tz * A[6]
    T1 = tx * A[1] + ty * A[4] + tz * A[7]
    T2 = tx * A[2] + ty * A[5] + tz * A[8]
    R00 = A[0] * B[0] + A[3] * B[3] + A[6] * B[6]
    R01 = A[0] * B[1] + A[3] * B[4] + A[6] * B[7]
    R02 = A[0] * B[2] + A[3] * B[5] + A[6] * B[8]
    Q00 = abs(R00) + eps
    Q01 = abs(R01) + eps
    Q02 = abs(R02) + eps
    # face axes of A first: in a crystal the face neighbour is separated by one of them
    if abs(T0) > h * (1.0 + Q00 + Q01 + Q02):
        return False
    R10 = A[1] * B[0] + A[4] * B[3] + A[7] * B[6]
    R11 = A[1] * B[1] + A[4] * B[4] + A[7] * B[7]
    R12 = A[1] * B[2] + A[4] * B[5] + A[7] * B[8]
    Q10 = abs(R10) + eps
    Q11 = abs(R11) + eps
    Q12 = abs(R12) + eps
    if abs(T1) > h * (1.0 + Q10 + Q11 + Q12):
        return False
    R20 = A[2] * B[0] + A[5] * B[3] + A[8] * B[6]
    R21 = A[2] * B[1] + A[5] * B[4] + A[8] * B[7]
    R22 = A[2] * B[2] + A[5] * B[5] + A[8] * B[8]
    Q20 = abs(R20) + eps
    Q21 = abs(R21) + eps
    Q22 = abs(R22) + eps
    if abs(T2) > h * (1.0 + Q20 + Q21 + Q22):
        return False
    # face axes of B
    if abs(T0 * R00 + T1 * R10 + T2 * R20) > h * (1.0 + Q00 + Q10 + Q20):
        return False
    if abs(T0 * R01 + T1 * R11 + T2 * R21) > h * (1.0 + Q01 + Q11 + Q21):
        return False
    if abs(T0 * R02 + T1 * R12 + T2 * R22) > h * (1.0 + Q02 + Q12 + Q22):
        return False
    # nine edge-edge axes a_i x b_j (Ericson 2005, eq. in 4.4.1), all half-extents h
    if abs(T2 * R10 - T1 * R20) > h * (Q20 + Q10 + Q02 + Q01):
        return False
    if abs(T2 * R11 - T1 * R21) > h * (Q21 + Q11 + Q02 + Q00):
        return False
    if abs(T2 * R12 - T1 * R22) > h * (Q22 + Q12 + Q01 + Q00):
        return False
    if abs(T0 * R20 - T2 * R00) > h * (Q20 + Q00 + Q12 + Q11):
        return False
    if abs(T0 * R21 - T2 * R01) > h * (Q21 + Q01 + Q12 + Q10):
        return False
    if abs(T0 * R22 - T2 * R02) > h * (Q22 + Q02 + Q11 + Q10):
        return False
    if abs(T1 * R00 - T0 * R10) > h * (Q10 + Q00 + Q22 + Q21):
        return False
    if abs(T1 * R01 - T0 * R11) > h * (Q11 + Q01 + Q22 + Q20):
        return False
    if abs(T1 * R02 - T0 * R12) > h * (Q12 + Q02 + Q21 + Q20):
        return False
    return True


@njit(cache=True, inline="always")
def cubes_overlap(tx, ty, tz, A, B):
    """Exact overlap of two unit cubes with rotations A, B (row-major 9) at separation t.

    Sphere shortcuts first (|t| < sigma: inscribed spheres overlap; |t| > sqrt(3) sigma:
    circumscribed spheres are disjoint), then the 15-axis separating-axis test.
    """
    r2 = tx * tx + ty * ty + tz * tz
    if r2 < R_IN2:
        return True
    if r2 > R_OUT2:
        return False
    return sat_overlap(tx, ty, tz, A, B, SAT_EPS)


@njit(cache=True)
def overlap_pairs(t, A, B, eps=SAT_EPS, shortcuts=True):
    """Vectorised overlap test: ``t`` (n, 3), ``A``, ``B`` (n, 9) -> bool (n,).

    ``eps`` is the |R_ij| padding (0 shows the round-off trap); ``shortcuts=False``
    skips the sphere tests so that the SAT alone is exercised.
    """
    n = t.shape[0]
    out = np.empty(n, dtype=np.bool_)
    for k in range(n):
        tx, ty, tz = t[k, 0], t[k, 1], t[k, 2]
        r2 = tx * tx + ty * ty + tz * tz
        if shortcuts and r2 < R_IN2:
            out[k] = True
        elif shortcuts and r2 > R_OUT2:
            out[k] = False
        else:
            out[k] = sat_overlap(tx, ty, tz, A[k], B[k], eps)
    return out


@njit(cache=True, inline="always")
def _axis_lam(rad, proj, best):
    p = abs(proj)
    if p > 0.0:
        lam = rad / p
        if lam < best:
            return lam
    return best


@njit(cache=True, inline="always")
def contact_scale(tx, ty, tz, A, B, lo=0.0):
    """Largest lambda at which cubes at separation lambda*t touch (orientations fixed).

    The cubes are disjoint iff some axis L has lambda |t.L| > r_A(L) + r_B(L), so the
    contact is lambda* = min_L (r_A + r_B) / |t.L| over the 15 SAT axes (exact; the
    padding keeps degenerate cross axes from giving lambda* ~ 0). Stops as soon as an
    axis gives lambda < ``lo`` and returns that bound: the pressure only needs lambda*
    near 1, and in a crystal the face axis rules most pairs out at once. Scalars only
    (no temporary arrays): it runs once per pair per pressure sample.
    """
    h = HALF
    eps = SAT_EPS
    T0 = tx * A[0] + ty * A[3] + tz * A[6]
    T1 = tx * A[1] + ty * A[4] + tz * A[7]
    T2 = tx * A[2] + ty * A[5] + tz * A[8]
    R00 = A[0] * B[0] + A[3] * B[3] + A[6] * B[6]
    R01 = A[0] * B[1] + A[3] * B[4] + A[6] * B[7]
    R02 = A[0] * B[2] + A[3] * B[5] + A[6] * B[8]
    R10 = A[1] * B[0] + A[4] * B[3] + A[7] * B[6]
    R11 = A[1] * B[1] + A[4] * B[4] + A[7] * B[7]
    R12 = A[1] * B[2] + A[4] * B[5] + A[7] * B[8]
    R20 = A[2] * B[0] + A[5] * B[3] + A[8] * B[6]
    R21 = A[2] * B[1] + A[5] * B[4] + A[8] * B[7]
    R22 = A[2] * B[2] + A[5] * B[5] + A[8] * B[8]
    Q00, Q01, Q02 = abs(R00) + eps, abs(R01) + eps, abs(R02) + eps
    Q10, Q11, Q12 = abs(R10) + eps, abs(R11) + eps, abs(R12) + eps
    Q20, Q21, Q22 = abs(R20) + eps, abs(R21) + eps, abs(R22) + eps
    b = np.inf
    # face axes of A, then of B
    b = _axis_lam(h * (1.0 + Q00 + Q01 + Q02), T0, b)
    b = _axis_lam(h * (1.0 + Q10 + Q11 + Q12), T1, b)
    b = _axis_lam(h * (1.0 + Q20 + Q21 + Q22), T2, b)
    if b < lo:
        return b
    b = _axis_lam(h * (1.0 + Q00 + Q10 + Q20), T0 * R00 + T1 * R10 + T2 * R20, b)
    b = _axis_lam(h * (1.0 + Q01 + Q11 + Q21), T0 * R01 + T1 * R11 + T2 * R21, b)
    b = _axis_lam(h * (1.0 + Q02 + Q12 + Q22), T0 * R02 + T1 * R12 + T2 * R22, b)
    if b < lo:
        return b
    # nine edge-edge axes a_i x b_j
    b = _axis_lam(h * (Q20 + Q10 + Q02 + Q01), T2 * R10 - T1 * R20, b)
    b = _axis_lam(h * (Q21 + Q11 + Q02 + Q00), T2 * R11 - T1 * R21, b)
    b = _axis_lam(h * (Q22 + Q12 + Q01 + Q00), T2 * R12 - T1 * R22, b)
    b = _axis_lam(h * (Q20 + Q00 + Q12 + Q11), T0 * R20 - T2 * R00, b)
    b = _axis_lam(h * (Q21 + Q01 + Q12 + Q10), T0 * R21 - T2 * R01, b)
    b = _axis_lam(h * (Q22 + Q02 + Q11 + Q10), T0 * R22 - T2 * R02, b)
    b = _axis_lam(h * (Q10 + Q00 + Q22 + Q21), T1 * R00 - T0 * R10, b)
    b = _axis_lam(h * (Q11 + Q01 + Q22 + Q20), T1 * R01 - T0 * R11, b)
    b = _axis_lam(h * (Q12 + Q02 + Q21 + Q20), T1 * R02 - T0 * R12, b)
    return b
