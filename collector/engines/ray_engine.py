"""The Ray engine: capture, perception and execution as actors, computation as a pool, and
one encoder actor per video-coded camera.

Batches pass between actors as object refs; the driver process only holds refs. At most
`engine.max_inflight_batches` batches are in flight, so a slow stage pushes back on the loop
instead of growing memory. A stage actor that dies is restarted by Ray; the batches it held are
reported to execution as lost, with the stage as the cause, and the episode goes on.

Live (realtime) devices cannot wait, so a batch still not computed `engine.batch_deadline_s`
after the one before it is given up as stalled. Stepped devices (a stepped replay) hand out
episode time on demand, so nothing is lost by waiting and a batch's fate must not depend on how
loaded the host is: there a batch is lost only when its stage crashes, and a stage that hangs
ends the command with an error after `STEPPED_HANG_S` instead of recording missing ticks.

Encoding is stateful, so each video camera's reads must reach its encoder in order: the driver
calls the camera's actor once per read, and Ray runs one caller's calls to one actor in the
order they were made; the cameras' actors run side by side. The read's block reaches the
encoder by reference (zero-copy on the same node). An encoder that dies loses the frames of
the calls it had not answered (their ticks are missing); its restarted actor starts a new
video at a keyframe.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from collector.batch import CameraPackets, EncodeJob, EpisodeClock, GridBatch, HeldBlock, RawBatch
from collector.capture import Capture, read_limit
from collector.engines.base import (
    Engine,
    EngineStats,
    make_computation,
    make_encoder,
    make_execution,
    make_perception,
    video_cameras,
)
from collector.engines.ray_session import capture_placement, ensure_ray
from collector.errors import PipelineError, StartupInterrupted
from collector.previews import Preview
from collector.recent import RecentTicks
from collector.stages.computation import Computation
from collector.stages.encoding import CameraEncoder
from collector.stages.execution import EpisodePlan, EpisodeSummary, Execution, Written
from collector.stages.perception import Perception
from collector.tuning import tune_process
from drivers.base import StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import StationConfig

STAGE_RESTARTS = 10  # per actor and station run; a stage crashing more often is a bug to fix
PERCEPTION_HOLDS = 3  # batches whose frames perception keeps (pending ticks point into them)
CANCEL_POLL_S = 0.2  # how often a waiting start-up looks for a signal
# Stepped: a batch not written this long after the loop began waiting for it means a stage
# hangs (no load makes one batch take minutes), and the command ends with an error.
STEPPED_HANG_S = 600.0


class _Hosted:
    """One stage object built inside its actor (so no big object crosses at start-up); each
    actor class below offers its stage's methods by name, so every call site is a real one."""

    def __init__(self, factory: Callable[..., Any], *args: Any):
        tune_process()
        self.stage = factory(*args)

    def actor_id(self) -> str:
        """This actor's id: it names the stage in a crash cause (see `_crash_cause`)."""
        actor_id = ray.get_runtime_context().get_actor_id()
        assert actor_id is not None  # None only outside an actor, and this runs in one
        return actor_id

    def node_id(self) -> str:
        """The Ray node this stage runs on (where a station's capture must be)."""
        return ray.get_runtime_context().get_node_id()


@ray.remote(num_cpus=0)
class _CaptureActor(_Hosted):
    stage: Capture

    def describe(self) -> list[StreamInfo]:
        return self.stage.describe()

    def discard(self) -> int:
        return self.stage.discard()

    def begin_task(self, start_ns: int, duration_s: float) -> None:
        self.stage.begin_task(start_ns, duration_s)

    def end_task(self) -> bool:
        return self.stage.end_task()

    def read_batch(self, clock: EpisodeClock, index: int, final: bool) -> RawBatch:
        return self.stage.read_batch(clock, index, final)

    def health(self) -> dict[str, dict]:
        return self.stage.health()

    def collect_previews(self) -> dict[str, Preview]:
        return self.stage.collect_previews()

    def close(self) -> None:
        self.stage.close()


@ray.remote(num_cpus=0)
class _PerceptionActor(_Hosted):
    stage: Perception

    @ray.method(num_returns=2)
    def perceive(self, boxed: list) -> tuple[GridBatch, dict[str, EncodeJob]]:
        """The raw batch comes boxed, so that its reference can travel on as the block its
        frames stay in (collector/frames.py) while only handles move. The encode jobs come
        back on their own, so the encoders fetch only them, not the grid."""
        grid = self.stage.process(ray.get(boxed[0]), HeldBlock(boxed[0]))
        return grid, grid.jobs


@ray.remote(num_cpus=0)
class _EncoderActor(_Hosted):
    stage: CameraEncoder

    def encode(self, batch: RawBatch, jobs: dict[str, EncodeJob]) -> CameraPackets:
        return self.stage.encode(batch, jobs.get(self.stage.camera))

    def finish(self) -> CameraPackets:
        return self.stage.finish()


