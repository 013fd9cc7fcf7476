"""Monte Carlo of hard cubes with a square-well attraction (the paper's comparison structures).

- :func:`simple_cubic_crystal`, :func:`random_fluid`: start states (:class:`MCState`);
- :func:`run`: NVT Monte Carlo with :class:`MCParams`, returning an :class:`MCResult`
  with per-block observables (acceptance, energy, pressure, vacancy spread, clusters);
- :mod:`saxsred.mc.observables`: pressure from virtual volume moves, vacancy analysis,
  cubatic order, largest cluster;
- :mod:`saxsred.mc.snapshot`: GSD trajectories readable by HOOMD-blue, freud and OVITO.

Kernels are numba-compiled with an on-disk cache (:mod:`saxsred.mc._kernels`).
"""

from __future__ import annotations

from .engine import MCParams, MCResult, MCState, random_fluid, run, simple_cubic_crystal

__all__ = ["MCParams", "MCResult", "MCState", "random_fluid", "run", "simple_cubic_crystal"]
