"""Validation: attraction localises the vacancy (the paper's Fig. 5), at the run defaults.

10 x 10 x 10 simple-cubic sites minus one (a point vacancy, N = 999) at phi = 0.80,
Delta = 1.14 sigma, beta*eps = 0, -0.5, -1, 20,000 sweeps with `saxsred mc run`'s
default schedule (pressure and vacancy sampled every 50 sweeps, 100 blocks, the second
half production). Vacancy spread: particles in the vacancy's row displaced along the
row by > 0.15 a (sites the vacancy is shared over, the paper's measure).

Criterion (issue 12): hard cubes delocalise the vacancy over >= 2 sites within 20,000
sweeps (production mean); with beta*eps = -1 it stays below 1.2. A single run's mean
scatters widely at beta*eps = -1 (seen: 0.2 to 1.6; the vacancy neighbour relaxing into
the empty site costs one bond, 1 kT, and is often worth it), so give several seeds: the
criterion is then applied to the mean over seeds. Also prints the string
length, the pressure and the energy, and saves the lattice-slice figure next to this
script (mc_vacancy.png).

Run: ``python validation/mc_vacancy.py [--sweeps 20000] [--seeds 1 2 3 4 5 6] [--eps 0 -0.5 -1]``
(12 runs by default, 15-20 s each on a busy 2-core machine; defaults: 6 seeds, beta*eps = 0 and -1)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

from saxsred.io.atomic import atomic_path  # noqa: E402
from saxsred.mc import MCParams, run, simple_cubic_crystal  # noqa: E402
from saxsred.mc.figure import lattice_slices  # noqa: E402
from saxsred.mc.observables import block_mean  # noqa: E402

LIMITS = {0.0: (">=", 2.0), -1.0: ("<", 1.2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--eps", type=float, nargs="+", default=[0.0, -1.0])
    args = ap.parse_args()
    states, titles, verdicts = [], [], []
    per_eps: dict[float, list[float]] = {}
    print(
        f"N = 999 (10^3 sites, point vacancy), phi = 0.80, {args.sweeps} sweeps, default schedule"
    )
    for eps in args.eps:
        for seed in args.seeds:
            t0 = time.perf_counter()
            st = simple_cubic_crystal(10, 0.80, vacancies=1, rng=7)
            res = run(st, MCParams(beta_eps=eps), args.sweeps, seed=seed)
            prod = res.production
            s, se = block_mean(res.blocks["vacancy_spread"][prod])
            sl, sle = block_mean(res.blocks["string_length"][prod])
            p, pe = block_mean(res.blocks["pressure"][prod])
            smax = float(res.blocks["vacancy_spread"].max())
            per_eps.setdefault(eps, []).append(s)
            verdict = ""
            if eps in LIMITS:
                op, lim = LIMITS[eps]
                ok = s >= lim if op == ">=" else s < lim
                verdict = f"  [spread {op} {lim}: {'yes' if ok else 'no'}]"
            print(f"beta eps = {eps:5.2f}, seed {seed}: vacancy spread {s:.2f} +/- {se:.2f} sites "
                  f"(block max {smax:.2f}), string {sl:.2f} +/- {sle:.2f} sites, "
                  f"beta P sigma^3 {p:.2f} +/- {pe:.2f}, E/N {res.blocks['energy'][prod].mean():.4f} "
                  f"({time.perf_counter() - t0:.0f} s, blocks of {res.block_sweeps}, samples every "
                  f"{res.sample_every}){verdict}")  # fmt: skip
        states.append(res.state)
        titles.append(f"beta eps = {eps:g}")
    out = Path(__file__).with_suffix(".png")
    with atomic_path(out) as tmp:
        lattice_slices(states, titles).savefig(tmp, format="png", dpi=130)
    print(f"wrote {out}")
    # one run's production mean scatters far more than its block error says (the vacancy
    # hops and relaxes on the scale of thousands of sweeps), so the criterion is applied to
    # the mean over seeds, with the seed-to-seed standard error
    for eps, vals in per_eps.items():
        v = np.asarray(vals)
        err = v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else float("nan")
        line = f"beta eps = {eps:5.2f}: spread over {v.size} seed(s) {v.mean():.2f} +/- {err:.2f} (range {v.min():.2f}-{v.max():.2f})"
        if eps in LIMITS:
            op, lim = LIMITS[eps]
            ok = v.mean() >= lim if op == ">=" else v.mean() < lim
            verdicts.append(ok)
            line += f"  criterion mean {op} {lim}: {'PASS' if ok else 'FAIL'}; single runs meeting it: {int(np.sum(v >= lim if op == '>=' else v < lim))}/{v.size}"
        print(line)
    print("criterion: " + ("all PASS" if all(verdicts) else "FAILED"))


if __name__ == "__main__":
    main()
