"""Scattering of model supraparticles: Debye histogram and exact oriented-cube powder average.

Prints, measured in this run:
1. Debye scattering (``saxsred.structures.debye_intensity``, histogram + 500 q points) of
   N = 10,000 and 100,000 cubes' centres (SC block with 3 % vacancies and 0.3 nm disorder),
   as ratios against
   (a) freud's ``StaticStructureFactorDebye`` at N = 10,000 (an all-pairs sum per q), and
   (b) the floor: a bare numba loop over the N(N-1)/2 distances that only sums them
       (same threads, same fold of rows). Goal: within 1.5x of the floor at N = 100,000.
2. ``saxsred model scatter`` end to end (command to .dat) of a 10,000-cube supraparticle at
   its defaults: the exact oriented-cube powder average on 300 q points, perfect crystal
   (D4h: 1/16 of the direction grid) and with the paper's disorder (whole half sphere),
   with the quadrature stated.

Usage: python benchmarks/scatter.py [--quick]   (--quick: N = 10,000 only, 60 q for the
oriented average). The machine may be shared: timings are best of a few repeats.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from saxsred.structures import _kernels as K
from saxsred.structures import build_supraparticle, debye_intensity
from saxsred.structures.debye import DEFAULT_QDR, n_chunks
from saxsred.structures.oriented import degree_bound, sphere_rule


def best_of(fn, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def cubes(n_target: int, rng: int = 0) -> np.ndarray:
    n = round(n_target ** (1 / 3))
    sp = build_supraparticle(
        "SC", 11.4, 9.5, (n, n, n + (1 if n**3 < n_target else 0)), 0.033, 0.055, 0.3, rng=rng
    )
    return sp.positions_nm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    q = np.linspace(0.05, 2.0, 500)
    # warm the kernels (compilation is not what a user pays twice)
    small = cubes(1000)
    debye_intensity(small, q)
    K.pair_distance_floor(small, n_chunks())

    print(
        f"1. Debye scattering, 500 q points, histogram bin dr = {DEFAULT_QDR / q.max():.4f} nm"
        f" ((q dr)^2/24 <= {DEFAULT_QDR**2 / 24:.1e})"
    )
    sizes = (10_000,) if args.quick else (10_000, 100_000)
    for n in sizes:
        pos = cubes(n)
        rep = 3 if n <= 10_000 else 1
        t_ours = best_of(lambda pos=pos: debye_intensity(pos, q), rep)
        t_floor = best_of(lambda pos=pos: K.pair_distance_floor(pos, n_chunks()), rep)
        line = f"   N = {len(pos):>7,}: saxsred {t_ours:8.3f} s, distance floor {t_floor:8.3f} s, ratio {t_ours / t_floor:5.2f}x (goal <= 1.5x at 100,000)"
        if n == 10_000:
            try:
                import freud

                span = float(np.max(np.ptp(pos, axis=0)))
                box = freud.box.Box.cube(2.5 * span)
                # freud sums all pairs for every k: 50 k values timed, scaled to 500 (cost ~ k)
                sf = freud.diffraction.StaticStructureFactorDebye(
                    num_k_values=50, k_max=2.0, k_min=0.05
                )
                p32 = pos.astype(np.float32)
                t_freud = 10.0 * best_of(
                    lambda sf=sf, box=box, p32=p32: sf.compute((box, p32), reset=True), 1
                )
                line += (
                    f"; freud {t_freud:8.2f} s (50 k timed x 10) = {t_freud / t_ours:6.1f}x saxsred"
                )
            except ImportError:
                line += "; freud not installed (pip install freud-analysis)"
        print(line)

    print(
        "2. saxsred model scatter, 10,000 cubes, 300 q points in 0.05-2 nm^-1 (exact oriented-cube powder average)"
    )
    npt = 60 if args.quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (
            ("perfect 22x22x21", []),
            (
                "disordered (3.3/5.5 % vacancies, 0.3 nm, 9.6 deg)",
                [
                    "--vacancies-bulk",
                    "0.033",
                    "--vacancies-surface",
                    "0.055",
                    "--disorder-pos",
                    "0.3",
                    "--disorder-rot-fwhm",
                    "9.6",
                ],
            ),
        ):
            gsd = Path(tmp) / "sp.gsd"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "saxsred",
                    "model",
                    "build",
                    "--cells",
                    "22",
                    "22",
                    "21",
                    "--seed",
                    "1",
                    "-o",
                    str(gsd),
                    *extra,
                ],
                check=True,
                capture_output=True,
            )
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "saxsred",
                    "model",
                    "scatter",
                    str(gsd),
                    "--npt",
                    str(npt),
                    "-o",
                    str(Path(tmp) / "sp.dat"),
                ],
                check=True,
                capture_output=True,
            )
            dt = time.perf_counter() - t
            r = 11 * 11.4 * math.sqrt(3) + 9.5 * math.sqrt(3) / 2
            lmax = degree_bound(2.0, r)
            nd = len(sphere_rule(lmax, "d4h" if label.startswith("perfect") else "inversion")[0])
            print(
                f"   {label}: {dt:8.1f} s command to file ({npt} q; at q = 2 nm^-1 l_max = {lmax}, {nd:,} directions)"
            )
    print(
        "   quadrature: Gauss-Legendre in cos(theta) x trapezoid in phi, exact for spherical-harmonic degree <= 2 l_max,\n"
        "   l_max = qR + 6 (qR)^(1/3) + 10 (R: largest centre distance + half-diagonal): truncation below 1e-12;\n"
        "   perfect blocks use the D4h cut (1/16); the full 48-fold Oh cut would need a Lebedev grid (degree <= 131)."
    )


if __name__ == "__main__":
    main()
