"""``saxsred calibrate``: a PONI from a calibrant frame; geometry override options for every command.

``saxsred calibrate FRAME --calibrant AgBh|LaB6|CeO2|Si [--from-header | --poni GUESS]
[--wavelength-nm X | --energy-kev E] [--mask M] [--dioptas] -o GEOMETRY.poni [--json]``

:func:`add_geometry_override_arguments` and :func:`apply_geometry_overrides` give
``reduce``, ``info`` and ``run`` the same ``--wavelength-nm`` / ``--energy-kev`` /
``--dioptas`` options.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError, ParameterError


def add_geometry_override_arguments(parser: argparse.ArgumentParser) -> None:
    """``--wavelength-nm`` / ``--energy-kev`` (exclusive) and ``--dioptas`` on a parser."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument(
        "--wavelength-nm",
        type=float,
        metavar="X",
        help="wavelength in nm, overriding the PONI's or the header's (needed when they have none or a wrong one)",
    )
    g.add_argument(
        "--energy-kev",
        type=float,
        metavar="E",
        help="photon energy in keV (lambda = 1.23984 / E nm)",
    )
    parser.add_argument(
        "--dioptas",
        action="store_true",
        help="the PONI comes from Dioptas (geometry of the image flipped upside-down): convert it",
    )


def override_wavelength_m(args: argparse.Namespace) -> float | None:
    """The wavelength (m) the options give, or None."""
    from ..geometry import wavelength_from

    return wavelength_from(getattr(args, "wavelength_nm", None), getattr(args, "energy_kev", None))


def apply_geometry_overrides(
    geometry, args: argparse.Namespace, shape: tuple[int, int] | None = None
):
    """The geometry with ``--wavelength-nm`` / ``--energy-kev`` / ``--dioptas`` applied."""
    from ..geometry import apply_overrides

    return apply_overrides(
        geometry,
        getattr(args, "wavelength_nm", None),
        getattr(args, "energy_kev", None),
        bool(getattr(args, "dioptas", False)),
        shape,
    )


def has_geometry_overrides(args: argparse.Namespace) -> bool:
    """True when ``--wavelength-nm``, ``--energy-kev`` or ``--dioptas`` was given."""
    return (
        getattr(args, "wavelength_nm", None) is not None
        or getattr(args, "energy_kev", None) is not None
        or bool(getattr(args, "dioptas", False))
    )


