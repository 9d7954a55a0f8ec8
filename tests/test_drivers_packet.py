"""The vectorized packet parser against per-packet reference code (struct, zlib, binascii)."""

from __future__ import annotations

import binascii
import struct
import zlib
from functools import reduce

import numpy as np
import pytest

from drivers.packet import PacketFormat, PacketStream
from schemas.devices import PacketSpec
from tests.conftest import SIM_CONFIG, run_cli

REFERENCE = {  # DESIGN.md's definitions, one packet at a time
    "xor8": ("B", lambda b: reduce(lambda x, y: x ^ y, b, 0)),
    "sum8": ("B", lambda b: sum(b) & 0xFF),
    "crc16-ccitt": ("H", lambda b: binascii.crc_hqx(b, 0xFFFF)),
    "crc32": ("I", zlib.crc32),
}


def spec(checksum: str, byteorder: str = "little") -> PacketSpec:
    return PacketSpec(header="AA55", byteorder=byteorder, checksum=checksum, fields=[
        {"name": "seq", "dtype": "u2", "role": "sequence"},
        {"name": "t_us", "dtype": "u4", "role": "device_time", "unit": "us"},
        {"name": "force", "dtype": "f4", "count": 3},
        {"name": "temp", "dtype": "i2", "scale": 0.01, "unit": "degC"},
    ])


def reference_packets(n: int, checksum: str, byteorder: str, rng) -> tuple[bytes, dict]:
    """Packets built with struct, as a device's firmware would."""
    order = "<" if byteorder == "little" else ">"
    body = struct.Struct(order + "HI3fh")
    # a device clock: 1 ms a packet from a random start (the parser rejects a clock that jumps)
    t_us = (int(rng.integers(0, 2**32)) + np.arange(n, dtype=np.int64) * 1000) % 2**32
    values = {"seq": np.arange(n) % 65536, "t_us": t_us,
              "force": rng.normal(size=(n, 3)).astype(np.float32),
              "temp": rng.integers(-3000, 3000, n)}
    out = bytearray()
    for i in range(n):
        payload = body.pack(int(values["seq"][i]), int(values["t_us"][i]),
                            *values["force"][i].tolist(), int(values["temp"][i]))
        out += b"\xaa\x55" + payload
        if checksum != "none":
            code, func = REFERENCE[checksum]
            out += struct.pack(order + code, func(payload))
    return bytes(out), values


def feed_in_pieces(stream: PacketStream, data: bytes, rng, largest: int = 500):
    out, pos = [], 0
    while pos < len(data):
        k = int(rng.integers(1, largest))
        out.append(stream.feed(data[pos : pos + k]))
        pos += k
    return out


@pytest.mark.parametrize("byteorder", ["little", "big"])
@pytest.mark.parametrize("checksum", ["none", "xor8", "sum8", "crc16-ccitt", "crc32"])
def test_matches_struct_reference_across_torn_reads(checksum, byteorder):
    rng = np.random.default_rng(1)
    data, values = reference_packets(3000, checksum, byteorder, rng)
    stream = PacketStream(spec(checksum, byteorder))
    assert stream.format.size * 3000 == len(data)
    parts = feed_in_pieces(stream, data, rng)
    seq = np.concatenate([p.seq for p in parts])
    np.testing.assert_array_equal(seq, np.arange(3000))
    np.testing.assert_array_equal(np.concatenate([p.values["force"] for p in parts]),
                                  values["force"])
    temp = np.concatenate([p.values["temp"] for p in parts])[:, 0]
    np.testing.assert_allclose(temp, values["temp"] * 0.01)
    device = np.concatenate([p.device_ns for p in parts])
    np.testing.assert_array_equal(device, (values["t_us"][0] + np.arange(3000) * 1000) * 1000)
    assert stream.failures == 0 and stream.skipped_bytes == 0


def test_encode_matches_the_reference():
    rng = np.random.default_rng(2)
    data, values = reference_packets(50, "crc16-ccitt", "big", rng)
    fmt = PacketFormat(spec("crc16-ccitt", "big"))
    encoded = fmt.encode({**values, "temp": values["temp"]}, 50)
    assert encoded.tobytes() == data


