"""The arrays every exporter writes, read from an episode and checked against its layout first.

A field is written only when it has one row per grid tick and the per-tick shape its layout
declares; anything else (a stream cut short by a crash, a hand-edited file) is an error that
names the dataset, never an array reshaped into something else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.derive import VELOCITY_OF
from collector.export.staging import ExportError
from collector.storage.layout import QUALITY
from collector.storage.reader import Episode

VELOCITIES = frozenset(VELOCITY_OF.values())  # derived arm fields, kept out of the state vector


def field_order(ep: Episode, stream: str) -> list[str]:
    """The writer's order of a stream's fields (the file's alphabetical order without a layout)."""
    layout = ep.layout
    for s in layout.streams if layout else []:
        if s.name == stream:
            return list(s.fields)
    return list(ep.fields(stream))


def grid_field(ep: Episode, stream: str, field: str) -> np.ndarray:
    """One field over the grid, (ticks, values), after checking its rows and per-tick shape."""
    values = ep.fields(stream)[field]
    n = len(ep)
    where = f"{ep.path}: {stream}.{field}"
    if values.shape[0] != n:
        raise ExportError(f"{where} has {values.shape[0]} rows, the grid has {n}; "
                          f"`collector validate` the file, or leave it out")
    layout = ep.layout
    spec = next((s.fields.get(field) for s in layout.streams if s.name == stream), None) \
        if layout else None
    if spec is not None and tuple(values.shape[1:]) != tuple(spec.shape):
        raise ExportError(f"{where} is {values.shape[1:]} per tick, its layout says "
                          f"{tuple(spec.shape)}; the file is damaged")
    return values.reshape(n, -1)


def grid_quality(ep: Episode, stream: str) -> dict[str, np.ndarray]:
    """Everything `/quality/<stream>` holds per tick (flags, scores, capture_ns, dt_ns),
    each checked to hold one value per grid tick. {} for a stream without quality."""
    if stream not in ep.file[QUALITY]:
        return {}
    n = len(ep)
    out = ep.quality(stream)
    for name, values in out.items():
        if values.shape != (n,):
            raise ExportError(f"{ep.path}: /{QUALITY}/{stream}/{name} has shape "
                              f"{values.shape}, the grid {n} ticks; `collector validate` the "
                              f"file, or leave it out")
    return out


@dataclass
class Vector:
    """Fields laid side by side, one row per tick, with one name and unit per column."""

    values: np.ndarray  # (ticks, columns)
    names: list[str]
    units: list[str]


def vector(ep: Episode, parts: list[tuple[str, str]],
           dtype: type[np.floating] = np.float32) -> Vector:
    """(stream, field) pairs side by side; each column named by the rig's channel name (its
    stream's name in front when several streams take part)."""
    n = len(ep)
    several = len({stream for stream, _ in parts}) > 1
    values, names, units = [], [], []
    for stream, field in parts:
        values.append(grid_field(ep, stream, field).astype(dtype))
        channels = ep.channels(stream, field)
        for c in channels.names:
            name = c if c.startswith(field) else f"{field}.{c}"
            names.append(f"{stream}.{name}" if several else name)
        units += channels.units
    array = np.concatenate(values, axis=1) if values else np.zeros((n, 0), dtype)
    return Vector(array, names, units)


def streams_of(ep: Episode, kind: str) -> list[str]:
    return [name for name, k in ep.streams().items() if k == kind]


def action_parts(ep: Episode) -> list[tuple[str, str]]:
    """Every field of every action stream, in the writer's order: the commanded vector."""
    return [(s, f) for s in streams_of(ep, "action") for f in field_order(ep, s)]


def state_parts(ep: Episode) -> list[tuple[str, str]]:
    """The arms' measured fields (positions, gripper), not their derived velocities."""
    return [(s, f) for s in streams_of(ep, "arm") for f in field_order(ep, s)
            if f not in VELOCITIES]


def other_parts(ep: Episode) -> list[tuple[str, str]]:
    """Every other non-camera field: sensors, and the arms' velocities."""
    taken = set(state_parts(ep)) | set(action_parts(ep))
    return [(s, f) for s, kind in ep.streams().items() if kind != "camera"
            for f in field_order(ep, s) if (s, f) not in taken]
