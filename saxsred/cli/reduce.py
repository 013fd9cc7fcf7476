"""``saxsred reduce``, ``saxsred info`` and ``saxsred demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .calibrate import add_geometry_override_arguments, geometry_with_overrides


class StageChoices:
    """An option's choices, read from the stage module on first use (``saxsred --help`` and
    the other commands do not pay for importing the reduction stack)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def _values(self) -> tuple:
        import importlib

        return tuple(getattr(importlib.import_module(self.module), self.name))

    def __contains__(self, item: object) -> bool:
        return item in self._values()

    def __iter__(self):
        return iter(self._values())

    def __len__(self) -> int:
        return len(self._values())


MONITORS = StageChoices("saxsred.reduce.corrections", "MONITORS")
ERROR_MODELS = StageChoices("saxsred.reduce.corrections", "ERROR_MODELS")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reduce",
        help="reduce frames to I(q) (NXcanSAS .h5 and 3-column .dat per frame)",
        description="Integrate frames to I(q) with dark, flat, solid-angle, polarisation, "
        "monitor/transmission/thickness normalisation and Poisson errors; optionally "
        "average a series (outlier frames rejected), subtract a background and scale to cm^-1.",
    )
    p.add_argument(
        "frames", nargs="+", metavar="FRAME", help="frame files (EDF, CBF, TIFF, HDF5, ...)"
    )
    p.add_argument(
        "--poni",
        help="geometry: pyFAI PONI file, EDNA XML, or a frame whose ESRF header has it (default: each frame's own header)",
    )
    p.add_argument("--mask", help="mask file (EDF, TIFF, NPY, pyFAI .mask); non-zero = masked")
    add_geometry_override_arguments(p)
    p.add_argument("--dark", help="dark frame (counts, same exposure)")
    p.add_argument("--flat", help="flat-field frame (relative efficiency)")
    p.add_argument(
        "--background",
        nargs="+",
        default=[],
        metavar="B",
        help="background frames (solvent/capillary), subtracted",
    )
    p.add_argument(
        "--background-transmission",
        type=float,
        help="transmission of the background (else from its header)",
    )
    p.add_argument(
        "--transmission", type=float, help="sample transmission (else from the header monitors)"
    )
    p.add_argument(
        "--empty-beam-ratio",
        type=float,
        metavar="R",
        help="I1/I0 measured without sample: T = (I1/I0)/R when normalising by I0 or exposure",
    )
    p.add_argument(
        "--thickness",
        type=float,
        metavar="MM",
        help="sample thickness in mm (else header SampleThickness)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scale", type=float, metavar="K", help="absolute scale factor")
    g.add_argument(
        "--water", nargs="+", metavar="W", help="water frames: scale to 0.01632 cm^-1 (20 C)"
    )
    p.add_argument(
        "--water-empty",
        nargs="+",
        default=[],
        metavar="E",
        help="empty-capillary frames for the water",
    )
    p.add_argument(
        "--average",
        action="store_true",
        help="average all frames into one curve (outliers rejected)",
    )
    p.add_argument(
        "--alpha",
        type=float,
        default=1e-3,
        help="p-value below which a frame is an outlier (default 1e-3)",
    )
    p.add_argument("--npt", type=int, default=1000, help="number of q bins (default 1000)")
    p.add_argument(
        "--frames",
        dest="frame_selection",
        metavar="SEL",
        help="frames of multi-frame files to reduce, e.g. 0,2,5-9 (default all)",
    )
    p.add_argument("--monitor", default="auto", choices=MONITORS)
    p.add_argument(
        "--polarization",
        type=polarization_arg,
        default=0.99,
        metavar="P|off",
        help="polarisation factor -1..1 (default 0.99); 'off' (or none) for no correction "
        "(0 is pyFAI's unpolarised-beam correction, not off)",
    )
    p.add_argument(
        "--unit",
        default="q_nm^-1",
        choices=["q_nm^-1", "q_A^-1", "2th_deg", "2th_rad", "r_mm"],
        help="radial unit (pyFAI's): the curves' abscissa, written in their headers (default q_nm^-1)",
    )
    p.add_argument(
        "--q-range",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help="radial range of the bins, in --unit (default: the whole frame)",
    )
    p.add_argument(
        "--error-model",
        default="poisson",
        choices=ERROR_MODELS,
        help="sigma from Poisson counts (default), the azimuthal scatter in each bin, or none",
    )
    p.add_argument(
        "--mask-below", type=float, metavar="COUNTS", help="mask pixels with raw counts below this"
    )
    p.add_argument(
        "--mask-above", type=float, metavar="COUNTS", help="mask pixels with raw counts above this"
    )
    p.add_argument(
        "--beamstop-radius",
        type=float,
        metavar="PX",
        help="mask a disk of PX pixels around the direct beam",
    )
    p.add_argument(
        "--beamstop",
        choices=["auto"],
        help="auto: mask the beamstop and its arm, found as the dark "
        "region around the direct beam (stated in provenance)",
    )
    p.add_argument(
        "--accept-implausible",
        action="store_true",
        help="accept a geometry outside the plausible ranges (distance 1 mm-100 m, wavelength 0.001-2 nm)",
    )
    p.add_argument(
        "--no-solid-angle", action="store_true", help="do not correct for the pixel solid angle"
    )
    p.add_argument("--hot-pixels", action="store_true", help="also mask isolated hot pixels")
    p.add_argument(
        "--chi",
        nargs=2,
        type=float,
        metavar=("QMIN", "QMAX"),
        help="also write the azimuthal profile I(chi) over this q band (nm^-1) as DIR/<stem>_chi.dat",
    )
    p.add_argument(
        "--npt-chi", type=int, default=360, help="chi bins of --chi profiles (default 360)"
    )
    p.add_argument(
        "--plot",
        action="store_true",
        help="also write figures: the first frame with its mask (<name>_frame.png) and the curves (curves.png)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="reduce in parallel on N local processes: this one and N-1 dask workers, which "
        "start in the background while this one works",
    )
    p.add_argument("--scheduler", help="address of a running dask scheduler")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=_reduce)

    p = sub.add_parser(
        "info", help="show a frame's header, metadata and geometry as saxsred understands them"
    )
    p.add_argument("frame", metavar="FRAME")
    p.add_argument(
        "--poni",
        help="geometry: PONI file, EDNA XML or a frame with an ESRF header (default: the frame's own header)",
    )
    add_geometry_override_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info)

    p = sub.add_parser("demo", help="reduce and analyse the embedded sample data end to end")
    p.add_argument(
        "-o",
        "--output",
        default="saxsred-demo",
        metavar="DIR",
        help="output folder (default ./saxsred-demo)",
    )
    p.add_argument(
        "--data",
        help="sample-data folder (default: the package's sample_data, regenerated if absent)",
    )
    p.set_defaults(func=_demo)


