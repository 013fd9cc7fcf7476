"""Space groups of supraparticle lattices: reflection conditions, rings, sites.

The one crystallography module that the peak stage (:mod:`saxsred.peaks`) and the model
structures (:mod:`saxsred.structures`) share. A lattice is named by its short name
(``"SC"``, ``"BCC"``, ``"FCC"``, ``"HCP"``, ``"hex2d"``, ``"lamellar"``, ``"A15"``,
``"diamond"``, ``"Pn-3m"``, ``"Ia-3d"``) or by its Hermann-Mauguin symbol.

Which reflections exist is decided by the reflection conditions of the space group as
tabulated in International Tables for Crystallography Vol. A (general conditions, plus the
special conditions of the occupied Wyckoff site where the structure has one, e.g. 8a of
Fd-3m for diamond). Intensities are a separate matter: :attr:`Family.basis_factor` is
|F_basis(G)|^2 / n for equal point scatterers on the basis sites (accidental zeros, such as
A15's (410), keep a ring allowed but with zero weight).

Ring positions: cubic q = 2 pi sqrt(N) / a with N = h^2 + k^2 + l^2; hexagonal
(q a / 2 pi)^2 = 4/3 (h^2 + h k + k^2) + l^2 (a/c)^2; lamellar q = 2 pi n / d. Reflections
that coincide in q (e.g. (300) and (221), both N = 9) form one ring whose multiplicity is the
sum of theirs.

Example
-------
>>> from saxsred.lattice import rings
>>> [r.s for r in rings("BCC", 8)]
[2.0, 4.0, 6.0, 8.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import permutations, product

import numpy as np

from .errors import ParameterError

#: Short names, in the order the peak stage lists them.
LATTICES = ("SC", "BCC", "FCC", "HCP", "hex2d", "lamellar", "A15", "diamond", "Pn-3m", "Ia-3d")
#: Cubic lattices (q = 2 pi sqrt(N)/a, Laue class m-3m).
CUBIC = ("SC", "BCC", "FCC", "A15", "diamond", "Pn-3m", "Ia-3d")
#: Hermann-Mauguin symbol of each short name.
SPACE_GROUPS = {
    "SC": "Pm-3m",
    "BCC": "Im-3m",
    "FCC": "Fm-3m",
    "diamond": "Fd-3m",
    "A15": "Pm-3n",
    "Pn-3m": "Pn-3m",
    "Ia-3d": "Ia-3d",
    "HCP": "P6_3/mmc",
    "hex2d": "p6mm",
    "lamellar": "lamellar",
}
#: HCP of touching spheres: c/a = sqrt(8/3) (used unless a c/a is given).
HCP_C_OVER_A = math.sqrt(8.0 / 3.0)
#: Largest (q a / 2 pi)^2 a ring table is built for. Beyond it (a q range thousands of
#: rings wide, usually a unit mistake) the table would take gigabytes: refused.
MAX_S = 20000.0

_H = 0.5
_Q = 0.25
_F_CENTRES = [(0, 0, 0), (0, _H, _H), (_H, 0, _H), (_H, _H, 0)]
# Fractional coordinates of the occupied sites of one conventional cell.
_BASIS = {
    "SC": [(0, 0, 0)],
    "BCC": [(0, 0, 0), (_H, _H, _H)],
    "FCC": _F_CENTRES,
    # Fd-3m origin choice 1, site 8a: F-centred (0,0,0) and (1/4,1/4,1/4).
    "diamond": _F_CENTRES + [(x + _Q, y + _Q, z + _Q) for x, y, z in _F_CENTRES],
    # Pm-3n (Cr3Si type): 2a (0,0,0), (1/2,1/2,1/2) and 6c (1/4,0,1/2) and its images.
    "A15": [
        (0, 0, 0),
        (_H, _H, _H),
        (_Q, 0, _H),
        (3 * _Q, 0, _H),
        (_H, _Q, 0),
        (_H, 3 * _Q, 0),
        (0, _H, _Q),
        (0, _H, 3 * _Q),
    ],
    # P6_3/mmc site 2c (1/3,2/3,1/4), (2/3,1/3,3/4), hexagonal axes.
    "HCP": [(1 / 3, 2 / 3, _Q), (2 / 3, 1 / 3, 3 * _Q)],
    "hex2d": [(0, 0, 0)],
    "lamellar": [(0, 0, 0)],
}
# Nearest-neighbour distance / a for the lattices with point sites (HCP at ideal c/a).
_NN = {
    "SC": 1.0,
    "BCC": math.sqrt(3.0) / 2.0,
    "FCC": 1.0 / math.sqrt(2.0),
    "diamond": math.sqrt(3.0) / 4.0,
    "A15": 0.5,
    "HCP": 1.0,
    "hex2d": 1.0,
    "lamellar": 1.0,
}
_ALIASES = {v.lower(): k for k, v in SPACE_GROUPS.items()}
_ALIASES.update({k.lower(): k for k in SPACE_GROUPS})
_ALIASES.update(
    {
        "p63/mmc": "HCP",
        "p 63/m m c": "HCP",
        "im3m": "BCC",
        "fm3m": "FCC",
        "pm3m": "SC",
        "pm3n": "A15",
        "fd3m": "diamond",
        "pn3m": "Pn-3m",
        "ia3d": "Ia-3d",
        "hex": "hex2d",
    }
)


def resolve(name: str) -> str:
    """Short name of a lattice given by short name or Hermann-Mauguin symbol.

    >>> resolve("Im-3m")
    'BCC'
    """
    key = str(name).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise ParameterError(
        f"lattice {name!r}: use one of {', '.join(LATTICES)} or a space group {', '.join(sorted(set(SPACE_GROUPS.values())))}"
    )


def space_group(name: str) -> str:
    """Hermann-Mauguin symbol of a lattice (``"BCC"`` -> ``"Im-3m"``)."""
    return SPACE_GROUPS[resolve(name)]


def dimension(name: str) -> int:
    """3 for space lattices, 2 for hex2d, 1 for lamellar."""
    n = resolve(name)
    return {"hex2d": 2, "lamellar": 1}.get(n, 3)


# --------------------------------------------------------------------------- conditions
def _cubic_allowed(name: str, h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
    """Reflection conditions (ITA Vol. A) on canonical cubic indices h >= k >= l >= 0.

    The conditions of these groups are invariant under the Laue group m-3m, so one
    representative per family suffices. Types: "hkl" (all), "0kl" (one index zero: the
    other two are k, l), "hhl" (two equal indices h and a third l), "h00".
    """
    ok = np.ones(h.shape, bool)
    zero_kl = l == 0  # 0kl with (k, l) = (h, k)
    hhl_a = h == k  # (h, h, l) with l = the third
    hhl_b = k == l  # (l, h, h) with h = k, l = h
    h00 = (k == 0) & (l == 0)

    def hhl(cond):
        return np.where(hhl_a, cond(h, l), True) & np.where(hhl_b, cond(k, h), True)

    if name == "SC":  # Pm-3m: no conditions
        return ok
    if name == "BCC":  # Im-3m: hkl: h+k+l = 2n
        return (h + k + l) % 2 == 0
    if name in ("FCC", "diamond"):  # F: h+k, h+l, k+l = 2n
        ok &= ((h + k) % 2 == 0) & ((h + l) % 2 == 0) & ((k + l) % 2 == 0)
        if name == "diamond":
            # Fd-3m general: 0kl: k+l = 4n (k, l = 2n); hhl: h+l = 2n; h00: h = 4n.
            ok &= np.where(zero_kl, ((h + k) % 4 == 0) & (h % 2 == 0) & (k % 2 == 0), True)
            ok &= hhl(lambda hh, ll: (hh + ll) % 2 == 0)
            ok &= np.where(h00, h % 4 == 0, True)
            # Special condition of site 8a: h = 2n+1 or h+k+l = 4n.
            ok &= (h % 2 == 1) | ((h + k + l) % 4 == 0)
        return ok
    if name == "A15":  # Pm-3n: hhl: l = 2n; h00: h = 2n
        ok &= hhl(lambda hh, ll: ll % 2 == 0)
        return ok & np.where(h00, h % 2 == 0, True)
    if name == "Pn-3m":  # 0kl: k+l = 2n; h00: h = 2n
        ok &= np.where(zero_kl, (h + k) % 2 == 0, True)
        return ok & np.where(h00, h % 2 == 0, True)
    if name == "Ia-3d":  # hkl: h+k+l = 2n; 0kl: k, l = 2n; hhl: 2h+l = 4n; h00: h = 4n
        ok &= (h + k + l) % 2 == 0
        ok &= np.where(zero_kl, (h % 2 == 0) & (k % 2 == 0), True)
        ok &= hhl(lambda hh, ll: (2 * hh + ll) % 4 == 0)
        return ok & np.where(h00, h % 4 == 0, True)
    raise ParameterError(f"lattice {name!r} is not cubic")


def _hex_allowed(h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
    """P6_3/mmc with site 2c (HCP): hh(-2h)l and 000l need l = 2n; site 2c: l = 2n or h-k != 3n."""
    return (l % 2 == 0) | ((h - k) % 3 != 0)


def allowed(name: str, hkl) -> np.ndarray:
    """Whether reflections ``hkl`` (array (..., 3) of ints) are allowed in ``name``.

    Cubic: any signed permutation; HCP: hexagonal (h, k, l) with i = -(h+k); hex2d: any
    (h, k, 0); lamellar: (0, 0, l).
    """
    n = resolve(name)
    a = np.asarray(hkl, dtype=np.int64)
    h, k, l = a[..., 0], a[..., 1], a[..., 2]  # noqa: E741
    nonzero = (h != 0) | (k != 0) | (l != 0)
    if n in CUBIC:
        c = -np.sort(-np.abs(a), axis=-1)
        return nonzero & _cubic_allowed(n, c[..., 0], c[..., 1], c[..., 2])
    if n == "HCP":
        return nonzero & _hex_allowed(h, k, l)
    if n == "hex2d":
        return nonzero & (l == 0)
    return nonzero & (h == 0) & (k == 0)


# --------------------------------------------------------------------------- sites
def basis_positions(name: str) -> np.ndarray:
    """Occupied sites of one conventional cell, fractional coordinates (n, 3).

    Cubic cells have axes a (x, y, z); HCP hexagonal axes (see :func:`cell_vectors`).
    The bicontinuous mesophases Pn-3m and Ia-3d have no point sites: refused.
    """
    n = resolve(name)
    if n not in _BASIS:
        raise ParameterError(
            f"lattice {name!r} ({SPACE_GROUPS[n]}) is a bicontinuous network with no point sites; use SC, BCC, FCC, A15, diamond or HCP"
        )
    return np.array(_BASIS[n], dtype=float)


def sites_per_cell(name: str) -> int:
    """Number of particles in one conventional cell."""
    return len(basis_positions(name))


def cell_vectors(name: str, a_nm: float, c_over_a: float | None = None) -> np.ndarray:
    """Rows a1, a2, a3 of the conventional cell (nm). HCP: a1 = (a, 0, 0),
    a2 = (-a/2, a sqrt3/2, 0), a3 = (0, 0, c); hex2d the same in-plane with c = a."""
    n = resolve(name)
    if n in ("HCP", "hex2d"):
        c = (c_over_a or HCP_C_OVER_A) * a_nm if n == "HCP" else a_nm
        return np.array(
            [[a_nm, 0.0, 0.0], [-0.5 * a_nm, 0.5 * math.sqrt(3.0) * a_nm, 0.0], [0.0, 0.0, c]]
        )
    return np.eye(3) * a_nm


def nn_distance(name: str, a_nm: float, c_over_a: float | None = None) -> float | None:
    """Nearest-neighbour (centre-to-centre) distance: SC a, BCC a sqrt3/2, FCC a/sqrt2,
    diamond a sqrt3/4, A15 a/2, HCP a (ideal c/a; else min(a, sqrt(a^2/3 + c^2/4))),
    hex2d a, lamellar d; None for Pn-3m and Ia-3d (no point sites)."""
    n = resolve(name)
    if n == "HCP" and c_over_a is not None:
        return a_nm * min(1.0, math.sqrt(1.0 / 3.0 + 0.25 * c_over_a * c_over_a))
    f = _NN.get(n)
    return None if f is None else f * a_nm


def basis_factor(name: str, hkl) -> np.ndarray:
    """|F_basis(hkl)|^2 / n of equal point scatterers on the sites (1 for Pn-3m, Ia-3d)."""
    n = resolve(name)
    a = np.asarray(hkl, dtype=float)
    if n not in _BASIS or n in ("hex2d", "lamellar"):
        return np.ones(a.shape[:-1])
    r = np.array(_BASIS[n], dtype=float)
    ph = 2.0 * np.pi * a @ r.T
    f2 = np.cos(ph).sum(-1) ** 2 + np.sin(ph).sum(-1) ** 2
    return np.where(f2 > 1e-9, f2, 0.0) / len(r)


# --------------------------------------------------------------------------- rings
@dataclass(frozen=True)
class Family:
    """One family {hkl} of symmetry-equivalent reflections."""

    hkl: tuple[int, int, int]
    multiplicity: int
    basis_factor: float


@dataclass(frozen=True)
class Ring:
    """All allowed reflections of one |G| (one powder ring), coincident families summed.

    ``s`` = (|G| a / 2 pi)^2 (cubic: N = h^2 + k^2 + l^2); ``families`` in decreasing
    weight; ``hkl`` names the ring by its strongest family (ties: the highest indices).
    """

    lattice: str
    s: float
    families: tuple[Family, ...]
    c_over_a: float | None = None

    @property
    def hkl(self) -> tuple[int, int, int]:
        return self.families[0].hkl

    @property
    def multiplicity(self) -> int:
        """Summed multiplicity of the families with a non-zero basis factor."""
        return int(sum(f.multiplicity for f in self.families if f.basis_factor > 0))

    @property
    def basis_sum(self) -> float:
        """Sum over the ring's reflections of the basis factor (multiplicity x |F|^2 / n)."""
        return float(sum(f.multiplicity * f.basis_factor for f in self.families))

    def q_nm(self, a_nm: float) -> float:
        return 2.0 * math.pi * math.sqrt(self.s) / a_nm

    @cached_property
    def g(self) -> np.ndarray:
        """Every reflection of the ring, cartesian, in units of 2 pi / a (m, 3)."""
        return np.concatenate([_expand(self.lattice, f.hkl, self.c_over_a) for f in self.families])

    @cached_property
    def basis(self) -> np.ndarray:
        """Basis factor of each row of :attr:`g`."""
        return np.concatenate([np.full(f.multiplicity, f.basis_factor) for f in self.families])


