"""Recipes (TOML) -> steps -> dask: batch reprocessing, distributed runs, resume, live mode.

A recipe names the inputs (globs relative to a data folder), the geometry and the
corrections, and a list of steps; :func:`run_recipe` runs it serially, on a local
dask.distributed cluster (N worker processes, one thread each) or on a running scheduler.
The same runner serves ``saxsred reduce --workers N`` (:func:`reduce_parallel`).

Never redo, never lose
    Each unit of work (one input file of a ``reduce`` step, one output of a later step)
    is keyed by the XXH3 of its inputs' contents, the step's options and the software
    versions. The key and the checksums of the outputs are written, after the outputs,
    to ``<step folder>/.saxsred/<unit>.json``; a rerun skips a unit whose key and outputs
    are unchanged (``force`` redoes it). Every file is written atomically, so a killed run
    leaves finished units complete and unfinished ones absent.

Bounded memory
    Workers read frames from paths themselves; the client submits at most ``window``
    tasks at a time (a few per worker), each task holds one frame at a time, and results
    are small records streamed to a journal file rather than kept.

Example
-------
>>> rep = run_recipe("pipelines/capillary_saxs.toml", data="sample_data", output="out")  # doctest: +SKIP
>>> rep.exit_code, rep.counts                                                            # doctest: +SKIP
(0, {'done': 20, 'skipped': 0, 'failed': 0})
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import glob as glob_mod
import json
import os
import re
import signal
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from . import provenance as prov_mod
from .errors import InputError, ParameterError, SaxsredError

#: Thread counts pinned in every process that reduces: a reduction must not depend on how
#: many cores a worker happens to have (OpenMP/BLAS reductions change the summation order).
THREAD_VARS = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

STEP_KINDS = ("reduce", "average", "subtract", "scale", "form_factor", "structure_factor", "peaks", "figures")
_CURVE_KINDS = ("reduce", "average", "subtract", "scale", "structure_factor")
_STATE_DIR = ".saxsred"
REPORT_NAME = "run_report.json"
SUMMARY_NAME = "run_summary.txt"


def pin_threads() -> None:
    """Set the thread-count variables to 1 (effective for libraries not yet loaded)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo the effect of dask's ``MALLOC_TRIM_THRESHOLD_`` on frame-sized arrays.

    dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536; setting it switches off
    glibc's dynamic mmap threshold, so every array above 128 kB (each frame, each mask and
    weight array of pyFAI) is a fresh mmap, page-faulted and zeroed, then unmapped: the
    reduction ran 1.5-2x slower in a worker than in a plain process (measured). A fixed
    32 MB mmap threshold (glibc's maximum) lets those buffers be reused from the heap; the
    trim threshold still returns freed memory at the top of the heap.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD


# =============================================================================== recipes


@dataclass(frozen=True)
class Step:
    """One step of a recipe: its unique ``name``, its ``kind`` and its validated options."""

    name: str
    kind: str
    options: dict[str, Any]
    line: int = 0


@dataclass(frozen=True)
class Recipe:
    """A validated recipe (see ``pipelines/README.md`` for the format)."""

    name: str
    source: str
    checksum: str
    description: str = ""
    data: str | None = None
    output: str | None = None
    geometry: dict[str, Any] = field(default_factory=dict)
    corrections: dict[str, Any] = field(default_factory=dict)
    steps: tuple[Step, ...] = ()

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


# ---- schema: key -> (type, check); types are names understood by _convert


def _pos(v: float) -> str | None:
    return None if v > 0 else "must be positive"


def _unit_interval(v: float) -> str | None:
    return None if 0 < v < 1 else "must be between 0 and 1"


def _pol(v: Any) -> str | None:
    return None if v is False or -1 <= v <= 1 else "must be between -1 and 1, or false"


def _npt(v: int) -> str | None:
    return None if v >= 2 else "must be at least 2"


def _enum(*allowed: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if v in allowed else f"must be one of {', '.join(allowed)}"

    return check


_FRAME_SEL = re.compile(r"^\s*-?\d+(\s*-\s*-?\d+)?(\s*,\s*-?\d+(\s*-\s*-?\d+)?)*\s*$")


def _frames(v: str) -> str | None:
    return None if _FRAME_SEL.match(v) else "must be frame indices and ranges such as \"0,2,5-9\""


def _formats(v: list[str]) -> str | None:
    bad = [f for f in v if f not in ("h5", "dat")]
    if bad or not v:
        return "must be a non-empty list of \"h5\" and \"dat\""
    return None


_SECTION_KEYS: dict[str, dict[str, tuple[str, Any]]] = {
    "recipe": {"name": ("str", None), "description": ("str", None), "data": ("str", None), "output": ("str", None)},
    "geometry": {"poni": ("str", None), "mask": ("str", None)},
    "corrections": {
        "dark": ("str", None),
        "flat": ("str", None),
        "npt": ("int", _npt),
        "unit": ("str", _enum("q_nm^-1", "q_A^-1", "2th_deg", "r_mm")),
        "q_range_nm": ("range", None),
        "monitor": ("str", _enum("auto", "I1", "I0", "exposure", "none")),
        "polarization_factor": ("float_or_false", _pol),
        "solid_angle": ("bool", None),
        "transmission": ("float", _pos),
        "empty_beam_ratio": ("float", _pos),
        "thickness_mm": ("float", _pos),
        "scale": ("float", _pos),
        "hot_pixels": ("bool", None),
        "saturation": ("float", _pos),
        "mask_dummy": ("bool", None),
        "mask_negative": ("bool", None),
    },
}

_COMMON_STEP = {"name": ("str", None), "kind": ("str", _enum(*STEP_KINDS)), "description": ("str", None)}
_STEP_KEYS: dict[str, dict[str, tuple[str, Any]]] = {
    "reduce": {
        "inputs": ("strs", None),
        "exclude": ("strs", None),
        "frames": ("str", _frames),
        "formats": ("strs", _formats),
        "darks": ("table", None),
        "ponis": ("table", None),
        **_SECTION_KEYS["geometry"],
        **_SECTION_KEYS["corrections"],
    },
    "average": {"inputs": ("strs", None), "output": ("str", None), "alpha": ("float", _unit_interval), "reject": ("bool", None)},
    "subtract": {"inputs": ("strs", None), "background": ("str", None), "pairs": ("table", None), "factor": ("float", None)},
    "scale": {
        "inputs": ("strs", None),
        "water": ("str", None),
        "empty": ("str", None),
        "factor": ("float", _pos),
        "factor_err": ("float", None),
        "q_range_nm": ("range", None),
        "water_cm": ("float", _pos),
    },
    "form_factor": {
        "input": ("str", None),
        "shape": ("str", _enum("cube", "sphere", "prism")),
        "qmin": ("float", None),
        "qmax": ("float", None),
        "figure": ("bool", None),
    },
    "structure_factor": {"sample": ("str", None), "dilute": ("str", None), "output": ("str", None)},
    "peaks": {
        "input": ("str", None),
        "lattice": ("str", None),
        "edge_nm": ("float", _pos),
        "edge_from": ("str", None),
        "calibrant": ("str", None),
        "instrument_fwhm_inv_nm": ("float", None),
        "qmin": ("float", None),
        "qmax": ("float", None),
        "curve_kind": ("str", _enum("sq", "iq")),
        "figure": ("bool", None),
    },
    "figures": {"inputs": ("strs", None), "output": ("str", None), "title": ("str", None), "logx": ("bool", None)},
}
_REQUIRED = {
    "reduce": ("inputs",),
    "average": ("inputs",),
    "subtract": ("inputs",),
    "scale": ("inputs",),
    "form_factor": ("input",),
    "structure_factor": ("sample", "dilute"),
    "peaks": ("input",),
    "figures": ("inputs",),
}
_REF_KEYS = ("inputs", "background", "water", "empty", "input", "sample", "dilute", "calibrant")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


class _Locator:
    """Line numbers of keys in a TOML text (tomllib reports none for semantic errors)."""

    _ARRAY = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
    _TABLE = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")

    def __init__(self, text: str) -> None:
        # (section, array index or None, subtable or None) -> {key: line}, header line
        self.keys: dict[tuple, dict[str, int]] = {}
        self.headers: dict[tuple, int] = {}
        counts: dict[str, int] = {}
        cur: tuple = ("", None, None)
        self.headers[cur] = 1
        for n, line in enumerate(text.splitlines(), start=1):
            if m := self._ARRAY.match(line):
                name = m.group(1).strip().strip('"')
                counts[name] = counts.get(name, 0) + 1
                cur = (name, counts[name] - 1, None)
                self.headers[cur] = n
                continue
            if m := self._TABLE.match(line):
                name = m.group(1).strip().strip('"')
                head, _, sub = name.partition(".")
                if sub and head in counts:
                    cur = (head, counts[head] - 1, sub)
                else:
                    cur = (name, None, None)
                self.headers[cur] = n
                continue
            if m := re.match(r'^\s*"?([A-Za-z0-9_\-\.\*\?\[\]/]+)"?\s*=', line):
                self.keys.setdefault(cur, {}).setdefault(m.group(1), n)

    def line(self, section: str, index: int | None = None, key: str | None = None, sub: str | None = None) -> int:
        where = (section, index, sub)
        if key is not None and key in self.keys.get(where, {}):
            return self.keys[where][key]
        if sub is not None and key is not None and sub in self.keys.get((section, index, None), {}):
            return self.keys[(section, index, None)][sub]  # inline table
        return self.headers.get(where, self.headers.get((section, index, None), 1))


def _convert(value: Any, typ: str) -> tuple[Any, str | None]:
    """Check a TOML value's type; returns (converted value, problem or None)."""
    if typ == "str":
        return (value, None) if isinstance(value, str) else (value, "must be a string")
    if typ == "bool":
        return (value, None) if isinstance(value, bool) else (value, "must be true or false")
    if typ == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return (value, None) if ok else (value, "must be an integer")
    if typ in ("float", "float_or_false"):
        if typ == "float_or_false" and value is False:
            return value, None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), None
        return value, "must be a number" + (" or false" if typ == "float_or_false" else "")
    if typ == "strs":
        if isinstance(value, str):
            return [value], None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return list(value), None
        return value, "must be a string or a non-empty list of strings"
    if typ == "range":
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value))
        if not ok:
            return value, "must be two numbers [min, max]"
        lo, hi = float(value[0]), float(value[1])
        return ((lo, hi), None) if lo < hi else (value, "must be [min, max] with min < max")
    if typ == "table":
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value), None
        return value, "must be a table of \"pattern\" = \"name\" strings"
    raise AssertionError(typ)  # pragma: no cover


