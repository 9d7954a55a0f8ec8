"""`open_episode`: typed, lazy views of an episode file. Plain h5py reads the same file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import h5py
import numpy as np

from collector.errors import EpisodeFileError
from collector.storage.layout import (
    ACTIONS,
    EFFICIENCY,
    IMAGES,
    LAYOUT_ATTR,
    OBSERVATIONS,
    PARTIAL_SUFFIX,
    QUALITY,
    RAW,
    SYNC_FIELDS,
    TIMESTAMPS,
    Channels,
    dataset_channels,
)
from collector.storage.videos import VideoFrames, VideoTicks
from core.codec import decode_frame
from schemas.episode import FORMAT, EfficiencyAccounts, EpisodeMetadata
from schemas.layout import EpisodeLayout, video_path


@dataclass
class SyncQuality:
    """Per tick: the capture time of the sample used, its |Δt| to the tick, and whether missing."""

    capture_ns: np.ndarray
    dt_ns: np.ndarray
    missing: np.ndarray


class TickImages:
    """A JPEG, PNG or raw camera: one stored image per grid tick (a camera slower than the
    grid repeats its frame), decoded only when indexed. Format 1 stores every camera so."""

    def __init__(self, dataset: h5py.Dataset):
        self._ds = dataset
        self.encoding = str(dataset.attrs.get("encoding", "raw"))
        self.fps = float(dataset.attrs.get("fps", 0.0))
        self.shape = (int(dataset.attrs["height"]), int(dataset.attrs["width"]), 3)

    def __len__(self) -> int:
        return int(self._ds.shape[0])

    def __getitem__(self, index: int) -> np.ndarray:
        try:
            return decode_frame(self._ds[index], self.encoding)
        except ValueError as exc:  # damaged bytes: the file's problem, not the caller's
            raise EpisodeFileError(f"{self._ds.file.filename}: {self._ds.name}[{index}]: "
                                   f"{exc}") from None

    def encoded_bytes(self) -> int:
        if self.encoding == "raw":
            return int(self._ds.size)
        return int(sum(len(x) for x in self._ds[:]))


class Images(Protocol):
    """A camera per grid tick, however it is stored: `[t]` is the RGB frame tick t shows."""

    encoding: str
    fps: float
    shape: tuple[int, int, int]

    def __len__(self) -> int: ...

    def __getitem__(self, tick: int) -> np.ndarray: ...

    def encoded_bytes(self) -> int: ...


def grid_rows(f: h5py.File) -> int:
    """Rows every grid dataset (/timestamps, /observations, /actions, /quality) holds."""
    lengths = [f[TIMESTAMPS].shape[0]]

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape:
            lengths.append(obj.shape[0])

    for group in (OBSERVATIONS, ACTIONS, QUALITY):
        if group in f:
            f[group].visititems(visit)
    return int(min(lengths))


class Episode:
    """One episode file. Use as a context manager, or call `close()`."""

    def __init__(self, path: str | Path, swmr: bool | None = None):
        self.path = Path(path)
        if swmr is None:  # a partial file is read as it is being written (SWMR)
            swmr = self.path.name.endswith(PARTIAL_SUFFIX)
        try:
            self.file = h5py.File(self.path, "r", swmr=swmr, libver="latest" if swmr else None)
        except (OSError, FileNotFoundError) as exc:
            raise EpisodeFileError(f"{self.path}: cannot open as HDF5 ({exc})") from None
        if self.file.attrs.get("format") not in (FORMAT, None) or TIMESTAMPS not in self.file:
            self.file.close()
            raise EpisodeFileError(f"{self.path}: not a Collector episode (no /timestamps)")

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    @property
    def metadata(self) -> dict[str, Any]:
        return {k: plain_attr(v) for k, v in self.file.attrs.items()}

    @property
    def info(self) -> EpisodeMetadata:
        """The root attributes, typed (raises `EpisodeFileError` when required ones lack)."""
        try:
            return EpisodeMetadata.model_validate(self.metadata)
        except ValueError as exc:
            raise EpisodeFileError(f"{self.path}: metadata incomplete ({exc})") from None

    @property
    def layout(self) -> EpisodeLayout | None:
        """Every stream with its fields, shapes and dtypes, as the writer declared them."""
        raw = self.file.attrs.get(LAYOUT_ATTR)
        return EpisodeLayout.model_validate_json(plain_attr(raw)) if raw is not None else None

    @property
    def timestamps(self) -> np.ndarray:
        return cast(np.ndarray, self.file[TIMESTAMPS][:len(self)])  # h5py is untyped

    def __len__(self) -> int:
        """Grid rows. A file being written counts only the rows every grid dataset holds: a
        reader can see some datasets grow before the writer's next flush."""
        if not self.file.swmr_mode:
            return int(self.file[TIMESTAMPS].shape[0])
        return grid_rows(self.file)

    @property
    def cameras(self) -> list[str]:
        return list(self.file[IMAGES].keys()) if IMAGES in self.file else []

    @property
    def format_version(self) -> int:
        return int(plain_attr(self.file.attrs.get("format_version", 1)))

    def is_video(self, camera: str) -> bool:
        """Stored as a video (format 2, h264/av1): each frame once, the grid points into it."""
        return video_path(camera) in self.file

    def images(self, camera: str) -> Images:
        """The camera per grid TICK: `images(cam)[t]` is the frame tick t shows."""
        self._camera(camera)
        if self.is_video(camera):
            video = VideoFrames(self.file[video_path(camera)], camera)
            return VideoTicks(self.file[f"{IMAGES}/{camera}"][:len(self)], video)
        return TickImages(self.file[f"{IMAGES}/{camera}"])

    def frames(self, camera: str) -> VideoFrames | TickImages:
        """The camera's stored FRAMES: for a video camera every frame it delivered, once each
        (`frames(cam)[i]` seeks to frame i's keyframe; iterating decodes each frame once); a
        JPEG/PNG/raw camera stores one image per tick, so its frames are its ticks' images."""
        self._camera(camera)
        if self.is_video(camera):
            return VideoFrames(self.file[video_path(camera)], camera)
        return TickImages(self.file[f"{IMAGES}/{camera}"])

    def _camera(self, camera: str) -> None:
        if camera not in self.cameras:
            raise EpisodeFileError(f"{self.path}: no camera {camera!r}; it has "
                                   f"{', '.join(self.cameras) or 'none'}")

    def streams(self) -> dict[str, str]:
        """Every stream with its kind (camera, sensor, arm, action), in the writer's order."""
        layout = self.layout
        if layout is not None:
            return {s.name: s.kind for s in layout.streams}
        out = {cam: "camera" for cam in self.cameras}
        for root, kind in ((OBSERVATIONS, "observation"), (ACTIONS, "action")):
            if root not in self.file:
                continue
            for name, item in self.file[root].items():
                if isinstance(item, h5py.Group) and name != "images":
                    out[name] = kind
        return out

    def fields(self, stream: str) -> dict[str, np.ndarray]:
        """The grid-aligned fields of a non-camera stream."""
        for root in (OBSERVATIONS, ACTIONS):
            path = f"{root}/{stream}"
            if path in self.file:
                return {k: v[:] for k, v in self.file[path].items()}
        raise EpisodeFileError(f"{self.path}: no stream {stream!r}; it has {list(self.streams())}")

    def channels(self, stream: str, field: str) -> Channels:
        """The name and unit of each value of a field (by index in files that predate them)."""
        for root in (OBSERVATIONS, ACTIONS):
            path = f"{root}/{stream}/{field}"
            if path in self.file:
                ds = self.file[path]
                return dataset_channels(ds.attrs, field, int(np.prod(ds.shape[1:], dtype=int)))
        raise EpisodeFileError(f"{self.path}: no field {stream}.{field}")

    def sync(self, stream: str) -> SyncQuality:
        q = self.file[f"{QUALITY}/{stream}"]
        return SyncQuality(*(q[name][:] for name in SYNC_FIELDS))

    def quality(self, stream: str) -> dict[str, np.ndarray]:
        """Every per-tick flag and score of a stream, sync fields included."""
        return {k: v[:] for k, v in self.file[f"{QUALITY}/{stream}"].items()}

    def flags(self, stream: str) -> dict[str, np.ndarray]:
        """The per-tick yes/no marks of a stream: missing, dropped, blurred, ..."""
        path = f"{QUALITY}/{stream}"
        if path not in self.file:
            return {}
        return {k: v[:len(self)] for k, v in self.file[path].items() if v.dtype == np.bool_}

    def raw(self, stream: str) -> dict[str, np.ndarray]:
        """The stream's full-rate samples; a video camera's frame times are its video's."""
        if stream in self.cameras and self.is_video(stream):
            return VideoFrames(self.file[video_path(stream)], stream).times()
        path = f"{RAW}/{stream}"
        return {k: v[:] for k, v in self.file[path].items()} if path in self.file else {}

    @property
    def efficiency(self) -> dict[str, Any]:
        if EFFICIENCY not in self.file:
            return {}
        return {k: plain_attr(v) for k, v in self.file[EFFICIENCY].attrs.items()}

    @property
    def accounts(self) -> EfficiencyAccounts | None:
        """`/efficiency` as the accounts the writer stored (None: a file without them)."""
        eff = self.efficiency
        if not eff:
            return None
        return EfficiencyAccounts(
            **{k: v for k, v in eff.items() if "." not in k},
            loss_seconds={k.split(".", 1)[1]: v for k, v in eff.items()
                          if k.startswith("loss_seconds.")},
            loss_samples={k.split(".", 1)[1]: v for k, v in eff.items()
                          if k.startswith("loss_samples.")})


def open_episode(path: str | Path) -> Episode:
    """Open an episode for reading: `with open_episode(p) as ep: ep.images('cam_high')[0]`.
    A `.h5.partial` file opens in SWMR mode: it shows every sample up to the last flush."""
    return Episode(path)


def plain_attr(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (numpy scalars unwrapped, bytes decoded)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value
