"""Form factors of nanocrystals, fits of dilute suspensions, effective structure factors.

Physics: ``../shared/SCIENCE.md`` section 3. The package, module by module:

- :mod:`~saxsred.formfactor.shapes`: one self-describing module per particle shape
  (cube, sphere, prism), each declaring its parameters with units and limits, P(x),
  volume, radius of gyration, first minimum and its own test values; a registry gives
  :data:`SHAPES` (adding a shape means adding one file there).
- :mod:`~saxsred.formfactor.orientation`: orientation averages of boxes and the
  tabulated P(x) that makes cube size averages and fits fast.
- :mod:`~saxsred.formfactor.distributions`: Gaussian and Schulz size distributions and
  the intensity-weighted size average <V^2 P>/<V^2> (1 at q = 0).
- :mod:`~saxsred.formfactor.model`: the forward model (any shape, smearing, absolute
  units).
- :mod:`~saxsred.formfactor.start`, :mod:`~saxsred.formfactor.fit`,
  :mod:`~saxsred.formfactor.result`: start values, the lmfit model and the fit stage,
  its result object.
- :mod:`~saxsred.formfactor.structure_factor`: S_eff(q), the stage after the fit.

Example
-------
>>> from saxsred.formfactor import cube_form_factor, SHAPES
>>> round(float(cube_form_factor([0.0], 9.5)[0]), 6), SHAPES[0]
(1.0, 'cube')
"""

from __future__ import annotations

from .distributions import DISTRIBUTIONS, size_average, size_nodes
from .model import (
    cube_form_factor,
    dilute_intensity,
    form_factor,
    forward_intensity_cm,
    prism_form_factor,
    sphere_form_factor,
    volume_fraction,
)
from .orientation import orientation_average_direct
from .result import FormFactorFit
from .shapes import REGISTRY, SHAPES, Parameter, get_shape
from .shapes.cube import amplitude_oriented as cube_amplitude_oriented
from .structure_factor import StructureFactor, effective_structure_factor

# The fit (and lmfit, whose import costs about a second) loads on first use, so that a
# parser asking the registry for the shape names stays quick.
_LAZY = {"FormFactorModel": "fit", "fit_form_factor": "fit"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DISTRIBUTIONS",
    "REGISTRY",
    "SHAPES",
    "FormFactorFit",
    "FormFactorModel",
    "Parameter",
    "StructureFactor",
    "cube_amplitude_oriented",
    "cube_form_factor",
    "dilute_intensity",
    "effective_structure_factor",
    "fit_form_factor",
    "form_factor",
    "forward_intensity_cm",
    "get_shape",
    "orientation_average_direct",
    "prism_form_factor",
    "size_average",
    "size_nodes",
    "sphere_form_factor",
    "volume_fraction",
]
