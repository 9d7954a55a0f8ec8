"""A local Ray started by the station: quiet about what is not a problem, its files under the
station's own folder, and no agents left behind when the station is killed."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from collector.engines.ray_session import SOCKET_PATH_MAX, ray_temp_dir
from collector.errors import PipelineError
from schemas.station import EngineConfig
from tests.conftest import ROOT, SIM_CONFIG, short_run, wait_until

pytestmark = pytest.mark.ray


def test_ray_files_go_under_the_station_folder_unless_the_path_is_too_long(tmp_path):
    assert ray_temp_dir(EngineConfig(), "/data/st") == Path("/data/st/.ray")
    assert ray_temp_dir(EngineConfig(temp_dir="/scratch/r"), "/data/st") == Path("/scratch/r")
    deep = "/data/" + "x" * 60
    assert ray_temp_dir(EngineConfig(), deep) is None  # Ray's default: its sockets must fit
    with pytest.raises(PipelineError, match=f"{SOCKET_PATH_MAX}-byte unix limit"):
        ray_temp_dir(EngineConfig(temp_dir=deep), "/data/st")


def test_a_ray_recording_is_quiet_and_keeps_ray_files_in_the_station_folder():
    # a short folder of its own: pytest's tmp_path is too deep for Ray's unix sockets
    out = Path(tempfile.mkdtemp(prefix="cr-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}  # as a user runs it
    try:
        r = subprocess.run([sys.executable, "-m", "collector", "record", str(SIM_CONFIG),
                            "--episodes", "1", "--engine", "ray", *short_run(out, 1.0)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env={**env, "PYTHONUNBUFFERED": "1"})
        assert r.returncode == 0, r.stderr
        assert "Token authentication" not in r.stdout + r.stderr
        assert "WARNING" not in r.stderr, r.stderr
        sessions = list((out / ".ray").glob("session_2*"))
        assert len(sessions) == 1 and (sessions[0] / "logs").is_dir()
    finally:
        shutil.rmtree(out, ignore_errors=True)


@pytest.mark.slow
def test_no_ray_process_outlives_a_killed_station():
    """SIGKILL, so nothing of the station's own cleanup runs: Ray's processes still end (its
    two agents used to wait a minute for the dead cluster first)."""
    import signal

    import psutil

    out = Path(tempfile.mkdtemp(prefix="ck-", dir="/tmp"))
    proc = subprocess.Popen([sys.executable, "-m", "collector", "record", str(SIM_CONFIG),
                             "--episodes", "1", "--engine", "ray", *short_run(out, 600.0)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    station = psutil.Process(proc.pid)

    def ray_processes() -> list[psutil.Process]:
        found = []
        for p in station.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                line = " ".join(p.cmdline())
                if "ray" in line and "ray_watchdog" not in line:
                    found.append(p)
        return found

    try:
        # recording (a partial episode on disk), with the agents up: they are what outlived it
        wait_until(lambda: list(out.rglob("*.h5.partial")) and
                   sum("Agent" in " ".join(p.cmdline()) for p in ray_processes()) == 2,
                   "the station recording with Ray's two agents up", timeout_s=300)
        ray = ray_processes()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # a minute is what they lingered; half that would be a slow machine, not the watchdog
        wait_until(lambda: not any(p.is_running() for p in ray),
                   "Ray's processes outlived the killed station", timeout_s=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(out, ignore_errors=True)


RAY_NODE_TIMEOUT = ("The current node timed out during startup. This could happen because some "
                    "of the raylet failed to startup or the GCS has become overloaded.")


def test_ray_timing_out_at_start_up_is_one_line_not_a_traceback(tmp_path):
    """On a loaded host Ray's node can give up registering with a plain `Exception`; the real
    `record` command, with Ray raising exactly that, says so in one line and exits non-zero."""
    script = (
        "import sys, ray\n"
        "def init(*args, **kwargs):\n"
        f"    raise Exception({RAY_NODE_TIMEOUT!r})\n"
        "ray.init = init\n"
        "from collector.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", script, "record", str(SIM_CONFIG), "--episodes",
                        "1", "--engine", "ray", *short_run(tmp_path, 1.0)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "could not start Ray" in line and "timed out during startup" in line
    assert not list(tmp_path.rglob("*.h5"))  # nothing recorded, nothing half-written
