"""Bragg peaks: find, fit, index and size the supraparticle lattice.

From a reduced curve (the effective structure factor S_eff(q) of the form-factor stage,
or I(q) over a smooth baseline) to "simple cubic, a = 11.4 +/- 0.1 nm, ordered over about
166 nm", with the evidence a referee asks for (SCIENCE.md section 4):

1. :func:`find_peaks`: candidates from the data. A Ricker (Mexican-hat) matched filter of
   the residual over a clipped baseline in units of the baseline-level noise (the null
   hypothesis; error bars that grow with the signal would flatten a strong peak's top
   into a false pair); a candidate needs a filter significance above ``threshold``
   standard deviations (default 5), so noise does not become peaks and weak but real
   peaks are kept.
2. :func:`fit_peaks`: all peaks fitted together over the baseline with lmfit, shapes
   Gaussian, Lorentzian, pseudo-Voigt (one shared eta) and Voigt (one shared Gaussian
   width); the shape is chosen by the Bayesian information criterion with known error
   bars, BIC = chi^2 + k ln n. :func:`fit_peaks_by_segment` fits groups of peaks far
   apart separately (bounded cost on long many-peak curves).
3. :func:`index_peaks`: the space groups of :mod:`saxsred.lattice`; positions decide; lattice
   parameter by weighted least squares through the origin, q = 2 pi sqrt(s)/a; a cost per
   candidate from positions, unexplained peaks, predicted-but-absent reflections and
   intensities (multiplicity x oriented cube amplitude |F(G)|^2 x Lorentz 1/q^2), plus
   physical plausibility when the cube edge is known.
4. :func:`fit_lattice`: the lattice-tied global fit: centres 2 pi sqrt(s)/a from one a,
   Voigt peaks whose Gaussian part is fixed to the instrument and whose Lorentzian FWHM
   follows the size/disorder model w(q) = 2 pi K/L (+ slope q or q^2).
5. :func:`coherence_length`, :func:`size_disorder`: L = 2 pi K / dq_sample with the
   instrument removed according to the shape, from the lowest-order indexed peak that is
   resolved from its neighbours and whose width the data measure (wider than two q steps,
   two standard errors from zero); Williamson-Hall (q) and paracrystal (q^2)
   fits with three or more orders.
6. :func:`analyze_peaks`: the one-call stage; :func:`fit_azimuthal_peaks` for chi traces.

Widths are FWHM in nm^-1 unless a name says otherwise.

Modules: :mod:`.profiles` (peak shapes), :mod:`.find`, :mod:`.fit`, :mod:`.segments`, :mod:`.predict`
(predicted lines; crystallography from :mod:`saxsred.lattice`), :mod:`.score` (one indexing
hypothesis), :mod:`.hypotheses` (a lattice's seeds refined and bounded at once), :mod:`.index`,
:mod:`.coherence`, :mod:`.lattice_fit`, :mod:`.azimuthal`, :mod:`.analysis` (the one-call
stage). Every public name is re-exported here.
"""

from __future__ import annotations

from .analysis import PeakAnalysis, analyze_peaks, clean_json
from .azimuthal import AzimuthalFit, fit_azimuthal_peaks
from .coherence import (
    AGBH_D001_NM,
    AGBH_Q001_INV_NM,
    Coherence,
    SizeDisorder,
    coherence_length,
    instrument_fwhm_from_calibrant,
    sample_width,
    size_disorder,
)
from .find import FoundPeaks, find_peaks
from .fit import Peak, PeakFit, fit_peaks
from .index import Candidate, Indexing, index_peaks
from .lattice_fit import LatticeFit, fit_lattice, lattice_parameters, lattice_residual
from .predict import (
    CUBIC,
    HCP_C_OVER_A,
    LATTICES,
    Reflection,
    Shell,
    aligned_allowed,
    formfactor_functions,
    lattice_shells,
    nn_distance,
    oriented_intensity,
    packing_fraction,
    reflections,
)
from .profiles import (
    SHAPES,
    gauss_profile,
    integral_breadth,
    lorentz_profile,
    pvoigt_components,
    pvoigt_profile,
    voigt_fwhm,
    voigt_lorentz_part,
    voigt_profile,
    wofz_with_derivative,
)
from .segments import fit_peaks_by_segment

__all__ = [
    "AGBH_D001_NM",
    "AGBH_Q001_INV_NM",
    "CUBIC",
    "HCP_C_OVER_A",
    "LATTICES",
    "SHAPES",
    "AzimuthalFit",
    "Candidate",
    "Coherence",
    "FoundPeaks",
    "Indexing",
    "LatticeFit",
    "Peak",
    "PeakAnalysis",
    "PeakFit",
    "Reflection",
    "Shell",
    "SizeDisorder",
    "aligned_allowed",
    "analyze_peaks",
    "clean_json",
    "coherence_length",
    "find_peaks",
    "fit_azimuthal_peaks",
    "fit_lattice",
    "fit_peaks",
    "fit_peaks_by_segment",
    "formfactor_functions",
    "gauss_profile",
    "index_peaks",
    "instrument_fwhm_from_calibrant",
    "integral_breadth",
    "lattice_parameters",
    "lattice_residual",
    "lattice_shells",
    "lorentz_profile",
    "nn_distance",
    "oriented_intensity",
    "packing_fraction",
    "pvoigt_components",
    "pvoigt_profile",
    "reflections",
    "sample_width",
    "size_disorder",
    "voigt_fwhm",
    "voigt_lorentz_part",
    "voigt_profile",
    "wofz_with_derivative",
]
