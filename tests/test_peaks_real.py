"""The peak stage on real superlattice curves it has never seen (../shared/realdata).

In-situ SAXS of Pd nanocrystal superlattices (SSRL BL1-5, xrsdkit): two columns, q in
A^-1, no sigma, peaks on a sphere form factor, no dilute curve. The assertions are what the
data show: the 255 C curve is a dilute suspension (no lattice); the ordered curves index as
one close-packed lattice whose parameter grows along the series. Skipped when the data
are absent.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from saxsred.io.curves import read_curve
from saxsred.peaks import analyze_peaks

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
PD = REAL / "superlattice_pd_ssrl"

pytestmark = pytest.mark.skipif(not PD.is_dir(), reason=f"real data not found at {PD}")


def _run(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = read_curve(next(PD.glob(name + "*")), q_unit="A^-1")
    return analyze_peaks(cv, kind="iq")


def test_dilute_pd_curve_gives_no_lattice():
    r = _run("A_255C")
    assert r.lattice is None
    assert r.to_json_dict()["lattice"] is None


def test_pd_series_one_close_packed_lattice_growing():
    # 265 -> 272 -> 280 C, then cooled to 80 C (the files' order in time)
    names = ["A_265C", "A_272C", "A_280C_0", "A_colling_80C"]
    res = [_run(n) for n in names]
    lat = [r.lattice for r in res]
    assert lat == ["FCC"] * len(names), lat
    a = np.array([r.a_nm for r in res])
    # FCC (111) of these curves lies at 0.90-1.0 nm^-1: a = 2 pi sqrt3 / q111 = 10.9-12.1 nm
    assert np.all((a > 10.5) & (a < 12.5)), a
    assert np.all(np.diff(a) > 0), a  # the lattice parameter grows along the series
    for r in res:
        d = r.to_json_dict()
        assert d["space_group"] == "Fm-3m"
        assert d["coherence_length_nm"] is not None and d["coherence_length_nm"] > 5 * d["a_nm"]


def test_positions_beat_intensities_on_a_real_curve():
    # On the 272 C curve the intensity model alone ranks another lattice as well as or better
    # than FCC (cost terms of intensities), but only FCC explains every Bragg peak's
    # position, and positions decide.
    r = _run("A_272C")
    best = r.indexing.best
    assert best.lattice == "FCC" and best.n_unexplained == 0
    others = [c for c in r.indexing.candidates if c.lattice != "FCC"]
    assert any(c.terms.get("intensities", np.inf) <= best.terms["intensities"] for c in others)
    assert all(c.n_unexplained > 0 for c in others)
