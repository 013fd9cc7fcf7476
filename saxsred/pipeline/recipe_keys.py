"""The keys a recipe may have: for each section and step kind, each key's type and check.

:data:`SECTION_KEYS` ([recipe], [geometry], [corrections]) and :data:`STEP_KEYS` (one
table per step kind) map a key to ``(type, check)``: the type is one :func:`check_table`
converts ("str", "float", "range", ...), the check a function returning a problem or
None. :func:`check_table` validates one TOML table against such a schema, naming the
nearest known key for a misspelt one. The format is described in ``pipelines/README.md``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from ..errors import ParameterError, SaxsredError
from ..reduce.corrections import MONITORS
from ..reduce.files import parse_frame_selection
from .keys import STEP_KINDS


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


STEP_COMMON_KEYS = {
    "name": ("str", None),
    "kind": ("str", _enum(*STEP_KINDS)),
    "description": ("str", None),
}


STEP_KEYS: dict[str, dict[str, tuple[str, Any]]] = {
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


#: The keys each step kind cannot do without.
REQUIRED_KEYS = {
    "reduce": ("inputs",),
    "average": ("inputs",),
    "subtract": ("inputs",),
    "scale": ("inputs",),
    "form_factor": ("input",),
    "structure_factor": ("sample", "dilute"),
    "peaks": ("input",),
    "figures": ("inputs",),
}


#: The keys whose values name curves of earlier steps (``"<step>/<pattern>"``).
REF_KEYS = ("inputs", "background", "water", "empty", "input", "sample", "dilute", "calibrant")


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


def check_table(
    table: dict[str, Any],
    schema: dict[str, tuple[str, Any]],
    err: Callable[[str | None, str], SaxsredError],
) -> dict[str, Any]:
    """Check a table's keys and values against ``schema``; returns the converted values.

    ``err(key, problem)`` makes the exception raised (it knows the file and line).
    """
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
