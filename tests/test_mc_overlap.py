"""The cube overlap test against an independent linear-programming check, and virials.

Two convex polytopes intersect iff some point satisfies both sets of face inequalities;
maximising a common slack s (a_m . (x - p) + s <= sigma/2 for all 12 faces) makes the
LP always feasible and the answer its sign: s* >= 0 <=> overlap. Pairs include random
ones, near-touching ones (contact distance scaled by 1 +/- 1e-5..1e-2) and nearly
edge-parallel ones (relative tilt 0 or 1e-12..1e-2 rad) in a random common frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog
from scipy.spatial.transform import Rotation

from saxsred.mc import _kernels as K


def _rots(rng, n):
    return Rotation.random(n, random_state=rng).as_matrix()


def random_pairs(n: int, rng: np.random.Generator):
    """``n`` pairs (t, A, B) with A, B row-major rotation matrices (n, 9), mixed kinds."""
    kinds = rng.integers(0, 4, n)
    A = _rots(rng, n)
    tilt_axis = rng.normal(size=(n, 3))
    tilt_axis /= np.linalg.norm(tilt_axis, axis=1, keepdims=True)
    tilt = np.where(rng.random(n) < 0.2, 0.0, 10.0 ** rng.uniform(-12, -2, n))
    # nearly parallel: B = A . (90-degree body symmetry) . small tilt, written in the lab frame
    sym = Rotation.from_rotvec(
        np.pi / 2 * np.eye(3)[rng.integers(0, 3, n)] * rng.integers(0, 4, n)[:, None]
    )
    small = Rotation.from_rotvec(tilt_axis * tilt[:, None])
    B_par = np.einsum("nij,njk->nik", A, (sym * small).as_matrix())
    B = np.where((kinds >= 2)[:, None, None], B_par, _rots(rng, n))
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    # kind 3: crystal-like, along a face normal of A with a small lateral offset
    face = np.einsum(
        "nij,nj->ni", A, np.eye(3)[rng.integers(0, 3, n)] * rng.choice([-1, 1], (n, 1))
    )
    lateral = 0.3 * rng.normal(size=(n, 3))
    lateral -= np.sum(lateral * face, axis=1, keepdims=True) * face
    u3 = face + lateral
    u3 /= np.linalg.norm(u3, axis=1, keepdims=True)
    u = np.where((kinds == 3)[:, None], u3, u)
    Af = A.reshape(n, 9).copy()
    Bf = B.reshape(n, 9).copy()
    lam = np.array([K.contact_scale(u[k, 0], u[k, 1], u[k, 2], Af[k], Bf[k]) for k in range(n)])
    delta = 10.0 ** rng.uniform(-5, -2, n) * rng.choice([-1.0, 1.0], n)
    r = np.where(kinds == 0, rng.uniform(0.8, 1.9, n), lam * (1.0 + delta))
    return u * r[:, None], Af, Bf


def lp_overlap(t, A, B, batch: int = 500):
    """Independent overlap verdict and slack s* from block-diagonal LPs (HiGHS)."""
    n = len(t)
    verdict = np.empty(n, bool)
    slack = np.empty(n)
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        blocks, rhs = [], []
        for k in range(lo, hi):
            a = A[k].reshape(3, 3).T  # rows = face normals (body axes) of A
            b = B[k].reshape(3, 3).T
            G = np.vstack([a, -a, b, -b])
            # centre of A at 0, of B at t: n.x + s <= 1/2 + n.p
            h = np.concatenate([np.full(6, 0.5), 0.5 + b @ t[k], 0.5 - b @ t[k]])
            blocks.append(np.hstack([G, np.ones((12, 1))]))
            rhs.append(h)
        m = hi - lo
        c = np.zeros(4 * m)
        c[3::4] = -1.0
        res = linprog(
            c,
            A_ub=sp.block_diag(blocks, format="csr"),
            b_ub=np.concatenate(rhs),
            bounds=(None, None),
            method="highs",
        )
        assert res.status == 0, res.message
        s = res.x[3::4]
        slack[lo:hi] = s
        verdict[lo:hi] = s >= 0.0
    return verdict, slack


def test_overlap_agrees_with_linear_programming():
    rng = np.random.default_rng(20240501)
    n = 12000
    t, A, B = random_pairs(n, rng)
    sat = K.overlap_pairs(t, A, B)
    sat_bare = K.overlap_pairs(t, A, B, K.SAT_EPS, False)
    lp, slack = lp_overlap(t, A, B)
    assert np.all(np.abs(slack) > 1e-9), (
        "an LP verdict is within solver tolerance; widen the offsets"
    )
    assert 0.3 < lp.mean() < 0.7  # both verdicts well represented
    bad = np.flatnonzero(sat != lp)
    assert bad.size == 0, f"{bad.size} disagreements of {n}, first {bad[:5]}"
    assert np.array_equal(sat_bare, lp)  # the SAT alone, without the sphere shortcuts


def test_unpadded_sat_fails_on_aligned_pairs():
    """The trap the padding exists for: parallel edges in a general frame, no epsilon."""
    rng = np.random.default_rng(7)
    n = 4000
    R = Rotation.random(n, random_state=rng)
    A = R.as_matrix().reshape(n, 9)
    # the same cube turned by its 90-degree symmetry: parallel edges, R_ij off-diagonal ~1e-17
    B = (R * Rotation.from_rotvec([0.0, 0.0, np.pi / 2])).as_matrix().reshape(n, 9)
    u = rng.normal(size=(n, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    lam = np.array([K.contact_scale(*u[k], A[k], B[k]) for k in range(n)])
    t = u * (lam * (1 - 10.0 ** rng.uniform(-4, -2, n)))[:, None]  # all overlapping
    assert K.overlap_pairs(t, A, B, K.SAT_EPS, False).all()
    missed = 1.0 - K.overlap_pairs(t, A, B, 0.0, False).mean()
    assert missed > 0.01  # unpadded, the round-off axes "separate" overlapping cubes


def test_symmetry_and_common_rotation():
    rng = np.random.default_rng(3)
    n = 20000
    t, A, B = random_pairs(n, rng)
    ab = K.overlap_pairs(t, A, B)
    ba = K.overlap_pairs(-t, B, A)
    assert np.array_equal(ab, ba)
    Q = _rots(rng, 1)[0]
    t2 = t @ Q.T
    A2 = np.einsum("ij,njk->nik", Q, A.reshape(n, 3, 3)).reshape(n, 9)
    B2 = np.einsum("ij,njk->nik", Q, B.reshape(n, 3, 3)).reshape(n, 9)
    assert np.array_equal(K.overlap_pairs(t2, A2, B2), ab)


def test_contact_scale_is_the_overlap_boundary():
    rng = np.random.default_rng(11)
    n = 3000
    t, A, B = random_pairs(n, rng)
    lam = np.array([K.contact_scale(*t[k], A[k], B[k]) for k in range(n)])
    inside = K.overlap_pairs(t * (lam * (1 - 1e-7))[:, None], A, B)
    outside = K.overlap_pairs(t * (lam * (1 + 1e-7))[:, None], A, B)
    assert inside.all() and not outside.any()


@pytest.mark.parametrize(("aligned", "exact"), [(False, 5.5), (True, 4.0)], ids=["free", "aligned"])
def test_second_virial(aligned, exact):
    # convex body: B2/v = 1 + 3 alpha, alpha = R S / 3v = 3/2 for the cube -> 5.5 sigma^3
    b2, err = K.virial_b2(1_000_000, aligned, 99)
    assert err < 0.02
    assert abs(b2 - exact) < 4 * err


def test_third_virial_aligned():
    # per axis the 1-D integral is the hexagon area 3, so B3 = 3^3 / 3 = 9 sigma^6
    b3, err = K.virial_b3_aligned(2_000_000, 5)
    assert err < 0.1
    assert abs(b3 - 9.0) < 4 * err
