"""The one small interface every device shares: open, read the chunk since last read, close,
describe. `ThreadedDevice` supplies the reader thread and ring buffer; a driver only captures."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from core.errors import DeviceError
from drivers.chunk import Chunk
from drivers.clock import ClockMap
from drivers.ring import SampleRing
from drivers.thread_names import show_thread_name


@dataclass(frozen=True)
class FieldInfo:
    shape: tuple[int, ...]  # per sample
    dtype: str
    unit: str = ""  # of every channel, unless `units` says otherwise
    channels: tuple[str, ...] = ()  # a name per channel (empty: unnamed, shown by index)
    units: tuple[str, ...] = ()  # a unit per channel (empty: `unit` for each)

    def channel_units(self) -> tuple[str, ...]:
        return self.units or (self.unit,) * int(np.prod(self.shape, dtype=int))


@dataclass(frozen=True)
class StreamInfo:
    """What a device produces, as `describe()` reports it."""

    name: str
    kind: str  # camera | sensor | arm | action
    rate_hz: float
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    # A camera's frame (H, W, 3): its `image` field's shape, or, for a camera that hands out
    # its own JPEG bytes instead (`jpeg`, see core/codec.py), what they decode to.
    frame: tuple[int, ...] = ()

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return self.frame or self.fields["image"].shape

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample's fields (a camera: one frame)."""
        return sum(int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize
                   for f in self.fields.values())


@dataclass
class CapturedSamples:
    """The samples one `_capture` call produced (usually one frame, or a few sensor packets).

    Not the capture stage (collector/capture.py `Capture`), which reads every device."""

    device_ns: np.ndarray
    seq: np.ndarray
    values: dict[str, np.ndarray]
    arrival_ns: np.ndarray | None = None  # None: stamp all with the arrival time of the block


@dataclass(frozen=True)
class Discarded:
    """What a discard threw away: enough for the station's device health figures."""

    samples: int
    newest_arrival_ns: int | None
    lost_s: float


