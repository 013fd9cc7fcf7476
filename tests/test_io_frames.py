"""Frame reading: formats, metadata aliases, multi-frame files, and bad files."""

from __future__ import annotations

import gzip
import shutil

import h5py
import numpy as np
import pytest
from conftest import realdata

from saxsred.errors import InputError
from saxsred.io.frames import count_frames, iter_frames, parse_metadata, read_frame
from saxsred.simulate import write_edf


def test_edf_roundtrip_and_metadata(tmp_path):
    data = np.arange(12 * 10, dtype=np.int32).reshape(12, 10)
    hdr = {
        "Center_1": "3.5",
        "Center_2": "7.25",
        "PSize_1": "1.72e-4",
        "PSize_2": "1.72e-4",
        "SampleDistance": "1.0",
        "WaveLength": "1e-10",
        "ExposureTime": "0.5",
        "Intensity1ShutCor": "123.0",
        "Intensity0ShutCor": "456.0",
        "Dummy": "-1",
        "DDummy": "0.1",
        "SampleThickness": "0.0015",
    }
    write_edf(tmp_path / "a.edf", data, hdr)
    f = read_frame(tmp_path / "a.edf")
    np.testing.assert_array_equal(f.data, data)
    md = f.metadata
    assert md.center_1_px == 3.5 and md.center_2_px == 7.25
    assert md.monitor == 123.0 and md.monitor0 == 456.0
    assert md.exposure_s == 0.5 and md.thickness_m == 0.0015 and md.dummy == -1
    assert f.name == "a" and f.checksum.startswith("xxh3:")
    # EDF.gz is read the same
    with open(tmp_path / "a.edf", "rb") as src, gzip.open(tmp_path / "b.edf.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    g = read_frame(tmp_path / "b.edf.gz")
    np.testing.assert_array_equal(g.data, data)
    assert g.name == "b"


@pytest.mark.parametrize(
    "hdr, monitor, monitor0, exposure",
    [
        ({"Intensity1": "10", "Intensity0": "20", "HSTime": "2"}, 10.0, 20.0, 2.0),
        ({"HSI1": "5", "HSI1Factor": "3", "HSI0": "7", "HSI0Factor": "2"}, 15.0, 14.0, None),
        ({"Intensity1UnCor": "9", "Intensity1ShutCor": "8"}, 8.0, None, None),
    ],
)
def test_monitor_aliases(hdr, monitor, monitor0, exposure):
    md = parse_metadata(hdr)
    assert md.monitor == monitor and md.monitor0 == monitor0 and md.exposure_s == exposure


def test_header_files_and_rotations():
    md = parse_metadata(
        {"DarkFileName": "dark.edf", "DarkFilePath": "/data", "DetectorRotation_1": "0.1"}
    )
    assert md.files["DarkFileName"] == "/data/dark.edf"
    assert md.rot_1_rad == 0.1 and md.rotation_convention == "DetectorRotation"


def test_id02_hdf5_multiframe(tmp_path):
    p = tmp_path / "run_0001.h5"
    frames = np.random.default_rng(0).poisson(5, size=(3, 8, 9)).astype(np.int32)
    with h5py.File(p, "w") as fh:
        det = fh.create_group("entry_0000/instrument/eiger2")
        det.create_dataset("data", data=frames)
        hdr = det.create_group("header")
        hdr.attrs["NX_class"] = "NXcollection"
        for k, v in {
            "Center_1": "4.0",
            "Center_2": "3.0",
            "PSize_1": "7.5e-5",
            "PSize_2": "7.5e-5",
            "SampleDistance": "2.0",
            "WaveLength": "1.0e-10",
            "HSTime": "0.1",
        }.items():
            hdr.create_dataset(k, data=v)
    assert count_frames(p) == 3
    got = list(iter_frames(p, frames=[1, -1]))
    assert [f.index for f in got] == [1, 2]
    np.testing.assert_array_equal(got[0].data, frames[1])
    assert got[0].name == "run_0001_0001" and got[0].metadata.center_1_px == 4.0
    assert got[1].metadata.exposure_s == 0.1
    with pytest.raises(InputError, match="frame 5 requested"):
        list(iter_frames(p, frames=[5]))


def test_eiger_realdata_multiframe_and_sentinel():
    p = realdata("eiger2_biocat", "vac_007_data_000001.h5")
    from saxsred.geometry import Geometry
    from saxsred.reduce import Corrections, pixel_mask

    frames = list(iter_frames(p))
    assert len(frames) == 2 and frames[0].shape == (3262, 3108) and frames[1].name.endswith("_0001")
    geo = Geometry(3.66869, 2437.75 * 75e-6, 2449.94 * 75e-6, 0, 0, 0, 75e-6, 75e-6, 1.0332e-10)
    m = pixel_mask(frames[0], geo, Corrections())
    sentinel = frames[0].data == np.iinfo(np.uint32).max
    assert sentinel.any() and m[sentinel].all()


def test_tiff_realdata():
    f = read_frame(realdata("pixium_i12", "pixium_03151.tif"))
    assert sorted(f.shape) == [1440, 1441] and f.data.dtype == np.uint16


def test_missing_empty_truncated_corrupt(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_frame(tmp_path / "nope.edf")
    (tmp_path / "empty.edf").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        read_frame(tmp_path / "empty.edf")
    data = np.ones((64, 64), dtype=np.int32)
    write_edf(tmp_path / "full.edf", data, {"Title": "x"})
    raw = (tmp_path / "full.edf").read_bytes()
    (tmp_path / "trunc.edf").write_bytes(raw[: len(raw) - 4000])
    with pytest.raises(InputError, match="truncated"):
        read_frame(tmp_path / "trunc.edf")
    (tmp_path / "junk.edf").write_bytes(b"this is not a frame at all\n" * 20)
    with pytest.raises(InputError, match="junk.edf"):
        read_frame(tmp_path / "junk.edf")


def test_cbf_and_tiff_roundtrip(tmp_path):
    import fabio.cbfimage
    import fabio.tifimage

    data = np.random.default_rng(2).poisson(20, (30, 40)).astype(np.int32)
    fabio.cbfimage.CbfImage(data=data).write(str(tmp_path / "a.cbf"))
    np.testing.assert_array_equal(read_frame(tmp_path / "a.cbf").data, data)
    fabio.tifimage.TifImage(data=data.astype(np.uint16)).write(str(tmp_path / "a.tif"))
    np.testing.assert_array_equal(read_frame(tmp_path / "a.tif").data, data)
    np.save(tmp_path / "a.npy", data)
    assert read_frame(tmp_path / "a.npy").name == "a"


# ------------------------------------------------------- issue 14: headers read where they are


def _ring_q_per_column(geo, data, mask, band=(14.0, 23.0), width=64):
    """Position of the strongest ring in a q band, in each strip of columns."""
    from scipy.ndimage import uniform_filter1d

    q = geo.q_map_nm(data.shape)
    out = []
    for x0 in range(0, data.shape[1] - width // 2, width):
        sl = (slice(None), slice(x0, x0 + width))
        qq, dd = q[sl][~mask[sl]], data[sl][~mask[sl]]
        sel = (qq > band[0]) & (qq < band[1])
        s, edges = np.histogram(qq[sel], bins=90, weights=dd[sel])
        n, _ = np.histogram(qq[sel], bins=edges)
        prof = uniform_filter1d(s / np.maximum(n, 1), 7)
        k = np.argmax(prof[3:-3]) + 3
        out.append(0.5 * (edges[k] + edges[k + 1]))
    return np.array(out)


def test_xeuss_arm_angles_put_glassy_carbon_at_18():
    """Found 3: the Xeuss WAXS arm (Delta = 25.84 deg) was ignored and the glassy-carbon (002)
    peak (2theta ~ 26 deg) landed near q = 0. With Delta as pyFAI rot2 it lands near 18 nm^-1
    and, as a correct geometry must, at the same q in every column; the opposite sign (the
    check that confirms the convention) smears it over 18.7-21 nm^-1."""
    from dataclasses import replace

    from saxsred.geometry import geometry_from_metadata

    fr = read_frame(realdata("xeuss3_edf_header", "measure_1_00001.edf"))
    md = fr.metadata
    assert md.rotation_convention == "xeuss_arm" and "Delta" in md.sources["rotations"]
    assert np.degrees(md.rot_1_rad) == pytest.approx(25.8402)
    geo = geometry_from_metadata(md, fr.data.shape, source="xeuss")
    assert np.degrees(geo.rot2_rad) == pytest.approx(25.8402)
    mask = fr.data < 0
    peaks = _ring_q_per_column(geo, fr.data.astype(float), mask)
    # glassy carbon (002): d = 0.35-0.37 nm -> q = 2 pi / d = 17.0-18.0 nm^-1
    assert 17.0 < np.median(peaks) < 18.5, peaks
    assert np.ptp(peaks) < 0.5, peaks
    wrong = replace(geo, rot2_rad=-geo.rot2_rad)
    assert np.ptp(_ring_q_per_column(wrong, fr.data.astype(float), mask)) > 1.0


def test_xeuss_large_gamma_is_refused_not_guessed():
    from saxsred.errors import GeometryError
    from saxsred.geometry import geometry_from_metadata

    hdr = {
        "SampleDistance": "0.114",
        "WaveLength": "1.54e-10",
        "Center_1": "269",
        "Center_2": "504",
        "PSize_1": "7.5e-5",
        "PSize_2": "7.5e-5",
        "Delta": "25.8",
        "Gamma": "12.0",
    }
    with pytest.raises(GeometryError, match="Gamma = 12 deg.*--poni") as exc:
        geometry_from_metadata(parse_metadata(hdr), (1030, 514))
    assert "\n" not in str(exc.value)


def test_tiny_monitor_warns_and_bad_monitor_refused():
    """Found 3: Intensity1 = 2.4e-17 was used as a monitor (I ~ 1e24) with no warning."""
    from saxsred.errors import InputWarning
    from saxsred.io.frames import check_monitor

    fr = read_frame(realdata("xeuss3_edf_header", "measure_1_00001.edf"))
    assert fr.metadata.monitor == pytest.approx(2.41927e-17)
    assert fr.metadata.sources["monitor"] == "header Intensity1"
    with pytest.warns(InputWarning, match="Intensity1 = 2.42e-17.*--monitor exposure"):
        check_monitor(fr.metadata.monitor, "Intensity1", fr.path)
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="positive and finite"):
            check_monitor(bad, "Intensity1", "f.edf")


def test_missing_monitor_lists_what_exists():
    """Found 3: '--monitor I1' on a frame without it said only 'header has no Intensity1'."""
    from saxsred.io.frames import Frame, frame_metadata, missing_monitor_message

    hdr = {"Intensity0": "5e5", "ExposureTime": "2"}
    fr = Frame(np.zeros((2, 2)), hdr, frame_metadata(hdr), "f.edf")
    msg = missing_monitor_message(fr, "I1")
    assert "Intensity1" in msg and "Intensity0 = 5e5" in msg and "ExposureTime = 2" in msg
    assert "--monitor I0" in msg and "\n" not in msg
    empty = Frame(np.zeros((2, 2)), {}, frame_metadata({}), "g.edf")
    assert "--monitor none" in missing_monitor_message(empty, "I1")


def test_edna_xml_beside_frame_is_read():
    """Found 3: EDNA XML normalizationFactor and exposureTime (BM29) were not read."""
    md = read_frame(realdata("bm29", "WT_001_00001.edf")).metadata
    assert md.normalization_factor == pytest.approx(1.003381e-3)
    assert md.exposure_s == pytest.approx(0.5)
    assert md.sources["normalization_factor"] == "EDNA XML WT_001_00001.xml <normalizationFactor>"
    assert md.sources["exposure_s"] == "EDNA XML WT_001_00001.xml <exposureTime>"


def test_pilatus_tiff_exposure_is_read():
    """Found 3: the Pilatus TIFF header's Exposure_time was not read."""
    name = "LaB6_5.6m_12.7keV_corrected_1150.1s_x-1.601_th0.500_5.00s_1116949_maxs.tiff"
    md = read_frame(realdata("lab6_nslsii_pilatus1m", name)).metadata
    assert md.exposure_s == pytest.approx(5.0)
    assert "Pilatus header" in md.sources["exposure_s"]
    # its header's wavelength (1.54 A) is known to be wrong: it is not taken as geometry
    assert md.wavelength_m is None


def test_biocat_log_beside_frame_is_read():
    """Found 3: monitors in a beamline log file beside the frame were not read (BioCAT .log)."""
    p = realdata("eiger2_biocat", "vac_007_data_000001.h5")
    mds = [f.metadata for f in iter_frames(p)]
    assert [m.exposure_s for m in mds] == pytest.approx([0.50000024, 0.50000108])
    assert [m.monitor0 for m in mds] == pytest.approx([11336834.494, 11333022.4731])
    assert "vac_007.log, row vac_007_000002, column I1" in mds[1].sources["monitor0"]


def test_edf_header_declaring_huge_frame_is_refused_before_allocation(tmp_path):
    """Found by fuzzing: Dim_2 = 4e9 made fabio allocate tens of GB before failing."""
    body = "{\nHeaderID = EH:000001:000000:000000 ;\nByteOrder = LowByteFirst ;\nDataType = FloatValue ;\n"
    body += "Dim_1 = 30 ;\nDim_2 = 4000000000 ;\nSize = 4800 ;\n"
    head = body + " " * (512 - (len(body) + 2) % 512) + "}\n"
    p = tmp_path / "big.edf"
    p.write_bytes(head.encode() + np.zeros(1200, "<f4").tobytes())
    with pytest.raises(InputError, match="declares 1.2e\\+11 pixels"):
        read_frame(p)
    p.write_bytes(head.replace("4000000000", "400").encode() + np.zeros(1200, "<f4").tobytes())
    with pytest.raises(InputError, match="declares 48000 bytes .* truncated"):
        read_frame(p)


def test_info_shows_where_each_value_came_from(capsys):
    from saxsred.cli import main

    p = realdata("bm29", "WT_001_00001.edf")
    assert main(["info", str(p), "--poni", str(p.with_suffix(".xml"))]) == 0
    out = capsys.readouterr().out
    assert "exposure_s             0.5   <- EDNA XML WT_001_00001.xml <exposureTime>" in out
    assert (
        "normalization_factor   0.001003381   <- EDNA XML WT_001_00001.xml <normalizationFactor>"
        in out
    )


@pytest.mark.parametrize("value", ["1e400", "nan", "-2", "2.5", "1000"])
def test_binning_that_is_not_a_whole_number_is_one_line(value):
    # found by the EDF-header fuzzer: BSize_1 = 1e400 crashed in int(inf)
    with pytest.raises(InputError, match="BSize_1"):
        parse_metadata({"BSize_1": value}, where="x.edf")
    assert parse_metadata({"BSize_1": "2", "BSize_2": "0"}).binning == (2, 1)
