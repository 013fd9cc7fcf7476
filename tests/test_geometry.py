"""Geometry: PONI and header routes agree, tilts convert, x/y swaps are caught on real frames,
and calibrant reflections land where crystallography puts them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import realdata
from scipy import ndimage
from scipy.optimize import curve_fit

from saxsred.errors import GeometryError, InputError
from saxsred.geometry import (
    Geometry,
    geometry_from_edna_xml,
    geometry_from_metadata,
    geometry_to_header,
    load_mask,
    load_poni,
)
from saxsred.io.frames import FrameMetadata, parse_metadata, read_frame
from saxsred.reduce import Corrections, Reducer


def test_header_and_poni_routes_give_same_q_map(tmp_path, small_geometry):
    small_geometry.write_poni(tmp_path / "g.poni")
    from_poni = load_poni(tmp_path / "g.poni")
    hdr = {
        "SampleDistance": "1.0",
        "WaveLength": "1e-10",
        "Center_1": "60.6",
        "Center_2": "70.3",
        "PSize_1": "1.72e-4",
        "PSize_2": "1.72e-4",
    }
    from_header = geometry_from_metadata(parse_metadata(hdr), shape=(160, 170))
    # Center_2 (slow axis) is pyFAI's poni1: the classic swap would move poni1 to 60.6 px.
    assert from_header.poni1_m == pytest.approx(70.3 * 172e-6, rel=1e-12)
    np.testing.assert_allclose(
        from_header.q_map_nm((160, 170)), from_poni.q_map_nm((160, 170)), rtol=1e-12
    )
    # pyFAI's own setSPD with keywords gives the same geometry
    from pyFAI.geometry import Geometry as PG

    g = PG()
    g.setSPD(
        SampleDistance=1.0,
        Center_1=60.6,
        Center_2=70.3,
        PSize_1=1.72e-4,
        PSize_2=1.72e-4,
        WaveLength=1e-10,
    )
    assert g.poni1 == pytest.approx(from_header.poni1_m) and g.poni2 == pytest.approx(
        from_header.poni2_m
    )


@pytest.mark.parametrize("rots", [(0.0, 0.12, 0.0), (0.05, -0.03, 0.2), (0.675, 0.027, 0.0)])
def test_tilted_header_matches_tilted_poni(tmp_path, rots):
    """A tilted PONI (written and read by pyFAI) and the header written for it give one q and chi map."""
    import pyFAI
    from pyFAI.detectors import Detector
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    ai = AzimuthalIntegrator(
        dist=0.43,
        poni1=0.0106,
        poni2=0.0534,
        rot1=rots[0],
        rot2=rots[1],
        rot3=rots[2],
        detector=Detector(172e-6, 172e-6, max_shape=(195, 300)),
        wavelength=0.8856e-10,
    )
    ai.write(str(tmp_path / "tilt.poni"))
    ref = pyFAI.load(str(tmp_path / "tilt.poni"))
    hdr = geometry_to_header(load_poni(tmp_path / "tilt.poni"))
    assert "DetectorRotation_1" in hdr
    # ewoksid02 convention: DetectorRotation_1 is pyFAI rot2 and DetectorRotation_2 is rot1
    assert float(hdr["DetectorRotation_1"]) == pytest.approx(rots[1])
    assert float(hdr["DetectorRotation_2"]) == pytest.approx(rots[0])
    geo = geometry_from_metadata(parse_metadata(hdr), shape=(195, 300))
    np.testing.assert_allclose(geo.q_map_nm((195, 300)), ref.qArray((195, 300)), rtol=1e-10)
    np.testing.assert_allclose(
        geo.integrator().chiArray((195, 300)), ref.chiArray((195, 300)), atol=1e-10
    )


def test_lab6_tilted_poni_roundtrip_through_header():
    p = realdata("lab6_ssrl_tilted", "b_toney_Lab6_thtth_rightside_scan2_0009.poni")
    geo = load_poni(p)
    back = geometry_from_metadata(parse_metadata(geometry_to_header(geo)), shape=geo.shape)
    np.testing.assert_allclose(back.q_map_nm(geo.shape), geo.q_map_nm(geo.shape), rtol=1e-12)


def test_missing_and_bad_header_keys():
    with pytest.raises(GeometryError, match="lacks Center_1.*--poni"):
        geometry_from_metadata(
            FrameMetadata(
                distance_m=1, wavelength_m=1e-10, center_2_px=3, psize_1_m=1e-4, psize_2_m=1e-4
            ),
            source="f.edf",
        )
    with pytest.raises(GeometryError, match="must be positive"):
        geometry_from_metadata(
            FrameMetadata(
                distance_m=-1,
                wavelength_m=1e-10,
                center_1_px=1,
                center_2_px=3,
                psize_1_m=1e-4,
                psize_2_m=1e-4,
            )
        )
    with pytest.raises(GeometryError, match="metres"):
        geometry_from_metadata(
            FrameMetadata(
                distance_m=1000,
                wavelength_m=1e-10,
                center_1_px=1,
                center_2_px=3,
                psize_1_m=1e-4,
                psize_2_m=1e-4,
            )
        )


def test_bad_poni_and_mask(tmp_path):
    with pytest.raises(InputError, match="PONI file not found"):
        load_poni(tmp_path / "none.poni")
    (tmp_path / "bad.poni").write_text("Distance: banana\n")
    with pytest.raises(GeometryError, match="bad.poni"):
        load_poni(tmp_path / "bad.poni")
    np.save(tmp_path / "m.npy", np.zeros((5, 5)))
    with pytest.raises(GeometryError, match="does not match"):
        load_mask(tmp_path / "m.npy", shape=(6, 5))


def test_pyfai_mask_file_realdata():
    m = load_mask(realdata("pixium_i12", "DLS_CeO2_1200mm.mask"))
    f = read_frame(realdata("pixium_i12", "pixium_03151.tif"))
    assert m.shape == f.shape and 0 < m.mean() < 0.5


# ------------------------------------------------------------------------------- real frames


def _bm29_ratio_windows(geo):
    fr = read_frame(realdata("bm29", "WT_001_00001.edf"))
    from saxsred.io.curves import read_curve

    ref = read_curve(realdata("bm29", "WT_001_00001.dat"))
    geo = geo.with_shape(fr.shape)
    q = geo.q_map_nm(fr.shape)
    # The official mask is not public: mask the beamstop shadow (zero counts at low q) ourselves.
    beamstop = ndimage.binary_dilation((q < 0.4) & (fr.data <= 0), iterations=3)
    cv = Reducer(geo, Corrections(npt=1043, monitor="none", mask=beamstop)).reduce(fr)
    mine = np.interp(ref.q_nm, cv.q_nm, cv.intensity)
    edges = np.geomspace(0.1, 3.0, 16)
    ratios = np.array(
        [
            mine[(ref.q_nm >= a) & (ref.q_nm < b)].sum()
            / ref.intensity[(ref.q_nm >= a) & (ref.q_nm < b)].sum()
            for a, b in zip(edges[:-1], edges[1:])
        ]
    )
    return ratios / np.median(ratios)


def test_bm29_matches_official_curve_and_swap_fails():
    geo = geometry_from_edna_xml(realdata("bm29", "WT_001_00001.xml"))
    r = _bm29_ratio_windows(geo)
    assert np.all(np.abs(r - 1) < 0.03), r
    # swap x and y of the beam centre (888, 91) -> (91, 888): the shape visibly fails
    swapped = Geometry(
        geo.dist_m, geo.poni2_m, geo.poni1_m, 0, 0, 0, geo.pixel1_m, geo.pixel2_m, geo.wavelength_m
    )
    r_bad = _bm29_ratio_windows(swapped)
    assert np.max(np.abs(r_bad - 1)) > 0.1, r_bad


def _peak_center(q, i, q0, half_width):
    sel = (q > q0 - half_width) & (q < q0 + half_width)
    x, y = q[sel], i[sel]

    def model(x, a, c, w, b0, b1):
        return a * np.exp(-0.5 * ((x - c) / w) ** 2) + b0 + b1 * (x - q0)

    p0 = [y.max() - np.median(y), x[np.argmax(y)], half_width / 4, np.median(y), 0.0]
    popt, _ = curve_fit(model, x, y, p0=p0, maxfev=20000)
    return popt[1]


def test_ceo2_reflections_land_where_expected():
    fr = read_frame(realdata("ceo2_pilatus1m", "CeO2_Pilatus1M.tif"))
    geo = load_poni(realdata("ceo2_pilatus1m", "CeO2_Pilatus1M.poni")).with_shape(fr.shape)
    from dataclasses import replace as dc_replace

    # Dioptas calibrates the image flipped upside down (np.flipud of what fabio returns).
    flipped = dc_replace(fr, data=np.flipud(fr.data))
    cv = Reducer(geo, Corrections(npt=3000, monitor="none", polarization_factor=None)).reduce(
        flipped
    )
    a = 0.54113
    for n in (3, 4, 8, 11, 12, 16, 19, 20):
        q_hkl = 2 * np.pi * np.sqrt(n) / a
        if q_hkl > cv.q_nm.max() - 0.5:
            continue
        qc = _peak_center(cv.q_nm, cv.intensity, q_hkl, 0.25)
        assert abs(qc / q_hkl - 1) < 5e-4, (n, qc, q_hkl)


@pytest.mark.parametrize("frame, q_expected", [("0009", 15.115), ("0023", 26.18)])
def test_lab6_tilted_reflection(frame, q_expected):
    stem = f"b_toney_Lab6_thtth_rightside_scan2_{frame}"
    fr = read_frame(realdata("lab6_ssrl_tilted", stem + ".tif"))
    geo = load_poni(realdata("lab6_ssrl_tilted", stem + ".poni")).with_shape(fr.shape)
    cv = Reducer(geo, Corrections(npt=2000, monitor="none", polarization_factor=None)).reduce(fr)
    qc = _peak_center(cv.q_nm, cv.intensity, q_expected, 0.3)
    a = 0.415689
    n = 1 if frame == "0009" else 3
    q_hkl = 2 * np.pi * np.sqrt(n) / a
    # (111) of frame 0023 lands within 1e-5; (100) of frame 0009, at the edge of a detector
    # tilted by 0.675 rad, is asymmetric and a symmetric Gaussian puts it 1.1-1.4e-4 high.
    tol = 1e-4 if frame == "0023" else 1.5e-4
    assert abs(qc / q_hkl - 1) < tol, (qc, q_hkl)
    assert abs(q_expected / q_hkl - 1) < 2e-4


def test_hot_pixels_found_but_sharp_rings_kept():
    from saxsred.geometry import hot_pixel_mask

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:200, 0:200]
    r = np.hypot(yy - 100.3, xx - 99.6)
    lam = 50 + 5000 * np.exp(-0.5 * ((r - 60) / 0.5) ** 2)  # a ring about one pixel wide
    img = rng.poisson(lam).astype(np.float64)
    hot = [(10, 10), (150, 40), (100, 160)]
    for y, x in hot:
        img[y, x] += 3000
    geo = Geometry(1.0, 100.3 * 1e-4, 99.6 * 1e-4, 0, 0, 0, 1e-4, 1e-4, 1e-10)
    m = hot_pixel_mask(img, q_map=geo.q_map_nm(img.shape))
    assert sorted(map(tuple, np.argwhere(m).tolist())) == sorted(hot)
    # without geometry, the neighbour test still finds the isolated ones off the ring
    m2 = hot_pixel_mask(img)
    assert {(10, 10), (150, 40)} <= set(map(tuple, np.argwhere(m2).tolist())) and m2.sum() <= 3


# ------------------------------------------------------------- issue 14: geometry validated

_CEO2_PONI = """# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
PixelSize1: 0.000172
PixelSize2: 0.000172
Distance: 0.208651380603
Poni1: 0.0872948482846
Poni2: 0.0799601126306
Rot1: -0.0184422457059
Rot2: 0.00413760084465
Rot3: -2.77645988275e-08
Wavelength: 4.066e-11
"""


def _poni(tmp_path, text, name="g.poni"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_poni_passes_and_matches_pyfai(tmp_path):
    import pyFAI

    p = _poni(tmp_path, _CEO2_PONI)
    geo = load_poni(p)
    ref = pyFAI.load(str(p))
    assert geo.dist_m == ref.dist and geo.wavelength_m == ref.wavelength


def test_misspelt_poni_key_names_the_nearest(tmp_path):
    """Found 2: a PONI with 'Distnace:' reduced with the distance defaulted to 1 m, exit 0."""
    p = _poni(tmp_path, _CEO2_PONI.replace("Distance:", "Distnace:"))
    with pytest.raises(
        GeometryError, match=r"unknown PONI key 'Distnace' \(did you mean 'Distance'\?\)"
    ) as exc:
        load_poni(p)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)
    # pyFAI itself would have taken it silently with its default distance
    import pyFAI

    assert pyFAI.load(str(p)).dist == pytest.approx(1.0) or pyFAI.load(str(p)).dist is None
    p = _poni(tmp_path, _CEO2_PONI.replace("Wavelength:", "Wavelenght:"), "w.poni")
    with pytest.raises(GeometryError, match="did you mean 'Wavelength'"):
        load_poni(p)
    p = _poni(tmp_path, _CEO2_PONI.replace("Poni1: ", "Poni1 "), "c.poni")
    with pytest.raises(GeometryError, match="not 'Key: value'"):
        load_poni(p)
    p = _poni(tmp_path, _CEO2_PONI.replace("Poni2: 0.0799601126306", "Poni2: 0.08 m"), "n.poni")
    with pytest.raises(GeometryError, match="Poni2 .* is not a number"):
        load_poni(p)


@pytest.mark.parametrize(
    "old,new,key,fix",
    [
        (
            "Distance: 0.208651380603",
            "Distance: 208.651380603",
            "Distance",
            "if it is in mm, write 0.208651",
        ),
        (
            "Wavelength: 4.066e-11",
            "Wavelength: 0.4066",
            "Wavelength",
            "if it is in Angstrom, write 4.066e-11",
        ),
        ("PixelSize1: 0.000172", "PixelSize1: 172", "PixelSize1", "if it is in um, write 0.000172"),
        ("Rot1: -0.0184422457059", "Rot1: -10.5", "Rot1", "degrees"),
    ],
)
def test_metre_millimetre_confusion_is_one_line(tmp_path, old, new, key, fix):
    """Found 2: 'Wavelength: 0.4066' and 'Distance: 208.65' (metres) were accepted without comment."""
    p = _poni(tmp_path, _CEO2_PONI.replace(old, new))
    with pytest.raises(GeometryError) as exc:
        load_poni(p)
    msg = str(exc.value)
    assert "\n" not in msg and key in msg and fix in msg, msg
    if key != "Rot1":  # the explicit override lets a user who means it through
        assert load_poni(p, accept_implausible=True) is not None


def test_header_and_edna_geometry_plausibility(tmp_path):
    meta = FrameMetadata(
        distance_m=2869.0,
        wavelength_m=9.919e-11,
        center_1_px=888,
        center_2_px=91,
        psize_1_m=172e-6,
        psize_2_m=172e-6,
    )
    with pytest.raises(
        GeometryError, match="SampleDistance = 2869 m .*if it is in mm, write 2.869"
    ):
        geometry_from_metadata(meta, source="f.edf")
    xml = realdata("bm29", "WT_001_00001.xml").read_text()
    bad = tmp_path / "bad.xml"
    assert "<value>9.919000e-11</value>" in xml
    bad.write_text(xml.replace("<value>9.919000e-11</value>", "<value>9.919000e-01</value>"))
    with pytest.raises(GeometryError, match="WaveLength = 0.9919 m .*Angstrom"):
        geometry_from_edna_xml(bad)
