"""Cube of edge e, orientation-averaged (the nanocubes of the paper).

Oriented along x, y, z the normalised amplitude is F/V = prod_i sinc(q_i e / 2); its
orientation average P(x) = (1/4 pi) int dOmega |F/V|^2 depends on x = q e alone and has
no closed form (SCIENCE.md section 3): minima at x = 7.16, 12.97, 19.26, 25.42, Guinier
exp(-x^2/12), Porod 12 pi / x^4. P(x) is tabulated once (0.1 s) and interpolated, which
makes size averages and fits fast (:mod:`saxsred.formfactor.orientation`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ...errors import ParameterError
from ..orientation import PTable, build_table, sinc
from . import Parameter

name = "cube"
title = "Cube of edge e, orientation-averaged"
description = __doc__
parameters = (Parameter("edge", "nm", 9.5, (0.0, math.inf), "cube edge e", "size"),)
derived: tuple[str, ...] = ()
# Extent of the table in x = q e; beyond it Porod's law with fitted interference terms.
TABLE_X_MAX = 120.0
# First minimum of P(x) (SCIENCE.md section 3: 7.16; direct quadrature gives 7.16032).
FIRST_MINIMUM_X = 7.16032
# Own test values: sasmodels 1.1 ``rectangular_prism`` (b2a = c2a = 1), compiled double
# precision, divided by 1e-4 V (sld 1, solvent 0).
tests = [
    ({}, 1.0, 0.9196567407),
    ({}, 3.0, 0.4549114917),
    ({}, 7.16, 0.002916865359),
    ({}, 12.97, 0.000295583675),
    ({}, 19.26, 6.115315524e-05),
]


@lru_cache(maxsize=1)
def table() -> PTable:
    """The cube's P(x) table (deterministic; built on first use, ~0.1 s)."""
    return build_table(None, TABLE_X_MAX)


def p_function() -> PTable:
    """P(x), x = q e: the tabulated orientation average."""
    return table()


def amplitude_oriented(qvec_nm, edge_nm: float) -> np.ndarray:
    """Normalised amplitude F(q)/V of a cube aligned with the x, y, z axes.

    F/V = prod_i sinc(q_i e / 2), so F(0) = 1 and |F|^2 weights a Bragg reflection of
    cubes aligned with their lattice (SCIENCE.md section 4).

    Parameters
    ----------
    qvec_nm : array (..., 3)
        Scattering vectors in nm^-1.
    edge_nm : float
        Cube edge e (nm).

    Returns
    -------
    array (...) of F/V.

    Example
    -------
    >>> float(amplitude_oriented([0.0, 0.0, 0.0], 9.5))
    1.0
    """
    q = np.asarray(qvec_nm, dtype=float)
    if q.shape[-1] != 3:
        raise ParameterError(f"qvec_nm has shape {q.shape}: the last axis must hold (qx, qy, qz)")
    return np.prod(sinc(q * (0.5 * float(edge_nm))), axis=-1)


def volume(size: float) -> float:
    """e^3 (nm^3)."""
    return size**3


def radius_of_gyration(size: float) -> float:
    """Rg = e/2 (Rg^2 = 3 e^2/12)."""
    return 0.5 * size


def derived_values(size: float) -> dict[str, float]:
    """No derived lengths: the edge is the report."""
    return {}


def first_minimum_x() -> float:
    """x = q e of the first minimum of P."""
    return FIRST_MINIMUM_X


def fast_x_max() -> float:
    """Every x is fast (table, then the fitted asymptote)."""
    return math.inf
