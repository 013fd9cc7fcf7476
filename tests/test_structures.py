"""Physics of the comparison structures against outside truth.

Direct O(N^2 q) Debye sums written here, freud's Debye structure factor, Bragg positions
2 pi sqrt(N)/a, the Debye-Waller factor and the vacancy diffuse level of textbook
crystallography, the oriented cube amplitudes |F(G)|^2 = prod sinc^2(G_i e/2) of SCIENCE.md.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from saxsred.errors import ParameterError
from saxsred.structures import (
    build_supraparticle,
    debye_intensity,
    from_configuration,
    orientation_averaged_amplitude,
    oriented_intensity,
    scatter,
    supraparticle_sizes,
)
from saxsred.structures.debye import histogram_accuracy

A, E = 11.4, 9.5
G1 = 2.0 * math.pi / A


def direct_debye(pos: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum_jk sinc(q r_jk) and sum_jk |sinc(q r_jk)| by brute force (numpy, no histogram)."""
    iu = np.triu_indices(len(pos), 1)
    r = np.linalg.norm(pos[iu[0]] - pos[iu[1]], axis=1)
    x = np.outer(q, r)
    s = np.sinc(x / math.pi)
    return len(pos) + 2.0 * s.sum(axis=1), len(pos) + 2.0 * np.abs(s).sum(axis=1)


@pytest.mark.parametrize("kind", ["random", "lattice"])
def test_debye_histogram_matches_direct_sum_within_stated_accuracy(kind):
    rng = np.random.default_rng(5)
    if kind == "random":
        pos = rng.uniform(-40.0, 40.0, size=(500, 3))
    else:
        pos = build_supraparticle(
            "SC", A, E, (8, 8, 8), vacancies_bulk=0.05, disorder_pos_nm=0.8, rng=rng
        ).positions_nm[:500]
    q = np.linspace(0.02, 2.0, 120)
    ref, absum = direct_debye(pos, q)
    for dr in (0.05 / q.max(), 0.5 / q.max()):  # default bin and a 10x coarser one
        got = debye_intensity(pos, q, bin_nm=dr)
        stated = histogram_accuracy(q, dr) * absum  # (q dr)^2/24 per term
        err = np.abs(got - ref)
        # the stated figure is the uniform-bin average; the worst case is 3x that
        assert np.all(err <= 3.0 * stated + 1e-9 * absum), (kind, dr, float(np.max(err / stated)))
    # a coarse bin must show an error of the stated order (the bound is not vacuous)
    assert np.max(np.abs(got - ref) / stated) > 0.01


@pytest.mark.parametrize("bin_nm", [0.025, 0.004])  # 16 and 13 sub-bin bits
def test_packed_pair_histogram_against_numpy_distances(bin_nm):
    """Counts and mean r of each bin against numpy's distances; flushes; both q-sum paths."""
    from saxsred.structures import _kernels as K
    from saxsred.structures.debye import histogram_sums, pair_distance_histogram

    rng = np.random.default_rng(11)
    pos = rng.uniform(0.0, 500.0, size=(300, 3))
    iu = np.triu_indices(len(pos), 1)
    r = np.linalg.norm(pos[iu[0]] - pos[iu[1]], axis=1)
    b = np.floor(r / bin_nm).astype(int)
    cnt = np.bincount(b)
    mean = np.bincount(b, weights=r)[cnt > 0] / cnt[cnt > 0]
    got_r, got_n = pair_distance_histogram(pos, bin_nm)
    assert got_n.sum() == len(r)
    assert np.array_equal(got_n, cnt[cnt > 0])  # random distances: none within 1e-12 of an edge
    nbins = int(math.sqrt(3) * 500 / bin_nm) + 2
    bits = 16 if nbins <= 2**15 else 31 - math.ceil(math.log2(nbins))
    assert np.max(np.abs(got_r - mean)) <= bin_nm / 2 ** (bits + 1) + 1e-12
    # flushing the packed words after every row or never gives the same histogram
    args = (np.ascontiguousarray(pos), 1.0 / bin_nm, nbins, 3, bits)
    c1, o1 = K.pair_histogram(*args, 1)
    c2, o2 = K.pair_histogram(*args, 10**6)
    assert np.array_equal(c1.sum(0), c2.sum(0)) and np.array_equal(o1.sum(0), o2.sum(0))
    # the rotation sum on a uniform grid equals the sine-per-term sum
    q = np.linspace(0.0, 2.0, 300)
    s_rot, a_rot = histogram_sums(q, got_r, got_n)
    s_sin, a_sin = K.debye_sum(q, got_r, got_n, False), K.debye_sum(q, got_r, got_n, True)
    assert np.max(np.abs(s_rot - s_sin)) <= 1e-11 * np.max(a_sin)
    assert np.max(np.abs(a_rot - a_sin)) <= 1e-11 * np.max(a_sin)


