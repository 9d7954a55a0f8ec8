"""`collector run`: the station daemon in a subprocess, driven through its HTTP API."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import h5py
import pytest

from collector.daemon.accounts import fold, read_session
from tests.conftest import SIM_CONFIG, run_cli
from tests.daemon_helpers import Daemon, small_station


def session_file(root: Path) -> Path:
    [path] = sorted(root.rglob("sessions/*.jsonl"))
    return path


def episodes_on_disk(root: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(root.rglob("*.h5"))
    return ([p for p in files if "rejected" not in p.parts],
            [p for p in files if "rejected" in p.parts])


def test_drive_the_daemon_through_the_api_then_sigterm(tmp_path):
    launched = time.monotonic()
    daemon = Daemon(small_station(tmp_path), "--mode", "manual", "--session", "s1")
    try:
        status = daemon.wait_for(lambda s: s["state"] == "idle" and s["devices"]
                                 and all(d["ok"] for d in s["devices"].values())
                                 and s["devices"]["ft"]["rate_hz"] > 0,
                                 what="idle with every device delivering")
        assert status["current_episode"] is None and status["mode"] == "manual"
        # measured, not its nominal rate echoed (the measure itself: test_capture_health.py)
        assert status["devices"]["ft"]["nominal_hz"] == 1000
        assert status["devices"]["ft"]["rate_hz"] != 1000

        # start, then stop: cut short before the task finished, so truncated, and why
        assert daemon.post("/episodes/start")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "recording", what="recording")
        code, body = daemon.post("/episodes/start")
        assert code == 409 and "recording" in body["error"]
        # the last seconds' figures of the ticks written so far: a camera's |dt| is within
        # its alignment tolerance (half a frame, plus 5 ms) on every delivered tick
        status = daemon.wait_for(lambda s: s["recent"].get("cam_high", {}).get("ticks", 0) > 0,
                                 what="ticks written in the last seconds")
        recent = status["recent"]["cam_high"]
        assert recent["window_s"] == 10
        assert 0 <= recent["dt_p99_ms"] <= 1e3 * (0.5 / 30 + 0.005)
        code, text = daemon.request("GET", "/metrics")
        assert 'collector_stream_dt_p99_seconds{stream="cam_high"}' in text
        time.sleep(1.0)
        assert daemon.post("/episodes/stop")[0] == 202
        status = daemon.wait_for(lambda s: sum(s["episodes"].values()) == 1, what="1 episode")
        assert status["last_episode"]["outcome"] == "truncated"
        assert 0.8 < status["last_episode"]["accounts"]["recording_s"] < 10  # cut short of 30 s

        # start, then reject with a reason: the episode goes to rejected/
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle after the reset")
        assert daemon.post("/episodes/start")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "recording", what="recording")
        code, _ = daemon.post("/episodes/reject", {"reason": "cube fell off the table"})
        assert code == 202
        status = daemon.wait_for(lambda s: s["episodes"].get("rejected") == 1, what="rejected")
        assert status["last_episode"]["reason"] == "cube fell off the table"

        # pause: no episode can start; resume: it can again
        assert daemon.post("/pause")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "paused", what="paused")
        code, body = daemon.post("/episodes/start")
        assert code == 409 and "paused" in body["error"]
        assert daemon.post("/pause")[0] == 409
        time.sleep(0.5)
        assert daemon.post("/resume")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle after resume")

        code, text = daemon.request("GET", "/metrics")
        assert code == 200
        assert 'collector_state{state="idle"} 1.0' in text
        assert 'collector_episodes{outcome="rejected"} 1.0' in text
        assert 'collector_loss_seconds{cause="paused"}' in text
        assert 'collector_device_up{device="cam_high"} 1.0' in text
        assert 'collector_efficiency_ratio{factor="availability"}' in text

        # SIGTERM while recording: the episode is cut short now and kept, then a clean exit
        assert daemon.post("/episodes/start", {"duration_s": 2.0})[0] == 202
        daemon.wait_for(lambda s: s["state"] == "recording", what="recording")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    ran_s = time.monotonic() - launched

    logs = [json.loads(line) for line in daemon.lines]  # every stdout line is one JSON object
    assert {"starting", "api_listening", "episode_committed", "signal", "stopped"} <= {
        r["event"] for r in logs}
    accepted, rejected = episodes_on_disk(tmp_path)
    assert len(accepted) == 2 and len(rejected) == 1
    with h5py.File(rejected[0]) as f:
        assert f.attrs["outcome"] == "rejected"
        assert f.attrs["reason"] == "cube fell off the table"
    ended = {}
    for p in accepted:
        with h5py.File(p) as f:
            assert f.attrs["outcome"] == "truncated"
            ended[f.attrs["reason"].split(" after ")[0]] = (f.attrs["reason"],
                                                            f["timestamps"].shape[0])
    # both cut short, both kept with what they recorded
    reason, ticks = ended["stopped by SIGTERM"]
    assert "of 2 s, task not finished" in reason and 0 < ticks < 60
    reason, ticks = ended["stopped by the operator via /episodes/stop"]
    assert "of 30 s, task not finished" in reason and 24 <= ticks < 300

    records = read_session(session_file(tmp_path))
    assert records[-1].kind == "shutdown"
    assert [r.outcome for r in records if r.kind == "episode"] == ["truncated", "rejected",
                                                                    "truncated"]
    causes = {r.cause for r in records if r.kind == "interval"}
    assert {"startup", "idle", "paused", "reset", "episode_overhead"} <= causes
    books = fold(records)
    # every second the daemon ran is booked: to an episode or to a cause
    assert books.scheduled_s == pytest.approx(sum(r.seconds for r in records))
    first, last = logs[0]["ts"], logs[-1]["ts"]
    lifetime = _seconds_between(first, last)
    # + the interpreter's start before the first log line, however long a busy host takes
    assert lifetime < books.scheduled_s < ran_s + 0.1  # (process start time: 10 ms ticks)
    available = books.availability * books.scheduled_s
    assert available + sum(books.loss_seconds.values()) == pytest.approx(books.scheduled_s)
    assert books.loss_samples["rejected"] > 0  # the rejected episode's samples: a quality loss

    # the report reads the same books
    shown = run_cli("report", str(tmp_path), "--json")
    assert shown.returncode == 0, shown.stderr
    total = json.loads(shown.stdout)["total"]
    assert total["efficiency"] == pytest.approx(books.efficiency)
    table = run_cli("report", str(tmp_path), "--plot", str(tmp_path / "chart.png"))
    assert table.returncode == 0, table.stderr
    assert "paused" in table.stdout and "rejected" in table.stdout
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_second_sigint_aborts_and_a_restart_continues_the_session(tmp_path):
    sets = small_station(tmp_path, **{"episode.duration_s": "20"})
    daemon = Daemon(sets, "--session", "s2")  # auto: episodes start by themselves
    try:
        daemon.wait_for(lambda s: s["state"] == "recording", what="auto start")
        daemon.signal(signal.SIGINT)
        daemon.event("signal")
        time.sleep(0.3)
        daemon.signal(signal.SIGINT)
        assert daemon.wait() == 130, daemon.stderr_tail()
    finally:
        daemon.kill()
    accepted, rejected = episodes_on_disk(tmp_path)
    assert not accepted and len(rejected) == 1
    with h5py.File(rejected[0]) as f:
        assert f.attrs["outcome"] == "aborted" and "SIGINT" in f.attrs["reason"]
        assert 0 < f["timestamps"].shape[0] < 20 * 30  # cut short, what was recorded is kept
    before = fold(read_session(session_file(tmp_path)))

    again = Daemon(sets, "--session", "s2", "--mode", "manual")
    try:
        resumed = again.event("session_resumed")
        assert resumed["episodes"] == 1 and resumed["restart_downtime_s"] == 0  # clean stop
        status = again.wait_for(lambda s: s["state"] == "idle", what="idle")
        assert status["episodes"] == {"aborted": 1}
        assert status["session"]["scheduled_s"] > before.scheduled_s
        assert status["session"]["loss_samples"]["aborted"] == before.loss_samples["aborted"]
        time.sleep(1.0)
    finally:
        again.kill()  # SIGKILL: a crash, no shutdown record
    crashed_at = time.monotonic()

    third = Daemon(sets, "--session", "s2", "--mode", "manual")
    try:
        resumed = third.event("session_resumed")
        assert 0 < resumed["restart_downtime_s"] < time.monotonic() - crashed_at + 1
        assert third.post("/shutdown")[0] == 202
        assert third.wait() == 0
    finally:
        third.kill()
    records = read_session(session_file(tmp_path))
    assert [r.kind for r in records].count("shutdown") == 2
    books = fold(records)
    assert books.loss_seconds["restart"] == pytest.approx(resumed["restart_downtime_s"],
                                                          abs=0.01)
    assert books.scheduled_s > before.scheduled_s + 1.0


def test_api_requires_the_token_and_refuses_bad_bodies_without_changing_state(tmp_path):
    token = "s3cret-token"
    daemon = Daemon(small_station(tmp_path, **{"api.token": token}), "--mode", "manual",
                    token=token)
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", what="idle")
        for path, method in (("/status", "GET"), ("/metrics", "GET"),
                             ("/episodes/start", "POST"), ("/shutdown", "POST")):
            code, body = daemon.request(method, path, b"{}" if method == "POST" else None,
                                        auth=False)
            assert code == 401 and "token" in body["error"]
            code, _ = daemon.request(method, path, b"{}" if method == "POST" else None,
                                     headers={"Authorization": "Bearer wrong"}, auth=False)
            assert code == 401
        bad = [
            ("/episodes/start", b"{not json", 400, "not JSON"),
            ("/episodes/start", b"[1, 2]", 400, "JSON object"),
            ("/episodes/start", {"duration_s": -1}, 422, "duration_s"),
            ("/episodes/start", {"duration_s": "long"}, 422, "duration_s"),
            ("/episodes/start", {"surprise": 1}, 422, "unknown field"),
            ("/episodes/reject", {}, 422, "reason"),
            ("/episodes/reject", {"reason": ""}, 422, "reason"),
            ("/pause", {"now": True}, 422, "unknown field"),
            ("/episodes/stop", None, 409, "no episode is recording"),
            ("/resume", None, 409, "not paused"),
            ("/episodes/launch", None, 404, "no endpoint"),
        ]
        for path, body, expected, words in bad:
            code, answer = daemon.post(path, body)
            assert code == expected, (path, body, answer)
            assert words in answer["error"], answer
        code, answer = daemon.request("GET", "/episodes/start")
        assert code == 405 and "POST" in answer["error"]
        time.sleep(1.0)  # long enough for the loop to act on anything it had accepted
        status = daemon.status()
        assert status["state"] == "idle" and not status["paused"]
        assert status["episodes"] == {} and not status["shutdown_requested"]
        assert not list(tmp_path.rglob("*.h5*"))
        assert daemon.post("/shutdown")[0] == 202
        assert daemon.wait() == 0
    finally:
        daemon.kill()
    assert token not in "".join(daemon.lines)  # the token never reaches the logs


def test_a_non_loopback_api_without_a_token_is_a_config_error(tmp_path):
    for command in (("config", "check"), ("run",)):
        result = run_cli(*command, str(SIM_CONFIG), "--set", "api.host=0.0.0.0",
                         "--set", f"station.output_dir={tmp_path}")
        assert result.returncode == 2, result.stdout + result.stderr
        assert "api" in result.stderr and "token" in result.stderr
        assert "Traceback" not in result.stderr
    ok = run_cli("config", "check", str(SIM_CONFIG), "--set", "api.host=0.0.0.0",
                 "--set", "api.token=abc")
    assert ok.returncode == 0, ok.stderr
    assert not list(tmp_path.rglob("*"))  # `run` refused before opening anything


def test_exit_codes_say_what_stopped_the_daemon(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("run", str(SIM_CONFIG), *small_station(tmp_path, **{
            "api.port": str(port)}))
    assert result.returncode == 5, result.stdout + result.stderr
    [line] = [json.loads(x) for x in result.stdout.splitlines() if '"error"' in x]
    assert f"127.0.0.1:{port}" in line["message"] and line["exit_code"] == 5

    result = run_cli("run", str(SIM_CONFIG), *small_station(tmp_path, **{
        "storage.min_free_gb": "1e9"}))
    assert result.returncode == 4, result.stdout + result.stderr
    last = json.loads(result.stdout.splitlines()[-1])
    assert last["event"] == "disk_full" and "min_free_gb" in last["message"]
    assert not list(tmp_path.rglob("*.h5*"))


def _seconds_between(a: str, b: str) -> float:
    import datetime as dt

    return (dt.datetime.fromisoformat(b) - dt.datetime.fromisoformat(a)).total_seconds()
