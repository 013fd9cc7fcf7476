"""``saxsred mc``: Monte Carlo of hard cubes with a square-well attraction.

``saxsred mc run``      simulate (crystal, ``--fluid N`` or ``--from SNAPSHOT`` start) -> GSD
``saxsred mc analyze``  acceptance, pressure, energy, vacancy spread (+/- block errors)
``saxsred mc figure``   lattice slices coloured by displacement (paper Fig. 5 style)
"""

from __future__ import annotations

import argparse
import math
import sys

from ..errors import InputError, ParameterError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mc",
        help="Monte Carlo of hard cubes with a square-well attraction (vacancies, supraparticles)",
        description="NVT Monte Carlo of cubes (edge sigma = 1) with a hard core and a square well "
        "of depth beta*eps and range Delta; GSD output readable by HOOMD-blue, freud and OVITO.",
    )
    mc = p.add_subparsers(dest="mc_command", metavar="MC_COMMAND")

    r = mc.add_parser("run", help="run a simulation and write a GSD trajectory")
    start = r.add_mutually_exclusive_group()
    start.add_argument(
        "--n-cells", type=int, default=8, help="simple-cubic start with N^3 sites (default 8)"
    )
    start.add_argument(
        "--fluid", type=int, metavar="N", help="start from a random dilute fluid of N cubes"
    )
    start.add_argument(
        "--from", dest="from_", metavar="SNAPSHOT", help="start from the last frame of a GSD file"
    )
    r.add_argument(
        "--phi", type=float, default=0.80, help="packing fraction N sigma^3/V (default 0.80)"
    )
    r.add_argument(
        "--eps",
        type=float,
        default=0.0,
        help="well depth beta*epsilon (negative = attractive; default 0)",
    )
    r.add_argument(
        "--range",
        type=float,
        default=1.14,
        dest="well_range",
        help="well range Delta/sigma (default 1.14)",
    )
    r.add_argument(
        "--vacancies",
        type=int,
        default=0,
        help="empty lattice sites, chosen with the seed (default 0)",
    )
    r.add_argument(
        "--sweeps",
        type=int,
        required=True,
        help="sweeps (N trial moves each), equilibration included",
    )
    r.add_argument(
        "--equil",
        type=int,
        help="equilibration sweeps with step tuning (default: half; rounded up to a whole block)",
    )
    r.add_argument(
        "--block",
        type=int,
        help="sweeps per block (one frame and one set of block means each; default: "
        "about 100 blocks per run, a multiple of --sample-every)",
    )
    r.add_argument(
        "--sample-every",
        type=int,
        help="sweeps between pressure and vacancy samples (default 50, fewer for runs "
        "under 500 sweeps; a sample costs about 2 sweeps, about 5%% of the run)",
    )
    r.add_argument(
        "--skin", type=float, default=0.45, help="neighbour-list skin in sigma (default 0.45)"
    )
    r.add_argument(
        "--seed", type=int, required=True, help="seed of the random stream (same seed, same run)"
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "-o", "--output", required=True, metavar="RUN.gsd", help="GSD trajectory to write"
    )
    r.set_defaults(func=_run)

    a = mc.add_parser("analyze", help="summarise a run: acceptance, pressure, vacancy spread")
    a.add_argument("snapshot", metavar="RUN.gsd")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.set_defaults(func=_analyze)

    f = mc.add_parser(
        "figure", help="lattice slices coloured by displacement from the sites (Fig. 5 style)"
    )
    f.add_argument("snapshot", metavar="RUN.gsd")
    f.add_argument("--frame", type=int, default=-1, help="frame to draw (default: last)")
    f.add_argument("-o", "--output", metavar="FILE.png", help="image to write (default RUN.png)")
    f.set_defaults(func=_figure)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _run(args: argparse.Namespace) -> int:
    from ..mc import MCParams, random_fluid, run, simple_cubic_crystal
    from ..mc.snapshot import read_state, write_trajectory

    if args.sweeps <= 0:
        raise ParameterError(f"--sweeps {args.sweeps}: give a positive number of sweeps")
    if args.block is not None and args.block <= 0:
        raise ParameterError(f"--block {args.block}: give a positive number of sweeps per block")
    if args.sample_every is not None and args.sample_every <= 0:
        raise ParameterError(
            f"--sample-every {args.sample_every}: give a positive number of sweeps"
        )
    if args.from_:
        state = read_state(args.from_)
    elif args.fluid is not None:
        state = random_fluid(args.fluid, args.phi, args.seed)
    else:
        state = simple_cubic_crystal(
            args.n_cells, args.phi, vacancies=args.vacancies, rng=args.seed
        )
    params = MCParams(
        beta_eps=args.eps,
        well_range=args.well_range,
        skin=args.skin,
        block_sweeps=args.block,
        sample_every=args.sample_every,
    )
    result = run(
        state, params, args.sweeps, args.seed, equilibration=args.equil, progress=not args.quiet
    )
    if not result.frames:
        print(
            "saxsred mc run: interrupted before the first block; nothing written", file=sys.stderr
        )
        return 130
    write_trajectory(args.output, result)
    t = result.timing
    rate = t["moves"] / t["seconds"] / 1e6 if t["seconds"] > 0 else math.nan
    obs_share = (t["sample_cpu_seconds"] + t["block_cpu_seconds"]) / t["total_cpu_seconds"]
    print(f"wrote {args.output}: N={result.state.n}, phi={result.state.phi:.4f}, {result.sweeps} sweeps "
          f"({result.equilibration} equilibration) in blocks of {result.block_sweeps}, samples every "
          f"{result.sample_every}; moves {rate:.2f} M trial moves/s, observables {100 * obs_share:.0f}% of the run")  # fmt: skip
    if result.interrupted:
        print(
            f"saxsred mc run: interrupted after {result.sweeps} sweeps; wrote the completed blocks",
            file=sys.stderr,
        )
        return 130
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from ..mc.observables import summarize
    from ..mc.snapshot import read_trajectory
    from .output import format_value, print_json

    s = summarize(read_trajectory(args.snapshot))
    if args.json:
        print_json(s)
        return 0
    print(f"{s['file']}: N = {s['n_particles']}, phi = {s['phi']:.4f}, beta*eps = {s['beta_eps']}, "
          f"Delta = {s['well_range']} sigma, {s['sweeps']} sweeps ({s['production_blocks']} production blocks)")  # fmt: skip
    acc = s["acceptance"]
    print(f"  acceptance        translate {format_value(acc['translate'])}, rotate {format_value(acc['rotate'])}")  # fmt: skip
    z = format_value(s["compressibility_factor"], s["compressibility_factor_err"])
    print(f"  beta P sigma^3    {format_value(s['pressure'], s['pressure_err'])}  (Z = {z})")
    print(f"  energy / N        {format_value(s['energy_per_particle'], s['energy_per_particle_err'], 'kT')}")  # fmt: skip
    if s["vacancy_spread"] is None:
        print(f"  vacancy spread    not applicable: {s['vacancy_spread_reason']}")
    else:
        print(f"  vacancy spread    {format_value(s['vacancy_spread'], s['vacancy_spread_err'])} "
              f"(string {format_value(s['string_length'], s['string_length_err'])} sites)")  # fmt: skip
    print(
        f"  cubatic P4        {format_value(s['cubatic_order'])};  largest cluster {s['largest_cluster']};  overlaps {s['overlaps']}"
    )
    return 0


def _figure(args: argparse.Namespace) -> int:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    from ..io.atomic import atomic_path
    from ..mc.figure import lattice_slices
    from ..mc.snapshot import read_trajectory

    traj = read_trajectory(args.snapshot)
    try:
        st = traj.states[args.frame]
    except IndexError:
        raise InputError(
            f"{args.snapshot} has {len(traj.states)} frames; --frame {args.frame} does not exist"
        ) from None
    out = Path(args.output) if args.output else Path(args.snapshot).with_suffix(".png")
    title = f"beta eps = {traj.params.get('beta_eps', float('nan')):g}"
    fig = lattice_slices([st], [title])
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=150)
    print(f"wrote {out}")
    return 0
