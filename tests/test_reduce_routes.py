"""One reduction path for every route (issue 11).

A frame whose ESRF header names its dark, flat and mask (``DarkFileName``,
``FlatfieldFileName``, ``MaskFileName``, files beside the frame) must give the same curve
through every route that reduces files: serial ``saxsred reduce``, ``--workers 2``, a
``run`` recipe, ``watch`` and ``--chi``; and the same numbers as passing those files as
options. Each route is compared with the options route, so a route that ignores one of
the header-named files fails (the dark, the flat and the mask each change the curve:
checked first, so the comparison can fail). Outputs are named after the paths as given:
three symlinks to one frame give three outputs, serially and in parallel.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from saxsred.cli import main
from saxsred.io.curves import read_curve
from saxsred.pipeline.executors import LocalExecutor

SHAPE = (72, 80)
NPT = "120"
CHI = ("0.3", "3.5", "--npt-chi", "24")


def _geometry():
    from saxsred.geometry import Geometry

    return Geometry(
        1.0,
        30.3 * 172e-6,
        41.6 * 172e-6,
        0.0,
        0.0,
        0.0,
        172e-6,
        172e-6,
        1.0e-10,
        shape=SHAPE,
        source="geo.poni",
    )


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """``named/s.edf`` (header names dark.edf, flat.edf, mask.edf beside it), ``plain/s.edf``
    (same counts, no such keys) and the three files, and geo.poni."""
    from saxsred.simulate import DetectorLayout, Exposure, simulate_frame, write_edf

    root = tmp_path_factory.mktemp("routes")
    geo = _geometry()
    geo.write_poni(root / "geo.poni")
    rng = np.random.default_rng(11)
    q = np.linspace(0.0, 4.0, 2000)
    data, hdr, _ = simulate_frame(
        q,
        0.05 + 2.0 * np.exp(-((q * 3.0) ** 2) / 3.0),
        geo,
        SHAPE,
        Exposure(),
        DetectorLayout(beamstop_radius_px=4.0),
        rng,
    )
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    dark = (3.0 + 0.05 * xx).astype(np.float32)  # a gradient: ignoring it bends the curve
    flat = (0.8 + 0.4 * rng.random(SHAPE)).astype(np.float32)
    mask = np.zeros(SHAPE, np.int8)
    mask[20:50, 10:14] = 1
    data = (data + np.rint(dark)).astype(data.dtype)
    for folder in ("named", "plain"):
        (root / folder).mkdir()
        write_edf(root / folder / "dark.edf", dark, {})
        write_edf(root / folder / "flat.edf", flat, {})
        write_edf(root / folder / "mask.edf", mask, {})
    named = {
        **hdr,
        "DarkFileName": "dark.edf",
        "FlatfieldFileName": "flat.edf",
        "MaskFileName": "mask.edf",
    }
    write_edf(root / "named" / "s.edf", data, named)
    write_edf(root / "plain" / "s.edf", data, hdr)
    return root


def _numbers(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = read_curve(path)
    return c.q_nm, c.intensity, c.sigma


def _chi(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#")


def _reduce(scene: Path, out: Path, *extra: str, folder: str = "named") -> Path:
    args = [
        "reduce",
        str(scene / folder / "s.edf"),
        "--poni",
        str(scene / "geo.poni"),
        "--npt",
        NPT,
        "-o",
        str(out),
        *extra,
    ]
    assert main(args) == 0
    return out


def _recipe(scene: Path, tmp: Path) -> Path:
    p = tmp / "recipe.toml"
    p.write_text(
        f'[recipe]\nname = "routes"\n[geometry]\nponi = "{scene / "geo.poni"}"\n'
        f'[corrections]\nnpt = {NPT}\n[[step]]\nname = "reduce"\nkind = "reduce"\ninputs = ["s.edf"]\n'
    )
    return p


@pytest.fixture(scope="module")
def options_route(scene, tmp_path_factory):
    """The reference: the same files passed as options, on the frame without header keys."""
    out = tmp_path_factory.mktemp("opts")
    files = [f"--{k}={scene / 'plain' / f'{k}.edf'}" for k in ("dark", "flat", "mask")]
    _reduce(scene, out, *files, "--chi", *CHI, folder="plain")
    return out


def test_each_header_named_file_changes_the_curve(scene, tmp_path, options_route):
    # Without this the comparison below could not fail: dropping any one of the three
    # files must change the numbers.
    ref = _numbers(options_route / "s.dat")
    for drop in ("dark", "flat", "mask"):
        keep = [
            f"--{k}={scene / 'plain' / f'{k}.edf'}" for k in ("dark", "flat", "mask") if k != drop
        ]
        got = _numbers(_reduce(scene, tmp_path / drop, *keep, folder="plain") / "s.dat")
        assert got[1].shape != ref[1].shape or not np.array_equal(got[1], ref[1]), drop


def test_every_route_applies_the_header_named_files(scene, tmp_path, options_route, monkeypatch):
    import saxsred.pipeline.session as S
    from saxsred.pipeline import run_recipe, watch_recipe

    monkeypatch.setattr(S, "LOCAL_MIN_FILES_PER_WORKER", 0)  # the dask route even for one file
    monkeypatch.setattr(LocalExecutor, "work_here", False)  # every file on a worker process

    recipe = _recipe(scene, tmp_path)
    outs = {
        "serial": _reduce(scene, tmp_path / "serial") / "s",
        "workers": _reduce(scene, tmp_path / "workers", "--workers", "2") / "s",
        "chi": _reduce(scene, tmp_path / "chi", "--chi", *CHI) / "s",
    }
    rep = run_recipe(
        recipe, data=scene / "named", output=tmp_path / "run", progress=False, log=lambda s: None
    )
    assert rep.exit_code == 0, rep.failures
    outs["run"] = tmp_path / "run" / "reduce" / "s"
    rep = watch_recipe(
        recipe,
        data=scene / "named",
        output=tmp_path / "watch",
        interval_s=0.05,
        settle_s=0.0,
        max_files=1,
        timeout_s=120,
        log=lambda s: None,
    )
    assert rep.counts["done"] == 1, rep.failures
    outs["watch"] = tmp_path / "watch" / "reduce" / "s"

    ref = _numbers(options_route / "s.dat")
    first = outs["serial"]
    for route, stem in outs.items():
        got = _numbers(stem.with_suffix(".dat"))
        for a, b, what in zip(got, ref, ("q", "I", "sigma"), strict=True):
            assert np.array_equal(a, b), (
                f"{route}: {what} differs from passing the files as options"
            )
        # the same bytes on every route (same frame, same corrections, same provenance)
        for suffix in (".dat", ".h5"):
            assert (
                stem.with_suffix(suffix).read_bytes() == first.with_suffix(suffix).read_bytes()
            ), (route, suffix)
        prov = read_curve(stem.with_suffix(".h5")).provenance
        text = str(prov)
        for kind in ("dark", "flat", "mask"):
            assert f"{kind}_file" in text, (route, kind)
    chi = _chi(tmp_path / "chi" / "s_chi.dat")
    assert np.array_equal(chi, _chi(options_route / "s_chi.dat")), (
        "--chi ignores a header-named file"
    )


@pytest.mark.parametrize("workers", [None, "2"])
def test_symlinks_are_named_after_the_link(scene, tmp_path, workers, monkeypatch):
    import saxsred.pipeline.session as S

    monkeypatch.setattr(S, "LOCAL_MIN_FILES_PER_WORKER", 0)
    monkeypatch.setattr(LocalExecutor, "work_here", False)  # every file on a worker process
    links = []
    for k in (1, 2, 3):
        link = tmp_path / f"cal_0000{k}.edf"
        os.symlink(scene / "plain" / "s.edf", link)
        links.append(str(link))
    args = [
        "reduce",
        *links,
        "--poni",
        str(scene / "geo.poni"),
        "--npt",
        NPT,
        "-o",
        str(tmp_path / "o"),
    ]
    if workers:
        args += ["--workers", workers]
    assert main(args) == 0
    for k in (1, 2, 3):
        for suffix in (".h5", ".dat"):
            assert (tmp_path / "o" / f"cal_0000{k}{suffix}").is_file()
        assert read_curve(tmp_path / "o" / f"cal_0000{k}.h5").name == f"cal_0000{k}"
    assert not (tmp_path / "o" / "s.h5").exists()
