"""The forward model: size-averaged form factors of any registered shape, the dilute
suspension's intensity with resolution smearing, and absolute units.

Normalisation (absolute units). A dilute suspension of volume fraction phi and
scattering-length-density contrast drho scatters
``I(q) = phi drho^2 <V^2 P(q)> / <V> + background``, so ``I(0) = phi drho^2 <V^2>/<V>``
(:func:`forward_intensity_cm`). :func:`dilute_intensity` writes the same thing as
``scale * <V^2 P>/<V^2> + background``: ``scale`` is I(0) above background, in the unit
of the data; with data in cm^-1, :func:`volume_fraction` turns a fitted scale back into
phi for a given contrast.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from ..errors import ParameterError
from .distributions import moments, size_average
from .shapes import get_shape, shape_parameters

# 1 (1e-6 A^-2) = 1e10 cm^-2; nm^3 = 1e-21 cm^3.
SLD_UNIT_CM2 = 1.0e10
NM3_CM3 = 1.0e-21


def check_size(name: str, value: float) -> float:
    """``value`` as a float if it is a positive finite length; :class:`ParameterError` otherwise."""
    v = float(value)
    if not (v > 0 and math.isfinite(v)):
        raise ParameterError(f"{name} {value!r}: must be a positive length in nm")
    return v


def shape_function(
    shape: str = "cube",
    aspect: tuple[float, float] | None = None,
    params: Mapping[str, float] | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """P(x), x = q * size, of a registered shape with its fixed parameters."""
    mod = get_shape(shape)
    return mod.p_function(**shape_parameters(mod, params, aspect))


def form_factor(
    q_nm,
    size_nm: float,
    polydispersity: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
    size_points: int | None = None,
    size_nsigma: float | None = None,
    params: Mapping[str, float] | None = None,
) -> np.ndarray:
    """<V^2 P>/<V^2> of any registered shape (1 at q = 0).

    Parameters
    ----------
    q_nm : array
        q (nm^-1).
    size_nm : float
        The shape's size parameter: cube edge, sphere diameter, prism edge a.
    polydispersity : float
        Relative width of the size distribution (0: monodisperse).
    shape : str
        A name from :data:`saxsred.formfactor.SHAPES`.
    distribution : str
        ``"gaussian"`` or ``"schulz"``.
    aspect : (b/a, c/a), optional
        A prism's edge ratios (ignored by shapes without them).
    size_points, size_nsigma
        Size quadrature, see :func:`~saxsred.formfactor.size_nodes`.
    params : mapping, optional
        The shape's fixed parameters by name (``b2a_ratio``, ...).
    """
    s = check_size("size", size_nm)
    pfun = shape_function(shape, aspect, params)
    return size_average(
        pfun,
        np.asarray(q_nm, float),
        s,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def cube_form_factor(
    q_nm,
    edge_nm: float,
    polydispersity: float = 0.0,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Orientation-averaged form factor of cubes, <V^2 P(q)>/<V^2> (1 at q = 0).

    Parameters
    ----------
    q_nm : array
        q values (nm^-1).
    edge_nm : float
        Mean edge e (nm).
    polydispersity : float
        Relative width sigma_e/e of the edge distribution (0: monodisperse).
    distribution : str
        ``"gaussian"`` or ``"schulz"``.
    size_points, size_nsigma
        Size quadrature, see :func:`~saxsred.formfactor.size_nodes`
        (``size_points=35, size_nsigma=3`` reproduces sasmodels' default discretisation).

    Example
    -------
    >>> p = cube_form_factor([0.0, 0.754], 9.5)   # q e = 7.16: the first minimum
    >>> round(float(p[0]), 6)
    1.0
    """
    e = check_size("edge", edge_nm)
    return size_average(
        get_shape("cube").p_function(),
        np.asarray(q_nm, float),
        e,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def sphere_form_factor(
    q_nm,
    diameter_nm: float,
    polydispersity: float = 0.0,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Form factor of spheres of diameter d, <V^2 P>/<V^2> with P = [3 j1(u)/u]^2, u = q d/2."""
    d = check_size("diameter", diameter_nm)
    return size_average(
        get_shape("sphere").p_function(),
        np.asarray(q_nm, float),
        d,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def prism_form_factor(
    q_nm,
    a_nm: float,
    b_nm: float,
    c_nm: float,
    polydispersity: float = 0.0,
    distribution: str = "gaussian",
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Orientation-averaged form factor of a rectangular prism a x b x c (nm).

    Polydispersity scales all three edges together (fixed aspect ratios, as sasmodels'
    ``rectangular_prism`` with ``length_a_pd``).
    """
    a = check_size("a", a_nm)
    aspect = (check_size("b", b_nm) / a, check_size("c", c_nm) / a)
    return size_average(
        shape_function("prism", aspect),
        np.asarray(q_nm, float),
        a,
        float(polydispersity),
        distribution,
        size_points,
        size_nsigma,
    )


def smear(fun: Callable[[np.ndarray], np.ndarray], q: np.ndarray, smearing) -> np.ndarray:
    """Gaussian resolution: I_s(q) = int I(q') N(q' - q; sigma_q) dq'.

    15-point Gauss-Hermite quadrature; ``smearing`` is sigma_q (nm^-1), a number or one per
    q. I(q) is even in q, so q' < 0 uses |q'|.
    """
    sq = np.broadcast_to(np.asarray(smearing, dtype=float), q.shape)
    if np.any(~np.isfinite(sq)) or np.any(sq < 0):
        raise ParameterError("smearing: the resolution sigma_q must be finite and >= 0 (nm^-1)")
    t, w = np.polynomial.hermite_e.hermegauss(15)
    w = w / w.sum()
    qq = np.abs(q[:, None] + sq[:, None] * t[None, :])
    return fun(qq.ravel()).reshape(qq.shape) @ w


def dilute_intensity(
    q_nm,
    edge_nm: float,
    polydispersity: float = 0.0,
    scale: float = 1.0,
    background: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
    smearing=None,
    size_points: int | None = None,
    size_nsigma: float | None = None,
) -> np.ndarray:
    """Scattering of a dilute suspension: I = scale <V^2 P(q)>/<V^2> + background.

    Parameters
    ----------
    q_nm : array
        q (nm^-1).
    edge_nm : float
        The shape's size: cube edge, sphere diameter, prism edge a.
    polydispersity, shape, distribution, aspect, size_points, size_nsigma
        See :func:`form_factor`.
    scale : float
        I(0) - background in the unit of the data; in cm^-1 it equals
        phi drho^2 <V^2>/<V> (:func:`forward_intensity_cm`, :func:`volume_fraction`).
    background : float
        Flat background.
    smearing : float or array, optional
        Gaussian resolution sigma_q (nm^-1), one number or one per q.
    """
    q = np.asarray(q_nm, dtype=float)

    def fun(qq):
        return form_factor(
            qq, edge_nm, polydispersity, shape, distribution, aspect, size_points, size_nsigma
        )

    p = fun(q) if smearing is None else smear(fun, q, smearing)
    return scale * p + background


def particle_volume_nm3(
    size_nm: float, shape: str = "cube", aspect: tuple[float, float] | None = None
) -> float:
    """Volume (nm^3) of one particle of the given size, from the shape's module."""
    mod = get_shape(shape)
    return float(mod.volume(size_nm, **shape_parameters(mod, None, aspect)))


def forward_intensity_cm(
    volume_fraction: float,
    edge_nm: float,
    sld_contrast: float,
    polydispersity: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
) -> float:
    """I(0) in cm^-1 of a dilute suspension: phi drho^2 <V^2>/<V>.

    ``sld_contrast`` in 1e-6 A^-2 (CsPbBr3 in toluene at 12.2 keV: 31.8 - 7.99 = 23.8),
    ``edge_nm`` the mean size (sphere: diameter). A 9.5 nm cube gives 4.9e4 phi cm^-1.
    """
    m6, m3 = moments(polydispersity, distribution)
    v_cm3 = particle_volume_nm3(check_size("edge", edge_nm), shape, aspect) * NM3_CM3
    drho = sld_contrast * SLD_UNIT_CM2
    return float(volume_fraction) * drho * drho * v_cm3 * m6 / m3


def volume_fraction(
    scale_cm: float,
    edge_nm: float,
    sld_contrast: float,
    polydispersity: float = 0.0,
    shape: str = "cube",
    distribution: str = "gaussian",
    aspect: tuple[float, float] | None = None,
) -> float:
    """Volume fraction phi from a fitted ``scale`` in cm^-1 (inverse of :func:`forward_intensity_cm`)."""
    unit = forward_intensity_cm(
        1.0, edge_nm, sld_contrast, polydispersity, shape, distribution, aspect
    )
    return float(scale_cm) / unit
