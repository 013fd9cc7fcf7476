"""Lattice slices in the style of the paper's Fig. 5: cubes coloured by displacement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .observables import VacancyLattice


def inplane_angles(orientations: np.ndarray, normal: int) -> np.ndarray:
    """Angle (degrees, in [-45, 45)) at which each cube's square shows in a lattice plane.

    The plane is spanned by the two lab axes other than ``normal``, drawn with the lower
    one to the right (e0) and the higher one up (e1). Of the body axes that are not the
    one closest to the plane normal, the one closest to e0 is projected onto the plane
    and its angle from e0 towards e1 is taken modulo 90 degrees (the square's symmetry).
    Its magnitude never exceeds the cube's misorientation angle 2 arccos|w|: a rotation
    by phi turns no vector by more than phi.
    """
    from .cubes import quats_to_rots

    q = np.asarray(orientations, float)
    R = quats_to_rots(q / np.linalg.norm(q, axis=1, keepdims=True)).reshape(-1, 3, 3)
    e0, e1 = [c for c in range(3) if c != normal]
    rows = np.arange(len(R))
    k_n = np.argmax(np.abs(R[:, normal, :]), axis=1)  # body axis along the normal
    along = np.abs(R[:, e0, :])
    along[rows, k_n] = -1.0
    v = R[rows, :, np.argmax(along, axis=1)]  # body axis closest to e0, lab components
    ang = np.degrees(np.arctan2(v[:, e1], v[:, e0]))
    return (ang + 45.0) % 90.0 - 45.0


def lattice_slices(states: Sequence, titles: Sequence[str] | None = None, vmax: float = 0.5):
    """One panel per state: the lattice plane holding the row the vacancy spreads along.

    Cubes (true size and in-plane rotation) are coloured by the magnitude of their
    displacement from the nearest site in units of the spacing a; empty sites are
    marked with red crosses. Returns a matplotlib Figure (Agg, no display needed).
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    fig = Figure(figsize=(4.2 * len(states), 4.4), layout="constrained")
    axes = fig.subplots(1, len(states), squeeze=False)[0]
    im = None
    for k, (ax, st) in enumerate(zip(axes, states)):
        lat = VacancyLattice.from_state(st)
        if lat is None:
            ax.set_axis_off()
            ax.set_title("no lattice (fluid start)")
            continue
        va = lat.analyze(st.positions)
        idx = np.stack(np.unravel_index(va.site_index, lat.n_cells), 1)
        row_axis = va.axis
        normal = (row_axis + 2) % 3  # the plane spanned by the row and one other axis
        inplane = [c for c in range(3) if c != normal]
        if va.empty_sites.size:
            layer = int(np.unravel_index(va.empty_sites[0], lat.n_cells)[normal])
        elif va.deficient_rows:
            p1, p2 = [c for c in range(3) if c != row_axis]
            layer = va.deficient_rows[0][[p1, p2].index(normal)]
        else:
            layer = lat.n_cells[normal] // 2
        sel = np.flatnonzero(idx[:, normal] == layer)
        a = lat.spacing
        disp = np.linalg.norm(va.displacement[sel], axis=1) / a
        ang = inplane_angles(np.asarray(st.orientations, float)[sel], normal)
        xy = (idx[sel][:, inplane] * a + va.displacement[sel][:, inplane]) / a
        patches = []
        for (x, y), th in zip(xy, ang):
            c, s = np.cos(np.radians(th)), np.sin(np.radians(th))
            # Rectangle rotates about its corner: place the corner so the centre is at (x, y)
            x0 = x - 0.5 / a * (c - s)
            y0 = y - 0.5 / a * (s + c)
            patches.append(Rectangle((x0, y0), 1 / a, 1 / a, angle=th))
        pc = PatchCollection(patches, cmap="viridis", edgecolor="k", linewidth=0.3)
        pc.set_array(disp)
        pc.set_clim(0, vmax)
        ax.add_collection(pc)
        im = pc
        empty = (
            np.stack(np.unravel_index(va.empty_sites, lat.n_cells), 1)
            if va.empty_sites.size
            else np.zeros((0, 3), int)
        )
        empty = empty[empty[:, normal] == layer]
        ax.plot(
            empty[:, inplane[0]], empty[:, inplane[1]], "rx", ms=12, mew=2.5, label="empty site"
        )
        ax.set_xlim(-0.7, lat.n_cells[inplane[0]] - 0.3)
        ax.set_ylim(-0.7, lat.n_cells[inplane[1]] - 0.3)
        ax.set_aspect("equal")
        names = "xyz"
        ax.set_xlabel(f"{names[inplane[0]]} / a")
        ax.set_ylabel(f"{names[inplane[1]]} / a")
        title = titles[k] if titles else ""
        ax.set_title(f"{title}  spread {va.spread:.1f}, string {va.string_length:.0f}".strip())
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="|displacement from site| / a", shrink=0.8)
    return fig
