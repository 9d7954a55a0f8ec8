"""Export episodes as a LeRobotDataset v3.0 folder, the layout `lerobot` 0.4 loads as-is.

```
meta/info.json                      codebase_version v3.0, fps, features, path templates
meta/stats.json                     per feature: min, max, mean, std, count (images: per channel)
meta/tasks.parquet                  task -> task_index
meta/episodes/chunk-000/file-000.parquet   one row per episode: length, where its rows and
                                    videos are (data/*, videos/<key>/*), its stats
meta/collector.json                 what LeRobot has no field for: sources, how each video was made
data/chunk-CCC/file-FFF.parquet     one file per episode, one row per grid tick
videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4   one file per episode and camera
```

Columns: `observation.state` (the arms' positions and grippers), `action` (the commanded
vector), `observation.<stream>.<field>` for every other signal (force/torque, joint
velocities), `timestamp` (the grid, seconds from the first tick), and `quality.<stream>.<name>`
for everything `/quality` knows per tick: the real `capture_ns`, `dt_ns` (|Δt| to the tick),
`missing`, `dropped`, `blurred`, ... and their scores. Names per channel come from the rig.

LeRobot looks a frame up by its row's timestamp (within 1e-4 s), so each MP4 holds exactly one
frame per tick. A video-coded camera whose ticks show its frames one after another from a
keyframe is remuxed (its packets as stored, no re-encode); one that repeats or skips frames
across ticks (a camera slower than the grid, a lost frame) and every JPEG/PNG camera is encoded
once, per tick, with h264. `meta/collector.json` says which was done for each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from collector.export.arrays import (
    Vector,
    action_parts,
    grid_quality,
    other_parts,
    state_parts,
    vector,
)
from collector.export.episodes import check_valid
from collector.export.robomimic import Exported
from collector.export.staging import ExportError, staged
from collector.replay.camera_video import TIME_BASE, frame_pts, mux_packets, reencode_ticks
from collector.replay.source import TickRange
from collector.storage.reader import Episode, open_episode
from collector.storage.videos import VideoTicks
from schemas.layout import FILL_RULE, NO_FRAME

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder, LeRobot's default
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
TOLERANCE_S = 1e-4  # LeRobot's default: a frame is looked up by timestamp within this
STAT_FRAMES = 16  # frames decoded per camera and episode for the image statistics
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's DEFAULT_QUANTILES: q01 ... q99


@dataclass
class Feature:
    dtype: str  # float32, int64, bool, video
    shape: tuple[int, ...]
    names: list[str] | None = None
    info: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "shape": list(self.shape),
                               "names": self.names}
        if self.info is not None:
            out["info"] = self.info
        return out


@dataclass
class Stats:
    """Running min, max, sum and sum of squares of one feature, per value (images: per
    channel), so mean, std, min and max are exact over every episode without keeping them.
    Quantiles are each episode's own, averaged weighted by ticks: LeRobot's aggregation."""

    count: int = 0
    total: np.ndarray | None = None
    squares: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    quantiles: np.ndarray | None = None  # per quantile, per value: sum of q * ticks

    def add(self, values: np.ndarray) -> None:
        """One episode's values, (ticks, values)."""
        x = values.astype(np.float64)
        q = np.quantile(x, QUANTILES, axis=0) * x.shape[0]
        self.quantiles = q if self.quantiles is None else self.quantiles + q
        if self.total is None or self.squares is None or self.low is None or self.high is None:
            self.total, self.squares = x.sum(0), (x * x).sum(0)
            self.low, self.high = x.min(0), x.max(0)
        else:
            self.total, self.squares = self.total + x.sum(0), self.squares + (x * x).sum(0)
            self.low, self.high = np.minimum(self.low, x.min(0)), np.maximum(self.high, x.max(0))
        self.count += x.shape[0]

    def summary(self, shape: tuple[int, ...]) -> dict[str, list[Any]]:
        assert self.total is not None and self.squares is not None
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.squares / self.count - mean * mean, 0.0))
        assert self.quantiles is not None
        out = {"min": _shaped(self.low, shape), "max": _shaped(self.high, shape),
               "mean": _shaped(mean, shape), "std": _shaped(std, shape), "count": [self.count]}
        for q, weighted in zip(QUANTILES, self.quantiles, strict=True):
            out[f"q{round(q * 100):02d}"] = _shaped(weighted / self.count, shape)
        return out


