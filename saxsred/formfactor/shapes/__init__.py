"""Particle shapes: one self-describing module per shape, found by a registry.

Each module in this folder (sasmodels' model files are the example) declares:

``name``
    the shape's name (what ``--shape`` takes);
``title``, ``description``
    one line, and the physics with its reference;
``parameters``
    a tuple of :class:`Parameter` (name, unit, default, limits, description): exactly
    one of kind ``"size"`` (the length x = q * size refers to) and any number of kind
    ``"shape"`` (held fixed in fits, e.g. a prism's edge ratios);
``derived``
    names of lengths reported beside the size (a sphere's ``radius``), each with a
    function ``derived_values(size, **shape) -> {name: value}``;
``p_function(**shape)``
    a callable P(x), x = q * size, orientation-averaged and normalised to P(0) = 1;
``volume(size, **shape)``, ``radius_of_gyration(size, **shape)``
    in nm^3 and nm for the size in nm;
``first_minimum_x(**shape)``
    x of the first minimum of P (None if P has none);
``fast_x_max(**shape)``
    the largest x that evaluates fast (beyond it a slow exact path answers);
``tests``
    its own test values: a list of ``(shape_parameters, x, P(x))`` from an independent
    source named in the module.

Adding a shape means adding one file here; :data:`SHAPES` and the command line's
``--shape`` choices come from this registry.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ...errors import ParameterError

REQUIRED = (
    "name",
    "title",
    "description",
    "parameters",
    "derived",
    "derived_values",
    "p_function",
    "volume",
    "radius_of_gyration",
    "first_minimum_x",
    "fast_x_max",
    "tests",
)


@dataclass(frozen=True)
class Parameter:
    """One row of a shape's parameter table.

    Attributes
    ----------
    name : str
        snake_case name (also the fit parameter's name and the JSON key stem).
    unit : str
        ``"nm"`` for lengths, ``""`` for ratios.
    default : float
    limits : (float, float)
        Open interval of allowed values.
    description : str
    kind : str
        ``"size"`` (the length x = q * size refers to) or ``"shape"`` (fixed in fits).
    """

    name: str
    unit: str
    default: float
    limits: tuple[float, float]
    description: str
    kind: str = "size"


def _discover() -> dict[str, ModuleType]:
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        missing = [k for k in REQUIRED if not hasattr(mod, k)]
        if missing:
            raise ImportError(f"shape module {mod.__name__} lacks {', '.join(missing)}")
        sizes = [p for p in mod.parameters if p.kind == "size"]
        if len(sizes) != 1:
            raise ImportError(f"shape module {mod.__name__} must declare one size parameter")
        found[mod.name] = mod
    return found


def get_shape(name: str) -> ModuleType:
    """The shape module registered as ``name``; :class:`ParameterError` otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ParameterError(f"shape {name!r}: choose one of {', '.join(SHAPES)}") from None


def size_parameter(shape: ModuleType) -> Parameter:
    """The shape's size parameter (the length that x = q * size refers to)."""
    return next(p for p in shape.parameters if p.kind == "size")


def shape_parameters(
    shape: ModuleType,
    values: Mapping[str, Any] | None = None,
    aspect: tuple[float, float] | None = None,
) -> dict[str, float]:
    """Checked values of a shape's fixed (kind ``"shape"``) parameters, defaults filled in.

    ``aspect`` = (b/a, c/a) is the older spelling of a prism's ``b2a_ratio`` and
    ``c2a_ratio``; shapes without those parameters ignore it.
    """
    fixed = [p for p in shape.parameters if p.kind == "shape"]
    vals = dict(values or {})
    names = {p.name for p in fixed}
    if aspect is not None and {"b2a_ratio", "c2a_ratio"} <= names:
        try:
            b, c = (float(v) for v in aspect)
        except (TypeError, ValueError):
            raise ParameterError(f"aspect {aspect!r}: give two ratios (b/a, c/a)") from None
        vals.setdefault("b2a_ratio", b)
        vals.setdefault("c2a_ratio", c)
    unknown = set(vals) - names
    if unknown:
        raise ParameterError(
            f"shape {shape.name!r} has no parameter {', '.join(sorted(unknown))}; "
            f"its shape parameters are {', '.join(sorted(names)) or 'none'}"
        )
    out = {}
    for p in fixed:
        v = vals.get(p.name, p.default)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ParameterError(f"{p.name} {v!r}: must be a number") from None
        lo, hi = p.limits
        if not (math.isfinite(v) and lo < v < hi):
            raise ParameterError(f"{p.name} {v!r}: must lie in ({lo:g}, {hi:g}) ({p.description})")
        out[p.name] = v
    return out


def find_first_minimum(
    pfun: Callable[[np.ndarray], np.ndarray], power: float = 0.0, x_max: float = 40.0
) -> float | None:
    """x of the first local minimum of x^power P(x) on (0, x_max], refined parabolically.

    None when there is none (a prism's minima can wash out). ``power = 4`` gives the
    minimum a q^4 I plot shows.
    """
    x = np.arange(0.01, x_max, 0.005)
    y = x**power * pfun(x)
    i = np.flatnonzero((y[1:-1] < y[:-2]) & (y[1:-1] <= y[2:]))
    if i.size == 0:
        return None
    k = int(i[0]) + 1
    y0, y1, y2 = y[k - 1], y[k], y[k + 1]
    den = y0 - 2.0 * y1 + y2
    shift = 0.5 * (y0 - y2) / den if den > 0 else 0.0
    return float(x[k] + shift * 0.005)


REGISTRY: dict[str, ModuleType] = _discover()
# The names, default shape first (what a parser offers as choices).
SHAPES: tuple[str, ...] = tuple(sorted(REGISTRY, key=lambda n: (n != "cube", n)))
