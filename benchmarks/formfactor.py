"""Speed of the 10 %-polydisperse cube form factor against sasmodels' ``rectangular_prism``.

Both evaluate <V^2 P(q)> on the same 1000 q points for a 9.5 nm cube with a Gaussian
edge distribution discretised the same way (sasmodels' default: 35 equally spaced sizes
over +/- 3 sigma); sasmodels runs its compiled C kernel (double precision, DLL). Prints
the time per evaluation of each, the ratio, and the largest relative deviation. Also
times saxsred's own default quadrature and a full ``fit_form_factor``.

End to end: ``saxsred formfactor FILE --json`` at its defaults (interpreter start, reading,
start values, the fit, the JSON) on the same 1000-point curve, timed as a user runs it,
against one evaluation of sasmodels' model on that grid in the same run: any fit with
sasmodels needs dozens of such evaluations, so the ratio says how many evaluations a
whole saxsred command costs.

Usage: python benchmarks/formfactor.py [--npt 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from saxsred import formfactor as ff
from saxsred.curve import Curve
from saxsred.formfactor.shapes import cube as cube_shape
from saxsred.io.curves import write_dat


def best_time(fun, repeat: int) -> float:
    fun()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fun()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npt", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--edge", type=float, default=9.5)
    ap.add_argument("--pd", type=float, default=0.1)
    args = ap.parse_args()
    e, pd = args.edge, args.pd
    q = np.linspace(0.01, 30.0 / e, args.npt)  # q * e from 0.1 to 30

    import scipy.interpolate  # noqa: F401 - imported first so the table time is the table alone

    t0 = time.perf_counter()
    cube_shape.table()
    t_table = time.perf_counter() - t0

    def ours():
        return ff.cube_form_factor(q, e, pd, size_points=35, size_nsigma=3)

    t_ours = best_time(ours, args.repeat)
    t_own = best_time(lambda: ff.cube_form_factor(q, e, pd), args.repeat)
    print(f"saxsred P(x) table built once in {t_table * 1e3:.1f} ms ")
    print(
        f"saxsred cube_form_factor, {q.size} q, {pd:.0%} pd, 35-point sizes: {t_ours * 1e3:.3f} ms"
    )
    print(
        f"saxsred cube_form_factor, default Gauss-Legendre sizes ({ff.size_nodes(pd, 'gaussian', q.max() * e)[0].size} nodes): "
        f"{t_own * 1e3:.3f} ms"
    )

    rng = np.random.default_rng(0)
    truth = ff.dilute_intensity(q, e, pd, 10.0, 0.02)
    sig = 0.02 * truth + 0.002
    curve = Curve(q, truth + rng.normal(0, sig), sig, name="bench")
    t_fit = best_time(lambda: ff.fit_form_factor(curve), 3)
    print(
        f"saxsred fit_form_factor on {q.size} points (automatic start values): {t_fit * 1e3:.1f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dilute.dat"
        write_dat(curve, path)
        cmd = [sys.executable, "-m", "saxsred", "formfactor", str(path), "--json"]
        t_cli = best_time(lambda: subprocess.run(cmd, check=True, capture_output=True), 2)
    print(f"saxsred formfactor FILE --json, end to end (defaults): {t_cli * 1e3:.0f} ms")

    try:
        from sasmodels.core import load_model
        from sasmodels.direct_model import call_kernel

        model = load_model("rectangular_prism", dtype="double")
        kernel = model.make_kernel([q / 10.0])
        pars = dict(
            length_a=e * 10,
            b2a_ratio=1,
            c2a_ratio=1,
            length_a_pd=pd,
            length_a_pd_n=35,
            length_a_pd_nsigma=3,
            sld=1,
            sld_solvent=0,
            scale=1,
            background=0,
        )
        ref = call_kernel(kernel, pars)
    except Exception as exc:  # no compiler, no sasmodels
        print(f"sasmodels unavailable ({exc}); no ratio")
        return
    t_sas = best_time(lambda: call_kernel(kernel, pars), max(2, args.repeat // 10))
    a = e * 10 * (1 + pd * np.linspace(-3, 3, 35))
    w = np.exp(-0.5 * ((a - e * 10) / (pd * e * 10)) ** 2)
    ours_abs = ours() * 1e-4 * (w @ a**6) / (w @ a**3)  # sasmodels' sum(w V^2 P)/sum(w V)
    dev = np.max(np.abs(ours_abs / ref - 1))
    print(
        f"sasmodels rectangular_prism (compiled {type(model).__name__}), same grid: {t_sas * 1e3:.1f} ms"
    )
    print(f"ratio sasmodels/saxsred = {t_sas / t_ours:.0f}x (goal >= 1000x)")
    print(f"max relative deviation = {dev:.2e} (goal < 1e-3)")
    print(
        f"end-to-end saxsred formfactor / one sasmodels evaluation = {t_cli / t_sas:.2f} "
        "(a sasmodels fit needs dozens of evaluations)"
    )


if __name__ == "__main__":
    main()
