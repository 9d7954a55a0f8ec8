"""Injected faults show up in the daemon's accounts as what they are, each under its cause.

How each fault maps onto the factors (collector/efficiency.py), so that nothing is counted twice:
- a camera disconnect is downtime: availability loses its seconds (`disconnect:cam_high`), and
  the grid ticks of that time are neither expected nor delivered for performance;
- dropped frames leave grid ticks without a frame: performance (`dropped:<camera>`). Drops of
  the 1 kHz sensor and the 100 Hz arm cost no grid sample (their neighbours cover them);
- a failed task makes its episode's samples useless: quality (`task_failure`).
"""

from __future__ import annotations

import signal

import pytest

from collector.daemon.accounts import fold, read_session
from tests.daemon_helpers import CAMERAS, Daemon, small_station

DROP_RATE = 0.02
SUCCESS_RATE = 0.8
STREAMS = 6  # three cameras, force/torque, arm, and the recorded action stream


def faulty_station(tmp_path, duration_s: float, disconnect_at_s: float,
                   disconnect_for_s: float) -> list[str]:
    extra = {"episode.duration_s": str(duration_s), "episode.reset_s": "0.3",
             "episode.task_success_rate": str(SUCCESS_RATE),
             "devices.cam_high.faults.disconnect_at_s": str(disconnect_at_s),
             "devices.cam_high.faults.disconnect_for_s": str(disconnect_for_s),
             # the fault is timed from the devices' open, not the first episode's
             "engine.warm_up_s": "0"}
    for device in (*CAMERAS, "ft", "arm"):
        extra[f"devices.{device}.faults.drop_rate"] = str(DROP_RATE)
    return small_station(tmp_path, **extra)


def collect(tmp_path, episodes: int, sets: list[str]):
    """Run the daemon in auto mode for exactly `episodes` episodes, then SIGTERM it."""
    daemon = Daemon(sets, "--session", "faults")
    try:
        # Pause while the last episode records: it is finished, and no further one starts.
        daemon.wait_for(lambda s: s["state"] == "recording"
                        and sum(s["episodes"].values()) == episodes - 1,
                        timeout=episodes * 30, what=f"episode {episodes} recording")
        assert daemon.post("/pause")[0] == 202
        daemon.wait_for(lambda s: s["state"] == "paused", timeout=60, what="paused")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0, daemon.stderr_tail()
    finally:
        daemon.kill()
    [path] = tmp_path.rglob("sessions/*.jsonl")
    records = read_session(path)
    return records, fold(records)


def check_books(records, books, episodes: int, disconnect_s: float, tolerance_s: float) -> dict:
    outcomes = [r.outcome for r in records if r.kind == "episode"]
    assert len(outcomes) == episodes
    assert outcomes.count("failure") == round(episodes * (1 - SUCCESS_RATE))

    # availability: the disconnect, in seconds, beside the other causes; the books balance
    lost = books.loss_seconds
    assert lost["disconnect:cam_high"] == pytest.approx(disconnect_s, abs=tolerance_s)
    available = books.availability * books.scheduled_s
    assert available + sum(lost.values()) == pytest.approx(books.scheduled_s)
    assert books.availability == pytest.approx(
        1 - sum(lost.values()) / books.scheduled_s)

    # performance: dropped frames, by camera; the down camera's missing frames are not here
    samples = books.loss_samples
    per_camera = books.expected_samples / STREAMS
    dropped = {cam: samples.get(f"dropped:{cam}", 0) for cam in CAMERAS}
    assert all(dropped.values()), samples
    performance_losses = sum(v for k, v in samples.items()
                             if k.split(":")[0] in ("dropped", "overflow", "sync_miss"))
    assert books.performance == pytest.approx(1 - performance_losses / books.expected_samples)

    # quality: the failed episodes' samples, and nothing else was injected
    assert samples["task_failure"] > 0
    flagged = sum(v for k, v in samples.items() if k.split(":")[0] not in (
        "dropped", "overflow", "sync_miss", "task_failure", "rejected", "aborted"))
    assert books.quality == pytest.approx(
        1 - (samples["task_failure"] + flagged) / books.delivered_samples)
    return {"drop_share": sum(dropped.values()) / (3 * per_camera),
            "performance_from_drops": 1 - sum(dropped.values()) / books.expected_samples,
            "sync_miss_share": sum(v for k, v in samples.items() if k.startswith("sync_miss"))
            / books.expected_samples}


@pytest.mark.slow
def test_injected_faults_are_each_charged_to_their_cause(tmp_path):
    """Short: 5 episodes of 2.5 s, a 1.5 s camera disconnect in the first."""
    records, books = collect(tmp_path, 5, faulty_station(tmp_path, 2.5, 0.8, 1.5))
    shares = check_books(records, books, 5, disconnect_s=1.5, tolerance_s=0.5)
    assert shares["drop_share"] == pytest.approx(DROP_RATE, abs=0.012)


@pytest.mark.slow
def test_efficiency_factors_match_the_injected_faults(tmp_path):
    """Acceptance: a 5 s camera disconnect, 2% drops, 20% task failure -> within 1 point."""
    records, books = collect(tmp_path, 20, faulty_station(tmp_path, 8.0, 2.0, 5.0))
    shares = check_books(records, books, 20, disconnect_s=5.0,
                         tolerance_s=0.01 * books.scheduled_s)
    # availability: the disconnect's share of the scheduled time, within 1 point
    assert books.loss_seconds["disconnect:cam_high"] / books.scheduled_s == pytest.approx(
        5.0 / books.scheduled_s, abs=0.01)
    # performance: 2% of the camera frames (3 of 6 streams) -> 1 - 0.02 * 3/6
    assert shares["drop_share"] == pytest.approx(DROP_RATE, abs=0.01)
    assert shares["performance_from_drops"] == pytest.approx(1 - DROP_RATE * 3 / STREAMS,
                                                             abs=0.01)
    # A loaded machine adds losses nobody injected: ticks the starved reader threads missed.
    # They are named (sync_miss:<stream>) and set apart; what remains is the injection.
    print(f"factors A {books.availability:.4f} P {books.performance:.4f} Q {books.quality:.4f}"
          f"; sync misses {shares['sync_miss_share']:.4f} of expected samples")
    assert books.performance + shares["sync_miss_share"] == pytest.approx(
        1 - DROP_RATE * 3 / STREAMS, abs=0.01)
    # quality: 20% of the episodes failed -> 80% of the delivered samples are good
    assert books.quality == pytest.approx(SUCCESS_RATE, abs=0.01)
