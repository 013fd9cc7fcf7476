"""Later steps (average, subtract, scale, form factor, structure factor, peaks, figures):
each unit keyed like a reduction and run in the client."""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import provenance as prov_mod
from ..errors import InputError, SaxsredError
from ..io.jsonfile import jsonable
from .keys import STATE_DIR, one_line, rel_path, sidecar_path, up_to_date
from .schema import Step
from .session import RunContext


def _find(ctx: RunContext, ref: str, required: bool = True) -> list[Path]:
    step, _, pat = ref.partition("/")
    names = ctx.curves.get(step, {})
    hits = [names[n] for n in sorted(names) if fnmatch.fnmatchcase(n, pat)]
    if not hits and required:
        failed = sorted(ctx.failed_units.get(step, ()))
        why = f" (failed units of step {step!r}: {', '.join(failed[:5])})" if failed else ""
        raise InputError(
            f"needs {ref}, which this run did not produce{why}; see the failures above"
        )
    return hits


def _one(ctx: RunContext, ref: str) -> Path:
    hits = _find(ctx, ref)
    if len(hits) != 1:
        raise InputError(f"{ref} matches {len(hits)} curves; name exactly one")
    return hits[0]


def _read(p: Path):
    from ..io.curves import read_curve

    cv = read_curve(p)
    prov = dict(cv.provenance)
    prov.pop("source", None)  # the reader adds it; the stages extend the original record
    return replace(cv, provenance=prov)


def _write_curve(
    ctx: RunContext, step: Step, curve: Any, formats: Sequence[str] = ("h5", "dat")
) -> list[Path]:
    from ..reduce import write_curves

    return [Path(p) for p in write_curves([curve], str(ctx.out / step.name), formats)]


def _write_json(path: Path, obj: Any) -> Path:
    from ..io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(jsonable(obj), sort_keys=True, indent=1) + "\n")
    return path


def _unit(
    ctx: RunContext,
    step: Step,
    unit: str,
    inputs: Callable[[], dict[str, Path]],
    produce: Callable[[dict[str, Path]], dict[str, list[Path]]],
) -> None:
    """Run one keyed unit of a later step: skip it if up to date, else produce and record it.

    ``produce`` returns {"curves": [...], "results": [...], "other": [...]} of written paths.
    """
    from .. import __version__
    from ..io.atomic import write_text_atomic

    t0 = time.perf_counter()
    rec: dict[str, Any] = {"step": step.name, "unit": unit}
    try:
        ins = inputs()
        material = {
            "step": step.name,
            "kind": step.kind,
            "options": step.options,
            "inputs": {k: prov_mod.file_checksum(v) for k, v in sorted(ins.items())},
            "saxsred": __version__,
            "software": prov_mod.software_versions(),
        }
        key = prov_mod.text_checksum(json.dumps(jsonable(material), sort_keys=True, default=str))
        side = sidecar_path(ctx.out / step.name, unit)
        old = None if ctx.force else up_to_date(side, key, ctx.out)
        if old is not None:
            old.update(status="skipped", seconds=round(time.perf_counter() - t0, 4))
            ctx.record(old)
            return
        written = produce(ins)
        outputs, curves, results = [], {}, {}
        for group, paths in written.items():
            for p in paths:
                rel = rel_path(p, ctx.out)
                outputs.append({"path": rel, "checksum": prov_mod.file_checksum(p)})
                if group == "curves" and p.suffix == ".h5":
                    curves[p.stem] = rel
                elif group == "curves" and p.suffix == ".dat":
                    curves.setdefault(p.stem, rel)
                elif group == "results":
                    results[unit] = rel
        rec.update(
            key=key,
            outputs=outputs,
            curves=curves,
            results=results,
            inputs=[
                {
                    "name": k,
                    "file": rel_path(v, ctx.out) if v.is_relative_to(ctx.out) else v.name,
                    "checksum": material["inputs"][k],
                }
                for k, v in sorted(ins.items())
            ],
        )
        write_text_atomic(side, json.dumps(rec, sort_keys=True, indent=1) + "\n")
        rec["status"] = "done"
    except Exception as exc:
        rec.update(status="failed", reason=one_line(exc, f"step {step.name!r}"))
        ctx.log(f"FAILED {step.name}/{unit}: {rec['reason']}")
    rec["seconds"] = round(time.perf_counter() - t0, 4)
    ctx.record(rec)


