"""The reduce unit: one input file of a reduce step, reduced on a worker (or in the client)
unless its outputs are up to date. Records are small JSON-able dicts."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import provenance as prov_mod
from ..errors import InputError
from .executors import pin_threads, tune_malloc

if TYPE_CHECKING:
    from ..reduce import ReducerCache
from .keys import one_line, rel_path, sidecar_path, up_to_date


@dataclass(frozen=True)
class ReduceSpec:
    """What a worker needs to reduce files of one step (sent once to each worker).

    ``token`` hashes the options, the dark/flat/mask/PONI contents, the step name and the
    software versions; a unit's key is ``hash(token, input checksum)``.
    """

    step: str
    corrections: Any  # saxsred.reduce.Corrections (arrays inside)
    poni: str | None
    frames: tuple[int, ...] | None
    outdir: str
    root: str
    formats: tuple[str, ...]
    token: str
    force: bool = False


_WORKER_REDUCERS: dict[str, dict] = {}


def _stat(path: str | Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def quick_up_to_date(side: Path, path: str, token: str, root: str | Path) -> dict | None:
    """The sidecar record if nothing changed, judged without reading any frame.

    The skip then rests on: the step's token (options, dark/flat/mask/PONI contents,
    software versions), the input's path, size and modification time (ns), and each
    output's and each header-named dark/flat/mask file's size and modification time, as
    they were when the unit was done. A file rewritten with the same size within the
    clock's resolution would go unnoticed; ``--force`` (or touching the file) redoes it.
    Anything else changed: None, and the caller compares contents (checksums).
    """
    try:
        rec = json.loads(side.read_text(encoding="utf-8"))
        if rec.get("token") != token or rec.get("input_stat") != _stat(path):
            return None
        for f in rec.get("outputs", []):
            if f.get("stat") != _stat(Path(root) / f["path"]):
                return None
        for f in rec.get("aux", []):
            if f.get("stat") != _stat(f["path"]):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec


def _aux_up_to_date(rec: dict) -> bool:
    """The header-named files a unit used still have the contents it used."""
    try:
        return all(prov_mod.file_checksum(f["path"]) == f["checksum"] for f in rec.get("aux", []))
    except OSError:
        return False


def _worker_cache(spec: ReduceSpec) -> ReducerCache:
    from ..reduce import ReducerCache

    cache = _WORKER_REDUCERS.get(spec.token)
    if cache is None:
        if len(_WORKER_REDUCERS) > 8:  # a long-lived worker serving many recipes
            _WORKER_REDUCERS.clear()
        cache = _WORKER_REDUCERS[spec.token] = ReducerCache(spec.corrections, spec.poni)
    return cache


def quick_skip(ident: str, path: str, spec: ReduceSpec) -> dict | None:
    """The "skipped" record of a unit that is up to date by size and time (see
    :func:`quick_up_to_date`), or None. Runs in the client: no frame is read."""
    if spec.force:
        return None
    t0, c0 = time.perf_counter(), time.thread_time()
    side = sidecar_path(spec.outdir, ident)
    old = quick_up_to_date(side, path, spec.token, spec.root) if side.is_file() else None
    return None if old is None else _skipped(old, t0, c0)


def _skipped(old: dict, t0: float, c0: float) -> dict:
    old.update(
        status="skipped",
        seconds=round(time.perf_counter() - t0, 4),
        cpu_seconds=round(time.thread_time() - c0, 4),
    )
    return old


def reduce_input(ident: str, path: str, spec: ReduceSpec) -> dict[str, Any]:
    """Reduce one input file (all its selected frames) unless its outputs are up to date.

    Runs on a worker (or in the client for serial runs). Returns a small JSON-able record:
    ``status`` (done, skipped, failed), ``reason`` for failures, ``outputs`` (paths
    relative to the run folder, checksums), ``curves`` (curve name -> output path).
    Frames go through the one frame iterator (:func:`saxsred.reduce.iter_reducers`):
    geometry per file, header-named dark/flat/mask, one reducer per geometry.
    """
    from ..io.atomic import write_text_atomic
    from ..reduce import header_files, iter_reducers, write_curves

    if "pyFAI" not in sys.modules:
        pin_threads()  # first reduction in this process: before pyFAI loads its OpenMP runtime
    tune_malloc()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    rec: dict[str, Any] = {"step": spec.step, "unit": ident}
    try:
        side = sidecar_path(spec.outdir, ident)
        checksum = key = ""
        if not spec.force and side.is_file():  # else iter_frames' own checksum gives the key
            old = quick_up_to_date(side, path, spec.token, spec.root)
            if old is not None:
                return _skipped(old, t0, c0)
            try:
                checksum = prov_mod.file_checksum(path)
            except OSError as exc:
                raise InputError(
                    f"{path}: cannot be read ({exc.strerror or exc}); check it exists and permissions"
                ) from None
            key = prov_mod.text_checksum(spec.token + checksum)
            old = up_to_date(side, key, spec.root)
            if old is not None and _aux_up_to_date(old):
                if (
                    old.get("token") == spec.token
                ):  # same contents, new time: the next check is quick again
                    old["input_stat"] = _stat(path)
                    write_text_atomic(side, json.dumps(old, sort_keys=True, indent=1) + "\n")
                return _skipped(old, t0, c0)
        outputs: list[dict[str, Any]] = []
        curves: dict[str, str] = {}
        aux: dict[str, dict[str, Any]] = {}
        input_stat = _stat(path)
        for frame, red in iter_reducers([path], _worker_cache(spec), spec.frames):
            if frame.checksum != checksum:  # not hashed yet, or rewritten since (live mode)
                checksum = frame.checksum
                key = prov_mod.text_checksum(spec.token + checksum)
            for f in header_files(frame, spec.corrections)[0].values():
                aux.setdefault(
                    str(f),
                    {"path": str(f), "checksum": prov_mod.file_checksum(f), "stat": _stat(f)},
                )
            curve = red.reduce(frame)
            sums: dict[str, str] = {}
            for p in write_curves([curve], spec.outdir, spec.formats, sums):
                rel = rel_path(p, spec.root)
                outputs.append(
                    {"path": rel, "checksum": sums[p], "frame": frame.index, "stat": _stat(p)}
                )
                curves.setdefault(curve.name, rel)
        if not outputs:
            raise InputError(
                f"{path}: no frame was read (frame selection {spec.frames}); check the file and 'frames'"
            )
        rec.update(
            key=key,
            input=Path(path).name,
            input_checksum=checksum,
            outputs=outputs,
            curves=curves,
            token=spec.token,
            input_stat=input_stat,
            aux=[aux[k] for k in sorted(aux)],
        )
        write_text_atomic(side, json.dumps(rec, sort_keys=True, indent=1) + "\n")
        rec["status"] = "done"
    except Exception as exc:  # a bad file must not stop the others
        rec.update(status="failed", reason=one_line(exc, path))
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    rec["cpu_seconds"] = round(time.thread_time() - c0, 4)  # < seconds: the core was busy elsewhere
    return rec


def reduce_inputs(items: Sequence[tuple[str, str]], spec: ReduceSpec) -> list[dict[str, Any]]:
    """:func:`reduce_input` over a few files (one dask task: amortises the task overhead)."""
    return [reduce_input(ident, path, spec) for ident, path in items]
