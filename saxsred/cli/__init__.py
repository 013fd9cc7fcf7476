"""Command-line interface: thin layers over the stage functions.

Each sub-module registers its sub-commands with ``add_parsers(subparsers)`` and sets
``func`` on its parser; :func:`main` parses, calls, and turns a :class:`SaxsredError`
into one printed line and a non-zero exit code (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings

from ..errors import SaxsredError

# Sub-command modules, in the order of the data path (frame -> curve -> lattice).
_MODULES = ("reduce", "calibrate", "formfactor", "peaks", "waxs", "model", "mc", "run")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="saxsred",
        description="SAXS/WAXS reduction and analysis of nanocrystal supraparticles.",
    )
    parser.add_argument("--version", action="version", version=f"saxsred {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:  # a stage not built yet
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        mod.add_parsers(sub)
    return parser


@contextlib.contextmanager
def _one_line_warnings(command: str):
    """Show saxsred's InputWarning (an assumption or conversion made on an input) as one line."""
    from ..errors import InputWarning

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, InputWarning):
            print(f"saxsred {command}: note: {message}", file=sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        with _one_line_warnings(args.command):
            rc = args.func(args)
    except SaxsredError as exc:
        if args.debug:
            raise
        print(f"saxsred {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"saxsred {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
