"""Benchmark: ``saxsred calibrate`` against pyFAI's own refinement driven by hand, same frame.

Frame: the ESRF BM26 silver-behenate Pilatus 1M frame (981 x 1043, ../shared/realdata,
wavelength 0.10326 nm given) when present, else a pyFAI-generated LaB6 frame of the same
size. Start: the published PONI 5 % off in distance and 10 px off in centre.

- ``saxsred calibrate`` as a user runs it: a new process, defaults, writing the PONI (the
  interpreter's start and imports included); the in-process stage (``calibrate_frame``)
  is printed beside it.
- The reference, pyFAI by hand as its tutorials drive it: read the frame with fabio,
  ``SingleGeometry(image, calibrant, detector, geometry)``, ``extract_cp`` on the rings the
  frame shows, ``GeometryRefinement.refine2`` (wavelength fixed), then extract and refine
  once more from the refined geometry. It is started at the published PONI (no search:
  pyFAI has none), in a process that has already imported pyFAI; a fresh ``python -c``
  with pyFAI's imports is printed as the start-up floor a command pays.

Goal: the command within 2x of the reference plus that floor. Best of 3.

Run: ``python benchmarks/calibrate.py``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "realdata" / "agbe_bm26_pilatus1m"


def frame_and_start(tmp: Path):
    """(frame path, calibrant, wavelength nm, published geometry, guess PONI path)."""
    from saxsred.geometry import Geometry, load_poni

    if (REAL / "Pilatus1M.edf").exists():
        frame = REAL / "Pilatus1M.edf"
        pub = load_poni(REAL / "Pilatus1M.poni", (1043, 981), wavelength_m=1.0326e-10)
        cal, lam = "AgBh", 0.10326
    else:
        import fabio.edfimage
        from pyFAI.calibrant import get_calibrant

        pub = Geometry(
            0.25, 0.09, 0.085, 0.01, -0.008, 0.0, 172e-6, 172e-6, 1e-10, shape=(1043, 981)
        )
        c = get_calibrant("LaB6")
        c.wavelength = 1e-10
        img = c.fake_calibration_image(pub.integrator(), resolution=0.1, Imax=2000, Imin=20)
        frame = tmp / "lab6.edf"
        fabio.edfimage.EdfImage(data=np.random.default_rng(0).poisson(img).astype(np.int32)).write(
            str(frame)
        )
        cal, lam = "LaB6", 0.1
    guess = replace(
        pub,
        dist_m=pub.dist_m * 1.05,
        poni1_m=pub.poni1_m + 10 * pub.pixel1_m,
        poni2_m=pub.poni2_m - 10 * pub.pixel2_m,
    )
    guess.write_poni(tmp / "guess.poni")
    return frame, cal, lam, pub, tmp / "guess.poni"


def pyfai_by_hand(frame: Path, cal: str, lam_nm: float, pub) -> tuple[float, int]:
    """pyFAI's SingleGeometry extraction and refinement from the published PONI; returns (dist, points)."""
    import fabio
    from pyFAI.calibrant import get_calibrant
    from pyFAI.detectors import Detector
    from pyFAI.goniometer import SingleGeometry

    img = fabio.open(str(frame)).data
    det = Detector(pub.pixel1_m, pub.pixel2_m, max_shape=img.shape)
    det.mask = (img < 0).astype(np.int8)
    c = get_calibrant(cal)
    c.wavelength = lam_nm * 1e-9
    geo = {
        "dist": pub.dist_m,
        "poni1": pub.poni1_m,
        "poni2": pub.poni2_m,
        "rot1": pub.rot1_rad,
        "rot2": pub.rot2_rad,
        "rot3": pub.rot3_rad,
        "wavelength": lam_nm * 1e-9,
    }
    sg = SingleGeometry("bench", image=img, calibrant=c, detector=det, geometry=geo)
    for _ in range(2):
        sg.extract_cp(max_rings=6)
        sg.geometry_refinement.refine2()
    return float(sg.geometry_refinement.dist), len(sg.control_points.getList())


def best_of(fn, repeat: int = 3) -> float:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def main() -> None:
    import logging

    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    from saxsred.calibrate import calibrate_frame
    from saxsred.geometry import load_poni
    from saxsred.io.frames import read_frame

    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        frame, cal, lam, pub, guess = frame_and_start(tmp)
        out = tmp / "out.poni"
        cmd = [
            sys.executable,
            "-m",
            "saxsred",
            "calibrate",
            str(frame),
            "--calibrant",
            cal,
            "--poni",
            str(guess),
            "--wavelength-nm",
            str(lam),
            "-o",
            str(out),
        ]
        subprocess.run(
            cmd, check=True, capture_output=True
        )  # warm the file cache and numba/pyc caches
        t_cmd = best_of(lambda: subprocess.run(cmd, check=True, capture_output=True))
        got = load_poni(out)
        g = load_poni(guess, wavelength_m=lam * 1e-9)
        t_stage = best_of(
            lambda: calibrate_frame(read_frame(frame), cal, poni=g, wavelength_m=lam * 1e-9)
        )
        dist_ref, npts = pyfai_by_hand(frame, cal, lam, pub)
        t_ref = best_of(lambda: pyfai_by_hand(frame, cal, lam, pub))
        imp = [
            sys.executable,
            "-c",
            "import fabio, pyFAI.goniometer, pyFAI.calibrant, pyFAI.detectors",
        ]
        t_imp = best_of(lambda: subprocess.run(imp, check=True, capture_output=True))
    print(f"frame: {frame.name} {cal}; published distance {pub.dist_m:.5f} m")
    print(
        f"saxsred calibrate: distance {got.dist_m:.5f} m; pyFAI by hand: {dist_ref:.5f} m ({npts} control points)"
    )
    print(f"saxsred calibrate (new process, search + refine + width + PONI):   {t_cmd:7.2f} s")
    print(f"  the stage in process (calibrate_frame):                           {t_stage:7.2f} s")
    print(f"pyFAI by hand (extract_cp + refine2, twice, from the answer):       {t_ref:7.2f} s")
    print(f"  start-up floor of a command importing fabio and pyFAI:            {t_imp:7.2f} s")
    print(
        f"ratio command / (pyFAI by hand + start-up floor) = {t_cmd / (t_ref + t_imp):.2f}x (goal <= 2x); "
        f"stage / pyFAI by hand = {t_stage / t_ref:.2f}x"
    )


if __name__ == "__main__":
    main()
