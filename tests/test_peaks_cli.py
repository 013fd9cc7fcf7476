"""``saxsred peaks`` and ``saxsred chi`` on the command line: JSON interface, outputs, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from saxsred.cli import main
from saxsred.curve import Curve
from saxsred.io.curves import write_dat
from saxsred.structures import bragg_structure_factor

KEYS = {
    "lattice",
    "a_nm",
    "a_err_nm",
    "a_err_stat_nm",
    "a_err_calib_nm",
    "nn_distance_nm",
    "coherence_length_nm",
    "coherence_length_err_nm",
    "coherence_convention",
    "instrument_fwhm_inv_nm",
    "peaks",
    "alternatives",
}


@pytest.fixture
def sq_file(tmp_path):
    rng = np.random.default_rng(4)
    q = np.linspace(0.35, 1.4, 700)
    s = bragg_structure_factor(
        q, "SC", 11.384, 166.0, 9.5, amplitude=0.3, instrument_fwhm_inv_nm=0.008
    )
    sig = 0.01 * s
    return write_dat(
        Curve(q, s + rng.normal(0, 1, q.size) * sig, sig, name="sp_sq"), tmp_path / "sp_sq.dat"
    )


def test_peaks_json_interface(sq_file, capsys):
    rc = main(
        ["peaks", str(sq_file), "--sq", "--edge", "9.5", "--resolution-fwhm", "0.008", "--json"]
    )
    out = capsys.readouterr().out
    assert rc == 0
    d = json.loads(out)  # exactly one object
    assert KEYS <= set(d)
    assert "NaN" not in out and "Infinity" not in out
    assert d["lattice"] == "SC"
    assert d["a_nm"] == pytest.approx(11.384, rel=0.003)
    assert d["coherence_length_nm"] == pytest.approx(166.0, rel=0.05)
    assert d["coherence_convention"] == "K=1, FWHM"
    assert d["instrument_fwhm_inv_nm"] == 0.008
    assert d["a_err_calib_nm"] == pytest.approx(0.005 * d["a_nm"])
    for p in d["peaks"]:
        assert {"q_inv_nm", "q_err_inv_nm", "fwhm_inv_nm", "area", "hkl"} <= set(p)
        assert p["hkl"] is None or (
            len(p["hkl"]) == 3 and all(isinstance(x, int) for x in p["hkl"])
        )
    for a in d["alternatives"]:
        assert {"lattice", "a_nm", "score"} <= set(a)
    assert d["alternatives"][1]["lattice"] == "BCC"


def test_peaks_output_folder(sq_file, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["peaks", str(sq_file), "--sq", "--edge", "9.5", "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"peaks.json", "peaks.png", "peaks.tsv"}
    assert json.loads((out / "peaks.json").read_text())["lattice"] == "SC"
    assert "100" in (out / "peaks.tsv").read_text()
    assert "SC, a =" in capsys.readouterr().out


def test_no_peaks_gives_null_lattice(tmp_path, capsys):
    rng = np.random.default_rng(1)
    q = np.linspace(0.2, 2, 500)
    f = write_dat(
        Curve(q, 1 + rng.normal(0, 0.01, q.size), np.full(q.size, 0.01)), tmp_path / "flat.dat"
    )
    assert main(["peaks", str(f), "--sq", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["lattice"] is None and d["a_nm"] is None and d["alternatives"] == []


@pytest.mark.parametrize(
    "make,args,msg",
    [
        (None, ["--sq"], "no such file"),
        ("one_column", ["--sq"], "one column"),
        ("good", ["--sq", "--edge", "-3"], "--edge"),
        ("good", ["--sq", "--calib-rel-err", "2"], "calibration"),
        ("good", ["--sq", "--resolution-fwhm", "-0.1"], "resolution"),
        ("short", ["--sq"], "at least 20"),
        ("good", ["--sq", "--calibrant", "CAL"], "calibrant"),
    ],
)
def test_bad_input_one_line_nonzero_exit(tmp_path, capsys, make, args, msg):
    f = tmp_path / "in.dat"
    if make == "one_column":
        f.write_text("0.1\n0.2\n0.3\n")
    elif make == "good":
        q = np.linspace(0.3, 1.5, 200)
        write_dat(Curve(q, 1 + 0 * q, 0.01 + 0 * q), f)
    elif make == "short":
        q = np.linspace(0.3, 1.5, 10)
        write_dat(Curve(q, 1 + 0 * q, 0.01 + 0 * q), f)
    args = [a if a != "CAL" else str(f) for a in args]
    rc = main(["peaks", str(f), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and msg in err


def test_chi_command(tmp_path, capsys):
    rng = np.random.default_rng(3)
    chi = np.arange(-180, 180, 1.0)
    y = np.full(chi.size, 20.0)
    for c in (-90, 0, 90, 180):
        d = (chi - c + 180) % 360 - 180
        y += 200 * np.exp(-0.5 * (d / (10.0 / 2.3548)) ** 2)
    sig = np.sqrt(y)
    f = tmp_path / "chi.txt"
    np.savetxt(
        f,
        np.column_stack([chi, y + rng.normal(0, 1, chi.size) * sig, sig]),
        header="chi_deg I sigma",
    )
    assert main(["chi", str(f), "--json", "-o", str(tmp_path / "o")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["n_peaks"] == 4
    assert d["mean_fwhm_deg"] == pytest.approx(10.0, rel=0.05)
    assert (tmp_path / "o" / "chi.png").exists()
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\n")
    assert main(["chi", str(bad)]) == 2
