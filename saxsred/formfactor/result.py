"""The result of a form-factor fit: fitted values with errors, the model on any q grid
with its propagated uncertainty, and the JSON summary with shape-specific names."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..curve import Curve
from ..errors import InputError
from .model import dilute_intensity, volume_fraction
from .shapes import get_shape, shape_parameters


@dataclass(frozen=True)
class FormFactorFit:
    """Result of :func:`fit_form_factor`.

    ``edge_nm`` is the shape's size parameter, named by ``size_name``: the cube edge, the
    sphere diameter (``size_name = "diameter"``) or the prism's edge a; :attr:`size_nm` is
    the same value under its generic name. Errors are one standard deviation from the fit
    covariance (multiplied by sqrt(reduced chi2) when that exceeds 1).
    ``correlations[p1][p2]`` are the correlation coefficients, keyed by parameter name.
    """

    shape: str
    edge_nm: float
    edge_err_nm: float
    polydispersity: float
    polydispersity_err: float
    scale: float
    scale_err: float
    background: float
    background_err: float
    reduced_chi2: float
    correlations: dict[str, dict[str, float]]
    q_nm: np.ndarray
    model: np.ndarray
    residuals: np.ndarray
    report: str
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    distribution: str = "gaussian"
    aspect: tuple[float, float] | None = None
    smearing: Any = None
    unit: str = "arb"
    covariance: np.ndarray | None = None
    free_params: tuple[str, ...] = ("edge", "polydispersity", "scale", "background")
    size_name: str = "edge"
    weighted: bool = True

    @property
    def size_nm(self) -> float:
        """The fitted size (the shape's size parameter, nm)."""
        return self.edge_nm

    @property
    def size_err_nm(self) -> float:
        """One standard deviation of :attr:`size_nm` (nm)."""
        return self.edge_err_nm

    def values(self) -> dict[str, float]:
        """Fitted values by parameter name (the shape's size name first)."""
        return {
            self.size_name: self.edge_nm,
            "polydispersity": self.polydispersity,
            "scale": self.scale,
            "background": self.background,
        }

    def model_curve(self, q_nm, include_background: bool = True) -> np.ndarray:
        """The fitted I(q) on any q grid (nm^-1); without the flat background if asked.

        Resolution smearing is applied only on the fitted q grid (it is per point)."""
        q = np.asarray(q_nm, dtype=float)
        sm = self.smearing
        if (
            sm is not None
            and np.ndim(sm)
            and (q.shape != self.q_nm.shape or not np.array_equal(q, self.q_nm))
        ):
            sm = float(np.interp(q.mean(), self.q_nm, np.asarray(sm)))
        return dilute_intensity(
            q,
            self.edge_nm,
            self.polydispersity,
            self.scale,
            self.background if include_background else 0.0,
            self.shape,
            self.distribution,
            self.aspect,
            sm,
        )

    def model_sigma(self, q_nm, include_background: bool = False) -> np.ndarray:
        """Standard deviation of the fitted model from the parameter covariance.

        A numerical Jacobian (relative step 1e-4) contracted with the covariance; the flat
        background enters only when ``include_background``. Zero where no parameter was
        free (then the model has no fitted uncertainty to propagate).
        """
        q = np.asarray(q_nm, dtype=float)
        names = list(self.free_params)
        cov = self.covariance
        base = self.model_curve(q, include_background=False)
        if cov is None or not names:
            return np.zeros(q.shape)
        vals = self.values()
        cols = []
        for n in names:
            if n == "background":
                cols.append(np.full(q.shape, 1.0 if include_background else 0.0))
                continue
            h = 1e-4 * max(abs(vals[n]), 1e-2)
            pv = dict(vals)
            pv[n] = vals[n] + h
            f2 = replace(
                self,
                edge_nm=pv[self.size_name],
                polydispersity=pv["polydispersity"],
                scale=pv["scale"],
            )
            cols.append((f2.model_curve(q, include_background=False) - base) / h)
        jac = np.stack(cols, axis=1)
        var = np.einsum("ij,jk,ik->i", jac, cov, jac)
        return np.sqrt(np.maximum(var, 0.0))

    def volume_fraction(self, sld_contrast: float) -> float:
        """Volume fraction phi from the fitted scale, for data in cm^-1 (contrast in 1e-6 A^-2)."""
        if self.unit != "cm^-1":
            raise InputError(
                f"volume fraction needs data in cm^-1 (this fit's data are in {self.unit!r}); "
                "scale the curve to absolute units first"
            )
        return volume_fraction(
            self.scale,
            self.edge_nm,
            sld_contrast,
            self.polydispersity,
            self.shape,
            self.distribution,
            self.aspect,
        )

    def to_json_dict(self) -> dict[str, Any]:
        """Flat JSON-ready summary: snake_case keys with units, the size under the shape's
        own name (``edge_nm`` for cubes and prisms, ``diameter_nm`` and ``radius_nm`` for
        spheres) and under ``size_nm`` with ``size_parameter`` naming it."""

        def num(v):
            v = float(v)
            return v if math.isfinite(v) else None

        mod = get_shape(self.shape)
        sp = shape_parameters(mod, None, self.aspect)
        size = self.size_name
        out: dict[str, Any] = {
            "shape": self.shape,
            "distribution": self.distribution,
            "size_parameter": size,
            "size_nm": num(self.edge_nm),
            "size_err_nm": num(self.edge_err_nm),
            f"{size}_nm": num(self.edge_nm),
            f"{size}_err_nm": num(self.edge_err_nm),
            "polydispersity": num(self.polydispersity),
            "polydispersity_err": num(self.polydispersity_err),
            "scale": num(self.scale),
            "scale_err": num(self.scale_err),
            "background": num(self.background),
            "background_err": num(self.background_err),
            "reduced_chi2": num(self.reduced_chi2),
            "intensity_unit": self.unit,
            "q_min_nm": num(self.q_nm.min()),
            "q_max_nm": num(self.q_nm.max()),
            "n_points": int(self.q_nm.size),
            "weighted": bool(self.weighted),
            "radius_of_gyration_nm": num(mod.radius_of_gyration(self.edge_nm, **sp)),
            "volume_nm3": num(mod.volume(self.edge_nm, **sp)),
            "correlations": {
                k: {k2: num(v2) for k2, v2 in v.items()} for k, v in self.correlations.items()
            },
        }
        # Derived lengths are linear in the size: their errors scale with it.
        for name, ratio in mod.derived_values(1.0, **sp).items():
            out[f"{name}_nm"] = num(self.edge_nm * ratio)
            out[f"{name}_err_nm"] = num(self.edge_err_nm * ratio)
        out.update({k: num(v) for k, v in sp.items()})
        if self.shape == "prism":
            out["aspect"] = list(self.aspect or (1.0, 1.0))
        init = self.provenance.get("steps", [{}])[-1].get("initial") if self.provenance else None
        if init:
            out["initial"] = init
        return out


def fit_weights(curve: Curve) -> tuple[np.ndarray, bool, str | None]:
    """Weights 1/sigma, whether they are absolute, and a note on where sigma came from.

    All-zero sigma (no error information at all) gives relative weights 1/|I|; sigma that
    the reader estimated from the data's scatter is used, and said so.
    """
    s = curve.sigma
    if np.all(s == 0):
        return (
            1.0 / np.maximum(np.abs(curve.intensity), 1e-300),
            False,
            "no sigma in the data: relative (1/I) weights, chi2 is not absolute",
        )
    if np.any(s <= 0):
        n = int(np.sum(s <= 0))
        raise InputError(
            f"curve {curve.name!r}: {n} point(s) with sigma <= 0; remove them or give "
            "a sigma column with positive standard deviations"
        )
    note = None
    if curve.provenance.get("sigma_missing"):
        how = curve.provenance.get("sigma_estimate", "estimated by the reader")
        note = f"no sigma in the file: weights from {how}"
    return 1.0 / s, True, note
