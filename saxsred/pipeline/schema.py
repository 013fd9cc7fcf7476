"""Recipe schema: the TOML format of a recipe, parsed and validated with line numbers
(see ``pipelines/README.md``).

The keys allowed in each section and step kind, with their types and checks, are in
:mod:`saxsred.pipeline.recipe_keys`; this module parses a recipe (:func:`parse_recipe`,
:func:`load_recipe`) into :class:`Recipe` and :class:`Step` objects, resolves its paths
and applies command-line overrides (:func:`with_overrides`).
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import provenance as prov_mod
from ..errors import InputError, ParameterError, SaxsredError
from .keys import CURVE_KINDS, STATE_DIR, STEP_KINDS
from .recipe_keys import (
    REF_KEYS,
    REQUIRED_KEYS,
    SECTION_KEYS,
    STEP_COMMON_KEYS,
    STEP_KEYS,
    check_table,
)


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
    base: str | None = (
        None  # the recipe file's folder: geometry/mask/dark/flat paths resolve against it
    )

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


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

    def line(
        self, section: str, index: int | None = None, key: str | None = None, sub: str | None = None
    ) -> int:
        where = (section, index, sub)
        if key is not None and key in self.keys.get(where, {}):
            return self.keys[where][key]
        if sub is not None and key is not None and sub in self.keys.get((section, index, None), {}):
            return self.keys[(section, index, None)][sub]  # inline table
        return self.headers.get(where, self.headers.get((section, index, None), 1))


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
        if key not in (*SECTION_KEYS, "step"):
            close = difflib.get_close_matches(key, [*SECTION_KEYS, "step"], n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else "; use [recipe], [geometry], [corrections] and [[step]]"
            )
            raise ParameterError(f"{source}:{loc.line(key)}: unknown section or key {key!r}{hint}")
    sections: dict[str, dict[str, Any]] = {}
    for sec, schema in SECTION_KEYS.items():
        raw = doc.get(sec, {})
        if not isinstance(raw, dict):
            raise ParameterError(
                f"{source}:{loc.line('', None, sec)}: {sec!r} must be a table [{sec}]"
            )
        sections[sec] = check_table(raw, schema, section_err(sec))
    raw_steps = doc.get("step", [])
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ParameterError(
            f"{source}:1: no steps; add at least one [[step]] table with name and kind"
        )
    steps: list[Step] = []
    seen: dict[str, Step] = {}
    for i, raw in enumerate(raw_steps):
        label = f"[[step]] #{i + 1}" + (
            f" ({raw.get('name')!r})" if isinstance(raw.get("name"), str) else ""
        )

        def err(
            key: str | None, problem: str, _i: int = i, _label: str = label, sub: str | None = None
        ) -> SaxsredError:
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
        opts = check_table(raw, {**STEP_COMMON_KEYS, **STEP_KEYS[kind]}, err)
        name = opts.pop("name")
        opts.pop("kind")
        if not _NAME_RE.match(name):
            raise err(
                "name", f"{name!r}: use letters, digits, '_' and '-' (it names the output folder)"
            )
        if name in seen or name == STATE_DIR:
            raise err("name", f"{name!r} is used by an earlier step; step names must be unique")
        for req in REQUIRED_KEYS[kind]:
            if req not in opts:
                raise err(None, f"missing key {req!r} (required by kind {kind!r})")
        if kind == "subtract" and "background" not in opts and "pairs" not in opts:
            raise err(
                None,
                "needs 'background' (one curve for all) or a 'pairs' table (sample pattern = background)",
            )
        if kind == "scale" and "water" not in opts and "factor" not in opts:
            raise err(None, "needs 'water' (absolute scale from water) or 'factor'")
        if kind == "peaks" and "edge_from" in opts:
            src = seen.get(opts["edge_from"])
            if src is None or src.kind != "form_factor":
                raise err("edge_from", f"{opts['edge_from']!r} is not an earlier form_factor step")
        for key in REF_KEYS:
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
        return f'{ref!r}: refer to curves as "<step>/<curve name or pattern>", e.g. "reduce/sp_*"'
    if step not in seen:
        return f"{ref!r}: no earlier step named {step!r} (steps run in the order written)"
    if seen[step].kind not in CURVE_KINDS:
        return f"{ref!r}: step {step!r} ({seen[step].kind}) produces no curves"
    return None


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe file (see :func:`parse_recipe`).

    The recipe's ``data`` default and its geometry, mask, dark and flat paths (including
    the ``darks`` and ``ponis`` tables of reduce steps) are relative to the recipe's own
    folder; write ``"data:dark.edf"`` for a file in the data folder (``--data``), or an
    absolute path. Input patterns are relative to the data folder.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: recipe not found; give the path of a .toml recipe (see pipelines/)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read the recipe ({exc}); check the file") from None
    rec = parse_recipe(text, str(p))
    base = p.parent.resolve()
    rec = replace(rec, base=str(base))
    if rec.data is not None:
        rec = replace(rec, data=str((base / rec.data).resolve()))
    return rec


#: Prefix of a recipe path that is relative to the data folder rather than the recipe's.
DATA_PREFIX = "data:"


#: Keys whose values are file paths resolved by :func:`resolve_recipe_path`.
PATH_KEYS = ("poni", "mask", "dark", "flat")


def resolve_recipe_path(p: str, recipe: Recipe, data: Path) -> Path:
    """A recipe's file path: absolute as is; ``data:rel`` against the data folder; else
    against the recipe's folder (a recipe parsed from text, without a file: the data folder)."""
    if p.startswith(DATA_PREFIX):
        return data / os.path.expanduser(p[len(DATA_PREFIX) :])
    q = Path(os.path.expanduser(p))
    if q.is_absolute():
        return q
    return (Path(recipe.base) if recipe.base else data) / q


def with_overrides(recipe: Recipe, overrides: dict[str, Any]) -> Recipe:
    """The recipe with [geometry]/[corrections] keys replaced (``saxsred run --mask ...``):
    the value wins over the recipe's sections and its reduce steps' own keys. Paths are
    taken as given (make them absolute, or ``data:``-prefixed)."""
    geo_keys, corr_keys = SECTION_KEYS["geometry"], SECTION_KEYS["corrections"]

    def err(key: str | None, problem: str) -> SaxsredError:
        return ParameterError(f"override {key}: {problem}")

    ov = {k: v for k, v in overrides.items() if v is not None}
    geo = check_table({k: v for k, v in ov.items() if k in geo_keys}, geo_keys, err)
    corr = check_table({k: v for k, v in ov.items() if k not in geo_keys}, corr_keys, err)
    drop = set(ov) | ({"darks"} if "dark" in ov else set()) | ({"ponis"} if "poni" in ov else set())
    steps = tuple(
        replace(s, options={k: v for k, v in s.options.items() if k not in drop})
        if s.kind == "reduce"
        else s
        for s in recipe.steps
    )
    return replace(
        recipe,
        geometry={**recipe.geometry, **geo},
        corrections={**recipe.corrections, **corr},
        steps=steps,
    )
