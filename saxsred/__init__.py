"""saxsred: SAXS/WAXS data reduction and analysis for nanocrystal supraparticles.

Stages (each a plain function on small data objects):

- :mod:`saxsred.io` reads frames (fabio) and writes/reads 1-D curves (text, NXcanSAS);
- :mod:`saxsred.geometry` builds pyFAI geometries from PONI files or ESRF headers;
- :mod:`saxsred.reduce` runs the correction chain and integrates frames to I(q);
- :mod:`saxsred.formfactor` models and fits the nanocrystal form factor;
- :mod:`saxsred.peaks` fits, indexes and sizes Bragg peaks;
- :mod:`saxsred.mc` simulates hard cubes with a square-well attraction;
- :mod:`saxsred.pipeline` runs TOML recipes locally or on dask.distributed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import FitError, GeometryError, InputError, ParameterError, SaxsredError

__all__ = [
    "__version__",
    "SaxsredError",
    "InputError",
    "GeometryError",
    "FitError",
    "ParameterError",
]