@ray.remote(num_cpus=0)
class _ComputationActor(_Hosted):
    stage: Computation

    def compute(self, batch: GridBatch) -> GridBatch:
        """Fetch the blocks the chosen frames are in (zero-copy reads from the object store on
        this node), then encode."""
        keys = list(batch.frames)
        refs = [_held_ref(batch.frames[k]) for k in keys]
        batch.frames = dict(zip(keys, ray.get(refs), strict=True))
        return self.stage.process(batch)


def _held_ref(block: RawBatch | HeldBlock) -> Any:
    """The object reference perception was given for a block (in Ray it holds every block so)."""
    assert isinstance(block, HeldBlock), "perception in Ray holds every block by reference"
    return block.handle


@ray.remote(num_cpus=0)
class _ExecutionActor(_Hosted):
    stage: Execution

    def begin(self, plan: EpisodePlan) -> str:
        return self.stage.begin(plan)

    def finish(self, metadata: EpisodeMetadata, recording_s: float,
               tails: dict[str, list]) -> EpisodeSummary:
        return self.stage.finish(metadata, recording_s, _packets(tails))

    def close(self) -> None:
        self.stage.close()

    def append_from(self, clock: EpisodeClock, index: int, boxed: list, worker: str,
                    wait_s: float | None, roles: dict[str, str], videos: dict[str, list],
                    upstream: list) -> Written:
        """Execution side: resolve the batch and append it, or account for its loss; with
        the packets of its video cameras either way (`videos`: camera -> boxed ref).

        The ref comes boxed in a list so that a crashed stage reaches us as an exception
        instead of failing this call. Batches are appended in order, so this call starts once
        the batch before is written: a batch still not computed `wait_s` later is given up (its
        worker is stuck or restarting), while a pipeline that is merely slow keeps its batches.
        `wait_s` None (stepped devices): wait as long as it takes; only a crash loses it.
        Packets are never given up while their encoder lives: the next ones build on them.
        The deadline starts once the batch's computation could start (`upstream`: its
        perception result, boxed): capture and perception are single actors every batch
        passes, so their pace (a cold first read on a loaded host) is no worker's stall.
        """
        packets = _packets(videos)
        ray.wait(upstream)  # a crash there reaches us below, through the computed ref
        ready, _ = ray.wait(boxed, timeout=wait_s)
        if not ready:  # still not computed: its worker is stuck or restarting
            return self.stage.lose(index, f"stalled:{worker}", clock, packets)
        try:
            batch = ray.get(ready[0])
        except (RayActorError, RayTaskError) as exc:
            death = _dead_actor(exc)
            if death is None:
                raise  # the stage's own code raised: a bug to show, not a crash to account
            return self.stage.lose(index, _crash_cause(death, roles), clock, packets)
        batch.videos = packets
        return self.stage.append(batch)


def _packets(videos: dict[str, list]) -> dict[str, CameraPackets]:
    """Each camera's packets, resolved; a camera whose encoder died with them (or whose read
    was lost before it) is left out: its frames were never stored, and execution marks the
    ticks that show them missing."""
    out = {}
    for camera, boxed in videos.items():
        try:
            out[camera] = ray.get(boxed[0])
        except (RayActorError, RayTaskError) as exc:
            if _dead_actor(exc) is None:
                raise  # the encoder's own code raised: a bug, not a crash
    return out


def _dead_actor(exc: Exception) -> RayActorError | None:
    """The death of an actor that made a stage's result fail (Ray restarts it, the batch is
    accounted lost and the episode goes on); None when the stage's code raised instead. A
    raise repeats on every batch (seen: an OpenCV release that refused our frame stacks), so
    accounting it would record whole episodes of missing ticks and call them `success`."""
    if isinstance(exc, RayTaskError):
        exc = exc.cause
    return exc if isinstance(exc, RayActorError) else None


def _crash_cause(death: RayActorError, roles: dict[str, str]) -> str:
    """`crash:<stage>` for the actor that died, found by its id (the error carries it)."""
    actor_id = getattr(death, "actor_id", None)
    if actor_id is not None and not isinstance(actor_id, str):
        actor_id = actor_id.hex()
    stage = roles.get(actor_id, "stage") if actor_id is not None else "stage"
    return f"crash:{stage}"


def nominal_batch_bytes(infos: list[StreamInfo], chunk_s: float) -> float:
    """Bytes one read of every stream hands out at nominal rates."""
    return sum(info.rate_hz * chunk_s * info.sample_bytes for info in infos)


