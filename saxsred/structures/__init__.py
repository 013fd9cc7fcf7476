"""Comparison structures: model supraparticles, their scattering, and fits of structures to data.

- :mod:`.build`: supraparticles of cubes on a lattice block from :mod:`saxsred.lattice`, with
  bulk/surface vacancies, positional and rotational disorder, a size distribution
  (:func:`build_supraparticle`, :func:`supraparticle_sizes`, :func:`from_configuration`).
- :mod:`.debye`: Debye scattering of centres through a pair-distance histogram
  (:func:`debye_intensity`, :func:`structure_factor`).
- :mod:`.oriented`: the exact oriented-cube powder average (:func:`oriented_intensity`).
- :mod:`.scatter`: a configuration's I(q), S_eff(q) or S(q) as a Curve (:func:`scatter`).
- :mod:`.fit`: the ensemble-average SC block model and its fit to a measured S_eff
  (:func:`model_s_eff`, :func:`fit_structure`).
- :mod:`.bragg`: the powder-ring model S_eff(q) (:func:`bragg_structure_factor`), the
  forward model of the sample data.

Example
-------
>>> import numpy as np
>>> from saxsred.structures import build_supraparticle, scatter
>>> sp = build_supraparticle("SC", a_nm=11.4, edge_nm=9.5, cells=(6, 6, 6), rng=0)
>>> cv = scatter(sp, np.linspace(0.3, 1.4, 200), kind="effective")
"""

from .build import (
    Supraparticle,
    build_supraparticle,
    from_configuration,
    quaternion_to_matrix,
    supraparticle_sizes,
)
from .debye import debye_intensity, pair_distance_histogram, structure_factor
from .fit import StructureFit, fit_structure, model_s_eff
from .oriented import orientation_averaged_amplitude, oriented_intensity
from .scatter import KINDS, METHODS, scatter, smear

# bragg needs the peak stage (scipy.special, lmfit: about 1 s to import); loaded on first
# use so that ``saxsred model scatter`` does not pay for it
_LAZY = {"bragg_structure_factor", "ring_weights", "sc_supraparticle_intensity"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import bragg

        return getattr(bragg, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "KINDS",
    "METHODS",
    "StructureFit",
    "Supraparticle",
    "bragg_structure_factor",
    "build_supraparticle",
    "debye_intensity",
    "fit_structure",
    "from_configuration",
    "model_s_eff",
    "orientation_averaged_amplitude",
    "oriented_intensity",
    "pair_distance_histogram",
    "quaternion_to_matrix",
    "ring_weights",
    "sc_supraparticle_intensity",
    "scatter",
    "smear",
    "structure_factor",
    "supraparticle_sizes",
]
