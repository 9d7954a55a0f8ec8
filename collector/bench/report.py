"""Prints a bench result, and compares two result files figure by figure."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from collector.errors import CollectorError
from schemas.bench import BENCH_SCHEMA_VERSION, Baselines, BenchResult


class BenchFileError(CollectorError):
    """A results file that is missing or not a `collector bench` JSON."""


def format_result(r: BenchResult) -> str:
    t, b, q, lat = r.throughput, r.baselines, r.ratios, r.latency
    res = r.resources
    load = "/".join(f"{x:g}" for x in r.run.load_average)
    lines = [
        f"collector bench: {r.run.mode} mode, engine {r.run.engine}, {r.run.episodes} episode(s) "
        f"x {r.run.episode_s:g} s, {r.run.cameras} cameras at {r.run.offered_fps_per_camera:g} "
        f"fps{_first_offer(r)}, {r.run.host_cpus} CPUs, load average {load} at start",
        f"  camera frames/s   {t.camera_fps:9.1f}   {q.camera_fps_vs_bare_loop:5.2f}x bare loop "
        f"({b.bare_loop_fps:.1f}), {q.camera_fps_vs_bare_loop_all_cores:5.2f}x a bare loop on "
        f"each of {r.run.host_cpus} cores ({b.bare_loop_all_cores_fps:.1f}"
        f"{_all_cores_note(r)})",
        f"                    in steady state ({t.steady_s:.1f} s); "
        f"{t.camera_fps_per_capture_s:.1f} per second captured, "
        f"{t.camera_fps_with_turnover:.1f} with episode open/drain/commit/reset",
        f"  encode            {b.encode_fps_per_core:9.1f}   frames/s on one core; the station's "
        f"rate is {q.camera_fps_vs_encode_all_cores:.2f}x that on every core",
        f"  sensor samples/s  {t.sensor_samples_per_s:9.1f}",
        f"  MB/s written      {t.mb_per_s:9.2f}   {q.mb_per_s_vs_disk:5.3f}x disk sequential "
        f"write+fsync ({b.disk_write_mb_per_s:.0f} MB/s)",
        f"  bytes per frame   {r.disk.bytes_per_frame:9.0f}   "
        f"{r.disk.bytes_per_frame / max(r.disk.raw_frame_bytes, 1):5.3f}x raw frame "
        f"({r.disk.raw_frame_bytes}), "
        f"{r.disk.bytes_per_frame / max(b.jpeg_q90_bytes_per_frame, 1):5.3f}x the same frames as "
        f"JPEG q90 ({b.jpeg_q90_bytes_per_frame:.0f})",
        f"                    JPEG q90 would write {_jpeg_mb_per_s(r):.2f} MB/s at this run's "
        "frame rate",
        f"  capture-to-disk   p50 {lat.p50_ms:.0f} ms, p99 {lat.p99_ms:.0f} ms "
        f"({q.latency_p99_vs_flush_interval:.2f}x flush interval), max {lat.max_ms:.0f} ms "
        f"over {lat.rows} rows",
        f"  drops             pipeline (ring overflow) {r.drops.pipeline}, device gaps "
        f"{r.drops.by_cause.get('dropped', 0)}, grid rows missing "
        f"{r.drops.by_cause.get('sync_miss', 0)}",
        f"  CPU               mean {res.cpu_percent_mean:.0f}% (all station processes), "
        f"{res.cpu_ms_per_camera_frame:.2f} ms per camera frame = "
        f"{q.cpu_per_frame_vs_bare_loop:.2f}x the bare loop's "
        f"({b.bare_loop_cpu_ms_per_frame:.2f} ms{_before_after(b)})",
        *_simulated_line(r),
        *_by_process_line(r),
        f"  resident memory   peak {res.rss_mb_peak:.0f} MB, growth {res.rss_growth:+.1%} after "
        f"{res.rss_warmup_s:g} s warm-up",
        f"  start-up          engine {r.startup.engine_s:.2f} s"
        + (f", ray.init {r.startup.ray_s:.2f} s" if r.startup.ray_s is not None else "")
        + (f"; then warm-up {r.startup.warm_up_s:.2f} s (not recorded)"
           if r.startup.warm_up_s else ""),
        *(f"  {'checks' if i == 0 else '':<18}{c}" for i, c in enumerate(_checks(r))),
    ]
    return "\n".join(lines)


def _before_after(b: Baselines) -> str:
    """The two bare-loop runs the baseline is the mean of (files from before: none)."""
    if not (b.bare_loop_cpu_ms_per_frame_before and b.bare_loop_cpu_ms_per_frame_after):
        return ""
    return (f": {b.bare_loop_cpu_ms_per_frame_before:.2f} before the station, "
            f"{b.bare_loop_cpu_ms_per_frame_after:.2f} after")


def _simulated_line(r: BenchResult) -> list[str]:
    """What the simulated devices took of that CPU, and the station's share without it."""
    sim = r.resources.simulated_devices_cpu_ms_per_camera_frame
    if not sim:
        return []
    station = r.resources.cpu_ms_per_camera_frame - sim
    return [f"                    of which simulated devices {sim:.2f} ms (their firmware: real "
            f"hardware does not run it on the host); the station without them {station:.2f} ms "
            f"= {r.ratios.station_cpu_per_frame_vs_bare_loop:.2f}x the bare loop's"]


