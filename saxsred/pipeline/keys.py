"""Names and keys of the run state: step kinds, the state folder, report names, and the
content keys that decide whether a unit of work is up to date.

A unit's key is the XXH3 of its inputs' contents, the step's options and the software
versions; the key and the checksums of the outputs are written, after the outputs, to
``<step folder>/.saxsred/<unit>.json`` (the sidecar). A rerun skips a unit whose key and
outputs are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import provenance as prov_mod
from ..errors import SaxsredError
from ..io.jsonfile import jsonable

STEP_KINDS = (
    "reduce",
    "average",
    "subtract",
    "scale",
    "form_factor",
    "structure_factor",
    "peaks",
    "figures",
)
CURVE_KINDS = ("reduce", "average", "subtract", "scale", "structure_factor")
STATE_DIR = ".saxsred"
REPORT_NAME = "run_report.json"
SUMMARY_NAME = "run_summary.txt"


def rel_path(path: str | Path, root: str | Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def sidecar_path(outdir: str | Path, unit: str) -> Path:
    return Path(outdir) / STATE_DIR / (unit.replace("/", "__") + ".json")


def up_to_date(side: Path, key: str, root: str | Path) -> dict | None:
    """The sidecar record if its key matches and every output is present and unchanged."""
    try:
        rec = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("key") != key:
        return None
    for out in rec.get("outputs", []):
        p = Path(root) / out["path"]
        try:
            if prov_mod.file_checksum(p) != out["checksum"]:
                return None
        except OSError:
            return None
    return rec


def one_line(exc: BaseException, where: str) -> str:
    if isinstance(exc, SaxsredError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    msg = " ".join(str(exc).split())[:200]
    return f"{where}: {type(exc).__name__}: {msg}; check the file"


def spec_token(
    step: str, corrections: Any, poni: str | None, frames: Any, formats: Sequence[str]
) -> str:
    from .. import __version__

    material = {
        "step": step,
        "kind": "reduce",
        "options": corrections.describe(),
        "poni": (prov_mod.file_checksum(poni) if isinstance(poni, str) else poni.as_dict())
        if poni
        else None,
        "frames": list(frames) if frames else None,
        "formats": list(formats),
        "saxsred": __version__,
        "software": prov_mod.software_versions(),
    }
    return prov_mod.text_checksum(json.dumps(jsonable(material), sort_keys=True, default=str))


def clean_partials(folder: Path) -> None:
    """Remove temporary files a killed run left behind (``.<name>.<random>.part``)."""
    if folder.is_dir():
        for p in list(folder.glob(".*.part")) + list((folder / STATE_DIR).glob(".*.part")):
            with contextlib.suppress(OSError):
                p.unlink()
