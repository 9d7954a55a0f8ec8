"""How fast a station fills its disk: an estimate from its cameras, streams and encoding.

Rough but honest. Frames dominate. A JPEG/PNG/raw camera stores one frame per grid tick; a
video camera (h264, av1) stores each of its own frames once, plus a frame index per tick. An
encoded frame's size depends on the scene (and a video's on its motion), so JPEG, PNG and the
video codecs use the bits per pixel measured on the simulator's scenes (a textured, noisy
render: busier than many real ones, calmer than some; benchmarks/test_video_codecs.py).
Signals are sized from their declared fields, in /raw at their own rate and on the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.devices import (
    ARM_TYPES,
    CAMERA_TYPES,
    LineField,
    PacketField,
    SerialSensorConfig,
    SimSensorConfig,
)
from schemas.station import ImageEncoding, StationConfig

# JPEG bits per pixel by quality, measured with cv2.imencode on frames of the simulated station
# (640x480, the shipped config); between the points it is interpolated.
JPEG_BPP = ((1, 0.2), (50, 0.88), (75, 1.48), (85, 2.77), (90, 3.05), (95, 4.30), (100, 7.07))
PNG_SHARE = 0.55  # PNG bytes / raw bytes on the same frames, at every compression level
# Video bits per pixel by crf at gop 15 on the sim scene (benchmarks/test_video_codecs.py: h264
# veryfast psnr tune, av1 preset 12; h264 scaled to the shipped station's three views, which
# recorded 14.2 kB/frame at crf 20, 640x480), and how the group of pictures scales them (a
# keyframe costs several P-frames).
H264_BPP = ((12, 0.563), (16, 0.447), (20, 0.370), (24, 0.301))
AV1_BPP = ((20, 0.312), (28, 0.266))
GOP_SCALE = ((10, 1.36), (15, 1.0), (30, 0.56))
VIDEO_FRAME_OVERHEAD = 5 * 8 + 1  # per frame: capture, device, arrival times, seq, keyframe
TIMES_BYTES = 4 * 8  # seq, device, capture and arrival times (int64) of every raw sample
CAMERA_CHECKS_BYTES = 48  # per grid tick: sync times, flags and scores of a camera
SIGNAL_CHECKS_BYTES = 40  # per grid tick: the same for a sensor, arm or the action
FLOAT64 = 8


@dataclass(frozen=True)
class WriteRate:
    """Bytes per second of recording, by what writes them."""

    cameras: float
    signals: float
    camera_names: tuple[str, ...]
    not_counted: tuple[str, ...]  # replay devices: as large as the recording they play

    @property
    def total(self) -> float:
        return self.cameras + self.signals


def write_rate(config: StationConfig) -> WriteRate:
    hz = config.episode.control_hz
    keep_raw = config.storage.keep_raw
    cameras = signals = 0.0
    names, skipped = [], []
    for device in config.devices:
        if isinstance(device, CAMERA_TYPES):
            spec = config.pipeline.images.for_camera(device.name)
            width, height = spec.resize or (device.width, device.height)
            frame = frame_bytes(width, height, spec)
            if spec.is_video:  # each camera frame once, an index per tick
                cameras += device.fps * (frame + VIDEO_FRAME_OVERHEAD)
                cameras += hz * (8 + CAMERA_CHECKS_BYTES)
            else:
                cameras += hz * (frame + CAMERA_CHECKS_BYTES)
                cameras += device.fps * TIMES_BYTES if keep_raw else 0.0
            names.append(device.name)
            continue
        per_sample, rate = _signal_bytes(device, config)
        if rate is None:
            skipped.append(device.name)
            continue
        signals += hz * (per_sample + SIGNAL_CHECKS_BYTES)
        signals += rate * (per_sample + TIMES_BYTES) if keep_raw else 0.0
    arm = next((d for d in config.devices if isinstance(d, ARM_TYPES)), None)
    if arm is not None:  # the action stream: joint targets and gripper on every tick
        action = (arm.joints + 1) * FLOAT64
        signals += hz * (action + SIGNAL_CHECKS_BYTES) + (hz * (action + TIMES_BYTES)
                                                         if keep_raw else 0.0)
    signals += hz * 8  # the grid's own timestamps
    return WriteRate(cameras, signals, tuple(names), tuple(skipped))


def frame_bytes(width: int, height: int, spec: ImageEncoding) -> float:
    """Bytes of one stored frame of this camera."""
    raw = width * height * 3
    if spec.encoding == "raw":
        return float(raw)
    if spec.encoding == "png":
        return raw * PNG_SHARE
    if spec.encoding == "jpeg":
        return width * height * _interp(JPEG_BPP, spec.quality) / 8
    crf, gop = _video_settings(spec)
    table = H264_BPP if spec.encoding == "h264" else AV1_BPP
    return width * height * _interp(table, crf) * _interp(GOP_SCALE, gop) / 8


def _video_settings(spec: ImageEncoding) -> tuple[int, int]:
    """The crf and gop the encoder will use (the codec's defaults where the YAML is silent).
    Read from core.video's defaults table by name, so this estimate cannot drift from them."""
    from core.video import settings_of  # the codec module loads PyAV: only when asked

    crf, _, gop = settings_of(spec)
    return crf, gop


def _interp(points: tuple[tuple[float, float], ...], x: float) -> float:
    xs, ys = zip(*points, strict=True)
    return float(np.interp(x, xs, ys))


def _signal_bytes(device, config: StationConfig) -> tuple[float, float | None]:
    """(bytes per sample of the stored fields, samples per second); rate None: not counted."""
    if isinstance(device, ARM_TYPES):
        fields = 2 * device.joints if config.pipeline.derived.velocities else device.joints
        return (fields + 1) * FLOAT64, device.rate_hz  # qpos (qvel) and gripper
    if isinstance(device, SimSensorConfig | SerialSensorConfig):
        spec = device.protocol() if isinstance(device, SimSensorConfig) else (
            device.packet or device.lines)
        assert spec is not None  # the config's validator requires packet or lines
        values = sum(f.count * _wire_bytes(f) for f in spec.fields if f.role is None)
        lowpass = 2 if config.pipeline.derived.lowpass_hz is not None else 1
        return values * lowpass, device.rate_hz
    return 0.0, None


def _wire_bytes(f: PacketField | LineField) -> int:
    """Bytes one value of a sensor field takes in the episode: a line field is parsed as float64,
    a packet field keeps its wire dtype."""
    return np.dtype(f.dtype).itemsize if isinstance(f, PacketField) else FLOAT64


def describe(rate: WriteRate, config: StationConfig) -> str:
    """`estimated write rate: 10.7 MB/s ...`, with what it rests on."""
    mb_s = rate.total / 1e6
    episode_mb = rate.total * config.episode.duration_s / 1e6
    specs = [config.pipeline.images.for_camera(name) for name in rate.camera_names]
    kinds = sorted({_encoding_label(spec) for spec in specs})
    line = (f"estimated write rate: {mb_s:.1f} MB/s, {mb_s * 3.6:.1f} GB per hour of recording, "
            f"{episode_mb:.0f} MB per {config.episode.duration_s:g} s episode "
            f"({len(rate.camera_names)} camera(s) {', '.join(kinds)}: "
            f"{rate.cameras / 1e6:.2f} MB/s; signals {rate.signals / 1e6:.2f} MB/s)")
    guessed = sorted({s.encoding.upper() for s in specs if s.encoding != "raw"})
    if guessed:
        line += f"; an estimate: {'/'.join(guessed)} size depends on the scene"
    if rate.not_counted:
        line += f"; not counted: {', '.join(rate.not_counted)} (replay: the recording's size)"
    return line


def _encoding_label(spec: ImageEncoding) -> str:
    if spec.encoding == "jpeg":
        return f"jpeg q{spec.quality}"
    if spec.is_video:
        crf, gop = _video_settings(spec)
        return f"{spec.encoding} crf {crf} gop {gop}"
    return spec.encoding
