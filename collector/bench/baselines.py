"""The baselines every headline figure is divided by, measured on the same frames in the same run.

- bare loop: one process renders the sim cameras' frames, encodes them with the station's own
  settings (JPEG per frame, or one video encoder per camera) and appends them to HDF5, in the
  station's batch size, and does nothing else;
- bare loop on every core: one such process per core, started together, sharing nothing: the
  most any engine could make of these cores (the physical limit);
- disk: sequential write + fsync of the directory the episodes go to;
- encode: the station's encoding of the same frames on one thread;
- JPEG q90: bytes per frame of the same frames as JPEG quality 90, what a video-coded station's
  bytes are set beside.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from collector.storage.writer import Column
from collector.tuning import tune_process
from core.codec import encode_frames
from core.video import VideoEncoder
from drivers.sim.camera import SimCamera
from drivers.sim.world import SimWorld
from schemas.devices import SimCameraConfig
from schemas.layout import IMAGE_CHUNK
from schemas.station import ImageEncoding, StationConfig

JPEG_Q90 = ImageEncoding(encoding="jpeg", quality=90)


def sim_cameras(config: StationConfig) -> list[SimCamera]:
    """The station's simulated cameras, unopened: used only to render their frames."""
    world = SimWorld()
    specs = [d for d in config.devices if isinstance(d, SimCameraConfig)]
    return [SimCamera(spec, world, view=i, realtime=False) for i, spec in enumerate(specs)]


class _CameraCodec:
    """One camera's frames -> what the station stores for them: JPEG/PNG bytes per frame, or
    the packets of the camera's own video encoder (stateful, so one per camera)."""

    def __init__(self, camera: SimCamera, spec: ImageEncoding):
        self.spec = spec
        self.video: VideoEncoder | None = None
        if spec.is_video:
            cfg = camera.config
            width, height = spec.resize or (cfg.width, cfg.height)
            self.video = VideoEncoder(spec, width, height, cfg.fps)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        if self.video is None:
            return encode_frames(frames, self.spec)
        times = np.zeros(len(frames), np.int64)
        return self.video.add(encode_frames(frames, self.spec.model_copy(
            update={"encoding": "raw"})), times, times, times).packets

    def close(self) -> None:
        if self.video is not None:
            self.video.close()


@dataclass(frozen=True)
class LoopRate:
    """What one bare loop did: frames per second, and CPU-seconds of its process per frame."""

    fps: float
    cpu_s_per_frame: float


def bare_loop(config: StationConfig, workdir: Path, seconds: float, start=None) -> LoopRate:
    """Frames per second of render -> encode -> HDF5 append, one process, nothing else (tuned
    as every station process is: collector/tuning.py, which makes it faster), and the CPU it
    spent per frame (every thread of the process: the encoder's own threads too). `start`: a
    barrier to wait at before the clock starts (loops run side by side)."""
    tune_process()
    cameras = sim_cameras(config)
    if not cameras:
        return LoopRate(0.0, 0.0)
    codecs = [_CameraCodec(c, config.pipeline.images.for_camera(c.config.name)) for c in cameras]
    ticks = max(1, round(config.episode.chunk_ms / 1000 * config.episode.control_hz))
    path = workdir / "bare_loop.h5"
    batches = [np.empty((ticks, c.config.height, c.config.width, 3), np.uint8) for c in cameras]
    if start is not None:
        start.wait()
    frames = 0
    with h5py.File(path, "w", libver="latest") as f:
        sets = [Column(f.create_dataset(c.config.name, (0,), h5py.vlen_dtype(np.uint8),
                                        maxshape=(None,), chunks=(IMAGE_CHUNK,)))
                for c in cameras]  # written as the station's writer writes
        started = last_flush = time.perf_counter()
        cpu_started = time.process_time()
        index = 0
        while time.perf_counter() - started < seconds:
            for camera, codec, ds, batch in zip(cameras, codecs, sets, batches, strict=True):
                for k in range(ticks):  # drawn in place, as a camera draws into its ring
                    camera.render(index + k, out=batch[k])
                ds.append(codec.encode(batch), ds.rows)
                frames += ticks
            index += ticks
            if time.perf_counter() - last_flush >= config.storage.flush_interval_s:
                f.flush()
                last_flush = time.perf_counter()
        f.flush()
        elapsed = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
    for codec in codecs:
        codec.close()
    path.unlink()
    return LoopRate(frames / elapsed, cpu_s / max(frames, 1))


def bare_loop_all_cores_fps(config: StationConfig, workdir: Path, seconds: float,
                            cores: int) -> float:
    """Frames per second of `cores` bare loops side by side, one process each, summed.

    Two loops that share nothing are the best any split of the work across cores can do: what
    they lose against `cores` times one loop is the machine's (shared caches, memory bandwidth,
    a hypervisor), not the engine's.
    """
    if cores <= 1:
        return bare_loop(config, workdir, seconds).fps
    spawn = multiprocessing.get_context("spawn")  # no inherited threads or Ray state
    start, results = spawn.Barrier(cores), spawn.Queue()
    dirs = [workdir / f"core-{i}" for i in range(cores)]
    procs = []
    for own in dirs:
        own.mkdir(parents=True, exist_ok=True)
        procs.append(spawn.Process(target=_report_bare_loop,
                                   args=(config, own, seconds, start, results), daemon=True))
    for p in procs:
        p.start()
    rates: list[float] = []
    while len(rates) < cores:
        try:
            rates.append(results.get(timeout=1.0))
        except queue.Empty:
            if any(p.exitcode not in (None, 0) for p in procs):
                raise RuntimeError("a bare loop process failed (its traceback is above)") from None
    for p, own in zip(procs, dirs, strict=True):
        p.join(timeout=10)
        own.rmdir()
    return float(sum(rates))


def _report_bare_loop(config: StationConfig, workdir: Path, seconds: float, start,
                      results) -> None:
    results.put(bare_loop(config, workdir, seconds, start).fps)


def encode_fps_per_core(config: StationConfig, seconds: float) -> float:
    """Encodes per second of the station's frames on one thread, with the first camera's
    settings (a video encoder sees the frames as one moving sequence, as a camera's)."""
    tune_process()
    cameras = sim_cameras(config)
    if not cameras:
        return 0.0
    codec = _CameraCodec(cameras[0], config.pipeline.images.for_camera(cameras[0].config.name))
    frames = np.stack([cameras[0].render(i) for i in range(12)])
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        codec.encode(frames)
        done += len(frames)
    elapsed = time.perf_counter() - started
    codec.close()
    return done / elapsed


def jpeg_q90_bytes_per_frame(config: StationConfig, frames: int = 30) -> float:
    """Bytes per frame of the station's sim frames as JPEG q90 (the format-1 default): what a
    run's stored bytes per frame are set beside."""
    cameras = sim_cameras(config)
    if not cameras:
        return 0.0
    rendered = np.stack([cameras[i % len(cameras)].render(i) for i in range(frames)])
    sizes = [len(b) for b in encode_frames(rendered, JPEG_Q90)]
    return float(np.mean(sizes))


def disk_write_mb_per_s(workdir: Path, megabytes: int) -> float:
    """Sequential write of `megabytes` in 4 MiB blocks, then fsync: what the disk takes."""
    block = np.random.default_rng(0).integers(0, 256, 4 * 2**20, dtype=np.uint8).tobytes()
    blocks = max(1, megabytes // 4)
    path = workdir / "disk_write.bin"
    started = time.perf_counter()
    with open(path, "wb") as fh:
        for _ in range(blocks):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return blocks * len(block) / 2**20 / elapsed
