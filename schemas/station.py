"""The station YAML: one `StationConfig` describes a rig and how to collect from it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.devices import CAMERA_TYPES, DeviceConfig, StrictModel


class StationInfo(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="used in paths")
    output_dir: str = "episodes"
    operator: str = ""


class EngineConfig(StrictModel):
    kind: Literal["ray", "inline"] = "ray"
    address: str | None = Field(None, description='null: local Ray; "auto" or ray://host:port')
    object_store_mb: int = Field(512, ge=64, description="local Ray object store size")
    max_inflight_batches: int = Field(8, ge=1, description="backpressure: batches in flight")
    batch_deadline_s: float = Field(
        3.0, gt=0, description="a batch not computed this long after its read is counted lost")


class EpisodeConfig(StrictModel):
    control_hz: float = Field(30.0, gt=0, le=1000)
    duration_s: float = Field(20.0, gt=0)
    reset_s: float = Field(2.0, ge=0)
    task: str = "pick_place"
    task_success_rate: float = Field(1.0, ge=0, le=1, description="simulated tasks only")
    chunk_ms: float = Field(100.0, ge=10, le=2000, description="how often devices are read")


class ImageEncoding(StrictModel):
    encoding: Literal["jpeg", "png", "raw"] = "jpeg"
    quality: int = Field(90, ge=1, le=100, description="JPEG quality")
    png_compression: int = Field(1, ge=0, le=9)
    resize: tuple[int, int] | None = Field(None, description="[width, height] after capture")


class PipelineConfig(StrictModel):
    computation_workers: int | None = Field(None, ge=1, description="null: CPUs Ray has")
    images: ImageEncoding = ImageEncoding()


class StorageConfig(StrictModel):
    flush_interval_s: float = Field(1.0, gt=0)
    min_free_gb: float = Field(2.0, ge=0)
    compression: Literal["none", "lzf", "gzip", "zstd"] = "none"
    keep_raw: bool = Field(True, description="store full-rate samples under /raw")


class StationConfig(StrictModel):
    station: StationInfo
    engine: EngineConfig = EngineConfig()
    episode: EpisodeConfig = EpisodeConfig()
    devices: list[DeviceConfig] = Field(min_length=1)
    pipeline: PipelineConfig = PipelineConfig()
    storage: StorageConfig = StorageConfig()

    @model_validator(mode="after")
    def _names_are_unique(self) -> StationConfig:
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"device names must be unique; repeated: {', '.join(dupes)}")
        return self

    def cameras(self) -> list:
        return [d for d in self.devices if isinstance(d, CAMERA_TYPES)]