def _step_average(ctx: RunContext, step: Step) -> None:
    from ..reduce import average_curves

    o = step.options
    name = o.get("output", step.name)

    def inputs() -> dict[str, Path]:
        return _curves_by_name(ctx, o["inputs"])

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        curves = [_read(ins[k]) for k in sorted(ins)]
        res = average_curves(
            curves, alpha=o.get("alpha", 1e-3), reject=o.get("reject", True), name=name
        )
        verdicts = [
            {
                "name": v.name,
                "chi2_red": v.chi2_red,
                "p_value": v.p_value,
                "kept": v.kept,
                "tested": v.tested,
                "note": v.note,
            }
            for v in res.verdicts
        ]
        for v in res.verdicts:
            if not v.kept:
                ctx.log(
                    f"{step.name}: frame {v.name} rejected (chi2_red = {v.chi2_red:.3g}, p = {v.p_value:.2g})"
                )
        js = _write_json(
            ctx.out / step.name / f"{name}_frames.json", {"average": name, "frames": verdicts}
        )
        return {"curves": _write_curve(ctx, step, res.curve), "other": [js]}

    _unit(ctx, step, name, inputs, produce)


def _curves_by_name(ctx: RunContext, refs: Sequence[str]) -> dict[str, Path]:
    """The curves that ``refs`` (``step/pattern``) name, by file stem, first match kept."""
    found: dict[str, Path] = {}
    for ref in refs:
        for p in _find(ctx, ref):
            found.setdefault(p.stem, p)
    return found


def _step_subtract(ctx: RunContext, step: Step) -> None:
    from ..reduce import subtract_background

    o = step.options
    samples = _curves_by_name(ctx, o["inputs"])
    for name, sp in samples.items():
        bg_ref = next(
            (r for pat, r in o.get("pairs", {}).items() if fnmatch.fnmatchcase(name, pat)),
            o.get("background"),
        )

        def inputs(sp: Path = sp, bg_ref: str | None = bg_ref, name: str = name) -> dict[str, Path]:
            if bg_ref is None:
                raise InputError(
                    f"no background for {name!r}: no 'pairs' pattern matches and no 'background' given"
                )
            return {"sample": sp, "background": _one(ctx, bg_ref)}

        def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
            out = subtract_background(
                _read(ins["sample"]), _read(ins["background"]), o.get("factor", 1.0)
            )
            return {"curves": _write_curve(ctx, step, out)}

        _unit(ctx, step, name, inputs, produce)


def _step_scale(ctx: RunContext, step: Step) -> None:
    from ..reduce import WATER_DSIGMA_20C, scale_curve, water_scale_factor

    o = step.options
    samples = _curves_by_name(ctx, o["inputs"])
    calib: dict[str, Any] = {}

    def calibration() -> tuple[float, float]:
        if "factor" in o:
            return o["factor"], o.get("factor_err", 0.0)
        if not calib:
            water = _read(_one(ctx, o["water"]))
            empty = _read(_one(ctx, o["empty"])) if "empty" in o else None
            cal = water_scale_factor(
                water,
                empty,
                q_range_nm=o.get("q_range_nm", (0.5, 2.0)),
                reference_cm=o.get("water_cm", WATER_DSIGMA_20C),
            )
            calib.update(
                factor=cal.factor,
                factor_err=cal.factor_err,
                water_level=cal.water_level,
                water_level_err=cal.water_level_err,
                q_range_nm=list(cal.q_range_nm),
                reference_cm=cal.reference_cm,
            )
            _write_json(ctx.out / step.name / "water_calibration.json", calib)
        return calib["factor"], calib["factor_err"]

    for name, sp in samples.items():

        def inputs(sp: Path = sp) -> dict[str, Path]:
            ins = {"curve": sp}
            if "factor" not in o:
                ins["water"] = _one(ctx, o["water"])
                if "empty" in o:
                    ins["empty"] = _one(ctx, o["empty"])
            return ins

        def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
            k, k_err = calibration()
            out = scale_curve(_read(ins["curve"]), k, k_err)
            other = [ctx.out / step.name / "water_calibration.json"] if calib else []
            return {"curves": _write_curve(ctx, step, out), "other": other}

        _unit(ctx, step, name, inputs, produce)


def _input_name(ctx: RunContext, ref: str) -> str:
    """Unit name of a one-input step: the stem of the one file ``ref`` finds, else its pattern."""
    src = _find(ctx, ref, required=False)
    return src[0].stem if len(src) == 1 else ref.partition("/")[2]


def _step_form_factor(ctx: RunContext, step: Step) -> None:
    o = step.options
    name = _input_name(ctx, o["input"])

    def inputs() -> dict[str, Path]:
        return {"curve": _one(ctx, o["input"])}

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from ..formfactor import fit_form_factor

        curve = _read(ins["curve"])
        fit = fit_form_factor(
            curve, shape=o.get("shape", "cube"), qmin=o.get("qmin"), qmax=o.get("qmax")
        )
        js = _write_json(ctx.out / step.name / f"{name}_form_factor.json", fit.to_json_dict())
        other = []
        if o.get("figure", False):
            other += _figure(
                ctx, step, f"{name}_form_factor", "formfactor", "plot_form_factor_fit", fit, curve
            )
        return {"results": [js], "other": other}

    _unit(ctx, step, name, inputs, produce)


