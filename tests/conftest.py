"""Shared fixtures: the sample geometry, generated frames, and the optional real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("SAXSRED_REALDATA", ROOT.parent / "shared" / "realdata"))

os.environ.setdefault("MPLBACKEND", "Agg")
# The reducer pins thread variables to 1 in its own process (saxsred.pipeline.pin_threads,
# before pyFAI loads OpenMP). numba re-reads NUMBA_NUM_THREADS whenever it compiles, and a
# value that differs from the one its thread pool was launched with is an error; on a fresh
# clone (empty numba cache) a structures kernel compiled after a pipeline test hit exactly that.
# Start the test process with the value the reducer sets, so the two never disagree.
os.environ["NUMBA_NUM_THREADS"] = "1"


def realdata(*parts: str) -> Path:
    """Path into ../shared/realdata, skipping the test cleanly when it is absent."""
    p = REALDATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data {p} not present (../shared/realdata is optional)")
    return p


def run_in_child(target, args, limit_s: float):
    """Run ``target(*args, queue)`` in a forked child with a time limit, so that a slow or
    crashing stage fails its test with a message instead of hanging the suite.

    Returns ("ok", what the child put), ("timeout", limit_s) or ("crash", exit code).
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, out))
    p.start()
    p.join(limit_s)
    if p.is_alive():
        p.terminate()
        p.join()
        return "timeout", limit_s
    if out.empty():
        return "crash", p.exitcode
    return "ok", out.get()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def small_geometry():
    from saxsred.geometry import Geometry

    return Geometry(
        1.0,
        70.3 * 172e-6,
        60.6 * 172e-6,
        0.0,
        0.0,
        0.0,
        172e-6,
        172e-6,
        1.0e-10,
        shape=(160, 170),
        source="test",
    )


def smooth_curve():
    """A smooth I(q) (Guinier + flat) whose pixel-to-bin curvature bias is negligible."""
    q = np.linspace(0.0, 5.0, 5001)
    return q, 2.0 * np.exp(-((q * 4.0) ** 2) / 3.0) + 0.05 + 0.02 * np.exp(-q)
