"""Recipes, the runner, resume, bad files and live mode (issue 6; memory: benchmarks/memory.py).

Frames are small generated EDFs (known truth: simulate_frame); the distributed runs use
a dask LocalCluster started by the runner and a separately started ``dask scheduler`` with
two ``dask worker`` processes on loopback (module fixture, shared by the tests).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from saxsred.errors import ParameterError
from saxsred.pipeline import load_recipe, parse_recipe, run_recipe, watch_recipe

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (72, 80)
THREADS1 = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

RECIPE = """
[recipe]
name = "test_chain"

[geometry]
poni = "geo.poni"
mask = "mask.edf"

[corrections]
dark = "dark.edf"
npt = 120

[[step]]
name = "reduce"
kind = "reduce"
inputs = ["frames/*.edf"]
{extra}
"""

LATER = """
[[step]]
name = "average"
kind = "average"
inputs = ["reduce/s_*"]
output = "s_average"

[[step]]
name = "subtract"
kind = "subtract"
inputs = ["average/s_average", "reduce/s_000"]
background = "reduce/b_000"

[[step]]
name = "absolute"
kind = "scale"
inputs = ["subtract/*"]
factor = 2.5
factor_err = 0.01
"""


def _geometry():
    from saxsred.geometry import Geometry

    return Geometry(
        1.0,
        30.3 * 172e-6,
        41.6 * 172e-6,
        0.0,
        0.0,
        0.0,
        172e-6,
        172e-6,
        1.0e-10,
        shape=SHAPE,
        source="geo.poni",
    )


def _curve(kind: str):
    q = np.linspace(0.0, 4.0, 2000)
    if kind == "b":
        return q, 0.05 + 0.01 * np.exp(-q)
    return q, 0.05 + 2.0 * np.exp(-((q * 3.0) ** 2) / 3.0)


def make_dataset(root: Path, n_sample: int, n_distinct: int = 6, seed: int = 7) -> list[Path]:
    """``root``: geo.poni, mask.edf, dark.edf and frames/b_000.edf, frames/s_000..; files beyond
    ``n_distinct`` are byte copies of the first ones (generation stays fast)."""
    from saxsred.simulate import DetectorLayout, Exposure, simulate_frame, write_edf

    geo = _geometry()
    frames = root / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    geo.write_poni(root / "geo.poni")
    mask = np.zeros(SHAPE, np.int8)
    mask[:, 60:63] = 1
    write_edf(root / "mask.edf", mask, {})
    write_edf(root / "dark.edf", np.full(SHAPE, 2.0, np.float32), {})
    rng = np.random.default_rng(seed)
    layout = DetectorLayout(beamstop_radius_px=4.0)
    q, ib = _curve("b")
    data, hdr, _ = simulate_frame(q, ib, geo, SHAPE, Exposure(), layout, rng)
    paths = [write_edf(frames / "b_000.edf", data, hdr)]
    q, i = _curve("s")
    for k in range(n_sample):
        p = frames / f"s_{k:03d}.edf"
        if k < n_distinct:
            data, hdr, _ = simulate_frame(q, i, geo, SHAPE, Exposure(), layout, rng)
            write_edf(p, data, hdr)
        else:
            shutil.copyfile(frames / f"s_{k % n_distinct:03d}.edf", p)
        paths.append(p)
    return paths


def write_recipe(root: Path, later: bool = True, extra: str = "") -> Path:
    p = root / "recipe.toml"
    p.write_text(RECIPE.format(extra=extra) + (LATER if later else ""))
    return p


def data_files(out: Path) -> dict[str, bytes]:
    """Every data output (not the run report, summary, journal or keys) by relative path."""
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and ".saxsred" not in p.parts
        and p.name not in ("run_report.json", "run_summary.txt")
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("p6data")
    make_dataset(root, 9)
    return root


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory):
    """A separately started ``dask scheduler`` + 2 ``dask worker`` processes on 127.0.0.1."""
    from distributed import Client  # a declared dependency: failing to import is a failure

    tmp = tmp_path_factory.mktemp("dask")
    # python -m: works whether or not the 'dask' script sits next to the interpreter
    scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, **THREADS1}
    procs = []
    logs = []
    try:
        log = open(tmp / "scheduler.log", "w")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    *scheduler_cmd,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        for k in range(2):
            log = open(tmp / f"worker{k}.log", "w")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        *worker_cmd,
                        addr,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--memory-limit",
                        "0",
                        "--local-directory",
                        str(tmp / f"w{k}"),
                        "--name",
                        f"w{k}",
                        "--no-nanny",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        deadline = time.monotonic() + 60
        client = None
        while client is None:
            try:
                client = Client(addr, timeout="2s")
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        client.wait_for_workers(2, timeout=60)
        client.close()
        yield addr
    finally:
        for p in reversed(procs):  # workers first, then the scheduler
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


# ------------------------------------------------------------------------------ recipes


def _err(text: str) -> str:
    with pytest.raises(ParameterError) as exc:
        parse_recipe(text, "r.toml")
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_recipe_errors_name_line_and_key():
    base = RECIPE.format(extra="")
    lines = base.splitlines()
    # unknown key inside the second table: the line is the key's own line, with a suggestion
    bad = base.replace("npt = 120", "npts = 120")
    n = next(i for i, s in enumerate(bad.splitlines(), 1) if s.startswith("npts"))
    msg = _err(bad)
    assert msg.startswith(f"r.toml:{n}: [corrections] key 'npts'") and "'npt'" in msg
    # wrong type of a step key
    bad = (
        base
        + '\n[[step]]\nname = "avg"\nkind = "average"\ninputs = ["reduce/*"]\nalpha = "small"\n'
    )
    n = len(bad.splitlines())
    msg = _err(bad)
    assert msg.startswith(f"r.toml:{n}: [[step]] #2 ('avg') key 'alpha'") and "'small'" in msg
    # reference to a step that does not exist (or comes later)
    bad = (
        base
        + '\n[[step]]\nname = "sub"\nkind = "subtract"\ninputs = ["reduce/*"]\nbackground = "buffer/b_000"\n'
    )
    msg = _err(bad)
    assert f"r.toml:{len(bad.splitlines())}:" in msg and "'background'" in msg and "'buffer'" in msg
    # unknown kind, with a suggestion; missing required key; duplicate name; TOML syntax
    msg = _err(base + '\n[[step]]\nname = "x"\nkind = "averge"\ninputs = ["reduce/*"]\n')
    assert "key 'kind'" in msg and "'average'" in msg
    msg = _err(base + '\n[[step]]\nname = "x"\nkind = "average"\n')
    assert "missing key 'inputs'" in msg and f"r.toml:{len(lines) + 2}:" in msg
    msg = _err(base + '\n[[step]]\nname = "reduce"\nkind = "average"\ninputs = ["reduce/*"]\n')
    assert "unique" in msg
    msg = _err(base.replace('kind = "reduce"', 'kind = "reduce'))
    assert msg.startswith("r.toml: not valid TOML") and "line" in msg


def test_shipped_recipes_are_valid():
    for p in sorted((ROOT / "pipelines").glob("*.toml")):
        rec = load_recipe(p)
        assert rec.steps and rec.steps[0].kind == "reduce", p


# ------------------------------------------------------------------------------ the chain


def _sample_data(tmp_path_factory) -> tuple[Path, Path]:
    """The repository's sample_data and calibration, or a freshly generated copy."""
    data, calib = ROOT / "sample_data", ROOT / "calibration"
    if (data / "sp_001.edf").exists() and (calib / "saxs_1m.poni").exists():
        return data, calib
    from saxsred.simulate import make_sample_dataset, write_sample_calibration

    root = tmp_path_factory.mktemp("sample")
    make_sample_dataset(root / "sample_data")
    write_sample_calibration(root / "calibration")
    return root / "sample_data", root / "calibration"


