"""Validation: pressure of hard cubes from virtual volume moves (SDF, Eppenga-Frenkel).

Runs use the default observable schedule of ``saxsred mc run`` (samples every 50 sweeps).

1. Perfect simple-cubic crystal of 1000 cubes at phi = 0.80: beta P sigma^3 should lie
   in 22.2-23.2 (HOOMD-blue HPMC 22.50 +/- 0.25; an independent code 22.86), for two
   different frozen move sizes and the tuned one.
2. Isotropic fluid of freely rotating cubes: Z = beta P / rho ~ 1.33 at phi = 0.05 and
   1.75-1.77 at phi = 0.10 (virial series, B2 = 5.5, with B3 of rotating cubes).

Run: ``python validation/mc_pressure.py [SWEEPS]`` (default 20000; a few minutes)
"""

from __future__ import annotations

import sys
import time

from saxsred.mc import MCParams, random_fluid, run, simple_cubic_crystal
from saxsred.mc.observables import block_mean


def main(sweeps: int = 20_000) -> None:
    st = simple_cubic_crystal(10, 0.80)
    print(f"SC crystal, N = {st.n}, phi = {st.phi:.3f}, {sweeps} sweeps (half equilibration)")
    for label, kw in (("tuned", {}), ("d = 0.02", {"tune": False, "translate_step": 0.02, "rotate_step": 0.04}),
                      ("d = 0.06", {"tune": False, "translate_step": 0.06, "rotate_step": 0.12})):  # fmt: skip
        t0 = time.perf_counter()
        res = run(st, MCParams(**kw), sweeps, seed=1)  # the default schedule, as `mc run`
        p, e = block_mean(res.blocks["pressure"][res.production])
        acc = res.blocks["acceptance_translate"][res.production].mean()
        ok = "ok" if 22.2 <= p <= 23.2 else "OUTSIDE 22.2-23.2"
        print(f"  {label:9s} beta P sigma^3 = {p:.3f} +/- {e:.3f}  (acc {acc:.2f}, max overlaps "
              f"{int(res.blocks['overlaps'].max())}, {time.perf_counter() - t0:.0f} s)  {ok}")  # fmt: skip
    for phi, ref in ((0.05, "1.33"), (0.10, "1.75-1.77")):
        fl = random_fluid(500, phi, rng=3)
        res = run(fl, MCParams(skin=1.0), sweeps, seed=2)
        p, e = block_mean(res.blocks["pressure"][res.production])
        print(
            f"  fluid phi = {phi:.2f}, N = 500: Z = {p / fl.phi:.4f} +/- {e / fl.phi:.4f}  (virial series {ref})"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
