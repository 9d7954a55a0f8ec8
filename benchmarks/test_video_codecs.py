"""Video codecs beside JPEG q90 (the baseline) and LeRobot's default, in one run, on two moving
scenes at 640x480 and 30 fps: the sim station's render and a camera panning over real
photographs with sensor noise (tests/scenes.py). Per setting: bytes per frame, PSNR (RGB)
against the raw frames, encode frames per CPU-second (process time: the encoders use threads),
random access to one frame (decode from its keyframe) p50/p99, sequential decode frames/s, and
the ratios to JPEG q90. Each crf sweep is also read at JPEG q90's PSNR (log-bytes interpolated
between the two crfs that bracket it), so codecs are compared at matched quality.
Results: benchmarks/results/video_codecs.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise

import av
import numpy as np

from benchmarks.test_sync import write_result
from core.codec import decode_frame, encode_frames
from core.video import VideoEncoder, decode_run, keyframe_before
from schemas.station import ImageEncoding
from tests.scenes import natural_scene, sim_scene

FRAMES, WIDTH, HEIGHT, FPS = 150, 640, 480, 30.0
GOP = 30
# (family, codec, preset, crf sweep, pix_fmt): the points the default is chosen from
SWEEPS = [
    ("h264 veryfast", "h264", "veryfast", (16, 20, 24), "yuv420p"),
    ("h264 superfast", "h264", "superfast", (20,), "yuv420p"),
    ("h264 veryfast 4:4:4", "h264", "veryfast", (14, 18), "yuv444p"),
    ("av1 preset 12", "av1", "12", (16, 24, 30), "yuv420p"),
    ("av1 preset 10", "av1", "10", (20, 28), "yuv420p"),
]
LEROBOT_CRFS = (16, 24, 30)  # LeRobot's default is crf 30; the others bracket JPEG's PSNR


def psnr(decoded: np.ndarray, raw: np.ndarray) -> float:
    """Mean over frames of each frame's RGB PSNR, as ffmpeg's psnr filter averages."""
    err = (decoded.astype(np.float32) - raw.astype(np.float32)) ** 2
    mse = err.reshape(len(raw), -1).mean(axis=1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def cpu_timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def wall_ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def encode_collector(frames: np.ndarray, spec: ImageEncoding) -> tuple[list, np.ndarray, dict]:
    n = len(frames)
    enc = VideoEncoder(spec, WIDTH, HEIGHT, FPS)
    times = np.arange(n, dtype=np.int64)
    out = [enc.add(frames, times, times, times), enc.finish()]
    return ([p for o in out for p in o.packets], np.concatenate([o.keyframe for o in out]),
            enc.stream_attrs())


def encode_lerobot(frames: np.ndarray, crf: int) -> tuple[list, np.ndarray, dict]:
    """LeRobot's `encode_video_frames` defaults through PyAV: libsvtav1, crf, g 2, preset 12,
    yuv420p, and SVT-AV1's own structure (random access, look-ahead: frames come out late)."""
    ctx = av.CodecContext.create("libsvtav1", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, 30), Fraction(30)
    ctx.gop_size = 2
    ctx.options = {"crf": str(crf), "preset": "12"}
    packets = []
    for i, frame in enumerate(frames):
        picture = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
        picture.pts = i
        packets.extend(ctx.encode(picture))
    packets.extend(ctx.encode(None))
    keyframe = np.array([p.is_keyframe for p in packets], bool)
    return [np.frombuffer(bytes(p), np.uint8) for p in packets], keyframe, {"codec": "av1"}


def video_figures(frames: np.ndarray, encode: Callable[[], tuple[list, np.ndarray, dict]],
                  gop: int) -> dict:
    (packets, keyframe, attrs), cpu_s = cpu_timed(encode)  # type: ignore[misc]
    decoded, decode_s = cpu_timed(lambda: decode_run(attrs, packets))
    # one frame, the worst place in a group of pictures: its last frame (gop - 1 decodes)
    probes = [i for i in range(gop - 1, len(packets), gop)] or [len(packets) - 1]
    access = [wall_ms(lambda i=i: decode_run(attrs, packets[keyframe_before(keyframe, i):i + 1]))
              for i in probes * 4]
    return {"bytes_per_frame": float(np.mean([len(p) for p in packets])),
            "psnr_db": psnr(np.stack(decoded), frames),  # type: ignore[arg-type]
            "encode_fps_per_cpu_s": len(frames) / cpu_s,
            "random_access_ms": {"p50": float(np.percentile(access, 50)),
                                 "p99": float(np.percentile(access, 99))},
            "decode_fps": len(frames) / decode_s}


