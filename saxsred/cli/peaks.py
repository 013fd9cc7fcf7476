"""``saxsred peaks`` (Bragg peaks: find, fit, index, size) and ``saxsred chi`` (azimuthal traces).

``saxsred peaks SAMPLE [--dilute DILUTE | --sq] ...``: SAMPLE is I(q) of the supraparticle
suspension. With ``--dilute`` it is divided by the dilute curve (the form-factor stage's
effective structure factor); with ``--sq`` it already is S_eff(q); with neither the
peaks are fitted on I(q) over a smooth baseline.

``saxsred chi TRACE``: a 2/3-column text file (chi in degrees, I[, sigma]), e.g. a chi
profile from ``reduce``; the peaks are fitted with Gaussians and the mean FWHM +/- spread
(degrees) is reported.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "peaks",
        help="find, fit, index and size the Bragg peaks of a supraparticle curve",
        description="Bragg peaks of S_eff(q) or I(q): free and lattice-tied fits, indexing against "
        "SC/BCC/FCC/HCP/hex2d/lamellar with ranked alternatives, lattice parameter with statistical "
        "and calibration errors, coherence length (K=1 and FWHM unless told otherwise).",
    )
    p.add_argument(
        "sample",
        metavar="SAMPLE",
        help="curve file (.dat/.h5 NXcanSAS or 3-column text, q in nm^-1)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--dilute", metavar="DILUTE", help="dilute (form-factor) curve: fit S_eff = sample / dilute"
    )
    g.add_argument("--sq", action="store_true", help="SAMPLE already is S_eff(q)")
    p.add_argument(
        "--concentration-ratio",
        type=float,
        help="c_SP / c_dilute for --dilute (default: from the curves)",
    )
    p.add_argument(
        "--lattice",
        default="auto",
        help="auto, or one of SC BCC FCC HCP hex2d lamellar A15 diamond Pn-3m Ia-3d (or a space group: Im-3m, P6_3/mmc, ...)",
    )
    p.add_argument(
        "--q-unit",
        metavar="UNIT",
        help="abscissa unit of SAMPLE/DILUTE/calibrant when the header does not say it (nm^-1 or A^-1); default from the header",
    )
    p.add_argument(
        "--edge",
        type=float,
        metavar="NM",
        help="cube edge (nm): oriented-cube intensities, plausibility, packing",
    )
    p.add_argument(
        "--polydispersity",
        type=float,
        default=0.0,
        help="relative edge spread for predicted intensities",
    )
    r = p.add_mutually_exclusive_group()
    r.add_argument(
        "--resolution-fwhm", type=float, metavar="DQ", help="instrumental FWHM in nm^-1 (Gaussian)"
    )
    r.add_argument(
        "--calibrant",
        metavar="AGBH",
        help="silver-behenate curve: instrumental FWHM from its 001 peak",
    )
    r.add_argument(
        "--geometry",
        metavar="PONI",
        help="PONI from 'saxsred calibrate': its instrument FWHM (the default "
        "is the width the sample's own geometry carries, if it was reduced with a calibrated PONI)",
    )
    p.add_argument(
        "--calib-rel-err",
        type=float,
        default=0.005,
        help="relative distance-calibration error (default 0.005)",
    )
    p.add_argument(
        "--K", type=float, default=1.0, help="Scherrer constant (default 1, the paper's)"
    )
    p.add_argument(
        "--width",
        default="fwhm",
        choices=["fwhm", "integral_breadth"],
        help="width convention (default fwhm)",
    )
    p.add_argument(
        "--threshold", type=float, default=5.0, help="peak significance in sigma (default 5)"
    )
    p.add_argument("--qmin", type=float, help="lowest q used (nm^-1)")
    p.add_argument("--qmax", type=float, help="highest q used (nm^-1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "-o", "--output", metavar="DIR", help="write peaks.json, peaks.png and peaks.tsv to DIR"
    )
    p.set_defaults(func=_peaks)

    c = sub.add_parser(
        "chi",
        help="fit the peaks of an azimuthal (chi) trace with Gaussians: mean FWHM +/- spread",
        description="Multi-Gaussian fit of a chi profile (columns chi in degrees, I, sigma); "
        "reports each peak and the mean FWHM +/- spread, the orientational-order measure.",
    )
    c.add_argument("trace", metavar="TRACE", help="text file: chi (deg), I[, sigma]")
    c.add_argument("--n-peaks", type=int, help="fit exactly the N most significant peaks")
    c.add_argument(
        "--threshold", type=float, default=5.0, help="peak significance in sigma (default 5)"
    )
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("-o", "--output", metavar="DIR", help="write chi.json and chi.png to DIR")
    c.set_defaults(func=_chi)


def _sample_curve(args: argparse.Namespace):
    from ..io.curves import read_curve

    sample = read_curve(args.sample, q_unit=getattr(args, "q_unit", None))
    if args.dilute:
        try:
            from ..formfactor import effective_structure_factor
        except ImportError:
            raise InputError(
                "--dilute needs the form-factor stage (saxsred.formfactor), not installed; pass S_eff with --sq"
            ) from None
        dilute = read_curve(args.dilute, q_unit=getattr(args, "q_unit", None))
        sf = effective_structure_factor(
            sample, dilute, concentration_ratio=args.concentration_ratio
        )
        return sf.as_curve(), "sq"
    return sample, ("sq" if args.sq else "iq")


def _instrument(args: argparse.Namespace) -> float:
    if args.calibrant:
        from ..io.curves import read_curve
        from ..peaks import instrument_fwhm_from_calibrant

        return instrument_fwhm_from_calibrant(
            read_curve(args.calibrant, q_unit=getattr(args, "q_unit", None))
        )
    if args.resolution_fwhm is not None:
        if not (args.resolution_fwhm >= 0 and math.isfinite(args.resolution_fwhm)):
            raise ParameterError(f"--resolution-fwhm {args.resolution_fwhm}: must be >= 0 (nm^-1)")
        return float(args.resolution_fwhm)
    if getattr(args, "geometry", None):
        from ..geometry import load_poni

        width = load_poni(args.geometry, accept_implausible=True).instrument_fwhm_inv_nm
        if width is None:
            raise ParameterError(
                f"{args.geometry}: no instrument width in it; calibrate it with 'saxsred calibrate'"
            )
        args.instrument_width_source = f"geometry {Path(args.geometry).name} (saxsred calibrate)"
        return float(width)
    return 0.0


def geometry_instrument_width(curve) -> float | None:
    """Instrument FWHM (nm^-1) that the curve's geometry carries (a PONI from ``saxsred calibrate``), or None."""
    geo = (curve.provenance or {}).get("geometry") or {}
    w = geo.get("instrument_fwhm_inv_nm") if isinstance(geo, dict) else None
    return float(w) if w else None


