"""Figure of a calibration: the frame with the calibrant's rings and the control points, and the ring residuals."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm


def plot_calibration(data: np.ndarray, result, title: str = ""):
    """Frame (log scale) with the refined geometry's calibrant rings (white), control points
    (coloured by ring) and beam centre (red cross); right: each ring's relative q residual."""
    from pyFAI.calibrant import CALIBRANT_FACTORY

    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(11, 5.2), constrained_layout=True, gridspec_kw={"width_ratios": [1.4, 1]}
    )
    d = np.asarray(data, dtype=float)
    pos = d[d > 0]
    vmin = max(np.percentile(pos, 1), 0.5) if pos.size else 1
    vmax = max(np.percentile(pos, 99.9), vmin * 10) if pos.size else 10
    ax.imshow(
        np.where(d > 0, d, np.nan),
        origin="lower",
        norm=LogNorm(vmin, vmax),
        cmap="viridis",
        interpolation="nearest",
    )
    geo = result.geometry.with_shape(d.shape)
    cal = CALIBRANT_FACTORY(result.calibrant)
    cal.wavelength = geo.wavelength_m
    ai = geo.integrator()
    tth = ai.twoThetaArray(d.shape)
    lines = [t for t in cal.get_2th() if t is not None and tth.min() < t < tth.max()]
    if lines:
        ax.contour(tth, levels=sorted(lines)[:60], colors="w", linewidths=0.5, alpha=0.8)
    cp = result.control_points
    if cp.size:
        ax.scatter(cp[:, 1], cp[:, 0], c=cp[:, 2], s=3, cmap="autumn", lw=0)
    bx, by = geo.beam_center_px()
    ax.plot(bx - 0.5, by - 0.5, "r+", ms=12)
    ax.set_xlim(-0.5, d.shape[1] - 0.5)
    ax.set_ylim(-0.5, d.shape[0] - 0.5)
    ax.set_xlabel("x (fast axis, px)")
    ax.set_ylabel("y (slow axis, px)")
    ax.set_title(title or f"{result.calibrant}: rings of the refined geometry, control points")
    q = [r.q_calibrant_inv_nm for r in result.rings]
    rel = [r.residual_inv_nm / r.q_calibrant_inv_nm for r in result.rings]
    err = [r.rms_inv_nm / r.q_calibrant_inv_nm / np.sqrt(max(r.n_points, 1)) for r in result.rings]
    ax2.errorbar(q, rel, yerr=err, fmt="o", ms=4)
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xlabel("q of the ring (nm$^{-1}$)")
    ax2.set_ylabel("(q$_{measured}$ - q$_{calibrant}$) / q$_{calibrant}$")
    ax2.set_title(f"residual {result.residual_rms_inv_nm:.2g} nm$^{{-1}}$ rms")
    return fig
