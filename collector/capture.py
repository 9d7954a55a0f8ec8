"""The capture side of a station: owns the open devices, hands out `RawBatch`es on demand.

It lives where the hardware is: in the driver process for the inline engine, in an actor pinned
to the station's node for the Ray engine.
"""

from __future__ import annotations

import math
import time
from collections import deque

from collector.batch import EpisodeClock, RawBatch
from collector.previews import Preview, PreviewTap, newest_frame
from collector.rig import build_rig
from drivers.base import StreamInfo, ThreadedDevice
from drivers.chunk import Chunk
from schemas.station import StationConfig

HEALTH_WINDOW_NS = 2_000_000_000  # rates are measured over the last reads of about this long
# One read hands out at most this many chunks' worth of a stream (1 s: a loop that stalled that
# long still gets every sample its ticks can use), and at most this many bytes of it (a fast
# camera); the newest; older samples are dropped as overflow (drivers/base.py read_limit).
READ_CHUNKS = 10
READ_MAX_BYTES = 48 * 2**20


class StreamHealth:
    """What the reads of one device show: its rate, its last sample, its time disconnected."""

    def __init__(self, info: StreamInfo):
        self.info = info
        self.samples = 0
        self.lost_s = 0.0
        self.last_sample_ns: int | None = None
        # (read ns, samples, arrival ns of the newest sample so far): bounded
        self.reads: deque = deque(maxlen=256)

    def add(self, read_ns: int, samples: int, newest_arrival_ns: int | None,
            lost_s: float) -> None:
        self.samples += samples
        self.lost_s += lost_s
        if newest_arrival_ns is not None:
            self.last_sample_ns = newest_arrival_ns
        self.reads.append((read_ns, samples, self.last_sample_ns))

    def rate_hz(self, now_ns: int) -> float:
        """Samples that arrived per second over the last reads, timed by their arrival stamps.

        The samples read after the window's first read are exactly those that arrived after its
        newest sample, up to the last read's newest; dividing by the span of those two arrivals
        (not of the reads) keeps a station that reads late, on a loaded host, from
        understating its device's rate."""
        recent = [(n, newest) for t, n, newest in self.reads
                  if now_ns - t <= HEALTH_WINDOW_NS and newest is not None]
        if len(recent) < 2:
            return 0.0
        span = (recent[-1][1] - recent[0][1]) / 1e9
        return sum(n for n, _ in recent[1:]) / span if span > 0 else 0.0

    def report(self, now_ns: int, connected: bool) -> dict:
        rate = self.rate_hz(now_ns)
        age = (now_ns - self.last_sample_ns) / 1e9 if self.last_sample_ns else None
        # `ok` is the driver's word (connected): the age of the last sample read also grows
        # while the pipeline lags, which is the station's lag, not the device's fault.
        return {"kind": self.info.kind, "nominal_hz": self.info.rate_hz, "rate_hz": rate,
                "samples": self.samples, "last_sample_age_s": age,
                "disconnected_s": self.lost_s, "connected": connected, "ok": connected}


def read_limit(info: StreamInfo, chunk_s: float) -> int:
    """Most samples of a stream one read hands out: what keeps every batch (and so the object
    store and the pipeline's memory) bounded when the pipeline lags."""
    by_time = math.ceil(info.rate_hz * chunk_s * READ_CHUNKS)
    return max(4, min(by_time, READ_MAX_BYTES // max(info.sample_bytes, 1)))


class Capture:
    """`lend`: each `read_batch` holds views into the devices' buffers, valid until the next
    read: for a caller that serializes the batch before it reads again (the Ray engine)."""

    def __init__(self, config: StationConfig, realtime: bool = True, lend: bool = False):
        self.rig = build_rig(config, realtime=realtime)
        chunk_s = config.episode.chunk_ms / 1000
        for device in self.rig.streams():
            if isinstance(device, ThreadedDevice):  # a lagging pipeline gets usual-size batches
                device.read_limit = read_limit(device.describe(), chunk_s)
                device.lend_reads = lend
        self.rig.open()
        self._health = {d.describe().name: StreamHealth(d.describe()) for d in self.rig.streams()}
        self.previews = PreviewTap()  # idle until the daemon's page asks (`collect_previews`)

    def describe(self) -> list[StreamInfo]:
        return [d.describe() for d in self.rig.streams()]

    def discard(self) -> int:
        """Empty every device's buffer (between episodes); returns the samples thrown away."""
        read_ns = time.monotonic_ns()
        thrown = 0
        for device in self.rig.streams():
            if not isinstance(device, ThreadedDevice):
                thrown += len(self._read_one(read_ns, device))
            elif self._preview_due(device, read_ns):
                thrown += len(self._peek(read_ns, device))
            else:
                gone = device.discard()  # no need to copy what is thrown away
                self._health[device.describe().name].add(read_ns, gone.samples,
                                                         gone.newest_arrival_ns, gone.lost_s)
                thrown += gone.samples
        return thrown

    def read_batch(self, clock: EpisodeClock, index: int, final: bool) -> RawBatch:
        read_ns = time.monotonic_ns()
        chunks = self._read()
        return RawBatch(clock=clock, index=index, read_ns=read_ns, final=final, chunks=chunks)

    def _read(self) -> dict[str, Chunk]:
        read_ns = time.monotonic_ns()
        return {d.describe().name: self._read_one(read_ns, d) for d in self.rig.streams()}

    def _read_one(self, read_ns: int, device) -> Chunk:
        chunk = device.read()
        newest = int(chunk.arrival_ns[-1]) if len(chunk) else None
        self._health[chunk.stream].add(read_ns, len(chunk), newest, chunk.lost_s)
        if newest is not None and chunk.kind == "camera" and self.previews.due(chunk.stream,
                                                                                read_ns):
            frame = newest_frame(chunk.fields, device.describe().frame_shape[1])
            if frame is not None:
                self.previews.take(chunk.stream, frame, newest, read_ns)
        return chunk

    def _preview_due(self, device: ThreadedDevice, read_ns: int) -> bool:
        """Between episodes a camera whose preview is due is read (`_peek`), not discarded."""
        info = device.describe()
        return info.kind == "camera" and self.previews.due(info.name, read_ns)

    def _peek(self, read_ns: int, device: ThreadedDevice) -> Chunk:
        """A read that lends the ring's frames instead of copying them: only the newest is
        looked at (by the preview tap, at once), and the rest are thrown away."""
        lend, device.lend_reads = device.lend_reads, True
        try:
            return self._read_one(read_ns, device)
        finally:
            device.lend_reads = lend

    def collect_previews(self) -> dict[str, Preview]:
        """The camera previews taken since the last call; asks for more (see PreviewTap)."""
        return self.previews.collect(time.monotonic_ns())

    def health(self) -> dict[str, dict]:
        """Per device: measured rate, samples so far, age of the last sample, seconds lost,
        device resets its serial parser resynchronized."""
        now = time.monotonic_ns()
        devices = {d.describe().name: d for d in self.rig.streams()}
        return {name: h.report(now, devices[name].connected)
                | {"counter_resets": getattr(devices[name], "counter_resets", 0)}
                for name, h in self._health.items()}

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
