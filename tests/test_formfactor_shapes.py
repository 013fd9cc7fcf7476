"""Every registered shape describes itself fully, and each is right against outside truth:
sasmodels (rectangular_prism, parallelepiped, sphere), textbook formulas written here
(the sphere's amplitude, the cube's Guinier law and minima), and the shape's own test
values."""

from __future__ import annotations

import math

import numpy as np
import pytest

# sasmodels is a declared test dependency: a failing import is a failure, not a skip.
from sasmodels.core import load_model
from sasmodels.direct_model import call_kernel

from saxsred import formfactor as ff
from saxsred.cli import build_parser
from saxsred.curve import Curve
from saxsred.errors import ParameterError
from saxsred.formfactor.shapes import (
    REGISTRY,
    REQUIRED,
    SHAPES,
    Parameter,
    find_first_minimum,
    shape_parameters,
    size_parameter,
)


def sas(name: str, q_nm, **pars) -> np.ndarray:
    """I(q) of a sasmodels model (compiled, double); q in nm^-1 (sasmodels uses A^-1)."""
    kernel = load_model(name, dtype="double").make_kernel([np.asarray(q_nm) / 10.0])
    return call_kernel(kernel, {"sld": 1, "sld_solvent": 0, "scale": 1, "background": 0, **pars})


# ------------------------------------------------------------- self-description
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_shape_declares_everything(name):
    mod = REGISTRY[name]
    for key in REQUIRED:
        assert hasattr(mod, key), key
    assert mod.name == name and mod.title and len(mod.description) > 40
    assert all(isinstance(p, Parameter) for p in mod.parameters)
    sizes = [p for p in mod.parameters if p.kind == "size"]
    assert len(sizes) == 1 and sizes[0].unit == "nm"
    for p in mod.parameters:
        assert p.kind in ("size", "shape") and p.description
        lo, hi = p.limits
        assert lo < p.default < hi
    assert len(mod.tests) >= 3
    sp = shape_parameters(mod)
    pfun = mod.p_function(**sp)
    assert float(pfun(np.array([0.0]))[0]) == pytest.approx(1.0, abs=1e-12)
    assert mod.volume(2.0, **sp) == pytest.approx(8.0 * mod.volume(1.0, **sp))  # V ~ size^3
    # The declared Rg is the one in the shape's own P: ln P = -(x Rg)^2/3 at small x.
    x = np.array([0.01, 0.02])
    rg = mod.radius_of_gyration(1.0, **sp)
    assert np.log(pfun(x)) == pytest.approx(-((x * rg) ** 2) / 3.0, rel=1e-3)
    # The declared first minimum is where the shape's own P has it.
    xm = mod.first_minimum_x(**sp)
    assert xm == pytest.approx(find_first_minimum(pfun, 0.0, 30.0), abs=2e-3)
    assert set(mod.derived_values(1.0, **sp)) == set(mod.derived)


@pytest.mark.parametrize(
    "name, params, x, value",
    [(n, *t) for n in sorted(REGISTRY) for t in REGISTRY[n].tests],
)
def test_shape_own_test_values(name, params, x, value):
    mod = REGISTRY[name]
    p = mod.p_function(**shape_parameters(mod, params))
    assert float(p(np.array([x]))[0]) == pytest.approx(value, rel=1e-6)


def test_parser_shape_choices_come_from_the_registry():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for command in ("formfactor", "sq"):
        shape = next(a for a in sub.choices[command]._actions if a.dest == "shape")
        assert tuple(shape.choices) == SHAPES
    assert set(SHAPES) == set(REGISTRY) >= {"cube", "sphere", "prism"}


def test_unknown_shape_and_parameter_refused():
    with pytest.raises(ParameterError, match="choose one of"):
        ff.get_shape("cylinder")
    with pytest.raises(ParameterError, match="b2a_ratio"):
        shape_parameters(REGISTRY["prism"], {"b2a_ratio": -1.0})
    with pytest.raises(ParameterError, match="no parameter"):
        shape_parameters(REGISTRY["cube"], {"radius": 1.0})


# ------------------------------------------------------------- outside truth
def test_cube_against_sasmodels_rectangular_prism():
    e = 9.5
    q = np.geomspace(0.1, 30.0, 200) / e
    ref = sas("rectangular_prism", q, length_a=e * 10, b2a_ratio=1, c2a_ratio=1)
    ours = ff.form_factor(q, e, shape="cube") * 1e-4 * (e * 10) ** 3
    assert np.max(np.abs(ours / ref - 1)) < 1e-4