def _by_process_line(r: BenchResult) -> list[str]:
    """Where that CPU went, process by process, largest first (runs before it have none)."""
    parts = r.resources.cpu_ms_per_camera_frame_by_process
    if not parts:
        return []
    shown = ", ".join(f"{role} {ms:.2f}" for role, ms in
                      sorted(parts.items(), key=lambda kv: -kv[1]) if ms >= 0.005)
    return [f"                    by process (ms a frame): {shown}"]


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def _checks(r: BenchResult) -> list[str]:
    """The targets a station is held to, each with its verdict and figure; only those that
    apply to the mode (paced at the nominal rate, a station cannot go faster than a bare loop)."""
    a = r.acceptance
    checks = [f"pipeline dropped nothing: {_ok(a.no_pipeline_drops)} ({a.pipeline_drops})",
              f"capture-to-disk p99 under 500 ms: {_ok(a.latency_p99_under_500ms)} "
              f"({a.latency_p99_ms:.0f} ms); under 300 ms: {_ok(a.latency_p99_under_300ms)}",
              f"memory growth under 5%: {_ok(a.rss_growth_under_5pct)} ({a.rss_growth:+.1%})"]
    if r.run.mode == "max" and a.at_least_1_5x_bare_loop is not None:
        checks.append(f"at least 1.5x a bare loop: {_ok(a.at_least_1_5x_bare_loop)} "
                      f"({a.camera_fps_vs_bare_loop:.2f}x)")
    # (runs recorded before these figures existed have none to judge)
    if a.cpu_per_frame_at_most_2_5x is not None:
        judged = a.station_cpu_per_frame_vs_bare_loop or a.cpu_per_frame_vs_bare_loop
        checks.append(f"CPU per camera frame at most 2.5x the bare loop's: "
                      f"{_ok(a.cpu_per_frame_at_most_2_5x)} ({judged:.2f}x"
                      + (", simulated devices left out)" if a.station_cpu_per_frame_vs_bare_loop
                         else ")"))
    if a.at_least_0_65x_all_cores is not None:
        checks.append(f"at least 0.65x a bare loop on every core: "
                      f"{_ok(a.at_least_0_65x_all_cores)} "
                      f"({a.camera_fps_vs_bare_loop_all_cores:.2f}x)")
    return checks


def _all_cores_note(r: BenchResult) -> str:
    """How many single loops the loops on every core made; below one, why that is."""
    b = r.baselines
    loops = b.bare_loop_all_cores_fps / max(b.bare_loop_fps, 1e-9)
    if r.run.host_cpus <= 1:
        return ""
    if loops >= 1:
        return f" = {loops:.2f}x one loop"
    load = r.run.load_average[0] if r.run.load_average else float("nan")
    return (f" = {loops:.2f}x one loop: below one loop alone, so other work had the cores "
            f"while it ran, load average {load:g} at start; ratios to it read high, rerun on "
            "an idle machine")


def _first_offer(r: BenchResult) -> str:
    first = r.run.first_offer_fps_per_camera
    return f" (first offered {first:g}, set from what warm-ups took)" if first else ""


def load_result(path: str | Path) -> BenchResult:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchFileError(f"{path}: cannot read a bench result ({exc}); pass a file "
                             "written by `collector bench --json`") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != BENCH_SCHEMA_VERSION:
        raise BenchFileError(f"{path}: schema_version {version!r}, this collector reads "
                             f"{BENCH_SCHEMA_VERSION}; rerun `collector bench` to compare")
    try:
        return BenchResult.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BenchFileError(f"{path}: {where}: {first['msg']}") from None


def figures(r: BenchResult) -> dict[str, float]:
    """Every scalar figure by dotted path (time series and lists left out)."""
    out: dict[str, float] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(value, int | float):  # bools too: True is 1.0
            out[prefix] = float(value)

    data = r.model_dump(exclude={"series", "schema_version"})
    data["resources"].pop("series")
    walk("", data)
    return out


def compare(a: BenchResult, b: BenchResult, name_a: str, name_b: str) -> str:
    fa, fb = figures(a), figures(b)
    width = max(len(k) for k in fa | fb)
    lines = [f"{'figure':<{width}}  {'A':>12}  {'B':>12}  {'B/A':>8}",
             f"# A = {name_a} ({a.run.mode}, {a.run.engine}, {a.run.started_at})",
             f"# B = {name_b} ({b.run.mode}, {b.run.engine}, {b.run.started_at})"]
    for key in [*fa, *(k for k in fb if k not in fa)]:
        va, vb = fa.get(key), fb.get(key)
        ratio = f"{vb / va:8.3f}" if va and vb is not None else "       -"
        lines.append(f"{key:<{width}}  {_num(va):>12}  {_num(vb):>12}  {ratio}")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _jpeg_mb_per_s(r: BenchResult) -> float:
    """This run's MB/s had its frames been stored as JPEG q90: its other bytes, plus its frames
    at the JPEG bytes per frame measured on the same frames."""
    t, d = r.throughput, r.disk
    frames_mb = t.camera_fps_per_capture_s * d.bytes_per_frame / 2**20
    jpeg_mb = t.camera_fps_per_capture_s * r.baselines.jpeg_q90_bytes_per_frame / 2**20
    return t.mb_per_s - frames_mb + jpeg_mb
