"""An episode's efficiency describes its own data; start-up, set-up/commit and resets are the
session's losses; record, inspect and report say the same losses in the same words."""

from __future__ import annotations

import re

import h5py
import pytest

from collector.daemon.accounts import fold, read_session
from tests.conftest import SIM_CONFIG, run_cli, short_run
from tests.daemon_helpers import small_cameras

EPISODES = 3


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("record")
    sets = [arg for item in [*small_cameras(), "devices.cam_high.faults.drop_rate=0.1"]
            for arg in ("--set", item)]
    result = run_cli("record", str(SIM_CONFIG), "--episodes", str(EPISODES), "--engine",
                     "inline", "--quiet", *short_run(out, 1.0), *sets)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def stored_accounts(path) -> dict:
    with h5py.File(path) as f:
        return dict(f["efficiency"].attrs)


def test_each_episode_is_charged_only_its_own_losses(recorded):
    out, _ = recorded
    paths = sorted(out.rglob("*.h5"))
    assert len(paths) == EPISODES
    for path in paths:
        a = stored_accounts(path)
        # nothing disconnected: the episode was available all of its time, start-up or not
        assert a["availability"] == 1.0, (path, a)
        assert a["scheduled_s"] == a["recording_s"]
        assert not [k for k in a if k.startswith("loss_seconds.")], a
        assert a["efficiency"] == pytest.approx(a["performance"] * a["quality"])


def test_the_session_books_start_up_set_up_and_resets_and_balance(recorded):
    out, _ = recorded
    [path] = out.rglob("sessions/*.jsonl")
    records = read_session(path)
    books = fold(records)
    episodes = [r for r in records if r.kind == "episode"]
    assert len(episodes) == EPISODES and records[-1].kind == "shutdown"
    causes = [r.cause for r in records if r.kind == "interval"]
    assert causes.count("startup") == 1 and causes.count("reset") == EPISODES - 1
    assert causes.count("episode_overhead") == EPISODES
    lost = books.loss_seconds
    assert lost["startup"] > 0 and lost["reset"] > 0 and lost["episode_overhead"] > 0
    # the session is the sum of its parts, each second once
    assert books.scheduled_s == pytest.approx(sum(r.seconds for r in records))
    assert books.recording_s == pytest.approx(sum(r.accounts.recording_s for r in episodes))
    assert books.recording_s + sum(lost.values()) == pytest.approx(books.scheduled_s)
    assert books.availability == pytest.approx(books.recording_s / books.scheduled_s)
    assert books.availability < 1.0
    assert books.expected_samples == sum(r.accounts.expected_samples for r in episodes)


def test_record_inspect_and_report_say_the_same_losses(recorded):
    out, stdout = recorded
    # each episode: "  <path>  N ticks  S s  outcome  held H", then factors, then losses
    blocks = re.findall(r"^  (\S+\.h5)  \d+ ticks .* held (\d+)\n    (.+)\n    (.+)$",
                        stdout, re.M)
    assert len(blocks) == EPISODES, stdout
    held_total = 0
    for path, held, factors, losses in blocks:
        shown = run_cli("inspect", path)
        assert shown.returncode == 0, shown.stderr
        assert factors in shown.stdout and losses in shown.stdout, (losses, shown.stdout)
        assert f"held      {held} grid samples" in shown.stdout
        a = stored_accounts(path)
        with h5py.File(path) as f:
            assert int(held) == sum(int(f["quality"][s]["missing"][:].sum())
                                    for s in f["quality"])
        missing = int(a["expected_samples"] - a["delivered_samples"])
        assert losses.startswith(f"missing {missing} of {int(a['expected_samples'])}")
        dropped = int(a.get("loss_samples.dropped:cam_high", 0))
        if dropped:
            assert f"dropped:cam_high {dropped}" in losses
        held_total += int(held)
    assert held_total > 0  # the injected drops were seen at all

    session = re.search(r"^session \S+: (.+)\n  (.+)$", stdout, re.M)
    assert session, stdout
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert f"losses: {session.group(2)}" in report.stdout, (session.group(2), report.stdout)
    assert "startup" in session.group(2) and "reset" in session.group(2)
