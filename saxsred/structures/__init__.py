"""Comparison structures: model supraparticles, their scattering, and fits of structures to data.

- :mod:`.build`: supraparticles of cubes on a lattice block from :mod:`saxsred.lattice`, with
  bulk/surface vacancies, positional and rotational disorder, a size distribution
  (:func:`build_supraparticle`, :func:`supraparticle_sizes`, :func:`from_configuration`).
- :mod:`.debye`: Debye scattering of centres through a pair-distance histogram
  (:func:`debye_intensity`, :func:`structure_factor`).
- :mod:`.oriented`: the exact oriented-cube powder average (:func:`oriented_intensity`).
- :mod:`.scattering`: a configuration's I(q), S_eff(q) or S(q) as a Curve (:func:`scatter`).
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

from .kinds import KINDS, METHODS

# Everything else is loaded on first use: the Debye and oriented-cube kernels import numba
# (about 0.5 s) and bragg the peak stage (scipy.special, lmfit: about 1 s), which a
# command that only needs the names above (the CLI's choices) should not pay for.
_LAZY = {
    "Supraparticle": "build",
    "build_supraparticle": "build",
    "from_configuration": "build",
    "quaternion_to_matrix": "build",
    "supraparticle_sizes": "build",
    "debye_intensity": "debye",
    "pair_distance_histogram": "debye",
    "structure_factor": "debye",
    "StructureFit": "fit",
    "fit_structure": "fit",
    "model_s_eff": "fit",
    "orientation_averaged_amplitude": "oriented",
    "oriented_intensity": "oriented",
    "scatter": "scattering",
    "smear": "scattering",
    "bragg_structure_factor": "bragg",
    "ring_weights": "bragg",
    "sc_supraparticle_intensity": "bragg",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