def test_prism_against_sasmodels_parallelepiped():
    a, b, c = 5.0, 8.0, 12.0
    q = np.geomspace(0.1, 25.0, 80) / c
    ref = sas("parallelepiped", q, length_a=a * 10, length_b=b * 10, length_c=c * 10)
    ours = ff.form_factor(q, a, shape="prism", aspect=(b / a, c / a)) * 1e-4 * a * b * c * 1e3
    assert np.max(np.abs(ours / ref - 1)) < 1e-3


def test_sphere_against_sasmodels_and_the_analytic_formula():
    d = 8.0
    q = np.geomspace(0.05, 30.0, 300) / d
    # Rayleigh: F(u) = 3 (sin u - u cos u) / u^3, u = q R
    u = q * d / 2
    analytic = (3 * (np.sin(u) - u * np.cos(u)) / u**3) ** 2
    ours = ff.form_factor(q, d, shape="sphere")
    # (the closed form itself loses ~1e-12 to cancellation at small u, where the module
    # switches to its Taylor series)
    assert np.max(np.abs(ours - analytic)) < 1e-10
    ref = sas("sphere", q, radius=d * 5)
    assert np.max(np.abs(ours * math.pi / 6 * (d * 10) ** 3 * 1e-4 / ref - 1)) < 1e-6


def test_cube_textbook_limits():
    x = np.array([0.02, 0.05, 0.1, 0.2])
    p = ff.cube_form_factor(x, 1.0)
    assert p == pytest.approx(np.exp(-(x**2) / 12), rel=1e-4)  # Guinier, Rg^2 = e^2/4
    grid = np.linspace(5, 21, 16001)
    pg = ff.cube_form_factor(grid, 1.0)
    i = np.flatnonzero((pg[1:-1] < pg[:-2]) & (pg[1:-1] < pg[2:])) + 1
    assert grid[i] == pytest.approx([7.16, 12.97, 19.26], abs=0.01)  # SCIENCE.md section 3
    assert REGISTRY["cube"].first_minimum_x() == pytest.approx(7.16, abs=0.005)


# ------------------------------------------------------------- the lmfit model
def test_form_factor_model_composes_with_a_prefix():
    q = np.linspace(0.1, 2.5, 300)
    truth = ff.dilute_intensity(q, 8.0, 0.08, 10.0, 0.02, shape="sphere")
    sig = 0.02 * truth + 0.002
    y = truth + np.random.default_rng(4).normal(0, sig)
    model = ff.FormFactorModel("sphere", prefix="s_")
    assert sorted(model.param_names) == [
        "s_background",
        "s_diameter",
        "s_polydispersity",
        "s_scale",
    ]
    params = model.guess(y, q=q, weights=1 / sig)
    model.size_points = 60
    res = model.fit(y, params, q=q, weights=1 / sig)
    assert res.params["s_diameter"].value == pytest.approx(8.0, rel=0.01)
    assert "s_diameter" in res.fit_report()


def test_sphere_fit_reports_diameter_and_radius():
    q = np.linspace(0.1, 2.5, 300)
    truth = ff.dilute_intensity(q, 8.0, 0.08, 10.0, 0.02, shape="sphere")
    sig = 0.02 * truth + 0.002
    y = truth + np.random.default_rng(7).normal(0, sig)
    fit = ff.fit_form_factor(Curve(q, y, sig, name="spheres"), shape="sphere")
    d = fit.to_json_dict()
    # issue 14: a sphere fit was reported as "edge"
    assert "edge_nm" not in d and "edge" not in fit.correlations
    assert d["size_parameter"] == "diameter"
    assert d["diameter_nm"] == pytest.approx(8.0, rel=0.01)
    assert d["radius_nm"] == pytest.approx(d["diameter_nm"] / 2)
    assert d["radius_err_nm"] == pytest.approx(d["diameter_err_nm"] / 2)
    assert d["radius_of_gyration_nm"] == pytest.approx(math.sqrt(0.6) * d["radius_nm"])
    assert "diameter:" in fit.report and "edge" not in fit.report
    assert size_parameter(REGISTRY["cube"]).name == "edge"
