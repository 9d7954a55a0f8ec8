"""`Chunk`: every sample of one stream since the last read. The unit that enters the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Chunk:
    """Samples of one stream, oldest first. All times are int64 ns of the host monotonic clock.

    `arrival_ns` is when the reader thread saw the sample; `capture_ns` is the best estimate of
    when it was captured (the device clock mapped onto the host clock, or arrival when the device
    has no clock). `fields` holds one array per field, first axis = samples; a camera has `image`.
    """

    stream: str
    kind: str  # "camera" | "sensor" | "arm" | "action"
    arrival_ns: np.ndarray
    capture_ns: np.ndarray
    device_ns: np.ndarray
    seq: np.ndarray
    fields: dict[str, np.ndarray]
    overflow: int = 0  # samples lost because the ring buffer was full, since the last read
    overflow_seq: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # their seq
    checksum_failures: int = 0
    lost_s: float = 0.0  # seconds the device was unavailable (disconnects), since the last read

    def __len__(self) -> int:
        return int(self.arrival_ns.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.fields.values())

    @classmethod
    def concat(cls, chunks: list[Chunk]) -> Chunk:
        """Join chunks of the same stream (used to carry samples across batch boundaries)."""
        first = chunks[0]
        if len(chunks) == 1:
            return first
        return cls(
            stream=first.stream,
            kind=first.kind,
            arrival_ns=np.concatenate([c.arrival_ns for c in chunks]),
            capture_ns=np.concatenate([c.capture_ns for c in chunks]),
            device_ns=np.concatenate([c.device_ns for c in chunks]),
            seq=np.concatenate([c.seq for c in chunks]),
            fields={k: np.concatenate([c.fields[k] for c in chunks]) for k in first.fields},
            overflow=sum(c.overflow for c in chunks),
            overflow_seq=np.concatenate([c.overflow_seq for c in chunks]),
            checksum_failures=sum(c.checksum_failures for c in chunks),
            lost_s=sum(c.lost_s for c in chunks),
        )

    def take(self, index: np.ndarray | slice, without: tuple[str, ...] = ()) -> Chunk:
        """A chunk holding only the samples at `index` (counters stay with the original),
        and only the fields not named in `without`."""
        return Chunk(
            stream=self.stream,
            kind=self.kind,
            arrival_ns=self.arrival_ns[index],
            capture_ns=self.capture_ns[index],
            device_ns=self.device_ns[index],
            seq=self.seq[index],
            fields={k: v[index] for k, v in self.fields.items() if k not in without},
        )