#: ``reduce``/``run`` argument -> Corrections option (saxsred.reduce.corrections_from_mapping).
ARG_OPTIONS = {
    "dark": "dark",
    "flat": "flat",
    "mask": "mask",
    "polarization": "polarization_factor",
    "monitor": "monitor",
    "transmission": "transmission",
    "empty_beam_ratio": "empty_beam_ratio",
    "thickness": "thickness_mm",
    "scale": "scale",
    "hot_pixels": "hot_pixels",
    "npt": "npt",
    "unit": "unit",
    "q_range": "q_range_nm",
    "error_model": "error_model",
    "mask_below": "mask_below",
    "mask_above": "mask_above",
    "beamstop_radius": "beamstop_radius_px",
}


def correction_options(args: argparse.Namespace) -> dict:
    """The correction options present in ``args``, by their Corrections names (files as paths)."""
    o = {ARG_OPTIONS[k]: v for k, v in vars(args).items() if k in ARG_OPTIONS}
    if "no_solid_angle" in vars(args):
        o["solid_angle"] = not args.no_solid_angle
    if "beamstop" in vars(args):
        o["beamstop_auto"] = args.beamstop == "auto"
    if o.get("hot_pixels") is False:
        o.pop("hot_pixels")
    if o.get("q_range_nm") is not None:
        o["q_range_nm"] = tuple(o["q_range_nm"])
    # None = not given (the Corrections default), except the polarisation, where None is "off"
    return {k: v for k, v in o.items() if v is not None or k == "polarization_factor"}


def corrections_from_args(args: argparse.Namespace):
    """Corrections of ``saxsred reduce`` through the one builder (defaults in one place)."""
    from ..provenance import input_record
    from ..reduce import corrections_from_mapping

    prov = {"poni_file": input_record(args.poni)} if getattr(args, "poni", None) else {}
    return corrections_from_mapping(correction_options(args), provenance=prov)


def polarization_arg(text: str) -> float | None:
    """``--polarization``: a factor in [-1, 1], or off/none/false for no correction."""
    if text.strip().lower() in ("off", "none", "false", "no"):
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a factor in [-1, 1] or 'off'") from None
    if not -1.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{v}: the polarisation factor is in [-1, 1] (or 'off')")
    return v


