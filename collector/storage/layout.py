"""Where everything lives inside an episode file. The writer, reader and validator use only this."""

from __future__ import annotations

from dataclasses import dataclass, field

TIMESTAMPS = "timestamps"
IMAGES = "observations/images"
OBSERVATIONS = "observations"
ACTIONS = "actions"
QUALITY = "quality"
RAW = "raw"
EFFICIENCY = "efficiency"
ALOHA_QPOS = "observations/qpos"  # soft links, so ALOHA/ACT training code reads our files as-is
ALOHA_ACTION = "action"

SYNC_FIELDS = ("capture_ns", "dt_ns", "missing")  # per stream under /quality/<stream>/
RAW_TIMES = ("arrival_ns", "capture_ns", "device_ns", "seq")

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
