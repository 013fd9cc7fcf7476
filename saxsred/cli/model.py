"""``saxsred model``: comparison structures.

``saxsred model build``    a supraparticle of cubes on a lattice block -> GSD (HOOMD schema)
``saxsred model scatter``  I(q), S_eff(q) or S(q) of a GSD configuration -> 3-column .dat
``saxsred model fit``      fit lattice spacing, domain size, disorder, vacancies to a measured S_eff
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError

#: GSD positions are in units of the cube edge (the MC's sigma = 1, so OVITO draws the
#: cubes at the right size); the edge in nm is stored in the file's parameters.
_UNIT_KEY = "length_unit_nm"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from ..structures import KINDS, METHODS

    p = sub.add_parser(
        "model",
        help="comparison structures: build model supraparticles, compute their SAXS, fit them to data",
        description="Model supraparticles of cubes on a lattice (vacancies, positional and rotational "
        "disorder), their scattering (Debye histogram, exact oriented-cube powder average, decoupling) "
        "and the fit of a structure to a measured effective structure factor.",
    )
    mo = p.add_subparsers(dest="model_command", metavar="MODEL_COMMAND")

    b = mo.add_parser("build", help="build a supraparticle and write it as a GSD snapshot")
    b.add_argument(
        "--lattice", default="SC", help="cubic lattice of saxsred.lattice (SC, BCC, FCC, A15, ...)"
    )
    b.add_argument(
        "--a", type=float, default=11.4, dest="a_nm", help="lattice constant a (nm; default 11.4)"
    )
    b.add_argument(
        "--edge", type=float, default=9.5, dest="edge_nm", help="cube edge (nm; default 9.5)"
    )
    b.add_argument(
        "--cells",
        type=int,
        nargs=3,
        default=(12, 12, 12),
        metavar=("NX", "NY", "NZ"),
        help="conventional cells (default 12 12 12)",
    )
    b.add_argument(
        "--vacancies-bulk",
        type=float,
        default=0.0,
        help="fraction of empty bulk sites (paper: 0.033)",
    )
    b.add_argument(
        "--vacancies-surface",
        type=float,
        default=0.0,
        help="fraction of empty surface sites (paper: 0.055)",
    )
    b.add_argument(
        "--disorder-pos",
        type=float,
        default=0.0,
        metavar="SIGMA_NM",
        help="Gaussian displacement per coordinate (nm)",
    )
    b.add_argument(
        "--disorder-rot-fwhm",
        type=float,
        default=0.0,
        metavar="DEG",
        help="FWHM of the rotation about each axis (degrees; paper <= 9.6)",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the random stream (default 0)")
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument(
        "--figure",
        metavar="FILE.png",
        help="also draw the supraparticle (3-D scatter and middle slice)",
    )
    b.add_argument("-o", "--output", required=True, metavar="SP.gsd", help="GSD file to write")
    b.set_defaults(func=_build)

    s = mo.add_parser(
        "scatter", help="scattering curve of a GSD configuration (model or MC snapshot)"
    )
    s.add_argument("snapshot", metavar="SP.gsd")
    s.add_argument("--qmin", type=float, default=0.05, help="lowest q (nm^-1; default 0.05)")
    s.add_argument("--qmax", type=float, default=2.0, help="highest q (nm^-1; default 2.0)")
    s.add_argument("--npt", type=int, default=500, help="q points (default 500)")
    s.add_argument(
        "--kind",
        choices=KINDS,
        default="intensity",
        help="intensity: I(q) with oriented cubes (default); effective: I/(N<P>); structure: S(q) of the centres",
    )
    s.add_argument(
        "--method",
        choices=METHODS,
        default="exact",
        help="exact oriented-cube powder average (default) or the decoupling approximation",
    )
    s.add_argument(
        "--resolution-fwhm",
        type=float,
        default=0.0,
        metavar="DQ",
        help="Gaussian resolution FWHM (nm^-1)",
    )
    s.add_argument(
        "--edge",
        type=float,
        metavar="NM",
        help="cube edge in nm for a snapshot without one (MC runs, edge sigma = 1; default 9.5)",
    )
    s.add_argument("--frame", type=int, default=-1, help="frame of the GSD file (default: last)")
    s.add_argument("--json", action="store_true", help="print one JSON summary")
    s.add_argument(
        "-o", "--output", required=True, metavar="SP.dat", help="3-column curve to write"
    )
    s.set_defaults(func=_scatter)

    f = mo.add_parser("fit", help="fit a model supraparticle to a measured S_eff (sample / dilute)")
    f.add_argument("sample", metavar="SAMPLE", help="supraparticle curve (or S_eff with --sq)")
    f.add_argument(
        "dilute",
        metavar="DILUTE",
        help="dilute-suspension curve (its form-factor fit gives the edge)",
    )
    f.add_argument(
        "--sq", action="store_true", help="SAMPLE is already S_eff; DILUTE only gives the edge"
    )
    f.add_argument("--qmin", type=float, help="lowest q of the fit (nm^-1; default 0.35)")
    f.add_argument("--qmax", type=float, help="highest q of the fit (nm^-1)")
    f.add_argument(
        "--resolution-fwhm",
        type=float,
        default=0.0,
        metavar="DQ",
        help="Gaussian instrument FWHM (nm^-1), held fixed",
    )
    f.add_argument(
        "--vacancies-surface",
        type=float,
        help="fixed surface vacancy fraction (default: same as the fitted bulk one)",
    )
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write structure_fit.json, structure_fit.dat and figures to DIR",
    )
    f.set_defaults(func=_fit)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _state_of(sp, box_factor: float = 2.5):
    """The supraparticle as an MC state in units of the edge, in a box > 2x its size."""
    from ..mc.engine import MCState

    e = sp.edge_nm
    pos = (sp.positions_nm - sp.positions_nm.mean(axis=0)) / e
    span = float(np.max(np.ptp(pos, axis=0))) + math.sqrt(3.0)
    box = np.full(3, box_factor * span)
    kw = {}
    if sp.lattice == "SC" and sp.sites_nm is not None:
        # the MC's lattice description (SC only): lets `saxsred mc figure` draw it
        kw = dict(
            n_cells=tuple(sp.cells),
            spacing=sp.a_nm / e,
            sites=(sp.sites_nm - sp.positions_nm.mean(axis=0)) / e,
        )
    return MCState(
        box=box,
        positions=pos,
        orientations=sp.orientations.copy(),
        provenance={"model": "supraparticle"},
        **kw,
    )


def _build(args: argparse.Namespace) -> int:
    from ..cli.output import print_json
    from ..mc.snapshot import write_snapshot
    from ..provenance import software_versions
    from ..structures import build_supraparticle

    sp = build_supraparticle(
        args.lattice, args.a_nm, args.edge_nm, args.cells, args.vacancies_bulk, args.vacancies_surface,
        args.disorder_pos, args.disorder_rot_fwhm, np.random.default_rng(args.seed),
    )  # fmt: skip
    params = {
        **sp.provenance,
        "seed": args.seed,
        _UNIT_KEY: sp.edge_nm,
        "software": software_versions(),
    }
    write_snapshot(args.output, _state_of(sp), params)
    if args.figure:
        _draw_structure(sp, args.figure)
    summary = {"output": str(args.output), **sp.provenance, "seed": args.seed}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {args.output}: {sp.n} cubes of {sp.edge_nm:g} nm on {args.lattice} a = {args.a_nm:g} nm, "
              f"{sp.provenance['sites'] - sp.n} of {sp.provenance['sites']} sites empty")  # fmt: skip
    return 0


def _draw_structure(sp, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from ..plots.frames import save
    from ..plots.structures import plot_supraparticle

    save(plot_supraparticle(sp), path)


def read_supraparticle(path: str, frame: int = -1, edge_nm: float | None = None):
    """A GSD file (``model build`` or ``mc run``) as a Supraparticle in nm, and a note on the unit."""
    from ..mc.snapshot import read_trajectory
    from ..structures import from_configuration

    traj = read_trajectory(path)
    try:
        st = traj.states[frame]
    except IndexError:
        raise InputError(
            f"{path} has {len(traj.states)} frames; --frame {frame} does not exist"
        ) from None
    unit = traj.params.get(_UNIT_KEY)
    note = None
    if edge_nm is not None:
        unit = float(edge_nm)
    elif unit is None:
        unit = 9.5
        note = f"{Path(path).name} is in units of the cube edge with no edge in nm: took 9.5 nm (give --edge)"
    if not (unit > 0):
        raise ParameterError(f"--edge {unit!r}: must be positive")
    sp = from_configuration(
        st.positions * unit, st.orientations, unit, {"from": Path(path).name, "frame": frame}
    )
    if traj.params.get("model") == "supraparticle":
        from dataclasses import replace

        sp = replace(sp, lattice=traj.params.get("lattice"), a_nm=traj.params.get("a_nm"),
                     cells=tuple(traj.params.get("cells", ())) or None,
                     provenance={**traj.params, "from": Path(path).name})  # fmt: skip
        if st.sites is not None:
            sites = np.asarray(st.sites) * unit
            sp = replace(sp, sites_nm=sites - st.positions.mean(axis=0) * unit)
    return sp, note


def _scatter(args: argparse.Namespace) -> int:
    import sys

    from ..cli.output import print_json
    from ..io.curves import write_dat
    from ..provenance import input_record
    from ..structures import scatter

    if args.npt < 2 or not (0 <= args.qmin < args.qmax):
        raise ParameterError(
            f"q grid --qmin {args.qmin} --qmax {args.qmax} --npt {args.npt}: need 0 <= qmin < qmax and npt >= 2"
        )
    sp, note = read_supraparticle(args.snapshot, args.frame, args.edge)
    if note:
        print(f"saxsred model scatter: note: {note}", file=sys.stderr)
    sp = type(sp)(
        **{**sp.__dict__, "provenance": {**sp.provenance, "inputs": [input_record(args.snapshot)]}}
    )
    q = np.linspace(args.qmin, args.qmax, args.npt)
    cv = scatter(
        sp,
        q,
        kind=args.kind,
        method=args.method,
        resolution_fwhm_nm=args.resolution_fwhm,
        name=Path(args.output).stem,
    )
    write_dat(cv, args.output)
    summary = {"output": str(args.output), "kind": args.kind, "method": args.method, "cubes": sp.n, "edge_nm": sp.edge_nm,
               "npt": args.npt, "qmin_inv_nm": args.qmin, "qmax_inv_nm": args.qmax}  # fmt: skip
    if args.json:
        print_json(summary)
    else:
        print(
            f"wrote {args.output}: {args.kind} ({args.method}) of {sp.n} cubes, {args.npt} points"
        )
    return 0


def _fit(args: argparse.Namespace) -> int:
    from ..cli.output import format_value, print_json
    from ..formfactor import effective_structure_factor, fit_form_factor
    from ..io.curves import read_curve
    from ..provenance import input_record
    from ..structures import fit_structure

    sample = read_curve(args.sample)
    dilute = read_curve(args.dilute)
    ff = fit_form_factor(dilute, shape="cube")
    if args.sq:
        sq = sample
    else:
        sq = effective_structure_factor(sample, dilute).as_curve()
    from dataclasses import replace

    sq = replace(
        sq,
        provenance={
            **sq.provenance,
            "inputs": [input_record(args.sample), input_record(args.dilute)],
        },
    )
    qmin = args.qmin if args.qmin is not None else 0.35
    fit = fit_structure(sq, ff.edge_nm, resolution_fwhm_nm=args.resolution_fwhm, qmin=qmin, qmax=args.qmax,
                        vacancies_surface=args.vacancies_surface)  # fmt: skip
    out = fit.to_json_dict()
    out["edge_err_nm"] = ff.edge_err_nm
    out["inputs"] = [Path(args.sample).name, Path(args.dilute).name]
    if args.output:
        _write_fit(fit, Path(args.output), out)
    if args.json:
        print_json(out)
        return 0
    v, e = fit.values, fit.errors
    print(
        f"{Path(args.sample).name}: SC block of aligned {format_value(ff.edge_nm, ff.edge_err_nm, 'nm')} cubes, chi2_red = {fit.reduced_chi2:.3g}"
    )
    print(f"  a            {format_value(v['a_nm'], e['a_nm'], 'nm')}")
    print(
        f"  domain       {format_value(v['cells'], e['cells'], 'cells')}  (L = {format_value(out['domain_size_nm'], out['domain_size_err_nm'], 'nm')})"
    )
    print(
        f"  disorder     {format_value(v['disorder_pos_nm'], e['disorder_pos_nm'], 'nm')} per coordinate"
    )
    print(f"  vacancies    {format_value(v['vacancies'], e['vacancies'])}")
    print(f"  constrained by the data: {', '.join(fit.constrained) or 'none'}")
    for k, why in fit.unconstrained.items():
        print(f"  not constrained: {k} ({why})")
    return 0


def _write_fit(fit, out: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from ..curve import Curve
    from ..io.curves import write_dat
    from ..io.jsonfile import write_json
    from ..plots.frames import save
    from ..plots.structures import plot_structure_fit
    from ..structures import build_supraparticle

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "structure_fit.json", summary)
    model = Curve(
        fit.q_nm,
        fit.model,
        np.zeros_like(fit.model) + 1e-12,
        unit="arb",
        name="structure_fit_model",
        provenance=fit.provenance,
    )
    write_dat(model, out / "structure_fit.dat")
    save(plot_structure_fit(fit), out / "structure_fit.png")
    v = fit.values
    n = max(1, int(round(v["cells"])))
    vs = fit.provenance.get("steps", [{}])[-1].get("vacancies_surface")
    best = build_supraparticle("SC", v["a_nm"], fit.edge_nm, (n, n, n), v["vacancies"], v["vacancies"] if vs is None else vs,
                               v["disorder_pos_nm"], 0.0, np.random.default_rng(0))  # fmt: skip
    _draw_structure(best, out / "structure_best.png")