def _peaks(args: argparse.Namespace) -> int:
    from ..peaks import analyze_peaks

    if args.edge is not None and not (args.edge > 0):
        raise ParameterError(f"--edge {args.edge}: must be a positive length in nm")
    if args.lattice != "auto":
        from ..lattice import resolve

        args.lattice = resolve(args.lattice)
    curve, kind = _sample_curve(args)
    inst = _instrument(args)
    if (
        inst == 0.0
        and args.resolution_fwhm is None
        and not args.calibrant
        and not getattr(args, "geometry", None)
    ):
        width = geometry_instrument_width(curve)
        if width:  # the default: the resolution measured on the calibrant, carried by the geometry
            inst = width
            args.instrument_width_source = (
                f"geometry {curve.provenance['geometry'].get('source', '')} (saxsred calibrate)"
            )
    res = analyze_peaks(
        curve,
        lattice=args.lattice,
        edge_nm=args.edge,
        instrument_fwhm_inv_nm=inst,
        calib_rel_err=args.calib_rel_err,
        kind=kind,
        threshold=args.threshold,
        K=args.K,
        width=args.width,
        qmin=args.qmin,
        qmax=args.qmax,
        polydispersity=args.polydispersity,
    )
    d = res.to_json_dict()
    d["input_file"] = Path(args.sample).name
    if getattr(args, "instrument_width_source", None):
        d["instrument_width_source"] = args.instrument_width_source
        d["notes"] = [
            *d["notes"],
            f"instrument FWHM {inst:.4g} nm^-1 from the {args.instrument_width_source}",
        ]
    if args.output:
        _write_outputs(res, d, Path(args.output))
    if args.json:
        print(json.dumps(d, sort_keys=False, allow_nan=False))
    else:
        print(_summary(d))
    return 0


