"""Entry points: :func:`run_recipe` (a recipe in batch) and :func:`reduce_parallel`
(``saxsred reduce --workers``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputError, ParameterError
from .keys import clean_partials, spec_token
from .reduce_step import check_output_names, plan_reduce, run_reduce_units
from .report import RunReport, summary_text
from .schema import Recipe, load_recipe, with_overrides
from .session import RunSession
from .steps import load_previous, run_later_step
from .units import ReduceSpec


def output_dir(recipe: Recipe, output: str | os.PathLike | None) -> Path:
    """The output folder: ``output`` if given, else the recipe's ``output``, else its name."""
    if output is not None:
        return Path(output).resolve()
    return Path(recipe.output or recipe.name).resolve()


def data_dir(recipe: Recipe, data: str | os.PathLike | None) -> Path:
    """The folder the recipe's input patterns resolve against."""
    d = Path(data) if data is not None else Path(recipe.data) if recipe.data else Path.cwd()
    d = d.resolve()
    if not d.is_dir():
        raise InputError(
            f"{d}: data folder not found; give --data DIR (recipe paths resolve against it)"
        )
    return d


def recipe_info(rec: Recipe) -> dict[str, Any]:
    """The recipe's entry in the run report."""
    return {"name": rec.name, "file": Path(rec.source).name, "checksum": rec.checksum}


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
    overrides: dict[str, Any] | None = None,
) -> RunReport:
    """Run a recipe: reduce steps on the executor, later steps in this process.

    Parameters
    ----------
    recipe : a :class:`Recipe` or the path of a TOML recipe.
    data : folder the recipe's input patterns resolve against (default: the recipe's
        ``data``, else the current folder). Geometry, mask, dark and flat paths resolve
        against the recipe's own folder (see :func:`~saxsred.pipeline.schema.load_recipe`).
    output : output folder (default: the recipe's ``output``, else its name).
    workers : run on a local dask cluster of this many processes (one thread each).
    scheduler : address of a running dask scheduler (``tcp://host:8786``).
    force : redo units that are up to date.
    client : an existing ``distributed.Client`` to use instead.
    steps : run only these steps (default all).
    overrides : [geometry]/[corrections] keys that replace the recipe's (and its reduce
        steps') values, e.g. ``{"mask": "/abs/mask.edf"}`` (``saxsred run --mask``).

    Returns
    -------
    :class:`RunReport`; ``exit_code`` is 0 when every unit succeeded, 1 when some failed,
    130 when interrupted. ``run_report.json`` and ``run_summary.txt`` are in the output.
    """
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if overrides:
        rec = with_overrides(rec, overrides)
    unknown = sorted(set(steps or ()) - {s.name for s in rec.steps})
    if unknown:
        raise ParameterError(
            f"{rec.source}: no step named {', '.join(map(repr, unknown))}; "
            f"steps: {', '.join(s.name for s in rec.steps)}"
        )
    todo = [s for s in rec.steps if steps is None or s.name in steps]
    session = RunSession(
        rec,
        data_dir(rec, data),
        output_dir(rec, output),
        recipe_info(rec),
        force=force,
        log=log,
        progress=progress,
        workers=workers,
        scheduler=scheduler,
        client=client,
    )
    with session:
        for step in rec.steps:
            if step not in todo:
                load_previous(session.ctx, step)
            elif step.kind == "reduce":
                run_reduce_units(session, plan_reduce(session.ctx, step), step.name)
            else:
                run_later_step(session.ctx, step)
    return session.report


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
    ``outdir``. Outputs are named after the paths as given (a symlink's own name, never
    its target's). Returns the exit code (0 all done, 1 some failed, 130 interrupted).
    """
    if not paths:
        raise InputError("reduce: no frame files given")
    out = Path(outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    clean_partials(out)
    items: list[tuple[str, str]] = []
    seen = set()
    for p in paths:
        ident = Path(p).as_posix()
        if ident not in seen:
            seen.add(ident)
            # absolute for the workers, but not resolved: a link keeps its own name
            items.append((ident, os.path.abspath(p)))
    check_output_names("reduce", items)
    poni = (
        os.path.abspath(job.poni) if isinstance(job.poni, str) else job.poni
    )  # or a loaded Geometry
    formats = ("h5", "dat")
    token = spec_token("reduce", job.corrections, poni, job.frames, formats)
    spec = ReduceSpec(
        "reduce", job.corrections, poni, job.frames, str(out), str(out), formats, token, force
    )
    session = RunSession(
        None,
        Path.cwd(),
        out,
        {"name": "reduce", "file": None, "checksum": None},
        force=force,
        log=log,
        progress=progress,
        workers=workers,
        scheduler=scheduler,
        client=client,
    )
    with session:
        run_reduce_units(session, [(spec, items)], "reduce")
    log(summary_text(session.report, "reduce", session.started))
    return session.report.exit_code
