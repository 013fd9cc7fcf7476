"""Monte Carlo of hard cubes with a square-well attraction (the paper's comparison structures).

- :func:`simple_cubic_crystal`, :func:`random_fluid`: start states (:class:`MCState`);
- :func:`run`: NVT Monte Carlo with :class:`MCParams`, returning an :class:`MCResult`
  with per-block observables (acceptance, energy, pressure, vacancy spread, clusters);
- :mod:`saxsred.mc.observables`: pressure from virtual volume moves, vacancy analysis,
  cubatic order, largest cluster;
- :mod:`saxsred.mc.snapshot`: GSD trajectories readable by HOOMD-blue, freud and OVITO.

Modules, from the kernels up:

- :mod:`saxsred.mc.rng`, :mod:`saxsred.mc.cubes`, :mod:`saxsred.mc.box`: numba building
  blocks (xoshiro256** stream and random rotations; cube rotations, exact overlap and
  contact; minimum image and Verlet list);
- :mod:`saxsred.mc._kernels`: the trial moves, recounts, pressure histograms and virial
  integrals (and the building blocks, re-exported); :mod:`saxsred.mc.obskernels`: the
  per-sample observables (vacancy pass, list-based checks);
- :mod:`saxsred.mc.model`: :class:`MCParams`, :class:`MCState`, the start states;
- :mod:`saxsred.mc.engine`: the driver (:func:`run`, :func:`schedule`, :class:`MCResult`);
- :mod:`saxsred.mc.observables`, :mod:`saxsred.mc.snapshot`, :mod:`saxsred.mc.figure`.

Kernels are numba-compiled with an on-disk cache (``cache=True``).
"""

from __future__ import annotations

from .engine import MCParams, MCResult, MCState, random_fluid, run, simple_cubic_crystal

__all__ = ["MCParams", "MCResult", "MCState", "random_fluid", "run", "simple_cubic_crystal"]
