"""`--plot FILE`: throughput, latency and resources over the run, as one image."""

from __future__ import annotations

from pathlib import Path

from schemas.bench import BenchResult


def plot_result(r: BenchResult, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a station or in CI
    import matplotlib.pyplot as plt

    s, points = r.series, r.resources.series
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax1.plot(s.t_s, s.camera_fps, label="camera frames/s to disk")
    ax1.axhline(r.baselines.bare_loop_fps, color="grey", ls="--", label="bare loop")
    if r.baselines.bare_loop_all_cores_fps:
        ax1.axhline(r.baselines.bare_loop_all_cores_fps, color="grey", ls=":",
                    label=f"a bare loop on each of {r.run.host_cpus} cores")
    ax1.set_ylabel("frames/s")
    ax1.legend(loc="lower right")
    ax2.plot(s.t_s, s.latency_p50_ms, label="p50")
    ax2.plot(s.t_s, s.latency_p99_ms, label="p99")
    ax2.set_ylabel("capture-to-disk ms")
    ax2.legend(loc="upper right")
    ax3.plot([p.t_s for p in points], [p.cpu_percent for p in points], label="CPU %")
    ax3.set_ylabel("CPU % (all processes)")
    ax3.set_xlabel("seconds since recording started")
    twin = ax3.twinx()
    twin.plot([p.t_s for p in points], [p.rss_mb for p in points], color="C3", label="RSS MB")
    twin.set_ylabel("RSS MB")
    fig.suptitle(f"collector bench: {r.run.mode} mode, {r.run.engine} engine, "
                 f"{r.run.started_at[:19]} UTC")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
