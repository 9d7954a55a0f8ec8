"""Where everything lives inside an episode file. The writer, reader and validator use only this.

The paths and the dataset list come from `schemas.layout` (one source of truth); this module adds
the in-pipeline `StreamLayout` and the file-system side (partial and rejected names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from schemas.layout import (
    ACTIONS,
    ALOHA_ACTION,
    ALOHA_QPOS,
    CHANNEL_NAMES,
    CHANNEL_UNITS,
    EFFICIENCY,
    IMAGES,
    LAYOUT_ATTR,
    OBSERVATIONS,
    QUALITY,
    RAW,
    RAW_TIMES,
    SYNC_FIELDS,
    TIMESTAMPS,
    VLEN_UINT8,
    EpisodeLayout,
    FieldSpec,
    ImageSpec,
    StreamSpec,
    default_channel_names,
    summary_unit,
)

# the paths inside an episode file are re-exported from schemas.layout, so the pipeline
# imports one module
__all__ = [
    "ACTIONS",
    "ALOHA_ACTION",
    "ALOHA_QPOS",
    "CHANNEL_NAMES",
    "CHANNEL_UNITS",
    "EFFICIENCY",
    "IMAGES",
    "LAYOUT_ATTR",
    "OBSERVATIONS",
    "PARTIAL_SUFFIX",
    "QUALITY",
    "RAW",
    "RAW_TIMES",
    "REJECTED_DIR",
    "SYNC_FIELDS",
    "TIMESTAMPS",
    "VLEN_UINT8",
    "Channels",
    "EpisodeLayout",
    "FieldSpec",
    "ImageSpec",
    "StreamLayout",
    "StreamSpec",
    "dataset_channels",
    "default_channel_names",
    "episode_layout",
    "partial_path",
    "summary_unit",
]

PARTIAL_SUFFIX = ".partial"
REJECTED_DIR = "rejected"
# The station's warm-up recording (collector/station.py): thrown away, never recovered
WARM_UP_DIR = ".warm-up"


@dataclass(frozen=True)
class StreamLayout:
    """One stream as the file stores it."""

    name: str
    kind: str  # camera | sensor | arm | action
    fields: dict[str, tuple[tuple[int, ...], str]]  # field -> (per-sample shape, dtype)
    rate_hz: float
    units: dict[str, str]
    quality: dict[str, str] = field(default_factory=dict)  # per-tick flag/score -> dtype
    channels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> name per value
    channel_units: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> units

    def field_spec(self, name: str) -> FieldSpec:
        """One field as the file declares it, every channel named and with its unit."""
        shape, dtype = self.fields[name]
        count = int(np.prod(shape, dtype=int))
        names = list(self.channels.get(name) or default_channel_names(name, count))
        units = list(self.channel_units.get(name) or [self.units.get(name, "")] * count)
        return FieldSpec(shape=shape, dtype=np.dtype(dtype).name, unit=summary_unit(units),
                         channel_names=names, channel_units=units)

    @property
    def is_camera(self) -> bool:
        return self.kind == "camera"

    def grid_path(self, name: str) -> str:
        if self.is_camera:
            return f"{IMAGES}/{self.name}"
        root = ACTIONS if self.kind == "action" else OBSERVATIONS
        return f"{root}/{self.name}/{name}"


def episode_layout(streams: list[StreamLayout], image_shapes: dict[str, tuple[int, int, int]],
                   encodings: Mapping[str, str], keep_raw: bool) -> EpisodeLayout:
    """The file layout of an episode of these streams; `encodings`: per camera (jpeg, h264...)."""
    specs = []
    for s in streams:
        image = None
        if s.is_camera:
            h, w, c = image_shapes[s.name]
            image = ImageSpec(height=h, width=w, channels=c, encoding=encodings[s.name])
        fields = {} if s.is_camera else {name: s.field_spec(name) for name in s.fields}
        quality = {k: np.dtype(v).name for k, v in s.quality.items()}
        specs.append(StreamSpec(name=s.name, kind=s.kind, rate_hz=s.rate_hz, fields=fields,
                                quality=quality, image=image))
    return EpisodeLayout(streams=specs, keep_raw=keep_raw, checksums=True, frame_checksums=True)


def partial_path(folder: Path, episode_id: str) -> Path:
    return folder / f"{episode_id}.h5{PARTIAL_SUFFIX}"


@dataclass(frozen=True)
class Channels:
    """The values of one field: a name and a unit each."""

    field: str
    names: list[str]
    units: list[str]

    @property
    def named(self) -> bool:
        """False when the channels carry only their index (unnamed in YAML, or an old file)."""
        return self.names != default_channel_names(self.field, len(self.names))

    def label(self, i: int) -> str:
        return f"{self.names[i]} ({self.units[i]})" if self.units[i] else self.names[i]

    def by_unit(self) -> list[tuple[str, list[int]]]:
        """Channel indices grouped by unit, in first-seen order (forces apart from torques)."""
        groups: dict[str, list[int]] = {}
        for i, unit in enumerate(self.units):
            groups.setdefault(unit, []).append(i)
        return list(groups.items())

    def describe(self) -> str:
        """`fx fy fz (N)  tx ty tz (N*m)`"""
        parts = []
        for unit, idx in self.by_unit():
            contiguous = idx == list(range(idx[0], idx[-1] + 1))
            if not self.named and len(idx) > 1 and contiguous:
                names = f"{self.field}[{idx[0]}..{idx[-1]}]"
            else:
                names = " ".join(self.names[i] for i in idx)
            parts.append(names + (f" ({unit})" if unit else ""))
        return "  ".join(parts)


def dataset_channels(attrs: Mapping[str, Any], field: str, count: int) -> Channels:
    """A field dataset's channels from its attributes; files written before they were stored
    name channels by index and give every channel the field's one `unit`."""
    names = [str(x) for x in attrs.get(CHANNEL_NAMES, [])]
    units = [str(x) for x in attrs.get(CHANNEL_UNITS, [])]
    if len(names) != count:
        names = default_channel_names(field, count)
    if len(units) != count:
        units = [str(attrs.get("unit", ""))] * count
    return Channels(field, names, units)
