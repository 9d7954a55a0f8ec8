"""The device clock fit recovers drift and offset from jittered arrival times."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from drivers.clock import ClockMap
from drivers.serial_port import ReadPacer
from schemas.devices import SerialSensorConfig

MS = 1_000_000


def simulate(seconds: float, rate_hz: float, drift_ppm: float, offset_ms: float,
             jitter_ms: float, seed: int = 0, burst: int = 1):
    """Host capture times, the device's clock for them, and jittered arrival times."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz)
    host = 5_000_000_000 + (np.arange(n) * (1e9 / rate_hz)).astype(np.int64)
    device = host + (host * drift_ppm * 1e-6).astype(np.int64) + int(offset_ms * MS)
    arrival = host + (np.abs(rng.normal(0, jitter_ms, n)) * MS).astype(np.int64)
    if burst > 1:  # samples reach the host in bursts: each burst arrives with its last sample
        groups = np.arange(n) // burst
        last = np.minimum((groups + 1) * burst - 1, n - 1)
        arrival = arrival[last]
    return host, device, arrival


def run_online(clock: ClockMap, device, arrival, chunk: int) -> np.ndarray:
    """Map each chunk with the fit as it stood when that chunk was read, as the driver does."""
    out = np.empty_like(device)
    for s in range(0, device.size, chunk):
        clock.update(device[s : s + chunk], arrival[s : s + chunk])
        out[s : s + chunk] = clock.map(device[s : s + chunk])
    return out


def test_recovers_50ppm_drift_and_3ms_offset_within_100us():
    host, device, arrival = simulate(60, 1000, drift_ppm=50, offset_ms=3, jitter_ms=1)
    raw_error = np.abs(arrival - host)
    assert raw_error.max() > 2 * MS  # the jitter the fit has to remove
    clock = ClockMap()
    mapped = run_online(clock, device, arrival, chunk=100)
    error = np.abs(mapped - host)
    assert error.max() < 0.1 * MS, error.max() / MS
    assert abs(clock.drift_ppm + 50) < 1  # host runs slower than the device's clock by 50 ppm


def test_bursty_arrivals_and_a_clock_restart():
    host, device, arrival = simulate(20, 1000, drift_ppm=-30, offset_ms=-7, jitter_ms=2,
                                     seed=1, burst=10)
    clock = ClockMap()
    mapped = run_online(clock, device, arrival, chunk=100)
    assert np.abs(mapped - host)[5000:].max() < 0.1 * MS  # after a few seconds of bins
    # the device reboots: its clock starts again from zero; the fit follows within a second
    host2 = host[-1] + 1_000_000 + (np.arange(5000) * 1e6).astype(np.int64)
    device2 = host2 - host2[0]
    mapped2 = run_online(clock, device2, host2 + 200_000, chunk=100)
    assert np.abs(mapped2 - host2)[1000:].max() < 0.3 * MS


def test_a_starved_reader_does_not_throw_the_fit_away():
    """Arrivals that come 2 s late (the reader thread was starved) are delay, not a new clock."""
    host, device, arrival = simulate(10, 1000, drift_ppm=20, offset_ms=1, jitter_ms=0.5)
    arrival[6000:6100] += 2_000_000_000
    clock = ClockMap()
    mapped = run_online(clock, device, arrival, chunk=100)
    assert np.abs(mapped - host)[3000:].max() < 0.1 * MS


def paced_reads(arrival: np.ndarray, interval_s: float, seed: int = 0) -> np.ndarray:
    """When a reader paced by `ReadPacer` picks each sample up. After a read the reader waits
    out the pacer's next interval, then reads at once what has arrived, or waits for the next
    arrival and reads it then (as `capture_packets` does: the pacer's wait, then `select`)."""
    pacer = ReadPacer(interval_s, threading.Event(), seed)
    stamps = np.empty_like(arrival)
    i, now = 0, int(arrival[0])
    while i < arrival.size:
        now = max(now, int(arrival[i]))  # nothing there yet: select waits for the next bytes
        j = int(np.searchsorted(arrival, now, side="right"))  # all that arrived by now
        stamps[i:j] = now
        i = j
        now += int(pacer.next_interval_s() * 1e9)
    return stamps


@pytest.mark.parametrize("burst", [1, 10])
def test_paced_reads_keep_the_fit_within_0_15_ms(burst):
    """A paced reader stamps samples later than they arrived (up to 7.5 ms at the default
    interval); the fit keeps only the least delayed per bin, and the pacer's irregular
    moments catch samples just after arrival in every bin, whether packets come alone (a 1 ms
    latency timer: ~0.07 ms off) or in bursts of 10 ms (no read waits: as if read on arrival)."""
    interval_s = SerialSensorConfig.model_fields["read_interval_ms"].default / 1000
    host, device, arrival = simulate(30, 1000, drift_ppm=40, offset_ms=-2, jitter_ms=0.3,
                                     seed=2, burst=burst)
    stamped = paced_reads(arrival, interval_s)
    if burst == 1:
        assert np.median(stamped - arrival) > 1 * MS  # the delay pacing adds to the stamps
    mapped = run_online(ClockMap(), device, stamped, chunk=10)
    assert np.abs(mapped - host)[5000:].max() < 0.15 * MS
