"""A misaligned run of header bytes with `checksum: none`: one maximum serial read (64 KB) of
`00 AA 55 AA 55 ...`, every header position a candidate packet, against a clean 64 KB read.
The pick of non-overlapping packets must stay linear in the run (it was quadratic: 11.8 s for
this read, 46 548 x a clean one). Figures go to benchmarks/results/packet_junk.json.

    python -m pytest benchmarks/test_packet_junk.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drivers.packet import PacketFormat, PacketStream
from schemas.devices import default_sensor_packet

RESULTS_FILE = Path(__file__).parent / "results" / "packet_junk.json"
SPEC = default_sensor_packet(6).model_copy(update={"checksum": "none"})
READ = 65536
results: dict[str, float] = {}


def clean_read() -> bytes:
    fmt = PacketFormat(SPEC)
    n = READ // fmt.size
    return fmt.encode({"seq": np.arange(n), "t_us": np.arange(n) * 1000,
                       "value": np.zeros((n, 6))}, n).tobytes()


def header_run() -> bytes:
    return b"\x00" + bytes.fromhex(SPEC.header) * ((READ - 1) // 2)


@pytest.mark.parametrize("name, make", [("clean", clean_read), ("header_run", header_run)])
def test_parse_64k(benchmark, name, make):
    data = make()
    decoded = benchmark.pedantic(lambda: PacketStream(SPEC).feed(data), rounds=5, iterations=1)
    assert len(decoded) > 0
    if benchmark.stats is None:  # --benchmark-disable (the smoke run): nothing measured
        return
    results[f"{name}_ms"] = benchmark.stats.stats.median * 1e3
    if len(results) == 2:
        results["ratio"] = results["header_run_ms"] / results["clean_ms"]
        RESULTS_FILE.parent.mkdir(exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
