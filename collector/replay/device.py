"""The `replay` device: one stream of a recorded episode, played back as a live stream.

Every sample is re-emitted at its original capture time offset from the episode's first tick,
shifted onto the host clock at the moment the replay is anchored (when the station starts an
episode), so the pipeline places it on the same grid tick as when it was recorded. Times are
rewritten consistently: capture, device and arrival times all move by the same offset.
Realtime, a reader thread emits each sample when its shifted capture time comes. Stepped
(realtime=False), there is no thread: each `read()` after the anchor hands out the samples of
the next `step_ns` of episode time, so the replay runs as fast as the pipeline takes it and
gives the same chunks however loaded the machine is.
Camera frames are not kept at full rate, so a camera replays the frames the grid chose (once
each, at their capture time from /quality/<cam>/capture_ns), decoded from the episode.

It lives here, not in drivers/, because it plays a file: it needs the reader's layout, the codec
and the derived-field rules, all above the drivers. `collector.rig` builds it beside the
hardware drivers (and holds the shared `ReplayClock`), so drivers/ never imports collector/.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import h5py
import numpy as np

from collector.derive import is_derived
from collector.errors import DeviceError
from collector.replay.source import tick_range
from collector.storage.layout import (
    ACTIONS,
    CHANNEL_NAMES,
    IMAGES,
    OBSERVATIONS,
    QUALITY,
    RAW,
    TIMESTAMPS,
    dataset_channels,
)
from collector.storage.videos import VideoFrames
from core.codec import IMAGE_FIELD, decode_frame
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.chunk import Chunk
from schemas.devices import ReplayConfig
from schemas.layout import video_path

PAD_NS = 500_000_000  # samples kept either side of the range: the edge ticks align as recorded
IDLE_S = 0.005  # reader poll while waiting for the anchor or the next sample
FRAME_BLOCK = 8  # frames decoded per capture call at most


class ReplayClock:
    """The host time at which the replayed range's first tick happens; shared by a rig's devices.

    Every `anchor` starts the replay over (one station episode = one pass over the range).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start_ns: int | None = None
        self._generation = 0

    def anchor(self, host_start_ns: int) -> None:
        with self._lock:
            self._start_ns = int(host_start_ns)
            self._generation += 1

    def stop(self) -> None:
        with self._lock:
            self._start_ns = None

    def state(self) -> tuple[int, int] | None:
        with self._lock:
            return None if self._start_ns is None else (self._generation, self._start_ns)


class RecordedOutcome:
    """Stands in for a task: a replayed episode ends with the outcome it was recorded with."""

    def __init__(self, outcome: str):
        self.outcome = outcome

    def succeeded(self) -> bool:
        return self.outcome == "success"