def _summary(d: dict) -> str:
    lines = []
    if d["lattice"] is None:
        lines.append(f"no lattice: {len(d['peaks'])} peak(s) found, none indexed")
    else:
        lines.append(
            f"{d['lattice']}, a = {d['a_nm']:.3f} +/- {d['a_err_nm']:.3f} nm "
            f"(stat {d['a_err_stat_nm']:.3f}, calibration {d['a_err_calib_nm']:.3f}); "
            f"nearest neighbours {d['nn_distance_nm']:.3f} nm"
        )
        if d["coherence_length_nm"] is not None:
            err = d["coherence_length_err_nm"]
            lines.append(
                f"coherence length {d['coherence_length_nm']:.1f}"
                + (f" +/- {err:.1f}" if err is not None else "")
                + f" nm ({d['coherence_convention']}, instrument FWHM {d['instrument_fwhm_inv_nm']:.4g} nm^-1)"
            )
    for p in d["peaks"]:
        hkl = "".join(str(x) for x in p["hkl"]) if p["hkl"] else "-"
        lines.append(
            f"  q = {p['q_inv_nm']:.4f} nm^-1  FWHM = {p['fwhm_inv_nm']:.4f}  area = {p['area']:.4g}  hkl {hkl}"
        )
    for a in d["alternatives"][:4]:
        lines.append(
            f"  candidate {a['lattice']:<8s} a = {a['a_nm']:.3f} nm  score {a['score']:.3f}"
        )
    lines.extend(f"note: {n}" for n in d["notes"])
    return "\n".join(lines)


def _write_outputs(res, d: dict, out: Path) -> None:
    from ..io.atomic import atomic_path, write_text_atomic
    from ..plots.peaks import peaks_table, plot_peaks

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "peaks.json", json.dumps(d, indent=1, allow_nan=False) + "\n")
    write_text_atomic(out / "peaks.tsv", peaks_table(res))
    fig = plot_peaks(res)
    with atomic_path(out / "peaks.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)


def _read_trace(path: str):
    from ..io.curves import read_chi

    prof = read_chi(path)
    sig = prof.sigma if np.any(prof.sigma > 0) else None
    return prof.chi_deg, prof.intensity, sig


def _chi(args: argparse.Namespace) -> int:
    from ..peaks import clean_json, fit_azimuthal_peaks

    chi, i, s = _read_trace(args.trace)
    fit = fit_azimuthal_peaks(chi, i, s, n_peaks=args.n_peaks, threshold=args.threshold)
    d = clean_json(
        {
            "input_file": Path(args.trace).name,
            "verdict": fit.verdict,
            "flat_chi2_red": fit.flat_chi2_red,
            "n_peaks": fit.n_peaks,
            "mean_fwhm_deg": fit.mean_fwhm_deg,
            "spread_fwhm_deg": fit.spread_fwhm_deg,
            "chi2_red": fit.chi2_red,
            "peaks": [
                {"chi_deg": c, "fwhm_deg": w, "fwhm_err_deg": e, "amplitude": a}
                for c, w, e, a in zip(
                    fit.centers_deg, fit.fwhm_deg, fit.fwhm_err_deg, fit.amplitudes
                )
            ],
        }
    )
    if args.output:
        from ..io.atomic import atomic_path, write_text_atomic
        from ..plots.peaks import plot_azimuthal

        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "chi.json", json.dumps(d, indent=1, allow_nan=False) + "\n")
        fig = plot_azimuthal(fit)
        with atomic_path(out / "chi.png") as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    if args.json:
        print(json.dumps(d, allow_nan=False))
    else:
        if fit.verdict == "isotropic":
            print(
                f"isotropic: the trace is flat within its noise (flat model chi2_red = {fit.flat_chi2_red:.3g}); no peaks"
            )
        else:
            print(
                f"{fit.n_peaks} peaks: mean FWHM {fit.mean_fwhm_deg:.2f} +/- {fit.spread_fwhm_deg:.2f} deg"
            )
    return 0
