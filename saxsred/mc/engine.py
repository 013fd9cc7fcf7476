"""NVT Monte Carlo of hard cubes with a square-well attraction: the driver.

Units: cube edge sigma = 1, energies in kT. The model, its parameters and the start
states are in :mod:`saxsred.mc.model` (:class:`MCParams`, :class:`MCState`,
:func:`simple_cubic_crystal`, :func:`random_fluid`; re-exported here); this module runs
the chain (:func:`run`) on the schedule of :func:`schedule` and returns an
:class:`MCResult`.

Example
-------
>>> from saxsred.mc import MCParams, run, simple_cubic_crystal
>>> state = simple_cubic_crystal(4, 0.8, vacancies=1, rng=1)
>>> result = run(state, MCParams(beta_eps=-1.0), sweeps=40, seed=7)  # doctest: +SKIP
>>> result.blocks["pressure"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from . import _kernels as K
from . import observables as obs
from . import obskernels as OK
from .model import (
    SQRT3,
    MCParams,
    MCState,
    check_state,
    normalised,
    random_fluid,
    simple_cubic_crystal,
)

__all__ = [
    "BLOCKS",
    "BLOCK_KEYS",
    "SAMPLE_EVERY",
    "SQRT3",
    "MCParams",
    "MCResult",
    "MCState",
    "check_state",
    "random_fluid",
    "run",
    "schedule",
    "simple_cubic_crystal",
]

#: default sweeps between pressure/vacancy samples. An SDF pressure sample plus the O(N)
#: vacancy pass cost about two sweeps (N = 999, phi = 0.8), so sampling every 50 sweeps
#: keeps the observables near 5% of the run (printed by `mc run`); samples 50 sweeps
#: apart are still correlated at phi = 0.8, so little information is lost.
SAMPLE_EVERY = 50


#: default number of blocks (= frames written) per run
BLOCKS = 100


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
    quat = normalised(state.orientations).copy()
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
