"""Benchmark: `saxsred mc run` from command to GSD file, N = 999, phi = 0.80, at its defaults.

What a user runs: ``saxsred mc run --n-cells 10 --vacancies 1 --sweeps S --seed 1 -o
run.gsd`` (hard cubes) and the same with ``--eps -1`` (square well, Delta = 1.14), timed
as a subprocess from launch to exit with the GSD file written: Python start-up, imports,
loading (or compiling) the numba kernels, the run with its default observable schedule,
and the file. Rates are trial moves of one particle per second (one sweep = N trial
moves), the unit of the references.

Compile time: the kernels are numba functions with ``cache=True``. The first command of
a fresh install compiles them and writes the cache; every later command loads it. The
benchmark points NUMBA_CACHE_DIR at an empty folder, times that first (cold) command,
then the warm ones from the cache it left; the rates use the warm commands and the cold
one is printed beside them (cold - warm = compile time, paid once per install).

Printed beside, timed in the same run:
- kernel only: the same run in-process, time inside the move kernel alone;
- reference: a plain numba cell-list hard-cube Monte Carlo written below (cells of edge
  >= sqrt(3) sigma, 27-cell search, a textbook 15-axis separating-axis test over axis
  vectors, rotation matrices updated by Rodrigues), warm, same N, phi and step sizes.
- quoted, not measured here: HOOMD-blue HPMC 0.51 M/s hard, 0.35 M/s with the well
  (built from source on this kind of machine; issue 12).
Goal (issue 12): >= 1.0 M trial moves/s hard and >= 0.7 M with the well, end to end.
On a machine shared with other jobs, timings are noisy: the best of ``--repeat`` warm
commands is used, and all are printed.

Run: ``python benchmarks/mc.py [--sweeps 20000] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

GOALS = {0.0: 1.0e6, -1.0: 0.7e6}
HOOMD = {0.0: 0.51e6, -1.0: 0.35e6}
N_CELLS, PHI, N = 10, 0.80, 999


# ------------------------------------------------------------------ the command itself
# the installed console script, as a user types it (beside this Python, not a pyenv shim)
_SCRIPT = Path(sys.executable).with_name("saxsred")
SAXSRED = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "saxsred"]


def time_command(sweeps: int, eps: float, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `saxsred mc run` subprocess, launch to exit, file checked."""
    cmd = [*SAXSRED, "mc", "run", "--n-cells", str(N_CELLS),
           "--vacancies", "1", "--phi", str(PHI), "--eps", str(eps), "--sweeps", str(sweeps),
           "--seed", "1", "--quiet", "-o", str(out)]  # fmt: skip
    if out.exists():
        out.unlink()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"saxsred mc run failed ({proc.returncode}): {proc.stderr.strip()}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(f"      {wall:6.2f} s wall, {cpu:6.2f} s CPU | {proc.stdout.strip()}")
    return wall, cpu


# --------------------------------------------------------------- plain reference loop
@njit(cache=True)
def _ref_overlap(d, A, B, axes):
    # textbook SAT: 3 + 3 face normals and 9 edge cross products, degenerate ones skipped;
    # ``axes`` is scratch (15, 3) so that the loop allocates nothing
    for k in range(3):
        for c in range(3):
            axes[k, c] = A[c, k]
            axes[3 + k, c] = B[c, k]
    m = 6
    for a in range(3):
        for b in range(3):
            axes[m, 0] = A[1, a] * B[2, b] - A[2, a] * B[1, b]
            axes[m, 1] = A[2, a] * B[0, b] - A[0, a] * B[2, b]
            axes[m, 2] = A[0, a] * B[1, b] - A[1, a] * B[0, b]
            m += 1
    for k in range(15):
        L0, L1, L2 = axes[k, 0], axes[k, 1], axes[k, 2]
        if L0 * L0 + L1 * L1 + L2 * L2 < 1e-12:
            continue
        ra = 0.0
        rb = 0.0
        for c in range(3):
            ra += 0.5 * abs(A[0, c] * L0 + A[1, c] * L1 + A[2, c] * L2)
            rb += 0.5 * abs(B[0, c] * L0 + B[1, c] * L1 + B[2, c] * L2)
        if abs(d[0] * L0 + d[1] * L1 + d[2] * L2) > ra + rb:
            return False
    return True


@njit(cache=True)
def _cell(x, L, nc):
    return int((x / L + 0.5) * nc) % nc


