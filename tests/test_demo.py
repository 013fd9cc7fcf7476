"""The README's main job on the embedded sample data: frames to the paper's numbers."""

from __future__ import annotations

import json

import pytest

from saxsred.cli import main
from saxsred.simulate import SAMPLE_TRUTH


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "-o", str(out)]) == 0
    return out, json.loads((out / "summary.json").read_text())


def test_demo_recovers_the_truth_it_was_made_from(demo):
    _, s = demo
    assert s["frames_rejected"] == ["sp_003"]  # the frame with a bubble
    ff = s["form_factor"]
    assert ff["edge_nm"] == pytest.approx(SAMPLE_TRUTH["edge_nm"], rel=0.01)
    assert ff["polydispersity"] == pytest.approx(SAMPLE_TRUTH["polydispersity"], rel=0.15)
    pk = s["peaks"]
    assert pk["lattice"] == "SC"
    assert pk["a_nm"] == pytest.approx(SAMPLE_TRUTH["a_nm"], rel=0.003)
    assert pk["coherence_length_nm"] == pytest.approx(SAMPLE_TRUTH["coherence_length_nm"], rel=0.10)
    assert "K=1" in pk["coherence_convention"]
    assert s["instrument_fwhm_inv_nm"] == pytest.approx(
        SAMPLE_TRUTH["instrument_fwhm_inv_nm"], rel=0.1
    )
    hkls = [p["hkl"] for p in pk["peaks"][:4]]
    assert hkls == [[1, 0, 0], [1, 1, 0], [2, 0, 0], [2, 1, 0]]
    assert pk["alternatives"][1]["lattice"] == "BCC"


def test_demo_writes_curves_and_figures(demo):
    out, s = demo
    for name in (
        "curves.png",
        "frame_sp_001.png",
        "form_factor_fit.png",
        "structure_factor.png",
        "peaks.png",
        "curves/sp_average.h5",
        "curves/dilute.dat",
        "curves/s_eff.dat",
        "summary.json",
    ):
        assert (out / name).exists(), name
        assert name in s["outputs"]
    from saxsred.io.curves import read_curve

    sp = read_curve(out / "curves" / "sp_average.h5")
    assert sp.unit == "cm^-1"
    steps = [st["step"] for st in sp.provenance["steps"]]
    assert steps == ["reduce", "average", "subtract", "scale"]