UPTO_ABSOLUTE = ["reduce", "calibrant", "average", "subtract", "absolute"]


@pytest.fixture(scope="module")
def capillary(tmp_path_factory):
    """The shipped capillary recipe run up to the absolute scale on the sample data."""
    data, calib = _sample_data(tmp_path_factory)
    out = tmp_path_factory.mktemp("capillary")
    rep = run_recipe(
        ROOT / "pipelines" / "capillary_saxs.toml",
        data=data,
        output=out,
        steps=UPTO_ABSOLUTE,
        progress=False,
        log=lambda s: None,
    )
    return data, calib, out, rep


def test_capillary_recipe_equals_the_reduction_stage(capillary):
    """The shipped recipe's absolute SP curve equals reduce_files' one-call chain (average with
    outlier rejection, solvent subtraction, water scale), and a rerun redoes nothing."""
    from saxsred.geometry import load_mask
    from saxsred.io.curves import read_curve
    from saxsred.io.frames import read_image
    from saxsred.reduce import Corrections, ReduceJob, reduce_files

    data, calib, out, rep = capillary
    assert rep.exit_code == 0 and rep.counts == {"done": 13, "skipped": 0, "failed": 0}
    verdicts = json.loads((out / "average" / "sp_average_frames.json").read_text())["frames"]
    assert [v["name"] for v in verdicts if not v["kept"]] == ["sp_003"]  # the bubble
    corr = Corrections(
        dark=np.asarray(read_image(data / "dark.edf"), float),
        mask=load_mask(calib / "saxs_mask.edf"),
        npt=400,
        hot_pixels=True,
    )
    f = [str(data / f"{n}.edf") for n in ("sp_001", "sp_002", "sp_003")]
    ref = reduce_files(
        f,
        ReduceJob(
            corrections=corr,
            poni=str(calib / "saxs_1m.poni"),
            average=True,
            background=(str(data / "solvent.edf"),),
            water=(str(data / "water.edf"),),
            water_empty=(str(data / "empty_capillary.edf"),),
        ),
    ).curves[0]
    got = read_curve(out / "absolute" / "sp_average.h5")
    assert got.unit == "cm^-1"
    np.testing.assert_allclose(got.q_nm, ref.q_nm, rtol=1e-12)
    np.testing.assert_allclose(got.intensity, ref.intensity, rtol=1e-10)
    np.testing.assert_allclose(got.sigma, ref.sigma, rtol=1e-10)
    report = json.loads((out / "run_report.json").read_text())
    entry = next(o for o in report["outputs"] if o["path"] == "reduce/sp_001.h5")
    assert entry["inputs"][0]["file"] == "sp_001.edf" and entry["inputs"][0]["checksum"].startswith(
        "xxh3:"
    )


