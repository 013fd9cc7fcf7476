"""Model supraparticles: cubes on a lattice with vacancies, positional and rotational disorder.

A :class:`Supraparticle` holds centres (nm, centred on the middle of the lattice block),
orientations (unit quaternions w, x, y, z, body to lab) and the cube edge. It is built
from nx x ny x nz conventional cells of a cubic lattice whose basis comes from
:mod:`saxsred.lattice` (SC, BCC, FCC, A15, diamond, ...), then

- bulk and surface vacancies: exact counts, round(f x sites) of each kind, chosen at random;
  a site is on the surface when it has fewer nearest neighbours in the block than a
  bulk site (so the definition holds for every lattice);
- Gaussian positional disorder: each coordinate displaced by N(0, sigma^2), which lowers
  Bragg intensities by the Debye-Waller factor exp(-q^2 sigma^2);
- rotational disorder: each cube turned by a rotation vector with independent Gaussian
  components of standard deviation FWHM / (2 sqrt(2 ln 2)), so the angle about any one
  axis (what an in-plane azimuthal trace measures, the paper's 9.6 degrees) has that FWHM;
- a size distribution: :func:`supraparticle_sizes` draws cell counts for an ensemble.

Random numbers come only from the ``numpy.random.Generator`` passed in (or seeded).
No overlap test is made: a model, not a simulation (use ``saxsred mc`` for that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ParameterError

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Supraparticle:
    """A finite cluster of cubes.

    Attributes
    ----------
    positions_nm : (N, 3) centres in nm.
    orientations : (N, 4) unit quaternions (w, x, y, z) turning the cube's axes into the lab.
    edge_nm : cube edge e (nm).
    lattice, a_nm, cells : how it was built (None for an arbitrary configuration).
    sites_nm : (M, 3) every lattice site of the block (before vacancies), or None.
    provenance : parameters, seed and software.
    """

    positions_nm: np.ndarray
    orientations: np.ndarray
    edge_nm: float
    lattice: str | None = None
    a_nm: float | None = None
    cells: tuple[int, int, int] | None = None
    sites_nm: np.ndarray | None = None
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def n(self) -> int:
        return int(self.positions_nm.shape[0])

    @property
    def aligned(self) -> bool:
        """Every cube has the same orientation (to 1e-9)."""
        q = self.orientations
        return bool(np.all(np.abs(np.abs(q @ q[0]) - 1.0) < 1e-9))

    def radius_nm(self) -> float:
        """Largest distance of a cube centre from the centroid."""
        c = self.positions_nm - self.positions_nm.mean(axis=0)
        return float(np.sqrt(np.max(np.sum(c * c, axis=1)))) if self.n else 0.0


def basis_fractional(lattice: str) -> np.ndarray:
    """Sites of one conventional cell (fractional coordinates) from :mod:`saxsred.lattice`."""
    from .. import lattice as lat

    name = lat.resolve(lattice)
    if lat.dimension(name) != 3:
        raise ParameterError(
            f"lattice {lattice!r} is not a 3-D lattice of particles; use SC, BCC, FCC, A15, diamond or HCP"
        )
    return np.asarray(lat.basis_positions(name), dtype=float).reshape(-1, 3)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4) in (w, x, y, z) order."""
    q = np.asarray(q, float)
    w, x, y, z = (q[..., i] for i in range(4))
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rotation_vector_to_quaternion(v: np.ndarray) -> np.ndarray:
    """Unit quaternions (w, x, y, z) of rotation vectors (axis x angle in rad)."""
    v = np.asarray(v, float)
    th = np.linalg.norm(v, axis=-1)
    # sin(th/2)/th -> 1/2 as th -> 0
    s = np.where(th > 1e-12, np.sin(0.5 * th) / np.where(th > 1e-12, th, 1.0), 0.5)
    return np.concatenate([np.cos(0.5 * th)[..., None], v * s[..., None]], axis=-1)


def surface_sites(sites: np.ndarray) -> np.ndarray:
    """Boolean mask of sites with fewer nearest neighbours than the most coordinated site."""
    from scipy.spatial import cKDTree

    if len(sites) < 2:
        return np.ones(len(sites), bool)
    tree = cKDTree(sites)
    d, _ = tree.query(sites, k=2)
    nn = float(np.min(d[:, 1]))
    counts = np.array([len(x) for x in tree.query_ball_point(sites, nn * 1.01)]) - 1
    return counts < counts.max()


def lattice_sites(lattice: str, a_nm: float, cells) -> np.ndarray:
    """All sites of nx x ny x nz conventional cells (nm), centred on their centroid.

    Cell vectors and basis come from :mod:`saxsred.lattice` (HCP: hexagonal axes, ideal c/a).
    """
    from .. import lattice as lat

    nx, ny, nz = (int(c) for c in cells)
    basis = basis_fractional(lattice)
    g = np.stack(
        np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij"), -1
    ).reshape(-1, 1, 3)
    frac = (g + basis[None, :, :]).reshape(-1, 3)
    sites = frac @ lat.cell_vectors(lat.resolve(lattice), a_nm)
    return sites - sites.mean(axis=0)


