"""The one exception family of saxsred.

Every error a user can cause is raised as a :class:`SaxsredError` subclass at the
boundary where the bad input is detected. Its message is one line: what was wrong,
where (file, frame, key) and what to do. The CLI prints that line and exits non-zero.
"""

from __future__ import annotations


class SaxsredError(Exception):
    """Base class: a problem the user can fix, described in one line.

    A message that quotes a library's (``XMLSyntaxError: ...\n, line 1``) is folded onto
    one line here, so every raise site keeps the one-line promise.
    """

    exit_code = 2

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str) and ("\n" in args[0] or "\r" in args[0]):
            args = (" ".join(args[0].split()), *args[1:])
        super().__init__(*args)


class InputError(SaxsredError):
    """A file or value given by the user is missing, unreadable or inconsistent."""


class GeometryError(SaxsredError):
    """Detector geometry is missing, incomplete or inconsistent with the frame."""


class FitError(SaxsredError):
    """A fit could not converge or gave a meaningless result."""


class ParameterError(SaxsredError):
    """A parameter (option, recipe key) is outside its allowed range."""


class InputWarning(UserWarning):
    """An input was read with an assumption or a conversion the user should know of (one line)."""
