"""Shared fixtures and helpers, the one place test modules import from (test modules never
import each other). Ray is started once per test session, small and without a dashboard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collector.batch import EpisodeClock, GridBatch, StreamCounters, StreamOnGrid
from collector.engines.ray_session import LOCAL_SYSTEM_CONFIG
from collector.storage.layout import WARM_UP_DIR, StreamLayout
from collector.storage.validate import validate_file
from drivers.chunk import Chunk

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
SIM_CONFIG = ROOT / "configs" / "sim_station.yaml"

# a scripted task for `episode.task=`: reach, close the gripper, carry
WAVE = ("{name: wave, waypoints: ["
        "{joints: [0.5, -0.2, 0.9], gripper: 0.0, duration_s: 0.4},"
        "{joints: [0.5, -0.2, 0.9], gripper: 1.0, duration_s: 0.1, hold_s: 0.3},"
        "{joints: [-0.4, -0.5, 1.1], gripper: 1.0, duration_s: 0.4}]}")


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024 * 1024,
                 logging_level="ERROR", log_to_driver=False,
                 _system_config=dict(LOCAL_SYSTEM_CONFIG))  # as the station starts it
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
            "episode.reset_s": "0.2", "engine.warm_up_s": "0.5", **extra}
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out


def record_one(out: Path, duration_s: float = 1.0, *overrides: str, engine: str = "inline"):
    """One episode of the simulated station, recorded in this process; its summary."""
    from collector.config import load_station

    config = load_station(SIM_CONFIG, [f"station.output_dir={out}", f"engine.kind={engine}",
                                       f"episode.duration_s={duration_s}",
                                       "engine.warm_up_s=0.5", *overrides])
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


# --- a recorder in a subprocess, killed or watched from outside ------------------------------

FLUSH_S = 0.5


def start_recorder(out: Path, episodes: int = 3, duration_s: float = 1.5,
                   *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "collector", "record", str(SIM_CONFIG), "--engine", "inline",
            "--episodes", str(episodes), "--quiet",
            *short_run(out, duration_s, **{"storage.flush_interval_s": str(FLUSH_S)}), *extra]
    return subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def partials(root: Path) -> list[Path]:
    """Episodes' partial files (not the station's warm-up, see collector/station.py)."""
    return sorted(p for p in root.rglob("*.h5.partial") if WARM_UP_DIR not in p.parts)


def wait_for_partial(proc: subprocess.Popen, root: Path) -> None:
    def started() -> bool:
        assert proc.poll() is None, proc.communicate()
        return bool(partials(root))

    wait_until(started, "the recorder starts an episode")


# --- a disk of its own, to fill -------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A size-limited file system of its own, so the rest of the machine never fills up."""
    def mount(size_mb: int) -> Path:
        disk = tmp_path / f"disk{size_mb}"
        disk.mkdir()
        made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                               str(disk)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"cannot mount a {size_mb} MB tmpfs here (needs root or CAP_SYS_ADMIN):"
                        f" {made.stderr.strip()}")
        mounted.append(disk)
        return disk

    mounted: list[Path] = []
    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def copy_to_roomy_disk(partial: Path, roomy: Path) -> Path:
    day = roomy / "sim-01" / partial.parent.name
    day.mkdir(parents=True)
    moved = day / partial.name
    moved.write_bytes(partial.read_bytes())
    return moved


def recover_elsewhere(partial: Path, roomy: Path) -> Path:
    """Copy a partial off the full disk, run `collector recover` on it, check the result
    validates; returns the recovered episode."""
    moved = copy_to_roomy_disk(partial, roomy)
    recovered = run_cli("recover", str(moved), cwd=ROOT)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    [path] = list(moved.parent.glob("*.h5"))
    assert validate_file(path) == []
    return path



# --- grid batches of one force/torque sensor, for the writer without a pipeline --------------

FT = StreamLayout(name="ft", kind="sensor", fields={"value": ((6,), "float32")}, rate_hz=1000,
                  units={"value": "N"})
CLOCK = EpisodeClock("ep-1", 1_000_000_000, 33_333_333, 90)


def sensor_batch(index: int, first: int, m: int, rng: np.random.Generator) -> GridBatch:
    ts = CLOCK.times(first, first + m)
    values = rng.normal(size=(m, 6)).astype(np.float32)
    raw_n = m * 33
    raw_t = np.linspace(ts[0], ts[-1], raw_n).astype(np.int64)
    raw = Chunk(stream="ft", kind="sensor", arrival_ns=raw_t, capture_ns=raw_t,
                device_ns=raw_t // 1000, seq=np.arange(raw_n, dtype=np.int64) + first * 33,
                fields={"value": rng.normal(size=(raw_n, 6)).astype(np.float32)})
    aligned = StreamOnGrid(values={"value": values}, capture_ns=ts, dt_ns=np.zeros(m, np.int64),
                           missing=np.zeros(m, bool))
    return GridBatch(clock=CLOCK, index=index, final=False, first_tick=first, timestamps=ts,
                     streams={"ft": aligned}, raw={"ft": raw},
                     counters={"ft": StreamCounters(samples=raw_n)})
