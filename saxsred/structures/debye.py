"""Debye scattering of point centres through a pair-distance histogram.

I(q) = sum_jk sin(q r_jk)/(q r_jk) = N + 2 sum_{j<k} sinc(q r_jk). The N(N-1)/2 distances
are histogrammed once (numba, ``prange`` over balanced row pairs, one histogram per chunk)
with the count **and the mean r** of each bin, and every bin is evaluated at its mean
distance r_b:

    I(q) = N + 2 sum_b n_b sinc(q r_b).

Accuracy, "exact to the histogram bin": a bin whose pairs share one distance (every
shell of a perfect lattice narrower than the bin) is exact. Otherwise the error is the
second-order term of sinc about the bin's mean, (q^2/2) var_b(r) sinc''(q r_b): with
var_b <= dr^2/12 for a uniformly filled bin (dr^2/4 at worst) and |sinc''| <= about the
size of sinc itself at q r >> 1, the relative error per term is about (q dr)^2/24
(at worst (q dr)^2/8). The default bin is dr = 0.05 / q_max: (q dr)^2/24 <= 1.0e-4.
The mean r is kept to dr / 2^(b+1) (b >= 8 sub-bin bits, 15-16 at the sizes we run):
a first-order error q dr 2^-(b+1) <= 4e-7 per term at the default bin, far below it.

Cost: the N(N-1)/2 distances, computed in a loop that vectorises like the bare distance
loop, plus one integer add per pair into a packed int64 word per bin (count and sum of
sub-bin offsets: :func:`saxsred.structures._kernels.pair_histogram`); then 2 sines per
bin and one complex rotation per bin and q on a uniform q grid (``benchmarks/scatter.py``
measures the ratio to the bare distance loop).
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


def _pack_bits(nbins: int) -> int:
    """Sub-bin offset bits of the packed histogram: nbins * 2^bits <= 2^31, at most 16."""
    return min(16, 31 - max(1, math.ceil(math.log2(max(nbins, 2)))))


def pair_distance_histogram(positions_nm, bin_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair distances of ``positions_nm`` (N, 3): (mean r of each non-empty bin, pair count).

    The mean is exact to dr / 2^(b+1) (b = 16 sub-bin bits up to 32,768 bins, one bit
    fewer per doubling: 15 for the 36,000 bins of N = 100,000 cubes at the default bin);
    above 2^23 bins or N, a float64 fused loop keeps sum r exactly (slower).
    """
    pos = np.ascontiguousarray(np.asarray(positions_nm, float).reshape(-1, 3))
    if not (bin_nm > 0 and math.isfinite(bin_nm)):
        raise ParameterError(f"histogram bin {bin_nm!r} nm: must be positive")
    if len(pos) < 2:
        return np.zeros(0), np.zeros(0)
    if not np.all(np.isfinite(pos)):
        raise ParameterError("positions must be finite")
    span = pos.max(axis=0) - pos.min(axis=0)
    nbins = int(math.sqrt(float(np.sum(span * span))) / bin_nm) + 2
    n = len(pos)
    bits = _pack_bits(nbins)
    if bits >= 8 and n < 2**22:
        flush = max(1, 2**23 // n)
        cnt, off = K.pair_histogram(pos, 1.0 / bin_nm, nbins, n_chunks(), bits, flush)
        cnt = cnt.sum(axis=0)
        ok = cnt > 0
        # +0.5: the offsets were truncated to whole sub-bins
        frac = (off.sum(axis=0)[ok] / cnt[ok] + 0.5) / float(1 << bits)
        return (np.nonzero(ok)[0] + frac) * bin_nm, cnt[ok]
    cnt, rs = K.pair_histogram_float(pos, 1.0 / bin_nm, nbins, n_chunks())
    cnt = cnt.sum(axis=0)
    rs = rs.sum(axis=0)
    ok = cnt > 0
    return rs[ok] / cnt[ok], cnt[ok]


def uniform_step(q: np.ndarray) -> float | None:
    """The step of a uniform grid (to 1e-9 of the step), else None."""
    if q.size < 2:
        return None
    step = (q[-1] - q[0]) / (q.size - 1)
    grid = q[0] + step * np.arange(q.size)
    # the rotation sum evaluates q0 + k step: a phase error |dq| r below 1e-12 q_max r
    if step > 0 and np.all(np.abs(q - grid) <= 1e-12 * max(abs(q[-1]), abs(q[0]))):
        return float(step)
    return None


def histogram_sums(q: np.ndarray, r: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum_b n_b sinc(q r_b), sum_b n_b |sinc(q r_b)|): by complex rotation on a uniform grid."""
    step = uniform_step(q)
    if step is not None and r.size:
        return K.debye_sum_uniform(float(q[0]), step, q.size, r, n, n_chunks())
    return K.debye_sum(q, r, n, False), K.debye_sum(q, r, n, True)


def _checked_q(q_nm) -> np.ndarray:
    q = np.ascontiguousarray(np.asarray(q_nm, float).ravel())
    if q.size and (np.any(q < 0) or not np.all(np.isfinite(q))):
        raise ParameterError("q must be finite and >= 0")
    return q


def debye_intensity(positions_nm, q_nm, bin_nm: float | None = None) -> np.ndarray:
    """I(q) = sum_jk sinc(q r_jk) of point scatterers by the pair-distance histogram.

    Parameters
    ----------
    positions_nm : (N, 3) centres (nm).
    q_nm : q values (nm^-1); a uniform grid takes the fast rotation sum.
    bin_nm : histogram bin dr (nm); default 0.05 / max(q): relative error per term about
        (q dr)^2/24 <= 1e-4 (module docstring).

    Example
    -------
    >>> debye_intensity([[0, 0, 0], [0, 0, 1.0]], [0.0, math.pi])   # N + 2 sinc(q r)
    array([4., 2.])
    """
    return debye_intensity_with_error(positions_nm, q_nm, bin_nm)[0]


def debye_intensity_with_error(
    positions_nm, q_nm, bin_nm: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`debye_intensity` and its stated error (q dr)^2/24 x (N + 2 sum_b n_b |sinc(q r_b)|)."""
    q = _checked_q(q_nm)
    pos = np.asarray(positions_nm, float).reshape(-1, 3)
    if q.size == 0:
        return np.zeros(0), np.zeros(0)
    qmax = float(q.max())
    if bin_nm is None:
        bin_nm = DEFAULT_QDR / qmax if qmax > 0 else 1.0
    r, n = pair_distance_histogram(pos, bin_nm)
    s, sa = histogram_sums(q, r, n)
    i = len(pos) + 2.0 * s
    err = histogram_accuracy(q, bin_nm) * (len(pos) + 2.0 * sa)
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