def _check_table(
    table: dict[str, Any], schema: dict[str, tuple[str, Any]], err: Callable[[str | None, str], SaxsredError]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(sorted(schema))}"
            raise err(key, f"unknown key{hint}")
        typ, check = schema[key]
        conv, problem = _convert(value, typ)
        if problem is None and check is not None:
            problem = check(conv)
        if problem:
            raise err(key, f"{problem} (got {value!r})")
        out[key] = conv
    return out


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    """Parse and validate a recipe's TOML text; errors name the line and the key.

    Raises
    ------
    ParameterError : ``"<source>:<line>: [section] key 'k': problem (got value)"``.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ParameterError(f"{source}: not valid TOML: {exc}; fix the syntax") from None
    loc = _Locator(text)

    def section_err(section: str) -> Callable[[str | None, str], SaxsredError]:
        def make(key: str | None, problem: str) -> SaxsredError:
            line = loc.line(section, None, key)
            what = f"key {key!r}: " if key else ""
            return ParameterError(f"{source}:{line}: [{section}] {what}{problem}")

        return make

    for key in doc:
        if key not in (*_SECTION_KEYS, "step"):
            close = difflib.get_close_matches(key, [*_SECTION_KEYS, "step"], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; use [recipe], [geometry], [corrections] and [[step]]"
            raise ParameterError(f"{source}:{loc.line(key)}: unknown section or key {key!r}{hint}")
    sections: dict[str, dict[str, Any]] = {}
    for sec, schema in _SECTION_KEYS.items():
        raw = doc.get(sec, {})
        if not isinstance(raw, dict):
            raise ParameterError(f"{source}:{loc.line('', None, sec)}: {sec!r} must be a table [{sec}]")
        sections[sec] = _check_table(raw, schema, section_err(sec))
    raw_steps = doc.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ParameterError(f"{source}:1: no steps; add at least one [[step]] table with name and kind")
    steps: list[Step] = []
    seen: dict[str, Step] = {}
    for i, raw in enumerate(raw_steps):
        label = f"[[step]] #{i + 1}" + (f" ({raw.get('name')!r})" if isinstance(raw.get("name"), str) else "")

        def err(key: str | None, problem: str, _i: int = i, _label: str = label, sub: str | None = None) -> SaxsredError:
            line = loc.line("step", _i, key, sub)
            what = f"key {key!r}: " if key else ""
            return ParameterError(f"{source}:{line}: {_label} {what}{problem}")

        for req in ("name", "kind"):
            if req not in raw:
                raise err(None, f"missing key {req!r}")
        kind = raw["kind"]
        if kind not in _STEP_KINDS_SET:
            close = difflib.get_close_matches(str(kind), STEP_KINDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise err("kind", f"unknown kind {kind!r}{hint} (kinds: {', '.join(STEP_KINDS)})")
        opts = _check_table(raw, {**_COMMON_STEP, **_STEP_KEYS[kind]}, err)
        name = opts.pop("name")
        opts.pop("kind")
        if not _NAME_RE.match(name):
            raise err("name", f"{name!r}: use letters, digits, '_' and '-' (it names the output folder)")
        if name in seen or name == _STATE_DIR:
            raise err("name", f"{name!r} is used by an earlier step; step names must be unique")
        for req in _REQUIRED[kind]:
            if req not in opts:
                raise err(None, f"missing key {req!r} (required by kind {kind!r})")
        if kind == "subtract" and "background" not in opts and "pairs" not in opts:
            raise err(None, "needs 'background' (one curve for all) or a 'pairs' table (sample pattern = background)")
        if kind == "scale" and "water" not in opts and "factor" not in opts:
            raise err(None, "needs 'water' (absolute scale from water) or 'factor'")
        if kind == "peaks" and "edge_from" in opts:
            src = seen.get(opts["edge_from"])
            if src is None or src.kind != "form_factor":
                raise err("edge_from", f"{opts['edge_from']!r} is not an earlier form_factor step")
        for key in _REF_KEYS:
            if kind == "reduce" or key not in opts:
                continue
            refs = opts[key] if isinstance(opts[key], list) else [opts[key]]
            for ref in refs:
                problem = _check_ref(ref, seen)
                if problem:
                    raise err(key, problem)
        if kind == "subtract" and "pairs" in opts:
            for pat, ref in opts["pairs"].items():
                problem = _check_ref(ref, seen)
                if problem:
                    raise err(pat, problem, sub="pairs")
        step = Step(name, kind, opts, loc.line("step", i, None))
        seen[name] = step
        steps.append(step)
    rec = sections["recipe"]
    return Recipe(
        name=rec.get("name", Path(source).stem),
        source=source,
        checksum=prov_mod.text_checksum(text),
        description=rec.get("description", ""),
        data=rec.get("data"),
        output=rec.get("output"),
        geometry=sections["geometry"],
        corrections=sections["corrections"],
        steps=tuple(steps),
    )


_STEP_KINDS_SET = frozenset(STEP_KINDS)


def _check_ref(ref: str, seen: dict[str, Step]) -> str | None:
    step, sep, pattern = ref.partition("/")
    if not sep or not pattern:
        return f"{ref!r}: refer to curves as \"<step>/<curve name or pattern>\", e.g. \"reduce/sp_*\""
    if step not in seen:
        return f"{ref!r}: no earlier step named {step!r} (steps run in the order written)"
    if seen[step].kind not in _CURVE_KINDS:
        return f"{ref!r}: step {step!r} ({seen[step].kind}) produces no curves"
    return None


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe file (see :func:`parse_recipe`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: recipe not found; give the path of a .toml recipe (see pipelines/)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the recipe ({exc}); check the file") from None
    rec = parse_recipe(text, str(p))
    # A recipe's own default data folder is relative to the recipe file.
    if rec.data is not None:
        rec = replace(rec, data=str((p.parent / rec.data).resolve()))
    return rec


# =============================================================================== worker side


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


def _rel(path: str | Path, root: str | Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _sidecar(outdir: str | Path, unit: str) -> Path:
    return Path(outdir) / _STATE_DIR / (unit.replace("/", "__") + ".json")


def _up_to_date(side: Path, key: str, root: str | Path) -> dict | None:
    """The sidecar record if its key matches and every output is present and unchanged."""
    try:
        rec = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("key") != key:
        return None
    for out in rec.get("outputs", []):
        p = Path(root) / out["path"]
        try:
            if prov_mod.file_checksum(p) != out["checksum"]:
                return None
        except OSError:
            return None
    return rec


def _one_line(exc: BaseException, where: str) -> str:
    if isinstance(exc, SaxsredError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    msg = " ".join(str(exc).split())[:200]
    return f"{where}: {type(exc).__name__}: {msg}; check the file"


def reduce_input(ident: str, path: str, spec: ReduceSpec) -> dict[str, Any]:
    """Reduce one input file (all its selected frames) unless its outputs are up to date.

    Runs on a worker (or in the client for serial runs). Returns a small JSON-able record:
    ``status`` (done, skipped, failed), ``reason`` for failures, ``outputs`` (paths
    relative to the run folder, checksums), ``curves`` (curve name -> output path).
    """
    from .io.atomic import write_text_atomic
    from .io.frames import iter_frames
    from .reduce import Reducer, geometry_for, write_curves

    if "pyFAI" not in sys.modules:
        pin_threads()  # first reduction in this process: before pyFAI loads its OpenMP runtime
    _tune_malloc()
    t0 = time.perf_counter()
    c0 = time.thread_time()
    rec: dict[str, Any] = {"step": spec.step, "unit": ident}
    try:
        side = _sidecar(spec.outdir, ident)
        checksum = key = ""
        if not spec.force and side.is_file():  # else iter_frames' own checksum gives the key
            try:
                checksum = prov_mod.file_checksum(path)
            except OSError as exc:
                raise InputError(f"{path}: cannot be read ({exc.strerror or exc}); check it exists and permissions") from None
            key = prov_mod.text_checksum(spec.token + checksum)
            old = _up_to_date(side, key, spec.root)
            if old is not None:
                old.update(status="skipped", seconds=round(time.perf_counter() - t0, 4),
                           cpu_seconds=round(time.thread_time() - c0, 4))
                return old
        reducers = _WORKER_REDUCERS.get(spec.token)
        if reducers is None:
            if len(_WORKER_REDUCERS) > 8:  # a long-lived worker serving many recipes
                _WORKER_REDUCERS.clear()
            reducers = _WORKER_REDUCERS[spec.token] = {}
        geo0 = reducers.get("poni")
        if geo0 is None and spec.poni:
            from .geometry import load_geometry

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
                rel = _rel(p, spec.root)
                outputs.append({"path": rel, "checksum": sums[p], "frame": frame.index})
                curves.setdefault(curve.name, rel)
        if not outputs:
            raise InputError(f"{path}: no frame was read (frame selection {spec.frames}); check the file and 'frames'")
        rec.update(key=key, input=Path(path).name, input_checksum=checksum, outputs=outputs, curves=curves)
        write_text_atomic(side, json.dumps(rec, sort_keys=True, indent=1) + "\n")
        rec["status"] = "done"
    except Exception as exc:  # a bad file must not stop the others
        rec.update(status="failed", reason=_one_line(exc, path))
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    rec["cpu_seconds"] = round(time.thread_time() - c0, 4)  # < seconds: the core was busy elsewhere
    return rec


def reduce_inputs(items: Sequence[tuple[str, str]], spec: ReduceSpec) -> list[dict[str, Any]]:
    """:func:`reduce_input` over a few files (one dask task: amortises the task overhead)."""
    return [reduce_input(ident, path, spec) for ident, path in items]


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# =============================================================================== executors


def local_cluster(n_workers: int) -> Any:
    """A ``distributed.Client`` on a new LocalCluster of ``n_workers`` processes, one thread
    each, set up for reproducible and fast reduction; close ``client`` and ``client.cluster``.

    Workers get the thread-count variables pinned to 1, no MALLOC_TRIM_THRESHOLD_ (see
    :func:`_tune_malloc`) and no statistical profiler (it samples the computing thread
    every 10 ms). Call it under ``if __name__ == "__main__":`` in scripts (workers are
    spawned and import the main module).
    """
    import dask
    from distributed import Client, LocalCluster

    if n_workers < 1:
        raise ParameterError(f"--workers {n_workers}: need at least 1 worker")
    pin_threads()  # inherited by the spawned worker processes
    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    env.update({v: 1 for v in THREAD_VARS})
    with dask.config.set({"distributed.nanny.pre-spawn-environ": env, "distributed.worker.profile.enabled": False,
                          "distributed.scheduler.worker-saturation": float("inf")}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit=0, silence_logs=40)
        return Client(cluster)


class _Serial:
    """Runs tasks in this process, in order."""

    mode = "serial"
    nworkers = 1

    def map_unordered(self, fn: Callable, arg_iter: Iterable[tuple], window: int) -> Iterator[Any]:
        for args in arg_iter:
            yield fn(*args)

    def share(self, obj: Any) -> Any:
        return obj

    def worker_peak_rss_mb(self) -> dict[str, float]:
        return {}

    def close(self) -> None:
        pass


class _Dask:
    """Runs tasks on dask.distributed workers with at most ``window`` tasks in flight."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, client: Any = None) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - dask is a dependency
            raise InputError("dask.distributed is not installed; pip install 'dask[distributed]'") from None
        self._own: list[Any] = []
        if client is not None:
            self.client = client
            self.mode = f"client:{client.scheduler.address}"
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(
                    f"cannot connect to the dask scheduler at {scheduler} ({type(exc).__name__}); "
                    "start it with 'dask scheduler' and check the address"
                ) from None
            self._own.append(self.client)
            self.mode = f"scheduler:{scheduler}"
        else:
            n = int(workers or 1)
            self.client = local_cluster(n)
            self._own += [self.client, self.client.cluster]
            self.mode = f"local:{n}"

    @property
    def nworkers(self) -> int:
        return max(1, len(self.client.nthreads()))

    def share(self, obj: Any) -> Any:
        # Sent once to each worker (arrays of dark/flat/mask), then referenced by every task.
        return self.client.scatter(obj, broadcast=True, hash=False)

    def map_unordered(self, fn: Callable, arg_iter: Iterable[tuple], window: int) -> Iterator[Any]:
        from distributed import as_completed

        it = iter(arg_iter)
        ac = as_completed()
        args_of: dict[Any, tuple] = {}

        def submit(args: tuple) -> None:
            fut = self.client.submit(fn, *args, pure=False)
            args_of[fut] = args
            ac.add(fut)

        for args in it:
            submit(args)
            if ac.count() >= window:
                break
        try:
            for fut in ac:
                args = args_of.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # the task was lost (a worker died): report its inputs
                    res = _TaskError(exc, args)
                fut.release()
                nxt = next(it, None)
                if nxt is not None:
                    submit(nxt)
                yield res
        finally:
            if args_of:  # interrupted: stop the rest
                with contextlib.suppress(Exception):
                    self.client.cancel(list(args_of))
                args_of.clear()

    def worker_peak_rss_mb(self) -> dict[str, float]:
        try:
            res = self.client.run(_peak_rss_mb)
        except Exception:
            return {}
        return {str(k): round(float(v), 1) for k, v in sorted(res.items())}

    def close(self) -> None:
        for obj in self._own:
            with contextlib.suppress(Exception):
                obj.close()


