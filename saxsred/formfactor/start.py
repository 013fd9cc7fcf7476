"""Start values of a form-factor fit without user input.

A Guinier fit (through the shape's radius of gyration) and the first minimum of q^4 I
(through the shape's P(x)) each give a size; a coarse grid search over size and
polydispersity around them, with scale and background solved linearly, picks the start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import FitError
from .distributions import size_average
from .shapes import find_first_minimum, size_parameter


def linear_scale_background(
    p: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[float, float, float]:
    """Weighted least squares y ~ scale * p + background; returns scale, background, chi2.

    A non-positive scale is no particle scattering: (0, 0, inf).
    """
    a = np.stack([p * w, w], axis=1)
    sol, *_ = np.linalg.lstsq(a, y * w, rcond=None)
    scale, bkg = float(sol[0]), float(sol[1])
    if scale <= 0:
        return 0.0, 0.0, math.inf
    r = (scale * p + bkg - y) * w
    return scale, bkg, float(r @ r)


def guinier_size(
    q: np.ndarray, y: np.ndarray, shape: ModuleType, params: Mapping[str, float]
) -> float | None:
    """Size from a Guinier fit ln I = ln I0 - (q Rg)^2/3 over q Rg < 1.2 (iterated),
    turned into the shape's size through its ``radius_of_gyration``."""
    ok = y > 0
    q, y = q[ok], y[ok]
    if q.size < 5:
        return None
    n = max(5, q.size // 10)
    rg = None
    for _ in range(6):
        sel = slice(0, n) if rg is None else q * rg < 1.2
        qq, yy = q[sel], y[sel]
        if qq.size < 4:
            break
        slope = np.polyfit(qq * qq, np.log(yy), 1)[0]
        if not slope < 0:
            return None
        rg = math.sqrt(-3.0 * slope)
    if rg is None:
        return None
    return rg / shape.radius_of_gyration(1.0, **params)


@lru_cache(maxsize=16)
def porod_minimum_x(shape: ModuleType, items: tuple[tuple[str, float], ...]) -> float | None:
    """x of the first minimum of x^4 P(x): where a q^4 I plot dips first (cube 7.04,
    where P itself has 7.16)."""
    params = dict(items)
    x_max = min(40.0, 0.95 * shape.fast_x_max(**params))
    return find_first_minimum(shape.p_function(**params), 4.0, x_max)


def first_minimum_size(
    q: np.ndarray, y: np.ndarray, shape: ModuleType, params: Mapping[str, float]
) -> float | None:
    """Size from the first local minimum of q^4 I (smoothed): x_min / q_min."""
    if q.size < 15:
        return None
    ok = y > 0
    if ok.sum() < 15:
        return None
    lq, ly = np.log(q[ok]), np.log(y[ok] * q[ok] ** 4)
    grid = np.linspace(lq[0], lq[-1], 200)
    g = np.interp(grid, lq, ly)
    k = 7
    sm = np.convolve(np.pad(g, k, mode="edge"), np.ones(2 * k + 1) / (2 * k + 1), mode="same")[k:-k]
    interior = np.flatnonzero((sm[1:-1] < sm[:-2]) & (sm[1:-1] <= sm[2:])) + 1
    for i in interior:
        if i < 10 or i > grid.size - 10:
            continue
        if sm[max(0, i - 25) : i].max() - sm[i] > 0.05:
            xm = porod_minimum_x(shape, tuple(sorted(params.items())))
            return None if xm is None else xm / math.exp(grid[i])
    return None


def initial_values(
    q: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    shape: ModuleType,
    params: Mapping[str, float],
    distribution: str,
) -> dict[str, Any]:
    """Start values: Guinier and first-minimum sizes refined by a coarse grid search.

    Parameters
    ----------
    q, y, w : arrays
        q (nm^-1), intensity and weights (1/sigma) of the fit range.
    shape : module
        A registered shape module; ``params`` its fixed parameters.
    distribution : str
        Size distribution.

    Returns
    -------
    dict with ``<size>_nm``, ``polydispersity``, ``scale``, ``background`` and the two
    size estimates ``guinier_<size>_nm``, ``first_minimum_<size>_nm`` (None when not found).
    """
    size = size_parameter(shape).name
    guinier = guinier_size(q, y, shape, params)
    minimum = first_minimum_size(q, y, shape, params)
    lo, hi = 1.0 / q.max(), 25.0 / max(q.min(), q.max() / 500.0)
    hi = min(hi, 0.95 * shape.fast_x_max(**params) / q.max())  # stay where P is fast
    grid = list(np.geomspace(lo, hi, 60))
    for s in (guinier, minimum):
        if s and lo / 3 < s < hi * 3:
            grid += list(s * np.geomspace(0.8, 1.25, 9))
    pfun = shape.p_function(**params)
    best = (math.inf, None, None, None, None)
    for e in grid:
        for pd in (0.04, 0.1, 0.2):
            p = size_average(pfun, q, e, pd, distribution, 24, None)
            sc, bk, chi2 = linear_scale_background(p, y, w)
            if chi2 < best[0]:
                best = (chi2, e, pd, sc, bk)
    if best[1] is None:
        raise FitError(
            "no start values: the data cannot be described by a positive form factor "
            "plus background; check the q range and the solvent subtraction"
        )
    return {
        f"{size}_nm": best[1],
        "polydispersity": best[2],
        "scale": best[3],
        "background": best[4],
        f"guinier_{size}_nm": guinier,
        f"first_minimum_{size}_nm": minimum,
    }
