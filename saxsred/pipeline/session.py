"""The run session: the context every unit records into, and clean Ctrl-C handling."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .executors import SerialExecutor, make_executor
from .report import Journal, RunReport, now_iso, write_report
from .schema import Recipe


@dataclass
class RunContext:
    recipe: Recipe | None
    data: Path
    out: Path
    force: bool
    report: RunReport
    journal: Journal
    log: Callable[[str], Any]
    progress: bool
    curves: dict[str, dict[str, Path]] = field(default_factory=dict)
    results: dict[str, dict[str, Path]] = field(default_factory=dict)
    failed_units: dict[str, set[str]] = field(default_factory=dict)

    def record(self, rec: dict[str, Any], step: str | None = None) -> None:
        self.report.add(rec)
        self.journal.write(rec)
        if rec.get("status") == "failed":
            self.failed_units.setdefault(rec.get("step", step or ""), set()).add(
                rec.get("unit", "")
            )
        if rec.get("status") in ("done", "skipped"):
            for name, rel in (rec.get("curves") or {}).items():
                self.curves.setdefault(rec["step"], {})[name] = self.out / rel
            for name, rel in (rec.get("results") or {}).items():
                self.results.setdefault(rec["step"], {})[name] = self.out / rel
        if STOP.is_set():  # see stoppable: the unit is recorded, the run stops here
            raise KeyboardInterrupt


STOP = threading.Event()


@contextlib.contextmanager
def stoppable() -> Iterator[None]:
    """Ctrl-C (SIGINT) stops a run cleanly, even when it lands in a finalizer.

    The handler raises KeyboardInterrupt as Python's does, and also sets a flag that
    :meth:`RunContext.record` checks after every unit: an interrupt raised inside a
    ``__del__`` or a weakref callback (h5py, fabio and dask close files and sockets there)
    is printed and dropped by Python, and the run would otherwise go on to the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    STOP.clear()

    def handler(signum: int, frame: Any) -> None:
        STOP.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        STOP.clear()


#: A local cluster is started for at least this many files to reduce per worker: it costs
#: ~3-5 s (processes, imports, one pyFAI engine each) while a 1M frame takes ~50 ms, so
#: below ~50 files per worker two workers finish later than one process (measured: 40
#: frames 0.97x with 2 workers). A running scheduler (--scheduler) has no such cost.
LOCAL_MIN_FILES_PER_WORKER = 48


class RunSession:
    """One run of ``run``, ``reduce --workers`` or ``watch``: the context units record into,
    the executor (started on first use only: a run with nothing to do starts no cluster),
    the journal, and the report written when the session ends (and at each checkpoint).

    Use as a context manager; Ctrl-C inside it ends the run cleanly (``interrupted``).
    """

    def __init__(
        self,
        recipe: Recipe | None,
        data: Path,
        out: Path,
        info: dict[str, Any],
        *,
        force: bool = False,
        log: Callable[[str], Any] = print,
        progress: bool = True,
        workers: int | None = None,
        scheduler: str | None = None,
        client: Any = None,
        live: bool = False,
    ) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.started = now_iso()
        self._t0 = time.perf_counter()
        self.report = RunReport(output=str(out))
        self.ctx = RunContext(
            recipe, data, out, force, self.report, Journal(out, append=live), log, progress
        )
        self.info = info
        self.live = live
        self._executor_args = (workers, scheduler, client)
        self._executor: Any = None
        self._serial: Any = None
        self._stop_cm: Any = None

    @property
    def executor(self) -> Any:
        """The executor, started now if it is not yet."""
        if self._executor is None:
            self._executor = make_executor(*self._executor_args)
            self.report.mode = ("watch/" if self.live else "") + self._executor.mode
        return self._executor

    def executor_for(self, n_files: int) -> Any:
        """The executor for ``n_files`` files to reduce: this process instead of a new local
        cluster when the cluster would cost more than it saves (said in the log and the
        report's mode); otherwise :attr:`executor`."""
        workers, scheduler, client = self._executor_args
        if self._executor is None and workers and scheduler is None and client is None:
            need = LOCAL_MIN_FILES_PER_WORKER * int(workers)
            if n_files < need:
                if self._serial is None:
                    self._serial = SerialExecutor()
                    self.report.mode = (
                        "watch/" if self.live else ""
                    ) + f"serial ({n_files} < {need} files for --workers {workers})"
                    self.ctx.log(
                        f"{n_files} file(s) to reduce: in this process; starting {workers} local workers "
                        f"(~3-5 s) pays from about {need} files (--scheduler uses a running cluster)"
                    )
                return self._serial
        return self.executor

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def checkpoint(self) -> None:
        """Rewrite the report now (live mode, after every batch)."""
        self.report.seconds = self.elapsed_s
        write_report(self.ctx, self.started, self.info, {"live": True} if self.live else None)

    def __enter__(self) -> RunSession:
        if not self.live and self._executor_args == (None, None, None):
            self.report.mode = "serial"
        self._stop_cm = stoppable()
        self._stop_cm.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        interrupted = exc_type is not None and issubclass(exc_type, KeyboardInterrupt)
        try:
            if interrupted:
                self.report.interrupted = True
                self.ctx.log("interrupted: finished outputs are kept; rerun to complete the rest")
            if self._executor is not None:
                if exc_type is None:
                    self.report.worker_peak_rss_mb = self._executor.worker_peak_rss_mb()
                self._executor.close()
                # the mode as it ended (a local cluster that failed to start says so)
                self.report.mode = ("watch/" if self.live else "") + self._executor.mode
            self.checkpoint()
        finally:
            self.ctx.journal.close()
            self._stop_cm.__exit__(None, None, None)
        return interrupted
