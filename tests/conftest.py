"""Shared fixtures. Ray is started once per test session, small and without a dashboard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
SIM_CONFIG = ROOT / "configs" / "sim_station.yaml"


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024,
                 logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def run_cli(*args: str, cwd: Path | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
    """The real `collector` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "collector", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def short_run(tmp_path: Path, duration_s: float = 1.0, **extra: str) -> list[str]:
    """`--set` overrides for a quick simulated recording into tmp_path."""
    sets = {"station.output_dir": str(tmp_path), "episode.duration_s": str(duration_s),
            "episode.reset_s": "0.2", **extra}
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out


def record_one(out: Path, duration_s: float = 1.0, *overrides: str, engine: str = "inline"):
    """One episode of the simulated station, recorded in this process; its summary."""
    from collector.config import load_station

    config = load_station(SIM_CONFIG, [f"station.output_dir={out}", f"engine.kind={engine}",
                                       f"episode.duration_s={duration_s}", *overrides])
    return record_config(config)


def record_config(config):
    """One episode of any station config, recorded in this process; its summary."""
    from collector.station import Station

    station = Station(config)
    try:
        [summary] = station.record(1)
    finally:
        station.close()
    return summary


def wait_until(condition, what: str, timeout_s: float = 120.0, poll_s: float = 0.02) -> None:
    """Wait for a state, not for a time: polls `condition` until true. The timeout only turns a
    hang into a failure naming `what`; it is long, so that a busy machine never trips it."""
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout_s:g} s: {what}"
        time.sleep(poll_s)
