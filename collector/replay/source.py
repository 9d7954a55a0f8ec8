"""What every replay mode shares: opening an episode, picking a time range, naming fields."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from collector.errors import CollectorError
from collector.storage.layout import ACTIONS, OBSERVATIONS, QUALITY
from collector.storage.reader import Episode
from collector.storage.validate import open_valid

# The documented bound on the RMS tracking error (rad, over all joints and the whole range) when
# an episode recorded on the simulated station is replayed on the simulated arm at speed 1.
# What remains is scheduling delay of the commands on a trajectory of up to ~2 rad/s: measured
# 0.002 rad on a quiet 2-core machine, 0.018 rad at load average 20, 0.062 rad once on an
# overloaded CI host (then the replay rightly reports EXCEEDS); a real arm adds its own.
DEFAULT_BOUND_RAD = 0.05


class ReplayError(CollectorError):
    """A replay request that cannot be served: bad range, unknown field, no arm to drive."""


def open_recorded(path: str | Path) -> Episode:
    """Open an episode for replay, with a clear error for a missing or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"{path}: no such episode file; pass the path of a recorded .h5")
    episode = open_valid(path)
    if len(episode) == 0:
        episode.close()
        raise ReplayError(f"{path}: the episode has no grid ticks to replay")
    return episode


@dataclass(frozen=True)
class TickRange:
    """Grid ticks [first, stop) of an episode, chosen by --start/--end in episode seconds."""

    first: int
    stop: int

    @property
    def slice(self) -> slice:
        return slice(self.first, self.stop)

    def __len__(self) -> int:
        return self.stop - self.first


def tick_range(timestamps: np.ndarray, control_hz: float, start_s: float | None,
               end_s: float | None) -> TickRange:
    """Ticks whose episode time t (0 at the first tick) lies in [start_s, end_s)."""
    n = timestamps.shape[0]
    duration = n / control_hz
    start = 0.0 if start_s is None else float(start_s)
    end = duration if end_s is None else float(end_s)
    if start < 0:
        raise ReplayError(f"--start {start:g}: must be 0 or more seconds")
    if start >= duration:
        raise ReplayError(f"--start {start:g}: the episode is only {duration:.2f} s long")
    if end <= start:
        raise ReplayError(f"--end {end:g} must be after --start {start:g} (seconds)")
    first = min(math.ceil(start * control_hz - 1e-6), n)  # tick i is at i / control_hz
    stop = min(math.ceil(end * control_hz - 1e-6), n)
    if stop <= first:
        raise ReplayError(f"--start {start:g} --end {end:g}: no grid tick in that range")
    return TickRange(first, stop)


def episode_range(episode: Episode, start_s: float | None, end_s: float | None) -> TickRange:
    return tick_range(episode.timestamps, control_hz(episode), start_s, end_s)


def control_hz(episode: Episode) -> float:
    hz = episode.metadata.get("control_hz")
    if hz:
        return float(hz)
    ts = episode.timestamps
    return 1e9 / float(np.median(np.diff(ts))) if ts.size > 1 else 1.0


@dataclass(frozen=True)
class FieldRef:
    """One channel of one stream, as the user writes it: `ft.value[2]`, `arm.qpos[0]`, or by
    the channel's name from the rig: `ft.tz`."""

    stream: str
    field: str
    index: int

    @property
    def label(self) -> str:
        return f"{self.stream}.{self.field}[{self.index}]"


_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\.([A-Za-z][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def parse_fields(text: str | None, episode: Episode) -> list[FieldRef]:
    """`ft.value[2],arm.qpos[0]` or `ft.tz` -> refs checked against the episode; None: a
    default choice."""
    if not text:
        return default_fields(episode)
    refs = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        match = _FIELD.match(item)
        if not match:
            raise ReplayError(f"--fields {item!r}: expected stream.field[index] or "
                              "stream.channel, e.g. ft.value[2] or ft.tz")
        stream, field, index = match.group(1), match.group(2), int(match.group(3) or 0)
        fields = grid_fields(episode).get(stream)
        if fields is None:
            raise ReplayError(f"--fields {item!r}: no stream {stream!r}; the episode has "
                              f"{', '.join(grid_fields(episode))}")
        if field not in fields and match.group(3) is None:  # a channel's name: ft.tz
            named = _named_channel(episode, stream, list(fields), field)
            if named is not None:
                refs.append(named)
                continue
        if field not in fields:
            channels = [n for f in fields for n in episode.channels(stream, f).names]
            raise ReplayError(f"--fields {item!r}: stream {stream!r} has no field or channel "
                              f"{field!r}; its fields: {', '.join(fields)}; its channels: "
                              f"{', '.join(channels)}")
        width = fields[field]
        if index >= width:
            raise ReplayError(f"--fields {item!r}: {stream}.{field} has {width} channel(s)")
        refs.append(FieldRef(stream, field, index))
    return refs


def _named_channel(episode: Episode, stream: str, fields: list[str],
                   name: str) -> FieldRef | None:
    """The channel the rig's YAML named `name` (`channels: [fx, ..., tz]`), in whichever field."""
    for field in fields:
        names = episode.channels(stream, field).names
        if name in names:
            return FieldRef(stream, field, names.index(name))
    return None


def grid_fields(episode: Episode) -> dict[str, dict[str, int]]:
    """Non-camera streams -> field -> channels per tick."""
    out: dict[str, dict[str, int]] = {}
    for root in (OBSERVATIONS, ACTIONS):
        if root not in episode.file:
            continue
        for name, group in episode.file[root].items():
            if name == "images" or not hasattr(group, "items"):
                continue
            out[name] = {k: int(np.prod(d.shape[1:], dtype=int)) for k, d in group.items()}
    return out


def default_fields(episode: Episode) -> list[FieldRef]:
    """The first channel of every observed (non-action) stream."""
    streams = episode.streams()
    return [FieldRef(name, next(iter(fields)), 0)
            for name, fields in grid_fields(episode).items()
            if fields and streams.get(name) not in ("camera", "action")]


def field_values(episode: Episode, ref: FieldRef, ticks: TickRange) -> np.ndarray:
    values = episode.fields(ref.stream)[ref.field][ticks.slice]
    return values.reshape(values.shape[0], -1)[:, ref.index].astype(np.float64)


def tick_flags(episode: Episode, ticks: TickRange) -> dict[str, np.ndarray]:
    """Every boolean per-tick flag, as `stream:flag` -> (n,) bool (missing included)."""
    if QUALITY not in episode.file:
        return {}
    return {f"{stream}:{key}": on[ticks.slice] for stream in episode.file[QUALITY]
            for key, on in episode.flags(stream).items()}
