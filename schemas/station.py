"""The station YAML: one `StationConfig` describes a rig and how to collect from it."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from schemas.devices import (
    CAMERA_TYPES,
    DeviceConfig,
    OpenCVCameraConfig,
    SimCameraConfig,
    StrictModel,
)
from schemas.names import NAME_PATTERN


class StationInfo(StrictModel):
    id: str = Field(pattern=NAME_PATTERN, description="used in paths")
    output_dir: str = "episodes"
    operator: str = ""


class EngineConfig(StrictModel):
    kind: Literal["ray", "inline"] = "ray"
    address: str | None = Field(None, description='null: local Ray; "auto" or ray://host:port')
    object_store_mb: int = Field(1024, ge=64, description="local Ray object store size")
    temp_dir: str | None = Field(
        None, description="where a local Ray keeps its sessions, logs and sockets; null: "
                          "<station.output_dir>/.ray (or the system's temp folder when that "
                          "path is too long for a unix socket)")
    max_inflight_batches: int = Field(
        8, ge=1, description="backpressure: batches in flight (fewer when their frames would "
                             "fill more than 40% of the object store)")
    batch_deadline_s: float = Field(
        3.0, gt=0, description="a batch still not computed this long after the one before it "
                               "was written is counted lost (its worker is stuck)")
    warm_up_s: float = Field(
        2.0, ge=0, le=60, description="seconds of live data run through every stage after "
                                      "start-up and thrown away, so the first episode starts "
                                      "on warm processes; counted as start-up; 0: none")


class Waypoint(StrictModel):
    """One step of a task sequence: move to `joints` (rad) over `duration_s`, then hold."""

    joints: list[float] = Field(min_length=1, description="joint targets, rad")
    gripper: float = Field(0.0, ge=0, le=1, description="0 open .. 1 closed")
    duration_s: float = Field(gt=0, description="time to reach this waypoint from the last")
    hold_s: float = Field(0.0, ge=0, description="time to stay here before the next")


class TaskSequence(StrictModel):
    """A task written in YAML: waypoints the arm follows in order; the episode ends after them."""

    name: str = Field("sequence", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    waypoints: list[Waypoint] = Field(min_length=1)

    @property
    def duration_s(self) -> float:
        return sum(w.duration_s + w.hold_s for w in self.waypoints)


BUILT_IN_TASKS = ("pick_place",)


class EpisodeConfig(StrictModel):
    control_hz: float = Field(30.0, gt=0, le=1000)
    duration_s: float = Field(20.0, gt=0, le=7 * 86400,
                              description="the longest an episode records (at most a week)")
    reset_s: float = Field(2.0, ge=0)
    task: str | TaskSequence = Field(
        "pick_place", description='a built-in task ("pick_place"), a Python class '
        '("package.module:Class"), or a waypoint sequence {name, waypoints: [...]}')
    task_success_rate: float = Field(1.0, ge=0, le=1, description="simulated tasks only")
    chunk_ms: float = Field(100.0, ge=10, le=2000, description="how often devices are read")

    @field_validator("task")
    @classmethod
    def _task_is_known(cls, task: str | TaskSequence) -> str | TaskSequence:
        if isinstance(task, str) and task not in BUILT_IN_TASKS and ":" not in task:
            raise ValueError(f"unknown task {task!r}: use a built-in task "
                             f"({', '.join(BUILT_IN_TASKS)}), a class as package.module:Class, "
                             f"or a waypoint sequence")
        return task


VIDEO_ENCODINGS = ("h264", "av1")  # stored once per camera frame, as a video (core/video.py)
# the speed presets each video encoder knows, fastest last for av1 (SVT-AV1), first for h264
VIDEO_PRESETS = {
    "h264": ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
             "veryslow", "placebo"),
    "av1": tuple(str(p) for p in range(14)),
}


class ImageEncoding(StrictModel):
    """How one camera's frames are stored. `jpeg`, `png` and `raw` store the frame each grid
    tick shows, per tick; `h264` and `av1` store every frame once, at the camera's rate, as a
    video the grid points into."""

    encoding: Literal["jpeg", "png", "raw", "h264", "av1"] = "h264"
    quality: int = Field(90, ge=1, le=100, description="JPEG quality")
    png_compression: int = Field(1, ge=0, le=9)
    resize: tuple[int, int] | None = Field(None, description="[width, height] after capture")
    crf: int | None = Field(None, ge=0, le=63, description="video: constant rate factor, lower "
                            "is better and bigger (null: the codec's default)")
    preset: str | None = Field(None, description="video: the encoder's speed preset (h264: "
                               "ultrafast..veryslow; av1: 0..13; null: the codec's default)")
    gop: int | None = Field(None, ge=1, le=600, description="video: frames from one keyframe to "
                            "the next; random access decodes up to this many (null: default)")
    pix_fmt: Literal["yuv420p", "yuv444p"] = Field(
        "yuv420p", description="video: chroma sampling (yuv444p: h264 only)")
    color_range: Literal["full", "limited"] = Field(
        "full", description="video: YUV levels; full (0..255, as JPEG) keeps more of the RGB "
        "frame than limited (16..235, broadcast TV) at the same bytes")

    @property
    def is_video(self) -> bool:
        """Stored once per camera frame, as a video (not one image per grid tick)."""
        return self.encoding in VIDEO_ENCODINGS

    @model_validator(mode="after")
    def _video_settings_fit(self) -> ImageEncoding:
        if self.pix_fmt == "yuv444p" and self.encoding == "av1":
            raise ValueError("pix_fmt yuv444p needs encoding h264 (SVT-AV1 encodes yuv420p)")
        if self.crf is not None and self.encoding == "h264" and self.crf > 51:
            raise ValueError(f"crf {self.crf} is past h264's range 0..51")
        presets = VIDEO_PRESETS.get(self.encoding)
        if presets and self.preset is not None and self.preset not in presets:
            # caught here, at load, not when the first episode opens its encoder
            raise ValueError(f"preset {self.preset!r} is not an {self.encoding} preset: use "
                             f"one of {', '.join(presets)}")
        return self


class ImagesConfig(ImageEncoding):
    """Image storage: defaults for every camera, overrides per camera by name."""

    cameras: dict[str, ImageEncoding] = Field(
        default_factory=dict, description="per-camera overrides: only the keys given change")

    @model_validator(mode="after")
    def _every_camera_fits(self) -> ImagesConfig:
        for name in self.cameras:
            try:
                self.for_camera(name)
            except ValidationError as exc:
                raise ValueError(f"cameras.{name}: {exc.errors()[0]['msg']}") from None
        return self

    def for_camera(self, name: str) -> ImageEncoding:
        base = ImageEncoding.model_validate(self.model_dump(exclude={"cameras"}))
        override = self.cameras.get(name)
        if override is None:
            return base
        return ImageEncoding.model_validate(
            base.model_dump() | override.model_dump(exclude_unset=True))


class DerivedSignals(StrictModel):
    """Signals computed from the raw streams and stored as extra observation fields."""

    velocities: bool = Field(True, description="arm joint velocities (qvel), finite differences")
    lowpass_hz: float | None = Field(
        20.0, gt=0, description="cut-off of the low-pass filter on sensor fields (<field>_lowpass);"
        " null: off")


class PipelineConfig(StrictModel):
    computation_workers: int | None = Field(None, ge=1, description="null: CPUs Ray has")
    images: ImagesConfig = ImagesConfig()
    derived: DerivedSignals = DerivedSignals()


class CameraChecks(StrictModel):
    """Thresholds of the image checks. They run on a grayscale copy shrunk by `downscale`.

    Sharpness is the median, over a grid of tiles, of the Laplacian's mean square: a small
    sharp region (a burned-in timestamp, a marker) on a defocused scene does not move it. A
    frame is blurred when it has lost most of the sharpness its camera showed over its last
    `blur_window` frames, or has almost none at all. Exposure is judged as a photographer
    would: clipped highlights (crushed shadows) or a scene whose mean luminance is washed out
    (sunk in the dark)."""

    downscale: int = Field(4, ge=1, le=32, description="checks see frames this many times smaller")
    frozen_max_diff: float = Field(
        0.05, ge=0, description="mean |gray change| from the previous frame at or below: frozen")
    blur_relative: float = Field(
        0.35, gt=0, le=1, description="sharpness below this share of the camera's recent median:"
        " blurred")
    blur_window: int = Field(
        30, ge=3, le=1000, description="frames the camera's recent sharpness is the median of")
    blur_min_laplacian: float = Field(
        20.0, ge=0, description="sharpness (median tile Laplacian mean square) below: blurred, "
        "whatever the camera's recent frames")
    clip_high: int = Field(250, ge=1, le=255, description="gray level at or above: clipped white")
    clip_low: int = Field(5, ge=0, le=254, description="gray level at or below: crushed black")
    overexposed_fraction: float = Field(
        0.25, gt=0, le=1, description="clipped highlights share at or above: over-exposed")
    overexposed_mean: float = Field(
        200.0, gt=0, le=255, description="mean gray level at or above: over-exposed (washed out)")
    underexposed_fraction: float = Field(
        0.5, gt=0, le=1, description="crushed shadows share at or above: under-exposed")
    underexposed_mean: float = Field(
        30.0, ge=0, lt=255, description="mean gray level at or below: under-exposed")


class SignalChecks(StrictModel):
    """Valid range of a sensor, arm or action stream (every numeric field, every channel)."""

    min: float | None = Field(None, description="values below are out of range")
    max: float | None = Field(None, description="values above are out of range")
    saturation: float | None = Field(
        None, gt=0, description="|value| at or above is saturated (the sensor's full scale)")


class QualityConfig(StrictModel):
    """Per-sample quality checks: defaults for every camera, overrides per stream by name."""

    camera: CameraChecks = CameraChecks()
    cameras: dict[str, CameraChecks] = Field(
        default_factory=dict, description="per-camera overrides: only the keys given change")
    signals: dict[str, SignalChecks] = Field(
        default_factory=dict, description="per-stream ranges of sensors, arms and the action")

    def for_camera(self, name: str) -> CameraChecks:
        override = self.cameras.get(name)
        if override is None:
            return self.camera
        return self.camera.model_copy(update=override.model_dump(exclude_unset=True))


class StorageConfig(StrictModel):
    flush_interval_s: float = Field(
        0.1, gt=0, description="how often written rows are made durable and visible to "
                               "readers: bounds capture-to-disk latency and what a crash loses")
    min_free_gb: float = Field(2.0, ge=0)
    compression: Literal["none", "lzf", "gzip", "zstd"] = "none"
    keep_raw: bool = Field(True, description="store full-rate samples under /raw")


class ApiConfig(StrictModel):
    """The daemon's HTTP control and status API (`collector run`)."""

    host: str = Field("127.0.0.1", description="listen address; non-loopback needs a token")
    port: int = Field(8765, ge=0, le=65535, description="0: any free port (logged at start)")
    token: SecretStr | None = Field(None, description="every request must carry it as "
                                    "'Authorization: Bearer <token>'")
    token_env: str | None = Field(None, description="read the token from this environment "
                                  "variable instead (keeps it out of the YAML)")
    timeout_s: float = Field(10.0, gt=0, le=300, description="a client must send a whole "
                             "request (headers, then body) within this; a stalled one is cut "
                             "off and its command not run")

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve anywhere

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ApiConfig:
        if not self.loopback and self.token is None and self.token_env is None:
            raise ValueError(f"api.host {self.host} is not a loopback address: set api.token "
                             f"(or api.token_env) so that every request must carry it")
        return self


