"""Format-2 episodes for the reading side, built without the recording path.

A format-1 episode recorded by today's pipeline (JPEG per tick) has its video cameras re-stored
as `schemas/layout.py` says: each distinct frame once, at the camera's rate, encoded by
`core.video.VideoEncoder`, in `/videos/<cam>/*` with its times and keyframe flags; the grid
dataset `/observations/images/<cam>` holds the frame index each tick shows (NO_FRAME before the
first). The frames are a pan over a real photograph (scikit-image), one new view per camera
frame, so every frame differs and a wrong index shows. `cam_high` runs at 10 fps under a 30 Hz
grid, so ticks repeat frames; `cam_right_wrist` stays JPEG (a format-2 file mixes both).

`write_partial` writes such an episode again the way the writer does (SWMR, appended and flushed
batch by batch) and snapshots the bytes on disk mid-way: what a SIGKILL leaves.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import h5py
import numpy as np
import yaml

from collector.storage.checksums import packet_crcs
from collector.storage.writer import create_dataset
from core.video import VideoEncoder, video_attrs
from schemas.episode import FORMAT_VERSION
from schemas.layout import (
    IMAGES,
    LAYOUT_ATTR,
    NO_FRAME,
    QUALITY,
    RAW,
    TIMESTAMPS,
    VIDEO_CRC,
    EpisodeLayout,
    image_dataset,
    video_path,
)
from schemas.station import ImageEncoding
from tests.conftest import record_one
from tests.footage import HEIGHT, WIDTH, photograph, view

VIDEO_CAMERAS = {"cam_high": "h264", "cam_left_wrist": "av1"}
GOP = 10
SLOW_FPS = 10  # cam_high: slower than the 30 Hz grid, so three ticks show each frame
SMALL = [f"devices.{cam}.{k}={v}" for cam in ("cam_high", "cam_left_wrist", "cam_right_wrist")
         for k, v in (("width", WIDTH), ("height", HEIGHT))] + [f"devices.cam_high.fps={SLOW_FPS}"]


def record_format1(out: Path, duration_s: float = 2.0) -> Path:
    """A format-1-style episode (every camera JPEG per tick), recorded by the real pipeline."""
    return Path(record_one(out, duration_s, *SMALL, "pipeline.images.encoding=jpeg").path)


def pan(n: int, photo: str = "astronaut") -> np.ndarray:
    """n RGB frames of a camera panning and zooming over a real photograph."""
    image = photograph(photo)
    return np.stack([cv2.cvtColor(view(image, k / max(n, 1) * 0.5), cv2.COLOR_BGR2RGB)
                     for k in range(n)])


def to_video(src: Path, dst: Path, codecs: dict[str, str] | None = None,
             gop: int = GOP) -> dict[str, np.ndarray]:
    """Copy episode `src` to `dst` with `codecs`' cameras video-coded; returns each video
    camera's frames as encoded (RGB, before the codec), to compare decoded frames against."""
    codecs = VIDEO_CAMERAS if codecs is None else codecs
    shutil.copyfile(src, dst)
    originals = {}
    with h5py.File(dst, "r+") as f:
        layout = EpisodeLayout.model_validate_json(f.attrs[LAYOUT_ATTR])
        rig = yaml.safe_load(f.attrs["rig_config"])
        for s in layout.streams:
            if s.name not in codecs or s.image is None:
                continue
            spec = ImageEncoding(encoding=codecs[s.name], gop=gop)  # type: ignore[arg-type]
            s.image.encoding = spec.encoding
            originals[s.name] = _restore_camera(f, s.name, spec, s.rate_hz)
            rig.setdefault("pipeline", {}).setdefault("images", {}).setdefault(
                "cameras", {})[s.name] = {"encoding": spec.encoding, "gop": gop}
        layout.format_version = FORMAT_VERSION
        f.attrs[LAYOUT_ATTR] = layout.model_dump_json()
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["rig_config"] = yaml.safe_dump(rig, sort_keys=False)
    return originals


def _restore_camera(f: h5py.File, cam: str, spec: ImageEncoding, fps: float) -> np.ndarray:
    grid = f[f"{IMAGES}/{cam}"]
    h, w = int(grid.attrs["height"]), int(grid.attrs["width"])
    chosen = f[f"{QUALITY}/{cam}/capture_ns"][:]
    shown = chosen >= 0
    times = np.unique(chosen[shown])  # each frame once, in capture order
    index = np.full(chosen.shape, NO_FRAME, np.int64)
    index[shown] = np.searchsorted(times, chosen[shown])
    raw = f[f"{RAW}/{cam}"]
    capture = raw["capture_ns"][:]
    at = np.searchsorted(capture, times).clip(0, max(capture.size - 1, 0))
    found = capture[at] == times if capture.size else np.zeros(times.shape, bool)
    arrival, device, seq = times.copy(), times // 1000, np.arange(len(times), dtype=np.int64)
    for name, out in (("arrival_ns", arrival), ("device_ns", device), ("seq", seq)):
        out[found] = raw[name][:][at[found]]
    frames = pan(len(times))
    if frames.shape[1:3] != (h, w):
        frames = np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_AREA) for x in frames])
    encoder = VideoEncoder(spec, w, h, fps)
    parts = [encoder.add(frames[i:i + 7], times[i:i + 7], device[i:i + 7], arrival[i:i + 7])
             for i in range(0, len(times), 7)] + [encoder.finish()]
    stream = {"packets": np.concatenate([p.packets for p in parts]),
              "keyframe": np.concatenate([p.keyframe for p in parts]),
              "capture_ns": times, "device_ns": device, "arrival_ns": arrival, "seq": seq}
    stream[VIDEO_CRC] = packet_crcs(stream["packets"])
    attrs = dict(grid.attrs) | {"encoding": spec.encoding}
    del f[f"{IMAGES}/{cam}"], f[f"{RAW}/{cam}"]
    layout = EpisodeLayout.model_validate_json(f.attrs[LAYOUT_ATTR])
    [s] = [s for s in layout.streams if s.name == cam]
    assert s.image is not None
    s.image.encoding = spec.encoding
    ds = create_dataset(f, image_dataset(s), "none")
    ds.resize(len(index), 0)
    ds[:] = index
    ds.attrs.update(attrs)
    for d in layout.video_datasets(s):
        out = create_dataset(f, d, "none")
        out.resize(len(times), 0)
        out[:] = stream[d.path.rsplit("/", 1)[1]]
    f[video_path(cam)].attrs.update(video_attrs(spec, w, h, fps))
    return frames


