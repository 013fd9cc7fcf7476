"""Recipes (TOML) -> steps -> dask: batch reprocessing, distributed runs, resume, live mode.

A recipe names the inputs (globs relative to a data folder), the geometry and the
corrections, and a list of steps; :func:`run_recipe` runs it serially, on N local
processes (this one and a dask.distributed cluster of N - 1 workers, one thread each, that
starts while this one works) or on a running scheduler.
The same runner serves ``saxsred reduce --workers N`` (:func:`reduce_parallel`).

Modules, in the order a run meets them:

- :mod:`~saxsred.pipeline.schema`: the recipe format, parsed and validated (:func:`load_recipe`);
- :mod:`~saxsred.pipeline.recipe_keys`: the keys each section and step kind may have;
- :mod:`~saxsred.pipeline.keys`: step kinds, the state folder, the content keys of units;
- :mod:`~saxsred.pipeline.executors`: serial, local (this process + :func:`local_cluster`) or a scheduler;
- :mod:`~saxsred.pipeline.units`: one reduce unit (:func:`reduce_input`), run on a worker;
- :mod:`~saxsred.pipeline.session`: the run session every unit records into;
- :mod:`~saxsred.pipeline.reduce_step`: a reduce step's files, corrections and units;
- :mod:`~saxsred.pipeline.steps`: the later steps (average ... figures);
- :mod:`~saxsred.pipeline.report`: ``run_report.json`` and ``run_summary.txt``;
- :mod:`~saxsred.pipeline.run`: :func:`run_recipe`, :func:`reduce_parallel`;
- :mod:`~saxsred.pipeline.watch`: :func:`watch_recipe` (live mode).

Never redo, never lose
    Each unit of work (one input file of a ``reduce`` step, one output of a later step)
    is keyed by the XXH3 of its inputs' contents, the step's options and the software
    versions. The key and the checksums of the outputs are written, after the outputs,
    to ``<step folder>/.saxsred/<unit>.json``; a rerun skips a unit whose key and outputs
    are unchanged (``force`` redoes it). Every file is written atomically, so a killed run
    leaves finished units complete and unfinished ones absent.

Bounded memory
    Workers read frames from paths themselves; the client submits at most ``window``
    tasks at a time (a few per worker), each task holds one frame at a time, and results
    are small records streamed to a journal file rather than kept.

Example
-------
>>> rep = run_recipe("pipelines/capillary_saxs.toml", data="sample_data", output="out")  # doctest: +SKIP
>>> rep.exit_code, rep.counts                                                            # doctest: +SKIP
(0, {'done': 20, 'skipped': 0, 'failed': 0})
"""

from .executors import THREAD_VARS, local_cluster, pin_threads
from .keys import REPORT_NAME, STEP_KINDS, SUMMARY_NAME
from .report import RunReport, summary_text
from .run import reduce_parallel, run_recipe
from .schema import Recipe, Step, load_recipe, parse_recipe
from .units import ReduceSpec, reduce_input, reduce_inputs
from .watch import watch_recipe

__all__ = [
    "REPORT_NAME",
    "STEP_KINDS",
    "SUMMARY_NAME",
    "THREAD_VARS",
    "Recipe",
    "ReduceSpec",
    "RunReport",
    "Step",
    "load_recipe",
    "local_cluster",
    "parse_recipe",
    "pin_threads",
    "reduce_input",
    "reduce_inputs",
    "reduce_parallel",
    "run_recipe",
    "summary_text",
    "watch_recipe",
]
