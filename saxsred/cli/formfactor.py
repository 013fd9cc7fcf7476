"""``saxsred formfactor`` (fit a dilute-suspension curve) and ``saxsred sq`` (S_eff)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "formfactor",
        help="fit the form factor of a dilute suspension (cube, sphere or prism)",
        description="Fit I = scale <V^2 P(q)>/<V^2> + background to a solvent-subtracted "
        "dilute-suspension curve (3-column text or NXcanSAS): size, polydispersity, scale, "
        "background, with errors and correlations. Start values are found automatically.",
    )
    p.add_argument(
        "dilute", metavar="DILUTE", help="dilute-suspension curve (.dat/.txt or NXcanSAS .h5)"
    )
    p.add_argument(
        "--shape",
        choices=["cube", "sphere", "prism"],
        default="cube",
        help="particle shape (default cube; sphere: the size is the diameter)",
    )
    p.add_argument(
        "--aspect",
        nargs=2,
        type=float,
        metavar=("B2A", "C2A"),
        default=(1.0, 1.0),
        help="prism edge ratios b/a and c/a (held fixed; default 1 1)",
    )
    p.add_argument("--qmin", type=float, help="lowest q of the fit (nm^-1)")
    p.add_argument("--qmax", type=float, help="highest q of the fit (nm^-1)")
    p.add_argument(
        "--distribution",
        choices=["gaussian", "schulz"],
        default="gaussian",
        help="size distribution (default gaussian)",
    )
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
        "too little dilute signal are flagged and left out of the output.",
    )
    s.add_argument("sample", metavar="SAMPLE", help="supraparticle curve")
    s.add_argument("dilute", metavar="DILUTE", help="dilute-suspension curve")
    s.add_argument(
        "--model", action="store_true", help="divide by the cube form-factor fit of DILUTE"
    )
    s.add_argument(
        "--shape", choices=["cube", "sphere", "prism"], default="cube", help="shape for --model"
    )
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


def _formfactor(args: argparse.Namespace) -> int:
    from ..formfactor import fit_form_factor
    from ..io.atomic import write_text_atomic
    from ..io.curves import read_curve, write_dat

    curve = read_curve(args.dilute)
    fit = fit_form_factor(
        curve,
        shape=args.shape,
        qmin=args.qmin,
        qmax=args.qmax,
        distribution=args.distribution,
        smearing=args.smearing,
        aspect=tuple(args.aspect) if args.shape == "prism" else None,
    )
    summary = fit.to_json_dict()
    summary["input"] = Path(args.dilute).name
    if args.output:
        from ..curve import Curve
        from ..plots.formfactor import plot_form_factor_fit

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        name = curve.name or "dilute"
        model = Curve(
            fit.q_nm,
            fit.model,
            fit.model * 0.0,
            unit=curve.unit,
            name=f"{name}_model",
            provenance=fit.provenance,
        )
        files = [out / "formfactor.json", out / f"{name}_model.dat", out / "formfactor.png"]
        summary["outputs"] = [f.name for f in files]
        write_text_atomic(files[0], json.dumps(summary, indent=1, sort_keys=True) + "\n")
        write_dat(model, files[1])
        _save(plot_form_factor_fit(fit, curve), files[2])
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(fit.report)
        if args.output:
            print(f"wrote {', '.join(str(Path(args.output) / f) for f in summary['outputs'])}")
    return 0


def _sq(args: argparse.Namespace) -> int:
    from ..formfactor import effective_structure_factor, fit_form_factor
    from ..io.curves import read_curve, write_dat, write_nxcansas
    from ..provenance import extend

    sample = read_curve(args.sample)
    dilute = read_curve(args.dilute)
    divisor = (
        fit_form_factor(dilute, shape=args.shape, qmin=args.qmin, qmax=args.qmax)
        if args.model
        else dilute
    )
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
    }
    if args.model:
        summary["form_factor"] = divisor.to_json_dict()
    if args.output:
        out = Path(args.output)
        curve = sf.as_curve()
        curve = replace(
            curve,
            provenance=extend(
                curve.provenance, "sq_output", n_flagged_excluded=int(sf.flagged.sum())
            ),
        )
        if out.suffix.lower() in (".h5", ".hdf5", ".nxs"):
            write_nxcansas(curve, out, title="effective structure factor")
        else:
            write_dat(curve, out)
        summary["output"] = str(out)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(
            f"S_eff: {summary['n_points']} points, {summary['n_flagged']} flagged (left out), "
            f"{summary['n_outside_overlap']} outside the dilute q range"
        )
        print(
            f"concentration ratio {sf.concentration_ratio:.6g} +/- {sf.concentration_ratio_err:.2g}: "
            f"{summary['concentration_ratio_method']}"
        )
        if args.output:
            print(f"wrote {args.output}")
    return 0


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