class _TaskError:
    """A task that returned no result (its worker died), with the arguments it was given."""

    def __init__(self, exc: BaseException, args: tuple = ()) -> None:
        self.exc = exc
        self.args = args


def _executor(workers: int | None, scheduler: str | None, client: Any = None):
    if client is None and scheduler is None and workers is None:
        return _Serial()
    return _Dask(workers, scheduler, client)


# =============================================================================== the run


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


class _Journal:
    """Records of this run, streamed to ``.saxsred/journal.jsonl`` (not kept in memory)."""

    def __init__(self, root: Path, append: bool = False) -> None:
        self.path = root / _STATE_DIR / "journal.jsonl"
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
            self.failures.append({"step": rec.get("step", ""), "unit": rec.get("unit", ""), "reason": rec.get("reason", "")})


@dataclass
class _Context:
    recipe: Recipe | None
    data: Path
    out: Path
    force: bool
    report: RunReport
    journal: _Journal
    log: Callable[[str], Any]
    progress: bool
    curves: dict[str, dict[str, Path]] = field(default_factory=dict)
    results: dict[str, dict[str, Path]] = field(default_factory=dict)
    failed_units: dict[str, set[str]] = field(default_factory=dict)

    def record(self, rec: dict[str, Any], step: str | None = None) -> None:
        self.report.add(rec)
        self.journal.write(rec)
        if rec.get("status") == "failed":
            self.failed_units.setdefault(rec.get("step", step or ""), set()).add(rec.get("unit", ""))
        if rec.get("status") in ("done", "skipped"):
            for name, rel in (rec.get("curves") or {}).items():
                self.curves.setdefault(rec["step"], {})[name] = self.out / rel
            for name, rel in (rec.get("results") or {}).items():
                self.results.setdefault(rec["step"], {})[name] = self.out / rel
        if _STOP.is_set():  # see _stoppable: the unit is recorded, the run stops here
            raise KeyboardInterrupt


