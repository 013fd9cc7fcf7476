"""Fit of a model supraparticle to a measured effective structure factor S_eff(q).

The model is the ensemble average (over vacancy and displacement realisations) of the
exact oriented-cube powder intensity of an n x n x n simple-cubic block of aligned cubes:

    <I(q)> = < |F(q n)|^2 [ sum_j p_j + D^2 (M(q n)^2 - sum_j p_j^2) ] >_n,
    S_eff  = scale x <I> / (<N> P(q)),

with occupancies p_j = 1 - vacancy fraction (bulk and surface), D = exp(-q^2 sigma^2 / 2)
the Debye-Waller factor of uncorrelated Gaussian displacements, M the mean amplitude
(3-D Laue functions of the block and of its bulk), F the oriented cube amplitude and P its
orientation average (the measured dilute curve's shape). The direction average uses the
exact product rule of :mod:`.oriented` (D4h cut: the model is symmetric). A non-integer
cell count n is the mixture (1 - t) I(floor n) + t I(ceil n) of the two neighbouring
sizes weighted by particle number, i.e. a narrow size distribution, which keeps the
model continuous in n. Optional Gaussian resolution smearing (FWHM fixed, not fitted).
Rotational disorder is not a fit parameter: at the paper's 9.6 degrees FWHM it changes
|F(G)|^2 of the first four rings by a few per cent (see the tests), below what an S_eff
curve separates from the other parameters.

Fitted with lmfit (least squares): a_nm, cells (domain size L = n a), disorder_pos_nm,
vacancies (bulk = surface fraction unless the surface one is given), scale. A parameter
is reported as *constrained* when its standard error is finite, below half its value
(or, for a value near 0, below a physical scale: 0.5 nm for sigma, 0.05 for a fraction)
and it is not at a bound; otherwise *unconstrained*, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..curve import Curve
from ..errors import FitError, ParameterError
from ..provenance import extend
from . import _kernels as K
from .oriented import degree_bound, sphere_rule
from .scattering import cube_form_factor_average, smear

PARAMS = ("a_nm", "cells", "disorder_pos_nm", "vacancies", "scale")
_ABS_SCALE = {"disorder_pos_nm": 0.5, "vacancies": 0.05}


def _block_intensity(q, dirs, w, a, n, edge, vac_b, vac_s, sigma):
    n = int(n)
    nsites = n**3
    nbulk = max(n - 2, 0) ** 3
    inten = K.cuboid_model_sum(
        q, dirs, w, a, n, 0.5 * edge, 1.0 - vac_b, 1.0 - vac_s, sigma, nsites, nbulk
    )
    nocc = (1.0 - vac_b) * nbulk + (1.0 - vac_s) * (nsites - nbulk)
    return inten, nocc


def model_s_eff(
    q_nm,
    a_nm: float = 11.4,
    cells: float = 12.0,
    disorder_pos_nm: float = 0.0,
    vacancies: float = 0.0,
    vacancies_surface: float | None = None,
    edge_nm: float = 9.5,
    scale: float = 1.0,
    resolution_fwhm_nm: float = 0.0,
) -> np.ndarray:
    """Ensemble-average S_eff(q) of an SC block of aligned cubes (module docstring)."""
    q = np.asarray(q_nm, float)
    if not (a_nm > 0 and edge_nm > 0 and cells >= 1):
        raise ParameterError("model S_eff: a, edge > 0 and cells >= 1")
    vs = vacancies if vacancies_surface is None else vacancies_surface
    lo = int(math.floor(cells))
    t = float(cells) - lo
    sizes = [(lo, 1.0 - t)] + ([(lo + 1, t)] if t > 1e-12 else [])
    radius = (lo + 1) * a_nm * math.sqrt(3.0) / 2.0 + edge_nm * math.sqrt(3.0) / 2.0
    num = np.zeros_like(q)
    den = 0.0
    # direction rules per block of 32 q values, each exact for the block's highest q
    for i in range(0, q.size, 32):
        qb = np.ascontiguousarray(q[i : i + 32])
        dirs, w = sphere_rule(degree_bound(float(qb.max()), radius), "d4h")
        den = 0.0
        for n, wt in sizes:
            i_n, nocc = _block_intensity(
                qb, dirs, w, a_nm, n, edge_nm, vacancies, vs, disorder_pos_nm
            )
            num[i : i + 32] += wt * i_n
            den += wt * nocc
    p = cube_form_factor_average(q, edge_nm)
    s = scale * num / (den * p)
    return smear(q, s, resolution_fwhm_nm) if resolution_fwhm_nm > 0 else s


@dataclass(frozen=True)
class StructureFit:
    """Result of :func:`fit_structure`: values, errors, which the data constrain, the curves."""

    values: dict[str, float]
    errors: dict[str, float]
    constrained: tuple[str, ...]
    unconstrained: dict[str, str]
    correlations: dict[str, dict[str, float]]
    reduced_chi2: float
    edge_nm: float
    resolution_fwhm_inv_nm: float
    q_nm: np.ndarray
    data: np.ndarray
    sigma: np.ndarray
    model: np.ndarray
    report: str
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def coherence_nm(self) -> float:
        """Domain size L = n a of the best block (nm)."""
        return self.values["cells"] * self.values["a_nm"]

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.values.items():
            unit = k[k.rfind("_") :] if k.endswith("_nm") else ""
            base = k[: -len(unit)] if unit else k
            out[k] = v
            out[f"{base}_err{unit}"] = self.errors.get(k)
        out["domain_size_nm"] = self.coherence_nm
        la, lc = self.values["a_nm"], self.values["cells"]
        ea, ec = self.errors.get("a_nm") or 0.0, self.errors.get("cells") or 0.0
        out["domain_size_err_nm"] = math.hypot(la * ec, lc * ea) if math.isfinite(ea + ec) else None
        out["constrained"] = list(self.constrained)
        out["unconstrained"] = dict(self.unconstrained)
        out["correlations"] = self.correlations
        out["reduced_chi2"] = self.reduced_chi2
        out["edge_nm"] = self.edge_nm
        out["resolution_fwhm_inv_nm"] = self.resolution_fwhm_inv_nm
        out["lattice"] = "SC"
        return out


def _guess_a(q: np.ndarray, y: np.ndarray) -> float:
    """a where the strong maxima agree as SC rings N = 1, 2, 4, 5 (the oriented envelope
    shifts single peaks of S_eff by about 1 %, and (200) may be the strongest)."""
    med = float(np.median(y))
    top = float(np.max(y))
    k = (
        np.flatnonzero(
            (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]) & (y[1:-1] > med + 0.2 * (top - med))
        )
        + 1
    )
    if k.size == 0:
        return 2.0 * math.pi / q[int(np.argmax(y))]
    cands = np.array([2.0 * math.pi * math.sqrt(n) / qp for qp in q[k] for n in (1, 2, 4, 5)])
    # the candidate with the most others within 2 %
    votes = [int(np.sum(np.abs(cands / c - 1) < 0.02)) for c in cands]
    c0 = cands[int(np.argmax(votes))]
    return float(np.median(cands[np.abs(cands / c0 - 1) < 0.02]))


def fit_structure(
    curve: Curve,
    edge_nm: float,
    a_nm: float | None = None,
    cells: float = 12.0,
    disorder_pos_nm: float = 0.3,
    vacancies: float = 0.03,
    vacancies_surface: float | None = None,
    resolution_fwhm_nm: float = 0.0,
    qmin: float | None = None,
    qmax: float | None = None,
    vary: tuple[str, ...] = PARAMS,
) -> StructureFit:
    """Fit :func:`model_s_eff` to a measured S_eff(q) (module docstring).

    Parameters
    ----------
    curve : S_eff(q) (q nm^-1, sigma > 0 where known).
    edge_nm : cube edge (from the dilute form-factor fit).
    a_nm, cells, disorder_pos_nm, vacancies : start values (a: from the strongest peak).
    vacancies_surface : fixed surface vacancy fraction (None: same as the bulk).
    resolution_fwhm_nm : Gaussian instrument FWHM (nm^-1), fixed.
    qmin, qmax : fit range (nm^-1).
    vary : the parameters to fit; the others stay at their start values.
    """
    import lmfit

    from ..curve import require_q_nm

    cv = require_q_nm(curve, "structure fit").select(qmin, qmax)
    if len(cv) < 20:
        raise FitError(
            f"{curve.name or 'curve'}: only {len(cv)} points in the fit range; widen --qmin/--qmax"
        )
    q, y = cv.q_nm, cv.intensity
    sig = cv.sigma
    if not np.all(sig > 0):
        good = sig[sig > 0]
        sig = np.where(sig > 0, sig, np.median(good) if good.size else 0.01 * np.median(np.abs(y)))
    if a_nm is None:
        a_nm = _guess_a(q, y)
    bad = [v for v in vary if v not in PARAMS]
    if bad:
        raise ParameterError(f"cannot vary {bad}: choose from {PARAMS}")
    params = lmfit.Parameters()
    params.add("a_nm", a_nm, min=0.8 * a_nm, max=1.2 * a_nm, vary="a_nm" in vary)
    params.add("cells", cells, min=2.0, max=40.0, vary="cells" in vary)
    params.add(
        "disorder_pos_nm", disorder_pos_nm, min=0.0, max=0.3 * a_nm, vary="disorder_pos_nm" in vary
    )
    params.add("vacancies", vacancies, min=0.0, max=0.5, vary="vacancies" in vary)
    params.add("scale", 1.0, min=1e-3, max=1e3, vary="scale" in vary)

    def resid(p):
        v = p.valuesdict()
        m = model_s_eff(
            q,
            v["a_nm"],
            v["cells"],
            v["disorder_pos_nm"],
            v["vacancies"],
            vacancies_surface,
            edge_nm,
            v["scale"],
            resolution_fwhm_nm,
        )
        return (y - m) / sig

    def chi2_scaled(a, n):
        """chi^2 with the best scale (linear), other parameters at their current values."""
        v = params.valuesdict()
        m = model_s_eff(
            q,
            a,
            n,
            v["disorder_pos_nm"],
            v["vacancies"],
            vacancies_surface,
            edge_nm,
            1.0,
            resolution_fwhm_nm,
        )
        w = 1.0 / sig**2
        k = float(np.sum(w * m * y) / np.sum(w * m * m))
        return float(np.sum(w * (y - k * m) ** 2)), k

    # Narrow peaks make a narrow, multi-modal basin in a: grid a on a small block (broad,
    # cheap peaks; the oriented envelope shifts the strongest peak of S_eff by ~1 %, so the
    # start guess is not trusted), take the best of a coarse scan of n (the Jacobian sees
    # n's effect on the widths poorly), then refine everything.
    if "a_nm" in vary:
        grid = a_nm * (1.0 + np.arange(-0.03, 0.0301, 0.003))
        params["a_nm"].value = float(min(grid, key=lambda g: chi2_scaled(g, 8.0)[0]))
    if "cells" in vary:
        best = None
        for n0 in (4, 6, 8, 11, 15, 20, 28):
            c2, k = chi2_scaled(params["a_nm"].value, float(n0))
            if best is None or c2 < best[0]:
                best = (c2, n0, k)
            elif c2 > 1.5 * best[0]:
                break  # past the minimum: larger blocks cost (n a q)^2 directions each
        params["cells"].value = float(best[1])
        if "scale" in vary:
            params["scale"].value = best[2]
    if "a_nm" in vary:  # a again at that size, on a fine grid (a small block shifts its peaks)
        n0 = params["cells"].value
        a0 = params["a_nm"].value
        grid = a0 * (1.0 + np.arange(-0.01, 0.01001, 0.001))
        params["a_nm"].value = float(min(grid, key=lambda g: chi2_scaled(g, n0)[0]))
    res = lmfit.minimize(resid, params, method="least_squares")
    if not res.success and res.nfev < 5:
        raise FitError(f"{curve.name or 'curve'}: structure fit failed ({res.message})")
    redchi = float(res.redchi) if res.nfree > 0 else float("nan")
    vals = {k: float(res.params[k].value) for k in PARAMS}
    errs: dict[str, float] = {}
    for k in PARAMS:
        e = res.params[k].stderr
        errs[k] = (
            float(e)
            if (e is not None and res.params[k].vary)
            else (0.0 if not res.params[k].vary else float("nan"))
        )
    constrained: list[str] = []
    unconstrained: dict[str, str] = {}
    for k in PARAMS:
        par = res.params[k]
        if not par.vary:
            unconstrained[k] = "held fixed"
            continue
        e = errs[k]
        span = par.max - par.min
        at_bound = min(abs(par.value - par.min), abs(par.max - par.value)) < 1e-4 * span
        limit = max(0.5 * abs(par.value), 0.0)
        if k in _ABS_SCALE and abs(par.value) < _ABS_SCALE[k]:
            limit = _ABS_SCALE[k]
        if not math.isfinite(e):
            unconstrained[k] = "no finite error: the curve does not depend on it in this range"
        elif at_bound and not (k in _ABS_SCALE and e < _ABS_SCALE[k]):
            unconstrained[k] = f"at its bound {par.value:g}"
        elif e > limit:
            unconstrained[k] = f"error {e:.3g} larger than {limit:.3g}"
        else:
            constrained.append(k)
    corr = {
        k: {k2: float(v2) for k2, v2 in (res.params[k].correl or {}).items()}
        for k in PARAMS
        if res.params[k].vary
    }
    v = vals
    model = model_s_eff(
        q,
        v["a_nm"],
        v["cells"],
        v["disorder_pos_nm"],
        v["vacancies"],
        vacancies_surface,
        edge_nm,
        v["scale"],
        resolution_fwhm_nm,
    )
    prov = extend(
        curve.provenance,
        "model fit",
        edge_nm=edge_nm,
        vacancies_surface=vacancies_surface,
        resolution_fwhm_inv_nm=resolution_fwhm_nm,
        qmin=qmin,
        qmax=qmax,
        vary=list(vary),
        model="ensemble-average SC block of aligned cubes (saxsred.structures.fit)",
    )
    return StructureFit(
        vals, errs, tuple(constrained), unconstrained, corr, redchi, float(edge_nm), float(resolution_fwhm_nm),
        q, y, sig, model, lmfit.fit_report(res), prov,
    )  # fmt: skip
