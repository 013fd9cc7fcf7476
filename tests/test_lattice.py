"""Shared crystallography (saxsred.lattice) against routes that do not use its tables.

Outside truth: gemmi's space-group operations (systematic absences of the general
position, when gemmi is installed), brute-force structure-factor sums over the sites of
each structure written out here, and the textbook N lists of SCIENCE.md section 4.
"""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest

from saxsred import lattice as lat
from saxsred.errors import ParameterError

NMAX = 40
# Sites written out here (fractional), independently of saxsred.lattice.
F = [(0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)]
SITES = {
    "SC": [(0, 0, 0)],
    "BCC": [(0, 0, 0), (0.5, 0.5, 0.5)],
    "FCC": F,
    "diamond": F + [(x + 0.25, y + 0.25, z + 0.25) for x, y, z in F],
    # Cr3Si in another setting than the module's (6c images along other axes): |F| is the same.
    "A15": [
        (0, 0, 0),
        (0.5, 0.5, 0.5),
        (0.25, 0.5, 0),
        (0.75, 0.5, 0),
        (0, 0.25, 0.5),
        (0, 0.75, 0.5),
        (0.5, 0, 0.25),
        (0.5, 0, 0.75),
    ],
}
BOX = np.array(list(itertools.product(range(-7, 8), repeat=3)))
BOX = BOX[np.any(BOX != 0, axis=1)]
NS = np.sum(BOX * BOX, axis=1)


def f2(sites, hkl):
    ph = 2 * np.pi * hkl @ np.array(sites, float).T
    return np.abs(np.exp(1j * ph).sum(-1)) ** 2


def module_ns(name, nmax=NMAX):
    return [int(round(r.s)) for r in lat.rings(name, nmax)]


def test_textbook_n_lists():
    sc = module_ns("SC", 30)
    assert not {7, 15, 23} & set(sc)

    # Legendre: N is a sum of three squares unless N = 4^a (8b + 7)
    def legendre(n):
        while n % 4 == 0:
            n //= 4
        return n % 8 != 7

    assert sc == [n for n in range(1, 31) if legendre(n)]
    assert module_ns("BCC", 16) == [2, 4, 6, 8, 10, 12, 14, 16]
    assert module_ns("FCC", 20) == [3, 4, 8, 11, 12, 16, 19, 20]
    assert module_ns("diamond", 24) == [3, 8, 11, 16, 19, 24]
    assert module_ns("Ia-3d", 26) == [6, 8, 14, 16, 20, 22, 24, 26]
    # Pm-3n: hhl only with l = 2n. SCIENCE.md lists 2 ... 21 without 18, but (411) and (330)
    # are hhl reflections with l = 4 and l = 0, so the space group allows N = 18 (gemmi agrees).
    assert module_ns("A15", 21) == [2, 4, 5, 6, 8, 10, 12, 13, 14, 16, 17, 18, 20, 21]


@pytest.mark.parametrize("name", ["SC", "BCC", "FCC", "diamond", "A15"])
def test_structure_factor_brute_force(name):
    """Rings with a non-zero basis sum are exactly the N where the sites' |F|^2 is non-zero,
    and each ring's multiplicity x |F|^2/n summed over coincident families matches."""
    w = f2(SITES[name], BOX) / len(SITES[name])
    w[w < 1e-9] = 0
    want = {n: float(w[NS == n].sum()) for n in range(1, NMAX + 1) if w[NS == n].sum() > 0}
    got = {int(round(r.s)): r.basis_sum for r in lat.rings(name, NMAX)}
    assert {n for n, v in got.items() if v > 0} == set(want)
    for n, v in want.items():
        assert got[n] == pytest.approx(v, rel=1e-9), n
    # every ring the sites light up is an allowed ring
    assert set(want) <= set(got)


@pytest.mark.parametrize(
    "name,hm",
    [
        ("SC", "P m -3 m"),
        ("BCC", "I m -3 m"),
        ("FCC", "F m -3 m"),
        ("A15", "P m -3 n"),
        ("Pn-3m", "P n -3 m"),
        ("Ia-3d", "I a -3 d"),
        ("diamond", "F d -3 m"),
    ],
)
def test_conditions_match_gemmi(name, hm):
    import gemmi  # a declared test dependency (the space groups' systematic absences): never skipped

    ops = gemmi.SpaceGroup(hm).operations()
    absent = np.array([ops.is_systematically_absent([int(x) for x in v]) for v in BOX])
    ok = lat.allowed(name, BOX)
    if name == "diamond":
        # the structure adds the special condition of site 8a: the sites' |F| decides
        absent |= f2(SITES["diamond"], BOX) < 1e-9
    np.testing.assert_array_equal(ok, ~absent)