_STOP = threading.Event()


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """Ctrl-C (SIGINT) stops a run cleanly, even when it lands in a finalizer.

    The handler raises KeyboardInterrupt as Python's does, and also sets a flag that
    :meth:`_Context.record` checks after every unit: an interrupt raised inside a
    ``__del__`` or a weakref callback (h5py, fabio and dask close files and sockets there)
    is printed and dropped by Python, and the run would otherwise go on to the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP.clear()

    def handler(signum: int, frame: Any) -> None:
        _STOP.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _STOP.clear()


def _resolve(base: Path, p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else base / q


def _has_magic(p: str) -> bool:
    return glob_mod.has_magic(p)


def _expand_inputs(step: Step, data: Path) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Input files of a reduce step (sorted, de-duplicated) and failure records for patterns
    that match nothing or literal files that do not exist."""
    seen: set[str] = set()
    items: list[tuple[str, str]] = []
    problems: list[dict[str, Any]] = []
    excl = step.options.get("exclude", [])
    for pat in step.options["inputs"]:
        full = _resolve(data, pat)
        if _has_magic(pat):
            found = sorted(glob_mod.glob(str(full), recursive=True))
            found = [f for f in found if Path(f).is_file() and not Path(f).name.startswith(".")]
        else:
            found = [str(full)]
        n = 0
        for f in found:
            ident = _rel(f, data) if Path(f).is_relative_to(data) else Path(f).as_posix()
            if any(fnmatch.fnmatch(ident, e) or fnmatch.fnmatch(Path(f).name, e) for e in excl):
                continue
            n += 1
            if ident not in seen:
                seen.add(ident)
                items.append((ident, f))
        if _has_magic(pat) and n == 0:
            problems.append({"step": step.name, "unit": pat, "status": "failed",
                             "reason": f"input pattern {pat!r} matches no file in {data}; check --data and the pattern"})
    return items, problems


def _check_names(step: str, items: Sequence[tuple[str, str]]) -> None:
    from .io.frames import file_stem

    owner: dict[str, str] = {}
    for ident, path in items:
        s = file_stem(Path(path))
        if s in owner:
            raise InputError(
                f"step {step!r}: {owner[s]} and {ident} would both write {s}.h5; "
                "rename one, or split them into two reduce steps"
            )
        owner[s] = ident


def _corrections_for_step(
    recipe: Recipe, step: Step, data: Path, dark_override: str | None = None, poni_override: str | None = None
):
    """Corrections, PONI path and token material of a reduce step (arrays loaded here, once)."""
    import numpy as np

    from .geometry import load_mask
    from .io.frames import read_image
    from .reduce import Corrections

    o = {**recipe.corrections, **{k: v for k, v in step.options.items() if k in _SECTION_KEYS["corrections"]}}
    geo = {**recipe.geometry, **{k: v for k, v in step.options.items() if k in _SECTION_KEYS["geometry"]}}
    if dark_override is not None:
        o["dark"] = dark_override
    if poni_override is not None:
        geo["poni"] = poni_override
    prov: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for kind in ("dark", "flat"):
        if o.get(kind):
            p = _resolve(data, o[kind])
            arrays[kind] = np.asarray(read_image(p), dtype=np.float64)
            prov[f"{kind}_file"] = prov_mod.input_record(p)
    if geo.get("mask"):
        p = _resolve(data, geo["mask"])
        arrays["mask"] = load_mask(p)
        prov["mask_file"] = prov_mod.input_record(p)
    poni = None
    if geo.get("poni"):
        pp = _resolve(data, geo["poni"])
        if not pp.is_file():
            raise InputError(f"{pp}: geometry file not found (recipe [geometry] poni, resolved against --data {data})")
        poni = str(pp)
        prov["poni_file"] = prov_mod.input_record(pp)
    pol = o.get("polarization_factor", 0.99)
    c = Corrections(
        **arrays,
        solid_angle=o.get("solid_angle", True),
        polarization_factor=None if pol is False else pol,
        monitor=o.get("monitor", "auto"),
        transmission=o.get("transmission"),
        empty_beam_ratio=o.get("empty_beam_ratio"),
        thickness_mm=o.get("thickness_mm"),
        scale=o.get("scale", 1.0),
        mask_dummy=o.get("mask_dummy", True),
        mask_negative=o.get("mask_negative", True),
        saturation=o.get("saturation"),
        hot_pixels=o.get("hot_pixels", False),
        npt=o.get("npt", 1000),
        unit=o.get("unit", "q_nm^-1"),
        q_range_nm=o.get("q_range_nm"),
        provenance=prov,
    )
    return c, poni


