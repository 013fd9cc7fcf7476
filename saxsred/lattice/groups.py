"""Space groups: names, reflection conditions, bases, cells and nearest neighbours."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError

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
def cubic_allowed(name: str, h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
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


def hex_allowed(h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:  # noqa: E741
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
        return nonzero & cubic_allowed(n, c[..., 0], c[..., 1], c[..., 2])
    if n == "HCP":
        return nonzero & hex_allowed(h, k, l)
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

__all__ = [
    "CUBIC",
    "HCP_C_OVER_A",
    "LATTICES",
    "MAX_S",
    "SPACE_GROUPS",
    "allowed",
    "basis_factor",
    "basis_positions",
    "cell_vectors",
    "cubic_allowed",
    "dimension",
    "hex_allowed",
    "nn_distance",
    "resolve",
    "sites_per_cell",
    "space_group",
]
