"""Benchmark: trial moves per second per core of the cube Monte Carlo, N = 1000, phi = 0.80.

Simple-cubic crystal of 1000 cubes at phi = 0.80, hard (beta*eps = 0) and with the
square well (beta*eps = -1, Delta = 1.14), step sizes tuned to 30% acceptance. Times
the move kernel only, in CPU seconds of its one thread (= per core) and counts the pair overlap tests done in
the same run; separately times bare overlap tests on the run's own neighbour pairs.
Reference goals: 1.0 M moves/s hard, 0.7 M with the well (HOOMD-blue HPMC built from
source on this kind of machine: 0.51 and 0.35; a straightforward numba cell-list
code: about 0.3).

Run: ``python benchmarks/mc.py [SWEEPS]``
"""

from __future__ import annotations

import sys
import time

import numpy as np

from saxsred.mc import MCParams, run, simple_cubic_crystal
from saxsred.mc import _kernels as K

GOALS = {0.0: 1.0e6, -1.0: 0.7e6}
HOOMD = {0.0: 0.51e6, -1.0: 0.35e6}


def bare_overlap_rate(state, repeat: int = 20) -> float:
    """Overlap tests per second on the configuration's pairs closer than sqrt(3) sigma."""
    pos, box = state.positions, state.box
    rot = K.quats_to_rots(state.orientations)
    d = pos[None, :, :] - pos[:, None, :]
    d -= box * np.round(d / box)
    i, j = np.nonzero(np.triu(np.einsum("ijk,ijk->ij", d, d) < 3.0, 1))
    t, A, B = d[i, j].copy(), rot[i].copy(), rot[j].copy()
    K.overlap_pairs(t[:10], A[:10], B[:10])
    t0 = time.thread_time()
    for _ in range(repeat):
        K.overlap_pairs(t, A, B)
    return repeat * len(t) / (time.thread_time() - t0)


def main(sweeps: int = 2000) -> None:
    st = simple_cubic_crystal(10, 0.80)
    run(
        simple_cubic_crystal(4, 0.8), MCParams(beta_eps=-1.0), 20, seed=0
    )  # compile outside the timing
    print(f"N = {st.n} cubes, phi = {st.phi:.2f}, {sweeps} sweeps (half tuning), kernel time only")
    for eps in (0.0, -1.0):
        res = run(st, MCParams(beta_eps=eps, block_sweeps=100, sample_every=100), sweeps, seed=1)
        t = res.timing
        # per core: CPU time of the (single-threaded) kernel, robust to a busy machine
        rate = t["moves"] / t["cpu_seconds"]
        tests = t["pair_tests"] / t["cpu_seconds"]
        wall = t["moves"] / t["seconds"]
        acc = res.blocks["acceptance_translate"][res.production].mean()
        bare = bare_overlap_rate(res.state)
        label = "hard        " if eps == 0 else "well eps=-1 "
        print(f"  {label} {rate / 1e6:6.2f} M trial moves/s  ratio to goal {rate / GOALS[eps]:.2f}  "
              f"(vs HOOMD-blue {rate / HOOMD[eps]:.1f}x; acceptance {acc:.2f}; wall-clock {wall / 1e6:.2f} M/s)")  # fmt: skip
        print(f"               {tests / 1e6:6.2f} M pair overlap tests/s inside the moves "
              f"({t['pair_tests'] / t['moves']:.1f} per move); bare overlap tests {bare / 1e6:.1f} M/s")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