def _shaped(values: np.ndarray | None, shape: tuple[int, ...]) -> list[Any]:
    return cast(list[Any], np.asarray(values, np.float64).reshape(shape).tolist())


@dataclass
class Table:
    """One episode's rows: the columns LeRobot reads, each (ticks, ...) with its feature."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    features: dict[str, Feature] = field(default_factory=dict)

    def add(self, key: str, values: np.ndarray, names: list[str] | None = None) -> None:
        if values.ndim == 1:  # a scalar per tick: LeRobot's shape (1,), stored unlisted
            self.features[key] = Feature(str(values.dtype), (1,), None)
        else:
            self.features[key] = Feature(str(values.dtype), (values.shape[1],), names)
        self.columns[key] = values

    def add_vector(self, key: str, v: Vector) -> None:
        self.add(key, v.values, v.names)

    def arrow(self) -> pa.Table:
        arrays = {}
        for key, values in self.columns.items():
            if values.ndim == 1:
                arrays[key] = pa.array(values)
            else:
                flat = pa.array(values.reshape(-1))
                arrays[key] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        return pa.table(arrays)


@dataclass
class CameraVideo:
    key: str
    how: str  # "remuxed" or "re-encoded (why)"


class LeRobotWriter:
    """Builds the dataset episode by episode under `root`; `finish` writes the metadata."""

    def __init__(self, root: Path):
        self.root = root
        self.fps: int | None = None
        self.features: dict[str, Feature] = {}
        self.stats: dict[str, Stats] = {}
        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.sources: list[dict[str, Any]] = []
        self.frames = 0

    def add(self, ep: Episode) -> int:
        index = len(self.episodes)
        n = len(ep)
        fps = self._fps(ep)
        task = str(ep.metadata.get("task", "")) or "unnamed task"
        task_index = self.tasks.setdefault(task, len(self.tasks))
        table = _table(ep)
        chunk, file = divmod(index, CHUNKS_SIZE)
        table.add("frame_index", np.arange(n, dtype=np.int64))
        table.add("episode_index", np.full(n, index, np.int64))
        table.add("index", np.arange(self.frames, self.frames + n, dtype=np.int64))
        table.add("task_index", np.full(n, task_index, np.int64))
        features = dict(table.features)
        row: dict[str, Any] = {"episode_index": index, "tasks": [task], "length": n,
                               "data/chunk_index": chunk, "data/file_index": file,
                               "dataset_from_index": self.frames,
                               "dataset_to_index": self.frames + n}
        videos = []
        for camera in ep.cameras:
            key = f"observation.images.{camera}"
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk,
                                                 file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            how, shape, codec, pix_fmt = _write_video(ep, camera, path, fps)
            videos.append(CameraVideo(key, how))
            features[key] = Feature("video", shape, ["height", "width", "channels"], {
                "video.height": shape[0], "video.width": shape[1], "video.codec": codec,
                "video.pix_fmt": pix_fmt, "video.is_depth_map": False, "video.fps": fps,
                "video.channels": shape[2], "has_audio": False})
            row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                        f"videos/{key}/from_timestamp": 0.0,
                        f"videos/{key}/to_timestamp": n / fps})
            self._stat(key, _image_sample(ep, camera), row)
        self._same_features(ep, features)
        for key, values in table.columns.items():
            self._stat(key, values.reshape(n, -1), row)
        path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.arrow(), path)
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self.episodes.append(row)
        self.sources.append({"episode_index": index, "source": str(ep.path),
                             "episode_id": ep.metadata.get("episode_id", ""),
                             "outcome": ep.metadata.get("outcome", ""),
                             "videos": {v.key: v.how for v in videos}})
        self.frames += n
        return n

    def _fps(self, ep: Episode) -> int:
        hz = float(ep.metadata.get("control_hz", 0.0))
        if hz <= 0 or abs(hz - round(hz)) > 1e-9:
            raise ExportError(f"{ep.path}: control rate {hz:g} Hz; a LeRobot dataset needs a "
                              f"whole number of frames per second")
        if self.fps is not None and round(hz) != self.fps:
            raise ExportError(f"{ep.path}: recorded at {hz:g} Hz, the episodes before it at "
                              f"{self.fps} Hz; one LeRobot dataset has one fps: export "
                              f"them apart")
        self.fps = round(hz)
        steps = np.diff(ep.timestamps).astype(np.float64) / 1e9
        off = np.flatnonzero(np.abs(steps - 1 / self.fps) > TOLERANCE_S)
        if off.size:
            raise ExportError(f"{ep.path}: grid tick {int(off[0]) + 1} is "
                              f"{steps[off[0]] * 1e3:.3f} ms after the one before, not "
                              f"1/{self.fps} s; LeRobot needs a regular grid")
        return self.fps

    def _same_features(self, ep: Episode, features: dict[str, Feature]) -> None:
        if not self.features:
            self.features = features
            return
        for key in sorted(set(self.features) | set(features)):
            was, now = self.features.get(key), features.get(key)
            if was is None or now is None or (was.dtype, was.shape) != (now.dtype, now.shape):
                raise ExportError(
                    f"{ep.path}: feature {key} is {_said(now)}, in the episodes before it "
                    f"{_said(was)}; one LeRobot dataset has one set of features: export "
                    f"episodes of one rig together")

    def _stat(self, key: str, values: np.ndarray, row: dict[str, Any]) -> None:
        episode = Stats()
        episode.add(values)
        shape = (values.shape[1], 1, 1) if key.startswith("observation.images.") \
            else (values.shape[1],)
        for stat, value in episode.summary(shape).items():
            row[f"stats/{key}/{stat}"] = np.asarray(value, np.float64).reshape(-1).tolist()
        self.stats.setdefault(key, Stats()).add(values)

    def finish(self) -> None:
        if not self.episodes or self.fps is None:
            raise ExportError("no episode to write")
        meta = self.root / "meta"
        meta.mkdir(parents=True, exist_ok=True)
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": "collector",
            "total_episodes": len(self.episodes), "total_frames": self.frames,
            "total_tasks": len(self.tasks), "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100, "video_files_size_in_mb": 500,
            "fps": self.fps, "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH, "video_path": VIDEO_PATH,
            "features": {k: f.describe() for k, f in self.features.items()}}
        (meta / "info.json").write_text(json.dumps(info, indent=2))
        stats = {}
        for key, s in self.stats.items():
            f = self.features[key]
            shape = (f.shape[2], 1, 1) if f.dtype == "video" else f.shape
            stats[key] = s.summary(shape)
        (meta / "stats.json").write_text(json.dumps(stats, indent=2))
        _write_tasks(meta / "tasks.parquet", self.tasks)
        episodes = self.root / EPISODES_PATH
        episodes.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episodes), episodes)
        (meta / "collector.json").write_text(json.dumps(
            {"missing_fill": FILL_RULE, "episodes": self.sources}, indent=2))


def _said(feature: Feature | None) -> str:
    return "absent" if feature is None else f"{feature.dtype} {list(feature.shape)}"


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """LeRobot reads the tasks with pandas, the task string as the index: the table carries
    pandas' index metadata, so that reads back without pandas being needed here."""
    table = pa.table({"task_index": pa.array(list(tasks.values()), pa.int64()),
                      "task": pa.array(list(tasks), pa.string())})
    pandas_meta = {"index_columns": ["task"], "column_indexes": [], "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
         "numpy_type": "int64", "metadata": None},
        {"name": "task", "field_name": "task", "pandas_type": "unicode",
         "numpy_type": "object", "metadata": None}],
        "creator": {"library": "collector"}, "pandas_version": "2.2.0"}
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)}), path)


