"""The formfactor and sq commands on inputs as users bring them (issues 10 and 14):
q in A^-1, no sigma column, no -o, spheres. Each test fails on the behaviour before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from saxsred import formfactor as ff
from saxsred.cli import main
from saxsred.curve import Curve
from saxsred.io.curves import read_curve, write_dat

E, PD, SCALE, BKG = 9.5, 0.08, 10.0, 0.02
REL = 0.02  # relative noise of the generated sample curves


def _bragg(q):
    s = np.ones_like(q)
    for q0, h in ((0.551, 3.0), (0.779, 1.5), (1.102, 1.0), (1.232, 0.8)):
        s += h / (1 + ((q - q0) / 0.02) ** 2)
    return s


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(31)
    q = np.linspace(0.1, 2.5, 300)
    truth = ff.dilute_intensity(q, E, PD, SCALE, BKG)
    sig = 0.02 * truth + 0.002
    dil = Curve(q, truth + rng.normal(0, sig), sig, unit="cm^-1", name="dilute")
    write_dat(dil, tmp_path / "dilute.dat")
    i_sp = 3.0 * (truth - BKG) * _bragg(q)
    noisy = i_sp * (1 + REL * rng.normal(size=q.size))
    write_dat(Curve(q, noisy, REL * i_sp, unit="cm^-1", name="sp"), tmp_path / "sp.dat")
    np.savetxt(tmp_path / "sp_2col.txt", np.c_[q, noisy])  # published style: no sigma
    np.savetxt(tmp_path / "dilute_A.txt", np.c_[q / 10, dil.intensity, dil.sigma])  # A^-1
    return tmp_path


def _out(capsys) -> str:
    return capsys.readouterr().out


# ---------------------------------------------------------------- sq without -o
def test_sq_without_output_prints_the_curve(files, capsys, tmp_path):
    sp, dil = str(files / "sp.dat"), str(files / "dilute.dat")
    assert main(["sq", sp, dil, "-o", str(tmp_path / "s.dat")]) == 0
    saved = read_curve(tmp_path / "s.dat")
    _out(capsys)
    assert main(["sq", sp, dil]) == 0
    text = _out(capsys)
    assert "not saved" in text  # says so
    (tmp_path / "printed.dat").write_text(text)
    printed = read_curve(tmp_path / "printed.dat")  # what was printed reads back
    assert np.allclose(printed.q_nm, saved.q_nm, rtol=1e-7)
    assert np.allclose(printed.intensity, saved.intensity, rtol=1e-7)
    assert np.allclose(printed.sigma, saved.sigma, rtol=1e-7)
    assert main(["sq", sp, dil, "--json"]) == 0
    summary = json.loads(_out(capsys))
    assert summary["output"] is None and "not saved" in summary["note"]
    assert len(summary["s_eff"]["q_nm"]) == summary["n_points"] - summary["n_flagged"]
    assert np.allclose(summary["s_eff"]["s"], saved.intensity, rtol=1e-7)


# ---------------------------------------------------------------- sigma honesty
def test_sq_with_a_two_column_sample_has_honest_errors(files, capsys, tmp_path):
    out = tmp_path / "s2.dat"
    assert (
        main(
            ["sq", str(files / "sp_2col.txt"), str(files / "dilute.dat"), "-o", str(out), "--json"]
        )
        == 0
    )
    summary = json.loads(_out(capsys))
    s = read_curve(out)
    assert np.all(s.sigma > 0)  # never a column of zeros
    assert summary["sigma_sources"] == {"sample": "estimated", "dilute": "measured"}
    assert "estimated" in summary["sigma_method"]
    # The errors are the real ones: S_eff's relative error is the sample's 2 % and the
    # dilute's relative error in quadrature.
    dil = read_curve(files / "dilute.dat")
    rel_d = np.interp(s.q_nm, dil.q_nm, dil.sigma / dil.intensity)
    expected = s.intensity * np.sqrt(REL**2 + rel_d**2)
    assert 0.75 < float(np.median(s.sigma / expected)) < 1.33


def test_structure_factor_without_any_sigma_estimates_it():
    rng = np.random.default_rng(8)
    q = np.linspace(0.1, 2.5, 400)
    dil = ff.dilute_intensity(q, E, PD, SCALE, 0.0)
    s_true = _bragg(q)
    noise = REL * 2.0 * dil * s_true
    sample = Curve(q, 2.0 * dil * s_true + rng.normal(0, noise), np.zeros(q.size), name="sp")
    dilute = Curve(q, dil, np.zeros(q.size), name="dil")  # a model curve: no errors at all
    sq = ff.effective_structure_factor(sample, dilute, concentration_ratio=2.0)
    keep = ~sq.flagged
    assert np.all(sq.sigma[keep] > 0)
    assert sq.sigma_method.startswith("estimated")
    assert sq.provenance["steps"][-1]["sigma_sources"] == {"sample": "none", "dilute": "none"}
    ratio = np.median(sq.sigma[keep] / (REL * s_true[keep]))
    assert 0.75 < ratio < 1.33
    # and the points scatter about the truth by about that much
    chi2 = np.mean(((sq.s - s_true) / sq.sigma)[keep] ** 2)
    assert 0.6 < chi2 < 1.6


# ---------------------------------------------------------------- --q-unit
def test_formfactor_q_unit(files, capsys):
    assert main(["formfactor", str(files / "dilute.dat"), "--json"]) == 0
    ref = json.loads(_out(capsys))
    assert main(["formfactor", str(files / "dilute_A.txt"), "--q-unit", "A^-1", "--json"]) == 0
    got = json.loads(_out(capsys))
    assert got["edge_nm"] == pytest.approx(ref["edge_nm"], rel=1e-6)
    assert got["edge_nm"] == pytest.approx(E, rel=0.01)
    assert got["q_max_nm"] == pytest.approx(2.5)


def test_sq_q_unit_leaves_a_file_that_states_its_unit(files, capsys, tmp_path):
    q = read_curve(files / "sp.dat")
    np.savetxt(tmp_path / "sp_A.txt", np.c_[q.q_nm / 10, q.intensity, q.sigma])
    assert main(["sq", str(files / "sp.dat"), str(files / "dilute.dat"), "--json"]) == 0
    ref = json.loads(_out(capsys))
    # the dilute .dat says q_nm^-1 in its header: --q-unit A^-1 applies to the sample only
    args = ["sq", str(tmp_path / "sp_A.txt"), str(files / "dilute.dat"), "--q-unit", "A^-1"]
    assert main([*args, "--json"]) == 0
    got = json.loads(_out(capsys))
    assert got["n_points"] == ref["n_points"] and got["n_outside_overlap"] == 0
    assert got["concentration_ratio"] == pytest.approx(ref["concentration_ratio"], rel=1e-6)


# ---------------------------------------------------------------- outputs
def test_formfactor_model_file_has_real_errors(files, capsys):
    assert main(["formfactor", str(files / "dilute.dat"), "-o", str(files / "ff")]) == 0
    text = _out(capsys)
    assert "edge = 9." in text and "+/-" in text
    model = read_curve(files / "ff" / "dilute_model.dat")
    assert np.all(model.sigma > 0)  # was a column of zeros
    assert np.all(model.sigma < 0.05 * model.intensity)
    js = json.loads((files / "ff" / "formfactor.json").read_text())
    assert js["outputs"] == ["formfactor.json", "dilute_model.dat", "formfactor.png"]


def test_sphere_fit_cli_says_diameter_and_radius(tmp_path, capsys):
    rng = np.random.default_rng(2)
    q = np.linspace(0.1, 2.5, 300)
    truth = ff.dilute_intensity(q, 8.0, PD, SCALE, BKG, shape="sphere")
    sig = 0.02 * truth + 0.002
    write_dat(Curve(q, truth + rng.normal(0, sig), sig, name="spheres"), tmp_path / "sph.dat")
    assert main(["formfactor", str(tmp_path / "sph.dat"), "--shape", "sphere"]) == 0
    text = _out(capsys)
    d = float(re.search(r"^diameter = (\S+) \+/- \S+ nm$", text, re.M).group(1))
    r = float(re.search(r"^radius = (\S+) \+/- \S+ nm$", text, re.M).group(1))
    assert d == pytest.approx(8.0, rel=0.01) and r == pytest.approx(d / 2, rel=1e-3)
    assert "edge" not in text
    assert main(["formfactor", str(tmp_path / "sph.dat"), "--shape", "sphere", "--json"]) == 0
    js = json.loads(_out(capsys))
    assert "edge_nm" not in js and js["diameter_nm"] == pytest.approx(8.0, rel=0.01)


# ---------------------------------------------------------------- real data
REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "superlattice_pd_ssrl"


def test_real_dilute_pd_nanocrystals_fit_as_spheres(capsys):
    """SSRL BL1-5 in-situ SAXS of dilute Pd nanocrystals (2 columns, q in A^-1, no sigma):
    the sphere fit's diameter agrees with the first minimum the data themselves show
    (Rayleigh: first zero of the sphere amplitude at q d = 8.9868)."""
    path = REAL / "A_255C_0212114648_0001_dz_bgsub.dat"
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    raw = np.loadtxt(path)
    q, i = raw[:, 0] * 10.0, raw[:, 1]  # A^-1 -> nm^-1, written here, not by saxsred
    k0 = int(np.argmax(i))  # below the maximum the beamstop edge cuts the curve
    sm = np.convolve(i, np.ones(5) / 5, mode="same")
    q1 = next(q[k] for k in range(k0 + 3, q.size - 3) if sm[k] == sm[k - 3 : k + 4].min())
    argv = ["formfactor", str(path), "--shape", "sphere", "--qmin", f"{q[k0]:.6f}", "--json"]
    assert main(argv) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["q_max_nm"] == pytest.approx(q.max(), rel=1e-6)  # the file's A^-1 was read
    assert js["diameter_nm"] == pytest.approx(8.9868 / q1, rel=0.03)
    assert js["radius_nm"] == pytest.approx(js["diameter_nm"] / 2)
    assert 0 < js["polydispersity"] < 0.2
    assert js["weighted"] is True  # sigma estimated from the scatter, and said so
