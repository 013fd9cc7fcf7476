"""GSD snapshots and trajectories of the cube Monte Carlo (HOOMD schema).

Readable by HOOMD-blue, freud and OVITO: box, float32 positions and orientations
(quaternions w, x, y, z), one type ``cube`` with its ``ConvexPolyhedron`` shape
(``particles/type_shapes``). Everything else lives under ``log/mc/``: exact float64
positions and orientations (restarts must not round cubes into contact), the
per-block observables, and in frame 0 the model parameters, the lattice and the
provenance (saxsred version, seed, parameters) as JSON. Writes are atomic.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.atomic import atomic_path

#: vertices of the unit cube (edge sigma = 1) for OVITO/HOOMD shape rendering
CUBE_SHAPE = {
    "type": "ConvexPolyhedron",
    "rounding_radius": 0.0,
    "vertices": [
        [sx * 0.5, sy * 0.5, sz * 0.5] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)
    ],
}


def _json_chunk(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, sort_keys=True).encode(), dtype=np.uint8).copy()


def _unjson(arr: Any) -> Any:
    return json.loads(np.asarray(arr, dtype=np.uint8).tobytes().decode())


def _frame(state, step: int, log: dict[str, Any]):
    import gsd.hoomd

    f = gsd.hoomd.Frame()
    f.configuration.step = int(step)
    f.configuration.box = [
        float(state.box[0]),
        float(state.box[1]),
        float(state.box[2]),
        0.0,
        0.0,
        0.0,
    ]
    f.particles.N = state.n
    f.particles.types = ["cube"]
    f.particles.typeid = np.zeros(state.n, dtype=np.uint32)
    f.particles.position = np.asarray(state.positions, dtype=np.float32)
    f.particles.orientation = np.asarray(state.orientations, dtype=np.float32)
    f.particles.type_shapes = [CUBE_SHAPE]
    f.log["mc/position_f64"] = np.asarray(state.positions, dtype=np.float64)
    f.log["mc/orientation_f64"] = np.asarray(state.orientations, dtype=np.float64)
    for k, v in log.items():
        f.log[k] = v
    return f


def _static_log(state, params: dict[str, Any] | None, provenance: dict[str, Any]) -> dict[str, Any]:
    log: dict[str, Any] = {
        "mc/params": _json_chunk(params or {}),
        "mc/provenance": _json_chunk(provenance),
    }
    if state.n_cells is not None:
        log["mc/lattice"] = np.array([*state.n_cells, state.spacing], dtype=np.float64)
        log["mc/sites"] = np.asarray(state.sites, dtype=np.float64)
    return log


def _provenance(state, extra: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__

    return {"saxsred": __version__, "state": state.provenance, **extra}


def write_snapshot(path: str | os.PathLike, state, params: dict[str, Any] | None = None) -> None:
    """Write one configuration (one GSD frame) atomically."""
    import gsd.hoomd

    log = _static_log(state, params, _provenance(state, {}))
    with atomic_path(path) as tmp, gsd.hoomd.open(name=str(tmp), mode="w") as fh:
        fh.append(_frame(state, 0, log))


def write_trajectory(path: str | os.PathLike, result) -> None:
    """Write a run: frame 0 the start state, then one frame per completed block.

    Each block frame logs ``mc/<observable>`` for every key of ``result.blocks``.
    """
    import gsd.hoomd

    prov = _provenance(
        result.initial if result.initial is not None else result.state,
        {"seed": result.seed, "sweeps": result.sweeps, "equilibration": result.equilibration,
         "interrupted": result.interrupted, "steps": list(result.steps),
         "block_sweeps": result.block_sweeps, "sample_every": result.sample_every},
    )  # fmt: skip
    start = result.initial if result.initial is not None else result.state
    log0 = _static_log(start, result.params.as_dict(), prov)
    # GSD fills a chunk missing from a frame with frame 0's, so every per-block key must
    # exist in frame 0 too (the start state: sweep 0, not production, observables NaN)
    for k in result.blocks:
        log0[f"mc/{k}"] = np.array([0.0 if k in ("sweep", "production") else np.nan])
    with atomic_path(path) as tmp, gsd.hoomd.open(name=str(tmp), mode="w") as fh:
        fh.append(_frame(start, 0, log0))
        for b, (pos, quat) in enumerate(result.frames):
            log = {f"mc/{k}": np.array([v[b]], dtype=np.float64) for k, v in result.blocks.items()}
            st = start.replace(positions=pos, orientations=quat)
            fh.append(_frame(st, int(result.blocks["sweep"][b]), log))


@dataclass
class Trajectory:
    """A GSD file read back: parameters, provenance, states and per-block logs."""

    path: str
    params: dict[str, Any]
    provenance: dict[str, Any]
    states: list[Any]
    logs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def blocks(self) -> dict[str, np.ndarray]:
        """Per-block observables (frames 1..), empty for a single snapshot."""
        return self.logs


def read_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read a GSD file written by :func:`write_trajectory` or :func:`write_snapshot`.

    Raises :class:`InputError` (what, where, fix) if the file is missing or unreadable.
    """
    import gsd.hoomd

    from .engine import MCState

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(
            f"snapshot {path} does not exist; give a .gsd file written by 'saxsred mc run'"
        )
    try:
        fh = gsd.hoomd.open(name=path, mode="r")
    except Exception as exc:
        raise InputError(
            f"cannot read snapshot {path} as GSD ({exc}); give a .gsd file written by 'saxsred mc run'"
        ) from None
    with fh:
        if len(fh) == 0:
            raise InputError(f"snapshot {path} holds no frames; rerun 'saxsred mc run'")
        f0 = fh[0]
        params = _unjson(f0.log["mc/params"]) if "mc/params" in f0.log else {}
        prov = _unjson(f0.log["mc/provenance"]) if "mc/provenance" in f0.log else {}
        lattice = f0.log.get("mc/lattice")
        sites = f0.log.get("mc/sites")
        states = []
        logs: dict[str, list[float]] = {}
        for k, f in enumerate(fh):
            box = np.asarray(f.configuration.box[:3], dtype=np.float64)
            if np.any(np.asarray(f.configuration.box[3:]) != 0):
                raise InputError(
                    f"snapshot {path} frame {k} has a triclinic box; the cube MC needs an orthorhombic one"
                )
            pos = f.log.get("mc/position_f64")
            quat = f.log.get("mc/orientation_f64")
            pos = np.asarray(
                pos if pos is not None else f.particles.position, dtype=np.float64
            ).reshape(-1, 3)
            quat = np.asarray(
                quat if quat is not None else f.particles.orientation, dtype=np.float64
            ).reshape(-1, 4)
            st = MCState(
                box=box,
                positions=pos,
                orientations=quat,
                n_cells=tuple(int(c) for c in lattice[:3]) if lattice is not None else None,
                spacing=float(lattice[3]) if lattice is not None else None,
                sites=np.asarray(sites, dtype=np.float64).reshape(-1, 3)
                if sites is not None
                else None,
                provenance={"from": path, "frame": k, **prov.get("state", {})},
            )
            states.append(st)
            if k > 0:
                for key, v in f.log.items():
                    if key.startswith("mc/") and np.size(v) == 1:
                        logs.setdefault(key[3:], []).append(float(np.asarray(v).ravel()[0]))
    return Trajectory(path, params, prov, states, {k: np.asarray(v) for k, v in logs.items()})


def read_state(path: str | os.PathLike, frame: int = -1):
    """The configuration in ``frame`` (default last) of a GSD file, as an :class:`MCState`."""
    traj = read_trajectory(path)
    try:
        return traj.states[frame]
    except IndexError:
        raise InputError(
            f"snapshot {path} has {len(traj.states)} frames; frame {frame} does not exist"
        ) from None