def test_capillary_recipe_analysis_steps(capillary):
    """The rest of the recipe (form factor, S_eff, peaks, figures) reuses the reduced curves
    (skipped as up to date) and recovers the generating truth of the sample data."""
    from saxsred.simulate import SAMPLE_TRUTH

    data, _, out, _ = capillary
    rep = run_recipe(
        ROOT / "pipelines" / "capillary_saxs.toml",
        data=data,
        output=out,
        progress=False,
        log=lambda s: None,
    )
    assert rep.exit_code == 0, rep.failures
    assert rep.counts == {"done": 4, "skipped": 13, "failed": 0}
    fit = json.loads((out / "form_factor" / "dilute_form_factor.json").read_text())
    assert abs(fit["edge_nm"] - SAMPLE_TRUTH["edge_nm"]) < 0.3
    peaks = json.loads((out / "peaks" / "s_eff_peaks.json").read_text())
    assert peaks["lattice"] == SAMPLE_TRUTH["lattice"]
    assert abs(peaks["a_nm"] - SAMPLE_TRUTH["a_nm"]) < 0.2
    assert (out / "peaks" / "s_eff_peaks.png").stat().st_size > 0
    report = json.loads((out / "run_report.json").read_text())
    assert len(report["runs"]) == 2 and report["status"] == "ok"
    # --force redoes a step whose outputs are up to date, with identical bytes
    before = (out / "s_eff" / "s_eff.h5").read_bytes()
    again = run_recipe(
        ROOT / "pipelines" / "capillary_saxs.toml",
        data=data,
        output=out,
        steps=["s_eff"],
        force=True,
        progress=False,
        log=lambda s: None,
    )
    assert again.counts == {"done": 1, "skipped": 0, "failed": 0}
    assert (out / "s_eff" / "s_eff.h5").read_bytes() == before


