"""What every engine offers the station loop, and the stage set both engines build."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from collector.batch import EpisodeClock
from collector.previews import Preview
from collector.recent import RecentFigures, RecentTicks
from collector.stages.computation import Computation
from collector.stages.encoding import CameraEncoder
from collector.stages.execution import EpisodePlan, EpisodeSummary, Execution
from collector.stages.perception import Perception, plan_streams
from core.codec import JPEG_FIELD
from drivers.base import StreamInfo
from schemas.episode import EpisodeMetadata
from schemas.station import CameraChecks, ImageEncoding, StationConfig


def make_perception(config: StationConfig, infos: list[StreamInfo]) -> Perception:
    specs = {d.name: d.align for d in config.devices}
    return Perception(plan_streams(infos, specs, config.episode.control_hz, config.quality,
                                   config.pipeline.derived, config.pipeline.images))


def image_encodings(config: StationConfig, infos: list[StreamInfo]) -> dict[str, ImageEncoding]:
    """How each camera's frames are stored: pipeline.images with the camera's overrides."""
    return {i.name: config.pipeline.images.for_camera(i.name) for i in infos
            if i.kind == "camera"}


def video_cameras(config: StationConfig, infos: list[StreamInfo]) -> list[str]:
    """The cameras stored as video (each with its own encoder), in stream order."""
    return [name for name, spec in image_encodings(config, infos).items()
            if spec.is_video]


def make_encoder(config: StationConfig, infos: list[StreamInfo], camera: str) -> CameraEncoder:
    info = next(i for i in infos if i.name == camera)
    return CameraEncoder(camera, image_encodings(config, infos)[camera],
                         info.frame_shape, info.rate_hz)


def camera_checks(config: StationConfig, infos: list[StreamInfo]) -> dict[str, CameraChecks]:
    """The image checks of each camera (none when quality checks are off)."""
    if not config.quality:
        return {}
    return {i.name: config.quality.for_camera(i.name) for i in infos if i.kind == "camera"}


def camera_jpeg(infos: list[StreamInfo]) -> frozenset[str]:
    """The cameras that hand out their own JPEG bytes (stored as they came, not encoded)."""
    return frozenset(i.name for i in infos if i.kind == "camera" and JPEG_FIELD in i.fields)


def make_computation(config: StationConfig, infos: list[StreamInfo]) -> Computation:
    cameras = {i.name: i.frame_shape for i in infos if i.kind == "camera"}
    return Computation(image_encodings(config, infos), cameras, camera_checks(config, infos),
                       camera_jpeg(infos))


def make_execution() -> Execution:
    return Execution()


@dataclass(frozen=True)
class EngineStats:
    """An engine's figures for reports; None where the engine has no such figure."""

    startup_s: float  # bringing the engine up (Ray start, actors, devices)
    ray_startup_s: float | None = None  # of which starting or attaching to Ray
    warm_up_s: float = 0.0  # after it, the station's warm-up (collector/station.py `warm_up`)
    backpressure_waits: int | None = None  # times the loop waited for the pipeline to drain
    computation_workers: int | None = None
    inflight_budget_mb: float | None = None  # raw batches let live in the object store


class Engine(ABC):
    """Drives capture -> perception -> computation -> execution, one batch per device read."""

    startup_s: float = 0.0  # time to bring the engine up (Ray start, actors, devices)
    recent: RecentTicks  # the last seconds of written ticks: fed from execution's results

    @abstractmethod
    def describe(self) -> list[StreamInfo]: ...

    @abstractmethod
    def discard(self) -> int: ...

    @abstractmethod
    def begin_task(self, start_ns: int, duration_s: float) -> None: ...

    @abstractmethod
    def end_task(self) -> bool: ...

    @abstractmethod
    def begin_episode(self, plan: EpisodePlan) -> str: ...

    @abstractmethod
    def submit(self, clock: EpisodeClock, index: int, final: bool) -> None:
        """Read the devices now and push the batch down the pipeline (may return early)."""

    @abstractmethod
    def finish_episode(self, metadata: EpisodeMetadata, recording_s: float) -> EpisodeSummary:
        """Wait for every batch in flight, then commit the episode."""

    def stats(self) -> EngineStats:
        """The engine's figures for reports: start-up time, backpressure waits..."""
        return EngineStats(self.startup_s)

    def health(self) -> dict[str, dict]:
        """Per device: rate, samples, last sample age, seconds disconnected (see Capture)."""
        return {}

    def forget_recent(self) -> None:
        """Drop the live figures gathered so far (the warm-up's ticks: never written)."""
        self.recent = RecentTicks()

    def recent_ticks(self, now_ns: int) -> dict[str, RecentFigures]:
        """Per stream, its ticks written in the last seconds before `now_ns` (the station's
        clock): |dt| p99 and the quality flags raised (collector/recent.py)."""
        return self.recent.view(now_ns)

    def previews(self) -> dict[str, Preview]:
        """Camera previews taken since the last call; asking keeps them coming (see
        collector/previews.py)."""
        return {}

    @abstractmethod
    def close(self) -> None: ...