def test_debye_matches_freud_for_isolated_supraparticle():
    import freud  # a declared test dependency: missing is a failure, not a skip

    sp = build_supraparticle(
        "SC", A, E, (12, 12, 14), vacancies_bulk=0.02, disorder_pos_nm=0.5, rng=2
    )
    assert 1900 < sp.n < 2100
    pos = sp.positions_nm
    span = float(np.max(np.ptp(pos, axis=0)))
    box = freud.box.Box.cube(2.5 * span)  # minimum images never shorten a pair
    sf = freud.diffraction.StaticStructureFactorDebye(num_k_values=60, k_max=2.0, k_min=0.05)
    sf.compute((box, pos.astype(np.float32)), reset=True)
    k = np.asarray(sf.k_values, float)
    ours = debye_intensity(pos, k) / sp.n
    theirs = np.asarray(sf.S_k, float)
    # freud works in float32: about 1e-6 per distance, relative to S summed over N pairs
    assert np.allclose(ours, theirs, rtol=2e-3, atol=2e-3 * np.abs(theirs).max()), float(
        np.max(np.abs(ours - theirs))
    )


def test_oriented_sum_reduces_to_debye_for_point_particles_and_is_converged():
    rng = np.random.default_rng(1)
    sp = from_configuration(rng.uniform(-25, 25, (200, 3)), np.tile([1.0, 0, 0, 0], (200, 1)), E)
    q = np.linspace(0.05, 1.5, 40)
    ref, _ = direct_debye(sp.positions_nm, q)
    got = oriented_intensity(sp, q, point_particles=True)
    assert np.allclose(got, ref, rtol=1e-10)
    # rotated cubes (per-particle amplitudes): a finer rule changes nothing
    sp = build_supraparticle(
        "SC", A, E, (4, 4, 4), disorder_rot_fwhm_deg=15, disorder_pos_nm=0.5, rng=3
    )
    i1 = oriented_intensity(sp, q)
    i2 = oriented_intensity(sp, q, extra_degree=25)
    assert np.allclose(i1, i2, rtol=1e-10)


def test_polynomial_sincos_of_the_oriented_kernel_against_numpy():
    """The vectorised sin/cos: error about 2.4e-16 |x| (reduction by 2 pi) + 4e-16."""
    from numba import njit

    from saxsred.structures._oriented_kernels import sincos

    @njit
    def both(x):
        c = np.empty_like(x)
        s = np.empty_like(x)
        for i in range(x.size):
            c[i], s[i] = sincos(x[i])
        return c, s

    x = np.concatenate(
        [np.random.default_rng(2).uniform(-3000.0, 3000.0, 20000), np.linspace(-7, 7, 2001)]
    )
    c, s = both(x)
    bound = 4e-16 * np.abs(x) + 1e-15
    assert np.all(np.abs(c - np.cos(x)) <= bound) and np.all(np.abs(s - np.sin(x)) <= bound)