def test_waxs_recipe_on_real_lab6_frames(tmp_path):
    """The shipped WAXS recipe pairs each frame of a moving detector with its PONI: LaB6 (100)
    and (111) land where the cubic lattice (a = 0.415689 nm) puts them."""
    from conftest import realdata

    from saxsred.io.curves import read_curve

    data = realdata("lab6_ssrl_tilted")
    rep = run_recipe(
        ROOT / "pipelines" / "waxs.toml",
        data=data,
        output=tmp_path,
        progress=False,
        log=lambda s: None,
    )
    assert rep.exit_code == 0, rep.failures
    for frame, n in (("0009", 1), ("0023", 3)):
        cv = read_curve(tmp_path / "reduce" / f"b_toney_Lab6_thtth_rightside_scan2_{frame}.h5")
        q_hkl = 2 * np.pi * np.sqrt(n) / 0.415689
        sel = np.abs(cv.q_nm - q_hkl) < 0.3
        base = np.median(cv.intensity[sel])
        w = np.clip(cv.intensity[sel] - base, 0, None) ** 2  # centroid of the line above its base
        qc = float(np.sum(w * cv.q_nm[sel]) / np.sum(w))
        assert abs(qc / q_hkl - 1) < 5e-4, (frame, qc, q_hkl)


# ------------------------------------------------------------------------------ 1: identical


def test_serial_local_and_scheduler_runs_are_byte_identical(
    dataset, dask_scheduler, tmp_path, monkeypatch
):
    import saxsred.pipeline.session as S

    monkeypatch.setattr(
        S, "LOCAL_MIN_FILES_PER_WORKER", 0
    )  # a real local cluster, even for 10 files
    recipe = write_recipe(dataset)
    outs = {}
    for mode, kw in (
        ("serial", {}),
        ("local2", {"workers": 2}),
        ("sched", {"scheduler": dask_scheduler}),
    ):
        rep = run_recipe(
            recipe, data=dataset, output=tmp_path / mode, progress=False, log=lambda s: None, **kw
        )
        assert rep.exit_code == 0, rep.failures
        assert rep.counts == {"done": 10 + 1 + 2 + 2, "skipped": 0, "failed": 0}
        outs[mode] = data_files(tmp_path / mode)
    assert rep.mode == f"scheduler:{dask_scheduler}" and len(rep.worker_peak_rss_mb) == 2
    assert len(outs["serial"]) == 2 * 10 + 3 + 2 * 2 + 2 * 2
    for mode in ("local2", "sched"):
        assert outs[mode].keys() == outs["serial"].keys()
        differ = [k for k in outs["serial"] if outs[mode][k] != outs["serial"][k]]
        assert not differ, f"{mode}: {differ}"


# ------------------------------------------------------------------------------ 3: bad files


