"""The episode file layout: which datasets an episode holds, with their shapes and dtypes.

One source of truth: the writer creates exactly `EpisodeLayout.datasets()`, stores the layout as
JSON in the root attribute `layout` (before the first sample, so a partial file describes itself),
and `collector validate` and `collector recover` check and rebuild files from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.station import VIDEO_ENCODINGS

# Paths inside the file.
TIMESTAMPS = "timestamps"
IMAGES = "observations/images"
VIDEOS = "videos"  # format 2: /videos/<camera>/*, every frame of a video-coded camera once
OBSERVATIONS = "observations"
ACTIONS = "actions"
QUALITY = "quality"
RAW = "raw"
EFFICIENCY = "efficiency"
ALOHA_QPOS = "observations/qpos"  # soft links, so ALOHA/ACT training code reads our files as-is
ALOHA_ACTION = "action"
LAYOUT_ATTR = "layout"
CHANNEL_NAMES = "channel_names"  # attributes of every numeric field dataset: one entry per value
CHANNEL_UNITS = "channel_units"
MIXED_UNITS = "mixed: see channel_units"  # the `unit` attribute of a field whose channels differ
FILL_RULE_ATTR = "missing_fill"  # root attribute: what a tick without a sample holds
FILL_RULE = ("a grid tick with no sample within the stream's tolerance holds the sample nearest "
             "in time (a camera: that frame again; interpolate: the edge sample), or zeros "
             "(a camera: black) while the stream has delivered nothing; /quality/<stream>/"
             "missing is true on exactly those ticks, so mask them before training")

SYNC_FIELDS = {"capture_ns": "int64", "dt_ns": "int64", "missing": "bool"}  # /quality/<stream>/
RAW_TIMES = ("arrival_ns", "capture_ns", "device_ns", "seq")

VLEN_UINT8 = "vlen_uint8"  # encoded images: one variable-length byte array per frame

# Format 2. A video-coded camera (encoding h264 or av1) stores each frame once, at its own rate,
# as one packet, with its times: /videos/<camera>/<name>, all of one length (its frames). Its
# grid dataset /observations/images/<camera> holds, per tick, the index of the frame the tick
# shows (NO_FRAME: none yet). The group's attributes say how to decode (core/video.py).
VIDEO_FIELDS = {"packets": VLEN_UINT8, "keyframe": "bool", "capture_ns": "int64",
                "device_ns": "int64", "arrival_ns": "int64", "seq": "int64"}
# HDF5's Fletcher-32 filter checks a chunk's bytes, but a variable-length dataset's chunks hold
# only pointers to its rows: each packet carries its own zlib CRC-32 here (layouts with
# `checksums`)
VIDEO_CRC = "crc32"
NO_FRAME = -1
# ... and so do JPEG/PNG frames (variable-length too): the zlib CRC-32 of each tick's encoded
# frame, one uint32 a tick at /checksums/images/<camera> (layouts with `frame_checksums`). Not
# beside the frames in /observations/images, whose members readers take for cameras.
FRAME_CRCS = "checksums/images"

# Rows per HDF5 chunk. Grid chunks of 64 ticks (~2 s at 30 Hz) keep a flush cheap and a
# per-tick read small; raw chunks of 1024 samples (~1 s of a 1 kHz sensor) likewise; encoded
# frames go 8 per chunk (~0.4 MB of JPEG) and raw frames one per chunk, so reading frame i
# decompresses only frame i's neighbourhood.
GRID_CHUNK = 64
RAW_CHUNK = 1024
IMAGE_CHUNK = 8
VIDEO_CHUNK = 64  # packets of ~2 s at 30 fps: ~0.1-0.5 MB, one flush's worth or more


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shape: tuple[int, ...] = Field(description="per sample")
    dtype: str
    unit: str = Field("", description=f"every channel's unit, or {MIXED_UNITS!r}")
    channel_names: list[str] = Field(default_factory=list, description="one per value; "
                                     "empty (files before they were stored): by index")
    channel_units: list[str] = Field(default_factory=list, description="one per value")


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    height: int
    width: int
    channels: int = 3
    encoding: Literal["jpeg", "png", "raw", "h264", "av1"]

    @property
    def is_video(self) -> bool:
        return self.encoding in VIDEO_ENCODINGS


class StreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["camera", "sensor", "arm", "action"]
    rate_hz: float
    fields: dict[str, FieldSpec] = Field(description="non-camera streams: grid-aligned fields")
    quality: dict[str, str] = Field(default_factory=dict, description="extra flag -> dtype")
    image: ImageSpec | None = None

    @property
    def is_video(self) -> bool:
        return self.image is not None and self.image.is_video


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its path, per-row shape, dtype and rows per chunk."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    chunk_rows: int
    grid: bool  # True: one row per grid tick; False: one row per raw sample
    numeric: bool = True  # False: images (compressed by their own encoding)


class EpisodeLayout(BaseModel):
    """Every dataset of an episode file, derived from its streams."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = 2  # files written before format 2 say 1 here
    streams: list[StreamSpec]
    keep_raw: bool = True
    checksums: bool = Field(False, description="fixed-size datasets carry HDF5's Fletcher-32 "
                            "per chunk, video packets a CRC-32 each (/videos/<camera>/crc32); "
                            "files written before checksums say false")
    frame_checksums: bool = Field(False, description="JPEG/PNG frames carry a CRC-32 each "
                                  "(/checksums/images/<camera>); files written before say false")

    def datasets(self) -> list[DatasetSpec]:
        return (self.grid_datasets() + [d for s in self.streams for d in self.raw_datasets(s)]
                + [d for s in self.streams for d in self.video_datasets(s)])

    def grid_datasets(self) -> list[DatasetSpec]:
        """Every dataset with one row per tick: all must have the length of /timestamps."""
        out = [DatasetSpec(TIMESTAMPS, (), "int64", GRID_CHUNK, grid=True)]
        for s in self.streams:
            if s.kind == "camera":
                out.append(image_dataset(s))
                if self.frame_checksums and has_frame_crcs(s):
                    out.append(DatasetSpec(frame_crc_path(s.name), (), "uint32", GRID_CHUNK,
                                           grid=True))
            else:
                out += [DatasetSpec(grid_path(s, name), f.shape, f.dtype, GRID_CHUNK, grid=True)
                        for name, f in s.fields.items()]
            quality = {**SYNC_FIELDS, **s.quality}
            out += [DatasetSpec(f"{QUALITY}/{s.name}/{name}", (), dtype, GRID_CHUNK, grid=True)
                    for name, dtype in quality.items()]
        return out

    def raw_datasets(self, s: StreamSpec) -> list[DatasetSpec]:
        """The full-rate samples of one stream: all of equal length, their own."""
        if not self.keep_raw or s.is_video:  # a video camera's frame times are its video's
            return []
        out = [DatasetSpec(f"{RAW}/{s.name}/{t}", (), "int64", RAW_CHUNK, grid=False)
               for t in RAW_TIMES]
        if s.kind != "camera":
            out += [DatasetSpec(f"{RAW}/{s.name}/{name}", f.shape, f.dtype, RAW_CHUNK, grid=False)
                    for name, f in s.fields.items()]
        return out


    def video_datasets(self, s: StreamSpec) -> list[DatasetSpec]:
        """A video-coded camera's frames, once each: all of equal length, their own."""
        if not s.is_video:
            return []
        fields = {**VIDEO_FIELDS, **({VIDEO_CRC: "uint32"} if self.checksums else {})}
        return [DatasetSpec(video_path(s.name, name), (), dtype, VIDEO_CHUNK, grid=False,
                            numeric=name != "packets") for name, dtype in fields.items()]


