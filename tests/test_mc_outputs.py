"""What `saxsred mc` shows: the figure's squares turned as the snapshot's cubes are, no
NaN reported as a vacancy measurement of a fluid, values printed to their error's digits
(issue 14, "small wrong outputs").
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from matplotlib.collections import PatchCollection

from saxsred.cli import main
from saxsred.mc import simple_cubic_crystal
from saxsred.mc.figure import lattice_slices


def _y_string_crystal(rng, angles_deg, axes):
    """6^3 crystal, site (0, 0, 0) empty and its gap spread along y over 4 sites.

    The vacancy row is along y, so the figure draws the x = 0 plane (y right, z up):
    the plane whose normal is x. Cube i is rotated by angles_deg[i] about axes[i].
    """
    st = simple_cubic_crystal(6, 0.80, sites=[0])
    pos = st.positions.copy()
    a = st.spacing
    lo = pos.min(0)
    row = np.flatnonzero((np.abs(pos[:, 0] - lo[0]) < 1e-9) & (np.abs(pos[:, 2] - lo[2]) < 1e-9))
    row = row[np.argsort(pos[row, 1])][:3]  # y sites 1, 2, 3
    pos[row, 1] -= a * np.array([3, 2, 1]) / 4.0
    half = np.radians(angles_deg) / 2
    q = np.column_stack([np.cos(half), np.sin(half)[:, None] * axes])
    return st.replace(positions=pos, orientations=q)


def _drawn_squares(st):
    fig = lattice_slices([st])
    (pc,) = [c for c in fig.axes[0].collections if isinstance(c, PatchCollection)]
    centres, angles = [], []
    for path in pc.get_paths():
        v = path.vertices[:4]
        centres.append(v.mean(0))
        e = v[1] - v[0]
        angles.append((math.degrees(math.atan2(e[1], e[0])) + 45) % 90 - 45)
    return np.array(centres), np.array(angles)


def _match(st, centres):
    """Index of the cube drawn at each centre (plane x = 0; coordinates y/a, z/a)."""
    a = st.spacing
    uv = (st.positions[:, 1:] + 0.5 * st.box[1:]) / a - 0.5
    layer = np.flatnonzero(st.positions[:, 0] < -0.5 * st.box[0] + a)
    d = np.linalg.norm(uv[layer][None, :, :] - centres[:, None, :], axis=2)
    assert d.min(1).max() < 0.1
    return layer[np.argmin(d, axis=1)]


def test_figure_turns_squares_by_the_rotation_about_the_plane_normal():
    rng = np.random.default_rng(3)
    n = 215
    theta = rng.uniform(-8.0, 8.0, n)
    st = _y_string_crystal(rng, theta, np.tile([1.0, 0.0, 0.0], (n, 1)))  # about x
    centres, drawn = _drawn_squares(st)
    assert len(drawn) == 35  # the 6 x 6 plane less its empty site
    # a rotation by theta about +x turns the y axis towards z by theta: drawn as +theta
    np.testing.assert_allclose(drawn, theta[_match(st, centres)], atol=1e-6)


def test_figure_never_turns_a_square_more_than_its_cube():
    rng = np.random.default_rng(5)
    n = 215
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    phi = rng.uniform(0.0, 8.9, n)  # misorientation of each cube, at most 8.9 degrees
    st = _y_string_crystal(rng, phi, axes)
    centres, drawn = _drawn_squares(st)
    mis = phi[_match(st, centres)]
    # no vector turns by more than the rotation angle, so neither does the square
    assert np.all(np.abs(drawn) <= mis + 1e-6)
    assert np.abs(drawn).max() > 3.0  # and the drawing does show the rotations


def test_fluid_run_reports_no_vacancy_measure(tmp_path, capsys):
    out = tmp_path / "fluid.gsd"
    assert main(["mc", "run", "--fluid", "60", "--phi", "0.1", "--sweeps", "40", "--seed", "2",
                 "--quiet", "-o", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["mc", "analyze", str(out)]) == 0
    text = capsys.readouterr().out
    assert "nan" not in text.lower()
    assert re.search(r"vacancy spread\s+not applicable: .*fluid", text)
    assert main(["mc", "analyze", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["vacancy_spread"] is None and s["vacancy_spread_err"] is None
    assert "fluid" in s["vacancy_spread_reason"]


def _two_significant(value: str, err: str) -> None:
    digits = err.lstrip("0.").replace(".", "")
    assert len(digits) == 2 and digits[0] != "0", err  # the error to two significant digits
    assert len(value.partition(".")[2]) == len(err.partition(".")[2])  # value to its last digit


@pytest.mark.parametrize("eps", ["0", "-1"])
def test_analyze_prints_errors_to_significant_digits(tmp_path, capsys, eps):
    out = tmp_path / "run.gsd"
    assert main(["mc", "run", "--n-cells", "5", "--vacancies", "1", "--eps", eps, "--sweeps",
                 "400", "--seed", "3", "--quiet", "-o", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["mc", "analyze", str(out)]) == 0
    text = capsys.readouterr().out
    pairs = re.findall(r"(-?\d+\.?\d*) \+/- (\d+\.?\d*)", text)
    assert len(pairs) >= 3  # pressure, Z, vacancy spread (and energy with a well)
    for value, err in pairs:
        _two_significant(value, err)
    assert not re.search(r"\+/- 0(\.0*)?(\s|$)", text)  # never "+/- 0"
    assert "nan" not in text.lower()
