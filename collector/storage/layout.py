"""Where everything lives inside an episode file. The writer, reader and validator use only this.

The paths and the dataset list come from `schemas.layout` (one source of truth); this module adds
the in-pipeline `StreamLayout` and the file-system side (partial and rejected names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schemas.layout import (  # noqa: F401  (re-exported: the paths inside an episode file)
    ACTIONS,
    ALOHA_ACTION,
    ALOHA_QPOS,
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
)

PARTIAL_SUFFIX = ".partial"
REJECTED_DIR = "rejected"


@dataclass(frozen=True)
class StreamLayout:
    """One stream as the file stores it."""

    name: str
    kind: str  # camera | sensor | arm | action
    fields: dict[str, tuple[tuple[int, ...], str]]  # field -> (per-sample shape, dtype)
    rate_hz: float
    units: dict[str, str]
    quality: dict[str, str] = field(default_factory=dict)  # per-tick flag/score -> dtype

    @property
    def is_camera(self) -> bool:
        return self.kind == "camera"

    def grid_path(self, name: str) -> str:
        if self.is_camera:
            return f"{IMAGES}/{self.name}"
        root = ACTIONS if self.kind == "action" else OBSERVATIONS
        return f"{root}/{self.name}/{name}"


def episode_layout(streams: list[StreamLayout], image_shapes: dict, image_encoding: dict,
                   keep_raw: bool) -> EpisodeLayout:
    """The file layout of an episode of these streams."""
    specs = []
    for s in streams:
        image = None
        if s.is_camera:
            h, w, c = image_shapes[s.name]
            image = ImageSpec(height=h, width=w, channels=c, encoding=image_encoding["encoding"])
        fields = {} if s.is_camera else {
            name: FieldSpec(shape=shape, dtype=np.dtype(dtype).name, unit=s.units.get(name, ""))
            for name, (shape, dtype) in s.fields.items()}
        quality = {k: np.dtype(v).name for k, v in s.quality.items()}
        specs.append(StreamSpec(name=s.name, kind=s.kind, rate_hz=s.rate_hz, fields=fields,
                                quality=quality, image=image))
    return EpisodeLayout(streams=specs, keep_raw=keep_raw)


def partial_path(folder, episode_id: str):
    return folder / f"{episode_id}.h5{PARTIAL_SUFFIX}"
