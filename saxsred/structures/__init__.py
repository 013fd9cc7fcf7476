"""Comparison structures: model supraparticles, their scattering, and fits of structures to data.

- :mod:`.bragg`: the powder-ring model S_eff(q) of crystalline supraparticles
  (:func:`bragg_structure_factor`), the forward model of the sample data.
"""

from .bragg import bragg_structure_factor, ring_weights, sc_supraparticle_intensity

__all__ = ["bragg_structure_factor", "ring_weights", "sc_supraparticle_intensity"]
