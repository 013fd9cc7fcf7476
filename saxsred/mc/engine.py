"""NVT Monte Carlo of hard cubes with a square-well attraction: start states and the driver.

Units: cube edge sigma = 1, energies in kT. The pair potential is infinite when the
cubes overlap (exact 15-axis separating-axis test), ``beta_eps`` when the centres are
closer than ``well_range`` (Delta, default 1.14 sigma) and 0 otherwise.

Example
-------
>>> from saxsred.mc import MCParams, run, simple_cubic_crystal
>>> state = simple_cubic_crystal(4, 0.8, vacancies=1, rng=1)
>>> result = run(state, MCParams(beta_eps=-1.0), sweeps=40, seed=7)  # doctest: +SKIP
>>> result.blocks["pressure"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ParameterError
from . import _kernels as K
from . import observables as obs
from . import obskernels as OK

SQRT3 = math.sqrt(3.0)
#: default sweeps between pressure/vacancy samples. An SDF pressure sample plus the O(N)
#: vacancy pass cost about two sweeps (N = 999, phi = 0.8), so sampling every 50 sweeps
#: keeps the observables near 5% of the run (printed by `mc run`); samples 50 sweeps
#: apart are still correlated at phi = 0.8, so little information is lost.
SAMPLE_EVERY = 50
#: default number of blocks (= frames written) per run
BLOCKS = 100


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
        about :data:`BLOCKS` blocks per run (see :func:`schedule`).
    sample_every : sweeps between samples of pressure and vacancy observables. None
        (default): :data:`SAMPLE_EVERY`, fewer for short runs (see :func:`schedule`).
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


@dataclass
class MCResult:
    """Output of :func:`run`: final state, per-block observables and the trajectory.

    ``blocks`` maps names to arrays with one entry per completed block (see
    :data:`BLOCK_KEYS`); ``frames`` holds (positions, orientations) at the end of each
    block; ``timing`` the trial moves, pair tests and seconds spent in the kernels.
    """

    state: MCState
    params: MCParams
    seed: int
    sweeps: int
    equilibration: int
    blocks: dict[str, np.ndarray]
    frames: list[tuple[np.ndarray, np.ndarray]]
    steps: tuple[float, float]
    timing: dict[str, float]
    interrupted: bool = False
    initial: MCState | None = None
    block_sweeps: int = 0
    sample_every: int = 0

    @property
    def production(self) -> np.ndarray:
        return self.blocks["production"].astype(bool)


BLOCK_KEYS = (
    "sweep", "production", "acceptance_translate", "acceptance_rotate", "d_translate", "d_rotate",
    "bonds", "energy", "pressure", "s_hard0", "s_well0", "vacancy_spread", "string_length",
    "overlaps", "largest_cluster",
)  # fmt: skip


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
        rot = K.quats_to_rots(_normalised(state.orientations))
        n_ov = K.count_overlaps(
            np.ascontiguousarray(state.positions, float), rot, np.asarray(state.box, float)
        )
        if n_ov:
            raise ParameterError(
                f"the start state has {n_ov} overlapping pair(s) of cubes; lower phi or start from a valid snapshot"
            )


def _normalised(q: np.ndarray) -> np.ndarray:
    q = np.ascontiguousarray(q, dtype=float)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- driver
def schedule(
    sweeps: int, block_sweeps: int | None = None, sample_every: int | None = None
) -> tuple[int, int]:
    """Block length and sampling interval (sweeps) for a run of ``sweeps`` sweeps.

    ``sample_every`` defaults to :data:`SAMPLE_EVERY`, or a tenth of the run if that is
    shorter (at least 10 samples), or the largest divisor of a given block not above
    that; ``block_sweeps`` defaults to the multiple of ``sample_every`` that gives about
    :data:`BLOCKS` blocks. The last block may be shorter than the others.
    """
    if sweeps < 1:
        raise ParameterError(f"sweeps={sweeps}: give a positive number of sweeps")
    k = sample_every
    if k is None:
        k = min(SAMPLE_EVERY, max(1, sweeps // 10))
        if block_sweeps is not None:
            k = max(d for d in range(1, min(k, block_sweeps) + 1) if block_sweeps % d == 0)
    bs = block_sweeps if block_sweeps is not None else k * max(1, round(sweeps / (BLOCKS * k)))
    if bs < 1 or k < 1 or bs % k:
        raise ParameterError(
            f"block of {bs} sweeps must be a positive multiple of sample_every={k}"
        )
    return int(bs), int(k)


def run(
    state: MCState,
    params: MCParams,
    sweeps: int,
    seed: int,
    *,
    equilibration: int | None = None,
    progress: bool = False,
) -> MCResult:
    """Run ``sweeps`` sweeps (N trial moves each) of NVT Monte Carlo from ``state``.

    The first ``equilibration`` sweeps (default: half, rounded to whole blocks; a given
    value is rounded up to a block boundary) tune the step sizes to
    ``params.target_acceptance``; production then runs with frozen steps so that the
    chain obeys detailed balance. Pressure and vacancy are sampled every
    ``sample_every`` sweeps and averaged per block (NaN for a block without a sample);
    acceptance, energy, overlaps and the largest cluster are taken per block (see
    :func:`schedule`). Sampling never touches the random stream, so the chain does not
    depend on the schedule. Ctrl-C stops at the next block boundary and returns what is
    done (``result.interrupted``).

    Parameters
    ----------
    state : start configuration (checked for overlaps and box size).
    params : model and move parameters.
    sweeps : total sweeps, equilibration included.
    seed : seed of the xoshiro256** stream; same seed and state give the same run bit for bit.
    equilibration : sweeps of equilibration.
    progress : show a tqdm progress bar.
    """
    bs, k_smp = schedule(sweeps, params.block_sweeps, params.sample_every)
    n_blocks = -(-sweeps // bs)
    if equilibration is None:
        equilibration = (n_blocks // 2) * bs
    if not 0 <= equilibration <= sweeps:
        raise ParameterError(f"equilibration={equilibration} must lie in 0..{sweeps}")
    equilibration = min(sweeps, -(-equilibration // bs) * bs)
    check_state(state, params)
    seed = int(seed)
    t_start = time.perf_counter()
    c_start = time.thread_time()

    n = state.n
    box = np.ascontiguousarray(state.box, dtype=float)
    pos = np.ascontiguousarray(state.positions, dtype=float).copy()
    pos -= box * np.floor(pos / box + 0.5)  # wrap into [-L/2, L/2)
    quat = _normalised(state.orientations).copy()
    rot = K.quats_to_rots(quat)
    rc = params.cutoff
    interact = rc > 0.0
    lmin = float(box.min())
    skin = params.skin
    # the SDF pressure needs every pair out to r_sdf = sqrt(3) / (1 - xmax) (and Delta):
    # listing out to max(rc, r_sdf) + skin keeps them listed between rebuilds, so a
    # sample never forces a rebuild (+2% list length for the hard core)
    r_sdf = max(SQRT3 / (1.0 - params.pressure_xmax) if params.hard else 0.0,
                params.well_range if params.beta_eps != 0.0 else 0.0)  # fmt: skip
    r_list = max(rc, r_sdf) + skin
    if params.hard:
        # inscribed spheres (radius 1/2) of non-overlapping cubes are disjoint, so at most
        # (2 r_list + 1)^3 centres fit within r_list: the rows can never overflow
        maxnb = min(n - 1, int((2 * r_list + 1) ** 3) + 1)
    else:
        maxnb = n - 1
    nbr = np.zeros((n, max(maxnb, 1)), dtype=np.int64)
    nn = np.zeros(n, dtype=np.int64)
    ref = pos.copy()
    if interact:
        K.build_nlist(pos, box, r_list, nbr, nn, ref)
    cluster_in_list = interact and params.well_range <= rc
    cap_t = skin / (2.0 * SQRT3) if interact else 0.5 * lmin
    d_t = min(params.translate_step, cap_t)
    d_r = min(params.rotate_step, math.pi)
    rng = K.rng_seed(seed)
    counts = np.zeros(7, dtype=np.int64)
    well = params.beta_eps != 0.0
    bonds = K.count_bonds(pos, box, params.well_range) if well else 0
    nbins = params.pressure_bins
    rho = n / float(np.prod(box))
    vac = obs.VacancyLattice.from_state(state)

    blocks: dict[str, list[float]] = {k: [] for k in BLOCK_KEYS}
    frames: list[tuple[np.ndarray, np.ndarray]] = []
    t_kernel = t_cpu = t_sample = t_block = 0.0
    moves_total = 0
    tests_total = 0
    rebuilds = 0
    interrupted = False
    done = 0
    from tqdm.auto import tqdm

    bar = tqdm(total=sweeps, disable=not progress, unit="sweep", leave=False)
    try:
        for _block in range(n_blocks):
            b_len = min(bs, sweeps - done)
            production = done >= equilibration
            counts[:] = 0
            hh = np.zeros(nbins, dtype=np.int64)
            hw = np.zeros(nbins if well else 0, dtype=np.int64)
            n_samples = 0
            spreads: list[float] = []
            strings: list[float] = []
            s = 0
            while s < b_len:
                chunk = min(k_smp, b_len - s)
                t0 = time.perf_counter()
                c0 = time.thread_time()
                K.mc_moves(
                    pos, quat, rot, box, nbr, nn, ref, r_list, skin, chunk * n,
                    d_t, d_r, params.p_translate, params.hard, params.beta_eps,
                    params.well_range, rng, counts,
                )  # fmt: skip
                t_kernel += time.perf_counter() - t0
                c1 = time.thread_time()
                t_cpu += c1 - c0
                s += chunk
                bar.update(chunk)
                if chunk < k_smp:
                    continue  # the short tail of a run: no sample
                if interact:
                    K.sdf_histograms(pos, rot, box, nbr, nn, params.pressure_xmax, hh, hw,
                                     params.hard, params.well_range)  # fmt: skip
                n_samples += 1
                if vac is not None:
                    spread, string = vac.sample(pos)
                    spreads.append(spread)
                    strings.append(string)
                t_sample += time.thread_time() - c1
            c1 = time.thread_time()
            done += b_len
            moves_total += int(counts[0] + counts[2])
            tests_total += int(counts[4])
            rebuilds += int(counts[5])
            bonds += int(counts[6])
            acc_t = counts[1] / counts[0] if counts[0] else math.nan
            acc_r = counts[3] / counts[2] if counts[2] else math.nan
            p = obs.sdf_pressure(hh, hw, n, n_samples, rho, params.pressure_xmax, params.beta_eps)
            # the Verlet list holds every pair closer than rc >= sqrt(3) (hard) and >= Delta
            # (well): overlaps, bonds and clusters in one O(N) pass over it
            n_ov, n_bonds, cluster = (
                OK.block_checks(pos, rot, box, nbr, nn, params.hard, params.well_range)
                if interact
                else (0, 0, 0)
            )
            if not cluster_in_list:
                cluster = obs.largest_cluster(pos, box, params.well_range)
            rec = {
                "sweep": done, "production": float(production), "acceptance_translate": acc_t,
                "acceptance_rotate": acc_r, "d_translate": d_t, "d_rotate": d_r, "bonds": bonds,
                "energy": params.beta_eps * bonds / n, "pressure": p.beta_p, "s_hard0": p.s_hard0,
                "s_well0": p.s_well0,
                "vacancy_spread": float(np.mean(spreads)) if spreads else math.nan,
                "string_length": float(np.mean(strings)) if strings else math.nan,
                "overlaps": n_ov, "largest_cluster": cluster,
            }  # fmt: skip
            if well:
                recount = n_bonds
                if recount != bonds:  # pragma: no cover - a bookkeeping bug, never a user error
                    raise RuntimeError(
                        f"running bond count {bonds} != recount {recount} after sweep {done}"
                    )
            for key in BLOCK_KEYS:
                blocks[key].append(rec[key])
            frames.append((pos.copy(), quat.copy()))
            if params.tune and not production and done < equilibration:
                d_t = _tuned(d_t, acc_t, params.target_acceptance, cap_t)
                d_r = _tuned(d_r, acc_r, params.target_acceptance, math.pi)
            t_block += time.thread_time() - c1
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()

    final = state.replace(
        positions=frames[-1][0].copy() if frames else state.positions.copy(),
        orientations=frames[-1][1].copy() if frames else state.orientations.copy(),
        provenance={
            **state.provenance,
            "mc": {"seed": seed, "sweeps": done, "params": params.as_dict()},
        },
    )
    return MCResult(
        state=final,
        params=params,
        seed=seed,
        sweeps=done,
        equilibration=min(equilibration, done),
        blocks={k: np.asarray(v, dtype=float) for k, v in blocks.items()},
        frames=frames,
        steps=(d_t, d_r),
        timing={
            "moves": moves_total,
            "pair_tests": tests_total,
            "rebuilds": rebuilds,
            "seconds": t_kernel,
            "cpu_seconds": t_cpu,
            # CPU seconds of this thread (robust on a shared machine): samples, per-block
            # work, and the whole run; their ratio is the observables' share of the run
            "sample_cpu_seconds": t_sample,
            "block_cpu_seconds": t_block,
            "total_cpu_seconds": time.thread_time() - c_start,
            "total_seconds": time.perf_counter() - t_start,
        },
        interrupted=interrupted,
        initial=state,
        block_sweeps=bs,
        sample_every=k_smp,
    )


def _tuned(d: float, acc: float, target: float, cap: float) -> float:
    # multiplicative controller, bounded per block so that one noisy block cannot run away
    if not math.isfinite(acc):
        return d
    f = min(1.5, max(0.5, acc / target)) if acc > 0 else 0.5
    return float(min(cap, max(1e-5, d * f)))