def jpeg_figures(frames: np.ndarray) -> dict:
    spec = ImageEncoding(encoding="jpeg", quality=90)
    encoded, cpu_s = cpu_timed(lambda: encode_frames(frames, spec))
    decoded, decode_s = cpu_timed(lambda: [decode_frame(b, "jpeg") for b in encoded])
    access = [wall_ms(lambda b=b: decode_frame(b, "jpeg")) for b in encoded]  # type: ignore
    return {"bytes_per_frame": float(np.mean([len(b) for b in encoded])),  # type: ignore
            "psnr_db": psnr(np.stack(decoded), frames),  # type: ignore[arg-type]
            "encode_fps_per_cpu_s": len(frames) / cpu_s,
            "random_access_ms": {"p50": float(np.percentile(access, 50)),
                                 "p99": float(np.percentile(access, 99))},
            "decode_fps": len(frames) / decode_s}


def bytes_at_psnr(points: list[dict], target: float) -> float | None:
    """A crf sweep's bytes per frame at `target` dB; None where the sweep does not bracket it."""
    pts = sorted((p["psnr_db"], np.log(p["bytes_per_frame"])) for p in points)
    for (q0, b0), (q1, b1) in pairwise(pts):
        if q0 <= target <= q1 and q1 > q0:
            return float(np.exp(b0 + (b1 - b0) * (target - q0) / (q1 - q0)))
    return None


def scene_figures(frames: np.ndarray, smoke: bool) -> dict:
    jpeg = jpeg_figures(frames)
    settings: list[dict] = []
    sweeps = SWEEPS[:1] if smoke else SWEEPS
    for family, codec, preset, crfs, pix_fmt in sweeps:
        for crf in crfs[:1] if smoke else crfs:
            spec = ImageEncoding(encoding=codec, preset=preset, crf=crf, gop=GOP,
                                 pix_fmt=pix_fmt)
            settings.append({"family": family, "crf": crf, "gop": GOP, **video_figures(
                frames, lambda spec=spec: encode_collector(frames, spec), GOP)})
    for crf in LEROBOT_CRFS[-1:] if smoke else LEROBOT_CRFS:
        settings.append({"family": "lerobot (svtav1 g2 preset 12)", "crf": crf, "gop": 2,
                         **video_figures(frames, lambda crf=crf: encode_lerobot(frames, crf),
                                         2)})
    for s in settings:
        s["bytes_vs_jpeg_q90"] = s["bytes_per_frame"] / jpeg["bytes_per_frame"]
        s["psnr_minus_jpeg_q90_db"] = s["psnr_db"] - jpeg["psnr_db"]
        s["encode_cpu_vs_jpeg_q90"] = jpeg["encode_fps_per_cpu_s"] / s["encode_fps_per_cpu_s"]
    families = sorted({s["family"] for s in settings})
    matched = {f: bytes_at_psnr([s for s in settings if s["family"] == f], jpeg["psnr_db"])
               for f in families}
    return {"jpeg_q90": jpeg, "settings": settings,
            "bytes_per_frame_at_jpeg_q90_psnr": {
                f: None if b is None else {"bytes": b, "vs_jpeg_q90": b / jpeg["bytes_per_frame"]}
                for f, b in matched.items()}}


def test_video_codecs_beside_jpeg_and_lerobot(benchmark):
    smoke = benchmark.disabled
    n = 12 if smoke else FRAMES
    scenes = {"sim": sim_scene(n, WIDTH, HEIGHT, FPS), "natural": natural_scene(n, WIDTH, HEIGHT)}
    figures = {name: scene_figures(frames, smoke) for name, frames in scenes.items()}
    for name, scene in figures.items():
        assert scene["jpeg_q90"]["psnr_db"] > 30, name
        for s in scene["settings"]:
            assert s["psnr_db"] > 30 and s["bytes_per_frame"] > 0, (name, s)
    if not smoke:
        write_result("video_codecs", {
            "scenes": f"{FRAMES} frames {WIDTH}x{HEIGHT} @ {FPS:.0f} fps each: sim = the sim "
                      "station's render while the arm moves; natural = a camera panning and "
                      "zooming over skimage photographs, with sensor noise (sigma 2)",
            "psnr": "RGB, mean of per-frame PSNR against the raw frames",
            **figures})
        frames = scenes["natural"]
        spec = ImageEncoding(encoding="h264", preset="veryfast", crf=20, gop=GOP)
        benchmark.pedantic(encode_collector, args=(frames, spec), rounds=1, iterations=1)
