"""A station records episodes: it paces device reads, frames episodes and commits them."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collector import __version__
from collector.batch import EpisodeClock
from collector.config import dump_station
from collector.derive import derived_fields
from collector.engines import start_engine
from collector.engines.base import Engine, camera_checks
from collector.errors import DiskFullError
from collector.quality import quality_datasets
from collector.stages.computation import IMAGE_FIELD, encoding_params
from collector.stages.execution import EpisodePlan, EpisodeSummary
from collector.stages.perception import LATE_NS
from collector.storage import layout as L
from collector.storage.layout import StreamLayout
from collector.storage.writer import free_gb
from collector.task import episode_seconds, task_name
from collector.tuning import tune_process
from drivers.base import StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import DerivedSignals, StationConfig

LEAD_NS = 60_000_000


@dataclass
class EpisodeRun:
    """An episode being recorded: its grid and how many batches went in."""

    episode_id: str
    started_at: dt.datetime
    clock: EpisodeClock
    duration_s: float  # planned; `clock.ticks` shrinks when the episode is cut short
    start_metadata: dict  # root attributes known at the start, written into the partial file
    index: int = 0


@dataclass
class Progress:
    episode: int  # 1-based
    episodes: int
    elapsed_s: float
    duration_s: float
    state: str  # recording | resetting


def stream_layouts(infos: list[StreamInfo],
                   derived: DerivedSignals | None = None) -> list[StreamLayout]:
    """What the file stores per stream: its fields, derived fields and quality datasets (all
    declared before the first write, as SWMR requires)."""
    layouts = []
    for i in infos:
        fields = {**i.fields, **(derived_fields(i, derived) if derived else {})}
        layouts.append(StreamLayout(
            name=i.name, kind=i.kind, rate_hz=i.rate_hz,
            fields={k: (f.shape, f.dtype) for k, f in fields.items()},
            units={k: f.unit for k, f in fields.items()},
            quality=quality_datasets(i.kind),
        ))
    return layouts


def image_shapes(config: StationConfig, infos: list[StreamInfo]) -> dict:
    resize = config.pipeline.images.resize
    shapes = {}
    for info in infos:
        if info.kind == "camera":
            h, w, c = info.fields[IMAGE_FIELD].shape
            shapes[info.name] = (resize[1], resize[0], c) if resize else (h, w, c)
    return shapes


class Station:
    def __init__(self, config: StationConfig, realtime: bool = True):
        tune_process()
        self.config = config
        self.engine: Engine = start_engine(config, realtime)
        self.infos = self.engine.describe()
        self.layouts = stream_layouts(self.infos, config.pipeline.derived)
        self.output = Path(config.station.output_dir) / config.station.id
        # Set from any thread (a signal handler, the daemon's API): the episode in progress is
        # cut short and committed, and no new one starts. `abort` sends it to rejected/ instead.
        self.stop = threading.Event()
        self.stop_reason = ""
        self._abort = False

    def request_stop(self, reason: str, abort: bool = False) -> None:
        self.stop_reason = reason
        self._abort = self._abort or abort
        self.stop.set()

    def record(self, episodes: int,
               progress: Callable[[Progress], None] | None = None) -> list[EpisodeSummary]:
        """Record up to `episodes`; fewer when stopped. A low disk raises `DiskFullError` once
        the episode in progress is committed (the committed ones ride on `error.summaries`)."""
        summaries: list[EpisodeSummary] = []
        overhead = {"startup": self.engine.startup_s}
        try:
            for number in range(1, episodes + 1):
                self._check_disk()
                if self.stop.is_set():
                    break
                summaries.append(self.record_episode(number, episodes, overhead, progress))
                self._check_disk()
                if number < episodes and not self.stop.is_set():
                    overhead = {"reset": self.reset(number, episodes, progress)}
        except DiskFullError as exc:
            exc.summaries = summaries
            raise
        return summaries

    def disk_low(self) -> bool:
        return free_gb(self.output) < self.config.storage.min_free_gb

    def _check_disk(self) -> None:
        if self.disk_low():
            raise DiskFullError(
                f"free space under {self.output} is {free_gb(self.output):.2f} GB, below "
                f"storage.min_free_gb={self.config.storage.min_free_gb:g}; stopped collecting "
                f"(every committed episode is complete): free some space and start again")

    def record_episode(self, number: int, episodes: int, overhead_s: dict[str, float],
                       progress: Callable[[Progress], None] | None = None,
                       duration_s: float | None = None) -> EpisodeSummary:
        run = self.begin_episode(duration_s)
        stopped = ""
        while True:
            if not stopped and (self.stop.is_set() or self.disk_low()):
                stopped = self.stop_reason if self.stop.is_set() else "disk space low"
                self.cut_short(run)
            final = self.step_episode(run)
            if progress:
                elapsed = min((time.monotonic_ns() - run.clock.start_ns) / 1e9, run.duration_s)
                progress(Progress(number, episodes, elapsed, run.duration_s, "recording"))
            if final:
                break
        reason = (f"stopped after {run.clock.ticks / self.config.episode.control_hz:.2f} of "
                  f"{run.duration_s:g} s: {stopped}") if stopped else ""
        return self.end_episode(run, overhead_s, "aborted" if self._abort else None, reason)

    # The episode in three steps, so that a caller (the daemon) can act between chunks.

    def begin_episode(self, duration_s: float | None = None,
                      lead_ns: int = LEAD_NS) -> EpisodeRun:
        """Open the writer, discard stale samples and start the task; `duration_s`: at most.

        The grid starts `lead_ns` from now (a replay places it far ahead, see collector/replay).
        """
        ep = self.config.episode
        duration_s = episode_seconds(ep, duration_s)
        started_at = dt.datetime.now(dt.timezone.utc)
        episode_id = f"{self.config.station.id}-{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        day = self.output / f"{started_at:%Y-%m-%d}"
        known = dict(episode_id=episode_id, station_id=self.config.station.id, task=task_name(ep),
                     operator=self.config.station.operator, started_at=started_at.isoformat(),
                     control_hz=ep.control_hz, rig_config=dump_station(self.config),
                     software_version=__version__)
        self.engine.begin_episode(EpisodePlan(
            episode_id=episode_id, final_dir=day, rejected_dir=self.output / L.REJECTED_DIR,
            streams=self.layouts, image_shapes=image_shapes(self.config, self.infos),
            image_encoding=encoding_params(self.config.pipeline.images),
            storage=self.config.storage, start_metadata=known,
            camera_checks=camera_checks(self.config, self.infos),
        ))
        self.engine.discard()
        period_ns = round(1e9 / ep.control_hz)
        ticks = max(1, round(duration_s * ep.control_hz))
        # The grid starts a little after the discard, so the first tick has samples on both sides.
        clock = EpisodeClock(episode_id, time.monotonic_ns() + lead_ns, period_ns, ticks)
        self.engine.begin_task(clock.start_ns, ticks / ep.control_hz)
        return EpisodeRun(episode_id, started_at, clock, ticks / ep.control_hz, known)

    def step_episode(self, run: EpisodeRun, wait: bool = True) -> bool:
        """Wait for the next chunk and submit it; True once the final batch is in.

        `wait=False` submits at once: for devices that hand out episode time on each read
        (a stepped replay), so the result does not depend on how loaded the machine is."""
        chunk_ns = int(self.config.episode.chunk_ms * 1e6)
        due = run.clock.start_ns + (run.index + 1) * chunk_ns
        # A late loop (slow pipeline) ends on time too: replaying every missed read would
        # run reads past the episode's end, whose samples perception can never use.
        final = max(due, time.monotonic_ns() if wait else 0) >= run.clock.end_ns + LATE_NS
        if final:
            due = run.clock.end_ns + LATE_NS
        if wait:
            _sleep_until(due)
        self.engine.submit(run.clock, run.index, final)
        run.index += 1
        return final

    def cut_short(self, run: EpisodeRun) -> None:
        """End the grid at the tick now due: every tick up to now is still recorded."""
        elapsed = (time.monotonic_ns() - run.clock.start_ns) // run.clock.period_ns + 1
        run.clock.ticks = int(min(max(elapsed, 1), run.clock.ticks))

    def end_episode(self, run: EpisodeRun, overhead_s: dict[str, float],
                    outcome: str | None = None, reason: str = "") -> EpisodeSummary:
        """Stop the task and commit; `outcome` (rejected, aborted) overrides the task's."""
        ep = self.config.episode
        succeeded = self.engine.end_task()
        metadata = EpisodeMetadata(
            **run.start_metadata, ended_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            outcome=outcome or ("success" if succeeded else "failure"), reason=reason)
        return self.engine.finish_episode(metadata, run.clock.ticks / ep.control_hz, overhead_s)

    def reset(self, number: int, episodes: int,
              progress: Callable[[Progress], None] | None = None) -> float:
        """Wait while the scene resets; returns the seconds it took (an availability loss)."""
        started = time.monotonic()
        if progress:
            progress(Progress(number, episodes, 0.0, self.config.episode.reset_s, "resetting"))
        self.stop.wait(self.config.episode.reset_s)
        return time.monotonic() - started

    def close(self) -> None:
        self.engine.close()


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
