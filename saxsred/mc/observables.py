"""Observables of the cube Monte Carlo: pressure, lattice displacements, vacancies, order.

All functions take plain arrays (lengths in sigma) and return numbers or small
dataclasses; the driver (:mod:`saxsred.mc.engine`) and ``saxsred mc analyze`` call them.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import obskernels as OK

#: a particle counts as part of a spread vacancy when displaced along the vacancy's
#: row by more than this fraction of the lattice spacing (the paper's Fig. 5 measure)
SPREAD_THRESHOLD = 0.15


# ---------------------------------------------------------------------------- pressure
@dataclass(frozen=True)
class PressureSample:
    """beta P sigma^3 from one block of SDF histograms, with the two intercepts s(0)."""

    beta_p: float
    s_hard0: float
    s_well0: float


@functools.lru_cache(maxsize=16)
def _intercept_weights(nb: int, xmax: float) -> np.ndarray:
    # s(0+) of the least-squares quadratic is linear in the bins: weights = first row of
    # the pseudo-inverse of the design matrix (computed once per binning, ~100x faster
    # per block than a polyfit call, same numbers to round-off)
    x = (np.arange(nb) + 0.5) * (xmax / nb)
    return np.linalg.pinv(np.vander(x, 3, increasing=True))[0]


def _intercept(hist: np.ndarray, norm: float, xmax: float) -> float:
    """s(0+) from a histogram over [0, xmax): quadratic least squares through the bins."""
    nb = hist.size
    s = hist / (norm * (xmax / nb))
    return float(_intercept_weights(nb, float(xmax)) @ s)


def sdf_pressure(
    hist_hard: np.ndarray,
    hist_well: np.ndarray,
    n: int,
    n_samples: int,
    rho: float,
    xmax: float,
    beta_eps: float,
) -> PressureSample:
    """Pressure from virtual volume moves (scale distribution function, SDF).

    beta P = rho [1 + (s_c(0+) + (exp(beta eps) - 1) s_e(0+)) / 6] in 3-D, where
    s_c(x) dx is the number of hard-core contacts per particle created by scaling all
    centres by (1 - x) (Eppenga & Frenkel, Mol. Phys. 52, 1303 (1984); HOOMD-blue's SDF),
    and s_e(x) dx the number of square-well bonds per particle broken by scaling them by
    (1 + x): the expansive term, negative for an attractive well. Both s count a pair
    for each of its two particles (histograms hold pairs once, hence the factor 2).
    """
    if n_samples == 0:
        return PressureSample(math.nan, math.nan, math.nan)
    norm = 0.5 * n * n_samples  # pairs -> per particle: x 2 / N
    sh = _intercept(np.asarray(hist_hard, float), norm, xmax) if np.size(hist_hard) else 0.0
    sw = _intercept(np.asarray(hist_well, float), norm, xmax) if np.size(hist_well) else 0.0
    beta_p = rho * (1.0 + (sh + math.expm1(beta_eps) * sw) / 6.0)
    return PressureSample(beta_p, sh, sw)


def block_mean(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of block averages (NaNs dropped; error NaN for < 2 blocks)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1:
        return float(v[0]), math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))


# ----------------------------------------------------------------- lattice and vacancies
@dataclass(frozen=True)
class VacancyInfo:
    """Vacancy analysis of one configuration.

    Attributes
    ----------
    spread : particles in the vacancies' rows displaced along the row by more than
        0.15 a, per vacancy (history-free; the paper's Fig. 5 measure).
    string_length : lattice sites between the undisplaced particles bounding each
        vacancy's gap, averaged over vacancies (1 = localised).
    axis : the row direction (0, 1, 2) along which the vacancies spread most.
    empty_sites : flat indices of sites with no particle nearest to them.
    site_index : (N,) flat index of each particle's nearest site.
    displacement : (N, 3) displacement of each particle from its nearest site (sigma),
        after removing the drift of the whole crystal.
    """

    spread: float
    string_length: float
    axis: int
    empty_sites: np.ndarray
    site_index: np.ndarray
    displacement: np.ndarray
    deficient_rows: list[tuple[int, int]]


@dataclass(frozen=True)
class VacancyLattice:
    """The simple-cubic lattice a crystal started on: sites per axis, spacing and box."""

    n_cells: tuple[int, int, int]
    spacing: float
    box: np.ndarray

    @classmethod
    def from_state(cls, state: Any) -> VacancyLattice | None:
        if state.n_cells is None or state.spacing is None:
            return None
        return cls(
            tuple(int(c) for c in state.n_cells), float(state.spacing), np.asarray(state.box, float)
        )

    @property
    def n_sites(self) -> int:
        return int(np.prod(self.n_cells))

    def displacements(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest-site indices (N, 3) and displacements (N, 3) with the crystal drift removed.

        Sites sit at -L/2 + a (i + 1/2). The drift (single-particle moves let the whole
        crystal wander) is the circular mean of the fractional coordinates, so it is
        well defined even when it approaches a/2.
        """
        return OK.lattice_displacements(
            np.ascontiguousarray(pos, dtype=float),
            self.box,
            np.asarray(self.n_cells, dtype=np.int64),
            self.spacing,
        )

    def sample(self, pos: np.ndarray) -> tuple[float, float]:
        """(spread, string_length) of configuration ``pos``: what the driver samples.

        One O(N) numba pass (displacements, row occupancy, displaced counts), then the
        string length of the few deficient rows of the winning axis: a small fraction of
        a sweep, so it can be sampled as often as the pressure.
        """
        info = self.analyze(pos, full=False)
        return info.spread, info.string_length

    def analyze(self, pos: np.ndarray, full: bool = True) -> VacancyInfo:
        """Vacancy spread, string length and empty sites of configuration ``pos``.

        ``full=False`` skips the empty sites and the list of deficient rows (the driver's
        per-sample call); spread and string length are the same either way.
        """
        nc = self.n_cells
        nca = np.asarray(nc, dtype=np.int64)
        a = self.spacing
        idx, d = self.displacements(pos)
        n_vac = self.n_sites - len(pos)
        spreads, counts = OK.vacancy_spreads(idx, d, nca, a, SPREAD_THRESHOLD)
        axis = int(np.argmax(spreads))  # first maximum, as the per-axis loop it replaces
        spread = float(spreads[axis])
        p1, p2 = [k for k in range(3) if k != axis]
        deficient = np.flatnonzero(counts[axis, : nc[p1] * nc[p2]] < nc[axis])
        strings = []
        if deficient.size:
            row = idx[:, p1] * nc[p2] + idx[:, p2]
            displaced = np.abs(d[:, axis]) > SPREAD_THRESHOLD * a
            for r in deficient:
                sel = row == r
                strings.append(
                    _string_length(idx[sel, axis] + d[sel, axis] / a, displaced[sel], nc[axis])
                )
        string = float(np.mean(strings)) if strings else 1.0
        per_vac = spread / n_vac if n_vac > 0 else 0.0
        if full:
            flat = np.ravel_multi_index(idx.T, nc)
            empty = np.flatnonzero(np.bincount(flat, minlength=self.n_sites) == 0)
            rows = [(int(r // nc[p2]), int(r % nc[p2])) for r in deficient]
        else:
            flat = empty = np.zeros(0, dtype=np.int64)
            rows = []
        return VacancyInfo(per_vac, string if n_vac > 0 else 0.0, axis, empty, flat, d, rows)


def _string_length(u: np.ndarray, displaced: np.ndarray, n: int) -> float:
    """Sites spanned by a row's largest gap, between its bounding undisplaced particles.

    ``u``: coordinates along the row in units of a (periodic with period n).
    """
    m = u.size
    if m == 0:
        return float(n)
    order = np.argsort(u)
    us = u[order]
    dsp = displaced[order]
    gaps = np.diff(np.concatenate([us, [us[0] + n]]))
    g = int(np.argmax(gaps))  # the gap lies between particle g and g+1 (cyclic)
    left = g
    steps = 0
    while dsp[left % m] and steps < m:
        left -= 1
        steps += 1
    right = g + 1
    steps = 0
    while dsp[right % m] and steps < m:
        right += 1
        steps += 1
    if steps >= m:
        return float(n)
    span = (us[right % m] + n * (right // m)) - (us[left % m] + n * (left // m))
    return float(max(1, round(span) - 1))


# ------------------------------------------------------------------------------- order
def cubatic_order(orientations: np.ndarray, n_trial: int = 400) -> float:
    """Cubatic order parameter P4 (1 = perfectly aligned cubes, ~0 isotropic).

    P4 = max_n 1/(14 N) sum_i sum_k (35 (u_ik.n)^4 - 30 (u_ik.n)^2 + 3), u_ik the three
    body axes of cube i (Duncan et al., PRE 79, 031702 (2009) normalised so that perfect
    order gives 1). The director n is searched over the particles' own axes and a
    Fibonacci sphere, then refined by Nelder-Mead.
    """
    from scipy.optimize import minimize

    from . import _kernels as K

    q = np.asarray(orientations, float)
    rot = K.quats_to_rots(q / np.linalg.norm(q, axis=1, keepdims=True)).reshape(-1, 3, 3)
    axes = np.concatenate([rot[:, :, k] for k in range(3)])  # (3N, 3) body axes in the lab

    def p4(nvec: np.ndarray) -> float:
        nvec = nvec / np.linalg.norm(nvec)
        c2 = (axes @ nvec) ** 2
        return float(np.sum(35 * c2 * c2 - 30 * c2 + 3) / (14.0 * len(q)))

    k = np.arange(n_trial) + 0.5
    th = np.arccos(1 - 2 * k / n_trial)
    ph = np.pi * (1 + 5**0.5) * k
    cand = np.concatenate(
        [
            np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], 1),
            axes[:: max(1, len(axes) // 200)],
        ]
    )
    start = cand[int(np.argmax([p4(c) for c in cand]))]
    res = minimize(
        lambda v: -p4(v), start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9}
    )
    return max(-float(res.fun), p4(start))


def largest_cluster(
    pos: np.ndarray,
    box: np.ndarray,
    bond_range: float,
    nlist: tuple[np.ndarray, np.ndarray] | None = None,
) -> int:
    """Size of the largest cluster of centres closer than ``bond_range`` (periodic box).

    ``nlist`` = (neighbours, counts) of a Verlet list holding every pair closer than
    ``bond_range`` (the driver's) makes it an O(N) union-find; otherwise a k-d tree.
    """
    if nlist is not None:
        box = np.asarray(box, float)
        p = np.asarray(pos, float)
        p = np.ascontiguousarray(p - box * np.floor(p / box + 0.5))
        return int(OK.largest_cluster_in_list(p, box, nlist[0], nlist[1], bond_range))
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    box = np.asarray(box, float)
    p = np.mod(np.asarray(pos, float) + 0.5 * box, box)
    p = np.where(p >= box, 0.0, p)  # mod can round up to the box edge
    pairs = cKDTree(p, boxsize=box).query_pairs(bond_range, output_type="ndarray")
    n = len(p)
    if len(pairs) == 0:
        return 1 if n else 0
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    return int(np.bincount(lab).max())


# ----------------------------------------------------------------------------- summary
def summarize(traj: Any) -> dict[str, Any]:
    """Summary of a run read back from GSD (:class:`saxsred.mc.snapshot.Trajectory`).

    Means over the production blocks (the second half of the run by default) with
    standard errors from the block averages; structural measures of the last frame.
    """
    from . import _kernels as K

    params = traj.params
    last = traj.states[-1]
    b = traj.blocks
    prod = b.get("production", np.zeros(0)).astype(bool) if b else np.zeros(0, bool)

    def stat(key: str) -> tuple[float, float]:
        if key not in b or not prod.any():
            return math.nan, math.nan
        return block_mean(b[key][prod])

    p, pe = stat("pressure")
    vs, vse = stat("vacancy_spread")
    sl, sle = stat("string_length")
    at, _ = stat("acceptance_translate")
    ar, _ = stat("acceptance_rotate")
    en, ene = stat("energy")
    rot = K.quats_to_rots(
        last.orientations / np.linalg.norm(last.orientations, axis=1, keepdims=True)
    )
    out: dict[str, Any] = {
        "file": str(traj.path),
        "n_particles": last.n,
        "phi": last.phi,
        "box": [float(x) for x in last.box],
        "beta_eps": params.get("beta_eps", math.nan),
        "well_range": params.get("well_range", math.nan),
        "seed": traj.provenance.get("seed"),
        "sweeps": traj.provenance.get("sweeps"),
        "production_blocks": int(prod.sum()),
        "acceptance": {"translate": at, "rotate": ar},
        "steps": traj.provenance.get("steps"),
        "pressure": p,
        "pressure_err": pe,
        "compressibility_factor": p / last.phi if math.isfinite(p) else math.nan,
        "compressibility_factor_err": pe / last.phi if math.isfinite(pe) else math.nan,
        "energy_per_particle": en,
        "energy_per_particle_err": ene,
        "vacancy_spread": vs,
        "vacancy_spread_err": vse,
        "string_length": sl,
        "string_length_err": sle,
        "cubatic_order": cubatic_order(last.orientations),
        "largest_cluster": largest_cluster(
            last.positions, last.box, params.get("well_range", 1.14)
        ),
        "overlaps": int(
            K.count_overlaps(np.ascontiguousarray(last.positions), rot, np.asarray(last.box, float))
        ),
        "max_block_overlaps": int(np.nanmax(b["overlaps"]))
        if b and "overlaps" in b and len(b["overlaps"])
        else 0,
        "interrupted": bool(traj.provenance.get("interrupted", False)),
    }
    lat = VacancyLattice.from_state(last)
    if lat is not None:
        va = lat.analyze(last.positions)
        out["n_sites"] = lat.n_sites
        out["empty_sites_last"] = va.empty_sites.tolist()
    else:
        # no lattice to hold a vacancy: say so instead of reporting NaN as a measurement
        for key in ("vacancy_spread", "vacancy_spread_err", "string_length", "string_length_err"):
            out[key] = None
        out["vacancy_spread_reason"] = (
            f"the run started from a {str(traj.provenance.get('state', {}).get('start', 'state')).replace('_', ' ')} "
            "without a lattice; vacancy analysis applies to a crystal start (saxsred mc run --n-cells)"
        )
    return out
