"""``saxsred formfactor`` (fit a dilute-suspension curve) and ``saxsred sq`` (S_eff).

Thin: parse, read the curves, call :func:`saxsred.formfactor.fit_form_factor` or
:func:`saxsred.formfactor.effective_structure_factor`, print one JSON object or a few
lines, write. The shape and distribution choices come from the form-factor package's
registry, not from this parser.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..formfactor.distributions import DISTRIBUTIONS
from ..formfactor.shapes import SHAPES
from .output import format_value, print_json

# Abscissa units a user may name for a file whose header does not say (issue 10).
Q_UNITS = ("nm^-1", "A^-1")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shape",
        choices=SHAPES,
        default="cube",
        help="particle shape (default cube; sphere: the size is the diameter, radius reported)",
    )
    p.add_argument(
        "--aspect",
        nargs=2,
        type=float,
        metavar=("B2A", "C2A"),
        default=(1.0, 1.0),
        help="prism edge ratios b/a and c/a (held fixed; default 1 1)",
    )
    p.add_argument(
        "--distribution",
        choices=DISTRIBUTIONS,
        default="gaussian",
        help="size distribution (default gaussian)",
    )
    p.add_argument(
        "--q-unit",
        choices=Q_UNITS,
        help="unit of q of input files whose header does not state one (a unit stated in "
        "a file wins; default: nm^-1, and the assumption is stated)",
    )


def _read(path: str, q_unit: str | None):
    """Read a curve in q (nm^-1); ``q_unit`` applies only when the file states no unit.

    ``sq`` reads two files, often one written by saxsred (which says nm^-1) and one
    published without a header: one option must not relabel the file that says its unit.
    """
    from ..io.curves import detect_x_unit, read_curve

    p = Path(path)
    if q_unit is None or p.suffix.lower() in (".h5", ".hdf5", ".nxs", ".nx") or not p.is_file():
        return read_curve(p)  # NXcanSAS states its units; a missing file: the reader's error
    header = []
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            first = line.split()[:1]
            try:
                float(first[0].rstrip(","))
                break  # the first data row: the header is over
            except (IndexError, ValueError):
                header.append(line)
    stated, _ = detect_x_unit(header)
    return read_curve(p, q_unit=None if stated else q_unit)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "formfactor",
        help=f"fit the form factor of a dilute suspension ({', '.join(SHAPES)})",
        description="Fit I = scale <V^2 P(q)>/<V^2> + background to a solvent-subtracted "
        "dilute-suspension curve (2/3-column text or NXcanSAS): size, polydispersity, scale, "
        "background, with errors and correlations. Start values are found automatically.",
    )
    p.add_argument(
        "dilute", metavar="DILUTE", help="dilute-suspension curve (.dat/.txt or NXcanSAS .h5)"
    )
    _add_common(p)
    p.add_argument("--qmin", type=float, help="lowest q of the fit (nm^-1)")
    p.add_argument("--qmax", type=float, help="highest q of the fit (nm^-1)")
    p.add_argument(
        "--smearing",
        type=float,
        metavar="SIGMA_Q",
        help="Gaussian instrumental resolution sigma_q (nm^-1)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write formfactor.json, <name>_model.dat and formfactor.png to DIR",
    )
    p.set_defaults(func=_formfactor)

    s = sub.add_parser(
        "sq",
        help="effective structure factor S_eff = [I_sample/c] / [I_dilute/c]",
        description="Divide a supraparticle curve by the dilute form factor (measured, or "
        "the fitted model with --model). The concentration ratio is fitted so that "
        "S_eff -> 1 at high q unless given. Points near sharp form-factor minima or with "
        "too little dilute signal are flagged and left out of the output. Without -o the "
        "S_eff table is printed (as a 3-column text that saxsred reads back).",
    )
    s.add_argument("sample", metavar="SAMPLE", help="supraparticle curve")
    s.add_argument("dilute", metavar="DILUTE", help="dilute-suspension curve")
    s.add_argument("--model", action="store_true", help="divide by the form-factor fit of DILUTE")
    _add_common(s)
    s.add_argument("--qmin", type=float, help="fit range of --model (nm^-1)")
    s.add_argument("--qmax", type=float, help="fit range of --model (nm^-1)")
    s.add_argument(
        "--concentration-ratio",
        type=float,
        metavar="R",
        help="c_sample/c_dilute (default: fitted so that S_eff -> 1 at high q)",
    )
    s.add_argument(
        "--s-one-range",
        nargs=2,
        type=float,
        metavar=("QLO", "QHI"),
        help="q range (nm^-1) where S_eff = 1 is assumed when fitting the ratio "
        "(default: the highest quarter of the q range)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("-o", "--output", metavar="FILE", help="output file (.dat, or .h5 for NXcanSAS)")
    s.set_defaults(func=_sq)


def _fit(curve, args):
    from ..formfactor import fit_form_factor

    return fit_form_factor(
        curve,
        shape=args.shape,
        qmin=args.qmin,
        qmax=args.qmax,
        distribution=args.distribution,
        smearing=getattr(args, "smearing", None),
        aspect=tuple(args.aspect) if args.shape == "prism" else None,
    )


def _fit_lines(fit) -> list[str]:
    """The fitted values, each with its error to two significant digits."""
    d = fit.to_json_dict()
    size = fit.size_name
    lines = [f"{fit.shape}, {fit.distribution} sizes, {d['n_points']} points"]
    lines.append(f"{size} = {format_value(fit.size_nm, fit.size_err_nm, 'nm')}")
    for name in ("radius", "edge_b", "edge_c"):
        if f"{name}_nm" in d:
            lines.append(f"{name} = {format_value(d[f'{name}_nm'], d[f'{name}_err_nm'], 'nm')}")
    lines.append(f"polydispersity = {format_value(fit.polydispersity, fit.polydispersity_err)}")
    lines.append(f"scale = {format_value(fit.scale, fit.scale_err, fit.unit)}")
    lines.append(f"background = {format_value(fit.background, fit.background_err, fit.unit)}")
    lines.append(f"reduced chi2 = {fit.reduced_chi2:.4g}")
    return lines


def _formfactor(args: argparse.Namespace) -> int:
    curve = _read(args.dilute, args.q_unit)
    fit = _fit(curve, args)
    summary = fit.to_json_dict()
    summary["input"] = Path(args.dilute).name
    if args.output:
        summary["outputs"] = _write_formfactor(fit, curve, Path(args.output), summary)
    if args.json:
        print_json(summary)
    else:
        print("\n".join(_fit_lines(fit)))
        print(fit.report)
        if args.output:
            print(f"wrote {', '.join(str(Path(args.output) / f) for f in summary['outputs'])}")
    return 0


def _write_formfactor(fit, curve, out: Path, summary: dict) -> list[str]:
    from ..curve import Curve
    from ..io.curves import write_dat
    from ..io.jsonfile import write_json
    from ..plots.formfactor import plot_form_factor_fit
    from ..plots.frames import save
    from ..provenance import extend

    # Build everything before the first write, so that a failure leaves no partial output.
    name = curve.name or "dilute"
    prov = extend(
        fit.provenance,
        "model_curve",
        sigma="standard deviation of the fitted model from the parameter covariance",
    )
    model = Curve(
        fit.q_nm,
        fit.model,
        fit.model_sigma(fit.q_nm, include_background=True),
        unit=curve.unit,
        name=f"{name}_model",
        provenance=prov,
    )
    fig = plot_form_factor_fit(fit, curve)
    files = [out / "formfactor.json", out / f"{name}_model.dat", out / "formfactor.png"]
    out.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in files]
    write_json(files[0], {**summary, "outputs": names})
    write_dat(model, files[1])
    save(fig, files[2])
    return names


def _sq(args: argparse.Namespace) -> int:
    from ..formfactor import effective_structure_factor
    from ..provenance import extend

    sample = _read(args.sample, args.q_unit)
    dilute = _read(args.dilute, args.q_unit)
    divisor = _fit(dilute, args) if args.model else dilute
    sf = effective_structure_factor(
        sample,
        divisor,
        concentration_ratio=args.concentration_ratio,
        s_one_range_nm=tuple(args.s_one_range) if args.s_one_range else None,
    )
    step = sf.provenance["steps"][-1]
    summary = {
        "concentration_ratio": sf.concentration_ratio,
        "concentration_ratio_err": sf.concentration_ratio_err,
        "concentration_ratio_fitted": sf.concentration_ratio_fitted,
        "concentration_ratio_method": step["concentration_ratio_method"],
        "n_points": int(sf.q_nm.size),
        "n_flagged": int(sf.flagged.sum()),
        "n_outside_overlap": step["n_dropped_outside_overlap"],
        "dilute_model": bool(args.model),
        "sigma_method": sf.sigma_method,
        "sigma_sources": step["sigma_sources"],
        "output": None,
    }
    if args.model:
        summary["form_factor"] = divisor.to_json_dict()
    curve = sf.as_curve()
    curve = replace(
        curve,
        provenance=extend(curve.provenance, "sq_output", n_flagged_excluded=int(sf.flagged.sum())),
    )
    if args.output:
        from ..io.curves import write_dat, write_nxcansas

        out = Path(args.output)
        if out.suffix.lower() in (".h5", ".hdf5", ".nxs"):
            write_nxcansas(curve, out, title="effective structure factor")
        else:
            write_dat(curve, out)
        summary["output"] = str(out)
    else:
        # Nothing saved: the result goes to stdout, and the user is told so.
        summary["note"] = "no -o FILE: S_eff not saved to a file, printed here"
        summary["s_eff"] = {
            "q_nm": curve.q_nm,
            "s": curve.intensity,
            "sigma": curve.sigma,
        }
    if args.json:
        print_json(summary)
        return 0
    lines = [
        f"S_eff: {summary['n_points']} points, {summary['n_flagged']} flagged (left out), "
        f"{summary['n_outside_overlap']} outside the dilute q range",
        f"concentration ratio {format_value(sf.concentration_ratio, sf.concentration_ratio_err)}: "
        f"{summary['concentration_ratio_method']}",
        f"sigma: {sf.sigma_method}",
    ]
    if args.output:
        print("\n".join([*lines, f"wrote {args.output}"]))
        return 0
    # A table saxsred reads back: the summary as comment lines, then q, S_eff, sigma.
    lines.append(summary["note"] + " (redirect to a file, or give -o FILE)")
    print("\n".join(f"# {line}" for line in lines))
    print("# x_unit: q_nm^-1")
    print("# columns: q_nm^-1 S_eff sigma")
    for q, v, e in zip(curve.q_nm, curve.intensity, curve.sigma, strict=True):
        print(f"{q:.8e} {v:.8e} {e:.8e}")
    return 0