class Device(ABC):
    """A source of one stream of samples."""

    @abstractmethod
    def open(self) -> None: ...

    @abstractmethod
    def read(self) -> Chunk:
        """Every sample since the previous read, oldest first."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> StreamInfo: ...

    @property
    def connected(self) -> bool:
        """False while the device is gone (disconnected, reconnecting): the driver's word, not
        how recently the pipeline read it."""
        return True

    def __enter__(self) -> Device:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadedDevice(Device):
    """A device read by its own thread, which stamps each sample on arrival and fills a ring.

    Subclasses implement `_connect`, `_capture` (block until the next samples) and `_disconnect`.
    A `DeviceError` from `_capture` means the device went away: the thread reconnects with
    backoff and the unavailable time is reported in the next chunk's `lost_s`.
    """

    ring_seconds = 2.0  # how far the pipeline may fall behind before samples are refused...
    ring_max_bytes = 256 * 2**20  # ...within this much memory (a fast or big camera gets less)
    # Most samples one read hands out (None: all): the newest, the older ones counted as
    # overflow. A lagging pipeline then gets batches of the usual size, of fresh samples,
    # instead of ever larger batches of samples too late to use.
    read_limit: int | None = None
    # Reads hand out views into the ring, valid until the next read, instead of copies: for a
    # caller that serializes each chunk at once (the Ray engine's capture actor).
    lend_reads: bool = False
    max_backoff_s = 0.5  # longest wait between reconnect attempts

    def __init__(self, info: StreamInfo):
        self.info = info
        capacity = max(8, min(int(info.rate_hz * self.ring_seconds),
                              self.ring_max_bytes // max(info.sample_bytes, 1)))
        self._ring = SampleRing(capacity, {k: (f.shape, np.dtype(f.dtype))
                                           for k, f in info.fields.items()})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost_ns = 0
        self._down_since_ns: int | None = None  # while reconnecting: when the device went away
        self._lost_lock = threading.Lock()
        self._error: BaseException | None = None
        self.checksum_failures = 0
        self._reported_checksum_failures = 0
        self.counter_resets = 0  # device resets the parser resynchronized (drivers/counters.py)
        self.clock = ClockMap()
        self._clock_restarted = threading.Event()
        self._last_capture = np.iinfo(np.int64).min

    def describe(self) -> StreamInfo:
        return self.info

    @property
    def connected(self) -> bool:
        alive = self._thread is not None and self._thread.is_alive()
        return alive and self._error is None and self._down_since_ns is None

    def open(self) -> None:
        self._connect()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.info.name}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._disconnect()

    def discard(self) -> Discarded:
        """Throw away every buffered sample (between episodes) without copying them."""
        thrown, newest = self._ring.clear()
        rest = self.read()  # what came since, and what the device reports (downtime, failures)
        if len(rest):
            newest = int(rest.arrival_ns[-1])
        return Discarded(thrown + len(rest), newest, rest.lost_s)

    def read(self) -> Chunk:
        if self._error is not None:
            raise DeviceError(f"{self.info.name}: reader thread failed: {self._error}")
        times, values, overflow, overflow_seq = self._ring.drain(self.read_limit,
                                                                 self.lend_reads)
        with self._lost_lock:
            # Downtime is reported as it passes, not only once the device is back, so each
            # read (and each episode) is charged only the downtime that fell within it.
            if self._down_since_ns is not None:
                now = time.monotonic_ns()
                self._lost_ns += now - self._down_since_ns
                self._down_since_ns = now
            lost_s, self._lost_ns = self._lost_ns / 1e9, 0
        failures = self.checksum_failures - self._reported_checksum_failures
        self._reported_checksum_failures += failures
        arrival = times[:, 0]
        return Chunk(
            stream=self.info.name,
            kind=self.info.kind,
            arrival_ns=arrival,
            capture_ns=self._capture_times(arrival, times[:, 1]),
            device_ns=times[:, 1],
            seq=times[:, 2],
            fields=values,
            overflow=overflow,
            overflow_seq=overflow_seq,
            checksum_failures=failures,
            lost_s=lost_s,
        )

    def _capture_times(self, arrival_ns: np.ndarray, device_ns: np.ndarray) -> np.ndarray:
        """Best estimate of capture time on the host clock: the device clock mapped through
        the stream's running clock fit (drivers/clock.py), or arrival without a device clock."""
        if self._clock_restarted.is_set():  # reconnected or reset: the device clock restarted
            self._clock_restarted.clear()
            self.clock.reset()  # (capture times still never step back: host time goes on)
        timed = device_ns >= 0
        if not timed.any():
            return cast(np.ndarray, arrival_ns.copy())  # numpy types copy() as Any
        self.clock.update(device_ns[timed], arrival_ns[timed])
        out = arrival_ns.copy()
        out[timed] = self.clock.map(device_ns[timed])
        # a refit moves the line by microseconds: never let capture times step backwards
        out = np.maximum.accumulate(np.concatenate([[self._last_capture], out]))[1:]
        self._last_capture = int(out[-1]) if out.size else self._last_capture
        return out

    def _run(self) -> None:
        show_thread_name()
        backoff = 0.05
        while not self._stop.is_set():
            try:
                block = self._capture()
            except DeviceError:
                self._ring.release()  # a slot reserved for a frame that never came
                with self._lost_lock:
                    self._down_since_ns = time.monotonic_ns()
                self._reconnect_with_backoff(backoff)
                with self._lost_lock:
                    self._lost_ns += time.monotonic_ns() - self._down_since_ns
                    self._down_since_ns = None
                continue
            except Exception as exc:  # a bug in a driver: surface it on the next read
                self._error = exc
                return
            if block is None or block.seq.shape[0] == 0:
                self._ring.release()  # a frame reserved for, then dropped by the device
                continue
            n = block.seq.shape[0]
            arrival = block.arrival_ns
            if arrival is None:
                arrival = np.full(n, time.monotonic_ns(), np.int64)
            if self._ring.reserved:  # the sample is in the slot already: no copy
                self._ring.commit(int(arrival[0]), int(block.device_ns[0]), int(block.seq[0]))
            else:
                self._ring.push(arrival, block.device_ns, block.seq, block.values)

    def _reserve(self, seq: int) -> dict[str, np.ndarray] | None:
        """Where the next sample's fields go: in the reader thread, the ring slot they are
        made in (a camera's frame, rendered or converted there, is never copied; `_capture`
        then returns that one sample, which the thread commits); in any other caller (a test,
        a one-off grab), arrays of its own. None when the ring is full: the sample (`seq`) is
        counted as overflow, and should not even be made."""
        if threading.current_thread() is not self._thread:
            if self._ring.full():
                self._ring.refuse(np.array([seq]))
                return None
            return {k: np.empty(f.shape, f.dtype) for k, f in self.info.fields.items()}
        slot = self._ring.reserve()
        if slot is None:
            self._ring.refuse(np.array([seq]))
        return slot

    def _reconnect_with_backoff(self, backoff: float) -> None:
        self._disconnect()
        while not self._stop.is_set():
            self._stop.wait(backoff)
            try:
                self._connect()
                self._clock_restarted.set()
                return
            except DeviceError:
                # grow slowly and stay short: an outage should cost little more than itself
                backoff = min(backoff * 1.5, self.max_backoff_s)

    def _note_parser(self, failures: int, resets: int) -> None:
        """A serial parser's running counts, after each read. A device that reset restarted
        its clock too: the clock fit starts over, as after a reconnect."""
        self.checksum_failures = failures
        if resets != self.counter_resets:
            self.counter_resets = resets
            self._clock_restarted.set()

    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _capture(self) -> CapturedSamples | None: ...

    def _disconnect(self) -> None:
        pass
