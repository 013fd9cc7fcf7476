"""Batch cost as users meet it: `saxsred reduce` end to end against a bare fabio+pyFAI loop.

Generated EDF frames (Pilatus-1M-like by default, Poisson counts of a smooth I(q)), the
same options everywhere: dark, mask, solid angle, polarisation 0.99, monitor
normalisation, the header's Dummy pixels masked, Poisson errors, 1000 q bins, CSR engine,
one thread per process.

End to end (the default): each contender is a fresh process, timed from its start to its
exit (imports, engine, cluster start-up and the last file written all included):

- bare:      python + fabio.open + ``integrate1d(..., filename=)`` (pyFAI's own .dat) in a loop;
- bare x2:   two bare loops side by side, half the frames each (the machine's own ceiling);
- serial:    ``saxsred reduce FRAMES --poni --mask --dark -o DIR`` (NXcanSAS + .dat, provenance);
- 2 workers: the same with ``--workers 2``: the command's process and one dask worker that
  starts while it works (a local cluster only when it pays: below
  ``LOCAL_MIN_FILES_PER_WORKER`` files per worker it runs in its own process and says so);
- rerun:     the ``--workers 2`` command again on its own output (nothing to do).

Goals (issue 11): serial within 1.25x of bare; the 2-worker speed-up over serial at least
0.9x the bare x2 speed-up; the rerun under 0.3x of the first run.

``--steady`` adds the steady-state figures beside (every engine built and the cluster
started before the clock starts, as for a dataset of thousands of frames).
Usage: python benchmarks/batch.py [--sizes 40 120 240 480] [--shape 1043 981] [--quick] [--steady]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy/pyFAI load: every contender on one thread

import numpy as np  # noqa: E402

from saxsred.geometry import Geometry  # noqa: E402
from saxsred.pipeline import local_cluster, parse_recipe, run_recipe  # noqa: E402
from saxsred.simulate import DetectorLayout, Exposure, simulate_frame, write_edf  # noqa: E402

NPT = 1000
METHOD = ("no", "csr", "cython")
RECIPE = """
[recipe]
name = "bench"
[geometry]
poni = "geo.poni"
mask = "mask.edf"
[corrections]
dark = "dark.edf"
npt = 1000
[[step]]
name = "reduce"
kind = "reduce"
inputs = ["{inputs}"]
"""


def recipe(inputs: str = "frames/*.edf"):
    # The warm-up recipe differs only in its inputs: same step, options and files, so
    # the same key token, so the reducers (pyFAI engines) it builds are the ones reused.
    return parse_recipe(RECIPE.format(inputs=inputs), "bench.toml")


def make_frames(root: Path, n: int, shape: tuple[int, int], distinct: int = 6) -> list[Path]:
    pixel = 172e-6
    geo = Geometry(
        1.5,
        shape[0] * 0.45 * pixel,
        shape[1] * 0.52 * pixel,
        0,
        0,
        0,
        pixel,
        pixel,
        1.0e-10,
        shape=shape,
    )
    geo.write_poni(root / "geo.poni")
    mask = np.zeros(shape, np.int8)
    mask[:, shape[1] // 3 : shape[1] // 3 + 7] = 1
    write_edf(root / "mask.edf", mask, {})
    write_edf(root / "dark.edf", np.full(shape, 2.0, np.float32), {})
    q = np.linspace(0, 6, 3000)
    i = 1.0 / (1 + (q * 8) ** 2) ** 2 + 0.02
    rng = np.random.default_rng(0)
    (root / "frames").mkdir()
    paths = []
    for k in range(n):
        p = root / "frames" / f"f_{k:05d}.edf"
        if k < distinct:
            data, hdr, _ = simulate_frame(
                q, i, geo, shape, Exposure(), DetectorLayout(beamstop_radius_px=15), rng
            )
            write_edf(p, data, hdr)
        else:  # byte copies: the reduction cost is the same, generation stays quick
            shutil.copyfile(root / "frames" / f"f_{k % distinct:05d}.edf", p)
        paths.append(p)
    return paths


def _bare_setup(root: Path):
    """The bare contender: fabio + pyFAI integrate1d with the same corrections, no writing."""
    import fabio
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    from saxsred.geometry import load_poni

    geo = load_poni(root / "geo.poni")
    ai: AzimuthalIntegrator = geo.integrator()
    mask = fabio.open(str(root / "mask.edf")).data != 0
    dark = fabio.open(str(root / "dark.edf")).data.astype(np.float32)
    omega = geo.pixel1_m * geo.pixel2_m / geo.dist_m**2

    def one(p: Path) -> None:
        img = fabio.open(str(p))
        h = img.header
        norm = float(h["Intensity1ShutCor"]) * float(h["SampleThickness"]) * 100 * omega
        # the header's Dummy marks the beam stop and dead pixels: pyFAI's dummy masks them
        ai.integrate1d(
            img.data,
            NPT,
            unit="q_nm^-1",
            method=METHOD,
            dark=dark,
            mask=mask,
            correctSolidAngle=True,
            polarization_factor=0.99,
            error_model="poisson",
            normalization_factor=norm,
            dummy=float(h["Dummy"]),
            delta_dummy=float(h["DDummy"]),
        )

    return one


def bare_loop(root: Path, paths: list[Path], warm: bool = True) -> float:
    """Seconds of the bare loop over ``paths`` (with ``warm``, the engine is built on the
    first frame before the clock starts)."""
    t0 = time.perf_counter()
    one = _bare_setup(root)
    if warm:
        one(paths[0])
        t0 = time.perf_counter()
    for p in paths:
        one(p)
    return time.perf_counter() - t0


def _bare_half(root: str, paths: list[str], ready, go, done) -> None:
    """One of two bare loops run side by side (the machine's own scaling, no dask)."""
    one = _bare_setup(Path(root))
    one(Path(paths[0]))  # imports and engine, untimed
    ready.set()
    go.wait()
    for p in paths:
        one(Path(p))
    done.put(time.perf_counter())


def bare_pair(root: Path, paths: list[Path]) -> float:
    """Seconds for two bare loops in two processes, half the frames each, started together."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Queue()
    halves = [[str(p) for p in paths[k::2]] for k in (0, 1)]
    readies = [ctx.Event() for _ in halves]
    procs = [
        ctx.Process(target=_bare_half, args=(str(root), h, r, go, done))
        for h, r in zip(halves, readies)
    ]
    for pr in procs:
        pr.start()
    for r in readies:
        r.wait()
    os.sync()
    t0 = time.perf_counter()
    go.set()
    t_end = max(done.get() for _ in procs)
    for pr in procs:
        pr.join()
    return t_end - t0


def _warm_up(root: str) -> None:
    """What a fresh process does once: imports, and the pyFAI engine for this geometry
    (a serial run of the same recipe on one frame, into a scratch folder)."""
    import uuid

    run_recipe(
        recipe("frames/f_00000.edf"),
        data=Path(root),
        output=Path(root) / f"warm_{uuid.uuid4().hex}",
        force=True,
        progress=False,
        log=lambda s: None,
    )


def task_seconds(out: Path) -> tuple[float, float]:
    """Sums of the wall and CPU time spent inside the reduction tasks (from the run's journal)."""
    with open(out / ".saxsred" / "journal.jsonl") as fh:
        recs = [json.loads(line) for line in fh]
    return sum(r["seconds"] for r in recs), sum(r["cpu_seconds"] for r in recs)


def start_cluster(root: Path, n_workers: int) -> tuple[object, float]:
    """The LocalCluster `saxsred run --workers N` starts, warmed up; returns (client, seconds)."""
    t0 = time.perf_counter()
    client = local_cluster(n_workers)
    client.run(_warm_up, str(root))
    return client, time.perf_counter() - t0


def runner(root: Path, client, out: Path) -> tuple[float, dict]:
    """run_recipe serially (client None) or on a warm cluster; returns (seconds, worker RSS)."""
    rcp = recipe()
    if client is None:
        _warm_up(str(root))
    t0 = time.perf_counter()
    rep = run_recipe(
        rcp, data=root, output=out, force=True, progress=False, client=client, log=lambda s: None
    )
    dt = time.perf_counter() - t0
    assert rep.exit_code == 0, rep.failures
    return dt, rep.worker_peak_rss_mb


def steady_state(frames: int, shape: tuple[int, int], repeat: int) -> None:
    """The steady-state figures: warm engines and clusters, clocks inside the run."""
    args = argparse.Namespace(frames=frames, shape=shape, repeat=repeat)
    with tempfile.TemporaryDirectory(prefix="saxsred-batch-") as tmp:
        root = Path(tmp)
        paths = make_frames(root, args.frames, tuple(args.shape))
        n = len(paths)
        print(
            f"{n} frames of {args.shape[0]} x {args.shape[1]} px, {NPT} q bins, one thread per process, "
            f"{os.cpu_count()} CPU(s)"
        )
        print(
            f"load average before: {os.getloadavg()[0]:.2f} (other processes on this machine share its cores)"
        )
        res: dict[str, float] = {}
        rss: dict[str, dict] = {}
        inside: dict[str, float] = {}
        cpu: dict[str, float] = {}
        # Both clusters live through all repetitions (an idle one costs a heartbeat now and
        # then), so the contenders are interleaved and a slow phase of the machine hits all.
        clients = {}
        for label, nw in (("1 worker", 1), ("2 workers", 2)):
            clients[label], res[f"{label} start-up"] = start_cluster(root, nw)
        try:
            for rep in range(args.repeat):
                os.sync()  # the frames (and earlier outputs) on disk: no writeback inside a timing
                res["bare"] = min(res.get("bare", 1e9), bare_loop(root, paths))
                res["bare x2"] = min(res.get("bare x2", 1e9), bare_pair(root, paths))
                if rep == 0:
                    res["bare cold"] = bare_loop(root, paths[:1], warm=False)
                for label in ("serial", "1 worker", "2 workers"):
                    os.sync()
                    # A fresh output folder (renaming onto existing files costs a flush on
                    # ext4), kept until the end: deleting it here would put the file system's
                    # discard work (ext4 mounted with 'discard') into the next contender's time.
                    out = root / f"out_{label.replace(' ', '_')}_{rep}"
                    dt, r = runner(root, clients.get(label), out)
                    if dt < res.get(label, 1e9):
                        res[label] = dt
                        rss[label] = r
                        inside[label], cpu[label] = (v / n for v in task_seconds(out))
        finally:
            for c in clients.values():
                c.close()
                c.cluster.close()
        for label in ("bare", "serial", "1 worker", "2 workers"):
            extra = (
                f"   (cluster start-up and engines {res[label + ' start-up']:.1f} s)"
                if label + " start-up" in res
                else ""
            )
            per = (
                f", {1e3 * inside[label]:6.1f} ms per frame inside a task ({1e3 * cpu[label]:5.1f} ms CPU)"
                if label in inside
                else ""
            )
            print(f"{label:>10s}: {n / res[label]:7.2f} frames/s{per}{extra}")
        print(
            f"one-off engine set-up per process (bare pyFAI, first frame): {res['bare cold']:.2f} s"
        )
        # The machine's own ceiling: two bare loops side by side share caches, memory
        # bandwidth and whatever else the host puts on these cores.
        print(
            f"bare pyFAI, two processes side by side: {n / res['bare x2']:7.2f} frames/s = "
            f"{res['bare'] / res['bare x2']:.2f}x one (the ceiling for 2 workers on this machine)"
        )
        speedup = res["1 worker"] / res["2 workers"]
        print(
            f"2 workers / 1 worker = {speedup:.2f}x (goal >= 1.7), scaling efficiency {speedup / 2:.0%}"
        )
        print(f"1 worker / bare pyFAI = {res['bare'] / res['1 worker']:.2f} (goal >= 0.8)")
        print(f"serial runner / bare pyFAI = {res['bare'] / res['serial']:.2f}")
        # On an idle machine the time inside a task does not grow with the number of workers;
        # when it does, the workers were waiting for cores other processes held.
        print(
            f"time per frame inside a task, 2 workers / 1 worker = {inside['2 workers'] / inside['1 worker']:.2f} "
            "(1.0 = each worker had a core of its own)"
        )
        # CPU time per frame does not depend on core availability: equal CPU per frame on 1 and
        # 2 workers means no parallel overhead, and the speedup a machine with 2 free cores gives
        # is 2 x (1-worker frame time) / (2-worker frame time at 1-worker CPU cost).
        busy = cpu["2 workers"] * n / res["2 workers"]
        print(
            f"CPU per frame, 2 workers / 1 worker = {cpu['2 workers'] / cpu['1 worker']:.2f}; "
            f"cores the 2 workers got on average: {busy:.2f} of 2"
        )
        for label, r in rss.items():
            if r:
                print(
                    f"peak RSS of the workers ({label}): "
                    + ", ".join(f"{v:.0f} MB" for v in r.values())
                )


BARE = """
import os, sys, time
t0 = time.perf_counter()
for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[v] = "1"
import fabio, numpy as np, pyFAI
root, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
ai = pyFAI.load(os.path.join(root, "geo.poni"))
mask = fabio.open(os.path.join(root, "mask.edf")).data != 0
dark = fabio.open(os.path.join(root, "dark.edf")).data.astype(np.float32)
omega = ai.pixel1 * ai.pixel2 / ai.dist ** 2
os.makedirs(out, exist_ok=True)
t1 = time.perf_counter()
for p in files:
    img = fabio.open(p)
    h = img.header
    norm = float(h["Intensity1ShutCor"]) * float(h["SampleThickness"]) * 100 * omega
    ai.integrate1d(img.data, 1000, unit="q_nm^-1", method=("no", "csr", "cython"), dark=dark, mask=mask,
                   correctSolidAngle=True, polarization_factor=0.99, error_model="poisson",
                   normalization_factor=norm, dummy=float(h["Dummy"]), delta_dummy=float(h["DDummy"]),
                   filename=os.path.join(out, os.path.basename(p)[:-4] + ".dat"))
print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f}")
"""


def _env() -> dict[str, str]:
    return {
        **os.environ,
        **{
            v: "1"
            for v in (
                "OMP_NUM_THREADS",
                "NUMBA_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS",
            )
        },
    }


def timed(*cmds: list[str]) -> tuple[float, list[str]]:
    """Seconds from starting the commands (side by side) until the last one exits."""
    os.sync()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        for c in cmds
    ]
    outs = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmds[0][:4])} ... failed ({p.returncode}):\n{err[-2000:]}")
        outs.append(out)
    return time.perf_counter() - t0, outs


