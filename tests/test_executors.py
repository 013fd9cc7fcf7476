"""The local executor of ``--workers N``: this process and N - 1 dask workers share the tasks.

Checked on the executor itself (no frames): every task's result comes back exactly once,
this process works while the cluster starts, and once the cluster is up the worker process
gets tasks too. The route tests (test_reduce_routes.py) check that curves are the same
bytes whichever process reduced them.
"""

from __future__ import annotations

import os
import sys
import time

import cloudpickle

from saxsred.pipeline.executors import LocalExecutor, SerialExecutor, make_executor

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the worker has no tests/ on its path


def where(items, shared):
    time.sleep(0.02)
    return [(item, shared, os.getpid()) for item in items]


def test_workers_one_is_this_process_alone():
    ex = make_executor(1, None)
    assert isinstance(ex, LocalExecutor) and ex.client is None and ex.nworkers == 1
    got = list(ex.map_unordered(where, (([k], "s") for k in range(5)), 4))
    ex.close()
    assert sorted(r[0][0] for r in got) == list(range(5))
    assert {r[0][2] for r in got} == {os.getpid()}
    assert isinstance(make_executor(None, None), SerialExecutor)


def test_this_process_and_the_cluster_share_the_tasks():
    ex = make_executor(2, None)
    try:
        # this process starts at once, before the cluster is up
        first = next(ex.map_unordered(where, iter([([0], "s")]), 4))
        assert first == [(0, "s", os.getpid())]
        t0 = time.time()
        while ex.client is None and time.time() - t0 < 120:
            time.sleep(0.1)
        assert ex.client is not None, f"the local cluster did not start ({ex.mode})"
        tasks = [([k, k + 100], "shared") for k in range(1, 30)]
        got = [r for res in ex.map_unordered(where, iter(tasks), 4) for r in res]
        items = sorted(r[0] for r in got)
        assert items == sorted([k for k in range(1, 30)] + [k + 100 for k in range(1, 30)])
        assert {r[1] for r in got} == {"shared"}
        pids = {r[2] for r in got}
        assert os.getpid() in pids and len(pids) == 2, pids  # both processes worked
        rss = ex.worker_peak_rss_mb()
        assert "this process" in rss and len(rss) == 2
    finally:
        ex.close()


def test_a_cluster_that_does_not_start_leaves_the_work_here_and_says_so(monkeypatch):
    import saxsred.pipeline.executors as E

    def refuse(n):
        raise OSError("no ports left")

    monkeypatch.setattr(E, "local_cluster", refuse)
    ex = make_executor(2, None)
    got = [r for res in ex.map_unordered(where, (([k], "s") for k in range(6)), 4) for r in res]
    ex.close()
    assert sorted(r[0] for r in got) == list(range(6))
    assert {r[2] for r in got} == {os.getpid()}
    assert "did not start" in ex.mode and "OSError" in ex.mode, ex.mode