def test_oriented_sum_of_rotated_cubes_against_numpy_average():
    sp = build_supraparticle("SC", A, E, (3, 3, 3), disorder_rot_fwhm_deg=30, rng=4)
    from saxsred.structures import quaternion_to_matrix
    from saxsred.structures.oriented import sphere_rule

    q = np.array([0.3, 0.55, 0.8])
    got = oriented_intensity(sp, q, symmetry="none")
    dirs, w = sphere_rule(60, "none")
    rot = quaternion_to_matrix(sp.orientations)
    ref = []
    for qq in q:
        qv = qq * dirs
        body = np.einsum("jba,mb->jma", rot, qv) * (E / 2)  # R^T q
        f = np.prod(np.sinc(body / math.pi), axis=-1)
        amp = np.sum(f * np.exp(1j * (sp.positions_nm @ qv.T)), axis=0)
        ref.append(np.sum(w * np.abs(amp) ** 2))
    assert np.allclose(got, ref, rtol=1e-9)


def _local_max(q, y, q0, half):
    sel = np.abs(q - q0) < half
    k = np.argmax(np.where(sel, y, -np.inf))
    return q[k], y[k]


def test_perfect_sc_bragg_peaks_at_2pi_sqrtN_over_a():
    n = 10
    sp = build_supraparticle("SC", A, E, (n, n, n))
    q = np.linspace(0.3, 2.0, 3401)
    s = scatter(sp, q, kind="structure").intensity
    for big_n in (1, 2, 3, 4, 5, 6, 8, 9):
        qg = G1 * math.sqrt(big_n)
        qm, ym = _local_max(q, s, qg, 0.3 * 2 * math.pi / (n * A))
        assert abs(qm / qg - 1) < 2e-3, (big_n, qm, qg)
        assert ym > 1.2
    # N = 7 is not a sum of three squares: no peak there (S = 0.17 against >= 1.2 on the rings)
    q7 = G1 * math.sqrt(7)
    assert s[np.argmin(np.abs(q - q7))] < 0.5


def _peak_area(q, y, qc, half, base):
    sel = np.abs(q - qc) < half
    return float(np.trapezoid(y[sel] - base, q[sel]))


def test_debye_waller_factor_of_positional_disorder():
    n, sigma = 10, 1.0
    q = np.linspace(0.3, 1.5, 1201)
    perfect = scatter(build_supraparticle("SC", A, E, (n, n, n)), q, kind="structure").intensity
    dis = np.mean(
        [
            scatter(
                build_supraparticle("SC", A, E, (n, n, n), disorder_pos_nm=sigma, rng=s),
                q,
                kind="structure",
            ).intensity
            for s in range(3)
        ],
        axis=0,
    )
    half = 1.5 * 2 * math.pi / (n * A)  # windows of neighbouring rings stay apart up to N = 6
    qs, ratios = [], []
    for big_n in (1, 2, 3, 4, 5, 6):
        qg = G1 * math.sqrt(big_n)
        d2 = math.exp(-qg * qg * sigma * sigma)
        # ensemble average: S = (1 - D^2) + D^2 S_perfect; the Bragg part scales with D^2
        ratios.append(_peak_area(q, dis, qg, half, 1 - d2) / _peak_area(q, perfect, qg, half, 0.0))
        qs.append(qg)
    qs, ratios = np.array(qs), np.array(ratios)
    assert np.allclose(ratios, np.exp(-(qs**2) * sigma**2), rtol=0.12), ratios / np.exp(
        -(qs**2) * sigma**2
    )
    slope = np.polyfit(qs**2, np.log(ratios), 1)[0]
    assert abs(-slope - sigma**2) < 0.1 * sigma**2, slope
    # high-order peaks lose most
    assert ratios[-1] < 0.35 * ratios[0]


