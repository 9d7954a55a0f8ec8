"""The device rate the station reports: the device's, however late the station reads it."""

from __future__ import annotations

import numpy as np
import pytest

from collector.capture import HEALTH_WINDOW_NS, StreamHealth
from drivers.base import StreamInfo

RATE_HZ = 1000.0
PERIOD_NS = int(1e9 / RATE_HZ)


def feed(health: StreamHealth, read_ns: np.ndarray) -> None:
    """Reads at `read_ns`, each handing out every sample that arrived (at 1 kHz) before it."""
    arrived = 0
    for t in read_ns:
        upto = int(t // PERIOD_NS)  # samples arrive at 0, 1 ms, 2 ms, ...
        newest = upto * PERIOD_NS if upto >= 0 else None
        health.add(int(t), upto + 1 - arrived, newest, 0.0)
        arrived = upto + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rate_is_the_devices_however_late_the_reads(seed):
    rng = np.random.default_rng(seed)
    # a loaded host: reads every 20 ms, each up to 300 ms late, the last one late too
    read_ns = np.sort(np.arange(0, 3_000_000_000, 20_000_000)
                      + rng.integers(0, 300_000_000, 150)) + 137_000
    health = StreamHealth(StreamInfo("ft", "sensor", RATE_HZ, {}))
    feed(health, read_ns)
    rate = health.report(int(read_ns[-1]), connected=True)["rate_hz"]
    assert rate == pytest.approx(RATE_HZ, rel=1e-9)


def test_no_samples_in_the_window_is_no_rate():
    health = StreamHealth(StreamInfo("ft", "sensor", RATE_HZ, {}))
    feed(health, np.array([10_000_000, 30_000_000]))
    assert health.report(30_000_000 + 2 * HEALTH_WINDOW_NS, connected=True)["rate_hz"] == 0.0
