"""The README's main job: the embedded sample data from raw frames to the lattice.

``saxsred demo`` (or :func:`run_demo`) reduces the sample frames with the full chain
(dark, mask, solid angle, polarisation, I1 monitor, thickness, water absolute scale,
solvent subtraction, series averaging with outlier rejection), fits the dilute form
factor, divides it out, fits and indexes the Bragg peaks with the instrument resolution
measured on the silver-behenate frame, and draws every diagnostic figure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import provenance as prov_mod
from .io.jsonfile import jsonable


def sample_data_dir() -> Path | None:
    """The package's ``sample_data`` folder (source checkout or editable install), if present."""
    here = Path(__file__).resolve().parent.parent / "sample_data"
    return here if (here / "sp_001.edf").exists() else None


def calibration_dir() -> Path | None:
    here = Path(__file__).resolve().parent.parent / "calibration"
    return here if (here / "saxs_1m.poni").exists() else None


def run_demo(
    outdir: str | Path,
    data_dir: str | Path | None = None,
    log: Callable[[str], Any] = lambda s: None,
) -> dict:
    """Run the demo into ``outdir``; returns a summary dict (also written as ``summary.json``)."""
    from .geometry import load_poni
    from .io.frames import read_frame
    from .plots.frames import plot_curves, plot_frame, save
    from .reduce import (
        ReduceJob,
        corrections_from_mapping,
        iter_curves,
        pixel_mask,
        reduce_files,
        write_curves,
    )
    from .simulate import make_sample_dataset, write_sample_calibration

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(data_dir) if data_dir else sample_data_dir()
    calib = calibration_dir()
    if data is None or calib is None:
        log("sample data not found next to the package: regenerating it (deterministic)")
        data = out / "sample_data"
        calib = out / "calibration"
        make_sample_dataset(data)
        write_sample_calibration(calib)
    elif data_dir and not (Path(data_dir) / "saxs_1m.poni").exists() and calib is None:
        calib = out / "calibration"
        write_sample_calibration(calib)
    poni = str(calib / "saxs_1m.poni")
    geo = load_poni(poni)
    # the one Corrections builder, as `saxsred reduce` and recipes use it
    corr = corrections_from_mapping(
        {
            "dark": data / "dark.edf",
            "mask": calib / "saxs_mask.edf",
            "npt": 400,
            "hot_pixels": True,
        },
        provenance={"poni_file": prov_mod.input_record(poni)},
    )
    outputs: list[str] = []
    # the folder name only: an absolute path would differ between machines
    summary: dict[str, Any] = {"data": data.name}

    def f(name: str) -> str:
        return str(data / f"{name}.edf")

    log("1/5 reduce: water and empty capillary -> absolute scale")
    sp = reduce_files(
        [f("sp_001"), f("sp_002"), f("sp_003")],
        ReduceJob(
            corrections=corr,
            poni=poni,
            background=(f("solvent"),),
            water=(f("water"),),
            water_empty=(f("empty_capillary"),),
            average=True,
        ),
    )
    k = sp.water.factor
    summary["water_scale_factor"] = k
    summary["water_scale_factor_err"] = sp.water.factor_err
    for v in sp.verdicts:
        log(f"    {v.describe()}")
    summary["frames_rejected"] = [v.name for v in sp.verdicts if not v.kept]
    log(
        "2/5 reduce: dilute suspension, supraparticles (3 frames averaged), solvent subtracted, cm^-1"
    )
    dil = reduce_files(
        [f("dilute")],
        ReduceJob(
            corrections=corr,
            poni=poni,
            background=(f("solvent"),),
            water=(f("water"),),
            water_empty=(f("empty_capillary"),),
        ),
    )
    sp_curve = sp.curves[0]
    dil_curve = dil.curves[0]
    from dataclasses import replace

    sp_curve = replace(sp_curve, name="sp_average")
    dil_curve = replace(dil_curve, name="dilute")
    agbh = next(iter_curves([f("agbh")], replace(corr, npt=1200), poni))
    outputs += write_curves([sp_curve, dil_curve, agbh], str(out / "curves"))
    fr = read_frame(f("sp_001"))
    m = pixel_mask(fr, geo, corr)
    outputs.append(
        save(
            plot_frame(
                fr.data,
                geo,
                m,
                q_rings_nm=(0.551, 0.779, 1.102, 1.232),
                title="sp_001: frame, mask, q rings",
            ),
            out / "frame_sp_001.png",
        )
    )
    outputs.append(
        save(
            plot_curves([sp_curve, dil_curve], title="reduced, solvent subtracted"),
            out / "curves.png",
        )
    )

    log("3/5 form factor: fit of the dilute curve (polydisperse cubes)")
    from .formfactor import effective_structure_factor, fit_form_factor
    from .peaks import analyze_peaks, instrument_fwhm_from_calibrant
    from .plots.formfactor import plot_form_factor_fit, plot_structure_factor
    from .plots.peaks import plot_peaks

    ff = fit_form_factor(dil_curve, shape="cube", qmin=0.15, qmax=2.2)
    summary["form_factor"] = ff.to_json_dict()
    log(
        f"    edge = {ff.edge_nm:.3f} +/- {ff.edge_err_nm:.3f} nm, polydispersity = {ff.polydispersity:.3f}"
    )
    outputs.append(save(plot_form_factor_fit(ff, dil_curve), out / "form_factor_fit.png"))
    # The concentrations are known from sample preparation (volume fractions in
    # SAMPLE_TRUTH); S_eff is then absolute, with no assumption that it reaches 1.
    from .simulate import SAMPLE_TRUTH

    ratio = SAMPLE_TRUTH["phi_sp"] / SAMPLE_TRUTH["phi_dilute"]
    summary["concentration_ratio"] = ratio
    sq = effective_structure_factor(sp_curve, dil_curve, concentration_ratio=ratio)
    s_curve = sq.as_curve()
    outputs += write_curves([replace(s_curve, name="s_eff")], str(out / "curves"), formats=("dat",))
    outputs.append(save(plot_structure_factor(sq), out / "structure_factor.png"))
    log("4/5 peaks: fit, index, lattice parameter, coherence length")
    # the instrument width is the calibrated geometry's: calibrate on the AgBh frame
    # (pyFAI rings, refined geometry, FWHM of its lowest ring), as a user runs 'saxsred calibrate'
    from .calibrate import calibrate_frame, poni_text
    from .io.atomic import write_text_atomic

    cal = calibrate_frame(read_frame(data / "agbh.edf"), "AgBh", mask=corr.mask)
    res_fwhm = cal.geometry.instrument_fwhm_inv_nm or instrument_fwhm_from_calibrant(agbh)
    write_text_atomic(out / "agbh_calibration.poni", poni_text(cal))
    outputs.append(str(out / "agbh_calibration.poni"))
    summary["instrument_width_source"] = "geometry calibrated on agbh.edf (agbh_calibration.poni)"
    pk = analyze_peaks(s_curve, lattice="auto", edge_nm=ff.edge_nm, instrument_fwhm_inv_nm=res_fwhm)
    pj = pk.to_json_dict()
    summary["peaks"] = pj
    summary["instrument_fwhm_inv_nm"] = res_fwhm
    if pj["lattice"]:
        log(
            f"    lattice {pj['lattice']}, a = {pj['a_nm']:.3f} +/- {pj['a_err_nm']:.3f} nm "
            f"(stat {pj['a_err_stat_nm']:.3f}, calibration {pj['a_err_calib_nm']:.3f}); "
            f"coherence length {pj['coherence_length_nm']:.0f} +/- {pj['coherence_length_err_nm']:.0f} nm "
            f"({pj['coherence_convention']})"
        )
        for alt in pj["alternatives"][1:3]:
            log(
                f"    alternative: {alt['lattice']} a = {alt['a_nm']:.2f} nm (score {alt['score']:.2f})"
            )
    else:
        log("    no lattice assigned: " + "; ".join(pj.get("notes", [])))
    outputs.append(
        save(
            plot_peaks(pk, title="S_eff of the supraparticles: fit and indexing"), out / "peaks.png"
        )
    )
    log("5/5 summary")
    summary["provenance"] = {
        "software": prov_mod.software_versions(),
        "inputs": [prov_mod.input_record(p) for p in sorted(data.glob("*.edf"))],
        "calibration": [
            prov_mod.input_record(calib / "saxs_1m.poni"),
            prov_mod.input_record(calib / "saxs_mask.edf"),
        ],
    }
    summary["outputs"] = sorted([*(str(Path(o).relative_to(out)) for o in outputs), "summary.json"])
    from .io.atomic import write_text_atomic

    write_text_atomic(
        out / "summary.json", json.dumps(jsonable(summary), indent=1, sort_keys=True) + "\n"
    )
    return summary
