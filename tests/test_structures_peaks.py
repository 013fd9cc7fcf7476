"""Loop closure: computed S(q) and S_eff(q) of model supraparticles through the peak stage.

Each call of the peak stage runs in a child process with a time limit, so that a slow
stage fails this test with a message instead of hanging the suite.

Status when written (13:00 UTC, 2026-12-03): the peak stage is being reworked under issue 10.
On these noise-free finite-crystal curves (Laue side lobes resolved, sigma = the stated
numerical accuracy) the stage of that day returned ``lattice = None`` for 8^3 and 12^3 and
did not finish within 15 min for 16^3 (limit here: 30 s per call, issue 10 asks for 10 s); the expected physics is asserted unchanged and the
tests are marked xfail (not strict) until issue 10's bounded cost and position-first
indexing land.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import run_in_child

from saxsred.structures import build_supraparticle, scatter

A, E = 11.4, 9.5
LIMIT_S = 30  # issue 10 asks for < 10 s per curve
PENDING = pytest.mark.xfail(
    reason="peak stage (issue 10), measured 15:40 UTC 2026-12-03: each call now ends in < 10 s, but on "
    "these noise-free finite-crystal curves (sigma 1e-4 of S) the Laue fringes are fitted as peaks "
    "and a superset cell explains them: 8^3 A15 at 27.9 nm (sqrt6 a), 12^3 no lattice, 16^3 A15 at 56.3 nm",
    strict=False,
)


def _stage(curve, out):
    from saxsred.peaks import analyze_peaks

    r = analyze_peaks(curve, kind="sq")
    coh = r.coherence.length_nm if r.coherence is not None else None
    centres = [pk.q_nm for pk in r.peakfit.peaks] if r.peakfit is not None else []
    out.put((r.lattice, r.a_nm, coh, centres, list(r.notes)))


def run_stage(curve):
    status, res = run_in_child(_stage, (curve,), LIMIT_S)
    if status == "timeout":
        pytest.fail(
            f"peak stage took more than {LIMIT_S} s on a {len(curve)}-point curve (issue 10 asks for < 10 s)"
        )
    if status == "crash":
        pytest.fail(f"peak stage crashed (exit code {res})")
    return res


@PENDING
def test_structure_kind_gives_a_within_0p2_percent_and_coherence_linear_in_edge():
    q = np.linspace(0.3, 1.6, 600)
    lengths, edges = [], []
    for n in (8, 12, 16):
        cv = scatter(build_supraparticle("SC", A, E, (n, n, n)), q, kind="structure")
        lattice, a, coh, _, notes = run_stage(cv)
        print(n, lattice, a, coh, notes)
        assert lattice == "SC", (n, notes)
        if n == 16:
            # the stage refines a over every indexed peak, so the ~0.1 % shifts of single
            # low-order peaks of a 16-cell crystal average out
            assert abs(a / A - 1) < 2e-3, a
        lengths.append(coh)
        edges.append(n * A)
    lengths, edges = np.array(lengths), np.array(edges)
    slope, icpt = np.polyfit(edges, lengths, 1)
    # Scherrer: L proportional to the edge, no offset beyond 15 % of the largest
    assert abs(icpt) < 0.15 * lengths[-1], (slope, icpt)
    assert np.allclose(lengths / edges, np.mean(lengths / edges), rtol=0.15), lengths / edges


@PENDING
def test_effective_kind_with_aligned_cubes_is_still_sc_and_the_envelope_shift_is_measured():
    n = 12
    sp = build_supraparticle("SC", A, E, (n, n, n))
    q = np.linspace(0.35, 1.4, 420)
    lat_s, a_s, _, cen_s, _ = run_stage(scatter(sp, q, kind="structure"))
    lat_e, a_e, _, cen_e, notes = run_stage(scatter(sp, q, kind="effective"))
    assert lat_e == "SC", notes
    assert abs(a_e / A - 1) < 5e-3
    # the oriented envelope |F(q)|^2 / P(q) tilts each peak: measure the shift per ring
    for qg in (2 * math.pi * math.sqrt(m) / A for m in (1, 2, 4, 5)):
        ce = min(cen_e, key=lambda c: abs(c - qg))
        cs = min(cen_s, key=lambda c: abs(c - qg))
        print(
            f"ring {qg:.4f}: structure {cs:.4f}, effective {ce:.4f}, envelope shift {100 * (ce / cs - 1):+.3f} %"
        )
        assert (
            abs(ce / cs - 1) < 0.02
        )  # measured directly: (110) -1.2 %, others < 0.3 % at 12 cells
