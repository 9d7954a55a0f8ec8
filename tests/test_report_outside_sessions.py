"""`collector report DIR` counts the episodes that no session file lists (salvaged by `recover`,
or recorded by an older `record` that kept no session file)."""

from __future__ import annotations

import datetime as dt
import json

import h5py
import pytest

from collector.config import load_station
from collector.daemon.accounts import SessionBook
from collector.station import Station
from tests.conftest import SIM_CONFIG, run_cli, short_run
from tests.daemon_helpers import small_cameras


@pytest.mark.slow
def test_episodes_outside_any_session_are_reported_with_their_figures(tmp_path):
    config = load_station(SIM_CONFIG, [f"station.output_dir={tmp_path}", "engine.kind=inline",
                                       "episode.duration_s=1", *small_cameras()])
    station = Station(config)
    try:
        [booked] = station.record(1)
    finally:
        station.close()
    book = SessionBook(station.output, "day1", "sim-01")
    now = dt.datetime.now(dt.timezone.utc)
    book.interval("startup", 2.0, now)
    book.episode(booked, now, "")
    small = [arg for item in small_cameras() for arg in ("--set", item)]
    recorded = run_cli("record", str(SIM_CONFIG), "--episodes", "1", "--engine", "inline",
                       *short_run(tmp_path, 1.0), *small)
    assert recorded.returncode == 0, recorded.stderr
    for session in tmp_path.rglob("sessions/record-*.jsonl"):  # as an older `record` left it
        session.unlink()
    [outside] = [p for p in tmp_path.rglob("*.h5") if str(p) != booked.path]
    with h5py.File(outside) as f:
        own = dict(f["efficiency"].attrs)

    shown = run_cli("report", str(tmp_path), "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    by_id = {s["session_id"]: s for s in report["sessions"]}
    assert set(by_id) == {"day1", "no session"}
    assert sum(by_id["day1"]["episodes"].values()) == 1  # the booked one, not counted twice
    alone = by_id["no session"]
    assert sum(alone["episodes"].values()) == 1
    assert alone["accounts"]["scheduled_s"] == pytest.approx(own["scheduled_s"])
    assert alone["accounts"]["good_samples"] == int(own["good_samples"])
    total = report["total"]
    assert total["scheduled_s"] == pytest.approx(
        2.0 + booked.accounts.scheduled_s + own["scheduled_s"])

    table = run_cli("report", str(tmp_path))
    assert table.returncode == 0, table.stderr
    assert "1 of them in no session file" in table.stdout
    assert any(line.startswith("no session") for line in table.stdout.splitlines())