def _figure(
    ctx: RunContext, step: Step, name: str, module: str, func: str, *args: Any
) -> list[Path]:
    import importlib

    from ..plots.frames import save

    fn = getattr(importlib.import_module(f"saxsred.plots.{module}"), func)
    return [Path(save(fn(*args), ctx.out / step.name / f"{name}.png"))]


def _step_structure_factor(ctx: RunContext, step: Step) -> None:
    o = step.options
    name = o.get("output", step.name)

    def inputs() -> dict[str, Path]:
        return {"sample": _one(ctx, o["sample"]), "dilute": _one(ctx, o["dilute"])}

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from ..formfactor import effective_structure_factor

        sq = effective_structure_factor(_read(ins["sample"]), _read(ins["dilute"]))
        return {"curves": _write_curve(ctx, step, replace(sq.as_curve(), name=name))}

    _unit(ctx, step, name, inputs, produce)


def _step_peaks(ctx: RunContext, step: Step) -> None:
    o = step.options
    name = _input_name(ctx, o["input"])

    def inputs() -> dict[str, Path]:
        ins = {"curve": _one(ctx, o["input"])}
        if "edge_from" in o:
            res = ctx.results.get(o["edge_from"], {})
            if len(res) != 1:
                raise InputError(
                    f"needs the form-factor result of step {o['edge_from']!r}, which this run did not produce"
                )
            ins["form_factor"] = next(iter(res.values()))
        if "calibrant" in o:
            ins["calibrant"] = _one(ctx, o["calibrant"])
        return ins

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from ..peaks import analyze_peaks, instrument_fwhm_from_calibrant

        edge = o.get("edge_nm")
        if "form_factor" in ins:
            ffj = json.loads(ins["form_factor"].read_text(encoding="utf-8"))
            # a sphere fit reports diameter_nm, not edge_nm; size_nm is every shape's size
            edge = ffj.get("edge_nm", ffj.get("size_nm"))
        fwhm = o.get("instrument_fwhm_inv_nm", 0.0)
        if "calibrant" in ins:
            fwhm = instrument_fwhm_from_calibrant(_read(ins["calibrant"]))
        kw: dict[str, Any] = {k: o[k] for k in ("qmin", "qmax") if k in o}
        if "curve_kind" in o:
            kw["kind"] = o["curve_kind"]
        pk = analyze_peaks(
            _read(ins["curve"]),
            lattice=o.get("lattice", "auto"),
            edge_nm=edge,
            instrument_fwhm_inv_nm=fwhm,
            **kw,
        )
        js = _write_json(ctx.out / step.name / f"{name}_peaks.json", pk.to_json_dict())
        other = (
            _figure(ctx, step, f"{name}_peaks", "peaks", "plot_peaks", pk)
            if o.get("figure", False)
            else []
        )
        return {"results": [js], "other": other}

    _unit(ctx, step, name, inputs, produce)


def _step_figures(ctx: RunContext, step: Step) -> None:
    o = step.options
    name = o.get("output", step.name)

    def inputs() -> dict[str, Path]:
        paths: dict[str, Path] = {}
        for ref in o["inputs"]:
            for p in _find(ctx, ref):
                paths.setdefault(f"{rel_path(p.parent, ctx.out)}/{p.stem}", p)
        return paths

    def produce(ins: dict[str, Path]) -> dict[str, list[Path]]:
        from ..plots.frames import plot_curves, save

        fig = plot_curves(
            [_read(ins[k]) for k in ins], title=o.get("title", ""), logx=o.get("logx", True)
        )
        return {"other": [Path(save(fig, ctx.out / step.name / f"{name}.png"))]}

    _unit(ctx, step, name, inputs, produce)


_LATER = {
    "average": _step_average,
    "subtract": _step_subtract,
    "scale": _step_scale,
    "form_factor": _step_form_factor,
    "structure_factor": _step_structure_factor,
    "peaks": _step_peaks,
    "figures": _step_figures,
}


def load_previous(ctx: RunContext, step: Step) -> None:
    """Make the outputs an earlier run left for a step that is not run now available to
    the steps that are (``--step``): the units whose key files and outputs exist."""
    for side in sorted((ctx.out / step.name / STATE_DIR).glob("*.json")):
        try:
            rec = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if all((ctx.out / o["path"]).is_file() for o in rec.get("outputs", [])):
            for name, rel in (rec.get("curves") or {}).items():
                ctx.curves.setdefault(step.name, {})[name] = ctx.out / rel
            for name, rel in (rec.get("results") or {}).items():
                ctx.results.setdefault(step.name, {})[name] = ctx.out / rel


def run_later_step(ctx: RunContext, step: Step) -> None:
    try:
        _LATER[step.kind](ctx, step)
    except SaxsredError as exc:  # e.g. an input pattern that matches nothing
        rec = {"step": step.name, "unit": step.name, "status": "failed", "reason": str(exc)}
        ctx.log(f"FAILED {step.name}: {exc}")
        ctx.record(rec)
