"""The peak stage in one call: find, fit, index, lattice-tied fit, coherence length."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..curve import Curve, require_q_nm
from ..errors import FitError, InputError, ParameterError
from ..lattice import space_group
from .coherence import (
    BLEND_FWHM,
    Coherence,
    SizeDisorder,
    coherence_length,
    lattice_fit_coherence,
    resolved_peak,
    size_disorder,
    width_measured,
)
from .find import FoundPeaks, find_peaks
from .fit import PeakFit
from .index import MAX_BRAGG_FWHM_FRAC, MODEL_UNCERTAINTY, Indexing, index_peaks
from .lattice_fit import LatticeFit, fit_lattice
from .predict import nn_distance, packing_fraction
from .profiles import SHAPES
from .segments import fit_peaks_by_segment


@dataclass(frozen=True)
class PeakAnalysis:
    """Everything the peak stage found, with the conventions used (see :meth:`to_json_dict`)."""

    curve: Curve
    found: FoundPeaks | None
    peakfit: PeakFit | None
    indexing: Indexing | None
    latticefit: LatticeFit | None
    lattice: str | None
    a_nm: float | None
    a_err_stat_nm: float | None
    a_err_calib_nm: float | None
    a_wls_nm: float | None
    a_wls_err_nm: float | None
    coherence: Coherence | None
    coherence_per_peak: tuple[Coherence | None, ...]
    sizedisorder: SizeDisorder | None
    instrument_fwhm_inv_nm: float
    calib_rel_err: float
    kind: str
    notes: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict)
    coherence_lattice_fit: Coherence | None = None

    @property
    def a_err_nm(self) -> float | None:
        if self.a_err_stat_nm is None or self.a_err_calib_nm is None:
            return None
        return math.hypot(self.a_err_stat_nm, self.a_err_calib_nm)

    def to_json_dict(self) -> dict[str, Any]:
        """The stage's result as a JSON-ready dict (NaN and inf become None)."""
        best = self.indexing.best if self.indexing else None
        edge = self.indexing.edge_nm if self.indexing else None
        peaks = []
        if self.peakfit is not None:
            for i, pk in enumerate(self.peakfit.peaks):
                coh = self.coherence_per_peak[i] if i < len(self.coherence_per_peak) else None
                peaks.append(
                    {
                        "q_inv_nm": pk.q_nm,
                        "q_err_inv_nm": pk.q_err_nm,
                        "fwhm_inv_nm": pk.fwhm_inv_nm,
                        "fwhm_err_inv_nm": pk.fwhm_err_inv_nm,
                        "area": pk.area,
                        "area_err": pk.area_err,
                        "hkl": None
                        if best is None or best.assignment[i] is None
                        else list(best.assignment[i]),
                        "coherence_length_nm": coh.length_nm if coh else None,
                        "coherence_length_err_nm": coh.length_err_nm if coh else None,
                    }
                )
        alts = []
        if self.indexing is not None:
            for c in self.indexing.candidates:
                alts.append(
                    {
                        "lattice": c.lattice,
                        "space_group": c.space_group,
                        "peaks_unexplained": c.n_unexplained,
                        "a_nm": c.a_nm,
                        "score": c.score,
                        "cost": c.cost,
                        "cost_terms": dict(c.terms),
                        "nn_distance_nm": c.nn_distance_nm,
                        "packing_fraction": c.packing_fraction,
                        "aligned_cubes": c.aligned,
                        "plausible": c.plausible,
                        "absent_hkl": [list(r.hkl) for r in c.absent],
                    }
                )
        coh = self.coherence
        sd = self.sizedisorder
        lf = self.latticefit
        d: dict[str, Any] = {
            "lattice": self.lattice,
            "space_group": space_group(self.lattice) if self.lattice else None,
            "intensity_model_uncertainty_factor": MODEL_UNCERTAINTY,
            "a_nm": self.a_nm,
            "a_err_nm": self.a_err_nm,
            "a_err_stat_nm": self.a_err_stat_nm,
            "a_err_calib_nm": self.a_err_calib_nm,
            "calib_rel_err": self.calib_rel_err,
            "a_wls_nm": self.a_wls_nm,
            "a_wls_err_stat_nm": self.a_wls_err_nm,
            "nn_distance_nm": nn_distance(self.lattice, self.a_nm)
            if self.lattice and self.a_nm
            else None,
            "ligand_gap_nm": nn_distance(self.lattice, self.a_nm) - edge
            if best and self.a_nm and edge and nn_distance(self.lattice, self.a_nm) is not None
            else None,
            "packing_fraction": packing_fraction(self.lattice, self.a_nm, edge)
            if best and self.a_nm and edge
            else None,
            "edge_nm": self.indexing.edge_nm if self.indexing else None,
            "aligned_cubes": best.aligned if best else None,
            "coherence_length_nm": coh.length_nm if coh else None,
            "coherence_length_err_nm": coh.length_err_nm if coh else None,
            "coherence_convention": coh.convention if coh else "K=1, FWHM",
            "instrument_fwhm_inv_nm": self.instrument_fwhm_inv_nm,
            "input_kind": self.kind,
            "peak_shape": self.peakfit.shape if self.peakfit else None,
            "shape_criterion": "BIC = chi2 + k ln n",
            "shape_bic": dict(self.peakfit.bic) if self.peakfit else None,
            "shape_not_fitted": dict(self.peakfit.not_fitted) if self.peakfit else None,
            "free_fit_chi2_red": self.peakfit.chi2_red if self.peakfit else None,
            "lattice_fit": None
            if lf is None
            else {
                "a_nm": lf.a_nm,
                "a_err_stat_nm": lf.a_err_nm,
                "width_model": lf.width_model,
                "lorentz_fwhm_q0_inv_nm": lf.w0_inv_nm,
                "lorentz_fwhm_q0_err_inv_nm": lf.w0_err_inv_nm,
                "width_slope": lf.slope,
                "width_slope_err": lf.slope_err,
                "chi2_red": lf.chi2_red,
                "shape": lf.shape,
                "coherence_length_nm": self.coherence_lattice_fit.length_nm
                if self.coherence_lattice_fit
                else None,
                "coherence_length_err_nm": self.coherence_lattice_fit.length_err_nm
                if self.coherence_lattice_fit
                else None,
                "rings": [
                    {"hkl": list(r.hkl), "q_inv_nm": r.q_nm, "area": float(A), "area_err": float(e)}
                    for r, A, e in zip(lf.shells, lf.areas, lf.area_errs)
                ],
            },
            "size_disorder": None
            if sd is None
            else {
                "n_orders": sd.n_orders,
                "williamson_hall": {
                    "length_nm": sd.wh_length_nm,
                    "length_err_nm": sd.wh_length_err_nm,
                    "strain": sd.wh_strain,
                    "strain_err": sd.wh_strain_err,
                    "chi2": sd.wh_chi2,
                },
                "paracrystal": {
                    "length_nm": sd.pc_length_nm,
                    "length_err_nm": sd.pc_length_err_nm,
                    "g": sd.pc_g,
                    "g_err": sd.pc_g_err,
                    "chi2": sd.pc_chi2,
                },
                "size_only_chi2": sd.size_chi2,
                "preferred": sd.preferred,
            },
            "peaks": peaks,
            "alternatives": alts,
            "absent_reflections": [
                {"hkl": list(r.hkl), "q_inv_nm": r.q_nm, "predicted_weight": r.weight}
                for r in best.absent
            ]
            if best
            else [],
            "unexplained_peaks_q_inv_nm": list(best.unexplained_q_nm)
            if best
            else [p["q_inv_nm"] for p in peaks],
            "notes": list(self.notes)
            + (list(self.indexing.notes) if self.indexing else [])
            + (list(best.notes) if best else []),
            "provenance": self.provenance,
        }
        return clean_json(d)


