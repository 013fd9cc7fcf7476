"""What every command prints: one JSON printer and one way to show a value with its error."""

from __future__ import annotations

import math
from typing import Any

from ..io.jsonfile import dumps


def print_json(obj: Any, indent: int | None = 1) -> None:
    """Print ``obj`` as JSON on stdout: sorted keys, ``null`` for NaN."""
    print(dumps(obj, indent=indent))


def format_value(value: float | None, err: float | None = None, unit: str = "") -> str:
    """``value +/- err unit`` with the error rounded to two significant digits.

    The value is printed to the error's last digit; an error that would round to zero is
    printed with as many digits as it needs (never ``+/- 0``); a missing or non-finite
    error prints the value alone with four significant digits, and NaN prints ``n/a``.

    Example
    -------
    >>> format_value(166.31, 0.04, "nm")
    '166.310 +/- 0.040 nm'
    """
    tail = f" {unit}" if unit else ""
    if value is None or not math.isfinite(value):
        return "n/a" + tail
    if err is None or not math.isfinite(err) or err <= 0:
        return f"{value:.4g}{tail}"
    digits = max(0, 1 - math.floor(math.log10(err)))  # two significant digits of the error
    return f"{value:.{digits}f} +/- {err:.{digits}f}{tail}"