def test_resyncs_after_junk_and_counts_corrupt_packets():
    rng = np.random.default_rng(3)
    data, _ = reference_packets(1000, "crc16-ccitt", "little", rng)
    size = len(data) // 1000
    rows = np.frombuffer(data, np.uint8).reshape(1000, size).copy()
    bad = np.array([10, 11, 500, 501, 502, 777])
    rows[bad, 5] ^= 0x40  # a flipped bit in the payload
    rows[300, 0] = 0x00  # a damaged header
    junk = bytes(rng.integers(0, 256, 7, dtype=np.uint8))
    stream = PacketStream(spec("crc16-ccitt"))
    parts = feed_in_pieces(stream, junk + rows.tobytes(), rng, largest=3000)
    seq = np.concatenate([p.seq for p in parts])
    expected = np.setdiff1d(np.arange(1000), [*bad, 300])
    np.testing.assert_array_equal(seq, expected)
    assert stream.failures == len(bad) + 1  # the torn 7 junk bytes at the start are not a packet
    assert stream.skipped_bytes == 7 + (len(bad) + 1) * size


def test_sequence_and_device_time_unwrap():
    rng = np.random.default_rng(4)
    n = 70_000  # the u2 sequence wraps once
    fmt = PacketFormat(spec("none"))
    t_us = (np.arange(n, dtype=np.int64) * 100_000 + 2**32 - 50_000) % 2**32  # u4 wraps too
    data = fmt.encode({"seq": np.arange(n) % 65536, "t_us": t_us, "force": np.zeros((n, 3)),
                       "temp": np.zeros(n)}, n).tobytes()
    stream = PacketStream(spec("none"))
    parts = feed_in_pieces(stream, data, rng, largest=200_000)
    np.testing.assert_array_equal(np.concatenate([p.seq for p in parts]), np.arange(n))
    device = np.concatenate([p.device_ns for p in parts])
    assert np.all(np.diff(device) == 100_000_000)


@pytest.mark.parametrize("change, message", [
    ('header: "AA55"', "not hex bytes"),
    ("dtype: u2, role: sequence", "not a numpy dtype"),
    ("checksum: crc16-ccitt", "crc16-ccitt"),
])
@pytest.mark.slow
def test_bad_packet_declarations_are_one_line_errors(tmp_path, change, message):
    good = {
        'header: "AA55"': 'header: "AZ55"',
        "dtype: u2, role: sequence": "dtype: u17, role: sequence",
        "checksum: crc16-ccitt": "checksum: crc8",
    }
    station = SIM_CONFIG.read_text().replace(
        "    link: pty ", "    packet:\n"
        '      header: "AA55"\n'
        "      fields:\n"
        "        - {name: seq, dtype: u2, role: sequence}\n"
        "        - {name: value, dtype: f4, count: 6}\n"
        "      checksum: crc16-ccitt\n"
        "    link: pty ", 1)
    ok = tmp_path / "ok.yaml"
    ok.write_text(station)
    assert run_cli("config", "check", str(ok)).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(station.replace(change, good[change]))
    result = run_cli("config", "check", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "devices[ft].packet" in line and message in line


def test_lines_skip_bad_lines_and_stay_bounded():
    from drivers.lines import MAX_LINE, LineStream
    from schemas.devices import LineSpec

    stream = LineStream(LineSpec(format="kv", separator=" ", fields=[
        {"name": "seq", "role": "sequence"}, {"name": "f", "count": 2, "keys": ["fx", "fy"]}]))
    text = (b"x=3 torn\n"  # the torn first line after connecting: skipped, not a failure
            b"seq=1 fx=0.5 fy=-1e-3\n"
            b"seq=2 fx=0.5\n"  # a field missing
            b"seq=3 fx=abc fy=1\n"  # not a number
            b"\n"
            b"seq=4 fx=1.25 fy=2\r\n"
            b"seq=5 fx=")
    decoded = stream.feed(text)
    np.testing.assert_array_equal(decoded.seq, [1, 4])
    np.testing.assert_array_equal(decoded.values["f"], [[0.5, -1e-3], [1.25, 2.0]])
    assert stream.failures == 2
    decoded = stream.feed(b"7 fy=8\n")  # the line torn across reads
    np.testing.assert_array_equal(decoded.values["f"], [[7.0, 8.0]])
    stream.feed(b"z" * (MAX_LINE + 1))
    assert stream.failures == 3 and len(stream._tail) == 0
