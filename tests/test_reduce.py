"""Reduction chain: generated frames reduce back to their curve, equality with pyFAI,
series averaging, background subtraction, absolute scale, Dummy handling and bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import smooth_curve

from saxsred.errors import GeometryError, InputError
from saxsred.geometry import geometry_from_metadata, load_poni
from saxsred.io.frames import Frame, parse_metadata
from saxsred.reduce import (
    WATER_DSIGMA_20C,
    Corrections,
    Reducer,
    average_curves,
    pixel_mask,
    scale_curve,
    subtract_background,
    water_scale_factor,
)
from saxsred.simulate import DetectorLayout, Exposure, simulate_frame

LAYOUT = DetectorLayout(
    gap_rows=((100, 106),),
    gap_cols=((120, 123),),
    beamstop_radius_px=6,
    beamstop_arm_width_px=3,
    n_hot_pixels=4,
)


def _frame(geo, q, intensity, rng, exposure=None, name="f.edf", layout=LAYOUT):
    exposure = exposure or Exposure(counts_per_unit=4000.0, dark_rate=0.5)
    data, hdr, gain = simulate_frame(
        q,
        intensity,
        geo,
        geo.shape,
        exposure,
        layout,
        rng,
        dark=np.full(geo.shape, exposure.dark_rate * exposure.exposure_s),
    )
    return Frame(data, hdr, parse_metadata(hdr), name), gain


def _dark(geo, exposure=None):
    exposure = exposure or Exposure(counts_per_unit=4000.0, dark_rate=0.5)
    return np.full(geo.shape, exposure.dark_rate * exposure.exposure_s)


@pytest.mark.parametrize("route", ["poni", "header"])
def test_generated_frame_reduces_to_its_curve(tmp_path, small_geometry, route):
    q, i_true = smooth_curve()
    chis = []
    for seed in range(4):
        fr, gain = _frame(small_geometry, q, i_true, np.random.default_rng(seed))
        if route == "poni":
            small_geometry.write_poni(tmp_path / "g.poni")
            geo = load_poni(tmp_path / "g.poni")
        else:
            geo = geometry_from_metadata(fr.metadata, shape=fr.shape)
        red = Reducer(geo, Corrections(npt=200, dark=_dark(small_geometry), hot_pixels=True))
        cv = red.reduce(fr)
        truth = np.interp(cv.q_nm, q, i_true) * gain
        chis.append(np.mean(((cv.intensity - truth) / cv.sigma) ** 2))
        assert cv.unit == "sr^-1" and len(cv) > 150
    assert 0.8 < np.mean(chis) < 1.3, chis


def test_integration_equals_direct_pyfai(small_geometry, rng):
    q, i_true = smooth_curve()
    layout = replace(LAYOUT, n_hot_pixels=0)
    fr, _ = _frame(small_geometry, q, i_true, rng, layout=layout)
    file_mask = fr.data < 0  # gaps and beamstop, as a mask file would give them
    dark = _dark(small_geometry)
    flat = 1.0 + 0.05 * np.random.default_rng(3).standard_normal(small_geometry.shape)
    corr = Corrections(npt=150, dark=dark, flat=flat, polarization_factor=0.95, mask=file_mask)
    red = Reducer(small_geometry, corr)
    cv = red.reduce(fr)
    mask = pixel_mask(fr, small_geometry, corr)
    assert (mask == file_mask).all()
    from saxsred.reduce import normalisation

    norm = normalisation(fr, small_geometry, corr).factor
    ai = small_geometry.integrator()
    ref = ai.integrate1d(
        fr.data,
        150,
        unit="q_nm^-1",
        method=("no", "csr", "cython"),
        correctSolidAngle=True,
        polarization_factor=0.95,
        dark=dark,
        flat=flat,
        mask=mask,
        error_model="poisson",
        normalization_factor=norm,
    )
    ok = ref.count > 0
    np.testing.assert_allclose(cv.q_nm, ref.radial[ok], rtol=1e-12)
    np.testing.assert_allclose(cv.intensity, ref.intensity[ok], rtol=1e-6)
    np.testing.assert_allclose(cv.sigma, ref.sigma[ok], rtol=1e-6)
    # the normalisation is what the header says: I1 x thickness (cm) x solid angle at the PONI
    md = fr.metadata
    assert norm == pytest.approx(md.monitor * md.thickness_m * 100 * (172e-6) ** 2 / 1.0**2)


def test_background_subtraction_and_series_average(small_geometry):
    q, solvent = smooth_curve()
    particles = 0.8 * np.exp(-((q * 6.0) ** 2) / 3.0)
    red_corr = Corrections(npt=120, dark=_dark(small_geometry), hot_pixels=True)
    sample_curves, gains = [], []
    for seed in range(5):
        fr, gain = _frame(
            small_geometry,
            q,
            solvent + particles,
            np.random.default_rng(100 + seed),
            exposure=Exposure(counts_per_unit=4000.0, dark_rate=0.5, transmission=0.6),
            name=f"s{seed}.edf",
        )
        sample_curves.append(Reducer(small_geometry, red_corr).reduce(fr))
        gains.append(gain)
    # one frame with a bubble (less sample in the beam): must be rejected
    fr_bad, _ = _frame(
        small_geometry,
        q,
        0.85 * (solvent + particles),
        np.random.default_rng(99),
        exposure=Exposure(counts_per_unit=4000.0, dark_rate=0.5, transmission=0.6),
        name="bubble.edf",
    )
    bad = Reducer(small_geometry, red_corr).reduce(fr_bad)
    avg = average_curves([*sample_curves, bad])
    assert avg.rejected == ["bubble"]
    assert all(v.kept for v in avg.verdicts if v.name != "bubble")
    bg_fr, _ = _frame(
        small_geometry,
        q,
        solvent,
        np.random.default_rng(7),
        exposure=Exposure(counts_per_unit=4000.0, dark_rate=0.5, transmission=0.8),
        name="bg.edf",
    )
    bg = Reducer(small_geometry, red_corr).reduce(bg_fr)
    net = subtract_background(avg.curve, bg)
    truth = np.interp(net.q_nm, q, particles) * gains[0]
    z = (net.intensity - truth) / net.sigma
    # error bars are honest: the scatter of the residuals matches the stated sigma
    assert abs(np.mean(z)) < 0.25 and 0.85 < np.std(z) < 1.2, (np.mean(z), np.std(z))
    # sigma of the average is sqrt(n) smaller than a single frame
    ratio = np.median(sample_curves[0].sigma / avg.curve.sigma)
    assert ratio == pytest.approx(np.sqrt(5), rel=0.05)
    assert net.provenance["steps"][-1]["step"] == "subtract"


def test_water_absolute_scale_recovers_gain(small_geometry):
    q, _ = smooth_curve()
    cap = 0.004 + 2e-4 * np.maximum(q, 0.05) ** -3
    red = Reducer(small_geometry, Corrections(npt=150, dark=_dark(small_geometry), hot_pixels=True))
    exp_w = Exposure(counts_per_unit=60000.0, dark_rate=0.5, transmission=0.55)
    exp_e = Exposure(counts_per_unit=60000.0, dark_rate=0.5, transmission=0.93)
    w_fr, gain = _frame(
        small_geometry, q, cap + WATER_DSIGMA_20C, np.random.default_rng(1), exposure=exp_w
    )
    e_fr, _ = _frame(small_geometry, q, cap, np.random.default_rng(2), exposure=exp_e)
    cal = water_scale_factor(red.reduce(w_fr), red.reduce(e_fr), q_range_nm=(0.5, 2.5))
    assert cal.factor == pytest.approx(1.0 / gain, rel=4 * cal.factor_err / cal.factor + 0.002)
    scaled = scale_curve(red.reduce(w_fr), cal.factor, cal.factor_err)
    assert scaled.unit == "cm^-1"


def test_dummy_tested_on_raw_counts_not_after_dark(small_geometry):
    data = np.full(small_geometry.shape, 12, dtype=np.int32)
    data[5, 5] = -1  # a real Dummy pixel
    hdr = {"Dummy": "-1", "DDummy": "0.1"}
    fr = Frame(data, hdr, parse_metadata(hdr), "d.edf")
    dark = np.full(small_geometry.shape, 13.0)  # raw - dark = -1 == Dummy everywhere
    m = pixel_mask(fr, small_geometry, Corrections(dark=dark))
    assert m[5, 5] and m.sum() == 1


@pytest.mark.parametrize("extra", ["none", "negative", "saturated", "dark_equals"])
def test_dynamic_invalid_pixels_equal_direct_pyfai_with_merged_mask(small_geometry, rng, extra):
    # Frames whose only invalid pixels are the header's Dummy go to pyFAI with that Dummy
    # (no copy); any other invalid pixel (negative, saturated) takes the sentinel copy. Both
    # must give what pyFAI gives with every invalid pixel in the mask.
    q, i_true = smooth_curve()
    fr, _ = _frame(small_geometry, q, i_true, rng, layout=replace(LAYOUT, n_hot_pixels=0))
    data = fr.data.copy()
    dark = _dark(small_geometry)
    # explicit q range: the same bins whatever the mask (pyFAI otherwise fits the bins to
    # the unmasked pixels, and the reference below masks more than the static mask)
    qr = tuple(np.percentile(small_geometry.integrator().qArray(data.shape), [3, 97]))
    corr = Corrections(npt=120, dark=dark, saturation=10**6, q_range_nm=qr)
    if extra == "negative":
        data[40, 40] = -7
    elif extra == "saturated":
        data[41, 41] = 10**7
    elif extra == "dark_equals":
        # raw - dark == Dummy on valid pixels: Dummy is a raw-count test, they stay valid
        dark = np.where(data >= 0, data + 1.0, 0.0)
        corr = Corrections(npt=120, dark=dark, saturation=10**6, q_range_nm=qr)
    fr = Frame(data, fr.header, fr.metadata, "g.edf")
    from saxsred.reduce import dynamic_invalid, header_dummy, normalisation, static_mask

    dyn = dynamic_invalid(fr, corr, static_mask(small_geometry, corr, data.shape))
    assert (header_dummy(fr, corr, dyn) is None) == (extra in ("negative", "saturated"))
    cv = Reducer(small_geometry, corr).reduce(fr)
    mask = pixel_mask(fr, small_geometry, corr)
    ai = small_geometry.integrator()
    ref = ai.integrate1d(
        data,
        120,
        unit="q_nm^-1",
        method=("no", "csr", "cython"),
        correctSolidAngle=True,
        polarization_factor=0.99,
        dark=dark,
        mask=mask,
        error_model="poisson",
        radial_range=qr,
        normalization_factor=normalisation(fr, small_geometry, corr).factor,
    )
    ok = ref.count > 0
    np.testing.assert_allclose(cv.intensity, ref.intensity[ok], rtol=1e-6)
    np.testing.assert_allclose(cv.sigma, ref.sigma[ok], rtol=1e-6)
    assert cv.provenance["steps"][-1]["masked_pixels"] == int(mask.sum())


def test_bad_inputs_raise_clear_errors(small_geometry):
    q, i_true = smooth_curve()
    fr, _ = _frame(small_geometry, q, i_true, np.random.default_rng(0))
    with pytest.raises(InputError, match="transmission"):
        Reducer(small_geometry, Corrections(transmission=0.0)).reduce(fr)
    with pytest.raises(InputError, match="transmission"):
        Reducer(small_geometry, Corrections(transmission=-0.3, monitor="I0")).reduce(fr)
    zero_mon = replace(fr, metadata=replace(fr.metadata, monitor=0.0))
    with pytest.raises(InputError, match="must be positive"):
        Reducer(small_geometry, Corrections()).reduce(zero_mon)
    nan = replace(
        fr,
        data=np.where(
            np.arange(fr.data.size).reshape(fr.shape) == 7, np.nan, fr.data.astype(float)
        ),
    )
    with pytest.raises(InputError, match="NaN"):
        Reducer(small_geometry, Corrections()).reduce(nan)
    with pytest.raises(GeometryError, match="does not match"):
        Reducer(small_geometry, Corrections(mask=np.zeros((10, 10), bool))).reduce(fr)
    wrong = replace(fr, data=fr.data[:-3])
    with pytest.raises(GeometryError, match="frame shape"):
        Reducer(small_geometry, Corrections()).reduce(wrong)


def test_chi_profile_and_cake(small_geometry):
    q = np.linspace(0, 5, 501)
    fr, _ = _frame(
        small_geometry, q, np.full_like(q, 0.5), np.random.default_rng(0), layout=DetectorLayout()
    )
    red = Reducer(small_geometry, Corrections(npt=100, dark=_dark(small_geometry)))
    cake = red.cake(fr, npt_rad=80, npt_azim=90)
    assert cake.intensity.shape == (90, 80)
    prof = red.chi_profile(fr, (0.4, 0.55), npt_chi=72)
    # isotropic scattering: the profile is flat within its errors
    z = (prof.intensity - np.average(prof.intensity, weights=prof.sigma**-2)) / prof.sigma
    assert len(prof.chi_deg) == 72 and 0.7 < np.std(z) < 1.4, np.std(z)


def test_chi_profile_flat_across_a_steep_isotropic_peak(small_geometry):
    """A band straddling a sharp ring: the radial gradient must not leak into I(chi)."""
    q = np.linspace(0, 5, 20001)
    ring = 0.2 + 30.0 / (1 + ((q - 0.45) / 0.02) ** 2)
    fr, _ = _frame(small_geometry, q, ring, np.random.default_rng(11), layout=DetectorLayout())
    red = Reducer(small_geometry, Corrections(npt=300, dark=_dark(small_geometry)))
    prof = red.chi_profile(fr, (0.42, 0.48), npt_chi=36)
    z = (prof.intensity - np.average(prof.intensity, weights=prof.sigma**-2)) / prof.sigma
    assert 0.6 < np.std(z) < 1.5, np.std(z)


def test_header_named_dark_is_used(tmp_path, small_geometry):
    from saxsred.io.frames import read_frame
    from saxsred.reduce import ReduceJob, reduce_files
    from saxsred.simulate import write_edf

    q, i_true = smooth_curve()
    exp = Exposure(counts_per_unit=4000.0, dark_rate=30.0)
    data, hdr, gain = simulate_frame(
        q,
        i_true,
        small_geometry,
        small_geometry.shape,
        exp,
        DetectorLayout(),
        np.random.default_rng(4),
        dark=_dark(small_geometry, exp),
    )
    write_edf(tmp_path / "dk.edf", _dark(small_geometry, exp).astype(np.float32), {})
    write_edf(
        tmp_path / "with.edf",
        data,
        {**hdr, "DarkFileName": "dk.edf", "DarkFilePath": "/beamline/only/path"},
    )
    write_edf(tmp_path / "without.edf", data, hdr)
    with_dark = reduce_files(
        [str(tmp_path / "with.edf")], ReduceJob(corrections=Corrections(npt=100))
    ).curves[0]
    no_dark = reduce_files(
        [str(tmp_path / "without.edf")], ReduceJob(corrections=Corrections(npt=100))
    ).curves[0]
    truth = np.interp(with_dark.q_nm, q, i_true) * gain
    assert abs(np.median(with_dark.intensity / truth) - 1) < 0.01
    assert np.median(no_dark.intensity / truth) > 1.05  # the dark current left in
    assert with_dark.provenance["steps"][0]["options"]["dark_file"]["file"] == "dk.edf"
    assert (
        read_frame(tmp_path / "with.edf").metadata.files["DarkFileName"]
        == "/beamline/only/path/dk.edf"
    )


def test_merge_saxs_waxs_realdata():
    from conftest import realdata

    from saxsred.io.curves import read_curve
    from saxsred.reduce import merge_curves

    saxs = read_curve(realdata("curves", "lys_saxs.dat"))
    waxs = read_curve(realdata("curves", "lys_waxs.dat"))
    # BioXTAS RAW writes q in 1/A: read_curve converts to nm^-1
    assert saxs.q_nm[-1] == pytest.approx(2.83, abs=0.01) and waxs.q_nm[0] == pytest.approx(
        2.14, abs=0.01
    )
    m = merge_curves(saxs, waxs)
    assert np.all(np.diff(m.curve.q_nm) > 0)
    lo, hi = m.overlap_nm
    # after scaling, the two detectors agree over the overlap within their errors
    sel = (waxs.q_nm > lo) & (waxs.q_nm < hi)
    s_i = np.interp(waxs.q_nm[sel], saxs.q_nm, saxs.intensity)
    z = (s_i - m.factor * waxs.intensity[sel]) / np.hypot(
        np.interp(waxs.q_nm[sel], saxs.q_nm, saxs.sigma), m.factor * waxs.sigma[sel]
    )
    assert abs(np.mean(z)) < 0.5 and np.std(z) < 2.0


def test_merge_recovers_known_factor(small_geometry):
    from saxsred.curve import Curve
    from saxsred.reduce import merge_curves

    rng = np.random.default_rng(1)
    q1, q2 = np.linspace(0.1, 3, 300), np.linspace(2, 20, 400)
    f = lambda q: 5 / (1 + q**2) + 0.1  # noqa: E731
    s1, s2 = 0.01 * f(q1), 0.01 * f(q2) / 3.7
    saxs = Curve(q1, f(q1) + rng.normal(0, s1), s1, name="s")
    waxs = Curve(q2, f(q2) / 3.7 + rng.normal(0, s2), s2, name="w")
    m = merge_curves(saxs, waxs)
    assert m.factor == pytest.approx(3.7, abs=4 * m.factor_err)


def test_transmission_from_monitors_against_empty_beam(small_geometry):
    """Normalising by I0 with T = (I1/I0)/ratio_empty equals normalising by I1 directly."""
    from saxsred.reduce import normalisation

    q, i_true = smooth_curve()
    exp = Exposure(counts_per_unit=4000.0, transmission=0.37, empty_beam_ratio=0.5)
    fr, _ = _frame(small_geometry, q, i_true, np.random.default_rng(3), exposure=exp)
    n_i1 = normalisation(fr, small_geometry, Corrections(monitor="I1"))
    n_i0 = normalisation(fr, small_geometry, Corrections(monitor="I0", empty_beam_ratio=0.5))
    assert n_i0.transmission == pytest.approx(0.37, rel=1e-9)
    assert n_i0.factor == pytest.approx(
        n_i1.factor * 2, rel=1e-9
    )  # I1 also carries ratio_empty = 0.5
