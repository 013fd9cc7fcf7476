"""Fits of generated dilute curves, S_eff with known truth, the CLI and its error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saxsred import formfactor as ff
from saxsred.cli import main
from saxsred.curve import Curve
from saxsred.errors import FitError, InputError
from saxsred.io.curves import read_curve, write_dat, write_nxcansas

E, PD, SCALE, BKG = 9.5, 0.08, 10.0, 0.02


def _dilute(
    q, rng, edge=E, pd=PD, dist="gaussian", shape="cube", smearing=None, rel=0.02, floor=0.002
):
    truth = ff.dilute_intensity(
        q, edge, pd, SCALE, BKG, shape=shape, distribution=dist, smearing=smearing
    )
    sig = rel * truth + floor
    return Curve(q, truth + rng.normal(0.0, sig), sig, unit="cm^-1", name="dilute"), truth


# ------------------------------------------------------------------------- 3. fits
def test_fits_recover_truth_over_seeds():
    q = np.linspace(0.1, 2.5, 400)
    n, cover_e, cover_pd = 24, 0, 0
    for seed in range(n):
        curve, _ = _dilute(q, np.random.default_rng(seed))
        fit = ff.fit_form_factor(curve)
        assert abs(fit.edge_nm / E - 1) < 0.01
        assert abs(fit.polydispersity / PD - 1) < 0.15
        assert 0.7 < fit.reduced_chi2 < 1.3
        cover_e += abs(fit.edge_nm - E) < fit.edge_err_nm
        cover_pd += abs(fit.polydispersity - PD) < fit.polydispersity_err
    # one-sigma error bars should cover the truth in ~68 % of the seeds
    assert 0.5 <= cover_e / n <= 0.9, cover_e
    assert 0.5 <= cover_pd / n <= 0.9, cover_pd


def test_fit_result_contents():
    q = np.linspace(0.1, 2.5, 300)
    curve, truth = _dilute(q, np.random.default_rng(99))
    fit = ff.fit_form_factor(curve, qmin=0.15, qmax=2.2)
    assert fit.q_nm.min() >= 0.15 and fit.q_nm.max() <= 2.2
    d = fit.to_json_dict()
    for key in (
        "shape",
        "edge_nm",
        "edge_err_nm",
        "polydispersity",
        "polydispersity_err",
        "scale",
        "background",
        "reduced_chi2",
    ):
        assert key in d
    json.dumps(d)
    assert "edge" in fit.correlations and "polydispersity" in fit.correlations["edge"]
    assert "[[Variables]]" in fit.report
    assert fit.model_curve(q) == pytest.approx(truth, rel=0.01)
    init = fit.provenance["steps"][-1]["initial"]
    # automatic starts: Guinier and first minimum both within 10 % of the edge
    assert init["guinier_edge_nm"] == pytest.approx(E, rel=0.1)
    assert init["first_minimum_edge_nm"] == pytest.approx(E, rel=0.1)
    # absolute units: phi back from the fitted scale
    assert fit.volume_fraction(23.81) == pytest.approx(
        SCALE / ff.forward_intensity_cm(1.0, E, 23.81, PD), rel=0.01
    )


@pytest.mark.parametrize(
    "shape, dist, size", [("sphere", "gaussian", 8.0), ("cube", "schulz", 9.5)]
)
def test_fit_other_shapes_and_distributions(shape, dist, size):
    q = np.linspace(0.1, 2.5, 300)
    curve, _ = _dilute(q, np.random.default_rng(5), edge=size, dist=dist, shape=shape)
    fit = ff.fit_form_factor(curve, shape=shape, distribution=dist)
    assert fit.edge_nm == pytest.approx(size, rel=0.01)
    assert fit.polydispersity == pytest.approx(PD, rel=0.15)


def test_fit_with_smearing():
    q = np.linspace(0.1, 2.5, 300)
    curve, _ = _dilute(q, np.random.default_rng(6), pd=0.04, smearing=0.03, rel=0.01)
    smeared = ff.fit_form_factor(curve, smearing=0.03)
    plain = ff.fit_form_factor(curve)
    assert smeared.polydispersity == pytest.approx(0.04, rel=0.15)
    assert smeared.reduced_chi2 < 1.3
    # without the resolution, the smearing is mistaken for polydispersity
    assert plain.polydispersity > smeared.polydispersity


def test_fit_errors():
    q = np.linspace(0.1, 2.5, 300)
    rng = np.random.default_rng(0)
    flat = Curve(q, 1 + rng.normal(0, 0.01, q.size), np.full(q.size, 0.01), name="flat")
    with pytest.raises(FitError):
        ff.fit_form_factor(flat)
    noise = Curve(q, rng.normal(0, 1, q.size), np.ones(q.size), name="noise")
    with pytest.raises(FitError):
        ff.fit_form_factor(noise)
    curve, _ = _dilute(q, rng)
    with pytest.raises(InputError):
        ff.fit_form_factor(curve, qmin=5.0)


# ----------------------------------------------------------------- 4. structure factor
def _bragg(q):
    s = np.ones_like(q)
    for q0, h in ((0.551, 3.0), (0.779, 1.5), (1.102, 1.0), (1.232, 0.8)):
        s += h / (1 + ((q - q0) / 0.02) ** 2)
    return s


def test_structure_factor_recovers_truth():
    rng = np.random.default_rng(11)
    qd = np.linspace(0.08, 3.0, 700)  # dilute on its own grid, wider
    dil, dil_true = _dilute(qd, rng, rel=0.01, floor=0.0)
    dil_net = Curve(
        qd, dil.intensity - BKG, dil.sigma, name="dilute"
    )  # background-free particle term
    qs = np.linspace(0.1, 2.5, 500)
    ratio = 4.0
    s_true = _bragg(qs)
    i_sp = ratio * ff.dilute_intensity(qs, E, PD, SCALE, 0.0) * s_true
    sig = 0.02 * i_sp
    sample = Curve(qs, i_sp + rng.normal(0, sig), sig, name="sp")
    for given in (ratio, None):
        sq = ff.effective_structure_factor(sample, dil_net, concentration_ratio=given)
        keep = ~sq.flagged
        assert keep.sum() > 0.9 * qs.size
        chi2 = np.mean(((sq.s - _bragg(sq.q_nm)) / sq.sigma)[keep] ** 2)
        assert 0.8 < chi2 < 1.25, chi2
        assert sq.concentration_ratio_fitted is (given is None)
    assert sq.concentration_ratio == pytest.approx(ratio, rel=0.01)
    assert "S_eff -> 1" in sq.provenance["steps"][-1]["concentration_ratio_method"]
    cv = sq.as_curve()
    assert len(cv) == int((~sq.flagged).sum()) and cv.name
    # S = 1 assumed in a chosen window instead of the top quarter
    sq2 = ff.effective_structure_factor(sample, dil_net, s_one_range_nm=(1.5, 2.5))
    assert sq2.concentration_ratio == pytest.approx(ratio, rel=0.01)
    assert sq2.concentration_ratio_err < 0.01 * ratio
    from saxsred.plots.formfactor import plot_structure_factor

    ylim = plot_structure_factor(sq2).axes[0].get_ylim()
    assert ylim[0] <= np.percentile(sq2.s, 1) and ylim[1] >= sq2.s.max() * 0.99


def test_structure_factor_with_model():
    rng = np.random.default_rng(12)
    q = np.linspace(0.1, 2.5, 400)
    dil, _ = _dilute(q, rng)
    fit = ff.fit_form_factor(dil)
    s_true = _bragg(q)
    i_sp = 2.0 * ff.dilute_intensity(q, E, PD, SCALE, 0.0) * s_true
    sample = Curve(q, i_sp + rng.normal(0, 0.02 * i_sp), 0.02 * i_sp, name="sp")
    sq = ff.effective_structure_factor(sample, fit, concentration_ratio=2.0)
    chi2 = np.mean(((sq.s - s_true) / sq.sigma)[~sq.flagged] ** 2)
    assert 0.7 < chi2 < 1.4


def test_structure_factor_flags_minima():
    q = np.linspace(0.1, 3.0, 600)
    dil = ff.dilute_intensity(q, 8.0, 0.0, 10.0, 0.0, shape="sphere")  # deep zeros
    dcurve = Curve(q, dil, 1e-3 * dil + 1e-9, name="spheres")
    sample = Curve(q, 3 * dil, 1e-3 * dil + 1e-9, name="sp")
    sq = ff.effective_structure_factor(sample, dcurve, concentration_ratio=3.0)
    zeros = 2 * np.array([4.4934, 7.7253, 10.9041]) / 8.0
    for z in zeros:
        assert sq.flagged[np.argmin(np.abs(q - z))]
    assert not sq.flagged[q < 0.5].any()
    assert len(sq.as_curve()) == int((~sq.flagged).sum())


def test_structure_factor_no_overlap():
    q1, q2 = np.linspace(0.1, 1.0, 50), np.linspace(1.5, 3.0, 50)
    a = Curve(q1, np.ones(50), np.full(50, 0.01), name="a")
    b = Curve(q2, np.ones(50), np.full(50, 0.01), name="b")
    with pytest.raises(InputError, match="do not overlap"):
        ff.effective_structure_factor(a, b)


# ---------------------------------------------------------------------------- CLI
@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(21)
    q = np.linspace(0.1, 2.5, 300)
    dil, _ = _dilute(q, rng)
    write_dat(dil, tmp_path / "dilute.dat")
    write_nxcansas(dil, tmp_path / "dilute.h5")
    i_sp = 3.0 * (dil.intensity - BKG) * _bragg(q)
    sp = Curve(q, i_sp, 0.02 * np.abs(i_sp) + 1e-6, unit="cm^-1", name="sp")
    write_dat(sp, tmp_path / "sp.dat")
    return tmp_path


def test_cli_formfactor_json_and_outputs(files, capsys):
    rc = main(["formfactor", str(files / "dilute.h5"), "--json", "-o", str(files / "ff")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == "cube" and out["edge_nm"] == pytest.approx(E, rel=0.01)
    for key in (
        "edge_err_nm",
        "polydispersity",
        "polydispersity_err",
        "scale",
        "background",
        "reduced_chi2",
    ):
        assert key in out
    assert {p.name for p in (files / "ff").iterdir()} == {
        "formfactor.json",
        "dilute_model.dat",
        "formfactor.png",
    }
    assert read_curve(files / "ff" / "dilute_model.dat").q_nm.size > 100


def test_cli_sq(files, capsys):
    out = files / "s.dat"
    assert (
        main(["sq", str(files / "sp.dat"), str(files / "dilute.dat"), "-o", str(out), "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    s = read_curve(out)
    assert len(s) == summary["n_points"] - summary["n_flagged"]
    assert "n_flagged_excluded" in out.read_text()
    assert summary["concentration_ratio_fitted"] is True
    assert (
        main(
            [
                "sq",
                str(files / "sp.dat"),
                str(files / "dilute.dat"),
                "--model",
                "--concentration-ratio",
                "3",
                "-o",
                str(files / "s.h5"),
            ]
        )
        == 0
    )
    assert len(read_curve(files / "s.h5")) > 200


@pytest.mark.parametrize(
    "content, what",
    [
        ("", "no numeric rows"),
        ("0.1\n0.2\n0.3\n", "one column"),
        ("-0.1 1 0.1\n0.2 1 0.1\n0.3 1 0.1\n", "negative q"),
        ("0.1 1 0.1\n0.2 nan 0.1\n0.3 1 0.1\n", "NaN"),
    ],
)
def test_cli_bad_files(tmp_path, capsys, content, what):
    p = tmp_path / "bad.dat"
    p.write_text(content)
    rc = main(["formfactor", str(p)])
    err = capsys.readouterr().err
    assert rc != 0
    assert what.lower() in err.lower() and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_no_overlap_and_no_convergence(tmp_path, capsys):
    q1, q2 = np.linspace(0.1, 1.0, 50), np.linspace(1.5, 3.0, 50)
    write_dat(Curve(q1, np.ones(50), np.full(50, 0.01), name="a"), tmp_path / "a.dat")
    write_dat(Curve(q2, np.ones(50), np.full(50, 0.01), name="b"), tmp_path / "b.dat")
    assert main(["sq", str(tmp_path / "a.dat"), str(tmp_path / "b.dat")]) != 0
    assert "do not overlap" in capsys.readouterr().err
    rng = np.random.default_rng(1)
    q = np.linspace(0.1, 2.5, 200)
    write_dat(
        Curve(q, 1 + rng.normal(0, 0.01, q.size), np.full(q.size, 0.01), name="flat"),
        tmp_path / "flat.dat",
    )
    assert main(["formfactor", str(tmp_path / "flat.dat"), "-o", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()  # never a partial output
