"""The reduce/info commands end to end: outputs, provenance, determinism, SasView loading, errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import smooth_curve

from saxsred.cli import main
from saxsred.io.curves import read_curve
from saxsred.simulate import DetectorLayout, Exposure, simulate_frame, write_edf


@pytest.fixture
def frames(tmp_path, small_geometry):
    q, i = smooth_curve()
    paths = []
    rng = np.random.default_rng(5)
    for k in range(3):
        data, hdr, _ = simulate_frame(
            q,
            i,
            small_geometry,
            small_geometry.shape,
            Exposure(),
            DetectorLayout(beamstop_radius_px=5),
            rng,
        )
        paths.append(str(write_edf(tmp_path / f"frame_{k}.edf", data, hdr)))
    small_geometry.write_poni(tmp_path / "g.poni")
    return paths


def test_reduce_writes_h5_and_dat_per_frame(tmp_path, frames, capsys):
    out = tmp_path / "out"
    rc = main(
        ["reduce", *frames, "--poni", str(tmp_path / "g.poni"), "--npt", "150", "-o", str(out)]
    )
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([f"frame_{k}.{e}" for k in range(3) for e in ("dat", "h5")])
    cv = read_curve(out / "frame_0.dat")
    h5 = read_curve(out / "frame_0.h5")
    np.testing.assert_allclose(cv.intensity, h5.intensity, rtol=1e-7)
    prov = h5.provenance
    step = prov["steps"][0]
    assert step["inputs"][0]["file"] == "frame_0.edf" and step["inputs"][0]["checksum"].startswith(
        "xxh3:"
    )
    assert step["options"]["npt"] == 150 and "poni_file" in step["options"]
    assert "pyFAI" in prov["software"] and step["geometry"]["dist_m"] == 1.0


def test_outputs_are_byte_identical_between_runs(tmp_path, frames):
    for d in ("a", "b"):
        assert main(["reduce", frames[0], "--npt", "100", "-o", str(tmp_path / d)]) == 0
    for name in ("frame_0.h5", "frame_0.dat"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_nxcansas_loads_in_sasview_reader(tmp_path, frames):
    from sasdata.dataloader.loader import Loader

    assert main(["reduce", frames[0], "--npt", "120", "-o", str(tmp_path / "o")]) == 0
    mine = read_curve(tmp_path / "o" / "frame_0.h5")
    data = Loader().load(str(tmp_path / "o" / "frame_0.h5"))[0]
    # sasdata converts q to A^-1
    np.testing.assert_allclose(np.asarray(data.x) * 10, mine.q_nm, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(data.y), mine.intensity, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(data.dy), mine.sigma, rtol=1e-6)
    with h5py.File(tmp_path / "o" / "frame_0.h5") as fh:
        assert fh["sasentry01"].attrs["canSAS_class"] == "SASentry"
        assert fh["sasentry01/definition"][()] == b"NXcanSAS"


# The NXcanSAS definition (NeXus base class NXcanSAS, v1.1), written out here:
# I@units is one of these (absolute: 1/m or 1/cm; per mass: m2/g, cm2/g; else "arbitrary");
NX_I_UNITS = {"1/m", "1/cm", "m2/g", "cm2/g", "arbitrary"}
# Q@units is an inverse length (NX_PER_LENGTH).
NX_Q_UNITS = {"1/m", "1/cm", "1/nm", "1/angstrom"}


def _attr(obj, key):
    v = obj.attrs[key]
    return v.decode() if isinstance(v, bytes) else v


def check_nxcansas(path):
    """The NXcanSAS rules a validator applies to a 1-D SASdata (units, axes, uncertainties)."""
    with h5py.File(path) as fh:
        entry = fh[_attr(fh, "default")]
        assert _attr(entry, "NX_class") == "NXentry" and _attr(entry, "canSAS_class") == "SASentry"
        assert _attr(entry, "version") == "1.1"
        assert entry["definition"][()] in (b"NXcanSAS", "NXcanSAS")
        assert "title" in entry and "run" in entry
        data = entry[_attr(entry, "default")]
        assert _attr(data, "NX_class") == "NXdata" and _attr(data, "canSAS_class") == "SASdata"
        assert _attr(data, "signal") == "I"
        axes = _attr(data, "I_axes")
        assert axes == "Q", "a 1-D curve has I_axes = Q"
        assert list(np.atleast_1d(data.attrs["Q_indices"])) == [0]
        i, q = data["I"], data["Q"]
        assert i.shape == q.shape and i.ndim == 1
        assert _attr(i, "units") in NX_I_UNITS, _attr(i, "units")
        assert _attr(q, "units") in NX_Q_UNITS, _attr(q, "units")
        unc = _attr(i, "uncertainties")
        assert unc in data and data[unc].shape == i.shape, (
            "I@uncertainties names a dataset of I's shape"
        )
        assert _attr(data[unc], "units") == _attr(i, "units")
        return _attr(i, "units")


@pytest.mark.parametrize(
    ("extra", "nx_unit", "unit"),
    [((), "arbitrary", "sr^-1"), (("--scale", "2.5", "--thickness", "1.5"), "1/cm", "cm^-1")],
)
def test_nxcansas_units_follow_the_definition(tmp_path, frames, extra, nx_unit, unit):
    from sasdata.dataloader.loader import Loader

    assert main(["reduce", frames[0], "--npt", "120", *extra, "-o", str(tmp_path / "o")]) == 0
    h5 = tmp_path / "o" / "frame_0.h5"
    assert check_nxcansas(h5) == nx_unit
    # the per-steradian meaning is kept: in the provenance and in the .dat header
    cv = read_curve(h5)
    assert cv.unit == unit and cv.provenance["intensity_unit"] == unit
    dat = (tmp_path / "o" / "frame_0.dat").read_text()
    assert f"# intensity_unit: {unit}" in dat
    if unit == "sr^-1":
        assert "per steradian" in cv.provenance["intensity_unit_note"]
    data = Loader().load(str(h5))[0]  # SasView's reader still loads it
    np.testing.assert_allclose(np.asarray(data.y), cv.intensity, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(data.dy), cv.sigma, rtol=1e-6)


def test_average_background_and_verdicts(tmp_path, frames, capsys):
    out = tmp_path / "avg"
    rc = main(
        ["reduce", *frames, "--average", "--background", frames[0], "--npt", "80", "-o", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert text.count("kept") == 3
    files = sorted(p.name for p in out.iterdir())
    # named after the series (frame_0, frame_1, frame_2), not after its first frame
    assert files == ["frame_average.dat", "frame_average.h5"]
    cv = read_curve(out / "frame_average.dat")
    steps = [s["step"] for s in cv.provenance["steps"]]
    assert steps[-2:] == ["average", "subtract"]


def test_average_of_two_frames_says_it_cannot_test(tmp_path, frames, capsys):
    # The outlier test compares each frame with the series median: with two frames the
    # median is their mean and neither can stand out. It must say so, not print NaN.
    assert main(["reduce", *frames[:2], "--average", "--npt", "80", "-o", str(tmp_path / "a")]) == 0
    text = capsys.readouterr().out
    assert "nan" not in text.lower()
    assert text.count("not tested") == 2 and "at least 3" in text
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "frame_average.dat",
        "frame_average.h5",
    ]


def test_average_of_a_multiframe_file_is_named_after_the_file(tmp_path, small_geometry, capsys):
    q, i = smooth_curve()
    stack = np.stack(
        [
            simulate_frame(
                q, i, small_geometry, small_geometry.shape, rng=np.random.default_rng(k)
            )[0]
            for k in range(3)
        ]
    )
    p = tmp_path / "series.h5"
    with h5py.File(p, "w") as fh:
        fh.create_group("entry_0000/instrument/det").create_dataset("data", data=stack)
    small_geometry.write_poni(tmp_path / "g.poni")
    assert (
        main(
            [
                "reduce",
                str(p),
                "--poni",
                str(tmp_path / "g.poni"),
                "--monitor",
                "none",
                "--npt",
                "50",
                "--average",
                "-o",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert sorted(x.name for x in (tmp_path / "m").iterdir()) == [
        "series_average.dat",
        "series_average.h5",
    ]
    assert capsys.readouterr().out.count("chi2_red") == 3


def test_multiframe_suffix(tmp_path, small_geometry):
    q, i = smooth_curve()
    stack = np.stack(
        [
            simulate_frame(
                q, i, small_geometry, small_geometry.shape, rng=np.random.default_rng(k)
            )[0]
            for k in range(2)
        ]
    )
    p = tmp_path / "multi.h5"
    with h5py.File(p, "w") as fh:
        det = fh.create_group("entry_0000/instrument/det")
        det.create_dataset("data", data=stack)
        small_geometry.write_poni(tmp_path / "g.poni")
    assert (
        main(
            [
                "reduce",
                str(p),
                "--poni",
                str(tmp_path / "g.poni"),
                "--monitor",
                "none",
                "--npt",
                "50",
                "-o",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    assert sorted(x.name for x in (tmp_path / "m").iterdir()) == [
        "multi_0000.dat",
        "multi_0000.h5",
        "multi_0001.dat",
        "multi_0001.h5",
    ]
    assert (
        main(
            [
                "reduce",
                str(p),
                "--poni",
                str(tmp_path / "g.poni"),
                "--monitor",
                "none",
                "--npt",
                "50",
                "--frames",
                "1",
                "-o",
                str(tmp_path / "m1"),
            ]
        )
        == 0
    )
    assert sorted(x.name for x in (tmp_path / "m1").iterdir()) == [
        "multi_0001.dat",
        "multi_0001.h5",
    ]


@pytest.mark.parametrize(
    "case, pattern",
    [
        ("missing", "no such file"),
        ("truncated", "truncated"),
        ("mask_shape", "does not match"),
        ("no_geometry", "lacks"),
        ("zero_transmission", "transmission"),
    ],
)
def test_bad_input_one_line_no_output(tmp_path, frames, capsys, case, pattern):
    args = ["reduce"]
    if case == "missing":
        args += [str(tmp_path / "nope.edf")]
    elif case == "truncated":
        raw = open(frames[0], "rb").read()
        (tmp_path / "t.edf").write_bytes(raw[: len(raw) // 2])
        args += [str(tmp_path / "t.edf")]
    elif case == "mask_shape":
        np.save(tmp_path / "m.npy", np.zeros((7, 7)))
        args += [frames[0], "--mask", str(tmp_path / "m.npy")]
    elif case == "no_geometry":
        write_edf(tmp_path / "bare.edf", np.ones((20, 20), np.int32), {"Title": "no geometry"})
        args += [str(tmp_path / "bare.edf")]
    elif case == "zero_transmission":
        args += [frames[0], "--transmission", "0", "--monitor", "I0"]
    out = tmp_path / "out"
    rc = main([*args, "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and pattern in err[0] and "Traceback" not in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_info_json(frames, capsys):
    assert main(["info", frames[0], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [160, 170]
    assert info["geometry"]["beam_center_x_px"] == pytest.approx(60.6)
    assert info["geometry"]["beam_center_y_px"] == pytest.approx(70.3)
    assert info["metadata"]["monitor"] > 0


def test_reduce_plot_and_frame_figure(tmp_path, frames, small_geometry):
    assert (
        main(
            ["reduce", *frames[:2], "--average", "--plot", "--npt", "80", "-o", str(tmp_path / "p")]
        )
        == 0
    )
    png = tmp_path / "p" / "curves.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --plot promises the frame too: the first frame with its mask
    frame_png = tmp_path / "p" / "frame_0_frame.png"
    assert frame_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and frame_png.stat().st_size > 10_000
    from saxsred.io.frames import read_frame
    from saxsred.plots.frames import plot_frame, save
    from saxsred.reduce import Corrections, pixel_mask

    fr = read_frame(frames[0])
    m = pixel_mask(fr, small_geometry, Corrections())
    out = save(
        plot_frame(fr.data, small_geometry, m, q_rings_nm=(0.3, 0.6)), tmp_path / "frame.png"
    )
    assert (tmp_path / "frame.png").stat().st_size > 10_000 and out.endswith("frame.png")


def test_reduce_chi_profile_roundtrip(tmp_path, frames):
    from saxsred.io.curves import read_chi

    assert (
        main(
            [
                "reduce",
                frames[0],
                "--chi",
                "0.3",
                "0.5",
                "--npt-chi",
                "90",
                "--npt",
                "80",
                "-o",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    prof = read_chi(tmp_path / "c" / "frame_0_chi.dat")
    assert prof.q_band_nm == (0.3, 0.5) and 60 <= len(prof.chi_deg) <= 90
    assert np.all(prof.sigma > 0) and prof.chi_deg.min() < -90 and prof.chi_deg.max() > 90
