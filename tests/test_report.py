"""`collector report DIR`: session accounts (or episodes' own) as a table, JSON and a chart."""

from __future__ import annotations

import datetime as dt
import json

import h5py
import pytest

from collector.cli.report import find_sessions, session_figure
from collector.config import load_station
from collector.daemon.accounts import SessionBook, session_path
from collector.station import Station
from tests.conftest import SIM_CONFIG, run_cli, short_run
from tests.daemon_helpers import small_cameras


@pytest.fixture(scope="module")
def one_episode(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    config = load_station(SIM_CONFIG, [f"station.output_dir={out}", "engine.kind=inline",
                                       "episode.duration_s=1", "episode.task_success_rate=0",
                                       *small_cameras()])
    station = Station(config)
    try:
        [summary] = station.record(1)
    finally:
        station.close()
    return out, station.output, summary


def test_report_of_a_session_file(one_episode):
    out, station_dir, summary = one_episode
    book = SessionBook(station_dir, "day1", "sim-01")
    now = dt.datetime.now(dt.timezone.utc)
    book.interval("startup", 2.0, now)
    book.episode(summary, now, "")
    book.interval("reset", 1.0, now)
    with open(book.path, "a") as fh:
        fh.write('{"format": "collector.session", "kind": "epi')  # torn by a crash: skipped

    shown = run_cli("report", str(out), "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    [session] = report["sessions"]
    assert session["session_id"] == "day1" and session["episodes"] == {"failure": 1}
    total = report["total"]
    ep = summary.accounts  # the episode's own time only: start-up is the session's
    assert "startup" not in ep.loss_seconds and ep.scheduled_s == ep.recording_s
    scheduled = 3.0 + ep.scheduled_s
    assert total["scheduled_s"] == pytest.approx(scheduled)
    assert total["loss_seconds"]["startup"] == pytest.approx(2.0)
    assert total["loss_seconds"]["reset"] == pytest.approx(1.0)
    assert total["availability"] == pytest.approx(ep.availability * ep.scheduled_s / scheduled)
    assert total["quality"] == 0.0 and total["loss_samples"]["task_failure"] > 0

    chart = out / "chart.png"
    table = run_cli("report", str(book.path), "--plot", str(chart))
    assert table.returncode == 0, table.stderr
    assert "day1" in table.stdout and "startup" in table.stdout
    assert "task_failure" in table.stdout
    data = chart.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    # each factor is told apart from the others, with the value the table prints: the lines
    # of coinciding factors (efficiency = availability x 100% x 100%) lie on one another
    fig = session_figure(find_sessions(out))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"{name} {total[name] * 100:.1f}%" for name in
                      ("availability", "performance", "quality", "efficiency")]
    styles = {(line.get_linestyle(), line.get_linewidth()) for line in fig.axes[0].get_lines()}
    assert len(styles) == 4


def test_a_damaged_session_file_is_named(tmp_path):
    path = session_path(tmp_path / "sim-01", "bad")
    path.parent.mkdir(parents=True)
    path.write_text('{"not": "a record"}\n{"also": "bad"}\n')
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 1
    assert f"{path}:1" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_report_of_a_folder_without_sessions_reads_the_episodes(tmp_path):
    small = [arg for item in small_cameras() for arg in ("--set", item)]
    recorded = run_cli("record", str(SIM_CONFIG), "--episodes", "2", "--engine", "inline",
                       *short_run(tmp_path, 1.0), *small)
    assert recorded.returncode == 0, recorded.stderr
    [session] = tmp_path.rglob("sessions/*.jsonl")
    session.unlink()  # e.g. episodes copied from a station without its session files
    shown = run_cli("report", str(tmp_path), "--json")
    assert shown.returncode == 0, shown.stderr
    total = json.loads(shown.stdout)["total"]
    stored = []
    for path in sorted(tmp_path.rglob("*.h5")):
        with h5py.File(path) as f:
            stored.append(dict(f["efficiency"].attrs))
    assert total["scheduled_s"] == pytest.approx(sum(a["scheduled_s"] for a in stored))
    assert total["good_samples"] == sum(int(a["good_samples"]) for a in stored)
    assert total["recording_s"] == pytest.approx(sum(a["recording_s"] for a in stored))


def test_nothing_to_report_is_a_clear_error(tmp_path):
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 1
    assert "no session accounts" in result.stderr and "Traceback" not in result.stderr