def has_frame_crcs(s: StreamSpec) -> bool:
    """A camera whose ticks hold encoded frames (JPEG/PNG): variable-length rows, no chunk
    checksum covers them (raw frames have Fletcher-32, video packets their own CRC-32)."""
    return s.image is not None and s.image.encoding in ("jpeg", "png")


def frame_crc_path(camera: str) -> str:
    return f"{FRAME_CRCS}/{camera}"


def video_path(camera: str, name: str = "") -> str:
    return f"{VIDEOS}/{camera}/{name}" if name else f"{VIDEOS}/{camera}"


def grid_path(stream: StreamSpec, field: str) -> str:
    if stream.kind == "camera":
        return f"{IMAGES}/{stream.name}"
    root = ACTIONS if stream.kind == "action" else OBSERVATIONS
    return f"{root}/{stream.name}/{field}"


def image_dataset(s: StreamSpec) -> DatasetSpec:
    img = s.image
    assert img is not None, "only camera streams come here, and each has its image spec"
    if img.is_video:  # the index of the frame each tick shows
        return DatasetSpec(grid_path(s, "image"), (), "int64", GRID_CHUNK, grid=True)
    if img.encoding == "raw":
        return DatasetSpec(grid_path(s, "image"), (img.height, img.width, img.channels), "uint8",
                           1, grid=True, numeric=False)
    return DatasetSpec(grid_path(s, "image"), (), VLEN_UINT8, IMAGE_CHUNK, grid=True,
                       numeric=False)


def default_channel_names(field: str, count: int) -> list[str]:
    """What unnamed channels are called: the field itself, or field[i]."""
    return [field] if count == 1 else [f"{field}[{i}]" for i in range(count)]


def summary_unit(units: list[str] | tuple[str, ...]) -> str:
    """The single `unit` attribute of a field: its channels' unit, when they share one."""
    distinct = set(units)
    if len(distinct) > 1:
        return MIXED_UNITS
    return next(iter(distinct), "")
