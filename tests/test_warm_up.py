"""The station's warm-up: live data through every stage before the first episode, thrown away,
charged to start-up; a crash or a signal in it leaves no episode and nothing to recover."""

from __future__ import annotations

import json
import signal
import subprocess

import h5py
import pytest

from collector.storage.layout import WARM_UP_DIR
from tests.conftest import SIM_CONFIG, partials, run_cli, short_run, start_recorder, wait_until


def _warm_up_partials(out):
    return [p for p in out.rglob("*.h5.partial") if WARM_UP_DIR in p.parts]


def _session_intervals(out) -> dict[str, float]:
    [path] = out.rglob("sessions/*.jsonl")
    seconds: dict[str, float] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "interval":
            seconds[record["cause"]] = seconds.get(record["cause"], 0.0) + record["seconds"]
    return seconds


def test_the_warm_up_keeps_nothing_and_counts_as_start_up(tmp_path):
    done = run_cli("record", str(SIM_CONFIG), "--engine", "inline", "--episodes", "1",
                   "--quiet", *short_run(tmp_path, 1.0, **{"engine.warm_up_s": "1.5"}))
    assert done.returncode == 0, done.stderr
    [episode] = tmp_path.rglob("*.h5")
    assert not list(tmp_path.rglob(WARM_UP_DIR)), "the warm-up's folder was left behind"
    with h5py.File(episode, "r") as f:
        assert f.attrs["outcome"] == "success"
        assert f["timestamps"].shape[0] == 30  # the episode's own 1 s, none of the warm-up's
    # 1.5 s of data cannot be had in less: the session's start-up holds at least that
    assert _session_intervals(tmp_path)["startup"] >= 1.5


def _recorder_warming_up(out) -> subprocess.Popen:
    """A `collector record` in its (long) warm-up: its scratch file is on disk."""
    proc = start_recorder(out, 1, 1.0, "--set", "engine.warm_up_s=60")
    try:
        wait_until(lambda: proc.poll() is None and bool(_warm_up_partials(out)),
                   "the recorder's warm-up writes its scratch file")
    except BaseException:
        proc.kill()
        raise
    return proc


@pytest.mark.slow
def test_a_warm_up_killed_leaves_nothing_to_recover_and_the_next_start_clears_it(tmp_path):
    proc = _recorder_warming_up(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    [scratch] = _warm_up_partials(tmp_path)
    assert not partials(tmp_path), "the warm-up wrote an episode's partial"

    recovered = run_cli("recover", str(tmp_path))
    assert recovered.returncode == 0, recovered.stderr
    assert scratch.exists() and not list(tmp_path.rglob("*.h5")), recovered.stdout
    assert not list(tmp_path.rglob("rejected/*")), "a warm-up was filed as a bad episode"

    again = run_cli("record", str(SIM_CONFIG), "--engine", "inline", "--episodes", "1",
                    "--quiet", *short_run(tmp_path, 0.5, **{"engine.warm_up_s": "0.5"}))
    assert again.returncode == 0, again.stderr
    assert not scratch.exists() and len(list(tmp_path.rglob("*.h5"))) == 1


def test_sigterm_during_the_warm_up_ends_the_start_up_cleanly(tmp_path):
    proc = _recorder_warming_up(tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    assert "while starting; nothing was recorded" in err, err
    assert not list(tmp_path.rglob("*.h5")) and not list(tmp_path.rglob("*.partial"))
    assert not list(tmp_path.rglob(WARM_UP_DIR))