def _table(ep: Episode) -> Table:
    """Every per-tick column of one episode except the index columns."""
    table = Table()
    table.add_vector("observation.state", vector(ep, state_parts(ep)))
    table.add_vector("action", vector(ep, action_parts(ep)))
    for stream, name in other_parts(ep):
        table.add_vector(f"observation.{stream}.{name}", vector(ep, [(stream, name)]))
    ts = ep.timestamps.astype(np.int64)
    table.add("timestamp", ((ts - ts[0]) / 1e9).astype(np.float32))
    for stream in ep.streams():
        for name, values in grid_quality(ep, stream).items():
            table.add(f"quality.{stream}.{name}", values)
    return table


def _write_video(ep: Episode, camera: str, path: Path,
                 fps: int) -> tuple[str, tuple[int, int, int], str, str]:
    """One camera's MP4, one frame per tick; (how, shape, codec, pix_fmt)."""
    images = ep.images(camera)
    n = len(ep)
    if isinstance(images, VideoTicks):
        video, index = images.video, images.frame_index
        first = int(index[0])
        why = _not_in_step(index, video.keyframe, len(video))
        if not why:
            pts = frame_pts(ep.timestamps.astype(np.int64))
            period = round(TIME_BASE.denominator / fps)
            pix_fmt = str(video.attrs["pix_fmt"])
            mux_packets(path, video.encoding, video.shape[1], video.shape[0], pix_fmt,
                        list(video.packets(first, first + n)), video.keyframe[first:first + n],
                        pts, period)
            return "remuxed", video.shape, video.encoding, pix_fmt
        how = f"re-encoded with h264 ({why})"
    else:
        how = f"encoded with h264 (stored as {images.encoding}, one image per tick)"
    reencode_ticks(ep, camera, TickRange(0, n), path)
    h, w, c = images.shape
    return how, (h // 2 * 2, w // 2 * 2, c), "h264", "yuv420p"


def _not_in_step(index: np.ndarray, keyframe: np.ndarray, frames: int) -> str:
    """Why ticks do not show the stored frames one by one from a keyframe ("": they do)."""
    if index[0] == NO_FRAME:
        return "its first ticks have no frame yet"
    if not keyframe[int(index[0])]:
        return "the first tick's frame is not a keyframe"
    steps = np.diff(index)
    if (steps != 1).any():
        at = int(np.flatnonzero(steps != 1)[0]) + 1
        return f"tick {at} {'repeats' if steps[at - 1] == 0 else 'skips'} a frame"
    if int(index[-1]) >= frames:
        return "its last ticks point past the stored frames"
    return ""


def _image_sample(ep: Episode, camera: str) -> np.ndarray:
    """Per-channel values in [0, 1] of a few frames spread over the episode, (pixels, 3)."""
    images = ep.images(camera)
    ticks = np.unique(np.linspace(0, len(ep) - 1, min(STAT_FRAMES, len(ep))).astype(int))
    frames = np.stack([images[int(t)][::4, ::4] for t in ticks])  # every 4th pixel: plenty
    return frames.reshape(-1, 3).astype(np.float32) / 255.0


def export_lerobot(episodes: Iterable[Path], out: Path) -> Exported:
    """Selected episodes (see `episodes.select`) into a new LeRobot dataset folder `out`."""
    out = Path(out)
    with staged(out, folder=True) as root:
        writer = LeRobotWriter(root)
        samples = 0
        for path in episodes:
            check_valid(path)
            with open_episode(path) as ep:
                samples += writer.add(ep)
        writer.finish()
    return Exported(len(writer.episodes), samples)
