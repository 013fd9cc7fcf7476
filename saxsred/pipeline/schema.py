"""Recipe schema: the TOML format of a recipe, parsed and validated with line numbers
(see ``pipelines/README.md``)."""

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
from ..reduce.corrections import MONITORS
from ..reduce.files import parse_frame_selection
from .keys import CURVE_KINDS, STATE_DIR, STEP_KINDS


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


def _frames(v: str) -> str | None:
    # the one parser of frame selections (saxsred reduce --frames uses it too)
    try:
        ok = parse_frame_selection(v) is not None
    except ParameterError:
        ok = False
    return None if ok else 'must be frame indices and ranges such as "0,2,5-9"'


def _formats(v: list[str]) -> str | None:
    bad = [f for f in v if f not in ("h5", "dat")]
    if bad or not v:
        return 'must be a non-empty list of "h5" and "dat"'
    return None


SECTION_KEYS: dict[str, dict[str, tuple[str, Any]]] = {
    "recipe": {
        "name": ("str", None),
        "description": ("str", None),
        "data": ("str", None),
        "output": ("str", None),
    },
    "geometry": {
        "poni": ("str", None),
        "mask": ("str", None),
        # overrides of the PONI (saxsred reduce --wavelength-nm / --energy-kev / --dioptas)
        "wavelength_nm": ("float", None),
        "energy_kev": ("float", None),
        "dioptas": ("bool", None),
    },
    "corrections": {
        "dark": ("str", None),
        "flat": ("str", None),
        "npt": ("int", _npt),
        "unit": ("str", _enum("q_nm^-1", "q_A^-1", "2th_deg", "r_mm")),
        "q_range_nm": ("range", None),
        "monitor": ("str", _enum(*MONITORS)),
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
        # issue 14: the options pyFAI users expect (same names as saxsred.reduce.Corrections)
        "error_model": ("str", _enum("poisson", "azimuthal", "none")),
        "mask_below": ("float", None),
        "mask_above": ("float", None),
        "beamstop_radius_px": ("float", _pos),
        "beamstop_auto": ("bool", None),
    },
}

_COMMON_STEP = {
    "name": ("str", None),
    "kind": ("str", _enum(*STEP_KINDS)),
    "description": ("str", None),
}
_STEP_KEYS: dict[str, dict[str, tuple[str, Any]]] = {
    "reduce": {
        "inputs": ("strs", None),
        "exclude": ("strs", None),
        "frames": ("str", _frames),
        "formats": ("strs", _formats),
        "darks": ("table", None),
        "ponis": ("table", None),
        **SECTION_KEYS["geometry"],
        **SECTION_KEYS["corrections"],
    },
    "average": {
        "inputs": ("strs", None),
        "output": ("str", None),
        "alpha": ("float", _unit_interval),
        "reject": ("bool", None),
    },
    "subtract": {
        "inputs": ("strs", None),
        "background": ("str", None),
        "pairs": ("table", None),
        "factor": ("float", None),
    },
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
    "figures": {
        "inputs": ("strs", None),
        "output": ("str", None),
        "title": ("str", None),
        "logx": ("bool", None),
    },
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

    def line(
        self, section: str, index: int | None = None, key: str | None = None, sub: str | None = None
    ) -> int:
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
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        )
        if not ok:
            return value, "must be two numbers [min, max]"
        lo, hi = float(value[0]), float(value[1])
        return ((lo, hi), None) if lo < hi else (value, "must be [min, max] with min < max")
    if typ == "table":
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value), None
        return value, 'must be a table of "pattern" = "name" strings'
    raise AssertionError(typ)  # pragma: no cover


def _check_table(
    table: dict[str, Any],
    schema: dict[str, tuple[str, Any]],
    err: Callable[[str | None, str], SaxsredError],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; allowed: {', '.join(sorted(schema))}"
            )
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
        sections[sec] = _check_table(raw, schema, section_err(sec))
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
        opts = _check_table(raw, {**_COMMON_STEP, **_STEP_KEYS[kind]}, err)
        name = opts.pop("name")
        opts.pop("kind")
        if not _NAME_RE.match(name):
            raise err(
                "name", f"{name!r}: use letters, digits, '_' and '-' (it names the output folder)"
            )
        if name in seen or name == STATE_DIR:
            raise err("name", f"{name!r} is used by an earlier step; step names must be unique")
        for req in _REQUIRED[kind]:
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
    geo = _check_table({k: v for k, v in ov.items() if k in geo_keys}, geo_keys, err)
    corr = _check_table({k: v for k, v in ov.items() if k not in geo_keys}, corr_keys, err)
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
