"""Reduction: frames to I(q), with Poisson errors propagated.

Per frame (SCIENCE.md section 2, as ESRF ID02 does it)::

    I(q) = sum_pix (raw - dark) / sum_pix [flat * Omega_rel * P * N]
    N    = monitor * T_extra * thickness_cm * Omega_poni / K

Modules, in the order of the data path:

- :mod:`~saxsred.reduce.corrections`: :class:`Corrections` (built from a mapping by
  :func:`corrections_from_mapping`, the defaults in one place), the normalisation and masks;
- :mod:`~saxsred.reduce.integrate`: :class:`Reducer` (one pyFAI engine per geometry);
- :mod:`~saxsred.reduce.series`: average, subtract, scale (water), merge;
- :mod:`~saxsred.reduce.files`: the one frame iterator :func:`iter_curves` (files and a
  frame selection in, curves out) and the file-level jobs built on it.

Example
-------
>>> red = Reducer(load_poni("calibration/saxs_1m.poni"), Corrections(npt=500))   # doctest: +SKIP
>>> curve = red.reduce(read_frame("sample_data/sp_suspension.edf"))               # doctest: +SKIP
"""

from .corrections import (
    DEFAULT_METHOD,
    FILE_KEYS,
    MONITORS,
    OPTION_KEYS,
    Corrections,
    Normalisation,
    check_corrections,
    corrections_from_mapping,
    dynamic_invalid,
    load_correction_file,
    normalisation,
    pixel_mask,
    static_mask,
)
from .files import (
    ReduceJob,
    ReduceOutput,
    ReducerCache,
    chi_profiles,
    corrections_for,
    geometry_for,
    header_files,
    iter_curves,
    iter_reducers,
    load_poni_arg,
    parse_frame_selection,
    reduce_files,
    reduce_stream,
    write_curves,
)
from .integrate import SENTINEL_DELTA, Cake, Reducer, header_dummy, reduce_frame, sentinel_value
from .series import (
    WATER_DSIGMA_20C,
    AverageResult,
    FrameVerdict,
    MergeResult,
    WaterCalibration,
    average_curves,
    merge_curves,
    scale_curve,
    series_name,
    subtract_background,
    water_scale_factor,
)

__all__ = [
    "ReducerCache",
    "header_files",
    "iter_curves",
    "iter_reducers",
    "load_poni_arg",
    "FILE_KEYS",
    "MONITORS",
    "OPTION_KEYS",
    "corrections_from_mapping",
    "load_correction_file",
    "DEFAULT_METHOD",
    "SENTINEL_DELTA",
    "WATER_DSIGMA_20C",
    "AverageResult",
    "Cake",
    "Corrections",
    "FrameVerdict",
    "MergeResult",
    "Normalisation",
    "ReduceJob",
    "ReduceOutput",
    "Reducer",
    "WaterCalibration",
    "average_curves",
    "check_corrections",
    "chi_profiles",
    "corrections_for",
    "dynamic_invalid",
    "geometry_for",
    "header_dummy",
    "merge_curves",
    "normalisation",
    "parse_frame_selection",
    "pixel_mask",
    "reduce_files",
    "reduce_frame",
    "reduce_stream",
    "scale_curve",
    "series_name",
    "sentinel_value",
    "static_mask",
    "subtract_background",
    "water_scale_factor",
    "write_curves",
]
