"""Outcomes that say how an episode really ended, and signals that end every command cleanly:
the real CLI in a subprocess, files read back with plain h5py."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import pytest

from collector.daemon.accounts import read_session
from tests.conftest import ROOT, SIM_CONFIG, WAVE, record_one, run_cli, wait_until
from tests.daemon_helpers import Daemon, small_cameras, small_station


class Recorder:
    """`collector record` in a subprocess, its stdout and stderr read line by line."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "record", str(SIM_CONFIG), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.out: list[str] = []
        self.err: list[str] = []
        self._lines: queue.Queue = queue.Queue()
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    def _pump(self, stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_line(self, text: str, timeout: float = 180) -> None:
        ended = 0
        while ended < 2:
            line = self._lines.get(timeout=timeout)
            if line is None:
                ended += 1
            elif text in line:
                return
        raise AssertionError(f"{text!r} never printed: {''.join(self.out + self.err)[-2000:]}")

    def finish(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def record_sets(out: Path, **extra: str) -> list[str]:
    sets = {"station.output_dir": str(out), "engine.kind": "inline", "episode.reset_s": "0.2",
            **dict(item.split("=", 1) for item in small_cameras()), **extra}
    return [arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")]


def committed(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.h5") if "rejected" not in p.parts)


def test_sigterm_mid_episode_keeps_it_as_truncated_and_export_leaves_it_out(tmp_path):
    rec = Recorder(*record_sets(tmp_path, **{"episode.duration_s": "20"}))
    rec.wait_line("episode 1/1: recording")
    rec.proc.send_signal(signal.SIGTERM)
    assert rec.finish() == 0, "".join(rec.err)
    err = "".join(rec.err)
    assert "ending the episode in progress now" in err and "truncated" in err
    assert "finishing the current episode" not in err  # the old message, which was not true
    [path] = committed(tmp_path)
    assert not list(tmp_path.rglob("*.partial"))
    with h5py.File(path, "r") as f:
        n = f["timestamps"].shape[0]
        assert f.attrs["outcome"] == "truncated"
        reason = f.attrs["reason"]
        assert reason.startswith("stopped by SIGTERM after ") and "of 20 s" in reason
        assert "task not finished" in reason
        assert 0 < n < 20 * 30  # cut short, and what was recorded is there
        assert f["efficiency"].attrs["loss_samples.truncated"] > 0
    assert "truncated" in "".join(rec.out)  # the summary line says so too

    shown = run_cli("inspect", str(path))
    assert shown.returncode == 0 and "outcome truncated (stopped by SIGTERM" in shown.stdout

    # A whole episode beside it: export takes that one only, unless truncated is asked for
    whole = run_cli("record", str(SIM_CONFIG), "--quiet",
                    *record_sets(tmp_path, **{"episode.duration_s": "1"}))
    assert whole.returncode == 0, whole.stderr
    assert len(committed(tmp_path)) == 2
    out = tmp_path / "demos.hdf5"
    done = run_cli("export", str(out), str(tmp_path), "--no-images")
    assert done.returncode == 0, done.stderr
    assert "outcome truncated" in done.stdout  # named as skipped
    with h5py.File(out, "r") as f:
        assert [f[f"data/{d}"].attrs["outcome"] for d in f["data"]] == ["success"]
    done = run_cli("export", str(out), str(tmp_path), "--no-images",
                   "--outcomes", "success,truncated")
    assert done.returncode == 0, done.stderr
    with h5py.File(out, "r") as f:
        assert sorted(f[f"data/{d}"].attrs["outcome"] for d in f["data"]) == [
            "success", "truncated"]
    typo = run_cli("export", str(out), str(tmp_path), "--outcomes", "sucess")
    assert typo.returncode == 2 and "sucess is not an outcome" in typo.stderr


@pytest.mark.slow
def test_an_episode_shorter_than_its_waypoint_task_is_truncated(tmp_path):
    """The task decides success only when it ran to its end: a limit below the task's own
    length (here 0.5 s of a 1.2 s sequence) cuts it short as surely as a signal does."""
    summary = record_one(tmp_path, 0.5, *small_cameras(), f"episode.task={WAVE}")
    assert summary.outcome == "truncated"
    with h5py.File(summary.path, "r") as f:
        assert f.attrs["outcome"] == "truncated"
        assert "shorter than the task (1.2 s)" in f.attrs["reason"]
    whole = record_one(tmp_path, 10, *small_cameras(), f"episode.task={WAVE}")
    assert whole.outcome == "success"  # 1.2 s inside a 10 s limit: the task finished


@pytest.mark.slow
def test_sigterm_while_record_starts_ray_exits_0_with_nothing_recorded(tmp_path):
    rec = Recorder(*record_sets(tmp_path, **{"engine.kind": "ray", "episode.duration_s": "5"}))
    rec.wait_line("starting (engine ray)")  # printed once the signal handlers are in place
    rec.proc.send_signal(signal.SIGTERM)
    code = rec.finish()
    err = "".join(rec.err)
    assert code == 0, err
    assert "while starting" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.h5*"))  # nothing started, nothing half-written


def test_operator_stop_before_the_task_finished_is_truncated(tmp_path):
    daemon = Daemon(small_station(tmp_path), "--mode", "manual")
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
        assert daemon.post("/episodes/start")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "recording"
                        and s["current_episode"]["elapsed_s"] > 0.5, what="recording 0.5 s")
        assert daemon.post("/episodes/stop")[0] == 202
        status = daemon.wait_for(lambda s: sum(s["episodes"].values()) == 1, what="committed")
        last = status["last_episode"]
        assert status["episodes"] == {"truncated": 1} and last["outcome"] == "truncated"
        assert last["reason"].startswith("stopped by the operator via /episodes/stop after ")
        assert "of 30 s, task not finished" in last["reason"]
        code, text = daemon.request("GET", "/metrics")
        assert code == 200 and 'collector_episodes{outcome="truncated"} 1.0' in text
        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    [path] = committed(tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "truncated" and f.attrs["reason"] == last["reason"]
    [session] = tmp_path.rglob("sessions/*.jsonl")
    records = read_session(session)
    assert [(r.outcome, r.reason) for r in records if r.kind == "episode"] == [
        ("truncated", last["reason"])]
    report = run_cli("report", str(tmp_path))
    assert report.returncode == 0 and "1 truncated" in report.stdout


def _logged_state(daemon: Daemon, state: str, timeout: float = 120) -> None:
    """Wait for the daemon's `state` log line (a state too short-lived for /status)."""
    def logged() -> bool:
        assert daemon.proc.poll() is None, f"daemon exited before {state}"
        return any(json.loads(line).get("state") == state for line in list(daemon.lines))

    wait_until(logged, f"the daemon logs the {state} state", timeout)


@pytest.mark.parametrize("state", [  # one state in the smoke run, all of them in -m slow
    s if s == "recording" else pytest.param(s, marks=pytest.mark.slow)
    for s in ("idle", "paused", "recording", "resetting", "stopping")])
def test_sigterm_in_each_daemon_state_exits_0_and_keeps_every_episode(tmp_path, state):
    mode = "manual" if state in ("idle", "paused") else "auto"
    sets = small_station(tmp_path, **{"episode.duration_s": "1" if state == "resetting"
                                      else "30", "episode.reset_s": "60"})
    daemon = Daemon(sets, "--mode", mode)
    try:
        if state == "paused":
            daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
            assert daemon.post("/pause")[0] == 202
        if state == "stopping":  # a second SIGTERM while the first one's shutdown runs
            daemon.wait_for(lambda s: s["state"] == "recording", what="recording")
            daemon.signal(signal.SIGTERM)
            _logged_state(daemon, "stopping")
        else:
            daemon.wait_for(lambda s: s["state"] == state, what=state)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    logs = [json.loads(line) for line in daemon.lines]
    [stopped] = [r for r in logs if r["event"] == "stopped"]  # a late signal may log after it
    assert not stopped["aborted"]
    assert not list(tmp_path.rglob("*.partial"))
    files = committed(tmp_path)
    booked = [json.loads(line)["outcome"] for line in daemon.lines
              if json.loads(line)["event"] == "episode_committed"]
    assert len(files) == len(booked)
    expected = {"idle": [], "paused": [], "recording": ["truncated"],
                "resetting": ["success"], "stopping": ["truncated"]}[state]
    assert booked == expected
    [session] = tmp_path.rglob("sessions/*.jsonl")
    assert read_session(session)[-1].kind == "shutdown"  # the session is booked to the end


@pytest.mark.slow
def test_sigterm_while_the_daemon_starts_ray_exits_0(tmp_path):
    daemon = Daemon(small_station(tmp_path, **{"engine.kind": "ray"}), "--mode", "manual")
    try:
        assert daemon.status()["state"] == "starting"  # the API is up before Ray is
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=180) == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    events = [json.loads(line)["event"] for line in daemon.lines]
    assert "stopped" in events and "signal" in events
    assert "ready" not in events  # the start-up stopped; it did not run on to the end
    assert "Traceback" not in daemon.stderr_tail()
    assert not list(tmp_path.rglob("*.h5*"))


GATED_TASK = '''"""A task module as slow to import as the test wants (as one importing torch)."""
import os

with open(os.environ["COLLECTOR_TEST_GATE"]) as gate:  # blocks until the test opens the gate
    gate.read()


from collector.task import PickPlaceTask


class Gated(PickPlaceTask):
    pass
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_before_the_daemon_has_its_handlers_is_a_clean_stop(tmp_path, sig):
    """`collector run` loads its YAML (and the task module it names) before its handlers are in
    place: a signal then used to end it the default way (exit -15 for SIGTERM, a traceback and
    130 for SIGINT). It is held until the handlers are in place, and then stops the start-up."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    (tmp_path / "gated_task.py").write_text(GATED_TASK)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLLECTOR_TEST_GATE": str(gate),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "collector", "run", str(SIM_CONFIG), "--mode", "manual",
         *small_station(tmp_path, **{"episode.task": "gated_task:Gated"})],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    writer: list[int] = []

    def importing() -> bool:  # the config check is importing the task: it opened the gate
        assert proc.poll() is None, proc.communicate()
        try:
            writer.append(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: nobody reads it yet
            return False
        return True

    try:
        wait_until(importing, "the daemon imports its task module")
        proc.send_signal(sig)
        os.close(writer[0])  # the import ends; the command goes on with a signal behind it
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert "signal" in events and "stopped" in events, out
    assert "ready" not in events  # the start-up stopped
    assert not list(tmp_path.rglob("*.h5*"))
