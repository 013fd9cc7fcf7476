"""``saxsred waxs``: pseudo-cubic indexing and Scherrer size of a WAXS curve of perovskite nanocrystals."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ParameterError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "waxs",
        help="index a perovskite WAXS curve on a pseudo-cubic cell and size the nanocrystals (Scherrer)",
        description="Peaks (lmfit pseudo-Voigts over a baseline) indexed on a pseudo-cubic cell "
        "(q = 2 pi sqrt(h^2+k^2+l^2) / a); lines of other phases listed as unexplained; nanocrystal size "
        "L = 2 pi K / FWHM per indexed peak with the instrument's Gaussian FWHM removed in quadrature.",
    )
    p.add_argument(
        "curve", metavar="CURVE", help="WAXS curve (.dat/.h5; q unit from the header or --q-unit)"
    )
    p.add_argument(
        "--q-unit", choices=["nm^-1", "A^-1"], help="abscissa unit when the file does not say it"
    )
    p.add_argument(
        "--a-range",
        nargs=2,
        type=float,
        default=(0.55, 0.70),
        metavar=("AMIN", "AMAX"),
        help="pseudo-cubic lattice constants searched, nm (default 0.55 0.70)",
    )
    p.add_argument(
        "--K",
        type=float,
        default=0.886,
        help="Scherrer constant for the FWHM (default 0.886, cube <100>)",
    )
    r = p.add_mutually_exclusive_group()
    r.add_argument(
        "--resolution-fwhm", type=float, metavar="DQ", help="instrumental FWHM in nm^-1 (Gaussian)"
    )
    r.add_argument(
        "--geometry",
        metavar="PONI",
        help="PONI from 'saxsred calibrate': its instrument width is used",
    )
    p.add_argument(
        "--edge", type=float, metavar="NM", help="SAXS cube edge (nm) to compare the size with"
    )
    p.add_argument("--qmin", type=float, help="lowest q used (nm^-1)")
    p.add_argument("--qmax", type=float, help="highest q used (nm^-1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_waxs)


def _waxs(args: argparse.Namespace) -> int:
    from ..io.curves import read_curve
    from ..peaks.waxs import analyze_waxs
    from .output import format_value, print_json

    lo, hi = args.a_range
    if not (0 < lo < hi):
        raise ParameterError(f"--a-range {lo} {hi}: give 0 < AMIN < AMAX in nm")
    unit = {"nm^-1": "q_nm^-1", "A^-1": "q_A^-1"}.get(args.q_unit) if args.q_unit else None
    curve = read_curve(args.curve, q_unit=unit) if unit else read_curve(args.curve)
    inst, source = 0.0, "none given"
    if args.resolution_fwhm is not None:
        if not (args.resolution_fwhm >= 0):
            raise ParameterError(f"--resolution-fwhm {args.resolution_fwhm}: must be >= 0 nm^-1")
        inst, source = float(args.resolution_fwhm), "--resolution-fwhm"
    elif args.geometry:
        from ..geometry import load_poni

        geo = load_poni(args.geometry, accept_implausible=True)
        if geo.instrument_fwhm_inv_nm is None:
            raise ParameterError(
                f"{args.geometry}: no instrument width in it; calibrate with 'saxsred calibrate' "
                "or give --resolution-fwhm"
            )
        inst, source = geo.instrument_fwhm_inv_nm, f"geometry {Path(args.geometry).name}"
    res = analyze_waxs(
        curve,
        a_range=(lo, hi),
        K=args.K,
        instrument_fwhm_inv_nm=inst,
        edge_nm=args.edge,
        qmin=args.qmin,
        qmax=args.qmax,
    )
    d = res.to_json_dict()
    d["input_file"] = Path(args.curve).name
    d["instrument_width_source"] = source
    if args.json:
        print_json(d)
        return 0
    print(
        f"pseudo-cubic a = {format_value(res.a_nm, res.a_err_nm, 'nm')} from {len(res.indexed)} indexed peaks"
    )
    if res.size_nm is not None:
        removed = (
            f"instrument {inst:.4g} nm^-1 ({source}) removed in quadrature"
            if inst
            else "no instrument width"
        )
        print(
            f"Scherrer size {format_value(res.size_nm, res.size_err_nm, 'nm')} (K = {res.K}, FWHM; {removed})"
        )
    for p in res.indexed:
        hkl = "".join(str(h) for h in p.hkl or [])
        size = f", L = {p.size_nm:.2f} nm" if p.size_nm else ""
        print(f"  {hkl:>4s}  q = {p.q_inv_nm:.4f} nm^-1  FWHM = {p.fwhm_inv_nm:.4f}{size}")
    for n in res.notes:
        print(f"note: {n}")
    return 0
