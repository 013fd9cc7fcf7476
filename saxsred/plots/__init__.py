"""Diagnostic figures: one function per figure, each taking result objects.

Figures live in one sub-module per stage (``frames``, ``formfactor``, ``peaks``, ``mc``)
and use matplotlib's Agg backend, so they work without a screen.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