def test_vacancies_add_diffuse_scattering_in_proportion():
    n = 12
    q = np.linspace(0.3, 1.5, 1201)
    sp0 = build_supraparticle("SC", A, E, (n, n, n))
    perfect = scatter(sp0, q, kind="structure").intensity
    between = np.ones(q.size, bool)
    for big_n in range(1, 20):
        between &= np.abs(q - G1 * math.sqrt(big_n)) > 0.06
    levels = []
    fracs = (0.05, 0.1, 0.2)
    for c in fracs:
        s = np.mean(
            [
                scatter(
                    build_supraparticle("SC", A, E, (n, n, n), c, c, rng=k), q, kind="structure"
                ).intensity
                for k in range(2)
            ],
            axis=0,
        )
        # S = c + (1 - c) S_perfect per occupied particle: the excess is the diffuse level c
        levels.append(float(np.mean((s - (1 - c) * perfect)[between])))
    levels = np.array(levels)
    assert np.allclose(levels, fracs, rtol=0.1), levels
    assert abs(np.polyfit(fracs, levels, 1)[0] - 1.0) < 0.1


def _textbook_f2(hkl):
    g = 2 * math.pi * np.array(hkl, float) / A
    return float(np.prod(np.sinc(g * E / 2 / math.pi) ** 2))


def test_aligned_cubes_show_100_110_200_210_and_suppress_111():
    # SCIENCE.md: |F|^2 = 0.036 (100), 0.0013 (110), 0.00005 (111), 0.027 (200), 0.0010 (210)
    assert _textbook_f2((1, 0, 0)) == pytest.approx(0.036, rel=0.05)
    assert _textbook_f2((1, 1, 1)) == pytest.approx(0.00005, rel=0.1)
    n = 12
    sp = build_supraparticle("SC", A, E, (n, n, n))
    half = 2 * math.pi / (n * A)  # one spot width each side
    rings = {(1, 0, 0): 6, (1, 1, 0): 12, (1, 1, 1): 8, (2, 0, 0): 6, (2, 1, 0): 24}
    qg = {hkl: G1 * math.sqrt(sum(h * h for h in hkl)) for hkl in rings}
    # uniform windows around each ring only (the exact average costs ~(q R)^2 directions per q)
    wins = [np.linspace(qg[h] - half, qg[h] + half, 41) for h in rings]
    q = np.concatenate(wins)
    i = scatter(sp, q, kind="intensity").intensity
    dec = scatter(sp, q, kind="intensity", method="decoupling").intensity

    def area(y, k):
        x, v = wins[k], y[41 * k : 41 * (k + 1)]
        base = np.interp(x, [x[0], x[-1]], [v[0], v[-1]])  # neighbours' tails removed
        return float(np.trapezoid(v - base, x))

    ex = {h: area(i, k) for k, h in enumerate(rings)}
    de = {h: area(dec, k) for k, h in enumerate(rings)}
    # powder ring: multiplicity x |F(G)|^2 x Lorentz 1/q^2
    expect = {h: m * _textbook_f2(h) / qg[h] ** 2 for h, m in rings.items()}
    for h in rings:
        rel = (ex[h] / ex[(1, 0, 0)]) / (expect[h] / expect[(1, 0, 0)])
        print(h, f"area / textbook (relative to (100)) = {rel:.3f}")
        if h != (1, 1, 1):
            # a 12-cell crystal's spots are 2 pi/(12 a) wide: they average |F|^2 over a region
            # where it curves (the (110) and (210) spots sit near sinc zeros of one component)
            assert 0.7 < rel < 1.4, (h, rel)
    # (111) is 20+ times weaker than (110): absent from the pattern
    assert ex[(1, 1, 1)] < ex[(1, 1, 0)] / 10
    # the same lines with misaligned cubes (decoupling, orientation-averaged) keep (111)
    r_ex = ex[(1, 1, 1)] / ex[(1, 0, 0)]
    r_de = de[(1, 1, 1)] / de[(1, 0, 0)]
    print(f"(111)/(100) area: exact oriented {r_ex:.4f}, decoupling {r_de:.4f}")
    assert r_de > 5 * r_ex


