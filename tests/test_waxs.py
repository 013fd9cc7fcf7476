"""WAXS of perovskite nanocrystals: pseudo-cubic indexing, Scherrer size, SAXS/WAXS merge.

Generated patterns are written here from textbook formulas (SCIENCE.md section 6: the
CsPbBr3 pseudo-cubic reflections and intensities, Scherrer FWHM 2 pi K / L with K = 0.886
for a cube), not with saxsred's simulator.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import realdata

from saxsred.curve import Curve

# CsPbBr3 pseudo-cubic reflections (q in nm^-1, relative intensity), SCIENCE.md section 6
CSPBBR3 = [
    ((1, 0, 0), 10.70, 28),
    ((1, 1, 0), 15.13, 85),
    ((1, 1, 1), 18.53, 21),
    ((2, 0, 0), 21.39, 100),
    ((2, 1, 0), 23.92, 17),
    ((2, 1, 1), 26.20, 46),
    ((2, 2, 0), 30.25, 81),
    ((3, 1, 0), 33.83, 23),
    ((2, 2, 2), 37.05, 31),
]
K = 0.886


def _cspbbr3_waxs(edge_nm=9.5, instrument=0.10, seed=3, counts=2000.0):
    """Gaussian lines of FWHM sqrt((2 pi K / L)^2 + instrument^2) on a smooth background, Poisson noise."""
    q = np.linspace(8.0, 40.0, 1600)
    w = np.hypot(2 * np.pi * K / edge_nm, instrument)
    s = w / (2 * np.sqrt(2 * np.log(2)))
    y = 0.3 + 0.5 * np.exp(-q / 15.0)
    for _, qc, rel in CSPBBR3:
        y = y + rel / 100.0 * np.exp(-0.5 * ((q - qc) / s) ** 2)
    lam = counts * y
    obs = np.random.default_rng(seed).poisson(lam).astype(float)
    return Curve(q, obs, np.sqrt(np.maximum(obs, 1.0)), name="cspbbr3_waxs")


def test_cspbbr3_nanocubes_index_and_scherrer_size():
    from saxsred.peaks.waxs import analyze_waxs

    res = analyze_waxs(_cspbbr3_waxs(), K=K, instrument_fwhm_inv_nm=0.10, edge_nm=9.5)
    assert res.a_nm == pytest.approx(0.5874, rel=2e-3)
    hkls = {tuple(p.hkl) for p in res.indexed}
    assert {(1, 0, 0), (1, 1, 0), (2, 0, 0), (2, 1, 1), (2, 2, 0)} <= hkls
    assert not res.unexplained
    assert res.size_nm == pytest.approx(9.5, rel=0.10)
    assert res.size_over_edge == pytest.approx(1.0, rel=0.10)
    d = res.to_json_dict()
    assert d["scherrer_K"] == K and "quadrature" in d["width_convention"]


def test_instrument_width_is_removed_not_ignored():
    """Left in, a 0.3 nm^-1 instrument makes 9.5 nm cubes look about 8 nm; removed, 9.5 comes back."""
    from saxsred.peaks.waxs import analyze_waxs

    curve = _cspbbr3_waxs(instrument=0.30)
    kept = analyze_waxs(curve, K=K, instrument_fwhm_inv_nm=0.0)
    removed = analyze_waxs(curve, K=K, instrument_fwhm_inv_nm=0.30)
    assert removed.size_nm == pytest.approx(9.5, rel=0.10)
    assert kept.size_nm < 0.9 * removed.size_nm


def test_mapbi3_film_indexes_pseudocubic_with_pbi2_and_fto_listed():
    from saxsred.io.curves import read_curve
    from saxsred.peaks.waxs import analyze_waxs

    folder = realdata("waxs_mapbi3_film")
    for f in sorted(folder.glob("*.dat")):
        with pytest.warns(UserWarning, match="A\\^-1"):
            curve = read_curve(f)  # q in A^-1 says the header: converted to nm^-1
        res = analyze_waxs(curve)
        assert res.a_nm == pytest.approx(0.627, abs=0.003), f.name
        hkls = {tuple(p.hkl) for p in res.indexed}
        assert {(1, 0, 0), (2, 0, 0), (2, 1, 0), (2, 2, 0)} <= hkls, f.name
        unexplained_a = [p.q_inv_nm / 10 for p in res.unexplained]
        # PbI2 (001) near 0.90 A^-1 and the FTO/SnO2 (110) near 1.87 A^-1: listed, not indexed
        assert any(abs(q - 0.90) < 0.01 for q in unexplained_a), unexplained_a
        assert any(abs(q - 1.87) < 0.01 for q in unexplained_a), unexplained_a
        assert any("0.900 A^-1" in n for n in res.notes)


def test_not_a_perovskite_is_refused():
    from saxsred.errors import FitError
    from saxsred.peaks.waxs import analyze_waxs

    # lines at q ratios 1 : 1.13 : 1.61 : 1.94 (no cubic cell in 0.55-0.70 nm explains two of them)
    q = np.linspace(8, 40, 1600)
    y = 1.0 + sum(np.exp(-0.5 * ((q - c) / 0.1) ** 2) for c in (11.0, 12.43, 17.71, 21.34))
    with pytest.raises(FitError, match="pseudo-cubic"):
        analyze_waxs(Curve(q, 1000 * y, np.sqrt(1000 * y), name="x"), a_range=(0.55, 0.56))


def test_saxs_waxs_merge_recovers_the_scale_of_the_nanocrystal_curves():
    """SAXS of 9.5 nm particles (sphere of equal volume, textbook) and the WAXS above: one factor between them."""
    from saxsred.reduce import merge_curves

    rng = np.random.default_rng(11)
    r = 9.5 * (3 / (4 * np.pi)) ** (1 / 3)

    def sphere(q):
        x = q * r
        return (3 * (np.sin(x) - x * np.cos(x)) / x**3) ** 2 + 2e-4

    q1 = np.linspace(0.1, 6.0, 600)
    q2 = np.linspace(4.0, 12.0, 400)
    s1 = 0.01 * sphere(q1)
    saxs = Curve(q1, sphere(q1) + rng.normal(0, s1), s1, name="saxs")
    true_k = 42.0
    w2 = sphere(q2) / true_k
    s2 = 0.01 * w2
    waxs = Curve(q2, w2 + rng.normal(0, s2), s2, name="waxs")
    m = merge_curves(saxs, waxs)
    assert m.factor == pytest.approx(true_k, abs=4 * m.factor_err)
    assert np.all(np.diff(m.curve.q_nm) > 0)


def test_waxs_command_takes_the_instrument_width_from_a_calibrated_geometry(tmp_path, capsys):
    import json

    from saxsred.cli import main
    from saxsred.geometry import Geometry

    curve = _cspbbr3_waxs(instrument=0.2)
    f = tmp_path / "waxs.dat"
    np.savetxt(f, np.c_[curve.q_nm, curve.intensity, curve.sigma], header="q (nm^-1), I, sigma")
    poni = tmp_path / "waxs.poni"
    Geometry(0.2, 0.05, 0.05, 0, 0, 0, 172e-6, 172e-6, 1e-10).write_poni(poni)
    # what 'saxsred calibrate' writes: the width as a comment line saxsred's PONI reader knows
    poni.write_text("# saxsred instrument_fwhm_inv_nm: 0.2\n" + poni.read_text())
    assert main(["waxs", str(f), "--geometry", str(poni), "--edge", "9.5", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["instrument_fwhm_inv_nm"] == 0.2 and "waxs.poni" in d["instrument_width_source"]
    assert d["size_nm"] == pytest.approx(9.5, rel=0.10)
    assert d["size_over_saxs_edge"] == pytest.approx(1.0, rel=0.10)
    assert [1, 1, 0] in [p["hkl"] for p in d["peaks"]]
