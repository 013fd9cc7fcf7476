"""Monte Carlo observables on a schedule: the chain does not depend on it, and the cheap
per-sample kernels (O(N) vacancy pass, one list pass per block) equal the plain
all-pairs / numpy computations they replace.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from saxsred.mc import MCParams, run, simple_cubic_crystal
from saxsred.mc import _kernels as K
from saxsred.mc import observables as obs
from saxsred.mc import obskernels as OK
from saxsred.mc.engine import schedule


def test_default_schedule():
    # a state point of 20,000 sweeps: samples every 50 sweeps, 100 blocks of 200
    assert schedule(20_000) == (200, 50)
    assert schedule(5_000) == (50, 50)
    # short runs still get about 10 samples; a given block keeps samples dividing it
    assert schedule(40) == (4, 4)
    assert schedule(1_000, block_sweeps=10) == (10, 10)
    assert schedule(1_000, block_sweeps=70) == (70, 35)
    assert schedule(1_000, sample_every=7) == (7, 7)


def test_chain_does_not_depend_on_the_schedule():
    """Sampling never draws random numbers nor moves a cube: same seed, same chain."""
    st = simple_cubic_crystal(5, 0.80, vacancies=1, rng=2)
    a = run(st, MCParams(beta_eps=-1.0, block_sweeps=10, sample_every=1), 100, seed=9)
    b = run(st, MCParams(beta_eps=-1.0), 100, seed=9)
    assert a.block_sweeps == 10 and b.sample_every == 10
    assert np.array_equal(a.state.positions, b.state.positions)
    assert np.array_equal(a.state.orientations, b.state.orientations)
    assert a.blocks["bonds"][-1] == b.blocks["bonds"][-1]


def test_last_block_may_be_short():
    res = run(
        simple_cubic_crystal(5, 0.8), MCParams(block_sweeps=100, sample_every=20), 250, seed=1
    )
    np.testing.assert_array_equal(res.blocks["sweep"], [100, 200, 250])
    assert res.sweeps == 250 and np.all(np.isfinite(res.blocks["pressure"]))
    assert res.timing["moves"] == 250 * res.state.n
    # equilibration rounds up to a block boundary
    assert run(simple_cubic_crystal(5, 0.8), MCParams(block_sweeps=50), 100, seed=1,
               equilibration=30).equilibration == 50  # fmt: skip


# ------------------------------------------------------------- vacancy: numba vs numpy
def _reference_analysis(n_cells, a, box, pos):
    """The vacancy measure written out in plain numpy (the code the kernel replaced)."""
    nc = np.asarray(n_cells)
    u = (pos + 0.5 * box) / a - 0.5
    ang = 2 * np.pi * u
    u = u - np.arctan2(np.sin(ang).mean(0), np.cos(ang).mean(0)) / (2 * np.pi)
    idx = np.rint(u)
    d = (u - idx) * a
    idx = idx.astype(int) % nc
    flat = np.ravel_multi_index(idx.T, n_cells)
    empty = np.flatnonzero(np.bincount(flat, minlength=nc.prod()) == 0)
    best = (-1.0, 0)
    for axis in range(3):
        p1, p2 = [k for k in range(3) if k != axis]
        row = idx[:, p1] * nc[p2] + idx[:, p2]
        deficient = np.flatnonzero(np.bincount(row, minlength=nc[p1] * nc[p2]) < nc[axis])
        spread = np.count_nonzero((np.abs(d[:, axis]) > 0.15 * a) & np.isin(row, deficient))
        if spread > best[0]:
            best = (float(spread), axis)
    return best[0] / (nc.prod() - len(pos)), best[1], empty, d


@pytest.mark.parametrize("seed", range(6))
def test_vacancy_kernel_equals_numpy(seed):
    rng = np.random.default_rng(seed)
    st = simple_cubic_crystal((6, 5, 7), 0.8, vacancies=1 + seed % 3, rng=seed)
    pos = st.positions + rng.normal(0, 0.06, st.positions.shape) + rng.uniform(-0.4, 0.4, 3)
    # push a few cubes of one row along it, as a delocalised vacancy does
    axis = seed % 3
    pos[rng.choice(st.n, 4, replace=False), axis] += 0.3 * st.spacing
    pos -= st.box * np.floor(pos / st.box + 0.5)
    lat = obs.VacancyLattice.from_state(st)
    info = lat.analyze(pos)
    spread, best_axis, empty, d = _reference_analysis(st.n_cells, st.spacing, st.box, pos)
    assert info.spread == spread and info.axis == best_axis
    np.testing.assert_array_equal(info.empty_sites, empty)
    np.testing.assert_allclose(info.displacement, d, atol=1e-12)
    assert lat.sample(pos) == (info.spread, info.string_length)


# -------------------------------------------------- per-block checks: list vs all pairs
def test_block_checks_equal_all_pair_counts():
    rng = np.random.default_rng(4)
    st = simple_cubic_crystal(6, 0.80)
    pos = st.positions + rng.normal(0, 0.08, st.positions.shape)
    q = np.tile([1.0, 0, 0, 0], (st.n, 1)) + rng.normal(0, 0.08, (st.n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    pos -= st.box * np.floor(pos / st.box + 0.5)
    rot = K.quats_to_rots(q)
    r_list = math.sqrt(3) + 0.45
    nbr = np.zeros((st.n, st.n - 1), dtype=np.int64)
    nn = np.zeros(st.n, dtype=np.int64)
    assert K.build_nlist(pos, st.box, r_list, nbr, nn, pos.copy())
    n_ov, n_b, cluster = OK.block_checks(pos, rot, st.box, nbr, nn, True, 1.14)
    assert n_ov == K.count_overlaps(pos, rot, st.box) > 0  # the noise makes some overlap
    assert n_b == K.count_bonds(pos, st.box, 1.14)
    assert cluster == obs.largest_cluster(pos, st.box, 1.14)  # k-d tree + scipy graph
    sparse = pos[::3]  # a dilute subset has several clusters
    nn2 = np.zeros(len(sparse), dtype=np.int64)
    nbr2 = np.zeros((len(sparse), len(sparse) - 1), dtype=np.int64)
    K.build_nlist(sparse, st.box, 2.0, nbr2, nn2, sparse.copy())
    for r in (1.14, 1.6, 1.9):
        assert obs.largest_cluster(sparse, st.box, r, nlist=(nbr2, nn2)) == obs.largest_cluster(
            sparse, st.box, r
        )


def test_sdf_intercept_equals_polyfit():
    h = np.random.default_rng(1).poisson(300, 20).astype(float)
    x = (np.arange(20) + 0.5) * 0.001
    ref = np.polynomial.polynomial.polyfit(x, h / (500 * 0.001), 2)[0]
    p = obs.sdf_pressure(h, np.zeros(0), 1000, 1, 0.8, 0.02, 0.0)
    assert p.s_hard0 == pytest.approx(ref, rel=1e-10)
