"""1-D curves: 3-column text (q nm^-1, I, sigma) and NXcanSAS HDF5, both ways.

Writers are deterministic (no dates, sorted provenance) and atomic. Readers accept the
files saxsred writes and common third-party text files (BioXTAS RAW, ESRF EDNA, Dioptas
``.xy``), and reject nonsense with one line naming the file and the fix. This module holds
the text formats (curves and azimuthal profiles) and :func:`read_curve`, the one reader
for every format; NXcanSAS lives in :mod:`saxsred.io.nxcansas` and its names
(:func:`write_nxcansas`, :func:`read_nxcansas`, :data:`X_AXIS_NAMES`) are re-exported here.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import provenance as prov_mod
from ..curve import ChiProfile, Curve
from ..errors import InputError, InputWarning
from .atomic import atomic_path
from .nxcansas import X_AXIS_NAMES, read_nxcansas, write_nxcansas

__all__ = [
    "X_AXIS_NAMES",
    "detect_x_unit",
    "estimate_sigma",
    "read_chi",
    "read_curve",
    "read_nxcansas",
    "write_chi",
    "write_dat",
    "write_nxcansas",
]

_NUM_ROW = re.compile(r"^\s*[-+]?(\d|\.\d)")


# Header words that name the abscissa, most specific first. Each pattern is matched on a
# lower-cased header line; the line nearest the data (the column labels) wins.
_UNIT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("2th_deg", re.compile(r"2th_deg|2[-_ ]?theta.{0,3}\(?deg|\b2theta\b|2θ|\btth\b")),
    ("2th_rad", re.compile(r"2th_rad|2[-_ ]?theta.{0,3}\(?rad")),
    ("chi_deg", re.compile(r"\bchi_deg\b")),
    ("r_mm", re.compile(r"\br_mm\b")),
    ("q_nm^-1", re.compile(r"1/nm|nm\^-1|nm-1|nm\^\{-1\}|q\*nm|q_nm|inv(erse)?[ _]nm")),
    (
        "q_A^-1",
        re.compile(
            r"1/a\b|1/å|a\^-1|å\^-1|\ba-1\b|1/angstrom|angstrom\^-1|inv(erse)?[ _]a(ngstrom)?\b|q_a\^-1"
        ),
    ),
)


_EXPLICIT_UNIT = re.compile(r"^\s*[#!;%]?\s*(x_unit|q_unit|unit)\s*[:=]\s*(\S+)", re.IGNORECASE)


_WAVELENGTH = re.compile(
    r"^\s*[#!;%]?\s*wave_?length(_nm|_m|_a)?\s*[:=]\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*(nm|m|a|å|angstrom)?\b",
    re.IGNORECASE,
)


def detect_x_unit(header_lines: list[str]) -> tuple[str | None, str]:
    """The abscissa unit a file's header states, and why: ``(unit or None, reason)``.

    An explicit ``x_unit:``/``q_unit:`` line wins; otherwise the unit words of the header
    line nearest the data (the column labels: ``# 2th_deg I``, ``# q (1/Angstrom)``,
    ``# L q*nm I_ stddev``); BioXTAS RAW's ``### DATA:`` files are in A^-1 by RAW's convention.
    """
    for line in header_lines:
        m = _EXPLICIT_UNIT.match(line)
        if m:
            from ..curve import normalize_x_unit

            return normalize_x_unit(
                m.group(2), f"header line {line.strip()!r}"
            ), f"header '{line.strip()}'"
    for line in reversed(header_lines):
        low = line.lower()
        for unit, pat in _UNIT_PATTERNS:
            if pat.search(low):
                return unit, f"header '{' '.join(line.split())[:60]}'"
    if any(line.strip().lower().startswith("### data:") for line in header_lines):
        return "q_A^-1", "BioXTAS RAW file ('### DATA:'), which writes q in A^-1"
    return None, "no unit in the header"


def _header_wavelength_nm(header_lines: list[str]) -> float | None:
    for line in header_lines:
        m = _WAVELENGTH.match(line)
        if not m:
            continue
        key, val, unit = (m.group(1) or "").lower(), float(m.group(2)), (m.group(3) or "").lower()
        if key == "_nm" or unit == "nm":
            wl = val
        elif key == "_m" or unit == "m" or (not unit and not key and val < 1e-6):
            wl = val * 1e9  # pyFAI/Dioptas/EDNA headers give metres
        elif key == "_a" or unit in ("a", "å", "angstrom"):
            wl = val * 0.1
        else:
            continue  # a bare number of unknown unit: not guessed
        if 1e-3 <= wl <= 2.0:
            return wl
    return None


def estimate_sigma(y: np.ndarray, window: int = 21) -> tuple[np.ndarray, str]:
    """Standard deviations of a curve's points from the data's own point-to-point scatter.

    The DER_SNR estimator (Stoehr et al. 2008, ASP Conf. Ser. 394, 505), made local:
    sigma_i = 1.482602 / sqrt(6) x the running median over ``window`` points of
    |2 I_i - I_(i-2) - I_(i+2)|. A smooth signal (linear or gently curved over 5 points)
    cancels; a sharp peak over a few points is outvoted by the median. Returns the
    sigma array and a one-line description for provenance.
    """
    from scipy.ndimage import median_filter

    y = np.asarray(y, dtype=float)
    n = y.size
    desc = (
        "sigma estimated from the data's own scatter (local DER_SNR: 1.4826/sqrt(6) x running "
        f"median over {window} points of |2 I_i - I_(i-2) - I_(i+2)|; Stoehr et al. 2008)"
    )
    if n < 5:
        s = np.full(n, max(float(np.std(y)), 1e-300))
        return s, "sigma set to the standard deviation of the (fewer than 5) points"
    d = np.abs(2.0 * y[2:-2] - y[:-4] - y[4:])
    med = median_filter(d, size=min(window, d.size), mode="nearest")
    s = np.empty(n)
    s[2:-2] = 1.482602 / np.sqrt(6.0) * med
    s[:2], s[-2:] = s[2], s[-3]
    pos = s > 0
    if not np.any(pos):
        s = np.full(n, max(1e-3 * float(np.max(np.abs(y))), 1e-300))
        return s, "data without scatter: sigma set to 1e-3 of the largest |I|"
    return np.maximum(s, s[pos].min()), desc


def read_curve(
    path: str | os.PathLike,
    q_unit: str | None = None,
    *,
    wavelength_nm: float | None = None,
    keep_unit: bool = False,
) -> Curve:
    """Read a 1-D curve written by saxsred or a third-party 2/3-column text file.

    Parameters
    ----------
    path : file name; ``.h5``/``.nxs``/``.hdf5`` are read as NXcanSAS, anything else as text.
    q_unit : the abscissa unit when the header does not say it, or to override it:
        ``"nm^-1"``, ``"A^-1"``, ``"2th_deg"``, ... (see :func:`saxsred.curve.normalize_x_unit`).
        None (default): from the header (saxsred ``# x_unit:``, Dioptas/pyFAI ``# 2th_deg I``,
        ``# q (1/Angstrom)``, EDNA ``q*nm``, BioXTAS RAW ``### DATA:`` = A^-1); a file that
        does not say is read as nm^-1, and that assumption is stated.
    wavelength_nm : wavelength for a 2theta file whose header has none.
    keep_unit : keep the file's abscissa unit. By default the curve comes back in q (nm^-1):
        A^-1 and 2theta (with a wavelength) are converted, and a file that cannot reach q
        (2theta without a wavelength, chi, detector radius) is refused.

    Returns
    -------
    Curve whose ``x_unit`` says what its abscissa is. Every assumption or conversion is
    in ``provenance["notes"]`` and raised once as an :class:`~saxsred.errors.InputWarning`.
    A 2-column file gets sigma estimated from its own scatter (:func:`estimate_sigma`),
    with ``provenance["sigma_missing"] = True`` and ``provenance["sigma_estimate"]``.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a curve file")
    notes: list[str] = []
    if p.suffix.lower() in (".h5", ".hdf5", ".nxs", ".nx"):
        curve = read_nxcansas(p)
        if q_unit is not None:
            from ..curve import normalize_x_unit

            curve = replace(curve, x_unit=normalize_x_unit(q_unit, str(p)))
    else:
        curve = _read_text(p, q_unit, notes)
    if wavelength_nm is not None:
        curve = replace(curve, wavelength_nm=float(wavelength_nm))
    _validate(curve, p)
    if not keep_unit and not curve.is_q_nm:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InputWarning)  # said once below, with the file name
            curve = curve.to_q_nm(str(p))
        conv = curve.provenance["notes"][-1]
        # one line: where the unit came from and what was done with it
        notes[:] = [f"{n}; {conv}" if n.startswith("abscissa read as") else n for n in notes]
        if not any(conv in n for n in notes):
            notes.append(conv)
        prov = dict(curve.provenance)
        prov["notes"] = prov["notes"][:-1]
        curve = replace(curve, provenance=prov)
    if notes:
        for note in notes:
            warnings.warn(f"{p.name}: {note}", InputWarning, stacklevel=2)
        prov = dict(curve.provenance)
        prov["notes"] = list(dict.fromkeys([*prov.get("notes", []), *notes]))
        curve = replace(curve, provenance=prov)
    return curve


def _read_text(p: Path, q_unit: str | None, notes: list[str]) -> Curve:
    from ..curve import X_UNIT_LABELS, normalize_x_unit

    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror}); check permissions") from None
    header_lines: list[str] = []
    rows: list[list[float]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.strip().upper().startswith("### HEADER"):
            break  # BioXTAS RAW: a JSON header follows the data
        if line.lstrip().startswith(("#", "!", ";", "%")) or not _NUM_ROW.match(line):
            header_lines.append(line)
            continue
        parts = re.split(r"[,\s]+", line.strip())
        try:
            rows.append([float(x) for x in parts])
        except ValueError:
            header_lines.append(line)
            continue
    if not rows:
        raise InputError(f"{p}: no numeric rows found; expected columns q, I[, sigma]")
    ncol = max(set(len(r) for r in rows), key=lambda n: sum(len(r) == n for r in rows))
    if ncol < 2:
        raise InputError(f"{p}: only one column; a curve needs q and I (and sigma)")
    data = np.array([r[:3] for r in rows if len(r) == ncol], dtype=float)
    if q_unit is not None and q_unit != "auto":
        x_unit = normalize_x_unit(q_unit, str(p))
    else:
        x_unit, why = detect_x_unit(header_lines)
        if x_unit is None:
            x_unit = "q_nm^-1"
            notes.append(
                "no abscissa unit in the header: read as q in nm^-1 (give --q-unit if not)"
            )
        elif x_unit != "q_nm^-1":
            notes.append(f"abscissa read as {X_UNIT_LABELS[x_unit]} from the {why}")
    i = data[:, 1]
    sigma_missing = data.shape[1] < 3
    iunit = "arb"
    prov = {}
    for line in header_lines:
        m = re.match(r"#\s*intensity_unit\s*[:=]\s*(\S+)", line)
        if m:
            iunit = m.group(1)
        m = re.match(r"#\s*provenance\s*[:=]\s*(\{.*\})\s*$", line)
        if m:
            try:
                prov = json.loads(m.group(1))
            except json.JSONDecodeError:
                prov = {}
    prov = dict(prov) if isinstance(prov, dict) else {}
    prov["source"] = prov_mod.input_record(p)
    if sigma_missing:
        s, desc = estimate_sigma(i)
        prov["sigma_missing"] = True
        prov["sigma_estimate"] = desc
        notes.append(f"no sigma column: {desc}")
    else:
        s = data[:, 2]
    wl = _header_wavelength_nm(header_lines)
    return Curve(
        data[:, 0], i, s, unit=iunit, name=p.stem, provenance=prov, x_unit=x_unit, wavelength_nm=wl
    )


def _validate(curve: Curve, p: Path) -> None:
    if len(curve) == 0:
        raise InputError(f"{p}: the curve is empty")
    if not np.all(np.isfinite(curve.q_nm)):
        raise InputError(f"{p}: q contains NaN or infinity; remove those rows")
    if np.any(curve.q_nm < 0) and curve.x_unit != "chi_deg":
        raise InputError(f"{p}: negative q values; q must be >= 0 (is the first column q?)")
    bad = ~np.isfinite(curve.intensity) | ~np.isfinite(curve.sigma)
    if np.any(bad):
        n = int(bad.sum())
        raise InputError(
            f"{p}: {n} row(s) with NaN or infinite intensity/sigma (first at x = "
            f"{curve.q_nm[bad][0]:.4g} {curve.x_unit}); remove or mask them before analysis"
        )
    if np.any(curve.sigma < 0):
        raise InputError(
            f"{p}: negative sigma values; the third column must be a standard deviation"
        )
    if np.any(np.diff(curve.q_nm) <= 0):
        raise InputError(f"{p}: q is not strictly increasing; sort the rows and remove duplicates")


_Q_STRINGS: dict[str, list[str]] = {}


def _q_strings(q: np.ndarray) -> list[str]:
    key = prov_mod.array_checksum(q)
    out = _Q_STRINGS.get(key)
    if out is None:
        if len(_Q_STRINGS) >= 8:
            _Q_STRINGS.clear()
        out = _Q_STRINGS[key] = [f"{v:.8e}" for v in q.tolist()]
    return out


def write_dat(
    curve: Curve,
    path: str | os.PathLike,
    prov_json: str | None = None,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Write a 3-column text file (x, I, sigma) with a commented provenance header.

    The abscissa is labelled with the curve's ``x_unit`` (``# x_unit: q_nm^-1`` and the
    ``# columns:`` line), and its wavelength is written when known.

    ``prov_json``: the curve's provenance already serialised (``to_json(..., indent=None)``).
    ``checksums``: receives {path: checksum of the bytes written} (no read-back).
    """
    p = Path(path)
    lines = [
        "# saxsred 1-D curve",
        f"# name: {curve.name}",
        f"# intensity_unit: {curve.unit}",
        f"# x_unit: {curve.x_unit}",
    ]
    if curve.wavelength_nm is not None:
        lines.append(f"# wavelength_nm: {curve.wavelength_nm!r}")
    lines += [
        f"# provenance: {prov_json or prov_mod.to_json(curve.provenance, indent=None)}",
        f"# columns: {curve.x_unit} I sigma",
    ]
    # One %-format over a flat tuple (three times faster than a per-row f-string), with
    # the q column formatted once per q grid: every frame of a geometry shares it.
    n = len(curve)
    cells: list[Any] = [None] * (3 * n)
    cells[0::3] = _q_strings(curve.q_nm)
    cells[1::3] = curve.intensity.tolist()
    cells[2::3] = curve.sigma.tolist()
    body = ("%s %.8e %.8e\n" * n) % tuple(cells)
    data = ("\n".join(lines) + "\n" + body).encode("utf-8")
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    if checksums is not None:
        checksums[str(p)] = prov_mod.bytes_checksum(data)
    return p


def write_chi(profile: ChiProfile, path: str | os.PathLike) -> Path:
    """Write an azimuthal profile as 3 columns (chi deg, I, sigma) with a commented header."""
    p = Path(path)
    lo, hi = profile.q_band_nm
    lines = [
        "# saxsred azimuthal profile",
        f"# name: {profile.name}",
        f"# q_band_nm: {lo!r} {hi!r}",
        f"# provenance: {json.dumps(prov_mod.plain_record(profile.provenance), sort_keys=True)}",
        "# columns: chi_deg I sigma",
    ]
    body = "\n".join(
        f"{c:.6f} {i:.8e} {s:.8e}"
        for c, i, s in zip(profile.chi_deg, profile.intensity, profile.sigma)
    )
    with atomic_path(p) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("\n".join(lines) + "\n" + body + "\n")
    return p


def read_chi(path: str | os.PathLike) -> ChiProfile:
    """Read an azimuthal profile (chi deg, I[, sigma]) written by saxsred or a 2/3-column text file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; check the path")
    band = (float("nan"), float("nan"))
    rows = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"#\s*q_band_nm:\s*(\S+)\s+(\S+)", line)
        if m:
            band = (float(m.group(1)), float(m.group(2)))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append([float(x) for x in re.split(r"[,\s]+", line.strip())][:3])
        except ValueError:
            continue
    if not rows:
        raise InputError(f"{p}: no numeric rows; expected columns chi_deg, I[, sigma]")
    n = min(len(r) for r in rows)
    if n < 2:
        raise InputError(f"{p}: only one column; an azimuthal profile needs chi and I")
    d = np.array([r[:n] for r in rows])
    sig = d[:, 2] if n >= 3 else np.zeros(len(d))
    if not np.all(np.isfinite(d)):
        raise InputError(f"{p}: NaN or infinite values; remove those rows")
    return ChiProfile(d[:, 0], d[:, 1], sig, band, p.stem, {"source": prov_mod.input_record(p)})
