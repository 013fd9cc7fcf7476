"""Space groups of supraparticle lattices: reflection conditions, rings, sites.

The one crystallography module that the peak stage (:mod:`saxsred.peaks`) and the model
structures (:mod:`saxsred.structures`) share. A lattice is named by its short name
(``"SC"``, ``"BCC"``, ``"FCC"``, ``"HCP"``, ``"hex2d"``, ``"lamellar"``, ``"A15"``,
``"diamond"``, ``"Pn-3m"``, ``"Ia-3d"``) or by its Hermann-Mauguin symbol.

Which reflections exist is decided by the reflection conditions of the space group as
tabulated in International Tables for Crystallography Vol. A (general conditions, plus the
special conditions of the occupied Wyckoff site where the structure has one, e.g. 8a of
Fd-3m for diamond). Intensities are a separate matter: :attr:`Family.basis_factor` is
|F_basis(G)|^2 / n for equal point scatterers on the basis sites (accidental zeros, such as
A15's (410), keep a ring allowed but with zero weight).

Ring positions: cubic q = 2 pi sqrt(N) / a with N = h^2 + k^2 + l^2; hexagonal
(q a / 2 pi)^2 = 4/3 (h^2 + h k + k^2) + l^2 (a/c)^2; lamellar q = 2 pi n / d. Reflections
that coincide in q (e.g. (300) and (221), both N = 9) form one ring whose multiplicity is the
sum of theirs.

Example
-------
>>> from saxsred.lattice import rings
>>> [r.s for r in rings("BCC", 8)]
[2.0, 4.0, 6.0, 8.0]
"""

from .groups import (
    CUBIC,
    HCP_C_OVER_A,
    LATTICES,
    MAX_S,
    SPACE_GROUPS,
    allowed,
    basis_factor,
    basis_positions,
    cell_vectors,
    cubic_allowed,
    dimension,
    hex_allowed,
    nn_distance,
    resolve,
    sites_per_cell,
    space_group,
)
from .rings import (
    Family,
    Ring,
    RingSequence,
    check_s_max,
    reflection_list,
    ring_positions,
    ring_s,
    ring_table,
    rings,
)

__all__ = [
    "CUBIC",
    "Family",
    "HCP_C_OVER_A",
    "LATTICES",
    "MAX_S",
    "Ring",
    "RingSequence",
    "SPACE_GROUPS",
    "allowed",
    "basis_factor",
    "basis_positions",
    "cell_vectors",
    "check_s_max",
    "cubic_allowed",
    "dimension",
    "hex_allowed",
    "nn_distance",
    "reflection_list",
    "resolve",
    "ring_positions",
    "ring_s",
    "ring_table",
    "rings",
    "sites_per_cell",
    "space_group",
]