class StationConfig(StrictModel):
    station: StationInfo
    engine: EngineConfig = EngineConfig()
    episode: EpisodeConfig = EpisodeConfig()
    devices: list[DeviceConfig] = Field(min_length=1)
    pipeline: PipelineConfig = PipelineConfig()
    storage: StorageConfig = StorageConfig()
    api: ApiConfig = ApiConfig()
    quality: QualityConfig = QualityConfig()

    @model_validator(mode="after")
    def _names_are_unique(self) -> StationConfig:
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique; repeated: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _quality_names_exist(self) -> StationConfig:
        cameras = {d.name for d in self.cameras()}
        unknown = sorted(set(self.quality.cameras) - cameras)
        if unknown:
            raise ValueError(f"quality.cameras names no camera: {', '.join(unknown)}; "
                             f"cameras are: {', '.join(sorted(cameras))}")
        signals = {d.name for d in self.devices} - cameras | {"action"}
        unknown = sorted(set(self.quality.signals) - signals)
        if unknown:
            raise ValueError(f"quality.signals names no sensor, arm or action stream: "
                             f"{', '.join(unknown)}; they are: {', '.join(sorted(signals))}")
        return self

    def cameras(self) -> list[SimCameraConfig | OpenCVCameraConfig]:
        return [d for d in self.devices if isinstance(d, CAMERA_TYPES)]