def _bad_dataset(root: Path) -> dict[str, str]:
    from saxsred.simulate import Exposure, simulate_frame, write_edf

    make_dataset(root, 5)
    frames = root / "frames"
    good = (frames / "s_001.edf").read_bytes()
    (frames / "s_truncated.edf").write_bytes(good[: len(good) - 4000])
    q, i = _curve("s")
    geo = _geometry()
    data, hdr, _ = simulate_frame(
        q, i, geo.with_shape((64, 64)), (64, 64), Exposure(), rng=np.random.default_rng(1)
    )
    write_edf(frames / "s_wrongshape.edf", data, hdr)
    (frames / "s_garbage.edf").write_bytes(np.random.default_rng(2).bytes(5000))
    return {
        "s_truncated.edf": "truncated",
        "s_wrongshape.edf": "shape",
        "s_garbage.edf": "not a readable",
    }


def test_bad_files_are_reported_and_the_rest_complete(tmp_path, dask_scheduler, capsys):
    from saxsred.cli import main

    bad = _bad_dataset(tmp_path / "d")
    recipe = write_recipe(tmp_path / "d", later=False)
    rc = main(
        [
            "run",
            str(recipe),
            "--data",
            str(tmp_path / "d"),
            "-o",
            str(tmp_path / "o"),
            "--scheduler",
            dask_scheduler,
            "--no-progress",
        ]
    )
    assert rc == 1
    printed = capsys.readouterr().out
    good = sorted(p.stem for p in (tmp_path / "d" / "frames").glob("*.edf") if p.name not in bad)
    assert sorted(p.stem for p in (tmp_path / "o" / "reduce").glob("*.h5")) == good
    report = json.loads((tmp_path / "o" / "run_report.json").read_text())
    fails = {f["unit"].split("/")[-1]: f["reason"] for f in report["runs"][-1]["failures"]}
    assert fails.keys() == bad.keys()
    for name, word in bad.items():
        assert word in fails[name] and name in fails[name] and "\n" not in fails[name]
        assert f"FAILED reduce/frames/{name}" in printed
    # the same through the runner of `saxsred reduce --scheduler` (flat output folder)
    from saxsred.geometry import load_mask
    from saxsred.pipeline import reduce_parallel
    from saxsred.reduce import Corrections, ReduceJob

    files = sorted(str(p) for p in (tmp_path / "d" / "frames").glob("*.edf"))
    corr = Corrections(npt=120, mask=load_mask(tmp_path / "d" / "mask.edf"))
    rc = reduce_parallel(
        files,
        ReduceJob(corr, poni=str(tmp_path / "d" / "geo.poni")),
        tmp_path / "flat",
        scheduler=dask_scheduler,
        progress=False,
        log=lambda s: None,
    )
    assert rc == 1 and sorted(p.stem for p in (tmp_path / "flat").glob("*.dat")) == good


def test_reduce_cli_workers_matches_serial_reduce(dataset, tmp_path, dask_scheduler):
    from saxsred.cli import main

    files = sorted(str(p) for p in (dataset / "frames").glob("*.edf"))[:4]
    common = [
        "--poni",
        str(dataset / "geo.poni"),
        "--npt",
        "120",
        "--dark",
        str(dataset / "dark.edf"),
    ]
    assert main(["reduce", *files, *common, "-o", str(tmp_path / "serial")]) == 0
    assert (
        main(
            ["reduce", *files, *common, "-o", str(tmp_path / "par"), "--scheduler", dask_scheduler]
        )
        == 0
    )
    a, b = data_files(tmp_path / "serial"), data_files(tmp_path / "par")
    assert a == b and len(a) == 8


# ------------------------------------------------------------------------------ 2: killed run


def _start_and_stop(recipe: Path, data: Path, out: Path, n_keys: int, sig: int) -> tuple[int, int]:
    """Start ``saxsred run`` in a subprocess, send ``sig`` once ``n_keys`` units are finished;
    returns (exit code, units finished)."""
    keys = out / "reduce" / ".saxsred"
    before = len(list(keys.glob("*.json")))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "saxsred",
            "run",
            str(recipe),
            "--data",
            str(data),
            "-o",
            str(out),
            "--no-progress",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **THREADS1},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(keys.glob("*.json"))) < before + n_keys:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be stopped"
    proc.send_signal(sig)
    rc = proc.wait(timeout=30)
    return rc, len(list(keys.glob("*.json")))