def end_to_end(root: Path, paths: list[Path], label: str, repeat: int = 3) -> dict[str, float]:
    """One size: every contender as a fresh process, start to exit, best of ``repeat``."""
    files = [str(p) for p in paths]
    opts = [
        "--poni",
        str(root / "geo.poni"),
        "--mask",
        str(root / "mask.edf"),
        "--dark",
        str(root / "dark.edf"),
        "--npt",
        "1000",
    ]
    reduce = [sys.executable, "-m", "saxsred", "reduce", *files, *opts]
    halves = [files[0::2], files[1::2]]
    r: dict[str, float] = {}

    def best(key: str, value: float) -> None:
        r[key] = min(r.get(key, float("inf")), value)

    # Best of `repeat` rounds, contenders interleaved within each round: a slow phase of a
    # shared machine then hits every contender, and the minimum is each one's own cost.
    for k in range(repeat):
        dt, outs = timed(
            [sys.executable, "-c", BARE, str(root), str(root / f"bare_{label}_{k}"), *files]
        )
        if dt < r.get("bare", float("inf")):
            r["bare start-up"], r["bare loop"] = (float(x) for x in outs[0].split())
        best("bare", dt)
        dt, _ = timed(
            *[
                [sys.executable, "-c", BARE, str(root), str(root / f"bare2_{label}_{k}_{j}"), *h]
                for j, h in enumerate(halves)
            ]
        )
        best("bare x2", dt)
        dt, _ = timed([*reduce, "-o", str(root / f"serial_{label}_{k}")])
        best("serial", dt)
        dt, outs = timed([*reduce, "--workers", "2", "-o", str(root / f"w2_{label}_{k}")])
        best("2 workers", dt)
        r["2 workers ran here"] = float("in this process" in outs[0])
        dt, _ = timed([*reduce, "--workers", "2", "-o", str(root / f"w2_{label}_{k}")])
        best("rerun", dt)
    return r


