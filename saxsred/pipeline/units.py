"""The reduce unit: one input file of a reduce step, reduced on a worker (or in the client)
unless its outputs are up to date. Records are small JSON-able dicts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import provenance as prov_mod
from ..errors import InputError
from .executors import pin_threads, tune_malloc
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


def reduce_input(ident: str, path: str, spec: ReduceSpec) -> dict[str, Any]:
    """Reduce one input file (all its selected frames) unless its outputs are up to date.

    Runs on a worker (or in the client for serial runs). Returns a small JSON-able record:
    ``status`` (done, skipped, failed), ``reason`` for failures, ``outputs`` (paths
    relative to the run folder, checksums), ``curves`` (curve name -> output path).
    """
    from ..io.atomic import write_text_atomic
    from ..io.frames import iter_frames
    from ..reduce import Reducer, geometry_for, write_curves

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
            try:
                checksum = prov_mod.file_checksum(path)
            except OSError as exc:
                raise InputError(
                    f"{path}: cannot be read ({exc.strerror or exc}); check it exists and permissions"
                ) from None
            key = prov_mod.text_checksum(spec.token + checksum)
            old = up_to_date(side, key, spec.root)
            if old is not None:
                old.update(
                    status="skipped",
                    seconds=round(time.perf_counter() - t0, 4),
                    cpu_seconds=round(time.thread_time() - c0, 4),
                )
                return old
        reducers = _WORKER_REDUCERS.get(spec.token)
        if reducers is None:
            if len(_WORKER_REDUCERS) > 8:  # a long-lived worker serving many recipes
                _WORKER_REDUCERS.clear()
            reducers = _WORKER_REDUCERS[spec.token] = {}
        geo0 = reducers.get("poni")
        if geo0 is None and spec.poni:
            from ..geometry import load_geometry

            geo0 = reducers["poni"] = load_geometry(spec.poni)
        outputs: list[dict[str, Any]] = []
        curves: dict[str, str] = {}
        for frame in iter_frames(path, spec.frames):
            if frame.checksum != checksum:  # not hashed yet, or rewritten since (live mode)
                checksum = frame.checksum
                key = prov_mod.text_checksum(spec.token + checksum)
            geo = geometry_for(frame, geo0)
            if geo.shape is None:
                geo = geo.with_shape(frame.data.shape)
            red = reducers.get(geo)
            if red is None:
                red = reducers[geo] = Reducer(geo, spec.corrections)
            curve = red.reduce(frame)
            sums: dict[str, str] = {}
            for p in write_curves([curve], spec.outdir, spec.formats, sums):
                rel = rel_path(p, spec.root)
                outputs.append({"path": rel, "checksum": sums[p], "frame": frame.index})
                curves.setdefault(curve.name, rel)
        if not outputs:
            raise InputError(
                f"{path}: no frame was read (frame selection {spec.frames}); check the file and 'frames'"
            )
        rec.update(
            key=key, input=Path(path).name, input_checksum=checksum, outputs=outputs, curves=curves
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
