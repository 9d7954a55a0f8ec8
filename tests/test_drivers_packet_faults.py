"""The packet parser under attack: any byte stream, device resets, corrupt packets that pass an
8-bit checksum, runs of header bytes with no checksum; and the real driver on a pty through a
device reset."""

from __future__ import annotations

import os
import tty
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.counters import MAX_DEVICE_GAP_S
from drivers.packet import PacketFormat, PacketStream
from drivers.serial_sensor import SerialSensor
from schemas.devices import PacketSpec, SerialSensorConfig
from tests.conftest import wait_until

CHECKSUMS = ["none", "xor8", "sum8", "crc16-ccitt", "crc32"]
PERIOD_US = 1000  # the device's clock advances 1 ms a packet


def spec(checksum: str = "crc16-ccitt") -> PacketSpec:
    return PacketSpec(header="AA55", checksum=checksum, fields=[
        {"name": "seq", "dtype": "u2", "role": "sequence"},
        {"name": "t_us", "dtype": "u4", "role": "device_time", "unit": "us"},
        {"name": "value", "dtype": "f4", "count": 2},
    ])


def packets(checksum: str, seq0: int, t0_us: int, n: int, value0: int = 0) -> np.ndarray:
    """`n` packets of a device whose counters start at (seq0, t0); value[0] is a global index."""
    i = np.arange(n, dtype=np.int64)
    return PacketFormat(spec(checksum)).encode({
        "seq": (seq0 + i) % 2**16, "t_us": (t0_us + i * PERIOD_US) % 2**32,
        "value": np.stack([value0 + i, np.zeros(n)], axis=1).astype(np.float32)}, n)


def feed_pieces(stream: PacketStream, data: bytes, cuts: list[int]) -> list:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [stream.feed(data[a:b]) for a, b in pairwise(edges)]


def joined(parts: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.concatenate([p.seq for p in parts]), np.concatenate([p.device_ns for p in parts]),
            np.concatenate([p.values["value"][:, 0] for p in parts]))