def main() -> None:  # run under __main__: dask spawns its workers
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--sizes", type=int, nargs="+", default=[40, 120, 240, 480], help="numbers of frames"
    )
    ap.add_argument("--shape", type=int, nargs=2, default=(1043, 981))
    ap.add_argument(
        "--quick", action="store_true", help="a quick check: 20 and 60 frames of 512 x 512"
    )
    ap.add_argument("--steady", action="store_true", help="also the steady-state figures (slow)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="best of R timings (end to end and steady state)"
    )
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.shape = [20, 60], (512, 512)
    print(
        f"end to end (fresh process, start to exit), {args.shape[0]} x {args.shape[1]} px, {NPT} q bins, "
        f"one thread per process, {os.cpu_count()} CPU(s); load average {os.getloadavg()[0]:.2f}; "
        f"best of {args.repeat} interleaved rounds"
    )
    print(
        f"{'frames':>6s} {'bare':>7s} {'serial':>7s} {'ser/bare':>8s} {'bare x2':>8s} {'2 workers':>9s} "
        f"{'speed-up':>8s} {'x2 bare':>7s} {'ratio':>5s} {'rerun':>6s} {'rerun/1st':>9s}"
    )
    with tempfile.TemporaryDirectory(prefix="saxsred-batch-") as tmp:
        root = Path(tmp)
        paths = make_frames(root, max(args.sizes), tuple(args.shape))
        for n in args.sizes:
            r = end_to_end(root, paths[:n], str(n), args.repeat)
            sp = r["serial"] / r["2 workers"]
            sp_bare = r["bare"] / r["bare x2"]
            here = (
                " (ran in one process: a cluster would not pay)" if r["2 workers ran here"] else ""
            )
            print(
                f"{n:6d} {r['bare']:6.1f}s {r['serial']:6.1f}s {r['serial'] / r['bare']:7.2f}x {r['bare x2']:7.1f}s "
                f"{r['2 workers']:8.1f}s {sp:7.2f}x {sp_bare:6.2f}x {sp / sp_bare:5.2f} {r['rerun']:5.1f}s "
                f"{r['rerun'] / r['2 workers']:8.2f}x{here}"
            )
            print(
                f"       bare: start-up {r['bare start-up']:.2f} s, {1e3 * r['bare loop'] / n:.1f} ms per frame in its loop"
            )
    print(
        "goals: ser/bare <= 1.25; ratio (2-worker speed-up / bare x2 speed-up) >= 0.9; rerun/1st < 0.3"
    )
    print(
        "rerun: nothing to do; the skip rests on the step's key (options, dark/flat/mask/PONI contents, "
        "versions) and each input's and output's size and modification time (see saxsred.pipeline.units)"
    )
    if args.steady:
        print("\nsteady state (engines built and clusters started before the clock):")
        steady_state(max(args.sizes), tuple(args.shape), args.repeat)


if __name__ == "__main__":
    main()
