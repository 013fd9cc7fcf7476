"""Validation: attraction localises the vacancy (the paper's Fig. 5).

10 x 10 x 10 simple-cubic sites minus one at phi = 0.80, Delta = 1.14 sigma, beta*eps =
0, -0.5, -1. Expected vacancy spread (particles in the vacancy's row displaced along
the row by > 0.15 a, mean over the production half): about 3-4 at 0, less at -0.5,
below 1 at -1. Saves the lattice-slice figure next to this script (mc_vacancy.png).

Run: ``python validation/mc_vacancy.py [SWEEPS]`` (default 40000; several minutes)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from saxsred.io.atomic import atomic_path  # noqa: E402
from saxsred.mc import MCParams, run, simple_cubic_crystal  # noqa: E402
from saxsred.mc.figure import lattice_slices  # noqa: E402
from saxsred.mc.observables import block_mean  # noqa: E402


def main(sweeps: int = 40_000) -> None:
    states, titles = [], []
    for eps in (0.0, -0.5, -1.0):
        t0 = time.perf_counter()
        st = simple_cubic_crystal(10, 0.80, vacancies=1, rng=7)
        res = run(st, MCParams(beta_eps=eps, block_sweeps=1000, sample_every=10), sweeps, seed=11)
        prod = res.production
        s, se = block_mean(res.blocks["vacancy_spread"][prod])
        sl, sle = block_mean(res.blocks["string_length"][prod])
        p, pe = block_mean(res.blocks["pressure"][prod])
        print(f"beta eps = {eps:5.2f}: vacancy spread {s:.2f} +/- {se:.2f}, string {sl:.2f} +/- {sle:.2f} sites, "
              f"beta P sigma^3 {p:.2f} +/- {pe:.2f}, E/N {res.blocks['energy'][prod].mean():.4f}  "
              f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        states.append(res.state)
        titles.append(f"beta eps = {eps:g}")
    out = Path(__file__).with_suffix(".png")
    with atomic_path(out) as tmp:
        lattice_slices(states, titles).savefig(tmp, format="png", dpi=130)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000)
