"""Figures of the Bragg-peak stage: the curve with its fits, hkl labels, predicted ticks and residuals; a peaks table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_peaks(analysis, title: str = ""):
    """S_eff(q) or I(q) with the free and lattice-tied fits, hkl labels, predicted ticks, residuals.

    Parameters
    ----------
    analysis : :class:`saxsred.peaks.PeakAnalysis`.
    """
    cv = analysis.curve
    fig, (ax, axr) = plt.subplots(
        2,
        1,
        figsize=(7.0, 5.6),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
        constrained_layout=True,
    )
    ax.errorbar(
        cv.q_nm,
        cv.intensity,
        yerr=cv.sigma,
        fmt=".",
        ms=2,
        elinewidth=0.5,
        color="0.4",
        label=cv.name or "data",
    )
    pf, lf = analysis.peakfit, analysis.latticefit
    if pf is not None:
        ax.plot(pf.q_nm, pf.model, "-", color="C0", lw=1.0, label=f"free peaks ({pf.shape})")
        ax.plot(pf.q_nm, pf.baseline, ":", color="C0", lw=0.8)
    if lf is not None:
        ax.plot(
            lf.q_nm, lf.model, "-", color="C3", lw=1.0, label=f"lattice-tied {lf.lattice} (Voigt)"
        )
    best = analysis.indexing.best if analysis.indexing else None
    ymax = float(np.max(cv.intensity))
    if pf is not None:
        for pk in pf.peaks:
            lab = "".join(str(x) for x in pk.hkl) if pk.hkl else "?"
            yv = float(np.interp(pk.q_nm, pf.q_nm, pf.model))
            ax.annotate(
                lab,
                (pk.q_nm, yv),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    if best is not None:
        for r in best.predicted:
            ax.axvline(r.q_nm, ymin=0.0, ymax=0.04, color="C3", lw=1.0)
        for r in best.absent:
            ax.axvline(r.q_nm, ymin=0.0, ymax=0.04, color="C1", lw=1.5, ls="--")
    if analysis.kind == "iq":
        ax.set_yscale("log")
        ax.set_ylabel(f"I(q) ({cv.unit})")
    else:
        ax.set_ylabel("S$_{eff}$(q)")
        ax.set_ylim(top=ymax * 1.12)
    d = analysis
    if d.lattice:
        txt = f"{d.lattice}, a = {d.a_nm:.3f} ± {d.a_err_nm:.3f} nm"
        if d.coherence:
            txt += f"\nL = {d.coherence.length_nm:.0f} nm ({d.coherence.convention})"
    else:
        txt = "no lattice"
    ax.text(0.98, 0.95, txt, transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(
        title or "Bragg peaks (ticks: predicted; dashed: predicted but absent)", fontsize=9
    )
    model = lf.model if lf is not None else (pf.model if pf is not None else None)
    if model is not None:
        # the lattice-tied fit covers the indexed peaks' window of the curve
        sel = np.isin(cv.q_nm, lf.q_nm) if lf is not None else np.ones(len(cv), bool)
        yy, ss = cv.intensity[sel], cv.sigma[sel]
        axr.plot(
            cv.q_nm[sel],
            (yy - model) / ss if np.all(ss > 0) else yy - model,
            ".",
            ms=2,
            color="C3" if lf is not None else "C0",
        )
    axr.axhline(0, color="k", lw=0.5)
    axr.set_ylabel("residual / σ")
    axr.set_xlabel("q (nm$^{-1}$)")
    return fig


def peaks_table(analysis) -> str:
    """Tab-separated table of the free-fit peaks with hkl and per-peak coherence length."""
    head = "q_inv_nm\tq_err_inv_nm\tfwhm_inv_nm\tfwhm_err_inv_nm\tarea\tarea_err\thkl\tcoherence_length_nm"
    rows = [
        f"# shape: {analysis.peakfit.shape if analysis.peakfit else None}; coherence convention: "
        f"{analysis.coherence.convention if analysis.coherence else 'K=1, FWHM'}",
        head,
    ]
    if analysis.peakfit is None:
        return "\n".join(rows) + "\n"
    for i, p in enumerate(analysis.peakfit.peaks):
        coh = analysis.coherence_per_peak[i] if i < len(analysis.coherence_per_peak) else None
        hkl = "".join(str(x) for x in p.hkl) if p.hkl else "-"
        rows.append(
            f"{p.q_nm:.6g}\t{p.q_err_nm:.3g}\t{p.fwhm_inv_nm:.6g}\t{p.fwhm_err_inv_nm:.3g}\t{p.area:.6g}\t{p.area_err:.3g}\t{hkl}\t"
            + (f"{coh.length_nm:.4g}" if coh else "nan")
        )
    return "\n".join(rows) + "\n"


def plot_azimuthal(fit, title: str = ""):
    """A chi trace with its multi-Gaussian fit and the mean FWHM."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), constrained_layout=True)
    if getattr(fit, "data", None) is not None:
        ax.plot(fit.chi_deg, fit.data, ".", ms=2, color="0.3", label="data")
    iso = getattr(fit, "verdict", "") == "isotropic"
    ax.plot(
        fit.chi_deg,
        fit.model,
        "-",
        color="C3",
        lw=1,
        label="constant (isotropic)" if iso else "Gaussians",
    )
    ax.set_xlabel("χ (deg)")
    ax.set_ylabel("I (arb.)")
    default = (
        f"isotropic: flat within the noise (χ²_red {fit.flat_chi2_red:.2f})"
        if iso
        else f"{fit.n_peaks} peaks: FWHM {fit.mean_fwhm_deg:.1f} ± {fit.spread_fwhm_deg:.1f}°"
    )
    ax.set_title(title or default, fontsize=9)
    for c in fit.centers_deg:
        ax.axvline(c, color="0.7", lw=0.5)
    ax.legend(fontsize=7)
    return fig
