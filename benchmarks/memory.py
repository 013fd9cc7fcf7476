"""Peak memory of a batch run does not grow with the number of frames (moved from the tests).

``saxsred run`` on 100 and on 1,100 small generated frames, each in a fresh process; prints
the peak RSS of both and their ratio (goal <= 1.2: the runner streams records to a journal
and holds one frame at a time, so memory is flat in the number of frames).
Usage: python benchmarks/memory.py [--sizes 100 1100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# peak_rss_mb: the process's own peak (VmHWM); getrusage's ru_maxrss survives exec on Linux
# and would report this benchmark's memory at the spawn (the generated frames) instead.
DRIVER = """
import json, sys
from saxsred.pipeline import run_recipe
from saxsred.pipeline.executors import peak_rss_mb
rep = run_recipe(sys.argv[1], data=sys.argv[2], output=sys.argv[3], progress=False, log=lambda s: None)
print(json.dumps({"rss_mb": peak_rss_mb(), "counts": rep.counts}))
"""


def main() -> None:
    from test_pipeline import THREADS1, make_dataset, write_recipe

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=(100, 1100))
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory(prefix="saxsred-memory-") as tmp:
        for n in args.sizes:
            d = Path(tmp) / f"d{n}"
            make_dataset(d, n - 1)
            recipe = write_recipe(d, later=False, extra='formats = ["dat"]\nnpt = 60')
            out = subprocess.run(
                [sys.executable, "-c", DRIVER, str(recipe), str(d), str(Path(tmp) / f"o{n}")],
                capture_output=True,
                text=True,
                env={**os.environ, **THREADS1},
                check=True,
            )
            res[n] = json.loads(out.stdout.strip().splitlines()[-1])
            assert res[n]["counts"] == {"done": n, "skipped": 0, "failed": 0}, res[n]
    a, b = args.sizes
    ratio = res[b]["rss_mb"] / res[a]["rss_mb"]
    print(
        f"peak RSS: {a} frames {res[a]['rss_mb']:.1f} MB, {b} frames {res[b]['rss_mb']:.1f} MB; "
        f"ratio {ratio:.2f} (goal <= 1.2)"
    )


if __name__ == "__main__":
    main()
