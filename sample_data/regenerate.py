"""Regenerate the embedded sample data and its calibration, bit for bit.

    python sample_data/regenerate.py

Writes sample_data/*.edf and calibration/saxs_1m.poni, calibration/saxs_mask.edf with
:func:`saxsred.simulate.make_sample_dataset` and :func:`saxsred.simulate.write_sample_calibration`
(the truth they are made from is :data:`saxsred.simulate.SAMPLE_TRUTH`).
"""

from pathlib import Path

from saxsred.simulate import make_sample_dataset, write_sample_calibration

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    for p in make_sample_dataset(ROOT / "sample_data") + write_sample_calibration(
        ROOT / "calibration"
    ):
        print(p.relative_to(ROOT), p.stat().st_size, "bytes")
