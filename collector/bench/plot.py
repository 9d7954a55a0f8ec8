"""`--plot FILE`: throughput, latency and resources over the run, as one image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.bench import BenchResult


def plot_result(r: BenchResult, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a station or in CI
    import matplotlib.pyplot as plt

    fig = bench_figure(r)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bench_figure(r: BenchResult) -> Any:
    """Throughput, capture-to-disk latency, CPU and memory over the run (a matplotlib Figure)."""
    import matplotlib.pyplot as plt

    s, points = r.series, r.resources.series
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax1.plot(s.t_s, s.camera_fps, label="camera frames/s to disk")
    ax1.axhline(r.baselines.bare_loop_fps, color="grey", ls="--", label="bare loop")
    if r.baselines.bare_loop_all_cores_fps:
        ax1.axhline(r.baselines.bare_loop_all_cores_fps, color="grey", ls=":",
                    label=f"a bare loop on each of {r.run.host_cpus} cores")
    ax1.set_ylabel("frames/s")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="lower center", ncol=3, fontsize=8)
    ax2.plot(s.t_s, s.latency_p50_ms, label="p50 of each second")
    ax2.plot(s.t_s, s.latency_p99_ms, label="p99 of each second")
    ax2.axhline(r.latency.p99_ms, color="C1", ls=":",
                label=f"p99 of the run: {r.latency.p99_ms:.0f} ms")
    ax2.set_ylabel("capture-to-disk ms")
    top = max([*s.latency_p99_ms, r.latency.p99_ms, 1.0])
    ax2.set_ylim(0, 1.4 * top)  # room above the lines for the legend
    ax2.legend(loc="best", fontsize=8)
    ax3.plot([p.t_s for p in points], [p.cpu_percent for p in points], color="C0")
    ax3.set_ylabel(f"CPU % of {r.run.host_cpus * 100}% (all processes)", color="C0")
    ax3.set_ylim(0, r.run.host_cpus * 100)
    ax3.set_xlabel("seconds since recording started")
    # memory from zero, so its slope reads as the growth it is (a few % is a few %), and
    # each axis in its line's colour, so the two are not confused
    twin = ax3.twinx()
    twin.plot([p.t_s for p in points], [p.rss_mb for p in points], color="C3")
    twin.set_ylabel(f"RSS MB (growth after warm-up {r.resources.rss_growth:+.1%})",
                    color="C3")
    twin.set_ylim(bottom=0)
    fig.suptitle(f"collector bench: {r.run.mode} mode, {r.run.engine} engine, "
                 f"{r.run.started_at[:19]} UTC")
    fig.tight_layout()
    return fig
