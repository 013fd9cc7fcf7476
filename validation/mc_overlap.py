"""Validation: the cube overlap test against linear programming on 100,000 pairs.

Pairs as in tests/test_mc_overlap.py (random, near-touching with the contact distance
scaled by 1 +/- 1e-5..1e-2, nearly edge-parallel with tilts 0 or 1e-12..1e-2 rad, all
in a random common frame). Prints the disagreements (goal: 0), with and without the
|R_ij| padding, and the same count for the SAT alone (sphere shortcuts off).

Run: ``python validation/mc_overlap.py [N]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_mc_overlap import lp_overlap, random_pairs  # noqa: E402

from saxsred.mc import _kernels as K  # noqa: E402


def main(n: int = 100_000, seed: int = 2024) -> int:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    t, A, B = random_pairs(n, rng)
    lp, slack = lp_overlap(t, A, B)
    t_lp = time.perf_counter() - t0
    sat = K.overlap_pairs(t, A, B)
    bare = K.overlap_pairs(t, A, B, K.SAT_EPS, False)
    unpadded = K.overlap_pairs(t, A, B, 0.0, False)
    print(
        f"{n} pairs ({lp.mean():.1%} overlapping by LP; min |LP slack| {np.abs(slack).min():.1e}; LP {t_lp:.0f} s)"
    )
    print(f"  disagreements, SAT with sphere shortcuts : {np.count_nonzero(sat != lp)}")
    print(f"  disagreements, SAT alone                 : {np.count_nonzero(bare != lp)}")
    print(
        f"  disagreements, SAT without padding       : {np.count_nonzero(unpadded != lp)} (the round-off trap)"
    )
    return int(np.count_nonzero(sat != lp) > 0)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