def _reduce(args: argparse.Namespace) -> int:
    from ..reduce import ReduceJob, parse_frame_selection, reduce_files, write_curves

    corr = corrections_from_args(args)
    poni = args.poni
    if args.poni and getattr(args, "accept_implausible", False):
        from ..geometry import load_geometry

        poni = load_geometry(args.poni, accept_implausible=True)
    poni = geometry_with_overrides(
        poni, args, args.frames[0], getattr(args, "accept_implausible", False)
    )
    job = ReduceJob(
        corrections=corr,
        poni=poni,
        background=tuple(args.background),
        background_transmission=args.background_transmission,
        water=tuple(args.water or ()),
        water_empty=tuple(args.water_empty),
        average=args.average,
        alpha=args.alpha,
        frames=parse_frame_selection(args.frame_selection),
    )
    if args.workers or args.scheduler:
        if args.average or args.background or args.water or args.chi or args.plot:
            from ..errors import ParameterError

            raise ParameterError(
                "--workers/--scheduler reduce frames independently; --average, --background, --water, "
                "--chi and --plot need a recipe (saxsred run) or a serial run"
            )
        from ..pipeline import reduce_parallel

        return reduce_parallel(
            args.frames, job, args.output, workers=args.workers, scheduler=args.scheduler
        )
    if args.chi:
        from ..reduce import chi_profiles

        for path in chi_profiles(
            args.frames, job, tuple(args.chi), args.output, npt_chi=args.npt_chi
        ):
            print(f"azimuthal profile: {path}")
    if not (args.average or args.background or args.water or args.plot):
        from ..reduce import reduce_stream

        written = reduce_stream(args.frames, job, args.output)
        print(f"wrote {len(written)} file(s) to {args.output}")
        return 0
    out = reduce_files(args.frames, job)
    written = write_curves(out.curves, args.output)
    for v in out.verdicts:
        print(v.describe())
    if out.water is not None:
        print(f"water calibration: K = {out.water.factor:.6g} +/- {out.water.factor_err:.2g}")
    if args.plot:
        written += _plot(args, job, out.curves)
    print(f"wrote {len(written)} file(s) to {args.output}")
    return 0


def _plot(args: argparse.Namespace, job, curves) -> list[str]:
    """``--plot``: the first frame with its mask and q rings (``<name>_frame.png``) and the
    curves (``curves.png``)."""
    from ..io.frames import read_frame
    from ..plots.frames import plot_curves, plot_frame, save
    from ..reduce import ReducerCache, pixel_mask

    frame = read_frame(args.frames[0], job.frames[0] if job.frames else 0)
    red = ReducerCache(job.corrections, job.poni).reducer(frame)
    mask = pixel_mask(frame, red.geometry, red.corrections)
    fig = plot_frame(
        frame.data, red.geometry, mask, title=f"{frame.name}: frame, mask (pixels not integrated)"
    )
    out = Path(args.output)
    return [
        str(save(fig, out / f"{frame.name}_frame.png")),
        str(save(plot_curves(curves), out / "curves.png")),
    ]


def _info(args: argparse.Namespace) -> int:
    from ..errors import GeometryError
    from ..io.frames import count_frames, read_frame
    from ..reduce import geometry_for
    from .output import print_json

    frame = read_frame(args.frame)
    info: dict = {
        "file": args.frame,
        "frames": count_frames(args.frame),
        "shape": list(frame.data.shape),
        "dtype": str(frame.data.dtype),
        "checksum": frame.checksum,
        "metadata": frame.metadata.as_dict(),
        "header": frame.header,
    }
    try:
        geo = geometry_for(frame, geometry_with_overrides(args.poni, args, args.frame))
        info["geometry"] = geo.as_dict()
        bx, by = geo.with_shape(frame.data.shape).beam_center_px()
        info["geometry"]["beam_center_x_px"] = bx
        info["geometry"]["beam_center_y_px"] = by
        q = geo.q_map_nm(frame.data.shape)
        info["geometry"]["q_min_nm"] = float(q.min())
        info["geometry"]["q_max_nm"] = float(q.max())
    except GeometryError as exc:
        info["geometry"] = None
        info["geometry_error"] = str(exc)
    if args.json:
        print_json(info)
        return 0
    print(
        f"{args.frame}: {info['frames']} frame(s) of {frame.data.shape[0]} x {frame.data.shape[1]} ({frame.data.dtype})"
    )
    print("metadata (SI units), and where each value came from:")
    sources = info["metadata"].get("sources", {})
    for k, v in info["metadata"].items():
        if k != "sources" and v not in (None, {}, 0.0, "none", (1, 1)):
            origin = sources.get("rotations" if k.startswith("rot") else k, "")
            print(f"  {k:22s} {v}" + (f"   <- {origin}" if origin else ""))
    if info["geometry"]:
        gd = info["geometry"]
        print("geometry (pyFAI):")
        for k in (
            "dist_m",
            "poni1_m",
            "poni2_m",
            "rot1_rad",
            "rot2_rad",
            "rot3_rad",
            "pixel1_m",
            "pixel2_m",
            "wavelength_m",
        ):
            print(f"  {k:22s} {gd[k]:.6g}")
        print(
            f"  beam centre x, y (px)  {gd['beam_center_x_px']:.2f}, {gd['beam_center_y_px']:.2f}"
        )
        print(f"  q range (nm^-1)        {gd['q_min_nm']:.4g} .. {gd['q_max_nm']:.4g}")
    else:
        print(f"geometry: {info['geometry_error']}")
    print(f"header: {len(frame.header)} keys")
    for k, v in frame.header.items():
        print(f"  {k} = {v}")
    sys.stdout.flush()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    report = run_demo(args.output, data_dir=args.data, log=print)
    print(f"demo finished: {len(report['outputs'])} files in {args.output}")
    return 0
