"""``saxsred run`` (a recipe, in batch) and ``saxsred watch`` (a recipe, live)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a pipeline recipe (TOML) serially, on local dask workers or on a dask scheduler",
        description="Run the steps of a recipe (reduce, average, subtract, scale, form factor, "
        "structure factor, peaks, figures). Outputs are keyed by their inputs' contents, the "
        "step options and the software version: a rerun skips what is up to date. Writes "
        "run_report.json (manifest with provenance) and run_summary.txt in the output folder. "
        "Exit code 0: all done; 1: some units failed (listed with reasons); 130: interrupted.",
    )
    p.add_argument("recipe", metavar="RECIPE.toml")
    _common(p)
    _overrides(p)
    p.add_argument("--force", action="store_true", help="redo outputs that are up to date")
    p.add_argument(
        "--step",
        action="append",
        dest="steps",
        metavar="NAME",
        help="run only this step (repeatable)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object (counts, failures, report path)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "watch",
        help="reduce frames live as they appear in a folder (the recipe's reduce steps)",
        description="Poll DIR for frames matching the recipe's reduce-step inputs; reduce each once "
        "when its size has been stable for --settle seconds and it reads completely. Partially "
        "written files are retried when they change; a file unreadable for --corrupt-after "
        "seconds is reported. Appends to the run report. Stop with Ctrl-C or a stop option.",
    )
    p.add_argument("recipe", metavar="RECIPE.toml")
    _common(p)
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="polling interval (default 1 s)"
    )
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        metavar="S",
        help="a file must keep its size and time this long before it is read (default 2 s)",
    )
    p.add_argument(
        "--corrupt-after",
        type=float,
        default=60.0,
        metavar="S",
        help="report a file as failed after it stayed unreadable and unchanged this long (default 60 s)",
    )
    p.add_argument("--timeout", type=float, metavar="S", help="stop after S seconds")
    p.add_argument(
        "--idle-timeout", type=float, metavar="S", help="stop after S seconds without a new file"
    )
    p.add_argument("--max-files", type=int, metavar="N", help="stop after N files are reduced")
    p.add_argument("--force", action="store_true", help="redo outputs that are up to date")
    p.set_defaults(func=_watch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder the recipe's paths resolve against (default: the recipe's data, else .)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="output folder (default: the recipe's output, else its name)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run on N local processes: this one and N-1 dask workers (one thread each)",
    )
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on a running dask scheduler, e.g. tcp://host:8786",
    )


def _overrides(p: argparse.ArgumentParser) -> None:
    """The options of ``saxsred reduce`` that a recipe's [geometry]/[corrections] hold: given
    here, they replace the recipe's values (and its reduce steps' own)."""
    from .reduce import MONITORS, polarization_arg

    g = p.add_argument_group(
        "overrides of the recipe's [geometry] and [corrections] (as in saxsred reduce)"
    )
    s = argparse.SUPPRESS  # absent = the recipe's value
    g.add_argument("--poni", default=s, help="geometry file")
    g.add_argument(
        "--wavelength-nm", type=float, default=s, metavar="X", help="wavelength (nm) for the PONI"
    )
    g.add_argument(
        "--energy-kev", type=float, default=s, metavar="E", help="photon energy (keV) for the PONI"
    )
    g.add_argument(
        "--dioptas", action="store_true", default=s, help="the PONI is Dioptas' (flipped image)"
    )
    g.add_argument("--mask", default=s, help="mask file (non-zero = masked)")
    g.add_argument("--dark", default=s, help="dark frame")
    g.add_argument("--flat", default=s, help="flat-field frame")
    g.add_argument("--npt", type=int, default=s, help="number of q bins")
    g.add_argument("--monitor", choices=MONITORS, default=s)
    g.add_argument(
        "--polarization",
        type=polarization_arg,
        default=s,
        metavar="P|off",
        help="polarisation factor or off",
    )
    g.add_argument("--transmission", type=float, default=s, help="sample transmission")
    g.add_argument(
        "--thickness", type=float, default=s, metavar="MM", help="sample thickness in mm"
    )
    g.add_argument("--scale", type=float, default=s, metavar="K", help="absolute scale factor")
    g.add_argument(
        "--hot-pixels", action="store_true", default=s, help="also mask isolated hot pixels"
    )
    g.add_argument(
        "--no-solid-angle", action="store_true", default=s, help="no solid-angle correction"
    )


def recipe_overrides(args: argparse.Namespace) -> dict:
    """Recipe keys from the override options given (paths made absolute: they are the
    user's, relative to the current folder, not to the recipe)."""
    import os

    from .reduce import correction_options

    o = correction_options(args)
    if "polarization" not in vars(args):
        o.pop("polarization_factor", None)
    elif o.get("polarization_factor") is None:
        o["polarization_factor"] = False  # the recipe's spelling of "off"
    if "poni" in vars(args):
        o["poni"] = args.poni
    for k in ("wavelength_nm", "energy_kev", "dioptas"):  # [geometry] overrides of the PONI
        if k in vars(args):
            o[k] = getattr(args, k)
    for k in ("poni", "mask", "dark", "flat"):
        if k in o:
            o[k] = os.path.abspath(o[k])
    return o


def _run(args: argparse.Namespace) -> int:
    from ..pipeline import load_recipe, run_recipe, summary_text
    from .output import print_json

    recipe = load_recipe(args.recipe)
    log = (lambda s: None) if args.json else print
    rep = run_recipe(
        recipe,
        data=args.data,
        output=args.output,
        workers=args.workers,
        scheduler=args.scheduler,
        force=args.force,
        progress=not (args.no_progress or args.json),
        log=log,
        steps=args.steps,
        overrides=recipe_overrides(args),
    )
    if args.json:
        print_json(
            {
                "exit_code": rep.exit_code,
                "counts": rep.counts,
                "failures": rep.failures,
                "seconds": round(rep.seconds, 3),
                "mode": rep.mode,
                "report": rep.report_path,
            },
            indent=None,
        )
    else:
        print(summary_text(rep, recipe.name))
    return rep.exit_code


def _watch(args: argparse.Namespace) -> int:
    from ..pipeline import watch_recipe

    rep = watch_recipe(
        args.recipe,
        data=args.data,
        output=args.output,
        workers=args.workers,
        scheduler=args.scheduler,
        interval_s=args.interval,
        settle_s=args.settle,
        corrupt_after_s=args.corrupt_after,
        timeout_s=args.timeout,
        idle_timeout_s=args.idle_timeout,
        max_files=args.max_files,
        force=args.force,
    )
    return rep.exit_code
