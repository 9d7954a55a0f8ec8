"""The daemon's `/status` and `/metrics` say the same losses, in the same words, as `report`
over the session file the daemon wrote: a real `collector run`, read over HTTP."""

from __future__ import annotations

import re
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import run_cli
from tests.daemon_helpers import Daemon, small_station


def scrape(daemon: Daemon) -> dict[tuple[str, tuple], float]:
    code, text = daemon.request("GET", "/metrics")
    assert code == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(str(text)) for s in family.samples}


@pytest.mark.slow
def test_status_metrics_and_report_say_the_same_losses(tmp_path):
    daemon = Daemon(small_station(tmp_path, **{"devices.cam_high.faults.drop_rate": "0.1",
                                               "episode.duration_s": "2"}), "--mode", "manual")
    try:
        daemon.wait_for(lambda s: s["state"] == "idle", 180, "ready")
        for n in (1, 2):
            code, body = daemon.post("/episodes/start")
            assert code == 202, body
            daemon.wait_for(lambda s, n=n: s["state"] == "idle"
                            and sum(s["episodes"].values()) == n, 120, f"episode {n} committed")
        before = time.monotonic()
        status = daemon.status()
        metrics = scrape(daemon)
        apart_s = time.monotonic() - before  # idle time passes between the two reads
        code, _ = daemon.post("/shutdown")
        assert code == 202
        assert daemon.wait(timeout=120) == 0, daemon.stderr_tail()
    finally:
        daemon.kill()

    totals, books = status["losses"], status["session"]
    assert totals["missing"] > 0  # the injected drops were seen at all
    for kind in ("missing", "flagged", "discarded"):
        assert metrics[("collector_session_samples", (("kind", kind),))] == totals[kind], kind
    for kind in ("expected", "delivered", "good"):
        assert metrics[("collector_session_samples", (("kind", kind),))] == books[f"{kind}_samples"]
    samples = {dict(labels)["cause"]: v for (name, labels), v in metrics.items()
               if name == "collector_loss_samples"}
    assert samples == {k: v for k, v in books["loss_samples"].items() if v}
    seconds = {dict(labels)["cause"]: v for (name, labels), v in metrics.items()
               if name == "collector_loss_seconds"}
    assert seconds.keys() == {k for k, v in books["loss_seconds"].items() if v}
    for cause, value in seconds.items():
        assert abs(value - books["loss_seconds"][cause]) <= apart_s + 1e-6, cause

    # the session file, read by `report` after the shutdown: the same sample losses, the
    # same words (time went on to the shutdown, so only the sample figures are compared)
    report = run_cli("report", str(tmp_path))
    assert report.returncode == 0, report.stderr
    line = re.search(r"^losses: (.+)$", report.stdout, re.M)
    assert line, report.stdout
    expected = books["expected_samples"]
    assert line.group(1).startswith(f"missing {totals['missing']} of {expected}"), line.group(1)
    assert f"flagged {totals['flagged']}" in line.group(1)
    assert f"discarded {totals['discarded']}" in line.group(1)
    for cause, n in books["loss_samples"].items():
        if n:
            assert f"{cause} {n}" in line.group(1), (cause, line.group(1))
