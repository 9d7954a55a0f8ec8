"""A station records episodes: it paces device reads, frames episodes and commits them."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from collector import __version__
from collector.batch import EpisodeClock
from collector.config import dump_station
from collector.derive import derived_fields
from collector.engines import start_engine
from collector.engines.base import (
    Engine,
    EngineStats,
    camera_checks,
    camera_jpeg,
    image_encodings,
)
from collector.errors import DiskFullError, StartupInterrupted
from collector.previews import Preview
from collector.quality import quality_datasets
from collector.recent import RecentFigures
from collector.stages.execution import EpisodePlan, EpisodeSummary
from collector.stages.perception import LATE_NS
from collector.storage.disk import check_free_space, disk_low
from collector.storage.layout import REJECTED_DIR, WARM_UP_DIR, StreamLayout
from collector.task import episode_seconds, task_name, task_seconds
from collector.tuning import tune_process
from core.codec import IMAGE_FIELD, stored_shape
from drivers.base import FieldInfo, StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import DerivedSignals, StationConfig

if TYPE_CHECKING:
    from collector.daemon.accounts import SessionBook

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
    cut_by: str = ""  # who or what cut it short ("stopped by SIGTERM"); "" while it runs whole


class EndRequest(Protocol):
    """How the episode in progress is asked to end (the station's own stop, the daemon's
    operator commands)."""

    @property
    def cut_by(self) -> str:
        """Who or what cut it short, for the reason of a `truncated` outcome."""

    @property
    def outcome(self) -> str | None:
        """rejected, aborted; None: the station decides (success, failure or truncated)."""

    @property
    def reason(self) -> str:
        """Why, when `outcome` is set."""


@dataclass(frozen=True)
class StopRequest:
    """The station's own end request: `request_stop`, or a low disk."""

    cut_by: str
    outcome: str | None = None
    reason: str = ""


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
        if i.kind == "camera":  # its frames, however they travel (pixels, the camera's JPEG)
            fields = {IMAGE_FIELD: FieldInfo(i.frame_shape, "uint8")}
        layouts.append(StreamLayout(
            name=i.name, kind=i.kind, rate_hz=i.rate_hz,
            fields={k: (f.shape, f.dtype) for k, f in fields.items()},
            units={k: f.unit for k, f in fields.items()},
            channels={k: f.channels for k, f in fields.items() if f.channels},
            channel_units={k: f.channel_units() for k, f in fields.items()},
            quality=quality_datasets(i.kind),
        ))
    return layouts


def image_shapes(config: StationConfig, infos: list[StreamInfo]) -> dict:
    """Each camera's frame shape as stored (after its own resize)."""
    encodings = image_encodings(config, infos)
    return {i.name: stored_shape(encodings[i.name], i.frame_shape) for i in infos
            if i.kind == "camera"}