def write_partial(episode: Path, partial: Path, batches: int, keep: int) -> int:
    """Write `episode` again as its writer would (SWMR, `batches` appends, each flushed) and
    copy the file's bytes after `keep` of them, the writer still open: a killed recorder's
    partial. Returns the ticks flushed by then."""
    with h5py.File(episode, "r") as src:
        layout = EpisodeLayout.model_validate_json(src.attrs[LAYOUT_ATTR])
        n = src[TIMESTAMPS].shape[0]
        work = partial.with_name(partial.name + ".writing")
        with h5py.File(work, "w", libver="latest") as dst:
            for spec in layout.datasets():
                create_dataset(dst, spec, "none").attrs.update(src[spec.path].attrs)
            for s in layout.streams:
                if s.is_video:
                    dst[video_path(s.name)].attrs.update(src[video_path(s.name)].attrs)
                elif f"{RAW}/{s.name}" in src and f"{RAW}/{s.name}" in dst:
                    dst[f"{RAW}/{s.name}"].attrs.update(src[f"{RAW}/{s.name}"].attrs)
            start = {k: v for k, v in src.attrs.items() if k not in ("outcome", "ended_at")}
            dst.attrs.update(start)
            dst.swmr_mode = True
            edges = np.linspace(0, n, batches + 1).astype(int)
            flushed = 0
            for b in range(batches):
                _append_ticks(src, dst, layout, int(edges[b]), int(edges[b + 1]))
                dst.flush()
                if b + 1 == keep:
                    flushed = int(edges[b + 1])
                    shutil.copyfile(work, partial)
        work.unlink()
    return flushed


def _append_ticks(src: h5py.File, dst: h5py.File, layout: EpisodeLayout, a: int, b: int) -> None:
    """Ticks [a, b) and everything they need: the packets of the frames they show (as the
    pipeline writes a batch's packets with its ticks) and the raw samples up to their time."""
    for spec in layout.grid_datasets():
        _put(dst[spec.path], src[spec.path][a:b], a)
    end_ns = int(src[TIMESTAMPS][b - 1])
    for s in layout.streams:
        if s.is_video:
            shown = src[f"{IMAGES}/{s.name}"][:b]
            upto = int(shown.max()) + 1 if shown.size else 0
            for d in layout.video_datasets(s):
                have = dst[d.path].shape[0]
                _put(dst[d.path], src[d.path][have:upto], have)
        else:
            raw = layout.raw_datasets(s)
            if not raw:
                continue
            upto = int(np.searchsorted(src[f"{RAW}/{s.name}/capture_ns"][:], end_ns, "right"))
            for d in raw:
                have = dst[d.path].shape[0]
                _put(dst[d.path], src[d.path][have:upto], have)


def _put(ds: h5py.Dataset, rows: np.ndarray, at: int) -> None:
    if len(rows):
        ds.resize(at + len(rows), 0)
        ds[at:] = rows


def garble(path: Path, cam: str, frame: int, how: str, seed: int = 0) -> None:
    """Damage one stored packet where it lies in the file, as a bad disk block would: its
    second half zeroed (`zeros`) or noise after its first bytes (`random`). The HDF5 structure
    stays intact: only the codec can tell."""
    with h5py.File(path, "r", swmr=path.name.endswith(".partial"), libver="latest") as f:
        packet = f[video_path(cam, "packets")][frame].tobytes()
    data = path.read_bytes()
    at = data.find(packet)
    assert at >= 0 and data.find(packet, at + 1) < 0, "the packet's bytes are not unique"
    if how == "zeros":
        damaged = packet[:len(packet) // 2] + bytes(len(packet) - len(packet) // 2)
    else:
        noise = np.random.default_rng(seed).integers(0, 256, len(packet) - 4, dtype=np.uint8)
        damaged = packet[:4] + noise.tobytes()
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(damaged)


def describe(path: Path) -> str:
    """The video cameras of an episode, for assertion messages."""
    with h5py.File(path, "r") as f:
        return json.dumps({cam: int(f[video_path(cam, "packets")].shape[0])
                           for cam in f.get("videos", {})})
