"""Rectangular prism (parallelepiped) a x b x c, orientation-averaged.

Oriented along x, y, z: F/V = sinc(q_x a/2) sinc(q_y b/2) sinc(q_z c/2); the orientation
average over one octant depends on x = q a for fixed edge ratios b/a and c/a, so one
table per aspect ratio is built on first use (sasmodels' ``rectangular_prism`` and
``parallelepiped`` compute the same average; Mittelbach and Porod 1961). Rg^2 =
(a^2 + b^2 + c^2)/12. The edge ratios are held fixed in fits; polydispersity scales all
three edges together (as sasmodels' ``length_a_pd``).
"""

from __future__ import annotations

import math
from functools import lru_cache

from ..orientation import PTable, build_table
from . import Parameter, find_first_minimum
from .cube import table as cube_table

name = "prism"
title = "Rectangular prism a x b x c, orientation-averaged"
description = __doc__
parameters = (
    Parameter(
        "edge", "nm", 9.5, (0.0, math.inf), "edge a (b and c follow from the ratios)", "size"
    ),
    Parameter("b2a_ratio", "", 1.0, (0.0, math.inf), "edge ratio b/a (fixed)", "shape"),
    Parameter("c2a_ratio", "", 1.0, (0.0, math.inf), "edge ratio c/a (fixed)", "shape"),
)
derived = ("edge_b", "edge_c")
# Table extent in units of the largest edge: x * max(1, b/a, c/a) <= 60.
TABLE_X_MAX = 60.0
# Own test values: sasmodels 1.1 ``rectangular_prism`` with b2a = 1.5, c2a = 2, compiled
# double precision, divided by 1e-4 V (sld 1, solvent 0); x = q a.
tests = [
    ({"b2a_ratio": 1.5, "c2a_ratio": 2.0}, 1.0, 0.8168298944),
    ({"b2a_ratio": 1.5, "c2a_ratio": 2.0}, 3.0, 0.1564921053),
    ({"b2a_ratio": 1.5, "c2a_ratio": 2.0}, 7.16, 0.002603378479),
    ({"b2a_ratio": 1.5, "c2a_ratio": 2.0}, 12.97, 6.519395362e-05),
    ({"b2a_ratio": 1.5, "c2a_ratio": 2.0}, 19.26, 4.437279434e-05),
]


@lru_cache(maxsize=8)
def table(b2a_ratio: float, c2a_ratio: float) -> PTable:
    """P(x) table of one aspect ratio (built on first use)."""
    aspect = (b2a_ratio, c2a_ratio)
    return build_table(aspect, TABLE_X_MAX / max(1.0, *aspect))


def p_function(b2a_ratio: float = 1.0, c2a_ratio: float = 1.0) -> PTable:
    """P(x), x = q a; the cube's table when b = c = a."""
    if (b2a_ratio, c2a_ratio) == (1.0, 1.0):
        return cube_table()
    return table(float(b2a_ratio), float(c2a_ratio))


def volume(size: float, b2a_ratio: float = 1.0, c2a_ratio: float = 1.0) -> float:
    """a b c (nm^3)."""
    return size**3 * b2a_ratio * c2a_ratio


def radius_of_gyration(size: float, b2a_ratio: float = 1.0, c2a_ratio: float = 1.0) -> float:
    """Rg = sqrt((a^2 + b^2 + c^2)/12)."""
    return size * math.sqrt((1.0 + b2a_ratio**2 + c2a_ratio**2) / 12.0)


def derived_values(size: float, b2a_ratio: float = 1.0, c2a_ratio: float = 1.0) -> dict[str, float]:
    """Edges b and c (nm)."""
    return {"edge_b": size * b2a_ratio, "edge_c": size * c2a_ratio}


@lru_cache(maxsize=8)
def first_minimum_x(b2a_ratio: float = 1.0, c2a_ratio: float = 1.0) -> float | None:
    """x = q a of the first minimum of P, found on the table (None if washed out)."""
    return find_first_minimum(
        p_function(b2a_ratio, c2a_ratio), 0.0, 0.95 * fast_x_max(b2a_ratio, c2a_ratio)
    )


def fast_x_max(b2a_ratio: float = 1.0, c2a_ratio: float = 1.0) -> float:
    """The table's extent; beyond it the exact quadrature is slow."""
    return TABLE_X_MAX / max(1.0, b2a_ratio, c2a_ratio)
