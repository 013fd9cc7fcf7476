"""Figures of the structures stage: measured vs model S_eff, and a rendering of a supraparticle."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..structures import StructureFit, Supraparticle, quaternion_to_matrix


def plot_structure_fit(fit: StructureFit, title: str = ""):
    """Measured S_eff with error bars, the fitted model and the normalised residuals."""
    fig, (ax, ar) = plt.subplots(
        2,
        1,
        figsize=(6.4, 5.2),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
        constrained_layout=True,
    )
    ax.errorbar(
        fit.q_nm,
        fit.data,
        yerr=fit.sigma,
        fmt=".",
        ms=2,
        elinewidth=0.5,
        color="0.3",
        label="measured",
    )
    v = fit.values
    lab = f"model: SC a = {v['a_nm']:.3f} nm, n = {v['cells']:.1f}, sigma = {v['disorder_pos_nm']:.2f} nm, vac = {v['vacancies']:.3f}"
    ax.plot(fit.q_nm, fit.model, "-", color="C3", lw=1.2, label=lab)
    ax.set_ylabel("S$_{eff}$(q)")
    ax.legend(fontsize=7)
    ax.set_title(title or f"structure fit, chi2_red = {fit.reduced_chi2:.3g}")
    ar.plot(fit.q_nm, (fit.data - fit.model) / fit.sigma, ".", ms=2, color="C0")
    ar.axhline(0.0, color="k", lw=0.6)
    ar.set_xlabel("q (nm$^{-1}$)")
    ar.set_ylabel("(data-model)/sigma")
    return fig


def plot_supraparticle(sp: Supraparticle, title: str = ""):
    """A 3-D scatter of the cube centres (empty sites marked) and the middle slice with the cubes drawn.

    In the slice each cube is its projection onto the (x, y) plane (the square's turn is
    the rotation about z read from the quaternion), coloured by displacement from its site.
    """
    fig = plt.figure(figsize=(10, 4.6), constrained_layout=True)
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    p = sp.positions_nm
    ax3.scatter(p[:, 0], p[:, 1], p[:, 2], s=4, c=p[:, 2], cmap="viridis", depthshade=True)
    if sp.sites_nm is not None and len(sp.sites_nm) > sp.n:
        from scipy.spatial import cKDTree

        d, _ = cKDTree(p).query(sp.sites_nm, k=1)
        empty = sp.sites_nm[d > 0.35 * (sp.a_nm or sp.edge_nm)]
        ax3.scatter(
            empty[:, 0],
            empty[:, 1],
            empty[:, 2],
            s=25,
            c="r",
            marker="x",
            label=f"{len(empty)} vacancies",
        )
        ax3.legend(fontsize=7, loc="upper left")
    ax3.set_xlabel("x (nm)")
    ax3.set_ylabel("y (nm)")
    ax3.set_zlabel("z (nm)")
    ax3.set_title(
        title or f"{sp.n} cubes" + (f", {sp.lattice} a = {sp.a_nm:g} nm" if sp.lattice else "")
    )
    ax = fig.add_subplot(1, 2, 2)
    zmid = np.median(p[:, 2])
    half = 0.5 * (sp.a_nm or sp.edge_nm)
    sel = np.abs(p[:, 2] - zmid) < half
    if sp.sites_nm is not None:
        from scipy.spatial import cKDTree

        _, idx = cKDTree(sp.sites_nm).query(p[sel], k=1)
        disp = np.linalg.norm(p[sel] - sp.sites_nm[idx], axis=1)
    else:
        disp = np.zeros(int(sel.sum()))
    mats = quaternion_to_matrix(sp.orientations[sel])
    e = 0.5 * sp.edge_nm
    corners = np.array([[-e, -e, 0], [e, -e, 0], [e, e, 0], [-e, e, 0], [-e, -e, 0]])
    import matplotlib as mpl

    norm = mpl.colors.Normalize(0.0, max(float(disp.max(initial=0.0)), 1e-9))
    cmap = mpl.colormaps["magma_r"]
    for c, m, dv in zip(p[sel], mats, disp):
        xy = corners @ m.T + c
        ax.fill(xy[:, 0], xy[:, 1], color=cmap(0.15 + 0.85 * norm(dv)), ec="k", lw=0.3)
    ax.set_aspect("equal")
    ax.set_xlabel("x (nm)")
    ax.set_ylabel("y (nm)")
    ax.set_title(
        f"slice z = {zmid:.1f} nm (colour: displacement, max {float(disp.max(initial=0.0)):.2f} nm)"
    )
    return fig