def test_hcp_against_sites_and_gemmi():
    # hexagonal axes; 2c sites (1/3, 2/3, 1/4), (2/3, 1/3, 3/4)
    sites = [(1 / 3, 2 / 3, 0.25), (2 / 3, 1 / 3, 0.75)]
    w = f2(sites, BOX) / 2
    w[w < 1e-9] = 0
    ca = math.sqrt(8 / 3)
    s = np.round(
        4 / 3 * (BOX[:, 0] ** 2 + BOX[:, 0] * BOX[:, 1] + BOX[:, 1] ** 2) + BOX[:, 2] ** 2 / ca**2,
        6,
    )
    smax = 12.0
    want = {}
    for sv in np.unique(s[(s <= smax) & (w > 0)]):
        want[float(sv)] = (int(np.count_nonzero((s == sv) & (w > 0))), float(w[s == sv].sum()))
    got = {round(r.s, 6): (r.multiplicity, r.basis_sum) for r in lat.rings("HCP", smax)}
    assert got.keys() == want.keys()
    for k, (m, b) in want.items():
        assert got[k][0] == m and got[k][1] == pytest.approx(b)
    import gemmi

    ops = gemmi.SpaceGroup("P 63/m m c").operations()
    sg_absent = np.array([ops.is_systematically_absent([int(x) for x in v]) for v in BOX])
    # every reflection the structure allows is allowed by the space group
    assert not np.any(lat.allowed("HCP", BOX) & sg_absent)


def test_coincident_reflections_summed():
    r9 = [r for r in lat.rings("SC", 9) if r.s == 9][0]
    assert {f.hkl for f in r9.families} == {(2, 2, 1), (3, 0, 0)}
    assert r9.multiplicity == 24 + 6 == len(r9.g)
    # multiplicities add up to the lattice points inside the sphere
    for name in ("SC", "BCC", "FCC"):
        n_pts = int(np.sum((NS <= 30) & lat.allowed(name, BOX)))
        assert sum(r.multiplicity for r in lat.rings(name, 30)) == n_pts


@pytest.mark.parametrize(
    "name,nn",
    [
        ("SC", 1.0),
        ("BCC", math.sqrt(3) / 2),
        ("FCC", 1 / math.sqrt(2)),
        ("diamond", math.sqrt(3) / 4),
        ("A15", 0.5),
    ],
)
def test_nn_distance_and_sites(name, nn):
    b = lat.basis_positions(name)
    assert lat.sites_per_cell(name) == len(SITES[name]) == len(b)
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    pts = (b[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    d = np.linalg.norm(pts[None, :, :] - b[:, None, :], axis=-1)
    assert d[d > 1e-9].min() == pytest.approx(nn)
    assert lat.nn_distance(name, 10.0) == pytest.approx(10 * nn)


def test_hcp_nn_from_cell():
    a = 10.0
    cell = lat.cell_vectors("HCP", a)
    cart = lat.basis_positions("HCP") @ cell
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3))) @ cell
    pts = (cart[None] + shifts[:, None]).reshape(-1, 3)
    d = np.linalg.norm(pts[:, None] - cart[None], axis=-1)
    assert d[d > 1e-9].min() == pytest.approx(lat.nn_distance("HCP", a))


def test_names_and_refusals():
    assert (
        lat.resolve("Im-3m") == "BCC"
        and lat.resolve("P6_3/mmc") == "HCP"
        and lat.resolve("fcc") == "FCC"
    )
    assert lat.space_group("A15") == "Pm-3n" and lat.space_group("diamond") == "Fd-3m"
    with pytest.raises(ParameterError, match="use one of"):
        lat.resolve("bct")
    with pytest.raises(ParameterError, match="no point sites"):
        lat.basis_positions("Ia-3d")
    t = time.perf_counter()
    with pytest.raises(ParameterError, match="q unit"):
        lat.ring_positions("SC", a_nm=11.4, q_max_nm=5000.0)
    assert time.perf_counter() - t < 1.0
    q = lat.ring_positions("SC", 11.4, 1.25)
    np.testing.assert_allclose(q, 2 * np.pi * np.sqrt([1, 2, 3, 4, 5]) / 11.4)
