"""JSON text for results and summaries: one encoder for every command and stage.

Keys are sorted, NaN and infinities become ``null`` (JSON has no NaN), numpy scalars and
arrays become plain numbers and lists, paths become strings. The same object always gives
the same bytes.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_text_atomic


def jsonable(obj: Any) -> Any:
    """Plain-Python copy of ``obj`` that :func:`json.dumps` accepts with ``allow_nan=False``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any, indent: int | None = 1) -> str:
    """Deterministic JSON text: sorted keys, ``null`` for NaN, no trailing newline."""
    return json.dumps(jsonable(obj), indent=indent, sort_keys=True, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (sorted keys, indent 1, final newline)."""
    write_text_atomic(path, dumps(obj) + "\n")
