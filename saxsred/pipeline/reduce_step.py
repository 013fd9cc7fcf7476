"""The reduce step: its input files, its corrections, and its units run on an executor."""

from __future__ import annotations

import fnmatch
import glob as glob_mod
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import provenance as prov_mod
from ..errors import InputError
from . import units
from .executors import SerialExecutor, TaskError, chunks, guided_chunks
from .keys import clean_partials, rel_path, spec_token
from .schema import SECTION_KEYS, Recipe, Step, resolve_recipe_path
from .session import RunContext, RunSession
from .units import ReduceSpec


def resolve_path(base: Path, p: str) -> Path:
    q = Path(os.path.expanduser(p))
    return q if q.is_absolute() else base / q


def has_magic(p: str) -> bool:
    return glob_mod.has_magic(p)


def expand_inputs(step: Step, data: Path) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Input files of a reduce step (sorted, de-duplicated) and failure records for patterns
    that match nothing or literal files that do not exist."""
    seen: set[str] = set()
    items: list[tuple[str, str]] = []
    problems: list[dict[str, Any]] = []
    excl = step.options.get("exclude", [])
    for pat in step.options["inputs"]:
        full = resolve_path(data, pat)
        if has_magic(pat):
            found = sorted(glob_mod.glob(str(full), recursive=True))
            found = [f for f in found if Path(f).is_file() and not Path(f).name.startswith(".")]
        else:
            found = [str(full)]
        n = 0
        for f in found:
            ident = rel_path(f, data) if Path(f).is_relative_to(data) else Path(f).as_posix()
            if any(fnmatch.fnmatch(ident, e) or fnmatch.fnmatch(Path(f).name, e) for e in excl):
                continue
            n += 1
            if ident not in seen:
                seen.add(ident)
                items.append((ident, f))
        if has_magic(pat) and n == 0:
            problems.append(
                {
                    "step": step.name,
                    "unit": pat,
                    "status": "failed",
                    "reason": f"input pattern {pat!r} matches no file in {data}; check --data and the pattern",
                }
            )
    return items, problems


def check_output_names(step: str, items: Sequence[tuple[str, str]]) -> None:
    from ..io.frames import file_stem

    owner: dict[str, str] = {}
    for ident, path in items:
        s = file_stem(Path(path))
        if s in owner:
            raise InputError(
                f"step {step!r}: {owner[s]} and {ident} would both write {s}.h5; "
                "rename one, or split them into two reduce steps"
            )
        owner[s] = ident


def corrections_for_step(
    recipe: Recipe,
    step: Step,
    data: Path,
    dark_override: str | None = None,
    poni_override: str | None = None,
) -> tuple[Any, str | None]:
    """Corrections and PONI path of a reduce step (dark/flat/mask loaded here, once).

    File paths resolve against the recipe's folder (see
    :func:`~saxsred.pipeline.schema.resolve_recipe_path`); the options go through the one
    builder, :func:`saxsred.reduce.corrections_from_mapping`.
    """
    from ..reduce import corrections_from_mapping

    o = {
        **recipe.corrections,
        **{k: v for k, v in step.options.items() if k in SECTION_KEYS["corrections"]},
    }
    geo = {
        **recipe.geometry,
        **{k: v for k, v in step.options.items() if k in SECTION_KEYS["geometry"]},
    }
    if dark_override is not None:
        o["dark"] = dark_override
    if poni_override is not None:
        geo["poni"] = poni_override
    if geo.get("mask"):
        o["mask"] = geo["mask"]
    for kind in ("dark", "flat", "mask"):
        if o.get(kind):
            p = resolve_recipe_path(o[kind], recipe, data)
            if not p.is_file():
                raise InputError(
                    f"{p}: {kind} file not found ({kind} = {o[kind]!r} in {recipe.source}); "
                    f"paths are relative to the recipe's folder, 'data:{o[kind]}' to --data"
                )
            o[kind] = str(p)
    poni = None
    prov: dict[str, Any] = {}
    if geo.get("poni"):
        pp = resolve_recipe_path(geo["poni"], recipe, data)
        if not pp.is_file():
            raise InputError(
                f"{pp}: geometry file not found (poni = {geo['poni']!r} in {recipe.source}); "
                f"paths are relative to the recipe's folder, 'data:{geo['poni']}' to --data"
            )
        poni = str(pp)
        prov["poni_file"] = prov_mod.input_record(pp)
    overrides = {
        k: geo.get(k) for k in ("wavelength_nm", "energy_kev", "dioptas") if geo.get(k) is not None
    }
    if overrides:
        poni = geometry_with_recipe_overrides(poni, overrides, recipe)
    return corrections_from_mapping(o, provenance=prov), poni


def geometry_with_recipe_overrides(poni: str | None, overrides: dict[str, Any], recipe: Recipe):
    """The recipe's PONI as a Geometry with ``wavelength_nm`` / ``energy_kev`` / ``dioptas`` applied."""
    from ..geometry import apply_overrides, load_geometry, wavelength_from

    if poni is None:
        raise InputError(
            f"{recipe.source}: [geometry] {', '.join(overrides)} override a PONI: give 'poni' too"
        )
    lam = wavelength_from(overrides.get("wavelength_nm"), overrides.get("energy_kev"))
    geo = load_geometry(poni, wavelength_m=lam)
    return apply_overrides(
        geo,
        overrides.get("wavelength_nm"),
        overrides.get("energy_kev"),
        bool(overrides.get("dioptas")),
        geo.shape,
    )


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="file",
        disable=not enabled or None,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def run_reduce_units(
    session: RunSession, groups: Sequence[tuple[ReduceSpec, Sequence[tuple[str, str]]]], desc: str
) -> None:
    """Reduce every (spec, files) group, streaming records into the session's context.

    Files whose outputs are up to date by size and time (:func:`units.quick_skip`) are
    recorded as skipped here, in the client, without reading a frame; only the rest go to
    the executor, which is not started at all when nothing is left.
    """
    ctx = session.ctx
    left_groups = []
    for spec, items in groups:
        left = []
        for ident, path in items:
            rec = units.quick_skip(ident, path, spec)
            if rec is None:
                left.append((ident, path))
            else:
                ctx.record(rec)
        if left:
            left_groups.append((spec, left))
    groups = left_groups
    if not groups:
        return
    executor = session.executor_for(sum(len(items) for _, items in groups))
    total = sum(len(items) for _, items in groups)
    nw = executor.nworkers
    window = 2 * nw + 2  # tasks in flight: memory stays a few frames per worker
    shared = [(executor.share(spec), items) for spec, items in groups]
    if isinstance(executor, SerialExecutor):
        tasks = ((part, ref) for ref, items in shared for part in chunks(items, 1))
    else:
        tasks = ((part, ref) for ref, items in shared for part in guided_chunks(items, nw))
    bar = progress_bar(total, desc, ctx.progress)
    gen = executor.map_unordered(units.reduce_inputs, tasks, window)
    try:
        for res in gen:
            if isinstance(res, TaskError):
                # the whole task was lost (a worker died): its files are failed, a rerun retries them
                part = res.args[0] if res.args else [("?", "?")]
                for ident, _ in part:
                    ctx.record(
                        {
                            "step": desc,
                            "unit": ident,
                            "status": "failed",
                            "reason": f"{ident}: the worker failed ({type(res.exc).__name__}: "
                            f"{' '.join(str(res.exc).split())[:150]}); rerun to retry",
                        }
                    )
                bar.update(len(part))
                continue
            for rec in res:
                ctx.record(rec)
                if rec["status"] == "failed":
                    with bar.external_write_mode():
                        ctx.log(f"FAILED {rec['step']}/{rec['unit']}: {rec.get('reason', '')}")
            bar.update(len(res))
    finally:
        gen.close()
        bar.close()


