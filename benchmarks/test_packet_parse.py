"""Serial packet parsing: the vectorized parser vs a plain per-packet `struct` + checksum loop.

Both parse the same 10 MB of DESIGN.md's force/torque packets (AA55 header, u2 sequence,
u4 device time, 6 x f4, CRC-16/CCITT-FALSE) and must agree on every sample. The baseline is the
loop a driver would be written as: find the header, compute the declared checksum over the
packet in Python, `struct.unpack` the fields. A second baseline uses CPython's C CRC
(`binascii.crc_hqx`) for the checksum, the fastest a per-packet loop gets. Figures go to
benchmarks/results/packet_parse.json.

    python -m pytest benchmarks/test_packet_parse.py
"""

from __future__ import annotations

import binascii
import json
import platform
import struct
from pathlib import Path

import numpy as np
import pytest

from drivers.packet import CRC16_TABLE, PacketFormat, PacketStream
from schemas.devices import default_sensor_packet

MB = 10
RESULTS_FILE = Path(__file__).parent / "results" / "packet_parse.json"
SPEC = default_sensor_packet(6)
_TABLE = [int(x) for x in CRC16_TABLE]
_BODY = struct.Struct("<HI6fH")
results: dict[str, float] = {}


def crc16_python(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ b]
    return crc


def crc16_c(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def per_packet_parse(buf: bytes, crc=crc16_python) -> list[tuple]:
    """One packet at a time: header search, checksum, struct.unpack; resync by one byte."""
    out, i, size, end = [], 0, _BODY.size + 2, len(buf)
    while True:
        i = buf.find(b"\xaa\x55", i)
        if i < 0 or i + size > end:
            return out
        seq, t_us, *value, stored = _BODY.unpack_from(buf, i + 2)
        if crc(buf[i + 2 : i + size - 2]) == stored:
            out.append((seq, t_us, value))
            i += size
        else:
            i += 1


def vectorized_parse(buf: bytes):
    return PacketStream(SPEC).feed(buf)


@pytest.fixture(scope="module")
def packets() -> bytes:
    fmt = PacketFormat(SPEC)
    n = MB * 1_000_000 // fmt.size
    rng = np.random.default_rng(0)
    return fmt.encode({"seq": np.arange(n) % 65536, "t_us": np.arange(n) * 1000,
                       "value": rng.normal(size=(n, 6)).astype(np.float32)}, n).tobytes()


def _mb_per_s(benchmark, data: bytes) -> float:
    return len(data) / 1e6 / benchmark.stats.stats.median


def test_per_packet_struct_loop(benchmark, packets):
    out = benchmark.pedantic(per_packet_parse, args=(packets,), rounds=3, iterations=1)
    assert len(out) == len(packets) // (_BODY.size + 2)
    if not benchmark.disabled:  # a smoke run (--benchmark-disable) has no timings
        results["per_packet_python_crc_mb_s"] = _mb_per_s(benchmark, packets)


def test_per_packet_struct_loop_c_crc(benchmark, packets):
    out = benchmark.pedantic(per_packet_parse, args=(packets, crc16_c), rounds=3, iterations=1)
    assert len(out) == len(packets) // (_BODY.size + 2)
    if not benchmark.disabled:  # a smoke run (--benchmark-disable) has no timings
        results["per_packet_c_crc_mb_s"] = _mb_per_s(benchmark, packets)


def test_vectorized(benchmark, packets):
    decoded = benchmark.pedantic(vectorized_parse, args=(packets,), rounds=15, iterations=1,
                                 warmup_rounds=1)
    reference = per_packet_parse(packets[: 3400 * 100], crc16_c)
    assert len(decoded) == len(packets) // (_BODY.size + 2)
    np.testing.assert_array_equal(decoded.values["value"][:3400],
                                  np.array([v for _, _, v in reference], np.float32)[:3400])
    if not benchmark.disabled:  # a smoke run (--benchmark-disable) has no timings
        results["vectorized_mb_s"] = _mb_per_s(benchmark, packets)


def test_speedup_and_record():
    if {"per_packet_python_crc_mb_s", "vectorized_mb_s"} - set(results):
        pytest.skip("run the whole file")
    speedup = results["vectorized_mb_s"] / results["per_packet_python_crc_mb_s"]
    speedup_c = results["vectorized_mb_s"] / results.get("per_packet_c_crc_mb_s", np.nan)
    record = {
        "benchmark": "packet_parse", "megabytes": MB, "packet": "AA55 u2 u4 6xf4 crc16-ccitt",
        **{k: round(v, 2) for k, v in results.items()},
        "speedup_vs_python_crc": round(speedup, 1),
        "speedup_vs_c_crc": round(float(speedup_c), 1),
        "statistic": "median of rounds", "python": platform.python_version(),
        "numpy": np.__version__, "machine": platform.machine(),
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    assert speedup >= 50, record
