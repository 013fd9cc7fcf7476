"""Figures of the form-factor stage: the dilute fit with residuals, and S_eff(q)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..curve import Curve


def plot_form_factor_fit(fit, curve: Curve, title: str = ""):
    """Log-log data with the fitted model (over the fit range) and normalised residuals below."""
    fig, (ax, axr) = plt.subplots(
        2,
        1,
        figsize=(6.4, 5.6),
        sharex=True,
        constrained_layout=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    ok = curve.intensity > 0
    ax.errorbar(
        curve.q_nm[ok],
        curve.intensity[ok],
        yerr=curve.sigma[ok],
        fmt=".",
        ms=2,
        elinewidth=0.5,
        color="0.4",
        label=curve.name or "data",
    )
    ax.plot(
        fit.q_nm,
        fit.model,
        "r-",
        lw=1.2,
        label=f"{fit.shape}: {fit.size_name} {fit.edge_nm:.3f} ± "
        f"{fit.edge_err_nm:.3f} nm, pd {fit.polydispersity:.3f} ± {fit.polydispersity_err:.3f}",
    )
    if fit.background > 0:
        ax.axhline(fit.background, color="r", ls=":", lw=0.8, label="background")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylabel(f"I(q) ({curve.unit})")
    ax.legend(fontsize=8)
    ax.set_title(title or f"form-factor fit, reduced chi2 = {fit.reduced_chi2:.3g}")
    axr.plot(fit.q_nm, fit.residuals, ".", ms=2, color="k")
    axr.axhline(0, color="r", lw=0.8)
    lim = (
        max(3.0, float(np.nanpercentile(np.abs(fit.residuals), 99)) * 1.1)
        if fit.residuals.size
        else 3.0
    )
    axr.set_ylim(-lim, lim)
    axr.set_xlabel("q (nm$^{-1}$)")
    axr.set_ylabel("(I - model)/σ")
    return fig


def plot_structure_factor(sq, title: str = ""):
    """S_eff(q) with error bars; flagged points shown as crosses, the S = 1 line dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), constrained_layout=True)
    good = ~sq.flagged
    ax.errorbar(
        sq.q_nm[good],
        sq.s[good],
        yerr=sq.sigma[good],
        fmt=".",
        ms=2,
        elinewidth=0.5,
        color="C0",
        label="S_eff",
    )
    if sq.flagged.any():
        ax.plot(
            sq.q_nm[sq.flagged],
            sq.s[sq.flagged],
            "x",
            ms=3,
            color="0.6",
            label=f"flagged ({int(sq.flagged.sum())}, not used)",
        )
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    if good.any():  # scale to the kept points: flagged ones can be wild
        lo, hi = np.percentile(sq.s[good], [0.5, 99.5])
        pad = 0.08 * (hi - lo + 1e-12)
        ax.set_ylim(min(lo, 1.0) - pad, max(hi, 1.0) + pad)
    ax.set_xlabel("q (nm$^{-1}$)")
    ax.set_ylabel("S$_{eff}$(q)")
    how = "fitted (S→1 at high q)" if sq.concentration_ratio_fitted else "given"
    ax.set_title(
        title or f"effective structure factor, c ratio {sq.concentration_ratio:.4g} ({how})"
    )
    ax.legend(fontsize=8)
    return fig
