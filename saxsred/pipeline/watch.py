"""Live mode: reduce frames as they appear in a folder."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ParameterError
from . import units
from .executors import TaskError
from .keys import clean_partials
from .reduce_step import expand_inputs, make_spec, pairing
from .report import RunReport, summary_text
from .run import data_dir, output_dir, recipe_info
from .schema import Recipe, Step, load_recipe
from .session import RunSession


@dataclass
class _Seen:
    """Watch state of one file: its last (size, mtime), since when, and what became of it."""

    sig: tuple[int, int]
    since: float
    done: tuple[int, int] | None = None
    failed_at: tuple[int, int] | None = None
    reported: bool = False


@dataclass
class _Ready:
    """A file to reduce now; ``last`` when this is its last chance (unreadable too long)."""

    step: Step
    ident: str
    path: str
    last: bool


@dataclass
class _Watcher:
    """The polling state of a live run: what each file looked like and when."""

    steps: list[Step]
    data: Path
    settle_s: float
    corrupt_after_s: float
    seen: dict[tuple[str, str], _Seen] = field(default_factory=dict)
    last_new: float = field(default_factory=time.monotonic)

    def _classify(self, step: Step, ident: str, path: str, now: float) -> _Ready | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        sig = (st.st_size, st.st_mtime_ns)
        e = self.seen.get((step.name, ident))
        if e is None or e.sig != sig:  # new or changed: wait until it settles
            done = e.done if e is not None else None
            self.seen[(step.name, ident)] = _Seen(sig, now, done)
            if sig != done:
                self.last_new = now
            return None
        if e.done == sig or sig[0] == 0 or now - e.since < self.settle_s:
            return None
        if e.failed_at == sig:  # did not read at this size: wait for a change
            late = not e.reported and now - e.since >= self.corrupt_after_s
            return _Ready(step, ident, path, True) if late else None
        return _Ready(step, ident, path, False)

    def scan(self) -> list[_Ready]:
        """The files whose size and time have settled and that are not done yet."""
        now = time.monotonic()
        ready = []
        for step in self.steps:
            for ident, path in expand_inputs(step, self.data)[0]:
                r = self._classify(step, ident, path, now)
                if r is not None:
                    ready.append(r)
        return ready

    def waiting(self) -> bool:
        """Some file changed and is neither done nor reported as failed."""
        return any(e.done != e.sig and not e.reported for e in self.seen.values())


def _reduce_ready(
    session: RunSession, watcher: _Watcher, ready: list[_Ready], specs: dict[tuple, Any]
) -> int:
    """Reduce the settled files on the session's executor; returns how many were reduced."""
    ctx, log, executor = session.ctx, session.ctx.log, session.executor
    for r in ready:
        k = (r.step.name, *pairing(r.step, r.ident, r.path))
        if k not in specs:
            specs[k] = executor.share(make_spec(ctx, r.step, k[1:]))
    final = {(r.step.name, r.ident): r.last for r in ready}
    sigs = {(r.step.name, r.ident): watcher.seen[(r.step.name, r.ident)].sig for r in ready}
    tasks = (
        ([(r.ident, r.path)], specs[(r.step.name, *pairing(r.step, r.ident, r.path))])
        for r in ready
    )
    n = 0
    for res in executor.map_unordered(units.reduce_inputs, tasks, 2 * executor.nworkers + 2):
        for rec in [] if isinstance(res, TaskError) else res:
            k = (rec["step"], rec["unit"])
            e = watcher.seen[k]
            if rec["status"] in ("done", "skipped"):
                e.done = sigs[k]
                ctx.record(rec)
                n += 1
                log(f"{rec['status']}: {rec['step']}/{rec['unit']}")
            elif final[k]:
                e.reported = True
                ctx.record(rec)
                log(f"FAILED {rec['step']}/{rec['unit']}: {rec.get('reason')}")
            else:
                e.failed_at = sigs[k]  # probably still being written
                session.report.retried += 1
                log(f"waiting: {rec['step']}/{rec['unit']} does not read yet ({rec.get('reason')})")
    return n


def watch_recipe(
    recipe: Recipe | str | os.PathLike,
    data: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    interval_s: float = 1.0,
    settle_s: float = 2.0,
    corrupt_after_s: float = 60.0,
    timeout_s: float | None = None,
    idle_timeout_s: float | None = None,
    max_files: int | None = None,
    force: bool = False,
    log: Callable[[str], Any] = print,
    stop: Callable[[], bool] | None = None,
) -> RunReport:
    """Reduce frames of the recipe's reduce steps as they appear in ``data``.

    A file is taken when its size and modification time have not changed for ``settle_s``
    and it reads completely; a file that does not read (still being written, corrupt) is
    retried when it changes, and reported as failed once if it stays unreadable and
    unchanged for ``corrupt_after_s``. Each file is reduced once (again only if it
    changes). Stops after ``timeout_s``, after ``idle_timeout_s`` without a new or changed
    file (and none waiting), after ``max_files`` reduced files, when ``stop()`` returns
    true, or on Ctrl-C. The run report is rewritten after every batch (one live entry
    under ``runs``). Only reduce steps run live; ``saxsred run`` afterwards does the rest
    (the frames already reduced are skipped).
    """
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    data_folder = data_dir(rec, data)
    out = output_dir(rec, output)
    rsteps = [s for s in rec.steps if s.kind == "reduce"]
    if not rsteps:
        raise ParameterError(
            f"{rec.source}: the recipe has no reduce step; live mode reduces frames as they appear"
        )
    session = RunSession(
        rec,
        data_folder,
        out,
        recipe_info(rec),
        force=force,
        log=log,
        progress=False,
        workers=workers,
        scheduler=scheduler,
        live=True,
    )
    for s in rsteps:
        clean_partials(out / s.name)
    watcher = _Watcher(rsteps, data_folder, settle_s, corrupt_after_s)
    specs: dict[tuple, Any] = {}
    nfiles = 0
    with session:
        session.executor  # noqa: B018  (live: the workers are up before the first frame lands)
        while True:
            ready = watcher.scan()
            if ready:
                nfiles += _reduce_ready(session, watcher, ready, specs)
                session.checkpoint()
            idle = (
                idle_timeout_s is not None and time.monotonic() - watcher.last_new >= idle_timeout_s
            )
            if (
                (max_files is not None and nfiles >= max_files)
                or (timeout_s is not None and session.elapsed_s >= timeout_s)
                or (idle and not watcher.waiting())
                or (stop is not None and stop())
            ):
                break
            time.sleep(interval_s)
    log(summary_text(session.report, rec.name, session.started))
    return session.report