def _signed_perms(hkl) -> set:
    out = set()
    for p in permutations(hkl):
        for sg in product((1, -1), repeat=3):
            out.add(tuple(int(s * x) for s, x in zip(sg, p)))
    return out


def _hex_family(h: int, k: int, l: int) -> set:  # noqa: E741
    """6/mmm images of hexagonal (h, k, l): permutations of (h, k, i) with sign flips, +-l."""
    i = -(h + k)
    out = set()
    for a, b, _ in permutations((h, k, i)):
        for s in (1, -1):
            for sl in (1, -1):
                out.add((s * a, s * b, sl * l))
    return out


def _cart(lattice: str, hkl: np.ndarray, c_over_a: float | None) -> np.ndarray:
    if lattice in ("HCP", "hex2d"):
        ac = 0.0 if lattice == "hex2d" else 1.0 / (c_over_a or HCP_C_OVER_A)
        h, k, l = hkl[:, 0], hkl[:, 1], hkl[:, 2]  # noqa: E741
        return np.stack([h, (h + 2 * k) / math.sqrt(3.0), l * ac], -1).astype(float)
    return hkl.astype(float)


def _expand(lattice: str, hkl, c_over_a) -> np.ndarray:
    if lattice in CUBIC:
        v = _signed_perms(hkl)
    elif lattice in ("HCP", "hex2d"):
        v = _hex_family(*hkl)
    else:
        v = {(0, 0, hkl[2]), (0, 0, -hkl[2])}
    return _cart(lattice, np.array(sorted(v), dtype=np.int64), c_over_a)


