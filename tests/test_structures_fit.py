"""The ensemble-average structure model and its fit; ``saxsred model`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from saxsred.cli import main
from saxsred.curve import Curve
from saxsred.io.curves import read_curve, write_dat
from saxsred.structures import build_supraparticle, model_s_eff, scatter

A, E = 11.4, 9.5


def test_model_equals_explicit_sum_for_a_perfect_block_and_realisation_average_with_disorder():
    q = np.linspace(0.3, 1.4, 111)
    # analytic Laue route against the explicit amplitude sum over 216 cubes
    exact = scatter(build_supraparticle("SC", A, E, (6, 6, 6)), q, kind="effective").intensity
    assert np.allclose(model_s_eff(q, A, 6, edge_nm=E), exact, rtol=1e-9)
    # with vacancies and displacements: the model is the mean over realisations
    runs = []
    for seed in range(4):
        sp = build_supraparticle("SC", A, E, (6, 6, 6), 0.05, 0.1, disorder_pos_nm=0.6, rng=seed)
        runs.append(scatter(sp, q, kind="effective").intensity * sp.n)
    nocc = np.mean(
        [build_supraparticle("SC", A, E, (6, 6, 6), 0.05, 0.1, rng=s).n for s in range(4)]
    )
    mean = np.mean(runs, axis=0) / nocc
    model = model_s_eff(q, A, 6, 0.6, 0.05, 0.1, E)
    ratio = mean / model
    # 4 realisations of 216 cubes: the diffuse speckle leaves a few per cent
    assert abs(np.mean(ratio) - 1) < 0.02 and np.std(ratio) < 0.05, (np.mean(ratio), np.std(ratio))


def test_model_fit_recovers_known_parameters_within_reported_errors(tmp_path, capsys):
    from saxsred.formfactor import cube_form_factor

    truth = {"a_nm": 11.4, "cells": 7.0, "disorder_pos_nm": 0.6, "vacancies": 0.05}
    q = np.linspace(0.2, 1.25, 220)
    rng = np.random.default_rng(11)
    p = cube_form_factor(q, E)
    s = model_s_eff(
        q, truth["a_nm"], truth["cells"], truth["disorder_pos_nm"], truth["vacancies"], edge_nm=E
    )
    rel = 0.01
    i_sp = 1e3 * p * s
    i_sp = i_sp * (1 + rel * rng.standard_normal(q.size))
    i_dil = 50.0 * p * (1 + 0.002 * rng.standard_normal(q.size))
    write_dat(Curve(q, i_sp, rel * np.abs(i_sp), name="sp"), tmp_path / "sp.dat")
    write_dat(Curve(q, i_dil, 0.002 * np.abs(i_dil), name="dil"), tmp_path / "dil.dat")
    rc = main(
        [
            "model",
            "fit",
            str(tmp_path / "sp.dat"),
            str(tmp_path / "dil.dat"),
            "--json",
            "-o",
            str(tmp_path / "fit"),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    print({k: out[k] for k in ("a_nm", "a_err_nm", "cells", "cells_err", "disorder_pos_nm", "disorder_pos_err_nm",
                               "vacancies", "vacancies_err", "constrained", "unconstrained", "reduced_chi2")})  # fmt: skip
    assert out["edge_nm"] == pytest.approx(E, rel=0.01)
    errs = {
        "a_nm": out["a_err_nm"],
        "cells": out["cells_err"],
        "disorder_pos_nm": out["disorder_pos_err_nm"],
        "vacancies": out["vacancies_err"],
    }
    assert {"a_nm", "cells"} <= set(out["constrained"])
    for k, v in truth.items():
        if k in out["constrained"]:
            assert errs[k] is not None and errs[k] > 0
            assert abs(out[k] - v) < 3 * errs[k] + 1e-9, (k, out[k], errs[k])
        else:
            assert k in out["unconstrained"]  # said, with a reason
    assert abs(out["a_nm"] / truth["a_nm"] - 1) < 0.002
    assert out["reduced_chi2"] < 2.0
    for f in ("structure_fit.json", "structure_fit.dat", "structure_fit.png", "structure_best.png"):
        assert (tmp_path / "fit" / f).stat().st_size > 0


def test_model_build_scatter_cli_deterministic_with_provenance(tmp_path, capsys):
    snap = tmp_path / "sp.gsd"
    args = ["model", "build", "--lattice", "SC", "--a", "11.4", "--edge", "9.5", "--cells", "5", "5", "5",
            "--vacancies-bulk", "0.033", "--vacancies-surface", "0.055", "--disorder-pos", "0.3",
            "--disorder-rot-fwhm", "9.6", "--seed", "4", "-o", str(snap), "--json"]  # fmt: skip
    assert main(args) == 0
    built = json.loads(capsys.readouterr().out)
    assert built["cubes"] == 125 - round(0.033 * 27) - round(0.055 * 98)
    for kind in ("structure", "effective"):
        dat = tmp_path / f"{kind}.dat"
        assert (
            main(
                [
                    "model",
                    "scatter",
                    str(snap),
                    "--kind",
                    kind,
                    "--qmin",
                    "0.3",
                    "--qmax",
                    "1.2",
                    "--npt",
                    "60",
                    "-o",
                    str(dat),
                ]
            )
            == 0
        )
        cv = read_curve(dat)
        assert len(cv) == 60 and np.all(np.isfinite(cv.intensity)) and np.all(cv.sigma > 0)
        header = dat.read_text().splitlines()[:8]
        assert any("sp.gsd" in h and "xxh3:" in h for h in header)
    first = (tmp_path / "structure.dat").read_bytes()
    assert (
        main(
            [
                "model",
                "scatter",
                str(snap),
                "--kind",
                "structure",
                "--qmin",
                "0.3",
                "--qmax",
                "1.2",
                "--npt",
                "60",
                "-o",
                str(tmp_path / "again.dat"),
            ]
        )
        == 0
    )
    assert (tmp_path / "again.dat").read_bytes().replace(b"again", b"structure") == first
    # the GSD holds cubes in units of the edge: freud/HOOMD/OVITO read it as it is
    import gsd.hoomd

    with gsd.hoomd.open(str(snap), "r") as fh:
        f = fh[0]
        assert f.particles.N == built["cubes"]
        assert np.max(np.abs(f.particles.position)) < 0.5 * f.configuration.box[0]
        assert f.particles.type_shapes[0]["type"] == "ConvexPolyhedron"
    capsys.readouterr()


def test_model_cli_errors_are_one_line(tmp_path, capsys):
    assert (
        main(["model", "scatter", str(tmp_path / "missing.gsd"), "-o", str(tmp_path / "x.dat")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.gsd" in err[0]
    assert not (tmp_path / "x.dat").exists()
    assert (
        main(
            [
                "model",
                "build",
                "--cells",
                "3",
                "3",
                "3",
                "--vacancies-bulk",
                "1.5",
                "-o",
                str(tmp_path / "b.gsd"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vacancies-bulk" in err[0]
    assert not (tmp_path / "b.gsd").exists()


def test_mc_snapshot_scatters_in_nm_with_the_given_edge(tmp_path, capsys):
    from saxsred.mc import simple_cubic_crystal
    from saxsred.mc.snapshot import write_snapshot

    st = simple_cubic_crystal(4, 0.8, vacancies=0, rng=1)
    write_snapshot(tmp_path / "mc.gsd", st, {})
    assert main(["model", "scatter", str(tmp_path / "mc.gsd"), "--edge", "9.5", "--kind", "structure",
                 "--qmin", "0.3", "--qmax", "0.9", "--npt", "121", "-o", str(tmp_path / "mc.dat")]) == 0  # fmt: skip
    cv = read_curve(tmp_path / "mc.dat")
    a_nm = 9.5 * st.spacing  # lattice spacing in nm
    qg = 2 * math.pi / a_nm
    win = np.abs(cv.q_nm / qg - 1) < 0.1
    q100 = cv.q_nm[win][np.argmax(cv.intensity[win])]
    assert q100 == pytest.approx(
        qg, rel=0.02
    )  # the (100) ring in nm^-1: positions scaled by the edge
    assert cv.intensity[win].max() > 1.5 * cv.intensity[np.argmin(np.abs(cv.q_nm - 0.8 * qg))]
    capsys.readouterr()
