"""Device entries of the station YAML. The `type` field picks the model (a discriminated union)."""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Base for every user-written model: unknown keys are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid")


class AlignSpec(StrictModel):
    """How a stream is placed onto the episode grid (see collector/perception)."""

    method: Literal["nearest", "interpolate", "mean", "last", "max"] = "nearest"
    tolerance_ms: float | None = Field(
        None, gt=0, description="farthest sample accepted for a tick; null: from the stream rate"
    )


class Faults(StrictModel):
    """Faults a simulated device injects, as fractions of samples unless stated."""

    drop_rate: float = Field(0.0, ge=0, le=1)
    corrupt_byte_rate: float = Field(0.0, ge=0, le=1)
    frozen_rate: float = Field(0.0, ge=0, le=1)
    blur_rate: float = Field(0.0, ge=0, le=1)
    overexposed_rate: float = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0, description="fixed delay from capture to arrival")
    jitter_ms: float = Field(0.0, ge=0, description="std-dev of arrival jitter")
    clock_drift_ppm: float = 0.0
    clock_offset_ms: float = 0.0
    disconnect_at_s: float | None = Field(None, ge=0, description="seconds after open")
    disconnect_for_s: float = Field(0.0, ge=0)
    seed: int = 0


class DeviceBase(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="stream name in episodes")
    align: AlignSpec | None = None


class CameraBase(DeviceBase):
    width: int = Field(640, gt=0, le=8192)
    height: int = Field(480, gt=0, le=8192)
    fps: float = Field(30.0, gt=0, le=1000)


class SimCameraConfig(CameraBase):
    """A camera that renders the simulated arm's scene, with a frame counter a test can read."""

    type: Literal["sim_camera"]
    faults: Faults = Faults()


class OpenCVCameraConfig(CameraBase):
    """A real camera through OpenCV: index, /dev/video path, video file or stream URL."""

    type: Literal["opencv_camera"]
    source: int | str = 0
    fourcc: str | None = Field(None, min_length=4, max_length=4)
    color_order: Literal["rgb", "bgr"] = "rgb"
    rotation: Literal[0, 90, 180, 270] = 0
    warmup_frames: int = Field(5, ge=0)
    buffer_size: int = Field(1, ge=1)


class SimSensorConfig(DeviceBase):
    """A force/torque sensor producing a smooth, contact-driven signal."""

    type: Literal["sim_sensor"]
    rate_hz: float = Field(1000.0, gt=0, le=100_000)
    channels: list[str] = Field(default_factory=lambda: ["fx", "fy", "fz", "tx", "ty", "tz"])
    unit: str = "N"
    faults: Faults = Faults()


class SimArmConfig(DeviceBase):
    """A position-controlled arm that follows the task's commands with first-order lag."""

    type: Literal["sim_arm"]
    joints: int = Field(6, ge=1, le=32)
    rate_hz: float = Field(100.0, gt=0, le=10_000)
    faults: Faults = Faults()


class ReplayConfig(DeviceBase):
    """One stream of a recorded episode played back as a live stream (drivers/replay.py)."""

    type: Literal["replay"]
    episode: str | None = Field(None, description="episode .h5; null: the one on the command line")
    stream: str | None = Field(None, description="stream in the episode; null: this device's name")
    kind: Literal["camera", "sensor", "arm", "action"] | None = Field(
        None, description="null: from the episode (images: camera, actions: action, qpos: arm)")
    start_s: float = Field(0.0, ge=0, description="episode seconds to start from")
    end_s: float | None = Field(None, gt=0, description="episode seconds to stop at; null: end")
    realtime: bool = Field(True, description="false: stepped, each read is the next chunk")


DEVICE_MODELS = (SimCameraConfig, OpenCVCameraConfig, SimSensorConfig, SimArmConfig,
                 ReplayConfig)
DeviceConfig = Annotated[Union[DEVICE_MODELS], Field(discriminator="type")]  # noqa: UP007
DEVICE_TYPES = frozenset(get_args(m.model_fields["type"].annotation)[0] for m in DEVICE_MODELS)

CAMERA_TYPES = (SimCameraConfig, OpenCVCameraConfig)
