"""A station records episodes: it paces device reads, frames episodes and commits them."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collector import __version__
from collector.batch import EpisodeClock
from collector.config import dump_station
from collector.engines import start_engine
from collector.engines.base import Engine
from collector.stages.computation import IMAGE_FIELD, encoding_params
from collector.stages.execution import EpisodePlan, EpisodeSummary
from collector.stages.perception import LATE_NS
from collector.storage import layout as L
from collector.storage.layout import StreamLayout
from drivers.base import StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import StationConfig

LEAD_NS = 60_000_000


@dataclass
class Progress:
    episode: int  # 1-based
    episodes: int
    elapsed_s: float
    duration_s: float
    state: str  # recording | resetting


def stream_layouts(infos: list[StreamInfo]) -> list[StreamLayout]:
    return [
        StreamLayout(
            name=i.name, kind=i.kind, rate_hz=i.rate_hz,
            fields={k: (f.shape, f.dtype) for k, f in i.fields.items()},
            units={k: f.unit for k, f in i.fields.items()},
        )
        for i in infos
    ]


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
        self.config = config
        self.engine: Engine = start_engine(config, realtime)
        self.infos = self.engine.describe()
        self.layouts = stream_layouts(self.infos)
        self.output = Path(config.station.output_dir) / config.station.id

    def record(self, episodes: int,
               progress: Callable[[Progress], None] | None = None) -> list[EpisodeSummary]:
        summaries = []
        overhead = {"startup": self.engine.startup_s}
        for number in range(1, episodes + 1):
            summary = self.record_episode(number, episodes, overhead, progress)
            summaries.append(summary)
            if number < episodes:
                overhead = {"reset": self.reset(number, episodes, progress)}
        return summaries

    def record_episode(self, number: int, episodes: int, overhead_s: dict[str, float],
                       progress: Callable[[Progress], None] | None = None) -> EpisodeSummary:
        ep = self.config.episode
        started_at = dt.datetime.now(dt.timezone.utc)
        episode_id = f"{self.config.station.id}-{started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        day = self.output / f"{started_at:%Y-%m-%d}"
        self.engine.begin_episode(EpisodePlan(
            episode_id=episode_id, final_dir=day, rejected_dir=self.output / L.REJECTED_DIR,
            streams=self.layouts, image_shapes=image_shapes(self.config, self.infos),
            image_encoding=encoding_params(self.config.pipeline.images),
            storage=self.config.storage,
        ))
        self.engine.discard()
        period_ns = round(1e9 / ep.control_hz)
        ticks = round(ep.duration_s * ep.control_hz)
        # The grid starts a little after the discard, so the first tick has samples on both sides.
        clock = EpisodeClock(episode_id, time.monotonic_ns() + LEAD_NS, period_ns, ticks)
        self.engine.begin_task(clock.start_ns, ep.duration_s)
        chunk_ns = int(ep.chunk_ms * 1e6)
        index = 0
        while True:
            due = clock.start_ns + (index + 1) * chunk_ns
            # A late loop (slow pipeline) ends on time too: replaying every missed read would
            # run reads past the episode's end, whose samples perception can never use.
            final = max(due, time.monotonic_ns()) >= clock.end_ns + LATE_NS
            if final:
                due = clock.end_ns + LATE_NS
            _sleep_until(due)
            self.engine.submit(clock, index, final)
            index += 1
            if progress:
                elapsed = min((time.monotonic_ns() - clock.start_ns) / 1e9, ep.duration_s)
                progress(Progress(number, episodes, elapsed, ep.duration_s, "recording"))
            if final:
                break
        succeeded = self.engine.end_task()
        metadata = EpisodeMetadata(
            episode_id=episode_id, station_id=self.config.station.id, task=ep.task,
            operator=self.config.station.operator, started_at=started_at.isoformat(),
            ended_at=dt.datetime.now(dt.timezone.utc).isoformat(),
            outcome="success" if succeeded else "failure", control_hz=ep.control_hz,
            rig_config=dump_station(self.config), software_version=__version__,
        )
        return self.engine.finish_episode(metadata, ticks / ep.control_hz, overhead_s)

    def reset(self, number: int, episodes: int,
              progress: Callable[[Progress], None] | None = None) -> float:
        """Wait while the scene resets; returns the seconds it took (an availability loss)."""
        started = time.monotonic()
        if progress:
            progress(Progress(number, episodes, 0.0, self.config.episode.reset_s, "resetting"))
        time.sleep(self.config.episode.reset_s)
        return time.monotonic() - started

    def close(self) -> None:
        self.engine.close()


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
