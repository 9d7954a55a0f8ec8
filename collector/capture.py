"""The capture side of a station: owns the open devices, hands out `RawBatch`es on demand.

It lives where the hardware is: in the driver process for the inline engine, in an actor pinned
to the station's node for the Ray engine.
"""

from __future__ import annotations

import time

from collector.batch import EpisodeClock, RawBatch
from collector.rig import build_rig
from drivers.base import StreamInfo
from schemas.station import StationConfig


class Capture:
    def __init__(self, config: StationConfig, realtime: bool = True):
        self.rig = build_rig(config, realtime=realtime)
        self.rig.open()

    def describe(self) -> list[StreamInfo]:
        return [d.describe() for d in self.rig.streams()]

    def discard(self) -> int:
        """Empty every device's buffer (between episodes); returns the samples thrown away."""
        return sum(len(d.read()) for d in self.rig.streams())

    def read_batch(self, clock: EpisodeClock, index: int, final: bool) -> RawBatch:
        read_ns = time.monotonic_ns()
        chunks = {d.describe().name: d.read() for d in self.rig.streams()}
        return RawBatch(clock=clock, index=index, read_ns=read_ns, final=final, chunks=chunks)

    def begin_task(self, start_ns: int, duration_s: float) -> None:
        if self.rig.task is not None:
            self.rig.task.begin(start_ns, duration_s)

    def end_task(self) -> bool:
        """Stop the task (the arm goes home); returns whether it succeeded."""
        if self.rig.task is None:
            return True
        self.rig.task.end()
        return self.rig.task.task.succeeded()

    def close(self) -> None:
        self.rig.close()
