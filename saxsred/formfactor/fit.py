"""The form-factor fit: an lmfit Model of a dilute suspension and the one-call stage.

``FormFactorModel(shape)`` is I(q) = scale <V^2 P(q)>/<V^2> + background as an
:class:`lmfit.Model` whose size parameter carries the shape's own name (``edge`` for a
cube, ``diameter`` for a sphere), with ``guess()`` from Guinier, first minimum and a grid
search (:mod:`saxsred.formfactor.start`). :func:`fit_form_factor` is the one-call stage.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import lmfit
import numpy as np

from .. import provenance as prov_mod
from ..curve import Curve, require_q_nm
from ..errors import FitError, InputError, ParameterError
from .distributions import check_distribution, size_average
from .model import smear
from .result import FormFactorFit, fit_weights
from .shapes import get_shape, shape_parameters, size_parameter
from .start import initial_values

# Upper bound of the fitted polydispersity: beyond it the curve has no form-factor features.
PD_MAX = 0.45


class FormFactorModel(lmfit.Model):
    """I(q) = scale <V^2 P(q)>/<V^2> + background of one registered shape.

    Parameters are ``<size>`` (nm; ``edge``, ``diameter``, ...), ``polydispersity``,
    ``scale`` and ``background``, each with ``prefix`` in front (lmfit composition).

    Parameters
    ----------
    shape : str
        A registered shape name.
    distribution : str
        ``"gaussian"`` or ``"schulz"``.
    aspect : (b/a, c/a), optional
        A prism's edge ratios; ``shape_params`` gives any fixed shape parameter by name.
    smearing : float or array, optional
        Gaussian resolution sigma_q (nm^-1), one number or one per q point.
    size_points : int, optional
        Fixed size-quadrature nodes (a fixed set moves smoothly with the parameters, so
        finite-difference Jacobians are clean); None: adaptive.
    prefix : str
        lmfit parameter prefix.

    Example
    -------
    >>> m = FormFactorModel("sphere")
    >>> sorted(m.make_params())
    ['background', 'diameter', 'polydispersity', 'scale']
    """

    def __init__(
        self,
        shape: str = "cube",
        distribution: str = "gaussian",
        aspect: tuple[float, float] | None = None,
        shape_params: dict[str, float] | None = None,
        smearing=None,
        size_points: int | None = None,
        prefix: str = "",
        **kws,
    ):
        self.shape_module = get_shape(shape)
        self.shape_params = shape_parameters(self.shape_module, shape_params, aspect)
        self.distribution = check_distribution(distribution)
        self.size_name = size_parameter(self.shape_module).name
        self.smearing = smearing
        self.size_points = size_points
        self.pfun = self.shape_module.p_function(**self.shape_params)
        names = (self.size_name, "polydispersity", "scale", "background")

        def intensity(q, **p):
            return self.evaluate(q, p[names[0]], p["polydispersity"], p["scale"], p["background"])

        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
        intensity.__signature__ = inspect.Signature(
            [inspect.Parameter("q", kind)] + [inspect.Parameter(n, kind) for n in names]
        )
        intensity.__name__ = f"{shape}_dilute_intensity"
        super().__init__(intensity, independent_vars=["q"], prefix=prefix, **kws)

    def evaluate(self, q, size, polydispersity, scale, background) -> np.ndarray:
        """The model on ``q`` (smeared when the model has a resolution)."""
        q = np.asarray(q, dtype=float)

        def f(qq):
            return size_average(
                self.pfun, qq, size, polydispersity, self.distribution, self.size_points, None
            )

        p = f(q) if self.smearing is None else smear(f, q, self.smearing)
        return scale * p + background

    def initial_values(self, q, y, w) -> dict[str, Any]:
        """Start values from the data (see :func:`saxsred.formfactor.start.initial_values`)."""
        return initial_values(
            np.asarray(q, float),
            np.asarray(y, float),
            np.asarray(w, float),
            self.shape_module,
            self.shape_params,
            self.distribution,
        )

    def guess(self, data, q, weights=None, **kws) -> lmfit.Parameters:
        """Parameters with start values and bounds found from the data (lmfit's ``guess``)."""
        w = np.ones(np.shape(q)) if weights is None else weights
        init = self.initial_values(q, data, w)
        return self.bounded_params(init)

    def bounded_params(self, init: dict[str, Any], fix: tuple[str, ...] = ()) -> lmfit.Parameters:
        """Parameters from start values: size within 1/4-4x its start, 0 <= pd <= PD_MAX,
        scale >= 0; names in ``fix`` held fixed."""
        e0 = float(init[f"{self.size_name}_nm"])
        pars = self.make_params()
        pre = self.prefix
        pars[pre + self.size_name].set(
            value=e0, min=e0 / 4.0, max=e0 * 4.0, vary=self.size_name not in fix
        )
        pd0 = float(np.clip(init["polydispersity"], 0.0, PD_MAX * 0.9))
        pars[pre + "polydispersity"].set(
            value=pd0, min=0.0, max=PD_MAX, vary="polydispersity" not in fix
        )
        pars[pre + "scale"].set(value=float(init["scale"]), min=0.0, vary="scale" not in fix)
        pars[pre + "background"].set(value=float(init["background"]), vary="background" not in fix)
        return pars


def check_fit(res, src: str, size_name: str, lo: float, hi: float, pd_max: float) -> None:
    """Raise :class:`FitError` (one line) for a fit that did not converge, ran to a bound
    or has no covariance."""
    v = res.params
    if not res.success:
        raise FitError(
            f"{src}: the form-factor fit did not converge ({res.message}); "
            "narrow the q range or give start values"
        )
    vals = [p.value for p in v.values()]
    if not all(math.isfinite(x) for x in vals) or not math.isfinite(res.redchi):
        raise FitError(
            f"{src}: the form-factor fit gave non-finite values; check the data for outliers"
        )
    e = v[size_name].value
    if v[size_name].vary and (e < lo * 1.01 or e > hi * 0.99):
        raise FitError(
            f"{src}: the fitted {size_name} ran to its bound ({e:.3g} nm, allowed "
            f"{lo:.3g}-{hi:.3g}); the data do not look like this shape's form factor in this q range"
        )
    if v["polydispersity"].vary and v["polydispersity"].value > pd_max * 0.99:
        raise FitError(
            f"{src}: the polydispersity ran to its bound {pd_max}; the curve has no "
            "form-factor features to fit (check the q range or the shape)"
        )
    if not res.errorbars or any(
        p.vary and (p.stderr is None or not math.isfinite(p.stderr)) for p in v.values()
    ):
        raise FitError(
            f"{src}: the fit covariance could not be estimated (parameters not determined "
            "by the data); widen the q range or fix the polydispersity"
        )


def fit_form_factor(
    curve: Curve,
    shape: str = "cube",
    qmin: float | None = None,
    qmax: float | None = None,
    distribution: str = "gaussian",
    smearing=None,
    aspect: tuple[float, float] | None = None,
    initial: dict[str, float] | None = None,
    fix: tuple[str, ...] = (),
    size_points: int | None = None,
) -> FormFactorFit:
    """Fit a dilute-suspension curve with I = scale <V^2 P>/<V^2> + background (lmfit).

    Parameters
    ----------
    curve : Curve
        Solvent-subtracted I(q) with sigma (weights 1/sigma; relative weights and a note
        in the provenance when it has no error information).
    shape : str
        A registered shape (:data:`saxsred.formfactor.SHAPES`): ``"cube"`` (size: edge),
        ``"sphere"`` (size: diameter; the radius is reported beside it) or ``"prism"``
        (``aspect`` = (b/a, c/a) fixed; size: edge a).
    qmin, qmax : float, optional
        Fit range (nm^-1).
    distribution : str
        Size distribution, ``"gaussian"`` or ``"schulz"``.
    smearing : float or array, optional
        Gaussian resolution sigma_q (nm^-1), one number or one per point of the selected
        range.
    initial : dict, optional
        Start values (``<size>_nm`` such as ``edge_nm`` or ``diameter_nm``, or
        ``size_nm``; ``polydispersity``, ``scale``, ``background``); by default found
        from a Guinier fit, the first minimum and a grid search.
    fix : tuple of str
        Parameter names held fixed: the shape's size name (or ``size``),
        ``polydispersity``, ``scale``, ``background``.
    size_points : int, optional
        Size-quadrature nodes (default: chosen once from the widest sizes the fit may try).

    Returns
    -------
    FormFactorFit

    Raises
    ------
    FitError
        When the fit does not converge, a parameter ends at a bound, the covariance
        cannot be estimated, or the size or scale is not determined by the data.

    Example
    -------
    >>> fit = fit_form_factor(read_curve("dilute.dat"))          # doctest: +SKIP
    >>> fit.edge_nm, fit.polydispersity                            # doctest: +SKIP
    """
    mod = get_shape(shape)
    check_distribution(distribution)
    curve = require_q_nm(curve, f"form-factor fit of {curve.name or 'curve'!r}")
    sp = shape_parameters(mod, None, aspect)
    aspect = (sp["b2a_ratio"], sp["c2a_ratio"]) if "b2a_ratio" in sp else None
    size = size_parameter(mod).name
    fix = tuple(size if f in ("size", "edge") else f for f in fix)
    src = curve.name or "curve"
    sel = curve.select(qmin, qmax)
    sel = sel.select(1e-12 if qmin is None else qmin, qmax)  # q = 0 carries no size information
    if len(sel) < 8:
        raise InputError(
            f"{src}: only {len(sel)} points in the fit range "
            f"[{qmin}, {qmax}] nm^-1; widen --qmin/--qmax (at least 8 needed)"
        )
    q, y = sel.q_nm, sel.intensity
    w, weighted, sigma_note = fit_weights(sel)
    if smearing is not None:
        sm = np.asarray(smearing, dtype=float)
        if sm.ndim and sm.shape != q.shape:
            raise ParameterError(
                f"smearing has {sm.size} values; give one number or one per "
                f"point in the fit range ({q.size})"
            )
    model = FormFactorModel(shape, distribution, aspect, sp, smearing=smearing)
    init = model.initial_values(q, y, w)
    if initial:
        given = {k: v for k, v in initial.items() if v is not None}
        for alias in ("size_nm", "edge_nm"):
            if alias in given and f"{size}_nm" not in given:
                given[f"{size}_nm"] = given.pop(alias)
        init.update(given)
    e0 = float(init[f"{size}_nm"])
    # A fixed size quadrature, chosen once from the widest sizes the fit may try: its
    # nodes move smoothly with the parameters, so finite-difference Jacobians are clean.
    model.size_points = size_points or min(
        200, 24 + math.ceil(0.75 * q.max() * e0 * 1.5 * min(15.0 * PD_MAX, 1.0 + 8.0 * PD_MAX))
    )
    params = model.bounded_params(init, fix)

    def run(pars):
        try:
            return model.fit(
                y, pars, q=q, weights=w, method="leastsq", scale_covar=False, nan_policy="raise"
            )
        except (ValueError, FloatingPointError) as exc:
            raise FitError(
                f"{src}: the form-factor fit failed ({exc}); check the q range and the data"
            ) from None

    res = run(params)
    notes = []
    v = res.params
    # lmfit puts a bounded parameter through a sin transform: at the bound pd = 0 its
    # derivative vanishes and no covariance exists. pd -> 0 is a real answer
    # (monodisperse): refit with pd fixed at 0 and say so.
    if v["polydispersity"].vary and v["polydispersity"].value < 1e-3:
        params["polydispersity"].set(value=0.0, vary=False)
        for k in (size, "scale", "background"):
            params[k].set(value=v[k].value)
        res = run(params)
        v = res.params
        notes.append("polydispersity went to its lower bound 0 and was fixed there (monodisperse)")
    check_fit(res, src, size, e0 / 4.0, e0 * 4.0, PD_MAX)
    redchi = float(res.redchi)
    inflate = math.sqrt(redchi) if redchi > 1 else 1.0
    if inflate > 1:
        notes.append(f"errors multiplied by sqrt(reduced chi2) = {inflate:.4f}")
    if sigma_note:
        notes.append(sigma_note)

    def err(name):
        p = v[name]
        if not p.vary:
            return 0.0
        return float(p.stderr) * inflate if p.stderr is not None else math.nan

    if v[size].vary and not (err(size) < 0.5 * v[size].value):
        raise FitError(
            f"{src}: the {size} is not determined by the data ({size} = {v[size].value:.3g} "
            f"+/- {err(size):.2g} nm); use a q range that reaches q*{size} > 3"
        )
    if v["scale"].vary and not (3.0 * err("scale") < v["scale"].value):
        raise FitError(
            f"{src}: no significant particle scattering (scale = {v['scale'].value:.3g} +/- "
            f"{err('scale'):.2g}); is this a dilute-suspension curve after solvent subtraction?"
        )
    order = (size, "polydispersity", "scale", "background")
    names = [n for n in order if v[n].vary]
    cov = np.asarray(res.covar, dtype=float) * inflate**2 if res.covar is not None else None
    corr = {n: {m: float(v[n].correl.get(m, 0.0)) for m in names if m != n} for n in names}
    mod_y = model.evaluate(q, *(v[n].value for n in order))
    report = res.fit_report()
    if notes:
        report += "\n[[Notes]]\n" + "\n".join(f"    {n}" for n in notes)
    initial_rec = {k: (None if val is None else float(val)) for k, val in init.items()}
    prov = prov_mod.extend(
        curve.provenance,
        "fit_form_factor",
        shape=shape,
        size_parameter=size,
        distribution=distribution,
        aspect=list(aspect) if aspect else None,
        shape_parameters=sp,
        qmin_nm=float(q.min()),
        qmax_nm=float(q.max()),
        n_points=int(q.size),
        smearing_sigma_q_nm=None if smearing is None else np.asarray(smearing, float).tolist(),
        size_points=int(model.size_points),
        weighted=weighted,
        initial=initial_rec,
        fixed=list(fix),
        notes=notes,
    )
    return FormFactorFit(
        shape=shape,
        edge_nm=float(v[size].value),
        edge_err_nm=err(size),
        polydispersity=float(v["polydispersity"].value),
        polydispersity_err=err("polydispersity"),
        scale=float(v["scale"].value),
        scale_err=err("scale"),
        background=float(v["background"].value),
        background_err=err("background"),
        reduced_chi2=redchi,
        correlations=corr,
        q_nm=q,
        model=mod_y,
        residuals=(y - mod_y) * w,
        report=report,
        provenance=prov,
        distribution=distribution,
        aspect=aspect,
        smearing=None
        if smearing is None
        else (float(smearing) if np.ndim(smearing) == 0 else np.asarray(smearing, float)),
        unit=curve.unit,
        covariance=cov,
        free_params=tuple(names),
        size_name=size,
        weighted=weighted,
    )
