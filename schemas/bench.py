"""The results file of `collector bench`: versioned, so two runs can be compared figure by figure.

Add fields, never rename them: `collector bench --compare` pairs figures by their dotted path.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

BENCH_SCHEMA_VERSION = 3  # 3: steady camera rate, bare loop on every core
# 2: rates per second of recording (turnover apart), warm-up


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunInfo(_Model):
    mode: str  # realtime | max
    engine: str  # ray | inline
    config: str
    duration_s: float
    episode_s: float
    episodes: int
    offered_fps_per_camera: float  # the grid and camera rate the station ran at
    # max mode: the first offer, when warm-ups moved it (`next_offer` in collector/bench/run.py)
    first_offer_fps_per_camera: float | None = None
    cameras: int
    started_at: str  # UTC, ISO 8601
    host_cpus: int
    load_average: list[float]  # 1, 5, 15 min, at the start: others' load skews every figure
    software_version: str


class Throughput(_Model):
    # camera grid rows with a frame reaching disk per second, while capture ran and past each
    # episode's first second (collector/bench/run.py `_steady_fps`): the pipeline's own rate
    camera_fps: float
    camera_fps_per_capture_s: float = 0.0  # frames on disk / seconds captured
    camera_fps_with_turnover: float = 0.0  # frames on disk / wall seconds (open, drain, commit)
    sensor_samples_per_s: float  # full-rate samples of sensor streams under /raw, per s captured
    mb_per_s: float  # episode bytes on disk per second captured
    recording_s: float = 0.0  # per episode: first captured row to last row on disk, summed
    capture_s: float = 0.0  # per episode: first captured row to last captured row, summed
    steady_s: float = 0.0  # the seconds `camera_fps` was measured over
    wall_s: float  # first episode begin to last episode commit
    camera_frames: int
    sensor_samples: int
    bytes_written: int


class Drops(_Model):
    pipeline: int  # samples refused by full ring buffers: the pipeline did not read in time
    by_cause: dict[str, int]  # overflow / dropped (device sequence gaps) / sync_miss (grid rows
    # with no sample in time for other reasons)
    by_stream: dict[str, int]  # "<cause>:<stream>" -> samples


class Latency(_Model):
    """Capture time of a grid row's sample to the flush that put its batch on disk."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    camera_p99_ms: float
    rows: int
    rows_not_logged: int


class Point(_Model):
    t_s: float
    cpu_percent: float  # all processes of the station summed: 200 = two cores busy
    rss_mb: float  # resident memory summed over processes: PSS, so shared pages count once
    processes: int


class Resources(_Model):
    cpu_percent_mean: float
    # CPU-seconds of every station process over the recording (the bench's own monitor left
    # out), per camera frame that reached disk
    cpu_ms_per_camera_frame: float = 0.0
    # of which the simulated devices' threads (a serial device's firmware, which a real device
    # runs on its own chip, not on the host): drivers/thread_names.py
    simulated_devices_cpu_ms_per_camera_frame: float = 0.0
    # the same CPU by process: driver, each stage's actors (capture, perception, computation,
    # encoder, execution), ray daemons, other; summing to cpu_ms_per_camera_frame
    cpu_ms_per_camera_frame_by_process: dict[str, float] = {}
    rss_mb_peak: float
    rss_growth: float  # relative RSS growth from the end of warm-up to the end (0.05 = 5%)
    rss_warmup_s: float  # how long the warm-up excluded from `rss_growth` was
    interval_s: float
    series: list[Point]


class Disk(_Model):
    bytes_per_frame: float  # stored image bytes / frames
    raw_frame_bytes: int  # H*W*3 of one frame, before encoding


class Startup(_Model):
    engine_s: float  # engine up: Ray, actors, devices
    ray_s: float | None  # ray.init alone; None for the inline engine
    warm_up_s: float = 0.0  # then the station's warm-up (engine.warm_up_s of data, not kept)


class Baselines(_Model):
    """Measured in the same run, on the same frames."""

    bare_loop_fps: float  # one process: render, encode as the station does, append, nothing else
    # CPU of that process per frame: the mean of a run before the station and one after it, so
    # a host whose speed drifts during a long run moves the baseline with the station
    bare_loop_cpu_ms_per_frame: float = 0.0
    bare_loop_cpu_ms_per_frame_before: float = 0.0  # each run (0: a file from before these)
    bare_loop_cpu_ms_per_frame_after: float = 0.0
    # one bare loop per core, side by side, summed: the most any engine can make of the cores
    bare_loop_all_cores_fps: float = 0.0
    disk_write_mb_per_s: float  # sequential write + fsync
    encode_fps_per_core: float  # the station's encoding of the same frames, one thread
    jpeg_q90_bytes_per_frame: float = 0.0  # the same frames as JPEG q90 (format 1's default)
    seconds: float  # how long each rate baseline ran


class Ratios(_Model):
    """Every headline figure against its baseline."""

    camera_fps_vs_bare_loop: float
    camera_fps_vs_bare_loop_all_cores: float = 0.0
    camera_fps_vs_encode_all_cores: float
    mb_per_s_vs_disk: float
    latency_p99_vs_flush_interval: float
    # the station's CPU per camera frame over the bare loop's (1.0: no overhead at all)
    cpu_per_frame_vs_bare_loop: float = 0.0
    # the same without the simulated devices' CPU (what a station with real hardware pays)
    station_cpu_per_frame_vs_bare_loop: float = 0.0


class Series(_Model):
    """Per second of the run, for plots: frames reaching disk and their latency."""

    t_s: list[float]
    camera_fps: list[float]
    latency_p50_ms: list[float]
    latency_p99_ms: list[float]


class Acceptance(_Model):
    """The targets a station is held to, with the verdict on this run."""

    pipeline_drops: int
    no_pipeline_drops: bool
    latency_p99_ms: float
    latency_p99_under_500ms: bool
    rss_growth: float
    rss_growth_under_5pct: bool
    camera_fps_vs_bare_loop: float
    # max mode only (None in realtime mode: cameras paced at their nominal rate cannot go faster)
    at_least_1_5x_bare_loop: bool | None = None
    latency_p99_under_300ms: bool = False
    # realtime mode only: the station's CPU per camera frame at most 2.5x the bare loop's,
    # judged without the simulated devices' CPU (`station_cpu_per_frame_vs_bare_loop`; runs
    # before that figure existed judged every process)
    cpu_per_frame_vs_bare_loop: float = 0.0
    station_cpu_per_frame_vs_bare_loop: float = 0.0
    cpu_per_frame_at_most_2_5x: bool | None = None
    # max mode only: camera frames/s at least 0.65x a bare loop on every core (the limit)
    camera_fps_vs_bare_loop_all_cores: float = 0.0
    at_least_0_65x_all_cores: bool | None = None


class BenchResult(_Model):
    schema_version: int = Field(BENCH_SCHEMA_VERSION)
    run: RunInfo
    throughput: Throughput
    drops: Drops
    latency: Latency
    resources: Resources
    disk: Disk
    startup: Startup
    baselines: Baselines
    ratios: Ratios
    acceptance: Acceptance
    series: Series
