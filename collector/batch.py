"""What flows between the stages: `RawBatch` in, `GridBatch` out, in chunk-sized steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from drivers.chunk import Chunk

if TYPE_CHECKING:  # core.video loads FFmpeg: only the stages that encode or write need it
    from core.video import EncodedFrames


@dataclass
class EpisodeClock:
    """The episode grid: `ticks` instants `period_ns` apart, starting at `start_ns`."""

    episode_id: str
    start_ns: int
    period_ns: int
    ticks: int

    def times(self, first: int, stop: int) -> np.ndarray:
        return self.start_ns + np.arange(first, stop, dtype=np.int64) * self.period_ns

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.ticks * self.period_ns


@dataclass
class RawBatch:
    """Every stream's new samples at one read of the devices."""

    clock: EpisodeClock
    index: int  # position in the episode, from 0; the writer appends in this order
    read_ns: int  # host time of the read: no sample older than this can still arrive late
    final: bool  # the last batch of the episode: every remaining tick must be emitted
    chunks: dict[str, Chunk]


@dataclass(frozen=True)
class HeldBlock:
    """A read's frames left where they arrived, out of this process: the engine's handle on
    them (the Ray engine: an object reference). Stages only carry it; the engine resolves it
    into the `RawBatch` before computation."""

    handle: object


@dataclass(frozen=True)
class EncodeJob:
    """Which rows of one read's camera chunk are new frames of a video-coded camera: the
    frames perception numbered `first`, `first + 1`, ... this episode, in capture order."""

    camera: str
    rows: np.ndarray  # (n,) intp, rows of the block's camera chunk
    first: int


@dataclass
class CameraPackets:
    """One video camera's packets from one batch: the encoder's output, and the device's
    sequence number of each packet's frame (/videos/<camera>/seq)."""

    frames: EncodedFrames
    seq: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class StreamOnGrid:
    """One stream aligned onto a run of grid ticks, with the audit trail of each choice."""

    values: dict[str, np.ndarray]  # field -> (m, ...); images become encoded bytes later
    capture_ns: np.ndarray  # (m,) capture time of the sample used (-1: none)
    dt_ns: np.ndarray  # (m,) |tick - capture time| of the sample used
    missing: np.ndarray  # (m,) bool: no sample within tolerance
    flags: dict[str, np.ndarray] = field(default_factory=dict)  # quality flags, (m,) bool
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # quality scores, (m,)
    # JPEG/PNG cameras: (m,) uint32 zlib CRC-32 of each tick's encoded frame, computed where
    # it was encoded (None: not known, the writer computes it)
    frame_crc32: np.ndarray | None = None


@dataclass
class StreamCounters:
    """What went wrong upstream of the grid for one stream during one batch."""

    samples: int = 0
    dropped: int = 0  # sequence gaps
    overflow: int = 0
    checksum_failures: int = 0
    lost_s: float = 0.0

    def add(self, other: StreamCounters) -> None:
        self.samples += other.samples
        self.dropped += other.dropped
        self.overflow += other.overflow
        self.checksum_failures += other.checksum_failures
        self.lost_s += other.lost_s


@dataclass
class GridBatch:
    """A run of consecutive grid ticks, every stream aligned, plus the raw samples behind them."""

    clock: EpisodeClock
    index: int
    final: bool
    first_tick: int
    timestamps: np.ndarray  # (m,) int64
    streams: dict[str, StreamOnGrid]
    raw: dict[str, Chunk]
    counters: dict[str, StreamCounters]
    encoding: dict[str, dict] = field(default_factory=dict)  # per image stream, once encoded
    # blocks the camera streams' frame handles point into (collector/frames.py); emptied once
    # computation has encoded the frames
    frames: dict[int, RawBatch | HeldBlock] = field(default_factory=dict)
    # video cameras: the frames of this read that the encoders must encode (perception's
    # output), then the packets they made of them (attached by the engine before execution)
    jobs: dict[str, EncodeJob] = field(default_factory=dict)
    videos: dict[str, CameraPackets] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])