def test_interrupted_and_killed_runs_restart_with_only_the_missing_outputs(tmp_path):
    n = 150
    make_dataset(tmp_path / "d", n - 1)
    recipe = write_recipe(tmp_path / "d", later=False)
    out = tmp_path / "stopped"
    # Ctrl-C: a clean stop, exit code 130, the report says so
    rc, first = _start_and_stop(recipe, tmp_path / "d", out, 10, signal.SIGINT)
    assert rc == 130 and 10 <= first < n
    report = json.loads((out / "run_report.json").read_text())
    assert report["status"] == "interrupted" and report["runs"][-1]["interrupted"]
    # a hard kill of the restarted run part way
    rc, finished = _start_and_stop(recipe, tmp_path / "d", out, 10, signal.SIGKILL)
    assert rc == -signal.SIGKILL and first + 10 <= finished < n
    rep = run_recipe(recipe, data=tmp_path / "d", output=out, progress=False, log=lambda s: None)
    assert rep.counts == {"done": n - finished, "skipped": finished, "failed": 0}
    ref = run_recipe(
        recipe, data=tmp_path / "d", output=tmp_path / "whole", progress=False, log=lambda s: None
    )
    assert ref.counts["done"] == n
    a, b = data_files(out), data_files(tmp_path / "whole")
    assert a.keys() == b.keys() and len(a) == 2 * n
    assert all(a[k] == b[k] for k in a)
    assert not list(out.rglob("*.part"))  # temporary files of the killed run are cleaned up


# ------------------------------------------------------------------------------ 4: live mode


