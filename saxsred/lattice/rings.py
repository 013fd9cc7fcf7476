"""Powder rings: the allowed reflections of a space group grouped by (q a / 2 pi)^2."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import permutations, product

import numpy as np

from ..errors import ParameterError
from .groups import (
    CUBIC,
    HCP_C_OVER_A,
    LATTICES,
    MAX_S,
    basis_factor,
    cubic_allowed,
    hex_allowed,
    resolve,
)


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
        sel = (s > 0) & (s <= bucket) & cubic_allowed(name, h, k, l)
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
            & (hex_allowed(h, k, l) if name == "HCP" else True)
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


class RingSequence(Sequence):
    """The rings of :func:`rings`, each built only when asked for (the indexer's inner
    loop touches a few of hundreds)."""

    def __init__(self, name: str, s_max: float, c_over_a: float | None = None):
        n, ca = _norm(name, c_over_a)
        check_s_max(n, s_max)
        self._key = (n, _bucket(s_max))
        self._ca = ca
        t = _table(n, self._key[1], ca)
        self._m = int(np.searchsorted(t.s, s_max + 1e-9, side="right"))

    def __len__(self) -> int:
        return self._m

    def __getitem__(self, j):
        if isinstance(j, slice):
            return tuple(self[i] for i in range(*j.indices(self._m)))
        if j < 0:
            j += self._m
        if not 0 <= j < self._m:
            raise IndexError(j)
        return _ring(self._key[0], self._key[1], int(j), self._ca)


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


__all__ = [
    "Family",
    "Ring",
    "RingSequence",
    "check_s_max",
    "reflection_list",
    "ring_positions",
    "ring_s",
    "ring_table",
    "rings",
]