def check_s_max(name: str, s_max: float) -> None:
    """Refuse ring tables beyond :data:`MAX_S` (one line naming the likely cause)."""
    if not np.isfinite(s_max) or s_max > MAX_S:
        raise ParameterError(
            f"lattice {name}: the q range spans (q a / 2 pi)^2 up to {s_max:.3g}, more than {MAX_S:.0f} rings "
            "(a gigantic hkl table); check the q unit (nm^-1 vs A^-1 vs 2theta) or narrow the q range"
        )


@dataclass(frozen=True)
class _Table:
    """Ring table as arrays: families sorted by s; ring j holds families start[j]:start[j+1]."""

    s: np.ndarray  # per ring
    start: np.ndarray  # per ring + 1
    hkl: np.ndarray  # per family (n, 3)
    mult: np.ndarray
    bf: np.ndarray
    basis_sum: np.ndarray  # per ring


@lru_cache(maxsize=128)
def _table(name: str, bucket: float, c_over_a: float | None) -> _Table:
    # A pure memo of crystallography: results never depend on it.
    if name in CUBIC:
        hmax = math.isqrt(int(bucket)) + 1
        parts = []
        for i in range(1, hmax + 1):  # canonical h >= k >= l >= 0, one h at a time (no (2h)^3 box)
            j, m = np.tril_indices(i + 1)
            parts.append(np.stack([np.full(j.size, i), j, m]))
        h, k, l = np.concatenate(parts, axis=1).astype(np.int64)  # noqa: E741
        s = h * h + k * k + l * l
        sel = (s > 0) & (s <= bucket) & _cubic_allowed(name, h, k, l)
        hkl = np.stack([h[sel], k[sel], l[sel]], -1)
        s = s[sel].astype(float)
        # distinct signed permutations: 6/3/1 orderings x 2 per non-zero index
        e01, e12 = hkl[:, 0] == hkl[:, 1], hkl[:, 1] == hkl[:, 2]
        nperm = np.where(e01 & e12, 1, np.where(e01 | e12, 3, 6))
        mult = nperm * 2 ** np.count_nonzero(hkl, axis=1)
    elif name in ("HCP", "hex2d"):
        ac2 = 0.0 if name == "hex2d" else (1.0 / (c_over_a or HCP_C_OVER_A)) ** 2
        hm = int(math.sqrt(bucket)) + 2
        lm = int(math.sqrt(bucket / ac2)) + 1 if ac2 else 0
        # canonical: h >= k >= 0 stands for the (h, k, i) set up to 6/mmm; l >= 0
        j, m = np.tril_indices(hm + 1)
        s_hk = 4.0 / 3.0 * (j * j + j * m + m * m)
        keep = s_hk <= bucket + 1e-9
        j, m, s_hk = j[keep], m[keep], s_hk[keep]
        h = np.tile(j, lm + 1)
        k = np.tile(m, lm + 1)
        l = np.repeat(np.arange(lm + 1), j.size)  # noqa: E741
        s = np.round(np.tile(s_hk, lm + 1) + l * l * ac2, 9)
        sel = (
            ((h > 0) | (l > 0))
            & (s <= bucket + 1e-9)
            & (_hex_allowed(h, k, l) if name == "HCP" else True)
        )
        hkl = np.stack([h[sel], k[sel], l[sel]], -1)
        s = s[sel]
        hh, kk = hkl[:, 0], hkl[:, 1]
        # (0,0,l): 1; (h,0,-h) and (h,h,-2h): 6; general: 12; times 2 for +-l
        mult = np.where(hh == 0, 1, np.where((kk == 0) | (hh == kk), 6, 12)) * np.where(
            hkl[:, 2] > 0, 2, 1
        )
    elif name == "lamellar":
        n = np.arange(1, int(math.sqrt(bucket)) + 1)
        hkl = np.stack([0 * n, 0 * n, n], -1)
        s = (n * n).astype(float)
        mult = np.full(n.size, 2)
    else:
        raise ParameterError(f"lattice {name!r}: use one of {LATTICES}")
    bf = basis_factor(name, hkl) if len(hkl) else np.zeros(0)
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], -(mult * bf), s))
    s, hkl, mult, bf = s[order], hkl[order], mult[order], bf[order]
    new = np.ones(s.size, bool)
    new[1:] = np.diff(s) > 1e-9
    start = np.append(np.flatnonzero(new), s.size)
    bs = np.add.reduceat(mult * bf, start[:-1]) if s.size else np.zeros(0)
    return _Table(s[new], start, hkl, mult, bf, bs)


