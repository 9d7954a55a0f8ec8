"""The inline engine: every stage called in turn in this process. For tests and debugging."""

from __future__ import annotations

import threading
import time

from collector.batch import EpisodeClock
from collector.capture import Capture
from collector.engines.base import (
    Engine,
    make_computation,
    make_encoder,
    make_execution,
    make_perception,
    video_cameras,
)
from collector.errors import StartupInterrupted
from collector.previews import Preview
from collector.recent import RecentTicks
from collector.stages.execution import EpisodePlan, EpisodeSummary
from drivers.base import StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import StationConfig


class InlineEngine(Engine):
    def __init__(self, config: StationConfig, realtime: bool = True,
                 cancel: threading.Event | None = None):
        started = time.perf_counter()
        self.capture = Capture(config, realtime)
        if cancel is not None and cancel.is_set():  # opening devices is the slow part here
            self.capture.close()
            raise StartupInterrupted("start-up interrupted")
        infos = self.capture.describe()
        self.perception = make_perception(config, infos)
        self.computation = make_computation(config, infos)
        self.execution = make_execution()
        self.recent = RecentTicks()
        self.encoders = {name: make_encoder(config, infos, name)
                         for name in video_cameras(config, infos)}
        self.startup_s = time.perf_counter() - started

    def describe(self) -> list[StreamInfo]:
        return self.capture.describe()

    def discard(self) -> int:
        return self.capture.discard()

    def begin_task(self, start_ns: int, duration_s: float) -> None:
        self.capture.begin_task(start_ns, duration_s)

    def end_task(self) -> bool:
        return self.capture.end_task()

    def begin_episode(self, plan: EpisodePlan) -> str:
        return self.execution.begin(plan)

    def submit(self, clock: EpisodeClock, index: int, final: bool) -> None:
        raw = self.capture.read_batch(clock, index, final)
        grid = self.perception.process(raw)
        # the frames are encoded from the read's block before computation empties it
        videos = {name: encoder.encode(raw, grid.jobs.get(name))
                  for name, encoder in self.encoders.items()}
        grid = self.computation.process(grid)
        grid.videos = videos
        self.recent.add(self.execution.append(grid).digests)

    def finish_episode(self, metadata: EpisodeMetadata, recording_s: float) -> EpisodeSummary:
        tails = {name: encoder.finish() for name, encoder in self.encoders.items()}
        summary = self.execution.finish(metadata, recording_s, tails)
        self.recent.add(summary.digests)
        return summary

    def health(self) -> dict[str, dict]:
        return self.capture.health()

    def previews(self) -> dict[str, Preview]:
        return self.capture.collect_previews()

    def close(self) -> None:
        self.execution.close()
        self.capture.close()