class ReplayDevice(ThreadedDevice):
    def __init__(self, config: ReplayConfig, clock: ReplayClock, realtime: bool = True,
                 step_ns: int = 100_000_000):
        if not config.episode:
            raise DeviceError(f"{config.name}: replay device has no episode file; set `episode:`")
        path = Path(config.episode)
        if not path.is_file():
            raise DeviceError(f"{config.name}: replay episode {path} does not exist")
        self.config = config
        self.replay_clock = clock
        self.realtime = realtime and config.realtime
        if not self.realtime:
            self.ring_seconds = 0.0  # stepped reads bypass the ring: keep it at its minimum
        self.stream = config.stream or config.name
        self._file = h5py.File(path, "r")
        try:
            info = self._load(config)
        except Exception:
            self._file.close()
            raise
        super().__init__(info)
        self._cursor = 0
        self._generation = 0
        self.step_ns = int(step_ns)
        self._reads = 0

    # -- what the episode holds ------------------------------------------------------------

    def _load(self, config: ReplayConfig) -> StreamInfo:
        f = self._file
        if TIMESTAMPS not in f:
            raise DeviceError(f"{config.name}: {config.episode} is not a Collector episode")
        grid = f[TIMESTAMPS][:]
        hz = float(f.attrs.get("control_hz", 0)) or 1e9 / float(np.median(np.diff(grid)))
        ticks = tick_range(grid, hz, config.start_s, config.end_s)
        first, stop = ticks.first, ticks.stop
        self.first_tick_ns = int(grid[first])
        self.outcome = str(f.attrs.get("outcome", "success"))
        lo, hi = int(grid[first]) - PAD_NS, int(grid[stop - 1]) + PAD_NS
        if video_path(self.stream) in f:
            return self._load_video(VideoFrames(f[video_path(self.stream)], self.stream), lo, hi)
        camera = f"{IMAGES}/{self.stream}"
        if camera in f:
            return self._load_camera(f[camera], first, stop)
        for root, kind in ((ACTIONS, "action"), (OBSERVATIONS, None)):
            if f"{root}/{self.stream}" in f:
                group = f[f"{root}/{self.stream}"]
                kind = config.kind or kind or ("arm" if "qpos" in group else "sensor")
                return self._load_samples(group, kind, first, stop, lo, hi, hz)
        raise DeviceError(f"{config.name}: {config.episode} has no stream {self.stream!r}")

    def _load_camera(self, images: h5py.Dataset, first: int, stop: int) -> StreamInfo:
        chosen = self._file[f"{QUALITY}/{self.stream}/capture_ns"][first:stop]
        valid = np.flatnonzero(chosen >= 0)
        times, where = np.unique(chosen[valid], return_index=True)  # each frame once, in order
        self._rows: np.ndarray | None = first + valid[where]  # image rows to decode (cameras)
        self.times = times
        self.device = times
        self.arrival, self.seq = self._raw_times(times, self._rows)
        self.values: dict[str, np.ndarray] = {}
        self._images = images
        self._video: VideoFrames | None = None
        self._encoding = str(images.attrs.get("encoding", "raw"))
        shape = (int(images.attrs["height"]), int(images.attrs["width"]), 3)
        fps = float(images.attrs.get("fps", 0)) or 30.0
        return StreamInfo(self.config.name, self.config.kind or "camera", fps,
                          {IMAGE_FIELD: FieldInfo(shape, "uint8")})

    def _load_video(self, video: VideoFrames, lo: int, hi: int) -> StreamInfo:
        """A video camera stored every frame it delivered: all of them in range play again,
        at the camera's own rate, not only those the grid chose."""
        t = video.times()
        keep = slice(int(np.searchsorted(t["capture_ns"], lo)),
                     int(np.searchsorted(t["capture_ns"], hi, "right")))
        self._rows = np.arange(len(video))[keep]  # frame indices to decode
        self.times = t["capture_ns"][keep]
        self.device = self.times
        self.arrival, self.seq = t["arrival_ns"][keep], t["seq"][keep]
        self.values = {}
        self._video = video
        return StreamInfo(self.config.name, self.config.kind or "camera", video.fps or 30.0,
                          {IMAGE_FIELD: FieldInfo(video.shape, "uint8")})

    def _load_samples(self, group: h5py.Group, kind: str, first: int, stop: int, lo: int,
                      hi: int, hz: float) -> StreamInfo:
        raw = self._file.get(f"{RAW}/{self.stream}")
        # derived fields (qvel, *_lowpass) are not replayed: perception derives them again
        fields = [k for k in group if (raw is None or k in raw) and not is_derived(k)]
        if raw is not None and "capture_ns" in raw and raw["capture_ns"].shape[0]:
            capture = raw["capture_ns"][:]
            keep = slice(int(np.searchsorted(capture, lo)),
                         int(np.searchsorted(capture, hi, "right")))
            self.times = capture[keep]
            self.arrival, self.seq = raw["arrival_ns"][keep], raw["seq"][keep]
            # the device's own clock, as recorded: derived signals difference over it
            self.device = raw["device_ns"][keep] if "device_ns" in raw else self.times
            self.values = {k: raw[k][keep] for k in fields}
            rate = float(raw.attrs.get("rate_hz", 0)) or hz
        else:  # no full-rate samples stored: replay the grid's choices
            chosen = self._file[f"{QUALITY}/{self.stream}/capture_ns"][first:stop]
            valid = np.flatnonzero(chosen >= 0)
            self.times, where = np.unique(chosen[valid], return_index=True)
            rows = first + valid[where]
            self.arrival, self.seq = self.times.copy(), rows.astype(np.int64)
            self.device = self.times
            self.values = {k: group[k][:][rows] for k in fields}
            rate = hz
        self._rows = None
        self._video = None
        return StreamInfo(self.config.name, kind, rate, {k: recorded_field(group[k], k)
                                                         for k in fields})

    def _raw_times(self, times: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arrival time and sequence number of each chosen frame, from /raw when it is there."""
        arrival, seq = times.copy(), rows.astype(np.int64)
        raw = f"{RAW}/{self.stream}"
        if raw in self._file and self._file[f"{raw}/capture_ns"].shape[0]:
            capture = self._file[f"{raw}/capture_ns"][:]
            at = np.searchsorted(capture, times).clip(0, capture.size - 1)
            found = capture[at] == times
            arrival[found] = self._file[f"{raw}/arrival_ns"][:][at[found]]
            seq[found] = self._file[f"{raw}/seq"][:][at[found]]
        return arrival, seq

    # -- the task role: the station's episode start anchors the replay -----------------------

    @property
    def task(self) -> RecordedOutcome:
        return RecordedOutcome(self.outcome)

    def begin(self, start_ns: int, duration_s: float) -> None:
        self.replay_clock.anchor(start_ns)

    def end(self) -> None:
        self.replay_clock.stop()

    # -- playing ---------------------------------------------------------------------------

    def open(self) -> None:
        if self.realtime:
            super().open()

    def read(self) -> Chunk:
        return super().read() if self.realtime else self._step()

    def _step(self) -> Chunk:
        """The samples of the next `step_ns` of episode time (plus one step of lead)."""
        state = self.replay_clock.state()
        picked = slice(0, 0)
        offset = 0
        if state is not None:
            generation, start_ns = state
            if generation != self._generation:
                self._generation, self._cursor, self._reads = generation, 0, 0
            self._reads += 1
            offset = start_ns - self.first_tick_ns
            horizon = start_ns + (self._reads + 1) * self.step_ns - offset
            stop = int(np.searchsorted(self.times, horizon, side="right"))
            picked = slice(self._cursor, max(stop, self._cursor))
            self._cursor = picked.stop
        capture = self.times[picked] + offset
        return Chunk(stream=self.info.name, kind=self.info.kind,
                     arrival_ns=self.arrival[picked] + offset, capture_ns=capture,
                     device_ns=self.device[picked].copy(), seq=self.seq[picked],
                     fields=self._values(picked))

    def _connect(self) -> None:
        pass

    def _disconnect(self) -> None:
        pass

    def close(self) -> None:
        super().close()
        if self._file.id.valid:
            self._file.close()

    def _capture_times(self, arrival_ns: np.ndarray, device_ns: np.ndarray) -> np.ndarray:
        return device_ns.copy()  # the replayed capture time travels as the device time

    def _capture(self) -> CapturedSamples | None:
        state = self.replay_clock.state()
        if state is None:
            self._stop.wait(IDLE_S)
            return None
        generation, start_ns = state
        if generation != self._generation:
            self._generation, self._cursor = generation, 0
        offset = start_ns - self.first_tick_ns
        cursor, n = self._cursor, self.times.shape[0]
        if cursor >= n:
            self._stop.wait(IDLE_S)
            return None
        if self.realtime:
            now = time.monotonic_ns()
            stop = int(np.searchsorted(self.times, now - offset, side="right"))
            if stop <= cursor:
                self._stop.wait(min(IDLE_S, (self.times[cursor] + offset - now) / 1e9))
                return None
        else:  # as fast as the pipeline drains the ring
            stop = cursor + self._ring.capacity - len(self._ring)
            if stop <= cursor:
                self._stop.wait(IDLE_S)
                return None
        if self._rows is not None:
            stop = min(stop, cursor + FRAME_BLOCK)
        stop = min(stop, n)
        picked = slice(cursor, stop)
        self._cursor = stop
        return CapturedSamples(device_ns=self.times[picked] + offset, seq=self.seq[picked],
                       values=self._values(picked), arrival_ns=self.arrival[picked] + offset)

    def _values(self, picked: slice) -> dict[str, np.ndarray]:
        if self._rows is None:
            return {k: v[picked] for k, v in self.values.items()}
        if self._video is not None:  # consecutive frames: the decoder runs on, no seeks
            frames = [self._video[int(r)] for r in self._rows[picked]]
        else:
            frames = [decode_frame(self._images[int(r)], self._encoding)
                      for r in self._rows[picked]]
        if not frames:
            return {IMAGE_FIELD: np.zeros((0, *self.info.fields[IMAGE_FIELD].shape), np.uint8)}
        return {IMAGE_FIELD: np.stack(frames)}


def recorded_field(ds: h5py.Dataset, name: str) -> FieldInfo:
    """A recorded field as a live stream describes it, channel names and units kept."""
    shape = tuple(ds.shape[1:])
    channels = dataset_channels(ds.attrs, name, int(np.prod(shape, dtype=int)))
    named = CHANNEL_NAMES in ds.attrs
    return FieldInfo(shape, str(ds.dtype), str(ds.attrs.get("unit", "")),
                     tuple(channels.names) if named else (), tuple(channels.units))
