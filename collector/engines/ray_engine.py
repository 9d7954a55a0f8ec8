"""The Ray engine: capture, perception and execution as actors, computation as a pool.

Batches pass between actors as object refs; the driver process only holds refs. At most
`engine.max_inflight_batches` batches are in flight, so a slow stage pushes back on the loop
instead of growing memory.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque

import ray

from collector.batch import EpisodeClock
from collector.capture import Capture
from collector.engines.base import Engine, make_computation, make_execution, make_perception
from collector.engines.ray_session import ensure_ray
from collector.stages.execution import EpisodePlan, EpisodeSummary
from drivers.base import StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import StationConfig


@ray.remote(num_cpus=0)
class _Stage:
    """Hosts one stage object built inside the actor (so no big object crosses at start-up)."""

    def __init__(self, factory, *args):
        self.stage = factory(*args)

    def call(self, method: str, *args):
        return getattr(self.stage, method)(*args)

    def process(self, batch):
        return self.stage.process(batch)

    def ready(self) -> bool:
        return True


class RayEngine(Engine):
    def __init__(self, config: StationConfig, realtime: bool = True):
        started = time.perf_counter()
        self.ray_startup_s = ensure_ray(config.engine)
        self.capture = _Stage.options(max_concurrency=1).remote(Capture, config, realtime)
        infos = ray.get(self.capture.call.remote("describe"))
        self._infos = infos
        self.perception = _Stage.remote(make_perception, config, infos)
        workers = config.pipeline.computation_workers or max(
            1, int(ray.cluster_resources().get("CPU", 1)))
        self.pool = [_Stage.options(num_cpus=1).remote(make_computation, config, infos)
                     for _ in range(workers)]
        self.execution = _Stage.remote(make_execution)
        ray.get([a.ready.remote() for a in (self.perception, self.execution, *self.pool)])
        self.max_inflight = config.engine.max_inflight_batches
        self.inflight: deque = deque()
        self.backpressure_waits = 0
        self.startup_s = time.perf_counter() - started

    def describe(self) -> list[StreamInfo]:
        return self._infos

    def discard(self) -> int:
        return ray.get(self.capture.call.remote("discard"))

    def begin_task(self, start_ns: int, duration_s: float) -> None:
        ray.get(self.capture.call.remote("begin_task", start_ns, duration_s))

    def end_task(self) -> bool:
        return ray.get(self.capture.call.remote("end_task"))

    def begin_episode(self, plan: EpisodePlan) -> str:
        return ray.get(self.execution.call.remote("begin", plan))

    def submit(self, clock: EpisodeClock, index: int, final: bool) -> None:
        raw = self.capture.call.remote("read_batch", clock, index, final)
        grid = self.perception.process.remote(raw)
        encoded = self.pool[index % len(self.pool)].process.remote(grid)
        self.inflight.append(self.execution.call.remote("append", encoded))
        while len(self.inflight) > self.max_inflight:
            self.backpressure_waits += 1
            ray.get(self.inflight.popleft())

    def finish_episode(self, metadata: EpisodeMetadata, recording_s: float,
                       overhead_s: dict[str, float]) -> EpisodeSummary:
        while self.inflight:
            ray.get(self.inflight.popleft())
        return ray.get(self.execution.call.remote("finish", metadata, recording_s, overhead_s))

    def health(self) -> dict[str, dict]:
        return ray.get(self.capture.call.remote("health"))

    def close(self) -> None:
        for actor, method in ((self.execution, "close"), (self.capture, "close")):
            with contextlib.suppress(Exception):
                ray.get(actor.call.remote(method), timeout=10)
        for actor in (self.capture, self.perception, self.execution, *self.pool):
            ray.kill(actor)