class Station:
    def __init__(self, config: StationConfig, realtime: bool = True,
                 cancel: threading.Event | None = None, warm_up: bool = True):
        """`cancel` set while the engine starts (a signal): `StartupInterrupted`, soon.

        `warm_up`: run `engine.warm_up_s` of live data through every stage before the first
        episode (see `warm_up`); a replay turns it off, its devices hand out recorded time."""
        tune_process()
        self.config = config
        self.engine: Engine = start_engine(config, realtime, cancel)
        self.infos = self.engine.describe()
        self.layouts = stream_layouts(self.infos, config.pipeline.derived)
        self.output = Path(config.station.output_dir) / config.station.id
        # Set from any thread (a signal handler, the daemon's API): the episode in progress is
        # cut short and committed (`truncated`), and no new one starts. `abort` sends it to
        # rejected/ instead.
        self.stop = threading.Event()
        self.stop_reason = ""
        self._abort = False
        # How far the last read ran behind its schedule: the pipeline's lag, which is not the
        # devices' health (they keep delivering into their rings meanwhile).
        self.lag_s = 0.0
        self.warm_up_s = 0.0
        if warm_up and realtime:
            try:
                self.warm_up(cancel or threading.Event())
            except BaseException:
                self.engine.close()
                raise

    def warm_up(self, cancel: threading.Event) -> float:
        """Record `engine.warm_up_s` through every stage, the task not started, and delete it;
        returns the seconds it took, which count as start-up.

        Fresh stage processes are slow at first (imports, the first encoder, memory faulted
        in, Ray still starting workers beside them): measured on the shipped station, the first
        episode's first seconds reached disk 1.5 s late against 0.2 s in steady state, and set
        its capture-to-disk p99. Paid here, that stays out of every episode's data and figures
        and shows where it belongs, in the session's start-up."""
        seconds = self.config.engine.warm_up_s
        if seconds <= 0 or disk_low(self.output, self.config.storage.min_free_gb):
            return 0.0  # a low disk: the first episode's check says so, in its words
        started = time.monotonic()
        scratch = self.output / WARM_UP_DIR
        shutil.rmtree(scratch, ignore_errors=True)  # what a crash mid-warm-up left
        run = self.begin_episode(seconds, folder=scratch, task=False)
        while not self.step_episode(run):
            if cancel.is_set() and not run.cut_by:
                self.cut_short(run, "start-up interrupted")
        metadata = EpisodeMetadata(
            **run.start_metadata, ended_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            outcome="aborted", reason="warm-up before the first episode, not kept")
        self.engine.finish_episode(metadata, run.clock.ticks / self.config.episode.control_hz)
        self.engine.forget_recent()
        self.lag_s = 0.0  # not recording: no lag (metrics say collector_pipeline_lag_seconds)
        shutil.rmtree(scratch, ignore_errors=True)
        self.warm_up_s = time.monotonic() - started
        if cancel.is_set():
            raise StartupInterrupted("start-up interrupted")
        return self.warm_up_s

    def request_stop(self, reason: str, abort: bool = False) -> None:
        self.stop_reason = reason
        self._abort = self._abort or abort
        self.stop.set()

    def record(self, episodes: int, progress: Callable[[Progress], None] | None = None,
               book: SessionBook | None = None) -> list[EpisodeSummary]:
        """Record up to `episodes`; fewer when stopped. A low disk raises `DiskFullError` once
        the episode in progress is committed (the committed ones ride on `error.summaries`).

        Each episode's accounts describe its own data; the time around them (start-up, each
        episode's set-up and commit, resets) goes into `book`, the session's accounts."""
        summaries: list[EpisodeSummary] = []
        if book is not None:
            startup_s = self.startup_s
            book.interval("startup", startup_s, _wall_ago(startup_s))
        try:
            for number in range(1, episodes + 1):
                self.check_disk()
                if self.stop.is_set():
                    break
                began, began_wall = time.monotonic(), _wall_ago(0.0)
                summary = self.record_episode(number, episodes, progress)
                summaries.append(summary)
                if book is not None:
                    book.committed(summary, began, began_wall, time.monotonic())
                self.check_disk()
                if number < episodes and not self.stop.is_set():
                    reset_wall = _wall_ago(0.0)
                    reset_s = self.reset(number, episodes, progress)
                    if book is not None:
                        book.interval("reset", reset_s, reset_wall)
        except DiskFullError as exc:
            exc.summaries = summaries
            raise
        return summaries

    def check_disk(self) -> None:
        """Between episodes: `DiskFullError` when free space is below storage.min_free_gb."""
        check_free_space(self.output, self.config.storage.min_free_gb)

    def asked_to_end(self) -> StopRequest | None:
        """The station's own reasons to end the episode in progress: a stop, a low disk."""
        if self.stop.is_set():
            if self._abort:
                return StopRequest(self.stop_reason, "aborted", self.stop_reason)
            return StopRequest(self.stop_reason)
        if disk_low(self.output, self.config.storage.min_free_gb):
            return StopRequest("stopped by low disk space (below storage.min_free_gb)")
        return None

    def record_episode(self, number: int, episodes: int,
                       progress: Callable[[Progress], None] | None = None,
                       duration_s: float | None = None) -> EpisodeSummary:
        def report(run: EpisodeRun) -> None:
            if progress:
                elapsed = min((time.monotonic_ns() - run.clock.start_ns) / 1e9, run.duration_s)
                progress(Progress(number, episodes, elapsed, run.duration_s, "recording"))

        return self.run_episode(self.begin_episode(duration_s), self.asked_to_end, report)

    def run_episode(self, run: EpisodeRun, asked_to_end: Callable[[], EndRequest | None],
                    after_chunk: Callable[[EpisodeRun], None] | None = None,
                    wait: bool = True) -> EpisodeSummary:
        """The episode loop, for every caller: one chunk at a time until the final batch is in,
        then commit. `asked_to_end` is asked before each chunk until it answers (the grid is
        then cut short at the tick due) and once more at the end (its outcome then overrides
        the task's); `after_chunk` runs after each (progress, health figures)."""
        while True:
            if not run.cut_by:
                request = asked_to_end()
                if request is not None:
                    self.cut_short(run, request.cut_by)
            final = self.step_episode(run, wait)
            if after_chunk:
                after_chunk(run)
            if final:
                break
        request = asked_to_end()
        outcome = request.outcome if request else None
        reason = request.reason if request and outcome else ""  # a stop: end_episode says why
        return self.end_episode(run, outcome, reason)

    # The episode in steps, for `run_episode` (and tests that act between chunks).

    def begin_episode(self, duration_s: float | None = None, lead_ns: int = LEAD_NS,
                      folder: Path | None = None, task: bool = True) -> EpisodeRun:
        """Open the writer, discard stale samples and start the task; `duration_s`: at most.

        The grid starts `lead_ns` from now (a replay places it far ahead, see collector/replay).
        `folder` (default: the day's and rejected/) and `task=False` serve the warm-up.
        """
        ep = self.config.episode
        # the warm-up runs its own length, not capped at the episode's (or the task's)
        duration_s = episode_seconds(ep, duration_s) if task else float(duration_s or 0)
        started_at = dt.datetime.now(dt.timezone.utc)
        episode_id = f"{self.config.station.id}-{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        day = self.output / f"{started_at:%Y-%m-%d}"
        known = dict(episode_id=episode_id, station_id=self.config.station.id, task=task_name(ep),
                     operator=self.config.station.operator, started_at=started_at.isoformat(),
                     control_hz=ep.control_hz, rig_config=dump_station(self.config),
                     software_version=__version__)
        self.engine.begin_episode(EpisodePlan(
            episode_id=episode_id, final_dir=folder or day,
            rejected_dir=folder or self.output / REJECTED_DIR,
            streams=self.layouts, image_shapes=image_shapes(self.config, self.infos),
            image_encoding=image_encodings(self.config, self.infos),
            storage=self.config.storage, start_metadata=known,
            camera_checks=camera_checks(self.config, self.infos),
            camera_jpeg=camera_jpeg(self.infos),
        ))
        self.engine.discard()
        self.lag_s = 0.0
        period_ns = round(1e9 / ep.control_hz)
        ticks = max(1, round(duration_s * ep.control_hz))
        # The grid starts a little after the discard, so the first tick has samples on both sides.
        clock = EpisodeClock(episode_id, time.monotonic_ns() + lead_ns, period_ns, ticks)
        if task:
            self.engine.begin_task(clock.start_ns, ticks / ep.control_hz)
        return EpisodeRun(episode_id, started_at, clock, ticks / ep.control_hz, known)

    def cut_short(self, run: EpisodeRun, by: str) -> None:
        """End the grid at the tick now due: every tick up to now is still recorded. `by`
        names who or what stopped it, for the reason of a `truncated` outcome."""
        elapsed = (time.monotonic_ns() - run.clock.start_ns) // run.clock.period_ns + 1
        if elapsed < run.clock.ticks:
            run.clock.ticks = int(max(elapsed, 1))
            run.cut_by = by

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
            self.lag_s = max(time.monotonic_ns() - due, 0) / 1e9
        self.engine.submit(run.clock, run.index, final)
        run.index += 1
        return final

    def end_episode(self, run: EpisodeRun, outcome: str | None = None,
                    reason: str = "") -> EpisodeSummary:
        """Stop the task and commit; `outcome` (rejected, aborted) overrides the task's.

        The task decides success or failure only when it ran to its end: an episode cut short,
        or shorter than its task sequence, is `truncated`, and its reason says why."""
        ep = self.config.episode
        succeeded = self.engine.end_task()
        recorded_s = run.clock.ticks / ep.control_hz
        unfinished = unfinished_reason(run, recorded_s, task_seconds(ep), ep.control_hz)
        if outcome is None and unfinished:
            outcome, reason = "truncated", unfinished
        metadata = EpisodeMetadata(
            **run.start_metadata, ended_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            outcome=outcome or ("success" if succeeded else "failure"), reason=reason)
        return self.engine.finish_episode(metadata, recorded_s)

    def reset(self, number: int, episodes: int,
              progress: Callable[[Progress], None] | None = None) -> float:
        """Wait while the scene resets; returns the seconds it took (an availability loss)."""
        started = time.monotonic()
        if progress:
            progress(Progress(number, episodes, 0.0, self.config.episode.reset_s, "resetting"))
        self.stop.wait(self.config.episode.reset_s)
        return time.monotonic() - started

    # What the daemon asks of the engine, through the station.

    @property
    def startup_s(self) -> float:
        """The engine's start and the warm-up: the session's time before it could record."""
        return self.engine.stats().startup_s + self.warm_up_s

    def stats(self) -> EngineStats:
        return replace(self.engine.stats(), warm_up_s=self.warm_up_s)

    def discard(self) -> int:
        """Drop the samples the devices delivered since the last read (between episodes)."""
        return self.engine.discard()

    def health(self) -> dict[str, dict]:
        return self.engine.health()

    def previews(self) -> dict[str, Preview]:
        return self.engine.previews()

    def recent_ticks(self) -> dict[str, RecentFigures]:
        """Per stream, the ticks written in the last seconds: |dt| p99, quality flags."""
        return self.engine.recent_ticks(time.monotonic_ns())

    def close(self) -> None:
        self.engine.close()


def _wall_ago(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)


def unfinished_reason(run: EpisodeRun, recorded_s: float, task_s: float | None,
                      control_hz: float) -> str:
    """Why the task of `run` did not finish ("" when it did): cut short, or a limit below the
    task's own length (a waypoint sequence)."""
    if run.cut_by:
        return (f"{run.cut_by} after {recorded_s:.1f} s of {run.duration_s:g} s, "
                f"task not finished")
    if task_s is not None and recorded_s < task_s - 0.5 / control_hz:
        return (f"episode limit {recorded_s:.1f} s is shorter than the task ({task_s:g} s), "
                f"task not finished")
    return ""


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
