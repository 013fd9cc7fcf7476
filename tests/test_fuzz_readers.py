"""Fuzzing of the readers (issue 14): every malformed input gives a one-line SaxsredError,
never another exception, a multi-line message or a hang.

hypothesis drives each reader with a bounded number of examples (``FUZZ_EXAMPLES``, 150 by
default; set the environment variable for a longer run) and a per-example deadline that
catches hangs. Inputs are both random text and mutations of valid files (a byte or a line
changed, deleted, duplicated, truncated), which reach deeper into the parsers than noise.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

# hypothesis is a declared test dependency: failing to import it fails, never skips
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from saxsred.errors import InputWarning, SaxsredError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=N,
    deadline=10000,  # ms per example: a reader that hangs fails here (loose: 2 shared cores)
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
    derandomize=True,  # the same examples every run (reproducible suite)
    database=None,
)
COUNTS: dict[str, int] = {}


def _expect_ok_or_one_line(fn, name: str):
    """Run ``fn``; it may return or raise a one-line SaxsredError, nothing else."""
    COUNTS[name] = COUNTS.get(name, 0) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        try:
            return fn()
        except SaxsredError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, f"{name}: multi-line or empty message: {msg!r}"
            assert "Traceback" not in msg
            return None


# ---------------------------------------------------------------------------- mutations

_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
    max_size=60,
)


@st.composite
def mutated_lines(draw, base: str) -> str:
    """A valid text file with a few lines replaced, deleted, duplicated or cut."""
    lines = base.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["replace", "delete", "dup", "cut", "value", "key"]))
        if op == "replace":
            lines[i] = draw(_TEXT)
        elif op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "value" and (":" in lines[i] or "=" in lines[i]):
            sep = ":" if ":" in lines[i] else "="
            k = lines[i].split(sep, 1)[0]
            v = draw(
                st.one_of(
                    _TEXT,
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(
                        ["", "nan", "-1", "0", "1e308", "1e-320", "[]", "{", '"x"', "true"]
                    ),
                )
            )
            lines[i] = f"{k}{sep} {v}"
        elif op == "key" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = (
                lines[i][:j]
                + draw(st.sampled_from(["", "x", " ", ":", "=", "#", "[", '"']))
                + lines[i][j + 1 :]
            )
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"]))


def _write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(data, str):
        p.write_bytes(data.encode("utf-8", errors="surrogatepass"))
    else:
        p.write_bytes(data)
    return p


# --------------------------------------------------------------------------------- PONI

_PONI = """# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
poni_version: 2
Detector: Detector
Detector_config: {"pixel1": 0.000172, "pixel2": 0.000172, "max_shape": [40, 30]}
Distance: 0.208651380603
Poni1: 0.0872948482846
Poni2: 0.0799601126306
Rot1: -0.0184422457059
Rot2: 0.00413760084465
Rot3: -2.77645988275e-08
Wavelength: 4.066e-11
"""


@FUZZ
@given(text=st.one_of(mutated_lines(_PONI), _TEXT))
def test_fuzz_poni(tmp_path_factory, text):
    from saxsred.geometry import load_geometry, load_poni

    p = _write(tmp_path_factory.mktemp("poni"), "g.poni", text)
    geo = _expect_ok_or_one_line(lambda: load_poni(p), "poni")
    if geo is not None:  # what is accepted is a usable, plausible geometry
        assert 1e-3 <= geo.dist_m <= 100 and 1e-12 <= geo.wavelength_m <= 2e-9
        assert all(
            math.isfinite(v)
            for v in (geo.poni1_m, geo.poni2_m, geo.rot1_rad, geo.rot2_rad, geo.rot3_rad)
        )
    _expect_ok_or_one_line(lambda: load_geometry(p), "poni")


# ---------------------------------------------------------------------------------- EDF

_EDF_KEYS = [
    "Center_1",
    "Center_2",
    "PSize_1",
    "PSize_2",
    "SampleDistance",
    "WaveLength",
    "Dummy",
    "DDummy",
    "Intensity1",
    "Intensity0",
    "ExposureTime",
    "DetectorRotation_1",
    "Rot_2",
    "Delta",
    "Gamma",
    "BSize_1",
    "SampleThickness",
    "HSI1",
    "HSI1Factor",
    "Transmission",
    "NormalizationFactor",
    "DataType",
    "Dim_1",
    "Dim_2",
    "ByteOrder",
    "Size",
]
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        [
            "",
            "nan",
            "-0",
            "1e400",
            "abc",
            "1 2 3",
            "FloatValue",
            "UnsignedShort",
            "HighByteFirst",
            "-1",
        ]
    ),
    st.text(alphabet="0123456789.eE+- abc;=}", max_size=12),
)


def _edf_bytes(header: dict[str, str], data: bytes) -> bytes:
    body = "".join(f"{k} = {v} ;\n" for k, v in header.items())
    head = "{\n" + body
    pad = 512 - (len(head) + 2) % 512
    return (head + " " * pad + "}\n").encode("latin-1", errors="replace") + data


@FUZZ
@given(
    header=st.dictionaries(st.sampled_from(_EDF_KEYS), _VALUES, max_size=14),
    keep_geometry=st.booleans(),
    ndata=st.integers(0, 40 * 30 * 4 + 16),
)
def test_fuzz_edf_header(tmp_path_factory, header, keep_geometry, ndata):
    from saxsred.geometry import geometry_from_metadata
    from saxsred.io.frames import read_frame

    base = {
        "HeaderID": "EH:000001:000000:000000",
        "ByteOrder": "LowByteFirst",
        "DataType": "FloatValue",
        "Dim_1": "30",
        "Dim_2": "40",
        "Size": str(40 * 30 * 4),
        "Image": "1",
    }
    if keep_geometry:
        base.update(
            {
                "Center_1": "15",
                "Center_2": "20",
                "PSize_1": "1e-4",
                "PSize_2": "1e-4",
                "SampleDistance": "1",
                "WaveLength": "1e-10",
            }
        )
    base.update(header)
    data = np.arange(40 * 30, dtype="<f4").tobytes()[:ndata] + struct.pack("<f", 1.0) * max(
        0, (ndata - 4800) // 4
    )
    p = _write(tmp_path_factory.mktemp("edf"), "f.edf", _edf_bytes(base, data))
    fr = _expect_ok_or_one_line(lambda: read_frame(p), "edf")
    if fr is not None:
        assert fr.data.ndim == 2 and fr.data.size > 0
        _expect_ok_or_one_line(
            lambda: geometry_from_metadata(fr.metadata, fr.data.shape, source=str(p)), "edf"
        )


@FUZZ
@given(
    blob=st.binary(max_size=3000),
    prefix=st.sampled_from([b"", b"{\n", b"\x89HDF\r\n\x1a\n", b"II*\x00", b"###CBF"]),
)
def test_fuzz_frame_bytes(tmp_path_factory, blob, prefix):
    from saxsred.io.frames import read_frame

    for suffix in (".edf", ".tif", ".h5", ".cbf", ".npy"):
        p = _write(tmp_path_factory.mktemp("bin"), "x" + suffix, prefix + blob)
        _expect_ok_or_one_line(lambda p=p: read_frame(p), "frame_bytes")


# ------------------------------------------------------------------------------- recipes


def _recipes() -> list[str]:
    return [p.read_text() for p in sorted((ROOT / "pipelines").glob("*.toml"))]


@FUZZ
@given(data=st.data())
def test_fuzz_recipe_toml(tmp_path_factory, data):
    from saxsred.pipeline import load_recipe

    bases = _recipes()
    if not bases:
        pytest.skip("no recipes in pipelines/")
    base = data.draw(st.sampled_from(bases))
    text = data.draw(st.one_of(mutated_lines(base), _TEXT))
    p = _write(tmp_path_factory.mktemp("toml"), "r.toml", text)
    _expect_ok_or_one_line(lambda: load_recipe(p), "recipe")


# ----------------------------------------------------------------------------- 1-D text

_CURVE = """# saxsred 1-D curve
# name: c
# intensity_unit: arb
# x_unit: q_nm^-1
# provenance: {"a": 1}
# columns: q_nm^-1 I sigma
0.1 10.0 1.0
0.2 8.0 0.9
0.3 6.0 0.8
0.4 5.0 0.7
0.5 4.5 0.6
0.6 4.0 0.5
"""
_NUMS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "x", "1,2", "1e999", "-0", "nan", "#"]),
)


@FUZZ
@given(
    text=st.one_of(
        mutated_lines(_CURVE),
        _TEXT,
        st.lists(st.lists(_NUMS, min_size=1, max_size=4).map(" ".join), max_size=12).map("\n".join),
    ),
    header=st.sampled_from(
        [
            "",
            "# 2th_deg I\n",
            "# q (1/Angstrom), I\n",
            "### DATA:\n",
            "# x_unit: chi_deg\n",
            "# Wavelength: 1e-10 m\n# 2th_deg I\n",
            "# x_unit: parsec\n",
        ]
    ),
    suffix=st.sampled_from([".dat", ".xy", ".txt"]),
)
def test_fuzz_curve_text(tmp_path_factory, text, header, suffix):
    from saxsred.io.curves import read_chi, read_curve

    p = _write(tmp_path_factory.mktemp("curve"), "c" + suffix, header + text)
    c = _expect_ok_or_one_line(lambda: read_curve(p), "curve")
    if c is not None:  # an accepted curve is one every stage can use
        assert c.x_unit == "q_nm^-1"
        assert np.all(np.isfinite(c.q_nm)) and np.all(np.diff(c.q_nm) > 0)
        assert np.all(np.isfinite(c.intensity)) and np.all(c.sigma >= 0)
    _expect_ok_or_one_line(lambda: read_curve(p, keep_unit=True), "curve")
    _expect_ok_or_one_line(lambda: read_chi(p), "curve")


def test_fuzz_report():
    """Print how many examples each reader saw (the counts of this session's run)."""
    print("fuzz examples per reader:", dict(sorted(COUNTS.items())), "total", sum(COUNTS.values()))
