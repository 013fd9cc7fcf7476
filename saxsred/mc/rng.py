"""Random numbers inside the numba kernels: xoshiro256** on a caller-owned state.

The random stream is xoshiro256** (Blackman & Vigna 2018) on a ``uint64[4]`` state
that the caller owns, seeded by splitmix64: a run is reproducible bit for bit and no
hidden global generator is touched. Also uniform directions and Haar-uniform rotations
(unit quaternions ``(w, x, y, z)``, HOOMD order).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def rng_seed(seed: int) -> np.ndarray:
    """xoshiro256** state from an integer seed (splitmix64 expansion)."""
    s = np.empty(4, dtype=np.uint64)
    z = np.uint64(seed & 0xFFFFFFFFFFFFFFFF)
    for k in range(4):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        s[k] = x ^ (x >> np.uint64(31))
    return s


@njit(cache=True, inline="always")
def rng_next(s):
    s0 = s[0]
    s1 = s[1]
    s2 = s[2]
    s3 = s[3]
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    s[0] = s0
    s[1] = s1
    s[2] = s2
    s[3] = s3
    return result


@njit(cache=True, inline="always")
def rng_uniform(s) -> float:
    """Uniform double in [0, 1) from the top 53 bits."""
    return float(rng_next(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def rng_uniform_array(s, n):
    """``n`` uniforms from state ``s`` (used by tests of the stream)."""
    out = np.empty(n)
    for k in range(n):
        out[k] = rng_uniform(s)
    return out


@njit(cache=True, inline="always")
def random_unit_vector(s):
    # Archimedes: z uniform in [-1, 1] and phi uniform give a uniform direction.
    z = 2.0 * rng_uniform(s) - 1.0
    phi = 2.0 * math.pi * rng_uniform(s)
    r = math.sqrt(max(0.0, 1.0 - z * z))
    return r * math.cos(phi), r * math.sin(phi), z


@njit(cache=True, inline="always")
def gauss(s):
    u1 = 1.0 - rng_uniform(s)
    u2 = rng_uniform(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@njit(cache=True)
def random_quat(s, q):
    # a normalised 4-D Gaussian is uniform on S^3, i.e. Haar-uniform on SO(3)
    nrm = 0.0
    for m in range(4):
        q[m] = gauss(s)
        nrm += q[m] * q[m]
    nrm = 1.0 / math.sqrt(nrm)
    for m in range(4):
        q[m] *= nrm
