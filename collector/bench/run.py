"""Runs the station under a load profile, then reads its episodes back to get the figures."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from collector import __version__
from collector.bench import baselines
from collector.bench.monitor import ResourceMonitor, rss_growth
from collector.config import load_station
from collector.stages.execution import EpisodeSummary
from collector.station import Station
from collector.storage.commit_log import CommitLog
from collector.storage.layout import QUALITY, RAW
from schemas.bench import (
    Acceptance,
    Baselines,
    BenchResult,
    Disk,
    Drops,
    Latency,
    Ratios,
    Resources,
    RunInfo,
    Series,
    Startup,
    Throughput,
)
from schemas.devices import SimCameraConfig
from schemas.station import StationConfig

MAX_FPS = 400.0  # max mode's ceiling per camera (reads, rings and the object store are bounded)
MAX_EPISODE_S = 10.0  # max mode's episode length
STEADY_SKIP_S = 1.0  # of each episode, left out of the steady rate: the first batches' way in
WARMUP_EPISODE_S = 3.0  # max mode first records episodes it does not count (cold processes)
CALIBRATE_BELOW = 0.8  # a warm-up that took less than this share of the offer...
OFFER_ABOVE = 1.1  # ...makes max mode restart the station offering this much more than it took
KEPT_UP = 0.97  # one that took at least this share...
STEP_UP = 1.25  # ...restarts it offering this much more than before
CALIBRATION_ROUNDS = 4  # at most this many restarts
DROP_CAUSES = ("overflow", "dropped", "sync_miss")


@dataclass
class BenchOptions:
    config: str
    overrides: list[str]
    mode: str = "realtime"  # realtime | max
    duration_s: float = 60.0
    engine: str | None = None
    load: float = 0.5  # max mode: first offered camera rate, x the bare loop on every core
    max_fps: float | None = None  # max mode: the camera and grid rate, overriding `load`
    baseline_s: float = 5.0
    disk_mb: int = 256
    workdir: Path = Path("bench-results/work")


def run_bench(opts: BenchOptions, say=print) -> BenchResult:
    base = load_station(opts.config, _engine(opts))
    workdir = Path(opts.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started_at = dt.datetime.now(dt.timezone.utc).isoformat()
    load_average = [round(x, 2) for x in os.getloadavg()]

    say(f"baselines ({opts.baseline_s:g} s each) ...")
    loop = baselines.bare_loop(base, workdir, opts.baseline_s)
    before_ms = loop.cpu_s_per_frame * 1e3
    base_fig = Baselines(
        bare_loop_fps=loop.fps, bare_loop_cpu_ms_per_frame=before_ms,  # until the run after
        bare_loop_cpu_ms_per_frame_before=before_ms,
        bare_loop_all_cores_fps=baselines.bare_loop_all_cores_fps(
            base, workdir, opts.baseline_s, os.cpu_count() or 1),
        encode_fps_per_core=baselines.encode_fps_per_core(base, opts.baseline_s),
        jpeg_q90_bytes_per_frame=baselines.jpeg_q90_bytes_per_frame(base),
        disk_write_mb_per_s=baselines.disk_write_mb_per_s(workdir, opts.disk_mb),
        seconds=opts.baseline_s)
    cameras = [d.name for d in base.devices if isinstance(d, SimCameraConfig)]
    fps, episode_s, episodes = _profile(opts, base, base_fig, len(cameras))
    first_offer = None
    # Max mode paces the cameras at the offered rate rather than flat out (`realtime=False`):
    # a flat-out camera refills its whole ring after every read, and those frames all cross
    # the pipeline (raw chunks) though the grid can use only the offered rate of them.
    station = _start(opts, cameras, fps, episode_s, episodes, workdir, say)
    monitor = ResourceMonitor(interval_s=max(0.5, opts.duration_s / 600))
    try:
        if opts.mode == "max":
            _warm_up(station, say)  # cold: its rate says little
            offered = fps
            # a pinned rate (--max-fps) is measured as it is: no warm-up to calibrate on
            for _ in range(0 if opts.max_fps is not None else CALIBRATION_ROUNDS):
                rate = _warm_up(station, say)
                again = next_offer(offered, rate, len(cameras), MAX_FPS)
                if again is None:
                    break  # a little more than it takes: the rate to measure at
                say(f"the warm-up took {rate:.0f} of {offered * len(cameras):g} frames/s "
                    f"offered: cameras at {again:g} fps from here on")
                offered = again
                station.close()
                station = _start(opts, cameras, offered, episode_s, episodes, workdir, say)
                _warm_up(station, say)  # new workers are cold again
            if offered != fps:
                first_offer, fps = fps, offered
        config = station.config
        stats = station.stats()
        startup = Startup(engine_s=stats.startup_s, ray_s=stats.ray_startup_s,
                          warm_up_s=stats.warm_up_s)
        monitor.start()
        t0_ns = time.monotonic_ns()
        summaries = station.record(episodes)
        wall_s = (time.monotonic_ns() - t0_ns) / 1e9
        points = monitor.stop()
    finally:
        station.close()
    # Same-run ratios of CPU per frame read 2.5-3.1x for the same code on one host, with every
    # station process moving together: the host's speed drifts over a 300 s run, and one bare
    # loop measured before it saw only its start. The mean of one before and one after follows
    # a drift, and the two apart show how far the host moved.
    say("the bare loop again, after the station ...")
    after_ms = baselines.bare_loop(base, workdir, opts.baseline_s).cpu_s_per_frame * 1e3
    base_fig = base_fig.model_copy(update={
        "bare_loop_cpu_ms_per_frame_after": after_ms,
        "bare_loop_cpu_ms_per_frame": (before_ms + after_ms) / 2})

    throughput, disk = _read_back(station, summaries, wall_s, config)
    drops = _drops(summaries)
    latency, series = _latency(summaries, t0_ns, wall_s)
    warmup = min(60.0, opts.duration_s / 4)
    resources = Resources(
        cpu_percent_mean=float(np.mean([p.cpu_percent for p in points])) if points else 0.0,
        cpu_ms_per_camera_frame=monitor.cpu_s * 1e3 / max(throughput.camera_frames, 1),
        simulated_devices_cpu_ms_per_camera_frame=(
            monitor.simulated_s * 1e3 / max(throughput.camera_frames, 1)),
        cpu_ms_per_camera_frame_by_process={
            role: round(max(spent, 0.0) * 1e3 / max(throughput.camera_frames, 1), 3)
            for role, spent in sorted(monitor.cpu_by_process.items(), key=lambda kv: -kv[1])},
        rss_mb_peak=max((p.rss_mb for p in points), default=0.0),
        rss_growth=rss_growth(points, warmup), rss_warmup_s=warmup,
        interval_s=monitor.interval_s, series=points)
    ratios = Ratios(
        camera_fps_vs_bare_loop=_ratio(throughput.camera_fps, base_fig.bare_loop_fps),
        camera_fps_vs_bare_loop_all_cores=_ratio(throughput.camera_fps,
                                                 base_fig.bare_loop_all_cores_fps),
        camera_fps_vs_encode_all_cores=_ratio(
            throughput.camera_fps, base_fig.encode_fps_per_core * (os.cpu_count() or 1)),
        mb_per_s_vs_disk=_ratio(throughput.mb_per_s, base_fig.disk_write_mb_per_s),
        latency_p99_vs_flush_interval=_ratio(latency.p99_ms,
                                             config.storage.flush_interval_s * 1000),
        cpu_per_frame_vs_bare_loop=_ratio(resources.cpu_ms_per_camera_frame,
                                          base_fig.bare_loop_cpu_ms_per_frame),
        station_cpu_per_frame_vs_bare_loop=_ratio(
            resources.cpu_ms_per_camera_frame
            - resources.simulated_devices_cpu_ms_per_camera_frame,
            base_fig.bare_loop_cpu_ms_per_frame))
    acceptance = Acceptance(
        pipeline_drops=drops.pipeline, no_pipeline_drops=drops.pipeline == 0,
        latency_p99_ms=latency.p99_ms, latency_p99_under_500ms=latency.p99_ms < 500,
        rss_growth=resources.rss_growth, rss_growth_under_5pct=resources.rss_growth < 0.05,
        camera_fps_vs_bare_loop=ratios.camera_fps_vs_bare_loop,
        at_least_1_5x_bare_loop=(ratios.camera_fps_vs_bare_loop >= 1.5
                                 if opts.mode == "max" else None),
        latency_p99_under_300ms=latency.p99_ms < 300,
        cpu_per_frame_vs_bare_loop=ratios.cpu_per_frame_vs_bare_loop,
        station_cpu_per_frame_vs_bare_loop=ratios.station_cpu_per_frame_vs_bare_loop,
        cpu_per_frame_at_most_2_5x=(ratios.station_cpu_per_frame_vs_bare_loop <= 2.5
                                    if opts.mode == "realtime" else None),
        camera_fps_vs_bare_loop_all_cores=ratios.camera_fps_vs_bare_loop_all_cores,
        at_least_0_65x_all_cores=(ratios.camera_fps_vs_bare_loop_all_cores >= 0.65
                                  if opts.mode == "max" else None))
    run = RunInfo(mode=opts.mode, engine=config.engine.kind, config=str(opts.config),
                  duration_s=opts.duration_s, episode_s=episode_s, episodes=episodes,
                  offered_fps_per_camera=fps, first_offer_fps_per_camera=first_offer,
                  cameras=len(cameras), started_at=started_at,
                  host_cpus=os.cpu_count() or 1, load_average=load_average,
                  software_version=__version__)
    return BenchResult(run=run, throughput=throughput, drops=drops, latency=latency,
                       resources=resources, disk=disk, startup=startup, baselines=base_fig,
                       ratios=ratios, acceptance=acceptance, series=series)


def _start(opts: BenchOptions, cameras: list[str], fps: float, episode_s: float,
           episodes: int, workdir: Path, say) -> Station:
    sets = [*_engine(opts), f"station.output_dir={workdir / 'episodes'}",
            f"episode.duration_s={episode_s}", "episode.reset_s=0"]
    if opts.mode == "max":
        sets += [f"episode.control_hz={fps}", *(f"devices.{c}.fps={fps}" for c in cameras)]
    config = load_station(opts.config, [*opts.overrides, *sets])
    say(f"station: {opts.mode} mode, engine {config.engine.kind}, {episodes} x {episode_s:g} s "
        f"episode(s), cameras at {fps:g} fps ...")
    # max mode warms up with episodes of its own, whose rates it calibrates on
    return Station(config, warm_up=opts.mode == "realtime")


def next_offer(offered: float, rate: float, cameras: int, cap: float) -> float | None:
    """The camera rate to offer next, after a warm-up offered `offered` fps per camera took
    `rate` frames/s in all; None: measure at `offered`.

    Offered far more than it can take, a station spends its CPUs on frames it then drops, and
    takes less than it could; offered less, it shows only that it keeps up. So: far over, offer
    a little more than it took; kept up, offer more; in between, that is the rate to measure.
    """
    took = rate / max(offered * cameras, 1e-9)
    if took < CALIBRATE_BELOW:
        again = OFFER_ABOVE * rate / cameras
    elif took >= KEPT_UP:
        again = STEP_UP * offered
    else:
        return None
    again = float(max(1, min(round(again), cap)))
    return None if again == offered else again


def _warm_up(station: Station, say) -> float:
    """Record one short episode that is not counted (fresh worker processes fault in their
    memory); returns its steady camera frames per second."""
    say(f"warm-up episode ({WARMUP_EPISODE_S:g} s, not counted) ...")
    summary = station.record_episode(0, 0, duration_s=WARMUP_EPISODE_S)
    Path(summary.path).unlink(missing_ok=True)
    return _steady_fps([summary])[0]


def _camera_frames(f: h5py.File, station: Station) -> int:
    """Camera grid rows of an episode file that hold a frame (not missing)."""
    return sum(int((~f[f"{QUALITY}/{s.name}/missing"][:]).sum())
               for s in station.layouts if s.is_camera)


def _engine(opts: BenchOptions) -> list[str]:
    return [*opts.overrides, *([f"engine.kind={opts.engine}"] if opts.engine else [])]


def _profile(opts: BenchOptions, config: StationConfig, base: Baselines,
             cameras: int) -> tuple[float, float, int]:
    """(camera and grid fps, episode length, episodes) for the mode."""
    if opts.mode == "realtime":
        nominal = [d.fps for d in config.devices if isinstance(d, SimCameraConfig)]
        return float(max(nominal, default=config.episode.control_hz)), opts.duration_s, 1
    # Max mode first offers a share of what the cores could do with nothing but frames (the
    # bare loop on every core), then calibrates; the grid runs at the camera rate so every
    # frame can reach disk.
    fps = opts.max_fps or opts.load * base.bare_loop_all_cores_fps / max(cameras, 1)
    fps = float(min(max(round(fps), 1), MAX_FPS if opts.max_fps is None else 1000))
    episode_s = min(MAX_EPISODE_S, opts.duration_s)
    return fps, episode_s, max(1, math.ceil(opts.duration_s / episode_s))


def _read_back(station: Station, summaries: list[EpisodeSummary], wall_s: float,
               config: StationConfig) -> tuple[Throughput, Disk]:
    """Count what is on disk (frames with a sample, full-rate sensor samples, bytes) and the
    rates: frames in steady state, the rest per second of capture."""
    frames = samples = size = image_bytes = image_rows = 0
    raw_frame = 0
    for s in summaries:
        size += os.path.getsize(s.path)
        with h5py.File(s.path, "r") as f:
            frames += _camera_frames(f, station)
            for layout in station.layouts:
                if layout.is_camera:
                    ds = f[layout.grid_path("image")]
                    # a video camera's frames are its packets, once each; the grid only
                    # points into them
                    frames_ds = f[str(ds.attrs["frames"]) + "/packets"] \
                        if "frames" in ds.attrs else ds
                    image_bytes += _image_bytes(frames_ds)
                    image_rows += frames_ds.shape[0]
                    raw_frame = int(ds.attrs["height"]) * int(ds.attrs["width"]) * 3
                elif layout.kind == "sensor" and config.storage.keep_raw:
                    samples += f[f"{RAW}/{layout.name}/arrival_ns"].shape[0]
    recording_s = sum(_recording_s(s) for s in summaries) or wall_s
    capture_s = sum(_capture_s(s) for s in summaries) or wall_s
    steady_fps, steady_s = _steady_fps(summaries)
    throughput = Throughput(camera_fps=steady_fps,
                            camera_fps_per_capture_s=frames / capture_s,
                            camera_fps_with_turnover=frames / wall_s,
                            sensor_samples_per_s=samples / capture_s,
                            mb_per_s=size / 2**20 / capture_s, recording_s=recording_s,
                            capture_s=capture_s, steady_s=steady_s,
                            wall_s=wall_s, camera_frames=frames, sensor_samples=samples,
                            bytes_written=size)
    disk = Disk(bytes_per_frame=image_bytes / image_rows if image_rows else 0.0,
                raw_frame_bytes=raw_frame)
    return throughput, disk


def _recording_s(summary: EpisodeSummary) -> float:
    """An episode's first captured row to its last row on disk: the time the pipeline was
    recording it (the writer's open, commit and the reset between episodes not included)."""
    log = summary.commits
    if log is None or not log.size:
        return 0.0
    return float(log.flushed_ns.max() - log.capture_ns.min()) / 1e9


def _capture_s(summary: EpisodeSummary) -> float:
    """An episode's first captured row to its last: the seconds the station captured."""
    log = summary.commits
    if log is None or not log.size:
        return 0.0
    return float(log.capture_ns.max() - log.capture_ns.min()) / 1e9


def _steady_fps(summaries: list[EpisodeSummary]) -> tuple[float, float]:
    """(camera rows reaching disk per second while capture ran, past each episode's first
    second; the seconds that covers). The pipeline's rate in steady state: neither its start
    nor the drain after capture ends, whose frames were captured earlier (a pipeline holding a
    backlog would otherwise look as fast as the capture it lags)."""
    rows, seconds = 0, 0.0
    for s in summaries:
        log = s.commits
        if log is None or not log.size:
            continue
        first, end = int(log.capture_ns.min()), int(log.capture_ns.max())
        start = first + int(STEADY_SKIP_S * 1e9)
        if end - start < STEADY_SKIP_S * 1e9:  # a short episode: all of it
            start = first
        if end <= start:
            continue
        rows += int((log.camera & (log.flushed_ns >= start) & (log.flushed_ns <= end)).sum())
        seconds += (end - start) / 1e9
    return (rows / seconds if seconds else 0.0), seconds


def _image_bytes(ds: h5py.Dataset) -> int:
    """Bytes of the frames themselves: variable-length data lives outside the chunks."""
    if ds.dtype.kind == "u":
        return ds.id.get_storage_size()
    sizes = np.vectorize(len, otypes=[np.int64])
    return sum(int(sizes(ds[i:i + 1024]).sum()) for i in range(0, ds.shape[0], 1024))


def _drops(summaries: list[EpisodeSummary]) -> Drops:
    by_stream: dict[str, int] = {}
    for s in summaries:
        for key, value in s.accounts.loss_samples.items():
            if key.split(":", 1)[0] in DROP_CAUSES:
                by_stream[key] = by_stream.get(key, 0) + int(value)
    by_cause = {c: sum(v for k, v in by_stream.items() if k.startswith(c + ":"))
                for c in DROP_CAUSES}
    return Drops(pipeline=by_cause["overflow"], by_cause=by_cause, by_stream=by_stream)


def _latency(summaries: list[EpisodeSummary], t0_ns: int,
             wall_s: float) -> tuple[Latency, Series]:
    logs = [s.commits for s in summaries if s.commits is not None]
    log = CommitLog(0)
    if logs:
        log.capture_ns = np.concatenate([g.capture_ns for g in logs])
        log.flushed_ns = np.concatenate([g.flushed_ns for g in logs])
        log.camera = np.concatenate([g.camera for g in logs])
    lost = sum(g.lost for g in logs)
    ms = (log.flushed_ns - log.capture_ns) / 1e6
    cam = ms[log.camera]

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if len(values) else 0.0

    latency = Latency(p50_ms=pct(ms, 50), p99_ms=pct(ms, 99),
                      max_ms=float(ms.max()) if len(ms) else 0.0, camera_p99_ms=pct(cam, 99),
                      rows=len(ms), rows_not_logged=lost)
    second = (log.flushed_ns - t0_ns) // 1_000_000_000
    seconds = max(1, math.ceil(wall_s))
    fps = np.bincount(second[log.camera].clip(0, seconds - 1), minlength=seconds)
    series = Series(t_s=[], camera_fps=[], latency_p50_ms=[], latency_p99_ms=[])
    for s in range(seconds):  # one step per second of the run, not per sample
        rows = ms[second == s]
        series.t_s.append(float(s))
        series.camera_fps.append(float(fps[s]))
        series.latency_p50_ms.append(round(pct(rows, 50), 2))
        series.latency_p99_ms.append(round(pct(rows, 99), 2))
    return latency, series


def _ratio(value: float, baseline: float) -> float:
    return float(value / baseline) if baseline > 0 else 0.0