def assert_monotonic_without_wraps(seq: np.ndarray, device_ns: np.ndarray) -> None:
    """No step backwards and none by a wrap (65 536 packets, 4295 s of a u4 us clock)."""
    assert np.all(np.diff(seq) >= 1) and np.all(np.diff(seq) <= 2**16 // 4)
    assert np.all(np.diff(device_ns) >= 0)
    assert np.all(np.diff(device_ns) <= MAX_DEVICE_GAP_S * 1e9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(checksum=st.sampled_from(CHECKSUMS), data=st.binary(max_size=4000),
       cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_any_bytes_never_raise_nor_yield_a_failing_checksum(checksum, data, cuts):
    stream = PacketStream(spec(checksum))
    fmt = stream.format
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in pairwise(edges):
        records = stream.records(data[a:b])
        rows = records.view(np.uint8).reshape(-1, fmt.size)
        assert fmt.has_header(rows).all() and fmt.valid(rows).all()
        decoded = stream.decode(records)
        assert len(decoded) <= len(records) + 1  # at most the one packet held back before
    assert stream.failures >= 0 and stream.skipped_bytes <= len(data)


@settings(max_examples=100, deadline=None)
@given(checksum=st.sampled_from(CHECKSUMS[1:]),
       resets=st.lists(st.tuples(st.integers(5, 400), st.integers(0, 2**16 - 1),
                                 st.integers(0, 2**32 - 1)), min_size=1, max_size=4),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=40),
       cuts=st.lists(st.integers(0, 10**6), max_size=10))
def test_resets_and_corrupt_packets_never_shift_the_counters(checksum, resets, flips, cuts):
    """A device that restarts its counters (at any value) and a line that flips bytes: every
    sample keeps counters that only advance, never by a wrap; with a CRC and no flips each
    restart is counted and every packet but at most one per restart arrives."""
    blocks, total = [], 0
    for n, seq0, t0 in resets:
        blocks.append(packets(checksum, seq0, t0, n, value0=total))
        total += n
    rows = np.concatenate(blocks)
    raw = rows.reshape(-1).copy()
    for at, mask in flips:
        raw[at % raw.size] ^= mask
    stream = PacketStream(spec(checksum))
    seq, device, value = joined(feed_pieces(stream, raw.tobytes(), cuts))
    assert_monotonic_without_wraps(seq, device)
    if not flips and checksum.startswith("crc"):
        # Each restart is one event: a reset, or (where the packet after it happens to go on
        # from the old counters) its first packet judged corrupt. A last packet right after a
        # restart waits for the next read.
        boundaries = len(resets) - 1
        events = stream.resets + stream.failures
        real = sum(_restarted(a, b) for a, b in pairwise(resets))
        assert real - 1 <= events <= boundaries
        assert total - stream.failures - 1 <= len(seq) <= total - stream.failures
        assert np.all(np.diff(value) > 0)  # in order, never twice


def _restarted(before: tuple[int, int, int], after: tuple[int, int, int]) -> bool:
    """Whether a reset from `before`'s last packet to `after`'s first is visible at all: a
    device whose counters happen to go on as if nothing happened did not, for the data, reset."""
    n, seq0, t0 = before
    dseq = (after[1] - (seq0 + n - 1)) % 2**16
    dt = (after[2] - (t0 + (n - 1) * PERIOD_US)) % 2**32
    return not (1 <= dseq <= 2**16 // 4 and dt <= MAX_DEVICE_GAP_S * 1e6)


def test_a_device_reset_resynchronizes_the_counters_and_is_counted():
    # 500 packets near the top of both counters' range, then the device restarts at zero
    data = np.concatenate([packets("crc16-ccitt", 30_000, 2**32 - 200_000, 500),
                           packets("crc16-ccitt", 0, 0, 500, value0=500)]).tobytes()
    stream = PacketStream(spec())
    seq, device, value = joined(feed_pieces(stream, data, list(range(0, len(data), 997))))
    np.testing.assert_array_equal(seq, 30_000 + np.arange(1000))  # not shifted by 65 536
    t0_ns = (2**32 - 200_000) * 1000
    np.testing.assert_array_equal(device, t0_ns + np.arange(1000) * PERIOD_US * 1000)
    np.testing.assert_array_equal(value, np.arange(1000))
    assert stream.resets == 1 and stream.failures == 0


def test_a_corrupt_packet_that_passes_xor8_is_dropped_and_counted():
    rows = packets("xor8", 100, 5_000_000, 300)
    fmt = PacketFormat(spec("xor8"))
    # flipped bits that cancel in the xor: the sequence's top bit and a value's (32 768 ahead)...
    rows[150, 3] ^= 0x80
    rows[150, 9] ^= 0x80
    rows[200, 7] ^= 0x80  # ...and a device time 2147 s ahead, its checksum byte fixed up
    rows[200, -1] ^= 0x80
    assert fmt.valid(rows).all()
    stream = PacketStream(spec("xor8"))
    seq, _, value = joined(feed_pieces(stream, rows.tobytes(), [1000, 2000, 3010]))
    expected = np.setdiff1d(np.arange(300), [150, 200])
    np.testing.assert_array_equal(value, expected)
    np.testing.assert_array_equal(seq, 100 + expected)
    assert stream.failures == 2 and stream.resets == 0


def test_a_reset_in_the_last_packet_of_a_read_is_judged_with_the_next_read():
    first = packets("crc16-ccitt", 9000, 10**9, 100)
    after = packets("crc16-ccitt", 0, 0, 50, value0=100)
    stream = PacketStream(spec())
    a = stream.feed(np.concatenate([first, after[:1]]).tobytes())
    assert len(a) == 100  # the reset packet waits: it could still be a lone corrupt one
    b = stream.feed(after[1:].tobytes())
    np.testing.assert_array_equal(b.seq, 9100 + np.arange(50))
    np.testing.assert_array_equal(b.values["value"][:, 0], 100 + np.arange(50))
    assert stream.resets == 1


@pytest.mark.parametrize("junk", [b"\xaa\x55", b"\xaa"])
def test_a_long_run_of_header_bytes_without_checksum_then_clean_packets(junk):
    """64 KB of header bytes (one maximum serial read) is parsed (the benchmark holds its cost
    to that of clean data), and the packets after it arrive."""
    stream = PacketStream(spec("none"))
    run = junk * (65536 // len(junk))
    stream.feed(run)
    clean = packets("none", 7, 123_000, 200, value0=0).tobytes()
    decoded = stream.feed(clean)
    assert len(decoded) >= 190  # the packets overlapping the run's end may be lost
    np.testing.assert_array_equal(decoded.values["value"][-150:, 0], np.arange(50, 200))


def test_the_real_driver_on_a_pty_rides_through_a_device_reset():
    """pyserial on a pseudo-terminal: the device restarts mid-stream; the driver's samples keep
    their order and counters, the reset is counted and the clock fit starts over."""
    master, slave = os.openpty()
    tty.setraw(slave)
    config = SerialSensorConfig(name="ft", type="serial_sensor", port=os.ttyname(slave),
                                rate_hz=1000, packet=spec())
    device = SerialSensor(config)
    chunks = []
    try:
        with device:
            os.write(master, packets("crc16-ccitt", 40_000, 3_000_000_000, 400).tobytes())
            wait_until(lambda: chunks.append(device.read()) or _count(chunks) >= 400,
                       "the packets before the reset", poll_s=0.02)
            os.write(master, packets("crc16-ccitt", 0, 0, 400, value0=400).tobytes())
            wait_until(lambda: chunks.append(device.read()) or _count(chunks) >= 800,
                       "the packets after the reset", poll_s=0.02)
    finally:
        os.close(master)
        os.close(slave)
    seq = np.concatenate([c.seq for c in chunks])
    value = np.concatenate([c.fields["value"][:, 0] for c in chunks])
    np.testing.assert_array_equal(seq, 40_000 + np.arange(800))
    np.testing.assert_array_equal(value, np.arange(800))
    device_ns = np.concatenate([c.device_ns for c in chunks])
    assert_monotonic_without_wraps(seq, device_ns)
    assert device.counter_resets == 1
    assert sum(c.checksum_failures for c in chunks) == 0
    capture = np.concatenate([c.capture_ns for c in chunks])
    assert np.all(np.diff(capture) >= 0)


def _count(chunks: list) -> int:
    return sum(len(c.seq) for c in chunks)