def _bucket(s_max: float) -> float:
    # Tables are built for the next power of two of s_max (a memo many calls share), then cut.
    return float(min(2 ** max(4, math.ceil(math.log2(max(s_max, 1.0)))), max(MAX_S, s_max)))


@lru_cache(maxsize=65536)
def _ring(name: str, bucket: float, j: int, c_over_a) -> Ring:
    # Memo: the same Ring object (and its expanded vectors) for every caller.
    t = _table(name, bucket, c_over_a)
    a, b = t.start[j], t.start[j + 1]
    fams = tuple(
        Family(tuple(int(x) for x in t.hkl[i]), int(t.mult[i]), float(t.bf[i])) for i in range(a, b)
    )
    return Ring(name, float(t.s[j]), fams, c_over_a)


def _norm(name: str, c_over_a) -> tuple[str, float | None]:
    n = resolve(name)
    ca = (
        None
        if n != "HCP" or c_over_a is None or abs(c_over_a - HCP_C_OVER_A) < 1e-12
        else float(c_over_a)
    )
    return n, ca


def rings(name: str, s_max: float, c_over_a: float | None = None) -> tuple[Ring, ...]:
    """Allowed powder rings with (q a / 2 pi)^2 <= ``s_max``, in increasing q.

    Parameters
    ----------
    name : short name or space-group symbol.
    s_max : highest (q a / 2 pi)^2; above :data:`MAX_S` refused (ParameterError).
    c_over_a : HCP only; default ideal sqrt(8/3).
    """
    n, ca = _norm(name, c_over_a)
    check_s_max(n, s_max)
    b = _bucket(s_max)
    t = _table(n, b, ca)
    m = int(np.searchsorted(t.s, s_max + 1e-9, side="right"))
    return tuple(_ring(n, b, j, ca) for j in range(m))