@njit(cache=True)
def reference_sweeps(pos, rot, box, sweeps, d_t, d_r, seed):
    """Plain cell-list Metropolis of hard cubes (no neighbour list); returns accepted moves."""
    np.random.seed(seed)  # noqa: NPY002 (numba-native stream)
    n = pos.shape[0]
    nc = np.empty(3, dtype=np.int64)
    for k in range(3):
        nc[k] = int(box[k] // math.sqrt(3.0))
    cap = 64
    cells = -np.ones((nc[0], nc[1], nc[2], cap), dtype=np.int64)
    occ = np.zeros((nc[0], nc[1], nc[2]), dtype=np.int64)
    where = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        c0, c1, c2 = (_cell(pos[i, 0], box[0], nc[0]), _cell(pos[i, 1], box[1], nc[1]),
                      _cell(pos[i, 2], box[2], nc[2]))  # fmt: skip
        cells[c0, c1, c2, occ[c0, c1, c2]] = i
        occ[c0, c1, c2] += 1
        where[i, 0], where[i, 1], where[i, 2] = c0, c1, c2
    acc = 0
    d = np.empty(3)
    newp = np.empty(3)
    newR = np.empty((3, 3))
    Kx = np.zeros((3, 3))
    axes = np.empty((15, 3))
    for _ in range(sweeps * n):
        i = np.random.randint(n)  # noqa: NPY002 (numba-native stream)
        newp[:] = pos[i]
        newR[:, :] = rot[i]
        if np.random.random() < 0.5:  # noqa: NPY002 (numba-native stream)
            for k in range(3):
                newp[k] += d_t * (2.0 * np.random.random() - 1.0)  # noqa: NPY002 (numba-native stream)
                newp[k] -= box[k] * math.floor(newp[k] / box[k] + 0.5)
        else:
            u0, u1, u2 = np.random.normal(), np.random.normal(), np.random.normal()  # noqa: NPY002 (numba-native stream)
            un = math.sqrt(u0 * u0 + u1 * u1 + u2 * u2)
            u0, u1, u2 = u0 / un, u1 / un, u2 / un
            th = d_r * (2.0 * np.random.random() - 1.0)  # noqa: NPY002 (numba-native stream)
            Kx[0, 1], Kx[0, 2], Kx[1, 0] = -u2, u1, u2
            Kx[1, 2], Kx[2, 0], Kx[2, 1] = -u0, -u1, u0
            s, c = math.sin(th), 1.0 - math.cos(th)
            for r in range(3):  # Rodrigues: dR = I + sin K + (1 - cos) K^2; R' = dR R
                for q in range(3):
                    acc_rq = 0.0
                    for m in range(3):
                        dr = (1.0 if r == m else 0.0) + s * Kx[r, m]
                        for t in range(3):
                            dr += c * Kx[r, t] * Kx[t, m]
                        acc_rq += dr * rot[i, m, q]
                    newR[r, q] = acc_rq
        c0 = _cell(newp[0], box[0], nc[0])
        c1 = _cell(newp[1], box[1], nc[1])
        c2 = _cell(newp[2], box[2], nc[2])
        hit = False
        for a in range(-1, 2):
            for b in range(-1, 2):
                for g in range(-1, 2):
                    e0 = (c0 + a) % nc[0]
                    e1 = (c1 + b) % nc[1]
                    e2 = (c2 + g) % nc[2]
                    for sl in range(occ[e0, e1, e2]):
                        j = cells[e0, e1, e2, sl]
                        if j == i:
                            continue
                        for k in range(3):
                            d[k] = pos[j, k] - newp[k]
                            d[k] -= box[k] * math.floor(d[k] / box[k] + 0.5)
                        r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                        if r2 < 3.0 and _ref_overlap(d, newR, rot[j], axes):
                            hit = True
                            break
                    if hit:
                        break
                if hit:
                    break
            if hit:
                break
        if hit:
            continue
        acc += 1
        o0, o1, o2 = where[i, 0], where[i, 1], where[i, 2]
        if o0 != c0 or o1 != c1 or o2 != c2:
            o = occ[o0, o1, o2]
            for sl in range(o):
                if cells[o0, o1, o2, sl] == i:
                    cells[o0, o1, o2, sl] = cells[o0, o1, o2, o - 1]
                    break
            occ[o0, o1, o2] = o - 1
            cells[c0, c1, c2, occ[c0, c1, c2]] = i
            occ[c0, c1, c2] += 1
            where[i, 0], where[i, 1], where[i, 2] = c0, c1, c2
        pos[i] = newp
        rot[i] = newR
    return acc


def reference_rate(state, steps: tuple[float, float], sweeps: int) -> tuple[float, float, float]:
    """(trial moves/s wall, per CPU second, acceptance) of the plain loop, compiled first."""
    pos = np.ascontiguousarray(state.positions, float)
    rot = np.tile(np.eye(3), (len(pos), 1, 1))
    reference_sweeps(pos[:8].copy(), rot[:8].copy(), state.box, 1, *steps, 0)  # compile
    t0, c0 = time.perf_counter(), time.thread_time()
    acc = reference_sweeps(pos.copy(), rot.copy(), state.box, sweeps, *steps, 1)
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    moves = sweeps * len(pos)
    return moves / wall, moves / cpu, acc / moves


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=20_000, help="sweeps per command (default 20000)")
    ap.add_argument("--repeat", type=int, default=2, help="warm commands per case (best kept)")
    ap.add_argument("--ref-sweeps", type=int, default=1000, help="sweeps of the reference loop")
    args = ap.parse_args()

    from saxsred.mc import MCParams, run, simple_cubic_crystal

    moves = args.sweeps * N
    print(f"saxsred mc run, N = {N} (10^3 sites, 1 vacancy), phi = {PHI}, {args.sweeps} sweeps "
          f"= {moves / 1e6:.1f} M trial moves, default schedule; load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    cmd = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba_cache")}
        out = Path(tmp) / "run.gsd"
        print("  cold numba cache (first command of a fresh install: compiles the kernels):")
        cold = time_command(args.sweeps, 0.0, out, env)
        for eps in (0.0, -1.0):
            print(f"  {'hard' if eps == 0 else 'well beta*eps = -1'}, warm cache:")
            cmd[eps] = min(time_command(args.sweeps, eps, out, env) for _ in range(args.repeat))
        print(f"  compile time: cold {cold[0]:.1f} s - warm {cmd[0.0][0]:.1f} s = "
              f"{cold[0] - cmd[0.0][0]:.0f} s wall ({cold[1] - cmd[0.0][1]:.0f} s CPU), paid by the first command after install "
              "(not in the rates below: they use the warm commands)")  # fmt: skip

    print("  kernel only (the same run in-process, time inside the move kernel):")
    st = simple_cubic_crystal(N_CELLS, PHI, vacancies=1, rng=1)
    kernel, steps = {}, None
    for eps in (0.0, -1.0):
        res = run(st, MCParams(beta_eps=eps), max(1000, args.sweeps // 4), seed=1)
        t = res.timing
        kernel[eps] = (t["moves"] / t["seconds"], t["moves"] / t["cpu_seconds"])
        share = (t["sample_cpu_seconds"] + t["block_cpu_seconds"]) / t["total_cpu_seconds"]
        print(f"      eps {eps:4.1f}: {kernel[eps][0] / 1e6:.2f} M/s wall in the kernel; observables "
              f"{100 * share:.1f}% of the run's CPU time; {t['rebuilds']} list rebuilds")  # fmt: skip
        if eps == 0:
            steps = res.steps
    ref, ref_cpu, ref_acc = reference_rate(st, steps, args.ref_sweeps)
    print(f"  reference: acceptance {ref_acc:.2f} at the tuned steps {steps[0]:.3f} sigma, "
          f"{steps[1]:.3f} rad; {args.ref_sweeps} sweeps")  # fmt: skip

    print("\n  M trial moves/s (one sweep = N)  command, wall (goal)   command/CPU-s   "
          "kernel wall (CPU)   plain numba ref wall (CPU)   HOOMD-blue (quoted)")  # fmt: skip
    for eps in (0.0, -1.0):
        e2e, e2e_cpu = moves / cmd[eps][0], moves / cmd[eps][1]
        label = "hard cubes" if eps == 0 else "square well eps = -1"
        ok = "met" if e2e >= GOALS[eps] else "NOT met"
        refcol = (f"{ref / 1e6:.2f} ({ref_cpu / 1e6:.2f}); command {e2e / ref:.1f}x"
                  if eps == 0 else "(hard only)")  # fmt: skip
        print(f"  {label:32s} {e2e / 1e6:5.2f} ({GOALS[eps] / 1e6:.1f}: {ok})   {e2e_cpu / 1e6:8.2f}       "
              f"{kernel[eps][0] / 1e6:5.2f} ({kernel[eps][1] / 1e6:.2f})       {refcol:28s} "
              f"{HOOMD[eps] / 1e6:.2f}")  # fmt: skip
    print("  wall rates suffer when other jobs share the CPUs; the CPU-second rates do not.")


if __name__ == "__main__":
    main()
