"""Scattering of model supraparticles: Debye histogram and exact oriented-cube powder average.

Prints, measured in this run (with the load average, as the machine may be shared):
1. Debye scattering of N = 10,000 and 100,000 cubes' centres (SC block with 3.3/5.5 %
   vacancies and 0.3 nm disorder) on 500 q points in 0.05-2 nm^-1, as ratios against
   (a) freud's ``StaticStructureFactorDebye`` at N = 10,000 (an all-pairs sum per q), and
   (b) the floor: a bare numba loop over the N(N-1)/2 distances that only sums them
       (float64 like the histogram, same threads, same fold of rows). Goal: within 1.5x
       of the floor at N = 100,000.
   Two figures per N: ``saxsred model scatter SP.gsd --kind structure`` end to end
   (command to .dat, at its defaults: 500 q, dr = 0.05/q_max), and the library call
   ``debye_intensity`` beside it. The floor is timed before and after (best of the two),
   so a change of load during the run shows as their spread.
2. ``saxsred model scatter`` end to end (command to .dat) of a 10,000-cube supraparticle at
   its defaults (exact oriented-cube powder average) on 300 q points: a perfect crystal
   (D4h: 1/16 of the direction grid) and one with the paper's disorder (whole half
   sphere), with the quadrature stated.

Usage: python benchmarks/scatter.py [--quick] [--skip-disordered]
(--quick: N = 10,000 only and 60 q for the oriented average).

Measured 2026-12-03 on 2 shared cores (load average 4-7 during the run, full run ~30 min):
N = 99,983: floor 23.7 s, model scatter --kind structure 28.3 s = 1.20x (the command's fixed
~4 s is Python imports and numba's first-call set-up), debye_intensity 24.4 s = 1.03x.
N = 10,177: floor 0.32 s, debye_intensity 0.50 s = 1.6x (the q sum and the set-up weigh
more at small N); freud 500 k about 2,200 s = 4,400x. Oriented average, 300 q: perfect
22x22x21 (D4h) 50 s; with the paper's disorder (half sphere, per-cube F) 1,411 s.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from saxsred.structures import _kernels as K
from saxsred.structures import build_supraparticle, debye_intensity
from saxsred.structures.debye import DEFAULT_QDR, n_chunks
from saxsred.structures.oriented import degree_bound, sphere_rule

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def saxsred(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "saxsred", *args], check=True, capture_output=True)


def cells_for(n_target: int) -> tuple[int, int, int]:
    """A near-cubic block with about n_target cubes left after 3.5 % vacancies."""
    sites = n_target / 0.965
    n = int(sites ** (1 / 3))
    return (n, n, math.ceil(sites / (n * n)))


def debye_part(tmp: Path, sizes: tuple[int, ...]) -> None:
    q = np.linspace(0.05, 2.0, 500)
    # warm the kernels (compilation is not what a user pays twice; the numba cache keeps it)
    small = build_supraparticle("SC", 11.4, 9.5, (10, 10, 10)).positions_nm
    debye_intensity(small, q)
    K.pair_distance_floor(small, n_chunks())
    print(
        f"1. Debye scattering, 500 q points in 0.05-2 nm^-1, histogram bin dr = {DEFAULT_QDR / q.max():.4f} nm"
        f" ((q dr)^2/24 <= {DEFAULT_QDR**2 / 24:.1e}); {n_chunks() // 4} numba threads, {os.cpu_count()} CPUs"
    )
    for n in sizes:
        cells = cells_for(n)
        gsd = tmp / f"sp{n}.gsd"
        saxsred("model", "build", "--cells", *map(str, cells), "--vacancies-bulk", "0.033",
                "--vacancies-surface", "0.055", "--disorder-pos", "0.3", "--seed", "1",
                "-o", str(gsd))  # fmt: skip
        from saxsred.cli.model import read_supraparticle

        pos = np.ascontiguousarray(read_supraparticle(str(gsd), -1, None)[0].positions_nm)
        rep = 2 if n <= 10_000 else 1
        floor = partial(K.pair_distance_floor, pos, n_chunks())
        command = partial(saxsred, "model", "scatter", str(gsd), "--kind", "structure",
                          "-o", str(tmp / "s.dat"))  # fmt: skip
        floors, calls, cmds = [timed(floor)], [], []
        l0 = load()
        for _ in range(rep):
            cmds.append(timed(command))
            calls.append(timed(partial(debye_intensity, pos, q)))
        floors.append(timed(floor))
        tf = min(floors)
        print(
            f"   N = {len(pos):>7,} ({l0} -> {load()}): distance floor {tf:7.2f} s"
            f" (runs {floors[0]:.2f}, {floors[1]:.2f});"
            f" model scatter --kind structure {min(cmds):7.2f} s = {min(cmds) / tf:4.2f}x floor;"
            f" debye_intensity {min(calls):7.2f} s = {min(calls) / tf:4.2f}x floor"
        )
        if n == 10_000:
            freud_line(pos, min(calls))


def freud_line(pos: np.ndarray, t_ours: float) -> None:
    try:
        import freud
    except ImportError:
        print("   freud not installed (pip install freud-analysis)")
        return
    span = float(np.max(np.ptp(pos, axis=0)))
    box = freud.box.Box.cube(2.5 * span)  # isolated: minimum images never shorten a pair
    # freud sums all pairs for every k: 10 k values timed, scaled to 500 (cost ~ k; its
    # 500 k values take about half an hour here)
    sf = freud.diffraction.StaticStructureFactorDebye(num_k_values=10, k_max=2.0, k_min=0.05)
    p32 = pos.astype(np.float32)
    sf.compute((box, p32[:100]), reset=True)
    t = 50.0 * timed(lambda: sf.compute((box, p32), reset=True))
    print(
        f"   freud StaticStructureFactorDebye, N = {len(pos):,}, 500 k: {t:8.1f} s"
        f" (10 k timed x 50, {load()}) = {t / t_ours:6.1f}x debye_intensity"
    )


def oriented_part(tmp: Path, npt: int, disordered: bool) -> None:
    print(
        f"2. saxsred model scatter at its defaults (exact oriented-cube powder average), 10,000 cubes,"
        f" {npt} q points in 0.05-2 nm^-1, command to file"
    )
    cases = [("perfect 22x22x21", [])]
    if disordered:
        cases.append(("disordered (3.3/5.5 % vacancies, 0.3 nm, 9.6 deg)",
                      ["--vacancies-bulk", "0.033", "--vacancies-surface", "0.055",
                       "--disorder-pos", "0.3", "--disorder-rot-fwhm", "9.6"]))  # fmt: skip
    for label, extra in cases:
        gsd = tmp / "sp.gsd"
        saxsred(
            "model", "build", "--cells", "22", "22", "21", "--seed", "1", "-o", str(gsd), *extra
        )
        l0 = load()
        dt = timed(partial(saxsred, "model", "scatter", str(gsd), "--npt", str(npt),
                           "-o", str(tmp / "sp.dat")))  # fmt: skip
        r = 11 * 11.4 * math.sqrt(3) + 9.5 * math.sqrt(3) / 2
        lmax = degree_bound(2.0, r)
        sym = "d4h" if label.startswith("perfect") else "inversion"
        nd = len(sphere_rule(lmax, sym)[0])
        print(
            f"   {label}: {dt:8.1f} s ({l0} -> {load()}; at q = 2 nm^-1 l_max = {lmax},"
            f" {nd:,} directions, {sym} cut)"
        )
    print(
        "   quadrature: Gauss-Legendre in cos(theta) x trapezoid in phi, exact for spherical-harmonic\n"
        "   degree <= 2 l_max, l_max = qR + 6 (qR)^(1/3) + 10 (R: largest centre distance + half-diagonal):\n"
        "   truncation below 1e-12 of the sum (tests: against a rule with 25 more degrees and the direct\n"
        "   Debye sum). A perfect block uses the D4h cut (1/16 of the sphere): the product grid is not\n"
        "   invariant under the 3-fold axes, so the full 48-fold Oh cut would need a Lebedev grid\n"
        "   (tabulated to degree 131 only, q R < ~60); a disordered block needs the half sphere (I(n) = I(-n))."
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-disordered", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        debye_part(tmp, (10_000,) if args.quick else (10_000, 100_000))
        oriented_part(tmp, 60 if args.quick else 300, not args.skip_disordered)


if __name__ == "__main__":
    main()
