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
from conftest import run_in_child

from saxsred.io.curves import read_curve
from saxsred.peaks import analyze_peaks

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
PD = REAL / "superlattice_pd_ssrl"

AGBH = REAL / "agbe_bm26_pilatus1m"
LIMIT_S = 60  # issue 10 asks for < 10 s per curve; the limit only guards against a hang

needs_pd = pytest.mark.skipif(not PD.is_dir(), reason=f"real data not found at {PD}")


def _run(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = read_curve(next(PD.glob(name + "*")), q_unit="A^-1")
    return analyze_peaks(cv, kind="iq")


@needs_pd
def test_dilute_pd_curve_gives_no_lattice():
    r = _run("A_255C")
    assert r.lattice is None
    assert r.to_json_dict()["lattice"] is None


@needs_pd
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


@needs_pd
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


A15 = REAL / "superlattice_a15" / "exp_1ddata.dat"


@pytest.mark.skipif(not A15.exists(), reason=f"real data not found at {A15}")
def test_many_peak_superlattice_coherence_length_within_what_the_sampling_resolves():
    """The published many-reflection superlattice curve (q in A^-1, 2 columns, no dilute
    curve): indexed, and a coherence length the data can support. A width narrower than two
    q steps is below the sampling (any narrower width fits as well), so no honest L exceeds
    2 pi / (2 dq); a noise blip fitted narrower than one step once gave L = 17 um here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = read_curve(A15, q_unit="A^-1")
        r = analyze_peaks(cv, kind="iq")
    d = r.to_json_dict()
    assert d["lattice"] is not None
    assert sum(p["hkl"] is not None for p in d["peaks"]) >= 15
    dq = float(np.median(np.diff(cv.q_nm)))
    L = d["coherence_length_nm"]
    assert L is not None and L < 2 * np.pi / (2 * dq), (L, 2 * np.pi / (2 * dq))
    # the note says where L comes from, and when the width it rests on holds neighbours
    assert any(n.startswith("coherence length from") for n in d["notes"])


def _agbh_stage(curve, out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = analyze_peaks(curve, kind="iq")
    d = r.to_json_dict()
    out.put(
        (
            d["lattice"],
            d["space_group"],
            d["a_nm"],
            [(p["q_inv_nm"], p["hkl"]) for p in d["peaks"]],
            list(r.notes),
        )
    )


def test_bm26_silver_behenate_lamellar_orders():
    """ESRF BM26 AgBh (Pilatus 1M), reduced with its PONI and lambda = 0.10326 nm: lamellar, d = 5.838 nm.

    The wavelength was inferred from d001 = 5.838 nm, so d itself only checks the chain; the
    orders are the test. Issue 10 asks for at least 8 orders; this frame cannot show them:
    order n lies at q = 1.0763 n nm^-1 and the frame's pixels read 0 beyond q = 6.1 nm^-1
    (the shadow in the detector's far corner: 0 of 16,203 pixels between 5.8 and 6.0 nm^-1
    read 0, 10,450 of 13,771 between 6.3 and 6.6, where order 6 would be). Orders 1-5 are
    every order the frame holds, and each must be indexed. The stage runs in a child process
    with a time limit, so a slow stage fails with a message instead of hanging the suite.
    """
    frame_path = AGBH / "Pilatus1M.edf"
    if not frame_path.exists():
        pytest.skip(f"real data not found at {AGBH}")
    from saxsred.geometry import load_poni
    from saxsred.io.frames import read_frame
    from saxsred.reduce import Corrections, reduce_frame

    frame = read_frame(frame_path)
    geo = load_poni(AGBH / "Pilatus1M.poni", frame.data.shape, wavelength_m=1.0326e-10)
    curve = reduce_frame(frame, geo, Corrections())
    status, res = run_in_child(_agbh_stage, (curve,), LIMIT_S)
    if status == "timeout":
        pytest.fail(
            f"peak stage took more than {LIMIT_S} s on the BM26 AgBh curve (issue 10 asks for < 10 s)"
        )
    assert status == "ok", f"peak stage crashed (exit code {res})"
    lattice, sg, d_nm, peaks, notes = res
    msg = f"lattice={lattice} d={d_nm} peaks={peaks} notes={notes}"
    assert lattice == "lamellar", msg
    assert abs(d_nm / 5.838 - 1) < 5e-3, msg
    orders = {h[2] for _, h in peaks if h is not None}
    q1 = 2 * np.pi / 5.838
    in_frame = {n for n in range(1, 20) if n * q1 < 6.1}
    assert in_frame == {1, 2, 3, 4, 5}
    assert in_frame <= orders, msg
    for q, h in peaks:
        if h is not None:  # every indexed peak sits at its order's q (0.5%)
            assert abs(q / (h[2] * q1) - 1) < 5e-3, msg
