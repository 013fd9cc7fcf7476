"""The run report: counts and failures (:class:`RunReport`), the journal of records,
``run_report.json`` (manifest with provenance) and ``run_summary.txt``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import provenance as prov_mod
from ..io.jsonfile import jsonable
from .keys import REPORT_NAME, STATE_DIR, SUMMARY_NAME

if TYPE_CHECKING:
    from .session import RunContext


def now_iso() -> str:
    """Local time with its offset (reports only: never in data files)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


class Journal:
    """Records of this run, streamed to ``.saxsred/journal.jsonl`` (not kept in memory)."""

    def __init__(self, root: Path, append: bool = False) -> None:
        self.path = root / STATE_DIR / "journal.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a" if append else "w", encoding="utf-8")

    def write(self, rec: dict[str, Any]) -> None:
        self._fh.write(json.dumps(rec, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def records(self) -> Iterator[dict[str, Any]]:
        self._fh.flush()
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


@dataclass
class RunReport:
    """What a run did: counts, failures (with reasons), where the report was written."""

    output: str
    counts: dict[str, int] = field(default_factory=lambda: {"done": 0, "skipped": 0, "failed": 0})
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    mode: str = "serial"
    interrupted: bool = False
    report_path: str = ""
    summary_path: str = ""
    worker_peak_rss_mb: dict[str, float] = field(default_factory=dict)
    retried: int = 0  # live mode: reads of files not complete yet, retried when they changed

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failures else 0

    def add(self, rec: dict[str, Any]) -> None:
        st = rec.get("status", "failed")
        self.counts[st] = self.counts.get(st, 0) + 1
        if st == "failed":
            self.failures.append(
                {
                    "step": rec.get("step", ""),
                    "unit": rec.get("unit", ""),
                    "reason": rec.get("reason", ""),
                }
            )


def write_report(
    ctx: RunContext, started: str, recipe_info: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """Write ``run_report.json`` (manifest with provenance, streamed from the journal) and
    ``run_summary.txt``; earlier runs' entries are kept under ``runs``."""
    from .. import __version__
    from ..io.atomic import atomic_path, write_text_atomic

    rep = ctx.report
    path = ctx.out / REPORT_NAME
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        runs = list(json.loads(path.read_text(encoding="utf-8")).get("runs", []))
    this = {
        "started": started,
        "finished": now_iso(),
        "seconds": round(rep.seconds, 3),
        "mode": rep.mode,
        "data": str(ctx.data),
        "force": ctx.force,
        "interrupted": rep.interrupted,
        "counts": dict(rep.counts),
        "failures": rep.failures,
        "worker_peak_rss_mb": rep.worker_peak_rss_mb,
        **({"retried": rep.retried} if extra and extra.get("live") else {}),
        **(extra or {}),
    }
    if runs and extra and extra.get("live") and runs[-1].get("started") == started:
        runs[-1] = this  # live mode rewrites its own entry as it goes
    else:
        runs.append(this)
    head = {
        "saxsred": __version__,
        "software": prov_mod.software_versions(),
        "recipe": recipe_info,
        "status": "interrupted" if rep.interrupted else ("failed" if rep.failures else "ok"),
        "runs": runs,
    }
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        text = json.dumps(jsonable(head), indent=1, sort_keys=True)
        fh.write(text[:-2] + ',\n "outputs": [')  # drop the closing "\n}" and stream the outputs
        first = True
        live = bool(extra and extra.get("live"))
        for out, rec in manifest(ctx.journal.records(), dedupe=live):
            entry = {
                "path": out["path"],
                "checksum": out["checksum"],
                "step": rec.get("step"),
                "unit": rec.get("unit"),
                "key": rec.get("key"),
                "status": rec.get("status"),
                "inputs": rec.get("inputs")
                or (
                    [
                        {
                            "file": rec.get("input"),
                            "checksum": rec.get("input_checksum"),
                            "frame": out.get("frame", 0),
                        }
                    ]
                    if rec.get("input")
                    else []
                ),
            }
            fh.write(("\n  " if first else ",\n  ") + json.dumps(entry, sort_keys=True))
            first = False
        fh.write("\n ]\n}\n")
    write_text_atomic(
        ctx.out / SUMMARY_NAME, summary_text(rep, recipe_info.get("name", ""), started) + "\n"
    )
    rep.report_path = str(path)
    rep.summary_path = str(ctx.out / SUMMARY_NAME)


def manifest(records: Iterable[dict[str, Any]], dedupe: bool) -> Iterator[tuple[dict, dict]]:
    """(output, record) pairs of finished units; with ``dedupe`` the latest entry of a path
    wins (live mode appends to the journal of earlier runs)."""
    pairs = (
        (out, rec)
        for rec in records
        if rec.get("status") in ("done", "skipped")
        for out in rec.get("outputs", [])
    )
    if not dedupe:
        yield from pairs
        return
    latest: dict[str, tuple[dict, dict]] = {}
    for out, rec in pairs:
        latest.pop(out["path"], None)
        latest[out["path"]] = (out, rec)
    yield from latest.values()


def summary_text(rep: RunReport, name: str = "", started: str = "") -> str:
    """The human summary of a run: counts, timing, failures with their reasons."""
    c = rep.counts
    n = c.get("done", 0) + c.get("skipped", 0) + c.get("failed", 0)
    lines = [
        f"saxsred run {name} ({rep.mode}){' started ' + started if started else ''}: "
        f"{n} unit(s): {c.get('done', 0)} done, {c.get('skipped', 0)} up to date (skipped), {c.get('failed', 0)} failed "
        f"in {rep.seconds:.1f} s" + (" -- INTERRUPTED" if rep.interrupted else ""),
    ]
    for f in rep.failures:
        lines.append(f"  FAILED {f['step']}/{f['unit']}: {f['reason']}")
    lines.append(f"outputs and provenance: {rep.report_path or REPORT_NAME}")
    return "\n".join(lines)
