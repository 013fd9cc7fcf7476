"""Debye scattering of point centres through a pair-distance histogram.

I(q) = sum_jk sin(q r_jk)/(q r_jk) = N + 2 sum_{j<k} sinc(q r_jk). The N(N-1)/2 distances
are histogrammed once (numba, ``prange`` over balanced row pairs, one histogram per chunk)
with the count **and the sum of r** of each bin, and every bin is evaluated at its mean
distance r_b:

    I(q) = N + 2 sum_b n_b sinc(q r_b).

Accuracy, "exact to the histogram bin": a bin whose pairs share one distance (every
shell of a perfect lattice narrower than the bin) is exact. Otherwise the error is the
second-order term of sinc about the bin's mean, (q^2/2) var_b(r) sinc''(q r_b): with
var_b <= dr^2/12 for a uniformly filled bin (dr^2/4 at worst) and |sinc''| <= about the
size of sinc itself at q r >> 1, the relative error per term is about (q dr)^2/24
(at worst (q dr)^2/8). The default bin is dr = 0.05 / q_max: (q dr)^2/24 <= 1.0e-4.
The cost is the N(N-1)/2 distances plus n_bins x n_q sines; the histogram adds two
adds per pair to the bare distance loop (``benchmarks/scatter.py`` measures the ratio).
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_num_threads

from ..errors import ParameterError
from . import _kernels as K

#: default histogram bin: dr = DEFAULT_QDR / q_max, (q dr)^2/24 <= 1.04e-4 at q_max
DEFAULT_QDR = 0.05


def n_chunks() -> int:
    return max(1, 4 * get_num_threads())


def pair_distance_histogram(positions_nm, bin_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair distances of ``positions_nm`` (N, 3): (mean r of each non-empty bin, pair count)."""
    pos = np.ascontiguousarray(np.asarray(positions_nm, float).reshape(-1, 3))
    if not (bin_nm > 0 and math.isfinite(bin_nm)):
        raise ParameterError(f"histogram bin {bin_nm!r} nm: must be positive")
    if len(pos) < 2:
        return np.zeros(0), np.zeros(0)
    span = pos.max(axis=0) - pos.min(axis=0)
    nbins = int(math.sqrt(float(np.sum(span * span))) / bin_nm) + 2
    cnt, rs = K.pair_histogram(pos, 1.0 / bin_nm, nbins, n_chunks())
    cnt = cnt.sum(axis=0)
    rs = rs.sum(axis=0)
    ok = cnt > 0
    return rs[ok] / cnt[ok], cnt[ok]


def debye_intensity(positions_nm, q_nm, bin_nm: float | None = None) -> np.ndarray:
    """I(q) = sum_jk sinc(q r_jk) of point scatterers by the pair-distance histogram.

    Parameters
    ----------
    positions_nm : (N, 3) centres (nm).
    q_nm : q values (nm^-1).
    bin_nm : histogram bin dr (nm); default 0.05 / max(q): relative error per term about
        (q dr)^2/24 <= 1e-4 (module docstring).

    Example
    -------
    >>> debye_intensity([[0, 0, 0], [0, 0, 1.0]], [0.0, math.pi])   # N + 2 sinc(q r)
    array([4., 2.])
    """
    q = np.ascontiguousarray(np.asarray(q_nm, float).ravel())
    pos = np.asarray(positions_nm, float).reshape(-1, 3)
    if q.size == 0:
        return np.zeros(0)
    if np.any(q < 0) or not np.all(np.isfinite(q)):
        raise ParameterError("q must be finite and >= 0")
    qmax = float(q.max())
    if bin_nm is None:
        bin_nm = DEFAULT_QDR / qmax if qmax > 0 else 1.0
    r, n = pair_distance_histogram(pos, bin_nm)
    return len(pos) + 2.0 * K.debye_sum(q, r, n, False)


def debye_intensity_with_error(
    positions_nm, q_nm, bin_nm: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`debye_intensity` and its stated error (q dr)^2/24 x (N + 2 sum_b n_b |sinc(q r_b)|)."""
    q = np.ascontiguousarray(np.asarray(q_nm, float).ravel())
    pos = np.asarray(positions_nm, float).reshape(-1, 3)
    qmax = float(q.max()) if q.size else 0.0
    if bin_nm is None:
        bin_nm = DEFAULT_QDR / qmax if qmax > 0 else 1.0
    r, n = pair_distance_histogram(pos, bin_nm)
    i = len(pos) + 2.0 * K.debye_sum(q, r, n, False)
    err = histogram_accuracy(q, bin_nm) * (len(pos) + 2.0 * K.debye_sum(q, r, n, True))
    return i, err


def structure_factor(positions_nm, q_nm, bin_nm: float | None = None) -> np.ndarray:
    """S(q) = I(q)/N of the centres alone (Debye; S -> N as q -> 0 for a finite cluster)."""
    pos = np.asarray(positions_nm, float).reshape(-1, 3)
    if len(pos) == 0:
        raise ParameterError("no particles: S(q) is undefined")
    return debye_intensity(pos, q_nm, bin_nm) / len(pos)


def histogram_accuracy(q_nm, bin_nm: float) -> np.ndarray:
    """Stated relative error per term, (q dr)^2 / 24 (uniformly filled bins)."""
    return (np.asarray(q_nm, float) * bin_nm) ** 2 / 24.0