def geometry_with_overrides(
    poni, args: argparse.Namespace, frame_path: str, accept_implausible: bool = False
):
    """The geometry ``reduce``/``info`` use: ``poni`` (a path or None: the frame's header) with the
    override options applied, as a :class:`~saxsred.geometry.Geometry`; ``poni`` itself if none was given.

    A PONI without a wavelength is read with the one given; without ``--poni`` the header of
    ``frame_path`` gives the geometry (the first frame's, for every frame), with its wavelength replaced.
    """
    from dataclasses import replace

    from ..geometry import from_dioptas, geometry_from_metadata, load_geometry
    from ..io.frames import read_frame

    if not has_geometry_overrides(args):
        return poni
    lam = override_wavelength_m(args)
    frame = read_frame(frame_path)
    shape = tuple(frame.data.shape)
    if poni is not None and not hasattr(poni, "dist_m"):
        geo = load_geometry(poni, shape, accept_implausible=accept_implausible, wavelength_m=lam)
    elif poni is not None:
        geo = poni
    else:
        if getattr(args, "dioptas", False):
            raise ParameterError("--dioptas converts a Dioptas PONI: give it with --poni")
        meta = frame.metadata if lam is None else replace(frame.metadata, wavelength_m=lam)
        geo = geometry_from_metadata(
            meta, shape, source=frame_path, accept_implausible=accept_implausible
        )
    if lam is not None:
        geo = replace(geo, wavelength_m=lam)
    if getattr(args, "dioptas", False):
        geo = from_dioptas(geo, shape)
    return geo


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="refine a detector geometry (PONI) from a calibrant frame",
        description="Find the calibrant's rings (pyFAI calibrants and ring extraction), search the distance and "
        "the beam centre (a header can be off by a factor of two), refine distance, PONI and tilts (wavelength "
        "fixed unless --refine-wavelength), report per-ring residuals and the instrument width of the lowest ring, "
        "and write a PONI with provenance.",
    )
    p.add_argument("frame", metavar="FRAME", help="calibrant frame (EDF, TIFF, CBF, HDF5, ...)")
    p.add_argument(
        "--calibrant",
        required=True,
        metavar="NAME",
        help="AgBh, LaB6, CeO2, Si (or any pyFAI calibrant)",
    )
    s = p.add_mutually_exclusive_group()
    s.add_argument(
        "--from-header",
        action="store_true",
        help="start from the frame's ESRF header (the default)",
    )
    s.add_argument("--poni", metavar="GUESS", help="start from this PONI (a rough guess is enough)")
    add_geometry_override_arguments(p)
    p.add_argument(
        "--mask",
        help="mask file (non-zero = masked); detector gaps and negative pixels are always masked",
    )
    p.add_argument("--refine-wavelength", action="store_true", help="refine the wavelength too")
    p.add_argument(
        "--crystallite-nm",
        type=float,
        metavar="L",
        help="calibrant crystallite size: its Scherrer width is removed from the instrument width",
    )
    p.add_argument(
        "--search-radius-px",
        type=float,
        default=24.0,
        metavar="PX",
        help="how far from the start the beam centre is searched (default 24 px)",
    )
    p.add_argument(
        "--figure", metavar="PNG", help="also draw the rings over the frame into this PNG"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "-o", "--output", required=True, metavar="GEOMETRY.poni", help="PONI file to write"
    )
    p.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from ..calibrate import calibrate_frame, poni_text
    from ..geometry import from_dioptas, load_mask, load_poni
    from ..io.atomic import write_text_atomic
    from ..io.frames import read_frame
    from .output import format_value, print_json

    if args.crystallite_nm is not None and not (args.crystallite_nm > 0):
        raise ParameterError(
            f"--crystallite-nm {args.crystallite_nm}: must be a positive size in nm"
        )
    if not (args.search_radius_px > 0):
        raise ParameterError(f"--search-radius-px {args.search_radius_px}: must be positive")
    out = Path(args.output)
    if out.is_dir():
        raise InputError(
            f"-o {out}: is a folder; give the PONI file to write, e.g. {out / 'geometry.poni'}"
        )
    lam = override_wavelength_m(args)
    frame = read_frame(args.frame)
    shape = tuple(frame.data.shape)
    guess = None
    if args.poni:
        guess = load_poni(args.poni, shape, accept_implausible=True, wavelength_m=lam)
        if args.dioptas:
            guess = from_dioptas(guess, shape)
    elif args.dioptas:
        raise ParameterError("--dioptas converts a Dioptas PONI: give it with --poni")
    mask = load_mask(args.mask, shape) if args.mask else None
    res = calibrate_frame(
        frame,
        args.calibrant,
        poni=guess,
        wavelength_m=lam,
        mask=mask,
        refine_wavelength=args.refine_wavelength,
        crystallite_nm=args.crystallite_nm,
        search_radius_px=args.search_radius_px,
    )
    write_text_atomic(out, poni_text(res))
    if args.figure:
        from ..plots.calibrate import plot_calibration
        from ..plots.frames import save

        save(plot_calibration(frame.data, res), args.figure)
    d = res.to_json_dict()
    d["output_file"] = out.name
    if args.json:
        print_json(d)
        return 0
    g = res.geometry
    e = res.errors
    bx, by = d["beam_center_x_px"], d["beam_center_y_px"]
    print(
        f"{res.calibrant}: {res.rings_used} rings, {res.control_points.shape[0]} control points, "
        f"residual {res.residual_rms_inv_nm:.3g} nm^-1 rms ({res.residual_rms_px:.2f} px)"
    )
    print(
        f"distance {format_value(g.dist_m, e.get('dist'), 'm')}; beam centre x {bx:.2f} px, y {by:.2f} px; "
        f"PONI {g.poni1_m * 1e3:.4f}, {g.poni2_m * 1e3:.4f} mm; tilts rot1 {g.rot1_rad:.5f}, rot2 {g.rot2_rad:.5f} rad; "
        f"wavelength {g.wavelength_m * 1e9:.6g} nm"
    )
    for r in res.rings:
        print(
            f"  ring {r.ring:2d}  d = {r.d_nm:.5f} nm  q = {r.q_calibrant_inv_nm:.4f} nm^-1  "
            f"residual {r.residual_inv_nm:+.2e} nm^-1 ({r.residual_inv_nm / r.q_calibrant_inv_nm:+.1e}), "
            f"{r.n_points} points"
        )
    if res.resolution is not None:
        print(
            f"instrument width {res.resolution.instrument_fwhm_inv_nm:.4g} nm^-1: {res.resolution.describe()}"
        )
    for w in res.warnings:
        print(f"warning: {w}")
    print(f"wrote {out}")
    return 0
