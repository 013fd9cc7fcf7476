"""The hard-cube model and its start states: parameters, configurations, checks.

Units: cube edge sigma = 1, energies in kT. The pair potential is infinite when the
cubes overlap (exact 15-axis separating-axis test), ``beta_eps`` when the centres are
closer than ``well_range`` (Delta, default 1.14 sigma) and 0 otherwise.
:class:`MCParams` holds the model and move parameters, :class:`MCState` a
configuration; :func:`simple_cubic_crystal` and :func:`random_fluid` make start states
and :func:`check_state` refuses one the driver (:mod:`saxsred.mc.engine`) cannot run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from . import _kernels as K

SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class MCParams:
    """Model and move parameters (lengths in sigma, energies in kT).

    Attributes
    ----------
    beta_eps : well depth beta*epsilon (negative = attractive; 0 = hard cubes).
    well_range : square-well range Delta / sigma (>= 1: the well starts at the core).
    hard : the hard core; False switches it off (for tests of the move kernel).
    p_translate : probability that a trial move is a translation (else a rotation).
    target_acceptance : acceptance the step sizes are tuned to during equilibration.
    translate_step, rotate_step : initial maximum displacement (sigma) and angle (rad).
    skin : neighbour-list skin (sigma); translations are capped at skin / (2 sqrt 3).
        0.45 makes rebuilds (a few ms each) rare: ~1 per 150 sweeps at phi = 0.8 against
        1 per 15 with 0.3, for ~30 neighbours per list row; measured ~15% faster.
    block_sweeps : sweeps (N trial moves each) per block, a multiple of ``sample_every``;
        observables are block means and one frame is written per block. None (default):
        about :data:`~saxsred.mc.engine.BLOCKS` blocks per run (see :func:`~saxsred.mc.engine.schedule`).
    sample_every : sweeps between samples of pressure and vacancy observables. None
        (default): :data:`~saxsred.mc.engine.SAMPLE_EVERY`, fewer for short runs (see
        :func:`~saxsred.mc.engine.schedule`).
    pressure_xmax, pressure_bins : range and bins of the scale distribution function.
    tune : tune step sizes during equilibration (frozen in production either way).
    """

    beta_eps: float = 0.0
    well_range: float = 1.14
    hard: bool = True
    p_translate: float = 0.5
    target_acceptance: float = 0.3
    translate_step: float = 0.05
    rotate_step: float = 0.05
    skin: float = 0.45
    block_sweeps: int | None = None
    sample_every: int | None = None
    pressure_xmax: float = 0.02
    pressure_bins: int = 20
    tune: bool = True

    def __post_init__(self) -> None:
        if not math.isfinite(self.beta_eps):
            raise ParameterError(
                f"beta_eps={self.beta_eps} is not finite; give a number such as -1.0"
            )
        if not self.well_range >= 1.0:
            raise ParameterError(
                f"well range Delta={self.well_range} sigma is shorter than the hard core (sigma = 1); "
                "use --range >= 1 (the paper's is 1.14)"
            )
        if not 0.0 <= self.p_translate <= 1.0:
            raise ParameterError(f"p_translate={self.p_translate} must lie in [0, 1]")
        if not 0.0 < self.target_acceptance < 1.0:
            raise ParameterError(f"target_acceptance={self.target_acceptance} must lie in (0, 1)")
        if self.translate_step <= 0 or self.rotate_step <= 0 or self.skin <= 0:
            raise ParameterError("translate_step, rotate_step and skin must be positive")
        if (self.block_sweeps is not None and self.block_sweeps < 1) or (
            self.sample_every is not None and self.sample_every < 1
        ):
            raise ParameterError(
                f"block_sweeps={self.block_sweeps} and sample_every={self.sample_every} must be positive"
            )
        if self.block_sweeps and self.sample_every and self.block_sweeps % self.sample_every:
            raise ParameterError(
                f"block_sweeps={self.block_sweeps} must be a positive multiple of sample_every={self.sample_every}"
            )
        if not 0.0 < self.pressure_xmax < 0.5 or self.pressure_bins < 4:
            raise ParameterError("pressure_xmax must lie in (0, 0.5) and pressure_bins be >= 4")

    @property
    def cutoff(self) -> float:
        """Largest distance at which two cubes interact (sigma): sqrt(3) and/or Delta."""
        rc = SQRT3 if self.hard else 0.0
        if self.beta_eps != 0.0:
            rc = max(rc, self.well_range)
        return rc

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MCState:
    """A configuration: orthorhombic periodic box, centres in [-L/2, L/2), quaternions (w, x, y, z).

    ``sites``, ``n_cells`` and ``spacing`` describe the simple-cubic lattice of a crystal
    start (None otherwise); ``provenance`` records how the state was made.
    """

    box: np.ndarray
    positions: np.ndarray
    orientations: np.ndarray
    n_cells: tuple[int, int, int] | None = None
    spacing: float | None = None
    sites: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.positions.shape[0])

    @property
    def volume(self) -> float:
        return float(np.prod(self.box))

    @property
    def phi(self) -> float:
        """Packing fraction N sigma^3 / V."""
        return self.n / self.volume

    def replace(self, **kw: Any) -> MCState:
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------- start states
def simple_cubic_crystal(
    n_cells: int | tuple[int, int, int],
    phi: float,
    vacancies: int = 0,
    rng: np.random.Generator | int | None = None,
    sites: list[int] | np.ndarray | None = None,
) -> MCState:
    """Aligned simple-cubic crystal of cubes at packing fraction ``phi`` with vacancies.

    Parameters
    ----------
    n_cells : lattice sites per axis (int or 3 ints).
    phi : packing fraction N sigma^3 / V of the *full* lattice, 0 < phi < 1 (close
        packing of aligned cubes is 1); spacing a = phi^(-1/3) sigma.
    vacancies : number of sites left empty, chosen with ``rng`` unless ``sites`` given.
    rng : numpy Generator or seed for the vacancy sites (needed when vacancies > 0).
    sites : flat indices (C order over the n_cells grid) of the empty sites.
    """
    nc = (n_cells,) * 3 if np.isscalar(n_cells) else tuple(int(c) for c in n_cells)
    if len(nc) != 3 or min(nc) < 2:
        raise ParameterError(f"n_cells={n_cells}: need at least 2 lattice sites per axis")
    if not 0.0 < phi < 1.0:
        raise ParameterError(
            f"phi={phi} is outside (0, 1): simple-cubic close packing of cubes is phi = 1 (touching); use e.g. --phi 0.80"
        )
    a = phi ** (-1.0 / 3.0)
    box = a * np.asarray(nc, float)
    g = np.stack(np.meshgrid(*[np.arange(c) for c in nc], indexing="ij"), -1).reshape(-1, 3)
    lattice = -0.5 * box + a * (g + 0.5)
    n_sites = len(lattice)
    if sites is not None:
        empty = np.unique(np.asarray(sites, dtype=int))
        if empty.size and (empty.min() < 0 or empty.max() >= n_sites):
            raise ParameterError(f"vacancy sites {sites} outside 0..{n_sites - 1}")
    else:
        if not 0 <= vacancies < n_sites - 1:
            raise ParameterError(
                f"vacancies={vacancies} must lie in 0..{n_sites - 2} for {n_sites} sites"
            )
        if vacancies and rng is None:
            raise ParameterError(
                "random vacancy sites need a seed (rng=...); pass sites=[...] to choose them"
            )
        gen = np.random.default_rng(rng)
        empty = (
            np.sort(gen.choice(n_sites, size=vacancies, replace=False))
            if vacancies
            else np.zeros(0, int)
        )
    keep = np.ones(n_sites, bool)
    keep[empty] = False
    pos = lattice[keep].copy()
    quat = np.zeros((len(pos), 4))
    quat[:, 0] = 1.0
    prov = {
        "start": "simple_cubic_crystal",
        "n_cells": list(nc),
        "phi_lattice": phi,
        "vacancy_sites": empty.tolist(),
    }
    return MCState(box, pos, quat, n_cells=nc, spacing=a, sites=lattice, provenance=prov)


def random_fluid(n: int, phi: float, rng: np.random.Generator | int) -> MCState:
    """Dilute fluid of ``n`` randomly placed, Haar-randomly oriented cubes in a cubic box.

    Random sequential insertion (rejecting overlaps), so only for phi <= 0.3; denser
    states are reached by compressing or by starting from the crystal.
    """
    if n < 2:
        raise ParameterError(f"n={n}: a fluid needs at least 2 cubes")
    if not 0.0 < phi <= 0.3:
        raise ParameterError(
            f"phi={phi} for a random fluid start: random insertion only works for 0 < phi <= 0.3; use the crystal start"
        )
    gen = np.random.default_rng(rng)
    L = (n / phi) ** (1.0 / 3.0)
    box = np.full(3, L)
    pos = np.empty((n, 3))
    quat = np.empty((n, 4))
    rot = np.empty((n, 9))
    for i in range(n):
        for _attempt in range(100_000):
            p = gen.uniform(-0.5 * L, 0.5 * L, 3)
            q = gen.normal(size=4)
            q /= np.linalg.norm(q)
            R = K.quats_to_rots(q[None, :])[0]
            if not K.overlaps_one(p, R, pos, rot, box, i):
                break
        else:  # pragma: no cover - cannot happen at phi <= 0.3
            raise ParameterError(f"could not insert cube {i} at phi={phi}; lower phi")
        pos[i], quat[i], rot[i] = p, q, R
    return MCState(box, pos, quat, provenance={"start": "random_fluid", "n": n, "phi": phi})


# ----------------------------------------------------------------------------- checks
def check_state(state: MCState, params: MCParams) -> None:
    """Raise :class:`ParameterError` if the box is too small or the state overlaps."""
    rc = params.cutoff
    lmin = float(np.min(state.box))
    if state.n < 2:
        raise ParameterError(f"N={state.n}: need at least 2 cubes")
    if rc > 0 and lmin <= 2.0 * rc:
        raise ParameterError(
            f"box edge {lmin:.3f} sigma is not larger than twice the interaction cutoff {rc:.3f} sigma "
            f"(N={state.n} is too small for the periodic cell list); use more particles or lattice cells"
        )
    if state.phi > 1.0:
        raise ParameterError(
            f"phi={state.phi:.4f} > 1 is impossible for hard cubes; check the box and N"
        )
    if params.hard:
        rot = K.quats_to_rots(normalised(state.orientations))
        n_ov = K.count_overlaps(
            np.ascontiguousarray(state.positions, float), rot, np.asarray(state.box, float)
        )
        if n_ov:
            raise ParameterError(
                f"the start state has {n_ov} overlapping pair(s) of cubes; lower phi or start from a valid snapshot"
            )


def normalised(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (n, 4) as a new contiguous float array."""
    q = np.ascontiguousarray(q, dtype=float)
    return q / np.linalg.norm(q, axis=1, keepdims=True)