def test_watch_picks_up_a_slowly_written_frame_once(tmp_path):
    src = tmp_path / "src"
    make_dataset(src, 3)
    live = tmp_path / "live"
    (live / "frames").mkdir(parents=True)
    for f in ("geo.poni", "mask.edf", "dark.edf"):
        shutil.copy(src / f, live / f)
    recipe = write_recipe(live, later=False)
    blob = (src / "frames" / "s_002.edf").read_bytes()
    logs: list[str] = []
    result = {}

    def watcher():
        result["rep"] = watch_recipe(
            recipe,
            data=live,
            output=tmp_path / "out",
            interval_s=0.05,
            settle_s=0.25,
            corrupt_after_s=1.5,
            idle_timeout_s=2.5,
            timeout_s=40,
            log=logs.append,
        )

    th = threading.Thread(target=watcher)
    th.start()
    for name in ("b_000.edf", "s_000.edf", "s_001.edf"):
        shutil.copy(src / "frames" / name, live / "frames" / name)
    time.sleep(0.5)
    # a detector writing slowly: pauses longer than the settle time between chunks
    with open(live / "frames" / "s_002.edf", "wb") as fh:
        for k in range(0, len(blob), len(blob) // 4 + 1):
            fh.write(blob[k : k + len(blob) // 4 + 1])
            fh.flush()
            time.sleep(0.45)
    (live / "frames" / "s_corrupt.edf").write_bytes(b"EDF? not really" * 50)
    th.join(60)
    assert not th.is_alive()
    rep = result["rep"]
    assert rep.counts["done"] == 4 and rep.counts["failed"] == 1, (rep.counts, logs)
    assert [f["unit"] for f in rep.failures] == ["frames/s_corrupt.edf"]
    assert rep.retried >= 1, logs  # the partial file was read too early, refused, and retried
    journal = [
        json.loads(s)
        for s in (tmp_path / "out" / ".saxsred" / "journal.jsonl").read_text().splitlines()
    ]
    assert [r["status"] for r in journal if r["unit"] == "frames/s_002.edf"] == [
        "done"
    ]  # exactly once
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert (
        report["runs"][-1]["live"]
        and sum(o["path"] == "reduce/s_002.h5" for o in report["outputs"]) == 1
    )
    # the same frames in batch mode give the same bytes
    (live / "frames" / "s_corrupt.edf").unlink()
    batch = run_recipe(
        recipe, data=live, output=tmp_path / "batch", progress=False, log=lambda s: None
    )
    assert batch.exit_code == 0
    assert data_files(tmp_path / "out") == data_files(tmp_path / "batch")


# 5: memory (flat from 100 to 1,100 frames) is a resource check: benchmarks/memory.py


def test_checksums_of_written_bytes_equal_the_files(tmp_path):
    # The runner records output checksums from the bytes it wrote (no read-back).
    from saxsred.curve import Curve
    from saxsred.provenance import file_checksum
    from saxsred.reduce import write_curves

    q = np.linspace(0.1, 2.0, 50)
    cv = Curve(
        q,
        1.0 / (1 + q**2),
        0.01 * np.ones_like(q),
        name="c1",
        provenance={"steps": [{"step": "test"}]},
    )
    sums: dict[str, str] = {}
    paths = write_curves([cv], str(tmp_path), ("h5", "dat"), sums)
    assert len(paths) == 2 and set(sums) == set(paths)
    for p in paths:
        assert sums[p] == file_checksum(p)


def test_an_interrupt_swallowed_by_a_finalizer_still_stops_the_run(tmp_path, monkeypatch):
    # Python prints and drops a KeyboardInterrupt raised inside __del__ or a weakref
    # callback; the SIGINT handler's flag stops the run at the next unit all the same.
    import saxsred.pipeline.session as S
    import saxsred.pipeline.units as P

    make_dataset(tmp_path / "d", 8)
    recipe = write_recipe(tmp_path / "d", later=False)
    real = P.reduce_inputs
    calls = []

    def reduce_and_interrupt(items, spec):
        calls.append(items)
        if len(calls) == 3:
            S.STOP.set()  # what the handler does before its exception is lost
        return real(items, spec)

    monkeypatch.setattr(P, "reduce_inputs", reduce_and_interrupt)
    rep = run_recipe(
        recipe, data=tmp_path / "d", output=tmp_path / "o", progress=False, log=lambda s: None
    )
    assert rep.interrupted and rep.exit_code == 130
    assert rep.counts["done"] == 3 and len(calls) == 3
    report = json.loads((tmp_path / "o" / "run_report.json").read_text())
    assert report["status"] == "interrupted"


# ------------------------------------------------------------------------------ batch cost, paths


def test_rerun_with_nothing_to_do_reads_no_frame_and_starts_no_cluster(tmp_path, monkeypatch):
    import saxsred.io.frames as F
    import saxsred.pipeline.session as S

    paths = make_dataset(tmp_path / "d", 3)
    recipe = write_recipe(tmp_path / "d", later=False)
    rep = run_recipe(
        recipe, data=tmp_path / "d", output=tmp_path / "o", progress=False, log=lambda s: None
    )
    assert rep.counts == {"done": 4, "skipped": 0, "failed": 0}

    def no(*args, **kwargs):
        raise AssertionError("nothing to do: no cluster")

    read = F.iter_frames

    def no_frame(path, *args, **kwargs):
        # the dark and mask are read once (the step's key holds their contents); no frame is
        assert "frames" not in Path(path).parts, f"nothing to do, yet {path} was read"
        return read(path, *args, **kwargs)

    monkeypatch.setattr(S, "make_executor", no)
    monkeypatch.setattr(F, "iter_frames", no_frame)
    rep = run_recipe(
        recipe,
        data=tmp_path / "d",
        output=tmp_path / "o",
        workers=2,
        progress=False,
        log=lambda s: None,
    )
    assert rep.counts == {"done": 0, "skipped": 4, "failed": 0} and rep.mode == "serial"
    # same bytes, new time: the contents are compared (checksums), still nothing to redo
    os.utime(paths[1], ns=(time.time_ns(), time.time_ns()))
    monkeypatch.undo()
    rep = run_recipe(
        recipe, data=tmp_path / "d", output=tmp_path / "o", progress=False, log=lambda s: None
    )
    assert rep.counts == {"done": 0, "skipped": 4, "failed": 0}
    # new contents with the same size: redone
    data = bytearray(paths[1].read_bytes())
    data[-1] ^= 1
    paths[1].write_bytes(bytes(data))
    rep = run_recipe(
        recipe, data=tmp_path / "d", output=tmp_path / "o", progress=False, log=lambda s: None
    )
    assert rep.counts == {"done": 1, "skipped": 3, "failed": 0}


def test_few_files_with_workers_run_here_and_say_why(tmp_path):
    make_dataset(tmp_path / "d", 3)
    recipe = write_recipe(tmp_path / "d", later=False)
    logs: list[str] = []
    rep = run_recipe(
        recipe,
        data=tmp_path / "d",
        output=tmp_path / "o",
        workers=2,
        progress=False,
        log=logs.append,
    )
    assert rep.exit_code == 0 and rep.mode.startswith("serial")
    assert any("pays from about" in line for line in logs), logs


def test_recipe_paths_resolve_against_the_recipe_folder(tmp_path):
    # The geometry and mask sit beside the recipe (calibration/), the frames and the dark in
    # --data: `calibration/` must not be looked for inside the data folder.
    make_dataset(tmp_path / "d", 2)
    rdir = tmp_path / "recipes"
    (rdir / "calibration").mkdir(parents=True)
    for f in ("geo.poni", "mask.edf"):
        shutil.move(tmp_path / "d" / f, rdir / "calibration" / f)
    text = RECIPE.format(extra="").replace('"geo.poni"', '"calibration/geo.poni"')
    text = text.replace('"mask.edf"', '"calibration/mask.edf"').replace(
        'dark = "dark.edf"', 'dark = "data:dark.edf"'
    )
    (rdir / "r.toml").write_text(text)
    rep = run_recipe(
        rdir / "r.toml",
        data=tmp_path / "d",
        output=tmp_path / "o",
        progress=False,
        log=lambda s: None,
    )
    assert rep.exit_code == 0 and rep.counts["done"] == 3, rep.failures
    # a dark named without "data:" is looked for beside the recipe: a one-line error naming both
    (rdir / "bad.toml").write_text(text.replace('"data:dark.edf"', '"dark.edf"'))
    with pytest.raises(Exception, match="relative to the recipe's folder"):
        run_recipe(
            rdir / "bad.toml",
            data=tmp_path / "d",
            output=tmp_path / "o2",
            progress=False,
            log=lambda s: None,
        )


def test_run_accepts_the_reduce_overrides(tmp_path):
    from saxsred.cli import main
    from saxsred.io.curves import read_curve
    from saxsred.provenance import file_checksum
    from saxsred.simulate import write_edf

    make_dataset(tmp_path / "d", 1)
    recipe = write_recipe(tmp_path / "d", later=False)
    mask = np.zeros(SHAPE, np.int8)
    mask[:, :20] = 1
    write_edf(tmp_path / "other_mask.edf", mask, {})
    out = tmp_path / "o"
    args = [
        "run",
        str(recipe),
        "--data",
        str(tmp_path / "d"),
        "-o",
        str(out),
        "--no-progress",
        "--mask",
        str(tmp_path / "other_mask.edf"),
        "--npt",
        "60",
        "--polarization",
        "off",
    ]
    assert main(args) == 0
    opts = read_curve(out / "reduce" / "s_000.h5").provenance["steps"][0]["options"]
    assert opts["npt"] == 60 and opts["polarization_factor"] is None
    assert opts["mask_file"]["checksum"] == file_checksum(tmp_path / "other_mask.edf")