def ring_table(
    name: str, s_max: float, c_over_a: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(s, basis_sum) of :func:`rings` as read-only arrays (an indexer's inner loop).

    ``basis_sum`` is the summed multiplicity x |F_basis|^2 / n of each ring (0 where the
    basis extinguishes an allowed ring by accident).
    """
    n, ca = _norm(name, c_over_a)
    check_s_max(n, s_max)
    t = _table(n, _bucket(s_max), ca)
    m = int(np.searchsorted(t.s, s_max + 1e-9, side="right"))
    s, b = t.s[:m], t.basis_sum[:m]
    s.flags.writeable = False
    b.flags.writeable = False
    return s, b


def ring_s(name: str, s_max: float, c_over_a: float | None = None) -> np.ndarray:
    """The s = (q a / 2 pi)^2 of :func:`rings` (read-only array)."""
    return ring_table(name, s_max, c_over_a)[0]


def ring_positions(
    name: str, a_nm: float, q_max_nm: float, c_over_a: float | None = None
) -> np.ndarray:
    """q (nm^-1) of the allowed rings up to ``q_max_nm`` for lattice parameter ``a_nm``."""
    if not (a_nm > 0 and np.isfinite(a_nm)):
        raise ParameterError(f"lattice parameter {a_nm!r} nm: must be positive")
    s = ring_s(name, (q_max_nm * a_nm / (2.0 * math.pi)) ** 2, c_over_a)
    return 2.0 * math.pi * np.sqrt(s) / a_nm


def reflection_list(name: str, s_max: float, c_over_a: float | None = None) -> list[dict]:
    """Allowed reflections as plain records: s, hkl of each family, multiplicity, basis factor."""
    return [
        {
            "s": r.s,
            "hkl": list(r.hkl),
            "multiplicity": r.multiplicity,
            "families": [
                {"hkl": list(f.hkl), "multiplicity": f.multiplicity, "basis_factor": f.basis_factor}
                for f in r.families
            ],
        }
        for r in rings(name, s_max, c_over_a)
    ]
