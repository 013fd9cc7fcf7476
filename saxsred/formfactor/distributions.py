"""Size distributions (Gaussian, Schulz) and the size average of a form factor.

A dilute suspension scatters in proportion to <V^2 P(q)> over the number distribution of
sizes; with V ~ size^3 for every shape here, the normalised average is
<V^2 P(q e)>/<V^2> = sum_k w_k eps_k^6 P(q e0 eps_k) / sum_k w_k eps_k^6, which is 1 at
q = 0. The relative width ``polydispersity`` = sigma_e / e0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..errors import ParameterError
from .orientation import leggauss

DISTRIBUTIONS = ("gaussian", "schulz")
# Below this relative width a size distribution is treated as monodisperse: its effect
# on P is O(sigma^2) < 1e-12.
PD_MONO = 1e-6


def pdf(eps: np.ndarray, sig: float, distribution: str) -> np.ndarray:
    """Unnormalised number density of relative sizes eps = e/e0.

    ``"gaussian"``: exp(-(eps - 1)^2 / 2 sig^2); ``"schulz"``: eps^(z-1) exp(-z eps),
    z = 1/sig^2 (as in sasmodels).
    """
    if distribution == "gaussian":
        return np.exp(-0.5 * ((eps - 1.0) / sig) ** 2)
    from scipy.special import gammaln

    z = 1.0 / (sig * sig)
    return np.exp(z * np.log(z) + (z - 1.0) * np.log(eps) - eps * z - gammaln(z))


def check_distribution(distribution: str) -> str:
    """``distribution`` if it is known; :class:`ParameterError` naming the choices otherwise."""
    if distribution not in DISTRIBUTIONS:
        raise ParameterError(
            f"distribution {distribution!r}: choose one of {', '.join(DISTRIBUTIONS)}"
        )
    return distribution


def size_nodes(
    polydispersity: float,
    distribution: str = "gaussian",
    x_max: float = 30.0,
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Relative sizes eps = e/e0 and weights w (sum 1) of the number distribution.

    Parameters
    ----------
    polydispersity : float
        Relative standard deviation sigma_e / e0.
    distribution : str
        ``"gaussian"`` (truncated at e > 0) or ``"schulz"``.
    x_max : float
        The largest q * e0 to be evaluated; sets the default number of nodes so that the
        oscillations of P(q e) across the distribution are resolved.
    size_points, size_nsigma : int, float, optional
        With ``size_nsigma`` set, sasmodels' rule: ``size_points`` (default 35) equally
        spaced sizes over +/- size_nsigma sigma weighted by the pdf. Otherwise
        Gauss-Legendre with ``size_points`` nodes (default adaptive) over the whole
        distribution, wide enough for the V^2 = e^6 weighted tail (converged to 1e-4).

    Returns
    -------
    eps, w : arrays
    """
    sig = float(polydispersity)
    check_distribution(distribution)
    if not (sig >= 0 and math.isfinite(sig)):
        raise ParameterError(f"polydispersity {polydispersity!r}: must be >= 0 (relative width)")
    if sig < PD_MONO:
        return np.ones(1), np.ones(1)
    if size_nsigma is not None:
        n = int(size_points or 35)
        eps = 1.0 + sig * np.linspace(-size_nsigma, size_nsigma, n)
        eps = eps[eps > 0]
        p = pdf(eps, sig, distribution)
    else:
        if distribution == "gaussian":
            lo, hi = max(1.0 - 7.0 * sig, 1e-3), 1.0 + 8.0 * sig
        else:
            from scipy.stats import gamma

            # Quantiles of the V^2-weighted Schulz (a gamma with shape z + 6, z = 1/sig^2).
            z = 1.0 / (sig * sig)
            lo = float(gamma.ppf(1e-12, z + 6.0, scale=1.0 / z))
            hi = float(gamma.ppf(1.0 - 1e-12, z + 6.0, scale=1.0 / z))
            lo = max(lo, 1e-3)
        n = int(size_points or (24 + math.ceil(0.75 * max(x_max, 1.0) * (hi - lo))))
        z, w = leggauss(n)
        eps = lo + (hi - lo) * 0.5 * (z + 1.0)
        p = w * pdf(eps, sig, distribution)
    p = p / p.sum()
    return eps, p


def size_average(
    pfun: Callable[[np.ndarray], np.ndarray],
    q: np.ndarray,
    size: float,
    polydispersity: float,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """<V^2 P(q e)>/<V^2> over the size distribution (V ~ e^3 for every shape here).

    Parameters
    ----------
    pfun : callable
        P(x), x = q * size.
    q : array
        q (nm^-1).
    size : float
        Mean size (nm).
    polydispersity, distribution, size_points, size_nsigma
        See :func:`size_nodes`.
    """
    q = np.asarray(q, dtype=float)
    if 0 <= polydispersity < PD_MONO:
        return pfun(q * size)
    xmax = float(np.max(np.abs(q))) * size if q.size else 1.0
    eps, w = size_nodes(polydispersity, distribution, xmax, size_points, size_nsigma)
    wv = w * eps**6
    wv = wv / wv.sum()
    x = np.multiply.outer(q.ravel() * size, eps)
    return (pfun(x) @ wv).reshape(q.shape)


def moments(polydispersity: float, distribution: str = "gaussian") -> tuple[float, float]:
    """<eps^6> and <eps^3> of the number distribution (what turns <V^2>/<V> into e0^3)."""
    eps, w = size_nodes(polydispersity, distribution, 1.0)
    return float(w @ eps**6), float(w @ eps**3)