def clean_json(obj):
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    return obj


#: A fit whose chi2_red exceeds this does not describe the data: flagged, not the answer.
CHI2_FLAG = 5.0


def _detection_limit(cv: Curve, sigma: np.ndarray, fwhm: np.ndarray, threshold: float = 3.0):
    """q -> smallest detectable peak area at q: ``threshold`` x the standard error of the
    area of a Gaussian of the typical FWHM fitted on noise sigma(q) (sigma sqrt(1.505 dq w))."""
    q = cv.q_nm
    dq = float(np.median(np.diff(q)))
    w = float(np.median(fwhm)) if np.size(fwhm) else 5 * dq
    w = max(w, 2 * dq)

    def detect(qq):
        return threshold * np.interp(qq, q, sigma) * math.sqrt(1.505 * dq * w)

    return detect


def analyze_peaks(
    curve: Curve,
    lattice: str = "auto",
    edge_nm: float | None = None,
    instrument_fwhm_inv_nm: float = 0.0,
    calib_rel_err: float = 0.005,
    kind: str = "sq",
    threshold: float = 5.0,
    K: float = 1.0,
    width: str = "fwhm",
    shapes: tuple[str, ...] = SHAPES,
    qmin: float | None = None,
    qmax: float | None = None,
    polydispersity: float = 0.0,
) -> PeakAnalysis:
    """The peak stage in one call: find, fit (free and lattice-tied), index, size.

    Parameters
    ----------
    curve : S_eff(q) (``kind="sq"``) or I(q) (``kind="iq"``), q in nm^-1.
    lattice : "auto" or one of :data:`LATTICES` (forces the indexing).
    edge_nm : cube edge from the form-factor fit (nm); enables oriented-cube intensities,
        plausibility, ligand gap and packing fraction.
    instrument_fwhm_inv_nm : Gaussian instrumental FWHM (nm^-1), e.g. from
        :func:`instrument_fwhm_from_calibrant`.
    calib_rel_err : relative distance-calibration uncertainty (0.5%): a_err_calib = a x it.
    K, width : Scherrer constant and width convention ("fwhm" or "integral_breadth").
    polydispersity : relative edge spread for the predicted intensities.

    Returns
    -------
    PeakAnalysis; ``lattice`` None when nothing ordered is found.
    """
    if not (0 <= calib_rel_err < 1):
        raise ParameterError(f"calibration relative error {calib_rel_err!r}: must be in [0, 1)")
    if instrument_fwhm_inv_nm < 0 or not np.isfinite(instrument_fwhm_inv_nm):
        raise ParameterError(f"instrument FWHM {instrument_fwhm_inv_nm!r} nm^-1: must be >= 0")
    if K <= 0:
        raise ParameterError(f"Scherrer constant K = {K!r}: must be positive")
    if width not in ("fwhm", "integral_breadth"):
        raise ParameterError(f"width convention {width!r}: use 'fwhm' or 'integral_breadth'")
    curve = require_q_nm(curve, f"peaks of {curve.name or 'curve'!r}")
    cv = curve.select(qmin, qmax)
    name = curve.name or "curve"
    if qmin is not None or qmax is not None:
        if len(cv) < 20:
            raise InputError(
                f"{name}: only {len(cv)} points between qmin={qmin} and qmax={qmax} nm^-1; widen the range"
            )
    cv = replace(cv, q_nm=cv.q_nm, intensity=cv.intensity)
    notes: list[str] = []
    if (curve.provenance or {}).get("sigma_missing"):
        # A local scatter estimate counts a peak 3-4 points wide as noise: the finder's
        # robust global estimate (median absolute second difference) is used instead.
        cv = replace(cv, sigma=np.zeros_like(cv.intensity))
        notes.append(
            "the file has no sigma: the noise is estimated from the curve's second differences (robust, global)"
        )
    found = find_peaks(cv, threshold=threshold, flat_baseline=kind == "sq")
    prov_rec = dict(
        lattice=lattice,
        edge_nm=edge_nm,
        instrument_fwhm_inv_nm=instrument_fwhm_inv_nm,
        calib_rel_err=calib_rel_err,
        kind=kind,
        threshold=threshold,
        K=K,
        width=width,
        qmin=qmin,
        qmax=qmax,
        polydispersity=polydispersity,
    )
    from ..provenance import extend

    prov = extend(curve.provenance, "peaks", **prov_rec)
    empty = dict(
        curve=cv,
        found=found,
        lattice=None,
        a_nm=None,
        a_err_stat_nm=None,
        a_err_calib_nm=None,
        a_wls_nm=None,
        a_wls_err_nm=None,
        coherence=None,
        coherence_per_peak=(),
        sizedisorder=None,
        instrument_fwhm_inv_nm=instrument_fwhm_inv_nm,
        calib_rel_err=calib_rel_err,
        kind=kind,
        provenance=prov,
    )
    if found.q_nm.size == 0:
        notes.append(f"no peak above {threshold:g} sigma: nothing ordered")
        return PeakAnalysis(
            peakfit=None, indexing=None, latticefit=None, notes=tuple(notes), **empty
        )
    pf = fit_peaks_by_segment(
        cv, found, shapes=shapes, threshold=threshold, instrument_fwhm_inv_nm=instrument_fwhm_inv_nm
    )
    qs = np.array([p.q_nm for p in pf.peaks])
    qe = np.array([p.q_err_nm for p in pf.peaks])
    ar = np.array([p.area for p in pf.peaks])
    ae = np.array([p.area_err for p in pf.peaks])
    fws = np.array([p.fwhm_inv_nm for p in pf.peaks])
    ix = index_peaks(
        qs,
        qe,
        ar,
        ae,
        fwhm=fws,
        lattices=lattice,
        edge_nm=edge_nm,
        kind=kind,
        q_range=(cv.q_nm[0], cv.q_nm[-1]),
        polydispersity=polydispersity,
        detect_area=_detection_limit(cv, found.sigma, fws, threshold=3.0),
        background=(lambda qq: np.interp(qq, cv.q_nm, np.abs(pf.baseline)))
        if kind == "iq"
        else None,
    )
    # Per-peak coherence lengths (free fit, instrument removed per the chosen shape).
    coh_pp = []
    for pk in pf.peaks:
        try:
            coh_pp.append(
                coherence_length(
                    pk.fwhm_inv_nm,
                    pk.fwhm_err_inv_nm,
                    instrument_fwhm_inv_nm,
                    pf.shape,
                    K,
                    width,
                    pf.eta,
                    pk.fwhm_g_inv_nm,
                )
            )
        except (FitError, ParameterError):
            coh_pp.append(None)
    if ix.best is None:
        return PeakAnalysis(
            peakfit=pf,
            indexing=ix,
            latticefit=None,
            notes=tuple(notes),
            **{**empty, "coherence_per_peak": tuple(coh_pp)},
        )
    best = ix.best
    peaks = tuple(replace(p, hkl=best.assignment[i]) for i, p in enumerate(pf.peaks))
    pf = replace(pf, peaks=peaks)
    # Size / disorder from the free widths of the indexed orders (one per ring).
    sd = None
    idxd = [i for i, h in enumerate(best.assignment) if h is not None]
    ws = [coh_pp[i].sample_width_inv_nm if coh_pp[i] else np.nan for i in idxd]
    we = [pf.peaks[i].fwhm_err_inv_nm for i in idxd]
    if len(idxd) >= 3:
        sd = size_disorder(qs[idxd], ws, we, best.a_nm, K)
    wmodel = "size"
    if sd is not None:
        wmodel = {"size": "size", "williamson_hall": "strain", "paracrystal": "paracrystal"}[
            sd.preferred
        ]
    lf = None
    try:
        lf = fit_lattice(
            cv,
            ix,
            pf,
            instrument_fwhm_inv_nm,
            wmodel,
            found.baseline,
            found.sigma,
            shape=pf.shape,
            eta=pf.eta,
        )
    except FitError as exc:
        notes.append(f"lattice-tied fit failed: {exc}")
    a, a_stat = best.a_nm, best.a_err_nm
    coh_lf = None
    if lf is not None:
        if lf.chi2_red > CHI2_FLAG:
            notes.append(
                f"lattice-tied fit ({lf.shape}, {lf.width_model} width model) has chi2_red = {lf.chi2_red:.3g} >> 1: "
                "it does not describe the data; its a and widths are not used"
            )
        elif np.isfinite(lf.a_err_nm) and abs(lf.a_nm - best.a_nm) < 0.02 * best.a_nm:
            a, a_stat = lf.a_nm, lf.a_err_nm
        coh_lf = lattice_fit_coherence(lf, instrument_fwhm_inv_nm, K, width)
    # The paper's convention: the lowest-order indexed peak of the free fit, instrument
    # removed according to the selected shape; a peak blended with a neighbour (another
    # fitted peak or an allowed ring of the lattice within BLEND_FWHM of its FWHM, e.g.
    # HCP's (100)/(002)/(101)) has a free width that is not its own: the lowest resolved one
    # whose width is a measurement (wider than the sampling, significant: width_measured).
    order = sorted(idxd, key=lambda i: best.s_assigned[i])
    usable = [
        i
        for i in order
        if resolved_peak(i, pf, best, MAX_BRAGG_FWHM_FRAC)
        and coh_pp[i]
        and width_measured(pf.peaks[i], cv.q_nm)
    ]
    first = usable[0] if usable else order[0]
    coh = coh_pp[first]
    skipped = order[: order.index(first)]
    conv = f"convention K={K:g}, {'FWHM' if width == 'fwhm' else 'integral breadth'}"
    lf_ok = lf is not None and lf.chi2_red <= CHI2_FLAG
    q_idx = [pf.peaks[i].q_nm for i in idxd]
    w_max = max(pf.peaks[i].fwhm_inv_nm for i in idxd)
    others = [
        i
        for i, h in enumerate(best.assignment)
        if h is None
        and min(q_idx) - 2 * w_max <= pf.peaks[i].q_nm + 2 * pf.peaks[i].fwhm_inv_nm
        and pf.peaks[i].q_nm - 2 * pf.peaks[i].fwhm_inv_nm <= max(q_idx) + 2 * w_max
    ]
    if (skipped or best.n_blends or others) and lf_ok:
        # The lowest ring is blended, or blends of unresolved rings or features not indexed
        # sit among the peaks (their tails bias the free widths near them): the lattice-tied fit, which fits
        # every ring at its lattice position with one width model, gives the width where
        # the free fit cannot.
        q1 = 2 * math.pi * math.sqrt(best.s_assigned[order[0]]) / lf.a_nm
        coh_low = lattice_fit_coherence(lf, instrument_fwhm_inv_nm, K, width, q1)
        if coh_low is not None:
            coh = coh_low
            notes.append(
                f"coherence length from the lattice-tied fit's width at the lowest-order ring "
                f"{list(best.assignment[order[0]])} (blends or features not indexed among the peaks: no free width is its own; "
                f"chi2_red = {lf.chi2_red:.3g}, {lf.shape}, {lf.width_model} width model); {conv}"
            )
            skipped = None
    if skipped is not None and not usable:
        notes.append(
            f"coherence length from the lowest-order indexed peak {list(best.assignment[first])}, but no indexed "
            "peak is both resolved from its neighbours (other peaks, allowed rings within "
            f"{BLEND_FWHM:g} FWHM) and wider than the sampling with a significant width: its free width may "
            f"hold its neighbours', so L is a lower bound; {conv}"
        )
    elif skipped is not None:
        notes.append(
            f"coherence length from the lowest-order indexed peak {list(best.assignment[first])} "
            + (
                f"resolved from its neighbours ({', '.join(str(list(best.assignment[i])) for i in skipped)} "
                "blended: their free widths are not their own) "
                if skipped
                else ""
            )
            + f"(free {pf.shape} fit, instrument {instrument_fwhm_inv_nm:.4g} nm^-1 removed per that shape); {conv}"
        )
    return PeakAnalysis(
        curve=cv,
        found=found,
        peakfit=pf,
        indexing=ix,
        latticefit=lf,
        lattice=best.lattice,
        a_nm=float(a),
        a_err_stat_nm=float(a_stat),
        a_err_calib_nm=float(calib_rel_err * a),
        a_wls_nm=best.a_nm,
        a_wls_err_nm=best.a_err_nm,
        coherence=coh,
        coherence_per_peak=tuple(coh_pp),
        sizedisorder=sd,
        instrument_fwhm_inv_nm=instrument_fwhm_inv_nm,
        calib_rel_err=calib_rel_err,
        kind=kind,
        notes=tuple(notes),
        provenance=prov,
        coherence_lattice_fit=coh_lf,
    )
