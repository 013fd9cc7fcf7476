"""1-D curve reading and writing: abscissa units carried, stated or refused (issue 14)."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from saxsred.curve import X_UNITS, Curve, normalize_x_unit, require_q_nm
from saxsred.errors import InputError, InputWarning
from saxsred.io.curves import estimate_sigma, read_curve, write_dat, write_nxcansas

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def _real(rel: str) -> Path:
    p = REAL / rel
    if not p.exists():
        pytest.skip(f"real data {rel} not present (../shared/realdata)")
    return p


def _curve(x_unit: str, wl: float | None = None) -> Curve:
    x = np.linspace(0.5, 40.0, 60) if x_unit != "chi_deg" else np.linspace(-179.0, 179.0, 60)
    i = 100.0 * np.exp(-np.abs(x) / 10.0) + 1.0
    return Curve(x, i, np.sqrt(i), unit="cm^-1", name="c", x_unit=x_unit, wavelength_nm=wl)


# ----------------------------------------------------------------------- units round trip


@pytest.mark.parametrize("x_unit", X_UNITS)
@pytest.mark.parametrize("fmt", ["dat", "h5"])
def test_every_abscissa_unit_round_trips(tmp_path, x_unit, fmt):
    """A curve written and read back keeps its abscissa unit (and wavelength) in both formats."""
    c = _curve(x_unit, wl=0.1)
    p = tmp_path / f"c.{fmt}"
    (write_dat if fmt == "dat" else write_nxcansas)(c, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        back = read_curve(p, keep_unit=True)
    assert back.x_unit == x_unit
    assert back.wavelength_nm == pytest.approx(0.1)
    np.testing.assert_allclose(back.q_nm, c.q_nm, rtol=1e-7)
    np.testing.assert_allclose(back.intensity, c.intensity, rtol=1e-7)


def test_dat_header_and_nxcansas_units_are_truthful(tmp_path):
    """Found 1: a 2th_deg / q_A^-1 curve was labelled q_nm^-1 and Q@units = 1/nm."""
    for x_unit, nx_axis, nx_units in (
        ("2th_deg", "two_theta", "degree"),
        ("q_A^-1", "Q", "1/angstrom"),
        ("q_nm^-1", "Q", "1/nm"),
    ):
        c = _curve(x_unit, wl=0.1)
        text = write_dat(c, tmp_path / f"{nx_axis}.dat").read_text()
        assert f"# x_unit: {x_unit}\n" in text and f"# columns: {x_unit} I sigma" in text
        if x_unit != "q_nm^-1":
            assert "q_nm^-1" not in text.split("# provenance")[0]
        write_nxcansas(c, tmp_path / f"{nx_axis}.h5")
        with h5py.File(tmp_path / f"{nx_axis}.h5", "r") as fh:
            d = fh["sasentry01/sasdata01"]
            axis = d.attrs["I_axes"]
            axis = axis.decode() if isinstance(axis, bytes) else axis
            assert axis == nx_axis
            units = d[axis].attrs["units"]
            assert (units.decode() if isinstance(units, bytes) else units) == nx_units


def test_q_units_convert_and_2theta_needs_wavelength():
    q_a = _curve("q_A^-1")
    with pytest.warns(InputWarning, match="A\\^-1 to nm\\^-1"):
        q = require_q_nm(q_a, "peaks")
    np.testing.assert_allclose(q.q_nm, 10 * q_a.q_nm)
    assert q.x_unit == "q_nm^-1" and any("A^-1" in n for n in q.provenance["notes"])

    tth = _curve("2th_deg", wl=0.1)
    with pytest.warns(InputWarning, match="wavelength 0.1 nm"):
        q = tth.to_q_nm("peaks")
    # q = 4 pi sin(theta) / lambda, written here independently
    np.testing.assert_allclose(
        q.q_nm, 4 * np.pi * np.sin(np.radians(tth.q_nm) / 2) / 0.1, rtol=1e-12
    )

    with pytest.raises(InputError, match="no wavelength") as exc:
        require_q_nm(_curve("2th_deg"), "peaks")
    assert "\n" not in str(exc.value) and "peaks" in str(exc.value)
    with pytest.raises(InputError, match="not q"):
        require_q_nm(_curve("chi_deg"), "formfactor")


def test_unit_spellings_and_refusal():
    assert normalize_x_unit("nm^-1") == "q_nm^-1"
    assert normalize_x_unit("1/Å") == "q_A^-1"
    assert normalize_x_unit("A^-1") == "q_A^-1"
    assert normalize_x_unit("2th_deg") == "2th_deg"
    with pytest.raises(InputError, match="furlong") as exc:
        normalize_x_unit("furlong^-1", "x.dat")
    assert "\n" not in str(exc.value)


def _write(tmp_path, name: str, header: str, x, y, s=None) -> Path:
    cols = [x, y] if s is None else [x, y, s]
    body = "\n".join(" ".join(f"{v:.10e}" for v in row) for row in zip(*cols))
    p = tmp_path / name
    p.write_text(header + body + "\n")
    return p


def test_header_units_are_read_and_said(tmp_path):
    x = np.linspace(0.01, 0.3, 50)
    y = 1.0 / (1 + (x * 30) ** 2)
    s = 0.01 * y
    # xrsdkit style: q in 1/Angstrom
    p = _write(tmp_path, "a.dat", "# q (1/Angstrom), I (arb), dI (arb)\n", x, y, s)
    with pytest.warns(InputWarning, match="A\\^-1") as rec:
        c = read_curve(p)
    assert len([w for w in rec if issubclass(w.category, InputWarning)]) == 1  # one line
    np.testing.assert_allclose(c.q_nm, 10 * x)
    # q_unit argument overrides
    c = read_curve(p, q_unit="nm^-1")
    np.testing.assert_allclose(c.q_nm, x)
    # no header: assumed nm^-1, and said
    p = _write(tmp_path, "b.dat", "", x, y, s)
    with pytest.warns(InputWarning, match="no abscissa unit"):
        c = read_curve(p)
    np.testing.assert_allclose(c.q_nm, x)
    # an explicit unit saxsred cannot convert: one-line refusal
    p = _write(tmp_path, "c.dat", "# x_unit: furlong\n", x, y, s)
    with pytest.raises(InputError, match="furlong"):
        read_curve(p)


def test_2theta_file_without_wavelength_is_refused(tmp_path):
    """Found 1: a '# 2th_deg' file was read as q in nm^-1 (and peaks then ran out of memory)."""
    tth = np.linspace(1.0, 30.0, 100)
    p = _write(tmp_path, "x.xy", "# 2th_deg I\n", tth, np.ones_like(tth) + tth, np.ones_like(tth))
    with pytest.raises(InputError, match="no wavelength") as exc:
        read_curve(p)
    assert "\n" not in str(exc.value)
    with pytest.warns(InputWarning):
        c = read_curve(p, wavelength_nm=0.1)
    assert c.x_unit == "q_nm^-1"
    assert c.q_nm.max() == pytest.approx(4 * np.pi * np.sin(np.radians(15.0)) / 0.1)
    with pytest.warns(InputWarning):
        kept = read_curve(p, keep_unit=True)
    assert kept.x_unit == "2th_deg"


def test_bioxtas_raw_conversion_is_said():
    """Found 1: BioXTAS RAW curves were converted from A^-1 silently."""
    p = _real("curves/lys_saxs.dat")
    with pytest.warns(InputWarning, match="BioXTAS RAW.*A\\^-1 to nm\\^-1"):
        c = read_curve(p)
    raw_first_q = float(p.read_text().split("\n")[4].split()[0])
    assert c.q_nm[0] == pytest.approx(10 * raw_first_q)
    assert any("A^-1" in n for n in c.provenance["notes"])


def test_ceo2_dioptas_xy_reflections_at_their_q():
    """The Dioptas CeO2 .xy (2theta deg, wavelength 0.04066 nm in its header) gives the eight
    CeO2 reflections (Fm-3m, a = 0.54113 nm) at q = 2 pi sqrt(h2+k2+l2) / a within 5e-4."""
    p = _real("ceo2_pilatus1m/CeO2_Pilatus1M.xy")
    with pytest.warns(InputWarning, match="2theta"):
        c = read_curve(p)
    assert c.x_unit == "q_nm^-1" and c.wavelength_nm == pytest.approx(0.04066)
    a = 0.54113
    for hkl in (
        (1, 1, 1),
        (2, 0, 0),
        (2, 2, 0),
        (3, 1, 1),
        (2, 2, 2),
        (4, 0, 0),
        (3, 3, 1),
        (4, 2, 0),
    ):
        q_hkl = 2 * np.pi * np.sqrt(sum(h * h for h in hkl)) / a
        win = np.abs(c.q_nm - q_hkl) < 0.012 * q_hkl
        i = np.flatnonzero(win)[np.argmax(c.intensity[win])]
        # parabola through the three points around the maximum: sub-bin peak position
        y0, y1, y2 = c.intensity[i - 1 : i + 2]
        x0, x1, x2 = c.q_nm[i - 1 : i + 2]
        denom = y0 - 2 * y1 + y2
        q_peak = x1 + 0.5 * (x2 - x0) / 2 * (y0 - y2) / denom
        assert abs(q_peak / q_hkl - 1) < 5e-4, (hkl, q_peak, q_hkl)


def test_two_column_sigma_estimated_from_scatter(tmp_path):
    """A 2-column file gets sigma from its own scatter, its median within 10% of the true noise, and says so."""
    rng = np.random.default_rng(1)
    q = np.linspace(0.05, 3.0, 800)
    truth = 1e3 * np.exp(-((q * 4) ** 2) / 3) + 10.0 / (1 + q**4)
    sig_true = 0.02 * truth + 0.05
    y = truth + rng.normal(0, sig_true)
    p = _write(tmp_path, "two.dat", "# q_nm^-1 I\n", q, y)
    with pytest.warns(InputWarning, match="sigma estimated"):
        c = read_curve(p)
    assert c.provenance["sigma_missing"] is True and "DER_SNR" in c.provenance["sigma_estimate"]
    assert np.all(c.sigma > 0)
    ratio = c.sigma[20:-20] / sig_true[20:-20]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    # a 21-point running median has ~25% scatter of its own
    assert np.percentile(ratio, 10) > 0.55 and np.percentile(ratio, 90) < 1.6
    # the estimator alone: white noise of known sigma on a straight line
    s, desc = estimate_sigma(5.0 + 0.1 * np.arange(2000) + rng.normal(0, 0.3, 2000))
    assert np.median(s) == pytest.approx(0.3, rel=0.1) and "scatter" in desc


def test_old_curve_files_still_read(tmp_path):
    """Files written before the x_unit header ('# q_unit: nm^-1') read as nm^-1 without a note."""
    p = tmp_path / "old.dat"
    p.write_text(
        "# saxsred 1-D curve\n# q_unit: nm^-1\n# columns: q_nm^-1 I sigma\n0.1 1 0.1\n0.2 2 0.1\n0.3 3 0.1\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        c = read_curve(p)
    assert c.x_unit == "q_nm^-1"


def test_cli_refuses_2theta_curve_without_wavelength(tmp_path, capsys):
    """Found 1: 'peaks' on a 2th_deg file read it as q and died allocating 24 GB; now one line, exit 2."""
    from saxsred.cli import main

    tth = np.linspace(1.0, 30.0, 400)
    p = _write(
        tmp_path,
        "x.xy",
        "# 2th_deg I\n",
        tth,
        10 + np.exp(-((tth - 12) ** 2) / 0.01),
        np.ones_like(tth),
    )
    rc = main(["peaks", str(p), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no wavelength" in err


def test_every_stage_checks_the_unit_it_receives():
    """A Curve handed to a stage in Python (not through read_curve) is checked there too."""
    from saxsred.formfactor import fit_form_factor
    from saxsred.peaks import analyze_peaks
    from saxsred.reduce import merge_curves

    c = _curve("2th_deg")  # no wavelength: no way to q
    for stage in (analyze_peaks, fit_form_factor, lambda cv: merge_curves(cv, cv)):
        with pytest.raises(InputError, match="no wavelength"):
            stage(c)
    with pytest.raises(InputError, match="not q"):
        analyze_peaks(_curve("chi_deg"))