def inflight_budget(store_bytes: float, batch_bytes: float) -> float:
    """Bytes of raw batches the loop lets live in the object store: 40% of it. The rest holds
    the encoded batches (in flight, and in the writer until its next flush) and headroom: a
    full store spills to disk, which costs far more than waiting."""
    return max(0.4 * store_bytes, 2 * batch_bytes)


def _object_store_bytes(config: StationConfig) -> float:
    """The smallest node's object store (attached), or the one Collector started."""
    if not config.engine.address:
        return config.engine.object_store_mb * 2**20
    stores = [n["Resources"].get("object_store_memory", 0) for n in ray.nodes() if n["Alive"]]
    return float(min(stores, default=config.engine.object_store_mb * 2**20))


class RayEngine(Engine):
    def __init__(self, config: StationConfig, realtime: bool = True,
                 cancel: threading.Event | None = None):
        started = time.perf_counter()
        self._cancel = cancel or threading.Event()
        self._actors: list = []  # every actor started, so an interrupted start-up ends them
        self.ray_startup_s = ensure_ray(config.engine, config.station.id, config.station.output_dir)
        try:
            self._start(config, realtime)
        except StartupInterrupted:
            self._kill_actors()
            raise
        self.startup_s = time.perf_counter() - started

    def _start(self, config: StationConfig, realtime: bool) -> None:
        self._unless_cancelled()
        restartable = {"max_restarts": STAGE_RESTARTS, "max_task_retries": 0}
        # The `type: ignore[attr-defined]`s below: @ray.remote makes each class an ActorClass
        # (with .options and .remote), but ray types the decorated class as the class itself.
        # Capture runs where the station's hardware is: the node offering its custom resource.
        placement = capture_placement(config.station.id)
        self.capture = self._started(
            _CaptureActor.options(**restartable, **placement  # type: ignore[attr-defined]
                                  ).remote(Capture, config, realtime, True))
        [infos] = self._get([self.capture.describe.remote()])
        self._infos = infos
        self.perception = self._started(
            _PerceptionActor.options(**restartable).remote(  # type: ignore[attr-defined]
                make_perception, config, infos))
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = config.pipeline.computation_workers or cpus
        # the pool shares the CPUs (more workers than CPUs is allowed: it hides their waits)
        share = min(1.0, cpus / workers)
        self.pool = [
            self._started(_ComputationActor.options(  # type: ignore[attr-defined]
                num_cpus=share, scheduling_strategy="SPREAD", **restartable,
            ).remote(make_computation, config, infos))
            for _ in range(workers)
        ]
        # one per video camera, each called in order by this driver alone (see the module)
        self.encoders = {
            name: self._started(_EncoderActor.options(**restartable).remote(  # type: ignore[attr-defined]
                make_encoder, config, infos, name))
            for name in video_cameras(config, infos)}
        # owns the open file: never restarted
        self.execution = self._started(
            _ExecutionActor.remote(make_execution))  # type: ignore[attr-defined]
        named = {"capture": self.capture, "perception": self.perception,
                 **{f"computation-{i}": w for i, w in enumerate(self.pool)},
                 **{f"encoder-{name}": e for name, e in self.encoders.items()}}
        # every actor up (a loaded host can take many seconds); actor id -> stage, for crashes
        *ids, _ = self._get([a.actor_id.remote() for a in (*named.values(), self.execution)])
        self.roles = dict(zip(ids, named, strict=True))
        self._busy: list[list] = [[] for _ in self.pool]  # per worker: batches not yet done
        self.max_inflight = config.engine.max_inflight_batches
        # stepped: no deadline, so the episode is the same however loaded the host is
        self.batch_deadline_s = config.engine.batch_deadline_s if realtime else None
        self._hang_s = None if realtime else STEPPED_HANG_S
        self._chunk_s = config.episode.chunk_ms / 1000
        self._batch_bytes = nominal_batch_bytes(infos, self._chunk_s)
        self._max_read_bytes = sum(read_limit(i, self._chunk_s) * i.sample_bytes for i in infos)
        self.budget_bytes = inflight_budget(_object_store_bytes(config), self._batch_bytes)
        self.inflight: deque = deque()  # execution result per batch, oldest first
        self._sizes: deque = deque(maxlen=self.max_inflight + PERCEPTION_HOLDS)  # bytes per read
        self._last_read: float | None = None
        self.backpressure_waits = 0  # times the loop waited for the pipeline to drain
        self.recent = RecentTicks()  # from each batch's result: nothing asks the busy actor

    # -- start-up that a signal can end at any step ------------------------------------------

    def _unless_cancelled(self) -> None:
        if self._cancel.is_set():
            raise StartupInterrupted("start-up interrupted")

    def _started(self, actor):
        self._actors.append(actor)
        self._unless_cancelled()
        return actor

    def _get(self, refs: list) -> list:
        """`ray.get`, but a start-up cancelled meanwhile stops waiting (actors on a loaded host
        can take many seconds to come up)."""
        pending = list(refs)
        while pending:
            self._unless_cancelled()
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_POLL_S)
        return ray.get(refs)

    def _kill_actors(self) -> None:
        for actor in self._actors:
            with contextlib.suppress(Exception):  # best effort: the actor may be gone
                ray.kill(actor, no_restart=True)

    def describe(self) -> list[StreamInfo]:
        return self._infos

    def discard(self) -> int:
        return ray.get(self.capture.discard.remote())

    def begin_task(self, start_ns: int, duration_s: float) -> None:
        ray.get(self.capture.begin_task.remote(start_ns, duration_s))

    def end_task(self) -> bool:
        return ray.get(self.capture.end_task.remote())

    def begin_episode(self, plan: EpisodePlan) -> str:
        return ray.get(self.execution.begin.remote(plan))

    def submit(self, clock: EpisodeClock, index: int, final: bool) -> None:
        size = self._read_bytes()
        raw = self.capture.read_batch.remote(clock, index, final)
        grid, jobs = self.perception.perceive.remote([raw])
        worker = self._least_busy_worker()
        encoded = self.pool[worker].compute.remote(grid)
        self._busy[worker].append(encoded)
        videos = {name: [e.encode.remote(raw, jobs)] for name, e in self.encoders.items()}
        self.inflight.append(self.execution.append_from.remote(
            clock, index, [encoded], f"computation-{worker}", self.batch_deadline_s, self.roles,
            videos, [grid]))
        self._sizes.append(size)
        while self.inflight and ray.wait([self.inflight[0]], timeout=0)[0]:
            self._written()  # written already (raises what execution raised)
        while len(self.inflight) > self.max_inflight or (
                self._store_use() > self.budget_bytes and len(self.inflight) > 1):
            self.backpressure_waits += 1  # the pipeline is full: wait for the oldest batch
            self._written()

    def _written(self) -> None:
        """Wait until the oldest batch in flight is written (or accounted lost)."""
        try:
            written = ray.get(self.inflight.popleft(), timeout=self._hang_s)
        except GetTimeoutError:
            raise PipelineError(
                f"batch not written in {self._hang_s:.0f} s: a pipeline stage hangs (its Ray "
                "worker log says where); what was written stays in the .h5.partial") from None
        self.recent.add(written.digests)

    def _store_use(self) -> float:
        """Estimated bytes of raw batches alive in the object store: those in flight, and at
        least the last few reads (perception keeps their frames for ticks still to come)."""
        alive = max(len(self.inflight), PERCEPTION_HOLDS)
        return sum(list(self._sizes)[-alive:])

    def _read_bytes(self) -> float:
        """Bytes the next read will hand out, from the time since the last one (a read is
        capped, see collector/capture.py `read_limit`)."""
        now = time.monotonic()
        chunks = 1.0 if self._last_read is None else (now - self._last_read) / self._chunk_s
        self._last_read = now
        return min(self._batch_bytes * max(chunks, 0.1), self._max_read_bytes)

    def stats(self) -> EngineStats:
        return EngineStats(startup_s=self.startup_s, ray_startup_s=self.ray_startup_s,
                           backpressure_waits=self.backpressure_waits,
                           computation_workers=len(self.pool),
                           inflight_budget_mb=self.budget_bytes / 2**20)

    def _least_busy_worker(self) -> int:
        """The worker with the fewest unfinished batches: a slow or restarting one gets less."""
        for refs in self._busy:
            if refs:
                _, refs[:] = ray.wait(refs, num_returns=len(refs), timeout=0)
        return min(range(len(self.pool)), key=lambda i: len(self._busy[i]))

    def finish_episode(self, metadata: EpisodeMetadata, recording_s: float) -> EpisodeSummary:
        while self.inflight:
            self._written()
        self._last_read = None
        tails = {name: [e.finish.remote()] for name, e in self.encoders.items()}
        summary = ray.get(self.execution.finish.remote(metadata, recording_s, tails))
        self.recent.add(summary.digests)
        return summary

    def health(self) -> dict[str, dict]:
        return ray.get(self.capture.health.remote())

    def previews(self) -> dict[str, Preview]:
        return ray.get(self.capture.collect_previews.remote())

    def close(self) -> None:
        if self.inflight:  # each batch's error (a disk full each) seen, not left for Ray to
            refs = list(self.inflight)  # print as "Unhandled error" when the refs are dropped
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=10)
            for ref in done:
                with contextlib.suppress(Exception):
                    ray.get(ref)
            self.inflight.clear()
        for actor in (self.execution, self.capture):
            with contextlib.suppress(Exception):  # best effort: the actor may be gone
                ray.get(actor.close.remote(), timeout=10)
        self._kill_actors()
