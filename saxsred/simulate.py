"""Forward models: from a known I(q) to a realistic detector frame.

The frame generator is the exact inverse of the reduction chain in
:mod:`saxsred.reduce`: expected counts per pixel are

    lambda_pix = I(q_pix) * Omega_rel * P * N * flat + dark

with N the normalisation factor (monitor x transmission x thickness x Omega_poni / K),
Omega_rel and P pyFAI's relative solid angle and polarisation at each pixel. Counts are
Poisson, the dark is a Poisson dark current, and the frame gets detector gaps, a beamstop
with its holder, hot pixels and an ESRF "SAXS keyword" header. Reducing such a frame
returns the input curve within its Poisson error bars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .geometry import Geometry, geometry_to_header


@dataclass(frozen=True)
class DetectorLayout:
    """Invalid regions of a generated frame (pixels, slow axis y first)."""

    gap_rows: tuple[tuple[int, int], ...] = ()
    gap_cols: tuple[tuple[int, int], ...] = ()
    beamstop_radius_px: float = 0.0
    beamstop_arm_width_px: int = 0
    n_hot_pixels: int = 0
    dummy: int = -1


@dataclass(frozen=True)
class Exposure:
    """Beam and counting settings of a generated frame.

    ``monitor`` is the after-sample monitor I1 = I0 * T * ratio_empty; ``counts_per_unit``
    sets how many counts one unit of I(q) gives per pixel at the PONI (before transmission).
    """

    exposure_s: float = 1.0
    monitor0: float = 1.0e5
    transmission: float = 0.8
    empty_beam_ratio: float = 0.5
    thickness_mm: float = 1.5
    counts_per_unit: float = 2000.0
    dark_rate: float = 2.0
    scale: float = 1.0
    extra_header: dict[str, str] = field(default_factory=dict)

    @property
    def monitor(self) -> float:
        return self.monitor0 * self.transmission * self.empty_beam_ratio


def expected_counts(
    q_nm: np.ndarray,
    intensity: np.ndarray,
    geometry: Geometry,
    shape: tuple[int, int],
    exposure: Exposure,
    polarization_factor: float | None = 0.99,
    flat: np.ndarray | None = None,
) -> np.ndarray:
    """Noise-free counts per pixel (without dark) for a curve I(q) on a detector.

    The normalisation uses the I1 monitor, exactly as :func:`saxsred.reduce.normalisation`
    with ``monitor="auto"``: N = I1 * thickness_cm * Omega_poni / K, and
    counts = I * Omega_rel * P * N * gain. The gain (flux x detector efficiency, what an
    absolute calibration measures) is chosen so that one unit of I(q) gives
    ``counts_per_unit * T`` counts per pixel at the PONI. Returns (counts, gain).
    """
    ai = geometry.integrator()
    q = ai.qArray(shape)
    omega_rel = ai.solidAngleArray(shape)
    pol = (
        ai.polarization(shape, factor=polarization_factor)
        if polarization_factor is not None
        else 1.0
    )
    omega_poni = geometry.pixel1_m * geometry.pixel2_m / geometry.dist_m**2
    norm = exposure.monitor * (exposure.thickness_mm / 10.0) * omega_poni / exposure.scale
    # Per-unit calibration constant chosen so that one unit of I(q) gives
    # counts_per_unit * T counts at the PONI: counts = I * Omega_rel * P * norm * gain.
    gain = exposure.counts_per_unit * exposure.transmission / norm
    i_pix = np.interp(q, q_nm, intensity, left=intensity[0], right=intensity[-1])
    lam = i_pix * omega_rel * pol * norm * gain
    if flat is not None:
        lam = lam * flat
    return lam, gain


def simulate_frame(
    q_nm: np.ndarray,
    intensity: np.ndarray,
    geometry: Geometry,
    shape: tuple[int, int],
    exposure: Exposure | None = None,
    layout: DetectorLayout | None = None,
    rng: np.random.Generator | None = None,
    polarization_factor: float | None = 0.99,
    dark: np.ndarray | None = None,
    title: str = "generated",
) -> tuple[np.ndarray, dict[str, str], float]:
    """Generate a frame (int32 counts), its ESRF header and the detector gain.

    Returns
    -------
    data : int32 counts with Dummy (-1) in gaps and under the beamstop.
    header : "SAXS keyword" header: geometry, monitors, exposure, thickness, Dummy.
    gain : counts per (unit of I x normalisation); the reduced curve equals
        ``intensity * gain`` (divide by it, or put 1/gain in the scale factor).
    """
    exposure = exposure or Exposure()
    layout = layout or DetectorLayout()
    rng = rng or np.random.default_rng(0)
    lam, gain = expected_counts(q_nm, intensity, geometry, shape, exposure, polarization_factor)
    if dark is not None:
        lam = lam + dark
    elif exposure.dark_rate > 0:
        lam = lam + exposure.dark_rate * exposure.exposure_s
    counts = rng.poisson(np.maximum(lam, 0)).astype(np.int32)
    invalid = np.zeros(shape, dtype=bool)
    for a, b in layout.gap_rows:
        invalid[a:b, :] = True
    for a, b in layout.gap_cols:
        invalid[:, a:b] = True
    if layout.beamstop_radius_px > 0:
        cx, cy = geometry.poni2_m / geometry.pixel2_m, geometry.poni1_m / geometry.pixel1_m
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]] + 0.5
        invalid |= (xx - cx) ** 2 + (yy - cy) ** 2 <= layout.beamstop_radius_px**2
        if layout.beamstop_arm_width_px:
            w = layout.beamstop_arm_width_px / 2
            invalid |= (np.abs(yy - cy) <= w) & (xx <= cx)
    counts[invalid] = layout.dummy
    if layout.n_hot_pixels:
        idx = rng.choice(shape[0] * shape[1], layout.n_hot_pixels, replace=False)
        flat_view = counts.reshape(-1)
        flat_view[idx] = np.where(flat_view[idx] >= 0, flat_view[idx] + 50000, flat_view[idx])
    header = geometry_to_header(geometry)
    header.update(
        {
            "Title": title,
            "Dummy": str(layout.dummy),
            "DDummy": "0.1",
            "ExposureTime": repr(exposure.exposure_s),
            "Intensity0ShutCor": repr(exposure.monitor0),
            "Intensity1ShutCor": repr(exposure.monitor),
            "SampleThickness": repr(exposure.thickness_mm * 1e-3),
            "DetectorGain": repr(gain),
        }
    )
    header.update(exposure.extra_header)
    return counts, header, gain


def write_edf(path: str | os.PathLike, data: np.ndarray, header: dict[str, str]) -> Path:
    """Write an EDF frame with its header (fabio), atomically and deterministically."""
    import fabio.edfimage

    from .io.atomic import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        img = fabio.edfimage.EdfImage(data=data, header=dict(header))
        img.write(str(tmp))
    return p


# ------------------------------------------------------------------ the embedded sample data

#: Geometry of the sample data: ID02-like SAXS at 1 m, 12.24 keV, 172 um pixels (Pilatus-like),
#: a small 256 x 256 detector so that the frames stay small.
SAMPLE_SHAPE = (256, 256)
SAMPLE_GEOMETRY = Geometry(
    dist_m=1.0,
    poni1_m=110.7 * 172e-6,
    poni2_m=100.3 * 172e-6,
    rot1_rad=0.0,
    rot2_rad=0.0,
    rot3_rad=0.0,
    pixel1_m=172e-6,
    pixel2_m=172e-6,
    wavelength_m=1.0129e-10,
    shape=SAMPLE_SHAPE,
    source="saxs_1m.poni",
)
SAMPLE_LAYOUT = DetectorLayout(
    gap_rows=((180, 187),),
    gap_cols=((200, 204),),
    beamstop_radius_px=9.0,
    beamstop_arm_width_px=5,
    n_hot_pixels=6,
)

#: Truth used to make the sample data (SCIENCE.md: the paper's numbers).
SAMPLE_TRUTH = {
    "edge_nm": 9.5,
    "polydispersity": 0.08,
    "lattice": "SC",
    "a_nm": 11.4,
    "coherence_length_nm": 166.0,
    "phi_dilute": 2.0e-4,
    "phi_sp": 1.0e-3,
    "toluene_cm": 0.024,
    "water_cm": 0.01632,
    "agbh_d001_nm": 5.838,
    # Gaussian instrument resolution (beam size and divergence) as FWHM in q; the silver
    # behenate lines are this narrow, and the Bragg peaks are convolved with it.
    "instrument_fwhm_inv_nm": 0.012,
}


def _capillary_cm(q: np.ndarray) -> np.ndarray:
    # Quartz walls: a weak power law plus a flat level, per unit sample thickness.
    return 2.0e-4 * np.maximum(q, 0.02) ** -3 + 0.004


def sample_curves(q: np.ndarray) -> dict[str, np.ndarray]:
    """The true I(q) (cm^-1) of every sample-data frame, on the grid ``q`` (nm^-1)."""
    from .formfactor import dilute_intensity
    from .structures import bragg_structure_factor

    t = SAMPLE_TRUTH
    i0_per_phi = 4.9e4  # cm^-1 per unit volume fraction for 9.5 nm CsPbBr3 cubes in toluene
    p_nc = dilute_intensity(q, t["edge_nm"], t["polydispersity"], scale=1.0, background=0.0)
    s_sp = bragg_structure_factor(
        q,
        lattice="SC",
        a_nm=t["a_nm"],
        coherence_nm=t["coherence_length_nm"],
        edge_nm=t["edge_nm"],
        polydispersity=t["polydispersity"],
        instrument_fwhm_inv_nm=t["instrument_fwhm_inv_nm"],
    )
    cap = _capillary_cm(q)
    solvent = cap + t["toluene_cm"]
    agbh = 2e-4 * np.maximum(q, 0.02) ** -2 + 0.05
    q001 = 2 * np.pi / t["agbh_d001_nm"]
    w = t["instrument_fwhm_inv_nm"] / (2 * np.sqrt(2 * np.log(2)))
    for n, h in ((1, 40.0), (2, 8.0)):
        agbh = agbh + h * np.exp(-0.5 * ((q - n * q001) / w) ** 2)
    return {
        "empty_capillary": cap,
        "water": cap + t["water_cm"],
        "solvent": solvent,
        "dilute": solvent + i0_per_phi * t["phi_dilute"] * p_nc,
        "sp": solvent + i0_per_phi * t["phi_sp"] * p_nc * s_sp,
        "agbh": agbh,
        "nc_dilute_net": i0_per_phi * t["phi_dilute"] * p_nc,
        "structure_factor": s_sp,
    }


def make_sample_dataset(outdir: str | os.PathLike, seed: int = 20180615) -> list[Path]:
    """Write the embedded sample data: frames (EDF), PONI and mask, from :data:`SAMPLE_TRUTH`.

    Frames: ``dark``, ``empty_capillary``, ``water``, ``solvent`` (toluene), ``dilute``
    (stable dilute suspension: form factor only), ``sp_001..003`` (supraparticle
    suspension; ``sp_003`` has a bubble: 15% less sample in the beam, an outlier the series
    average must reject), ``agbh`` (silver behenate calibrant). Deterministic: the same
    seed gives byte-identical files.
    """

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    q = np.linspace(0.0, 4.0, 8001)
    curves = sample_curves(q)
    geo = SAMPLE_GEOMETRY
    shape = SAMPLE_SHAPE
    written: list[Path] = []
    base = dict(
        exposure_s=10.0,
        monitor0=2.0e5,
        empty_beam_ratio=0.5,
        thickness_mm=1.5,
        counts_per_unit=3000.0,
        dark_rate=0.3,
    )
    dark_lam = np.full(shape, base["dark_rate"] * base["exposure_s"])
    dark = rng.poisson(dark_lam).astype(np.int32)
    dark_hdr = geometry_to_header(geo)
    dark_hdr.update(
        {"Title": "dark", "ExposureTime": repr(base["exposure_s"]), "Dummy": "-1", "DDummy": "0.1"}
    )
    written.append(write_edf(out / "dark.edf", dark, dark_hdr))
    plan = [
        ("empty_capillary", "empty_capillary", 0.93, {}),
        ("water", "water", 0.58, {}),
        ("solvent", "solvent", 0.70, {}),
        ("dilute", "dilute", 0.70, {}),
        ("sp_001", "sp", 0.69, {}),
        ("sp_002", "sp", 0.69, {}),
        ("sp_003", "sp", 0.69, {"bubble": 0.85}),
        ("agbh", "agbh", 0.80, {}),
    ]
    for name, key, trans, extra in plan:
        intensity = curves[key] * extra.get("bubble", 1.0)
        exp = Exposure(transmission=trans, **base)
        data, hdr, _ = simulate_frame(
            q, intensity, geo, shape, exp, SAMPLE_LAYOUT, rng, dark=dark_lam, title=name
        )
        written.append(write_edf(out / f"{name}.edf", data, hdr))
    return written


def write_sample_calibration(outdir: str | os.PathLike) -> list[Path]:
    """Write ``saxs_1m.poni`` and ``saxs_mask.edf`` (gaps, beamstop) for the sample data."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    poni = SAMPLE_GEOMETRY.write_poni(out / "saxs_1m.poni")
    # Beamstop and gaps; one pixel wider than the generated ones (a mask is drawn generously).
    m = np.zeros(SAMPLE_SHAPE, dtype=np.int8)
    lay = SAMPLE_LAYOUT
    for a, b in lay.gap_rows:
        m[a - 1 : b + 1, :] = 1
    for a, b in lay.gap_cols:
        m[:, a - 1 : b + 1] = 1
    cx = SAMPLE_GEOMETRY.poni2_m / SAMPLE_GEOMETRY.pixel2_m
    cy = SAMPLE_GEOMETRY.poni1_m / SAMPLE_GEOMETRY.pixel1_m
    yy, xx = np.mgrid[0 : SAMPLE_SHAPE[0], 0 : SAMPLE_SHAPE[1]] + 0.5
    m[(xx - cx) ** 2 + (yy - cy) ** 2 <= (lay.beamstop_radius_px + 1.5) ** 2] = 1
    m[(np.abs(yy - cy) <= lay.beamstop_arm_width_px / 2 + 1) & (xx <= cx)] = 1
    mask = write_edf(out / "saxs_mask.edf", m, {"Title": "mask: 1 = masked (pyFAI convention)"})
    return [poni, mask]
