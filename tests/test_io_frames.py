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
    hdr = {"Center_1": "3.5", "Center_2": "7.25", "PSize_1": "1.72e-4", "PSize_2": "1.72e-4",
           "SampleDistance": "1.0", "WaveLength": "1e-10", "ExposureTime": "0.5",
           "Intensity1ShutCor": "123.0", "Intensity0ShutCor": "456.0", "Dummy": "-1", "DDummy": "0.1",
           "SampleThickness": "0.0015"}
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
    md = parse_metadata({"DarkFileName": "dark.edf", "DarkFilePath": "/data", "DetectorRotation_1": "0.1"})
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
        for k, v in {"Center_1": "4.0", "Center_2": "3.0", "PSize_1": "7.5e-5", "PSize_2": "7.5e-5",
                     "SampleDistance": "2.0", "WaveLength": "1.0e-10", "HSTime": "0.1"}.items():
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