def pairing(step: Step, ident: str, path: str) -> tuple[str | None, str | None]:
    """The (dark, PONI) paired with a file by the step's ``darks`` and ``ponis`` tables
    (first matching pattern; None: the step's own)."""
    out = []
    for table in ("darks", "ponis"):
        hit = None
        for pat, val in step.options.get(table, {}).items():
            if fnmatch.fnmatch(ident, pat) or fnmatch.fnmatch(Path(path).name, pat):
                hit = val
                break
        out.append(hit)
    return out[0], out[1]


def make_spec(ctx: RunContext, step: Step, pairing: tuple[str | None, str | None]) -> ReduceSpec:
    from ..reduce import parse_frame_selection

    assert ctx.recipe is not None
    frames = parse_frame_selection(step.options.get("frames"))
    formats = tuple(step.options.get("formats", ("h5", "dat")))
    corr, poni = corrections_for_step(ctx.recipe, step, ctx.data, *pairing)
    token = spec_token(step.name, corr, poni, frames, formats)
    return ReduceSpec(
        step.name,
        corr,
        poni,
        frames,
        str(ctx.out / step.name),
        str(ctx.out),
        formats,
        token,
        ctx.force,
    )


def plan_reduce(ctx: RunContext, step: Step) -> list[tuple[ReduceSpec, list[tuple[str, str]]]]:
    items, problems = expand_inputs(step, ctx.data)
    for rec in problems:
        ctx.record(rec)
    check_output_names(step.name, items)
    clean_partials(ctx.out / step.name)
    groups: dict[tuple[str | None, str | None], list[tuple[str, str]]] = {}
    for ident, path in items:
        groups.setdefault(pairing(step, ident, path), []).append((ident, path))
    return [(make_spec(ctx, step, pairing), its) for pairing, its in groups.items()]