def test_orientation_averaged_amplitude_and_decoupling_limits():
    q = np.linspace(0.0, 3.0, 31)
    f = orientation_averaged_amplitude(q, E)
    assert f[0] == pytest.approx(1.0)
    # Guinier: <F> = 1 - q^2 Rg^2 / 6 with Rg^2 = e^2 / 4 for a cube
    q0 = 0.02
    f0 = orientation_averaged_amplitude(np.array([q0]), E)[0]
    assert 1 - f0 == pytest.approx(q0 * q0 * E * E / 4 / 6, rel=1e-3)
    # decoupling of a single cube is P(q)
    sp = from_configuration([[0, 0, 0]], [[1, 0, 0, 0]], E)
    qq = np.linspace(0.05, 1.5, 30)
    d = scatter(sp, qq, kind="intensity", method="decoupling").intensity
    ex = scatter(sp, qq, kind="intensity").intensity
    assert np.allclose(d, ex, rtol=2e-3)


def test_builder_vacancy_counts_seed_and_errors():
    sp = build_supraparticle("SC", A, E, (10, 10, 10), 0.033, 0.055, rng=7)
    assert sp.provenance["surface_sites"] == 1000 - 512
    assert sp.n == 1000 - round(0.033 * 512) - round(0.055 * 488)
    sp2 = build_supraparticle("SC", A, E, (10, 10, 10), 0.033, 0.055, rng=7)
    assert np.array_equal(sp.positions_nm, sp2.positions_nm)
    rot = build_supraparticle("SC", A, E, (6, 6, 6), disorder_rot_fwhm_deg=9.6, rng=1)
    # angle about z of each cube: its FWHM is the one asked for
    w, x, y, z = rot.orientations.T
    ang = np.degrees(2 * np.arctan2(z, w))
    fwhm = 2 * math.sqrt(2 * math.log(2)) * np.std(ang)
    assert fwhm == pytest.approx(9.6, rel=0.1)
    with pytest.raises(ParameterError):
        build_supraparticle("SC", A, E, (4, 4, 4), vacancies_bulk=1.5)
    with pytest.raises(ParameterError):
        build_supraparticle("Ia-3d", A, E, (4, 4, 4))
    sizes = supraparticle_sizes((12, 12, 12), 0.2, 50, rng=0)
    assert len(sizes) == 50 and 9 < np.mean([s[0] for s in sizes]) < 15
    for lat, per_cell in (("BCC", 2), ("FCC", 4), ("A15", 8)):
        assert build_supraparticle(lat, 20.0, E, (3, 3, 3)).n == 27 * per_cell


def test_finite_size_and_envelope_shifts_of_peak_positions():
    """Peak maxima (parabola through the top) of S(q) and of aligned-cube S_eff against 2 pi sqrt(N)/a.

    S(q) of a finite crystal: the powder average shifts low orders by about +0.1 % (16 cells).
    S_eff of aligned cubes: the oriented envelope |F|^2/P tilts each ring; the shift is
    printed per ring and shrinks as the crystal grows (spots narrower than the envelope).
    """
    shifts = {}
    for n in (12, 16):
        sp = build_supraparticle("SC", A, E, (n, n, n))
        w = 2 * math.pi / (n * A)
        for big_n in (1, 2, 4, 5):
            qg = G1 * math.sqrt(big_n)
            q = np.linspace(qg - 0.5 * w, qg + 0.5 * w, 21)
            top = []
            for kind in ("structure", "effective"):
                c = np.polyfit(q - qg, scatter(sp, q, kind).intensity, 2)
                top.append(qg - c[1] / (2 * c[0]))
            if n == 16:
                assert abs(top[0] / qg - 1) < 1.5e-3, (big_n, top[0] / qg - 1)
            shifts[n, big_n] = top[1] / top[0] - 1
            print(
                f"{n} cells, N = {big_n}: S(q) {100 * (top[0] / qg - 1):+.3f} %, envelope shift of S_eff {100 * shifts[n, big_n]:+.3f} %"
            )
    for big_n in (1, 2, 4, 5):
        assert abs(shifts[16, big_n]) <= abs(shifts[12, big_n]) + 2e-4
        assert abs(shifts[16, big_n]) < 0.01
