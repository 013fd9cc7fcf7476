"""Figures of the reduction stage: the frame with its mask and q rings, and 1-D curves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from ..curve import Curve
from ..geometry import Geometry


def plot_frame(
    data: np.ndarray,
    geometry: Geometry,
    mask: np.ndarray | None = None,
    q_rings_nm: Sequence[float] = (),
    title: str = "",
):
    """Frame on a log colour scale, masked pixels shaded, iso-q rings drawn from the geometry."""
    fig, ax = plt.subplots(figsize=(6, 5.2), constrained_layout=True)
    d = np.asarray(data, dtype=float)
    pos = d[(d > 0) & (~mask if mask is not None else True)]
    vmin = max(np.percentile(pos, 1), 0.5) if pos.size else 1
    vmax = max(np.percentile(pos, 99.9), vmin * 10) if pos.size else 10
    im = ax.imshow(
        np.where(d > 0, d, np.nan),
        origin="lower",
        norm=LogNorm(vmin, vmax),
        cmap="viridis",
        interpolation="nearest",
    )
    fig.colorbar(im, ax=ax, label="counts")
    if mask is not None and mask.any():
        overlay = np.zeros((*mask.shape, 4))
        overlay[mask] = (1.0, 0.2, 0.2, 0.45)
        ax.imshow(overlay, origin="lower", interpolation="nearest")
    if q_rings_nm:
        q = geometry.q_map_nm(d.shape)
        cs = ax.contour(q, levels=sorted(q_rings_nm), colors="w", linewidths=0.7)
        ax.clabel(cs, fmt=lambda v: f"{v:.2f}", fontsize=7)
    bx, by = geometry.with_shape(d.shape).beam_center_px()
    ax.plot(bx - 0.5, by - 0.5, "r+", ms=10)
    ax.set_xlabel("x (fast axis, px)")
    ax.set_ylabel("y (slow axis, px)")
    ax.set_title(title or "frame, mask (red) and q rings (nm$^{-1}$)")
    return fig


def plot_curves(curves: Sequence[Curve], title: str = "", logx: bool = True):
    """Log-log I(q) with error bars for one or several curves."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    for cv in curves:
        ok = cv.intensity > 0
        ax.errorbar(
            cv.q_nm[ok],
            cv.intensity[ok],
            yerr=cv.sigma[ok],
            fmt=".",
            ms=2,
            elinewidth=0.6,
            label=cv.name,
        )
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("q (nm$^{-1}$)")
    unit = curves[0].unit if curves else ""
    ax.set_ylabel(f"I(q) ({unit})")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig


def save(fig, path) -> str:
    """Save a figure atomically as PNG and close it."""
    from ..io.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return str(path)