def _spec_token(step: str, corrections: Any, poni: str | None, frames: Any, formats: Sequence[str]) -> str:
    from . import __version__

    material = {
        "step": step,
        "kind": "reduce",
        "options": corrections.describe(),
        "poni": prov_mod.file_checksum(poni) if poni else None,
        "frames": list(frames) if frames else None,
        "formats": list(formats),
        "saxsred": __version__,
        "software": prov_mod.software_versions(),
    }
    return prov_mod.text_checksum(json.dumps(prov_mod._jsonable(material), sort_keys=True, default=str))


def _chunks(items: Sequence[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _guided_chunks(
    items: Sequence[tuple[str, str]], nworkers: int, largest: int = 16
) -> Iterator[list[tuple[str, str]]]:
    """Tasks of decreasing size ("guided" scheduling): about 1/(2 N) of what is left each.

    Large tasks at the start amortise dask's ~1 ms per task; single files at the end keep
    the workers finishing together (with fixed tasks of k files a worker could sit idle
    for up to k frame times while the other finishes its last task).
    """
    i, n = 0, len(items)
    while i < n:
        size = max(1, min(largest, (n - i) // (2 * nworkers)))
        yield list(items[i : i + size])
        i += size


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", disable=not enabled or None, leave=False, file=sys.stderr,
                dynamic_ncols=True)


def _run_reduce_units(
    ctx: _Context, executor: Any, groups: Sequence[tuple[ReduceSpec, Sequence[tuple[str, str]]]], desc: str
) -> None:
    """Reduce every (spec, files) group, streaming records into the context."""
    total = sum(len(items) for _, items in groups)
    nw = executor.nworkers
    window = 2 * nw + 2  # tasks in flight: memory stays a few frames per worker
    shared = [(executor.share(spec), items) for spec, items in groups]
    if isinstance(executor, _Serial):
        tasks = ((part, ref) for ref, items in shared for part in _chunks(items, 1))
    else:
        tasks = ((part, ref) for ref, items in shared for part in _guided_chunks(items, nw))
    bar = _bar(total, desc, ctx.progress)
    gen = executor.map_unordered(reduce_inputs, tasks, window)
    try:
        for res in gen:
            if isinstance(res, _TaskError):
                # the whole task was lost (a worker died): its files are failed, a rerun retries them
                part = res.args[0] if res.args else [("?", "?")]
                for ident, _ in part:
                    ctx.record({"step": desc, "unit": ident, "status": "failed",
                                "reason": f"{ident}: the worker failed ({type(res.exc).__name__}: "
                                          f"{' '.join(str(res.exc).split())[:150]}); rerun to retry"})
                bar.update(len(part))
                continue
            for rec in res:
                ctx.record(rec)
                if rec["status"] == "failed":
                    with bar.external_write_mode():
                        ctx.log(f"FAILED {rec['step']}/{rec['unit']}: {rec.get('reason', '')}")
            bar.update(len(res))
    finally:
        gen.close()
        bar.close()


def _pairing(step: Step, ident: str, path: str) -> tuple[str | None, str | None]:
    """The (dark, PONI) paired with a file by the step's ``darks`` and ``ponis`` tables
    (first matching pattern; None: the step's own)."""
    out = []
    for table in ("darks", "ponis"):
        hit = None
        for pat, val in step.options.get(table, {}).items():
            if fnmatch.fnmatch(ident, pat) or fnmatch.fnmatch(Path(path).name, pat):
                hit = val
                break
        out.append(hit)
    return out[0], out[1]


def _make_spec(ctx: _Context, step: Step, pairing: tuple[str | None, str | None]) -> ReduceSpec:
    from .reduce import parse_frame_selection

    assert ctx.recipe is not None
    frames = parse_frame_selection(step.options.get("frames"))
    formats = tuple(step.options.get("formats", ("h5", "dat")))
    corr, poni = _corrections_for_step(ctx.recipe, step, ctx.data, *pairing)
    token = _spec_token(step.name, corr, poni, frames, formats)
    return ReduceSpec(step.name, corr, poni, frames, str(ctx.out / step.name), str(ctx.out), formats, token, ctx.force)


def _plan_reduce(ctx: _Context, step: Step) -> list[tuple[ReduceSpec, list[tuple[str, str]]]]:
    items, problems = _expand_inputs(step, ctx.data)
    for rec in problems:
        ctx.record(rec)
    _check_names(step.name, items)
    _clean_partials(ctx.out / step.name)
    groups: dict[tuple[str | None, str | None], list[tuple[str, str]]] = {}
    for ident, path in items:
        groups.setdefault(_pairing(step, ident, path), []).append((ident, path))
    return [(_make_spec(ctx, step, pairing), its) for pairing, its in groups.items()]


def _clean_partials(folder: Path) -> None:
    """Remove temporary files a killed run left behind (``.<name>.<random>.part``)."""
    if folder.is_dir():
        for p in list(folder.glob(".*.part")) + list((folder / _STATE_DIR).glob(".*.part")):
            with contextlib.suppress(OSError):
                p.unlink()


# ---- later steps: each unit is keyed like a reduction and runs in the client


def _find(ctx: _Context, ref: str, required: bool = True) -> list[Path]:
    step, _, pat = ref.partition("/")
    names = ctx.curves.get(step, {})
    hits = [names[n] for n in sorted(names) if fnmatch.fnmatchcase(n, pat)]
    if not hits and required:
        failed = sorted(ctx.failed_units.get(step, ()))
        why = f" (failed units of step {step!r}: {', '.join(failed[:5])})" if failed else ""
        raise InputError(f"needs {ref}, which this run did not produce{why}; see the failures above")
    return hits


def _one(ctx: _Context, ref: str) -> Path:
    hits = _find(ctx, ref)
    if len(hits) != 1:
        raise InputError(f"{ref} matches {len(hits)} curves; name exactly one")
    return hits[0]


def _read(p: Path):
    from .io.curves import read_curve

    cv = read_curve(p)
    prov = dict(cv.provenance)
    prov.pop("source", None)  # the reader adds it; the stages extend the original record
    return replace(cv, provenance=prov)


def _write_curve(ctx: _Context, step: Step, curve: Any, formats: Sequence[str] = ("h5", "dat")) -> list[Path]:
    from .reduce import write_curves

    return [Path(p) for p in write_curves([curve], str(ctx.out / step.name), formats)]


def _write_json(path: Path, obj: Any) -> Path:
    from .io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(prov_mod._jsonable(obj), sort_keys=True, indent=1) + "\n")
    return path


def _unit(
    ctx: _Context,
    step: Step,
    unit: str,
    inputs: Callable[[], dict[str, Path]],
    produce: Callable[[dict[str, Path]], dict[str, list[Path]]],
) -> None:
    """Run one keyed unit of a later step: skip it if up to date, else produce and record it.

    ``produce`` returns {"curves": [...], "results": [...], "other": [...]} of written paths.
    """
    from . import __version__
    from .io.atomic import write_text_atomic

    t0 = time.perf_counter()
    rec: dict[str, Any] = {"step": step.name, "unit": unit}
    try:
        ins = inputs()
        material = {
            "step": step.name,
            "kind": step.kind,
            "options": step.options,
            "inputs": {k: prov_mod.file_checksum(v) for k, v in sorted(ins.items())},
            "saxsred": __version__,
            "software": prov_mod.software_versions(),
        }
        key = prov_mod.text_checksum(json.dumps(prov_mod._jsonable(material), sort_keys=True, default=str))
        side = _sidecar(ctx.out / step.name, unit)
        old = None if ctx.force else _up_to_date(side, key, ctx.out)
        if old is not None:
            old.update(status="skipped", seconds=round(time.perf_counter() - t0, 4))
            ctx.record(old)
            return
        written = produce(ins)
        outputs, curves, results = [], {}, {}
        for group, paths in written.items():
            for p in paths:
                rel = _rel(p, ctx.out)
                outputs.append({"path": rel, "checksum": prov_mod.file_checksum(p)})
                if group == "curves" and p.suffix == ".h5":
                    curves[p.stem] = rel
                elif group == "curves" and p.suffix == ".dat":
                    curves.setdefault(p.stem, rel)
                elif group == "results":
                    results[unit] = rel
        rec.update(key=key, outputs=outputs, curves=curves, results=results, inputs=[
            {"name": k, "file": _rel(v, ctx.out) if v.is_relative_to(ctx.out) else v.name,
             "checksum": material["inputs"][k]} for k, v in sorted(ins.items())])
        write_text_atomic(side, json.dumps(rec, sort_keys=True, indent=1) + "\n")
        rec["status"] = "done"
    except Exception as exc:
        rec.update(status="failed", reason=_one_line(exc, f"step {step.name!r}"))
        ctx.log(f"FAILED {step.name}/{unit}: {rec['reason']}")
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    ctx.record(rec)


def _step_average(ctx: _Context, step: Step) -> None:
    from .reduce import average_curves

    o = step.options
    name = o.get("output", step.name)

    def inputs() -> dict[str, Path]:
        return _curves_by_name(ctx, o["inputs"])

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        curves = [_read(ins[k]) for k in sorted(ins)]
        res = average_curves(curves, alpha=o.get("alpha", 1e-3), reject=o.get("reject", True), name=name)
        verdicts = [{"name": v.name, "chi2_red": v.chi2_red, "p_value": v.p_value, "kept": v.kept} for v in res.verdicts]
        for v in res.verdicts:
            if not v.kept:
                ctx.log(f"{step.name}: frame {v.name} rejected (chi2_red = {v.chi2_red:.3g}, p = {v.p_value:.2g})")
        js = _write_json(ctx.out / step.name / f"{name}_frames.json", {"average": name, "frames": verdicts})
        return {"curves": _write_curve(ctx, step, res.curve), "other": [js]}

    _unit(ctx, step, name, inputs, produce)


def _curves_by_name(ctx: _Context, refs: Sequence[str]) -> dict[str, Path]:
    """The curves that ``refs`` (``step/pattern``) name, by file stem, first match kept."""
    found: dict[str, Path] = {}
    for ref in refs:
        for p in _find(ctx, ref):
            found.setdefault(p.stem, p)
    return found


def _step_subtract(ctx: _Context, step: Step) -> None:
    from .reduce import subtract_background

    o = step.options
    samples = _curves_by_name(ctx, o["inputs"])
    for name, sp in samples.items():
        bg_ref = next((r for pat, r in o.get("pairs", {}).items() if fnmatch.fnmatchcase(name, pat)), o.get("background"))

        def inputs(sp: Path = sp, bg_ref: str | None = bg_ref, name: str = name) -> dict[str, Path]:
            if bg_ref is None:
                raise InputError(f"no background for {name!r}: no 'pairs' pattern matches and no 'background' given")
            return {"sample": sp, "background": _one(ctx, bg_ref)}

        def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
            out = subtract_background(_read(ins["sample"]), _read(ins["background"]), o.get("factor", 1.0))
            return {"curves": _write_curve(ctx, step, out)}

        _unit(ctx, step, name, inputs, produce)


def _step_scale(ctx: _Context, step: Step) -> None:
    from .reduce import WATER_DSIGMA_20C, scale_curve, water_scale_factor

    o = step.options
    samples = _curves_by_name(ctx, o["inputs"])
    calib: dict[str, Any] = {}

    def calibration() -> tuple[float, float]:
        if "factor" in o:
            return o["factor"], o.get("factor_err", 0.0)
        if not calib:
            water = _read(_one(ctx, o["water"]))
            empty = _read(_one(ctx, o["empty"])) if "empty" in o else None
            cal = water_scale_factor(water, empty, q_range_nm=o.get("q_range_nm", (0.5, 2.0)),
                                     reference_cm=o.get("water_cm", WATER_DSIGMA_20C))
            calib.update(factor=cal.factor, factor_err=cal.factor_err, water_level=cal.water_level,
                         water_level_err=cal.water_level_err, q_range_nm=list(cal.q_range_nm), reference_cm=cal.reference_cm)
            _write_json(ctx.out / step.name / "water_calibration.json", calib)
        return calib["factor"], calib["factor_err"]

    for name, sp in samples.items():

        def inputs(sp: Path = sp) -> dict[str, Path]:
            ins = {"curve": sp}
            if "factor" not in o:
                ins["water"] = _one(ctx, o["water"])
                if "empty" in o:
                    ins["empty"] = _one(ctx, o["empty"])
            return ins

        def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
            k, k_err = calibration()
            out = scale_curve(_read(ins["curve"]), k, k_err)
            other = [ctx.out / step.name / "water_calibration.json"] if calib else []
            return {"curves": _write_curve(ctx, step, out), "other": other}

        _unit(ctx, step, name, inputs, produce)


def _input_name(ctx: _Context, ref: str) -> str:
    """Unit name of a one-input step: the stem of the one file ``ref`` finds, else its pattern."""
    src = _find(ctx, ref, required=False)
    return src[0].stem if len(src) == 1 else ref.partition("/")[2]


def _step_form_factor(ctx: _Context, step: Step) -> None:
    o = step.options
    name = _input_name(ctx, o["input"])

    def inputs() -> dict[str, Path]:
        return {"curve": _one(ctx, o["input"])}

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from .formfactor import fit_form_factor

        curve = _read(ins["curve"])
        fit = fit_form_factor(curve, shape=o.get("shape", "cube"), qmin=o.get("qmin"), qmax=o.get("qmax"))
        js = _write_json(ctx.out / step.name / f"{name}_form_factor.json", fit.to_json_dict())
        other = []
        if o.get("figure", False):
            other += _figure(ctx, step, f"{name}_form_factor", "formfactor", "plot_form_factor_fit", fit, curve)
        return {"results": [js], "other": other}

    _unit(ctx, step, name, inputs, produce)


def _figure(ctx: _Context, step: Step, name: str, module: str, func: str, *args: Any) -> list[Path]:
    import importlib

    from .plots.frames import save

    fn = getattr(importlib.import_module(f"saxsred.plots.{module}"), func)
    return [Path(save(fn(*args), ctx.out / step.name / f"{name}.png"))]


def _step_structure_factor(ctx: _Context, step: Step) -> None:
    o = step.options
    name = o.get("output", step.name)

    def inputs() -> dict[str, Path]:
        return {"sample": _one(ctx, o["sample"]), "dilute": _one(ctx, o["dilute"])}

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from .formfactor import effective_structure_factor

        sq = effective_structure_factor(_read(ins["sample"]), _read(ins["dilute"]))
        return {"curves": _write_curve(ctx, step, replace(sq.as_curve(), name=name))}

    _unit(ctx, step, name, inputs, produce)


def _step_peaks(ctx: _Context, step: Step) -> None:
    o = step.options
    name = _input_name(ctx, o["input"])

    def inputs() -> dict[str, Path]:
        ins = {"curve": _one(ctx, o["input"])}
        if "edge_from" in o:
            res = ctx.results.get(o["edge_from"], {})
            if len(res) != 1:
                raise InputError(f"needs the form-factor result of step {o['edge_from']!r}, which this run did not produce")
            ins["form_factor"] = next(iter(res.values()))
        if "calibrant" in o:
            ins["calibrant"] = _one(ctx, o["calibrant"])
        return ins

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from .peaks import analyze_peaks, instrument_fwhm_from_calibrant

        edge = o.get("edge_nm")
        if "form_factor" in ins:
            edge = json.loads(ins["form_factor"].read_text(encoding="utf-8"))["edge_nm"]
        fwhm = o.get("instrument_fwhm_inv_nm", 0.0)
        if "calibrant" in ins:
            fwhm = instrument_fwhm_from_calibrant(_read(ins["calibrant"]))
        kw: dict[str, Any] = {k: o[k] for k in ("qmin", "qmax") if k in o}
        if "curve_kind" in o:
            kw["kind"] = o["curve_kind"]
        pk = analyze_peaks(_read(ins["curve"]), lattice=o.get("lattice", "auto"), edge_nm=edge,
                           instrument_fwhm_inv_nm=fwhm, **kw)
        js = _write_json(ctx.out / step.name / f"{name}_peaks.json", pk.to_json_dict())
        other = _figure(ctx, step, f"{name}_peaks", "peaks", "plot_peaks", pk) if o.get("figure", False) else []
        return {"results": [js], "other": other}

    _unit(ctx, step, name, inputs, produce)


def _step_figures(ctx: _Context, step: Step) -> None:
    o = step.options
    name = o.get("output", step.name)

    def inputs() -> dict[str, Path]:
        paths: dict[str, Path] = {}
        for ref in o["inputs"]:
            for p in _find(ctx, ref):
                paths.setdefault(f"{_rel(p.parent, ctx.out)}/{p.stem}", p)
        return paths

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from .plots.frames import plot_curves, save

        fig = plot_curves([_read(ins[k]) for k in ins], title=o.get("title", ""), logx=o.get("logx", True))
        return {"other": [Path(save(fig, ctx.out / step.name / f"{name}.png"))]}

    _unit(ctx, step, name, inputs, produce)


_LATER = {
    "average": _step_average,
    "subtract": _step_subtract,
    "scale": _step_scale,
    "form_factor": _step_form_factor,
    "structure_factor": _step_structure_factor,
    "peaks": _step_peaks,
    "figures": _step_figures,
}


def _load_previous(ctx: _Context, step: Step) -> None:
    """Make the outputs an earlier run left for a step that is not run now available to
    the steps that are (``--step``): the units whose key files and outputs exist."""
    for side in sorted((ctx.out / step.name / _STATE_DIR).glob("*.json")):
        try:
            rec = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if all((ctx.out / o["path"]).is_file() for o in rec.get("outputs", [])):
            for name, rel in (rec.get("curves") or {}).items():
                ctx.curves.setdefault(step.name, {})[name] = ctx.out / rel
            for name, rel in (rec.get("results") or {}).items():
                ctx.results.setdefault(step.name, {})[name] = ctx.out / rel


def _run_later_step(ctx: _Context, step: Step) -> None:
    try:
        _LATER[step.kind](ctx, step)
    except SaxsredError as exc:  # e.g. an input pattern that matches nothing
        rec = {"step": step.name, "unit": step.name, "status": "failed", "reason": str(exc)}
        ctx.log(f"FAILED {step.name}: {exc}")
        ctx.record(rec)


# ---- report


def _write_report(ctx: _Context, started: str, recipe_info: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """Write ``run_report.json`` (manifest with provenance, streamed from the journal) and
    ``run_summary.txt``; earlier runs' entries are kept under ``runs``."""
    from . import __version__
    from .io.atomic import atomic_path, write_text_atomic

    rep = ctx.report
    path = ctx.out / REPORT_NAME
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        runs = list(json.loads(path.read_text(encoding="utf-8")).get("runs", []))
    this = {
        "started": started,
        "finished": _now(),
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
        text = json.dumps(prov_mod._jsonable(head), indent=1, sort_keys=True)
        fh.write(text[:-2] + ',\n "outputs": [')  # drop the closing "\n}" and stream the outputs
        first = True
        live = bool(extra and extra.get("live"))
        for out, rec in _manifest(ctx.journal.records(), dedupe=live):
            entry = {
                "path": out["path"],
                "checksum": out["checksum"],
                "step": rec.get("step"),
                "unit": rec.get("unit"),
                "key": rec.get("key"),
                "status": rec.get("status"),
                "inputs": rec.get("inputs") or ([{"file": rec.get("input"), "checksum": rec.get("input_checksum"),
                                                  "frame": out.get("frame", 0)}] if rec.get("input") else []),
            }
            fh.write(("\n  " if first else ",\n  ") + json.dumps(entry, sort_keys=True))
            first = False
        fh.write("\n ]\n}\n")
    write_text_atomic(ctx.out / SUMMARY_NAME, summary_text(rep, recipe_info.get("name", ""), started) + "\n")
    rep.report_path = str(path)
    rep.summary_path = str(ctx.out / SUMMARY_NAME)


def _manifest(records: Iterable[dict[str, Any]], dedupe: bool) -> Iterator[tuple[dict, dict]]:
    """(output, record) pairs of finished units; with ``dedupe`` the latest entry of a path
    wins (live mode appends to the journal of earlier runs)."""
    pairs = ((out, rec) for rec in records if rec.get("status") in ("done", "skipped") for out in rec.get("outputs", []))
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


# ---- public entry points


def _output_dir(recipe: Recipe, output: str | os.PathLike | None) -> Path:
    if output is not None:
        return Path(output).resolve()
    return Path(recipe.output or recipe.name).resolve()


def _data_dir(recipe: Recipe, data: str | os.PathLike | None) -> Path:
    d = Path(data) if data is not None else Path(recipe.data) if recipe.data else Path.cwd()
    d = d.resolve()
    if not d.is_dir():
        raise InputError(f"{d}: data folder not found; give --data DIR (recipe paths resolve against it)")
    return d


def run_recipe(
    recipe: Recipe | str | os.PathLike,
    data: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    client: Any = None,
    log: Callable[[str], Any] = print,
    steps: Sequence[str] | None = None,
) -> RunReport:
    """Run a recipe: reduce steps on the executor, later steps in this process.

    Parameters
    ----------
    recipe : a :class:`Recipe` or the path of a TOML recipe.
    data : folder the recipe's paths resolve against (default: the recipe's ``data``, else
        the current folder).
    output : output folder (default: the recipe's ``output``, else its name).
    workers : run on a local dask cluster of this many processes (one thread each).
    scheduler : address of a running dask scheduler (``tcp://host:8786``).
    force : redo units that are up to date.
    client : an existing ``distributed.Client`` to use instead.
    steps : run only these steps (default all).

    Returns
    -------
    :class:`RunReport`; ``exit_code`` is 0 when every unit succeeded, 1 when some failed,
    130 when interrupted. ``run_report.json`` and ``run_summary.txt`` are in the output.
    """
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    unknown = sorted(set(steps or ()) - {s.name for s in rec.steps})
    if unknown:
        raise ParameterError(f"{rec.source}: no step named {', '.join(map(repr, unknown))}; "
                             f"steps: {', '.join(s.name for s in rec.steps)}")
    data_dir = _data_dir(rec, data)
    out = _output_dir(rec, output)
    out.mkdir(parents=True, exist_ok=True)
    started = _now()
    t0 = time.perf_counter()
    rep = RunReport(output=str(out))
    journal = _Journal(out)
    ctx = _Context(rec, data_dir, out, force, rep, journal, log, progress)
    info = {"name": rec.name, "file": Path(rec.source).name, "checksum": rec.checksum}
    executor = None
    try:
        with _stoppable():
            try:
                todo = [s for s in rec.steps if steps is None or s.name in steps]
                if any(s.kind == "reduce" for s in todo):
                    executor = _executor(workers, scheduler, client)
                    rep.mode = executor.mode
                for step in rec.steps:
                    if step not in todo:
                        _load_previous(ctx, step)
                    elif step.kind == "reduce":
                        groups = _plan_reduce(ctx, step)
                        _run_reduce_units(ctx, executor, groups, step.name)
                    else:
                        _run_later_step(ctx, step)
                if executor is not None:
                    rep.worker_peak_rss_mb = executor.worker_peak_rss_mb()
            except KeyboardInterrupt:
                rep.interrupted = True
                log("interrupted: finished outputs are kept; rerun to complete the rest")
            finally:
                if executor is not None:
                    executor.close()
                rep.seconds = time.perf_counter() - t0
                _write_report(ctx, started, info)
    finally:
        journal.close()
    return rep


def reduce_parallel(
    paths: Sequence[str],
    job: Any,
    outdir: str | os.PathLike,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    client: Any = None,
    log: Callable[[str], Any] = print,
) -> int:
    """Reduce frame files to ``outdir/<name>.h5/.dat`` on dask workers (``saxsred reduce --workers``).

    The same runner as :func:`run_recipe`: keyed outputs (a rerun skips what is done),
    bad files reported with their reason while the others complete, a run report in
    ``outdir``. Returns the exit code (0 all done, 1 some failed, 130 interrupted).
    """
    if not paths:
        raise InputError("reduce: no frame files given")
    out = Path(outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _clean_partials(out)
    items = []
    seen = set()
    for p in paths:
        ident = Path(p).as_posix()
        if ident not in seen:
            seen.add(ident)
            items.append((ident, str(Path(p).resolve())))
    _check_names("reduce", items)
    started = _now()
    t0 = time.perf_counter()
    rep = RunReport(output=str(out))
    journal = _Journal(out)
    ctx = _Context(None, Path.cwd(), out, force, rep, journal, log, progress)
    poni = str(Path(job.poni).resolve()) if job.poni else None
    formats = ("h5", "dat")
    token = _spec_token("reduce", job.corrections, poni, job.frames, formats)
    spec = ReduceSpec("reduce", job.corrections, poni, job.frames, str(out), str(out), formats, token, force)
    executor = None
    try:
        with _stoppable():
            try:
                executor = _executor(workers, scheduler, client)
                rep.mode = executor.mode
                _run_reduce_units(ctx, executor, [(spec, items)], "reduce")
                rep.worker_peak_rss_mb = executor.worker_peak_rss_mb()
            except KeyboardInterrupt:
                rep.interrupted = True
                log("interrupted: finished outputs are kept; rerun to complete the rest")
            finally:
                if executor is not None:
                    executor.close()
                rep.seconds = time.perf_counter() - t0
                _write_report(ctx, started, {"name": "reduce", "file": None, "checksum": None})
    finally:
        journal.close()
    log(summary_text(rep, "reduce", started))
    return rep.exit_code


# =============================================================================== live mode


@dataclass
class _Seen:
    """Watch state of one file: its last (size, mtime), since when, and what became of it."""

    sig: tuple[int, int]
    since: float
    done: tuple[int, int] | None = None
    failed_at: tuple[int, int] | None = None
    reported: bool = False


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
    data_dir = _data_dir(rec, data)
    out = _output_dir(rec, output)
    rsteps = [s for s in rec.steps if s.kind == "reduce"]
    if not rsteps:
        raise ParameterError(f"{rec.source}: the recipe has no reduce step; live mode reduces frames as they appear")
    out.mkdir(parents=True, exist_ok=True)
    started = _now()
    t0 = time.perf_counter()
    rep = RunReport(output=str(out))
    ctx = _Context(rec, data_dir, out, force, rep, _Journal(out, append=True), log, False)
    journal = ctx.journal
    info = {"name": rec.name, "file": Path(rec.source).name, "checksum": rec.checksum}
    for s in rsteps:
        _clean_partials(out / s.name)
    specs: dict[tuple, Any] = {}
    seen: dict[tuple[str, str], _Seen] = {}
    nfiles = 0
    last_new = time.monotonic()
    executor = None
    try:
        with _stoppable():
            try:
                executor = _executor(workers, scheduler)
                rep.mode = f"watch/{executor.mode}"

                def spec_ref(step: Step, ident: str, path: str) -> Any:
                    k = (step.name, *_pairing(step, ident, path))
                    if k not in specs:
                        specs[k] = executor.share(_make_spec(ctx, step, k[1:]))
                    return specs[k]

                while True:
                    now = time.monotonic()
                    ready: list[tuple[Step, str, str, bool]] = []
                    for step in rsteps:
                        for ident, path in _expand_inputs(step, data_dir)[0]:
                            try:
                                st = os.stat(path)
                            except OSError:
                                continue
                            sig = (st.st_size, st.st_mtime_ns)
                            e = seen.get((step.name, ident))
                            if e is None or e.sig != sig:
                                done = e.done if e is not None else None
                                seen[(step.name, ident)] = _Seen(sig, now, done)
                                if sig != done:
                                    last_new = now
                                continue
                            if e.done == sig or sig[0] == 0 or now - e.since < settle_s:
                                continue
                            if e.failed_at == sig:  # did not read at this size: wait for a change
                                if not e.reported and now - e.since >= corrupt_after_s:
                                    ready.append((step, ident, path, True))
                                continue
                            ready.append((step, ident, path, False))
                    if ready:
                        final = {(s.name, i): last for s, i, _, last in ready}
                        sigs = {(s.name, i): seen[(s.name, i)].sig for s, i, _, _ in ready}
                        tasks = (([(i, p)], spec_ref(s, i, p)) for s, i, p, _ in ready)
                        for res in executor.map_unordered(reduce_inputs, tasks, 2 * executor.nworkers + 2):
                            for r in [] if isinstance(res, _TaskError) else res:
                                k = (r["step"], r["unit"])
                                e = seen[k]
                                if r["status"] in ("done", "skipped"):
                                    e.done = sigs[k]
                                    ctx.record(r)
                                    nfiles += 1
                                    log(f"{r['status']}: {r['step']}/{r['unit']}")
                                elif final[k]:
                                    e.reported = True
                                    ctx.record(r)
                                    log(f"FAILED {r['step']}/{r['unit']}: {r.get('reason')}")
                                else:
                                    e.failed_at = sigs[k]  # probably still being written
                                    rep.retried += 1
                                    log(f"waiting: {r['step']}/{r['unit']} does not read yet ({r.get('reason')})")
                        rep.seconds = time.perf_counter() - t0
                        _write_report(ctx, started, info, {"live": True})
                    if max_files is not None and nfiles >= max_files:
                        break
                    if timeout_s is not None and time.perf_counter() - t0 >= timeout_s:
                        break
                    waiting = any(e.done != e.sig and not e.reported for e in seen.values())
                    if idle_timeout_s is not None and time.monotonic() - last_new >= idle_timeout_s and not waiting:
                        break
                    if stop is not None and stop():
                        break
                    time.sleep(interval_s)
            except KeyboardInterrupt:
                rep.interrupted = True
                log("interrupted: finished outputs are kept")
            finally:
                if executor is not None:
                    executor.close()
                rep.seconds = time.perf_counter() - t0
                _write_report(ctx, started, info, {"live": True})
    finally:
        journal.close()
    log(summary_text(rep, rec.name, started))
    return rep
