"""Numba kernels of the hard-cube Monte Carlo: pure functions on arrays.

Units: cube edge sigma = 1, energies in kT (``beta_eps``). Orientations are unit
quaternions ``(w, x, y, z)`` (HOOMD order) with their rotation matrices cached as
``rot[i]`` (9 floats, row-major; column k is body axis k in the lab frame).
Positions live in the periodic box ``[-L/2, L/2)`` per axis (orthorhombic).

The random stream is xoshiro256** (Blackman & Vigna 2018) on a ``uint64[4]`` state
that the caller owns, seeded by splitmix64: a run is reproducible bit for bit and no
hidden global generator is touched.
"""

from __future__ import annotations

import math

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


# ----------------------------------------------------------------------------- RNG
@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def rng_seed(seed: int) -> np.ndarray:
    """xoshiro256** state from an integer seed (splitmix64 expansion)."""
    s = np.empty(4, dtype=np.uint64)
    z = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    for k in range(4):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        s[k] = x ^ (x >> np.uint64(31))
    return s


@njit(cache=True, inline="always")
def rng_next(s):
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@njit(cache=True, inline="always")
def rng_uniform(s) -> float:
    """Uniform double in [0, 1) from the top 53 bits."""
    return float(rng_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def rng_uniform_array(s, n):
    """``n`` uniforms from state ``s`` (used by tests of the stream)."""
    out = np.empty(n)
    for k in range(n):
        out[k] = rng_uniform(s)
    return out


# ----------------------------------------------------------------------- quaternions
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
def random_unit_vector(s):
    # Archimedes: z uniform in [-1, 1] and phi uniform give a uniform direction.
    z = 2.0 * rng_uniform(s) - 1.0
    phi = 2.0 * math.pi * rng_uniform(s)
    r = math.sqrt(max(0.0, 1.0 - z * z))
    return r * math.cos(phi), r * math.sin(phi), z


# ------------------------------------------------------------------ overlap (SAT)
@njit(cache=True, inline="always")
def _sat(tx, ty, tz, A, B, eps):
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
    return _sat(tx, ty, tz, A, B, SAT_EPS)


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
            out[k] = _sat(tx, ty, tz, A[k], B[k], eps)
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


# ------------------------------------------------------------------- box and lists
@njit(cache=True, inline="always")
def _wrap(d, L):
    return d - L * math.floor(d / L + 0.5)


@njit(cache=True, inline="always")
def _mi(d, L):
    """Minimum image of d for |d| < 1.5 L (both ends inside the box): a branch, no division.

    The hot loops call this ~30 times per trial move; the division of :func:`_wrap` was
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
                                dx = _mi(pos[j, 0] - pos[i, 0], box[0])
                                dy = _mi(pos[j, 1] - pos[i, 1], box[1])
                                dz = _mi(pos[j, 2] - pos[i, 2], box[2])
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
                dx = _mi(pos[j, 0] - pos[i, 0], box[0])
                dy = _mi(pos[j, 1] - pos[i, 1], box[1])
                dz = _mi(pos[j, 2] - pos[i, 2], box[2])
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


# --------------------------------------------------------------------------- moves
@njit(cache=True)
def mc_moves(
    pos,
    quat,
    rot,
    box,
    nbr,
    nn,
    ref,
    r_list,
    skin,
    n_moves,
    d_trans,
    d_rot,
    p_trans,
    hard,
    beta_eps,
    well_range,
    rng,
    counts,
):
    """``n_moves`` Metropolis trial moves (single particle, translate or rotate).

    Translation: uniform in [-d, d]^3 (symmetric). Rotation: q' = r q with r a rotation
    about a uniform axis by an angle uniform in [-d_rot, d_rot]; r and r^-1 are equally
    likely, so the proposal is symmetric with respect to the Haar measure. Square well
    from the centres: E = beta_eps * (number of pairs with r < well_range); rotations
    never change it. ``counts`` accumulates [translations tried, accepted, rotations
    tried, accepted, pair tests, list rebuilds, change of the bond count]. The list
    stays valid while every particle is within skin/2 of its reference position; a trial
    that would leave that ball triggers a rebuild first (deterministic: the chain does
    not depend on when lists are rebuilt). Requires sqrt(3) d_trans <= skin/2.
    """
    n = pos.shape[0]
    half_skin2 = 0.25 * skin * skin
    well2 = well_range * well_range
    use_well = beta_eps != 0.0
    interact = hard or use_well
    Bnew = np.empty(9)
    # box and counters in locals: a store to ``counts`` inside the loop would force
    # reloads of everything that might alias it (box, positions) after every pair test
    L0 = box[0]
    L1 = box[1]
    L2 = box[2]
    n_tt = n_ta = n_rt = n_ra = n_tests = n_reb = n_dn = 0
    for _ in range(n_moves):
        i = int(rng_uniform(rng) * n)
        if rng_uniform(rng) < p_trans:
            n_tt += 1
            nx = pos[i, 0] + d_trans * (2.0 * rng_uniform(rng) - 1.0)
            ny = pos[i, 1] + d_trans * (2.0 * rng_uniform(rng) - 1.0)
            nz = pos[i, 2] + d_trans * (2.0 * rng_uniform(rng) - 1.0)
            nx = _mi(nx, L0)
            ny = _mi(ny, L1)
            nz = _mi(nz, L2)
            if interact:
                ex = _mi(nx - ref[i, 0], L0)
                ey = _mi(ny - ref[i, 1], L1)
                ez = _mi(nz - ref[i, 2], L2)
                if ex * ex + ey * ey + ez * ez > half_skin2:
                    build_nlist(pos, box, r_list, nbr, nn, ref)
                    n_reb += 1
                Ai = rot[i]
                reject = False
                dn = 0
                for k in range(nn[i]):
                    j = nbr[i, k]
                    tx = _mi(pos[j, 0] - nx, L0)
                    ty = _mi(pos[j, 1] - ny, L1)
                    tz = _mi(pos[j, 2] - nz, L2)
                    r2 = tx * tx + ty * ty + tz * tz
                    if hard and r2 <= R_OUT2:
                        n_tests += 1
                        if r2 < R_IN2 or _sat(tx, ty, tz, Ai, rot[j], SAT_EPS):
                            reject = True
                            break
                    if use_well:
                        if r2 < well2:
                            dn += 1
                        ox = _mi(pos[j, 0] - pos[i, 0], L0)
                        oy = _mi(pos[j, 1] - pos[i, 1], L1)
                        oz = _mi(pos[j, 2] - pos[i, 2], L2)
                        if ox * ox + oy * oy + oz * oz < well2:
                            dn -= 1
                if reject:
                    continue
                if use_well and dn != 0:
                    de = beta_eps * dn
                    if de > 0.0 and rng_uniform(rng) >= math.exp(-de):
                        continue
                    n_dn += dn
            pos[i, 0] = nx
            pos[i, 1] = ny
            pos[i, 2] = nz
            n_ta += 1
        else:
            n_rt += 1
            ax, ay, az = random_unit_vector(rng)
            ang = d_rot * (2.0 * rng_uniform(rng) - 1.0)
            sh = math.sin(0.5 * ang)
            rw = math.cos(0.5 * ang)
            rx = sh * ax
            ry = sh * ay
            rz = sh * az
            qw, qx, qy, qz = quat[i, 0], quat[i, 1], quat[i, 2], quat[i, 3]
            # q' = r q (rotation in the lab frame), renormalised against drift
            nw = rw * qw - rx * qx - ry * qy - rz * qz
            nx = rw * qx + rx * qw + ry * qz - rz * qy
            ny = rw * qy - rx * qz + ry * qw + rz * qx
            nz = rw * qz + rx * qy - ry * qx + rz * qw
            norm = 1.0 / math.sqrt(nw * nw + nx * nx + ny * ny + nz * nz)
            nw *= norm
            nx *= norm
            ny *= norm
            nz *= norm
            quat_to_rot(nw, nx, ny, nz, Bnew)
            if hard:
                reject = False
                for k in range(nn[i]):
                    j = nbr[i, k]
                    tx = _mi(pos[j, 0] - pos[i, 0], L0)
                    ty = _mi(pos[j, 1] - pos[i, 1], L1)
                    tz = _mi(pos[j, 2] - pos[i, 2], L2)
                    r2 = tx * tx + ty * ty + tz * tz
                    if r2 <= R_OUT2:
                        n_tests += 1
                        if r2 < R_IN2 or _sat(tx, ty, tz, Bnew, rot[j], SAT_EPS):
                            reject = True
                            break
                if reject:
                    continue
            quat[i, 0] = nw
            quat[i, 1] = nx
            quat[i, 2] = ny
            quat[i, 3] = nz
            for m in range(9):
                rot[i, m] = Bnew[m]
            n_ra += 1
    counts[0] += n_tt
    counts[1] += n_ta
    counts[2] += n_rt
    counts[3] += n_ra
    counts[4] += n_tests
    counts[5] += n_reb
    counts[6] += n_dn


# -------------------------------------------------------------------- full recounts
@njit(cache=True)
def count_overlaps(pos, rot, box):
    """Number of overlapping pairs, all pairs (O(N^2)), independent of the lists."""
    n = pos.shape[0]
    c = 0
    for i in range(n):
        for j in range(i + 1, n):
            tx = _wrap(pos[j, 0] - pos[i, 0], box[0])
            ty = _wrap(pos[j, 1] - pos[i, 1], box[1])
            tz = _wrap(pos[j, 2] - pos[i, 2], box[2])
            if cubes_overlap(tx, ty, tz, rot[i], rot[j]):
                c += 1
    return c


@njit(cache=True)
def count_bonds(pos, box, well_range):
    """Number of pairs with centre distance < well_range (all pairs, minimum image)."""
    n = pos.shape[0]
    w2 = well_range * well_range
    c = 0
    for i in range(n):
        for j in range(i + 1, n):
            tx = _wrap(pos[j, 0] - pos[i, 0], box[0])
            ty = _wrap(pos[j, 1] - pos[i, 1], box[1])
            tz = _wrap(pos[j, 2] - pos[i, 2], box[2])
            if tx * tx + ty * ty + tz * tz < w2:
                c += 1
    return c


@njit(cache=True)
def overlaps_one(p, R, pos, rot, box, m):
    """True if a cube at ``p`` with rotation ``R`` overlaps any of the first m cubes."""
    for j in range(m):
        tx = _wrap(pos[j, 0] - p[0], box[0])
        ty = _wrap(pos[j, 1] - p[1], box[1])
        tz = _wrap(pos[j, 2] - p[2], box[2])
        if cubes_overlap(tx, ty, tz, R, rot[j]):
            return True
    return False


# ------------------------------------------------------------------------ pressure
@njit(cache=True)
def sdf_histograms(pos, rot, box, nbr, nn, xmax, hist_hard, hist_well, hard, well_range):
    """Accumulate the scale distribution functions of virtual volume moves.

    Hard core (compression, Eppenga & Frenkel 1984, HOOMD's SDF): for each pair the
    scale x at which positions scaled by (1 - x) first overlap, x = 1 - lambda*.
    Square well (expansion): for each bonded pair the scale x at which positions scaled
    by (1 + x) leave the well, x = Delta / r - 1. Histograms over [0, xmax), each pair
    counted once; the caller normalises (see :func:`saxsred.mc.observables`).
    Requires a list built within the last move (pairs up to r_list).
    """
    n = pos.shape[0]
    nb_h = hist_hard.shape[0]
    nb_w = hist_well.shape[0]
    w2 = well_range * well_range
    rmax2 = R_OUT2 / ((1.0 - xmax) * (1.0 - xmax))
    lam_lo = 1.0 - xmax  # pairs that touch only after a compression beyond xmax are not binned
    for i in range(n):
        for k in range(nn[i]):
            j = nbr[i, k]
            if j <= i:
                continue
            tx = _mi(pos[j, 0] - pos[i, 0], box[0])
            ty = _mi(pos[j, 1] - pos[i, 1], box[1])
            tz = _mi(pos[j, 2] - pos[i, 2], box[2])
            r2 = tx * tx + ty * ty + tz * tz
            if hard and r2 < rmax2:
                lam = contact_scale(tx, ty, tz, rot[i], rot[j], lam_lo)
                x = 1.0 - lam
                if 0.0 <= x < xmax:
                    hist_hard[int(x / xmax * nb_h)] += 1
            if nb_w > 0 and r2 < w2:
                x = well_range / math.sqrt(r2) - 1.0
                if 0.0 <= x < xmax:
                    hist_well[int(x / xmax * nb_w)] += 1


# ----------------------------------------------------------------- virial integrals
@njit(cache=True)
def virial_b2(n, aligned, seed):
    """B2 / sigma^3 by Monte Carlo: half the excluded volume, r uniform in [-sqrt3, sqrt3]^3.

    Returns (estimate, standard error). Orientations Haar-random (uniform quaternions
    from normalised 4-D Gaussians via Box-Muller), or a common random one if aligned.
    """
    s = rng_seed(seed)
    c = math.sqrt(3.0)
    vol = (2.0 * c) ** 3
    A = np.empty(9)
    B = np.empty(9)
    q = np.empty(4)
    hits = 0
    for _ in range(n):
        _random_quat(s, q)
        quat_to_rot(q[0], q[1], q[2], q[3], A)
        if aligned:
            for m in range(9):
                B[m] = A[m]
        else:
            _random_quat(s, q)
            quat_to_rot(q[0], q[1], q[2], q[3], B)
        tx = c * (2.0 * rng_uniform(s) - 1.0)
        ty = c * (2.0 * rng_uniform(s) - 1.0)
        tz = c * (2.0 * rng_uniform(s) - 1.0)
        if cubes_overlap(tx, ty, tz, A, B):
            hits += 1
    p = hits / n
    return 0.5 * vol * p, 0.5 * vol * math.sqrt(p * (1.0 - p) / n)


@njit(cache=True)
def virial_b3_aligned(n, seed):
    """B3 / sigma^6 of aligned cubes (one random common frame per sample) by Monte Carlo.

    B3 = -(1/3) int int f12 f13 f23 = (1/3) vol^2 P(all three pairs overlap), r2 and r3
    uniform in [-1.8, 1.8]^3 (contains every overlapping position). Returns (B3, s.e.).
    """
    s = rng_seed(seed)
    c = 1.8
    vol = (2.0 * c) ** 3
    A = np.empty(9)
    q = np.empty(4)
    hits = 0
    for _ in range(n):
        _random_quat(s, q)
        quat_to_rot(q[0], q[1], q[2], q[3], A)
        x2 = c * (2.0 * rng_uniform(s) - 1.0)
        y2 = c * (2.0 * rng_uniform(s) - 1.0)
        z2 = c * (2.0 * rng_uniform(s) - 1.0)
        x3 = c * (2.0 * rng_uniform(s) - 1.0)
        y3 = c * (2.0 * rng_uniform(s) - 1.0)
        z3 = c * (2.0 * rng_uniform(s) - 1.0)
        if (
            cubes_overlap(x2, y2, z2, A, A)
            and cubes_overlap(x3, y3, z3, A, A)
            and cubes_overlap(x3 - x2, y3 - y2, z3 - z2, A, A)
        ):
            hits += 1
    p = hits / n
    return vol * vol * p / 3.0, vol * vol * math.sqrt(p * (1.0 - p) / n) / 3.0


@njit(cache=True, inline="always")
def _gauss(s):
    u1 = 1.0 - rng_uniform(s)
    u2 = rng_uniform(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def _random_quat(s, q):
    # a normalised 4-D Gaussian is uniform on S^3, i.e. Haar-uniform on SO(3)
    nrm = 0.0
    for m in range(4):
        q[m] = _gauss(s)
        nrm += q[m] * q[m]
    nrm = 1.0 / math.sqrt(nrm)
    for m in range(4):
        q[m] *= nrm
