"""Numba kernels of the hard-cube Monte Carlo: pure functions on arrays.

Units: cube edge sigma = 1, energies in kT (``beta_eps``). Orientations are unit
quaternions ``(w, x, y, z)`` (HOOMD order) with their rotation matrices cached as
``rot[i]`` (9 floats, row-major; column k is body axis k in the lab frame).
Positions live in the periodic box ``[-L/2, L/2)`` per axis (orthorhombic).

The random stream is xoshiro256** (Blackman & Vigna 2018) on a ``uint64[4]`` state
that the caller owns, seeded by splitmix64: a run is reproducible bit for bit and no
hidden global generator is touched.

This module holds the trial moves (:func:`mc_moves`), the full recounts, the pressure
histograms and the virial integrals. Their building blocks live in :mod:`saxsred.mc.rng`
(the random stream), :mod:`saxsred.mc.cubes` (rotations, overlap, contact) and
:mod:`saxsred.mc.box` (minimum image, neighbour list); their names are re-exported here,
so ``from saxsred.mc import _kernels as K; K.overlap_pairs(...)`` works as before.

numba caches each kernel on disk (``cache=True``) and checks only the file that defines
it: after editing a kernel in one of :mod:`saxsred.mc.rng`, :mod:`saxsred.mc.cubes` or
:mod:`saxsred.mc.box`, the cached kernels of other files that call it are stale until
their own file changes or the cache (``__pycache__/*.nbi``, ``*.nbc``) is removed.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .box import build_nlist, min_image, wrap
from .cubes import (
    HALF,
    R_IN2,
    R_OUT2,
    SAT_EPS,
    contact_scale,
    cubes_overlap,
    overlap_pairs,
    quat_to_rot,
    quats_to_rots,
    sat_overlap,
)
from .rng import (
    gauss,
    random_quat,
    random_unit_vector,
    rng_next,
    rng_seed,
    rng_uniform,
    rng_uniform_array,
)

__all__ = [
    "HALF",
    "R_IN2",
    "R_OUT2",
    "SAT_EPS",
    "build_nlist",
    "contact_scale",
    "count_bonds",
    "count_overlaps",
    "cubes_overlap",
    "gauss",
    "mc_moves",
    "min_image",
    "overlap_pairs",
    "overlaps_one",
    "quat_to_rot",
    "quats_to_rots",
    "random_quat",
    "random_unit_vector",
    "rng_next",
    "rng_seed",
    "rng_uniform",
    "rng_uniform_array",
    "sat_overlap",
    "sdf_histograms",
    "virial_b2",
    "virial_b3_aligned",
    "wrap",
]


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
            nx = min_image(nx, L0)
            ny = min_image(ny, L1)
            nz = min_image(nz, L2)
            if interact:
                ex = min_image(nx - ref[i, 0], L0)
                ey = min_image(ny - ref[i, 1], L1)
                ez = min_image(nz - ref[i, 2], L2)
                if ex * ex + ey * ey + ez * ez > half_skin2:
                    build_nlist(pos, box, r_list, nbr, nn, ref)
                    n_reb += 1
                Ai = rot[i]
                reject = False
                dn = 0
                for k in range(nn[i]):
                    j = nbr[i, k]
                    tx = min_image(pos[j, 0] - nx, L0)
                    ty = min_image(pos[j, 1] - ny, L1)
                    tz = min_image(pos[j, 2] - nz, L2)
                    r2 = tx * tx + ty * ty + tz * tz
                    if hard and r2 <= R_OUT2:
                        n_tests += 1
                        if r2 < R_IN2 or sat_overlap(tx, ty, tz, Ai, rot[j], SAT_EPS):
                            reject = True
                            break
                    if use_well:
                        if r2 < well2:
                            dn += 1
                        ox = min_image(pos[j, 0] - pos[i, 0], L0)
                        oy = min_image(pos[j, 1] - pos[i, 1], L1)
                        oz = min_image(pos[j, 2] - pos[i, 2], L2)
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
                    tx = min_image(pos[j, 0] - pos[i, 0], L0)
                    ty = min_image(pos[j, 1] - pos[i, 1], L1)
                    tz = min_image(pos[j, 2] - pos[i, 2], L2)
                    r2 = tx * tx + ty * ty + tz * tz
                    if r2 <= R_OUT2:
                        n_tests += 1
                        if r2 < R_IN2 or sat_overlap(tx, ty, tz, Bnew, rot[j], SAT_EPS):
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
            tx = wrap(pos[j, 0] - pos[i, 0], box[0])
            ty = wrap(pos[j, 1] - pos[i, 1], box[1])
            tz = wrap(pos[j, 2] - pos[i, 2], box[2])
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
            tx = wrap(pos[j, 0] - pos[i, 0], box[0])
            ty = wrap(pos[j, 1] - pos[i, 1], box[1])
            tz = wrap(pos[j, 2] - pos[i, 2], box[2])
            if tx * tx + ty * ty + tz * tz < w2:
                c += 1
    return c


@njit(cache=True)
def overlaps_one(p, R, pos, rot, box, m):
    """True if a cube at ``p`` with rotation ``R`` overlaps any of the first m cubes."""
    for j in range(m):
        tx = wrap(pos[j, 0] - p[0], box[0])
        ty = wrap(pos[j, 1] - p[1], box[1])
        tz = wrap(pos[j, 2] - p[2], box[2])
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
            tx = min_image(pos[j, 0] - pos[i, 0], box[0])
            ty = min_image(pos[j, 1] - pos[i, 1], box[1])
            tz = min_image(pos[j, 2] - pos[i, 2], box[2])
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
        random_quat(s, q)
        quat_to_rot(q[0], q[1], q[2], q[3], A)
        if aligned:
            for m in range(9):
                B[m] = A[m]
        else:
            random_quat(s, q)
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
        random_quat(s, q)
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
