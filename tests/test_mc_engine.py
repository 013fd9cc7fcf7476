"""Monte Carlo engine: bookkeeping, unbiased moves, pressure, vacancies, GSD and the CLI.

Short runs against wide, stated bounds; the long versions are in validation/mc_*.py.
Every run here goes through :func:`_run`, which checks that a full overlap count after
each block is zero and that the running bond count equals a full recount.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from saxsred.errors import InputError, ParameterError
from saxsred.mc import MCParams, MCState, random_fluid, run, simple_cubic_crystal
from saxsred.mc import _kernels as K
from saxsred.mc import observables as obs
from saxsred.mc.snapshot import read_trajectory, write_trajectory


def _run(state, params, sweeps, seed, **kw):
    res = run(state, params, sweeps, seed, **kw)
    if params.hard:
        assert np.all(res.blocks["overlaps"] == 0)
    if params.beta_eps != 0:
        pos = res.frames[-1][0]
        assert K.count_bonds(pos, res.state.box, params.well_range) == res.blocks["bonds"][-1]
    return res


def test_crystal_bond_count():
    # 10x10x10 SC at phi 0.8: a = 1.077 < Delta = 1.14 < edge-neighbour distance 1.523,
    # so bonds = 3 N_sites face pairs; one vacancy removes 6 -> 2994
    st = simple_cubic_crystal(10, 0.80, vacancies=1, rng=0)
    assert st.n == 999 and math.isclose(st.spacing, 0.8 ** (-1 / 3))
    assert K.count_bonds(st.positions, st.box, 1.14) == 2994
    assert K.count_bonds(simple_cubic_crystal(10, 0.80).positions, st.box, 1.14) == 3000


def test_energy_bookkeeping_and_reproducibility(tmp_path):
    st = simple_cubic_crystal(5, 0.80, vacancies=2, rng=1)
    p = MCParams(beta_eps=-1.0, block_sweeps=10)
    a = _run(st, p, 60, seed=5)
    b = _run(st, p, 60, seed=5)
    c = _run(st, p, 60, seed=6)
    assert np.array_equal(a.state.positions, b.state.positions)
    assert np.array_equal(a.state.orientations, b.state.orientations)
    assert not np.array_equal(a.state.positions, c.state.positions)
    np.testing.assert_allclose(a.blocks["energy"], -a.blocks["bonds"] / st.n)
    write_trajectory(tmp_path / "a.gsd", a)
    write_trajectory(tmp_path / "b.gsd", b)
    assert (tmp_path / "a.gsd").read_bytes() == (tmp_path / "b.gsd").read_bytes()
    traj = read_trajectory(tmp_path / "a.gsd")
    assert np.array_equal(traj.states[-1].positions, a.state.positions)  # exact float64 copy
    assert traj.params["beta_eps"] == -1.0 and traj.provenance["seed"] == 5
    assert len(traj.states) == 1 + len(a.frames)
    np.testing.assert_array_equal(traj.blocks["pressure"], a.blocks["pressure"])


def test_moves_are_unbiased_without_the_core():
    """Core and well off: positions uniform in the box, orientations Haar-uniform."""
    st = simple_cubic_crystal(5, 0.5)
    L = st.box[0]
    p = MCParams(hard=False, tune=False, translate_step=0.2 * L, rotate_step=0.6, block_sweeps=50)
    res = _run(st, p, 600, seed=11, equilibration=200)
    pos = np.concatenate([f[0] for f, prod in zip(res.frames, res.production) if prod])
    quat = np.concatenate([f[1] for f, prod in zip(res.frames, res.production) if prod])
    for k in range(3):
        assert stats.kstest(pos[:, k] / L + 0.5, "uniform").pvalue > 1e-3
    R = K.quats_to_rots(quat).reshape(-1, 3, 3)
    assert stats.kstest((R[:, 2, 2] + 1) / 2, "uniform").pvalue > 1e-3  # body z . lab z
    theta = 2 * np.arccos(np.clip(np.abs(quat[:, 0]), 0, 1))  # Haar: density (1 - cos t)/pi
    assert stats.kstest(theta, lambda t: (t - np.sin(t)) / np.pi).pvalue > 1e-3


def test_sc_crystal_pressure_independent_of_move_sizes():
    # literature for N = 1000: 22.50 +/- 0.25 (HOOMD HPMC), 22.86; N = 216 short runs: 21.5-24
    st = simple_cubic_crystal(6, 0.80)
    vals = []
    for d in (0.02, 0.05):
        p = MCParams(
            tune=False, translate_step=d, rotate_step=2 * d, block_sweeps=100, sample_every=5
        )
        res = _run(st, p, 2000, seed=3)
        vals.append(obs.block_mean(res.blocks["pressure"][res.production]))
    for m, e in vals:
        assert 21.5 < m < 24.0 and e < 0.6
    (m1, e1), (m2, e2) = vals
    assert abs(m1 - m2) < 4 * math.hypot(e1, e2)


@pytest.mark.parametrize(("phi", "z_lo", "z_hi"), [(0.05, 1.27, 1.42), (0.10, 1.62, 1.92)])
def test_fluid_compressibility(phi, z_lo, z_hi):
    # virial series of freely rotating cubes: Z ~ 1.33 (phi 0.05), 1.75-1.77 (phi 0.10)
    st = random_fluid(300, phi, rng=8)
    res = _run(st, MCParams(block_sweeps=100, sample_every=2, skin=1.0), 2000, seed=2)
    z, err = (v / st.phi for v in obs.block_mean(res.blocks["pressure"][res.production]))
    assert z_lo < z < z_hi and err < 0.06


def _spread_vacancy_crystal(n_cells: int) -> MCState:
    """Crystal with site (0, 0, 0) empty and the gap shared by 4 sites of its x row."""
    st = simple_cubic_crystal(n_cells, 0.80, sites=[0])
    pos = st.positions.copy()
    lo = pos.min(0)
    row = np.flatnonzero((np.abs(pos[:, 1] - lo[1]) < 1e-9) & (np.abs(pos[:, 2] - lo[2]) < 1e-9))
    row = row[np.argsort(pos[row, 0])][:3]  # sites x = 1, 2, 3
    pos[row, 0] -= st.spacing * np.array([3, 2, 1]) / 4.0
    return st.replace(positions=pos)


def test_vacancy_spread_ordering():
    """Attraction localises the vacancy (paper Fig. 5): spread(0) ~ 3-4 > spread(-1) < 1.

    Both runs start from a vacancy already spread over 4 sites of an 8^3 lattice: spreading
    from a point vacancy is a rare event that a short run may miss, while the collapse
    (beta eps = -1) or persistence (0) of a spread one is fast. The full-size run from a
    point vacancy is validation/mc_vacancy.py.
    """
    out = {}
    for eps in (0.0, -1.0):
        res = _run(
            _spread_vacancy_crystal(8),
            MCParams(beta_eps=eps, block_sweeps=250, sample_every=5),
            6000,
            seed=4,
        )
        out[eps] = obs.block_mean(res.blocks["vacancy_spread"][res.production])
    assert out[0.0][0] > 2.0
    assert out[0.0][0] > out[-1.0][0] + 3 * math.hypot(out[0.0][1], out[-1.0][1])
    assert out[-1.0][0] < 1.0


def test_vacancy_analysis_of_a_spread_vacancy():
    """A constructed string: 3 particles share 4 sites -> spread 2 (|d| = a/3 > 0.15 a), string 3."""
    st = simple_cubic_crystal(6, 0.80, sites=[0])  # site (0, 0, 0) empty
    pos = st.positions.copy()
    a = st.spacing
    row = np.flatnonzero(
        (np.abs(pos[:, 1] - pos[:, 1].min()) < 1e-9) & (np.abs(pos[:, 2] - pos[:, 2].min()) < 1e-9)
    )
    row = row[np.argsort(pos[row, 0])][:3]  # sites x = 1, 2, 3 of the row
    pos[row, 0] -= a * np.array([2, 1, 0]) / 3.0  # spread the gap over sites 0..3
    info = obs.VacancyLattice.from_state(st).analyze(pos)
    assert info.axis == 0
    assert info.spread == 2 and info.string_length == 3
    assert obs.VacancyLattice.from_state(st).analyze(st.positions).spread == 0


def test_order_and_clusters():
    st = simple_cubic_crystal(5, 0.8)
    assert obs.cubatic_order(st.orientations) == pytest.approx(1.0)
    fl = random_fluid(200, 0.05, rng=1)
    assert obs.cubatic_order(fl.orientations) < 0.3
    assert obs.largest_cluster(st.positions, st.box, 1.14) == st.n
    assert obs.largest_cluster(fl.positions, fl.box, 1.14) < 20


def test_interrupt_stops_at_block_boundary(monkeypatch):
    calls = {"n": 0}
    real = obs.sdf_pressure

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(obs, "sdf_pressure", flaky)  # called once per block
    res = run(simple_cubic_crystal(4, 0.8), MCParams(block_sweeps=5), 50, seed=1)
    assert res.interrupted and len(res.frames) == 2 and res.sweeps == 15


def test_bad_parameters_give_clear_errors(tmp_path):
    with pytest.raises(ParameterError, match="phi"):
        simple_cubic_crystal(5, 1.2)
    with pytest.raises(ParameterError, match="shorter than the hard core"):
        MCParams(well_range=0.9)
    with pytest.raises(ParameterError, match="twice the interaction cutoff"):
        run(simple_cubic_crystal(3, 0.8), MCParams(), 10, seed=1)
    bad = MCState(
        np.full(3, 5.0),
        np.array([[0.0, 0, 0], [0.5, 0, 0], [2.0, 2, 2]]),
        np.tile([1.0, 0, 0, 0], (3, 1)),
    )
    with pytest.raises(ParameterError, match="overlapping"):
        run(bad, MCParams(), 10, seed=1)
    with pytest.raises(ParameterError, match="random insertion"):
        random_fluid(100, 0.5, rng=1)
    with pytest.raises(ParameterError, match="multiple"):
        run(simple_cubic_crystal(4, 0.8), MCParams(block_sweeps=10, sample_every=3), 30, seed=1)
    (tmp_path / "junk.gsd").write_text("not gsd")
    with pytest.raises(InputError, match="cannot read"):
        read_trajectory(tmp_path / "junk.gsd")


def test_cli_run_analyze_figure(tmp_path, capsys):
    from saxsred.cli import main

    out = tmp_path / "run.gsd"
    args = ["mc", "run", "--n-cells", "4", "--phi", "0.8", "--eps", "-1", "--vacancies", "1",
            "--sweeps", "40", "--seed", "3", "--quiet", "-o", str(out)]  # fmt: skip
    assert main(args) == 0 and out.exists()
    capsys.readouterr()
    assert main(["mc", "analyze", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    for key in ("n_particles", "phi", "beta_eps", "acceptance", "pressure", "pressure_err",
                "vacancy_spread", "vacancy_spread_err"):  # fmt: skip
        assert key in s
    assert s["n_particles"] == 63 and s["beta_eps"] == -1.0 and s["overlaps"] == 0
    assert main(["mc", "figure", str(out), "-o", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").stat().st_size > 1000
    assert (
        main(
            [
                "mc",
                "run",
                "--from",
                str(out),
                "--sweeps",
                "20",
                "--seed",
                "4",
                "--quiet",
                "-o",
                str(tmp_path / "r.gsd"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "mc",
                "run",
                "--phi",
                "1.3",
                "--sweeps",
                "10",
                "--seed",
                "1",
                "-o",
                str(tmp_path / "x.gsd"),
            ]
        )
        == 2
    )
    assert "phi" in capsys.readouterr().err
    assert not (tmp_path / "x.gsd").exists()