def build_supraparticle(
    lattice: str = "SC",
    a_nm: float = 11.4,
    edge_nm: float = 9.5,
    cells=(12, 12, 12),
    vacancies_bulk: float = 0.0,
    vacancies_surface: float = 0.0,
    disorder_pos_nm: float = 0.0,
    disorder_rot_fwhm_deg: float = 0.0,
    rng: np.random.Generator | int | None = 0,
) -> Supraparticle:
    """Cubes aligned with a cubic lattice block, with vacancies and disorder (module docstring).

    Parameters
    ----------
    lattice : a 3-D lattice of :mod:`saxsred.lattice` ("SC", "BCC", "FCC", "A15", "diamond",
        "HCP"; short name or Hermann-Mauguin symbol).
    a_nm : conventional cell edge (nm).
    edge_nm : cube edge (nm).
    cells : (nx, ny, nz) conventional cells.
    vacancies_bulk, vacancies_surface : fractions of empty bulk and surface sites.
    disorder_pos_nm : standard deviation of each coordinate's displacement (nm).
    disorder_rot_fwhm_deg : FWHM of the rotation about each axis (degrees).
    rng : numpy Generator or seed.

    Example
    -------
    >>> sp = build_supraparticle("SC", 11.4, 9.5, (4, 4, 4), vacancies_bulk=0.125, rng=1)
    >>> sp.n                                   # 64 sites, 1 of the 8 bulk sites empty
    63
    """
    cells = tuple(int(c) for c in cells)
    if len(cells) != 3 or min(cells) < 1:
        raise ParameterError(f"cells {cells}: give three positive integers nx ny nz")
    for name, v in (("a", a_nm), ("edge", edge_nm)):
        if not (v > 0 and math.isfinite(v)):
            raise ParameterError(f"{name} = {v!r} nm: must be positive")
    for name, v in (("vacancies-bulk", vacancies_bulk), ("vacancies-surface", vacancies_surface)):
        if not (0.0 <= v < 1.0):
            raise ParameterError(f"--{name} {v!r}: a fraction in [0, 1)")
    if disorder_pos_nm < 0 or disorder_rot_fwhm_deg < 0:
        raise ParameterError("disorder must be >= 0 (sigma in nm, FWHM in degrees)")
    from .. import lattice as lat

    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lattice = lat.resolve(lattice)
    sites = lattice_sites(lattice, a_nm, cells)
    surf = surface_sites(sites)
    keep = np.ones(len(sites), bool)
    for mask, frac in ((~surf, vacancies_bulk), (surf, vacancies_surface)):
        idx = np.flatnonzero(mask)
        k = int(round(frac * idx.size))
        if k:
            keep[gen.choice(idx, size=k, replace=False)] = False
    pos = sites[keep].copy()
    if disorder_pos_nm > 0:
        pos += gen.normal(0.0, disorder_pos_nm, size=pos.shape)
    quat = np.zeros((len(pos), 4))
    quat[:, 0] = 1.0
    if disorder_rot_fwhm_deg > 0:
        sig = math.radians(disorder_rot_fwhm_deg) / FWHM_PER_SIGMA
        quat = rotation_vector_to_quaternion(gen.normal(0.0, sig, size=(len(pos), 3)))
    prov = {
        "model": "supraparticle",
        "lattice": lattice,
        "a_nm": float(a_nm),
        "edge_nm": float(edge_nm),
        "cells": list(cells),
        "vacancies_bulk": float(vacancies_bulk),
        "vacancies_surface": float(vacancies_surface),
        "disorder_pos_nm": float(disorder_pos_nm),
        "disorder_rot_fwhm_deg": float(disorder_rot_fwhm_deg),
        "sites": int(len(sites)),
        "surface_sites": int(surf.sum()),
        "cubes": int(len(pos)),
    }
    return Supraparticle(pos, quat, float(edge_nm), lattice, float(a_nm), cells, sites, prov)


def supraparticle_sizes(
    cells, rel_sigma: float, count: int, rng: np.random.Generator | int | None = 0
):
    """Cell counts of ``count`` supraparticles: each edge scaled by one Gaussian factor
    1 + rel_sigma x N(0, 1) (shape kept), rounded, at least one cell."""
    if count < 1 or rel_sigma < 0:
        raise ParameterError("size distribution: count >= 1 and relative sigma >= 0")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    f = 1.0 + rel_sigma * gen.standard_normal(count)
    return [tuple(max(1, int(round(c * fk))) for c in cells) for fk in f]


def from_configuration(
    positions_nm, orientations, edge_nm: float, provenance: dict | None = None
) -> Supraparticle:
    """Any configuration (e.g. an MC snapshot scaled to nm) as a :class:`Supraparticle`."""
    pos = np.asarray(positions_nm, float).reshape(-1, 3)
    quat = np.asarray(orientations, float).reshape(-1, 4)
    if len(pos) != len(quat) or len(pos) == 0:
        raise ParameterError("configuration: need as many orientations as positions, at least one")
    norm = np.linalg.norm(quat, axis=1, keepdims=True)
    return Supraparticle(
        pos - pos.mean(axis=0), quat / norm, float(edge_nm), provenance=dict(provenance or {})
    )


def with_provenance(sp: Supraparticle, **extra: Any) -> Supraparticle:
    return replace(sp, provenance={**sp.provenance, **extra})
