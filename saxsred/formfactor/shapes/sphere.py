"""Homogeneous sphere of diameter d (radius R = d/2).

P(x) = [3 (sin u - u cos u) / u^3]^2 with u = q R = x/2, x = q d (Rayleigh 1911; Guinier
and Fournet 1955): zeros at q R = 4.4934, 7.7253, 10.9041, Rg^2 = 3 R^2 / 5. The size
parameter is the diameter, so that x = q * size is comparable to a cube's q e; the radius
is reported beside it.
"""

from __future__ import annotations

import math

import numpy as np

from . import Parameter

name = "sphere"
title = "Sphere of diameter d"
description = __doc__
parameters = (
    Parameter("diameter", "nm", 10.0, (0.0, math.inf), "sphere diameter d = 2 R", "size"),
)
derived = ("radius",)
# First zero of j1: tan u = u at u = 4.493409 (u = q R), i.e. x = q d = 8.986818.
FIRST_MINIMUM_X = 2.0 * 4.493409457909064
# Own test values: sasmodels 1.1 ``sphere`` (radius d/2), compiled double precision,
# divided by 1e-4 V (sld 1, solvent 0); x = q d.
tests = [
    ({}, 1.0, 0.9510583078),
    ({}, 3.0, 0.6278120909),
    ({}, 5.0, 0.2494558835),
    ({}, 10.0, 0.00325511839),
    ({}, 12.0, 0.007038364542),
]


def p_of_x(x) -> np.ndarray:
    """P(x), x = q d: [3 (sin u - u cos u)/u^3]^2, u = x/2, Taylor series below u = 0.05
    (where the difference cancels)."""
    u = 0.5 * np.abs(np.asarray(x, dtype=float))
    small = u < 0.05
    us = np.where(small, 1.0, u)
    f = 3.0 * (np.sin(us) - us * np.cos(us)) / us**3
    u2 = u * u
    fs = 1.0 - u2 / 10.0 + u2 * u2 / 280.0 - u2**3 / 15120.0
    f = np.where(small, fs, f)
    return f * f


def p_function():
    """P(x), x = q d (closed form)."""
    return p_of_x


def volume(size: float) -> float:
    """pi d^3 / 6 (nm^3)."""
    return math.pi / 6.0 * size**3


def radius_of_gyration(size: float) -> float:
    """Rg = sqrt(3/5) d/2."""
    return math.sqrt(3.0 / 5.0) * 0.5 * size


def derived_values(size: float) -> dict[str, float]:
    """The radius d/2 (nm)."""
    return {"radius": 0.5 * size}


def first_minimum_x() -> float:
    """x = q d of the first zero of P."""
    return FIRST_MINIMUM_X


def fast_x_max() -> float:
    """Closed form: every x is fast."""
    return math.inf
