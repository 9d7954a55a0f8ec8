"""Binary serial packets declared in YAML, compiled to a numpy structured dtype.

`PacketFormat` is the compiled declaration (dtype, checksum, encode). `PacketStream` parses a
byte stream a whole buffer at a time: header search, checksum and field extraction are numpy
operations over every packet in the buffer, never a per-packet Python loop. Torn bytes at the end
of a read wait for the next one; corrupt or torn packets are skipped by resyncing on the next
header and counted, and a packet whose checksum fails is never emitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from drivers.counters import Counter, Counters, raw_values
from schemas.devices import TIME_UNITS_NS, PacketSpec

# rows (or raw values) in, one result per row out: checksums, time conversions
ArrayFn = Callable[[np.ndarray], np.ndarray]


def _crc16_byte_table() -> np.ndarray:
    """CRC-16/CCITT-FALSE (poly 0x1021, no reflection): register after shifting in one byte."""
    crc = np.arange(256, dtype=np.uint32) << 8
    for _ in range(8):
        crc = np.where(crc & 0x8000, (crc << 1) ^ 0x1021, crc << 1) & 0xFFFF
    return crc.astype(np.uint16)


def _crc32_byte_table() -> np.ndarray:
    """zlib CRC-32 (reflected poly 0xEDB88320)."""
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(0xEDB88320), crc >> 1)
    return crc.astype(np.uint32)


CRC16_TABLE = _crc16_byte_table()
CRC32_TABLE = _crc32_byte_table()


def _crc16_word_table() -> np.ndarray:
    # A 16-bit register is fully replaced after 16 message bits, so two bytes at a time the
    # register becomes T16[crc ^ word]: half the steps of the byte-wise loop.
    x = np.arange(65536, dtype=np.uint32)
    for _ in range(2):
        x = ((x << 8) & 0xFFFF) ^ CRC16_TABLE[x >> 8]
    return x.astype(np.uint16)


def _crc32_word_table() -> np.ndarray:
    # Reflected 32-bit register, two bytes per step: crc' = T16[(crc ^ w) & 0xFFFF] ^ (crc >> 16).
    x = np.arange(65536, dtype=np.uint32)
    for _ in range(2):
        x = CRC32_TABLE[x & 0xFF] ^ (x >> 8)
    return x


_WORD_TABLES: dict[str, np.ndarray] = {}


def _word_table(kind: str) -> np.ndarray:
    if kind not in _WORD_TABLES:
        _WORD_TABLES[kind] = _crc16_word_table() if kind == "crc16" else _crc32_word_table()
    return _WORD_TABLES[kind]


def _words(rows: np.ndarray, order: str) -> np.ndarray:
    """(n, 2k) bytes as (k, n) 16-bit words: one contiguous row per step of the CRC loop."""
    # cast: numpy types a view by dtype string as Any
    return cast(np.ndarray, np.ascontiguousarray(rows).view(order + "u2").T.astype(np.uint16))


def crc16_ccitt(rows: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT-FALSE of every row of an (n, m) uint8 array, vectorized over rows."""
    n, m = rows.shape
    crc = np.full(n, 0xFFFF, np.uint16)
    if m % 2:
        crc = ((crc << 8) ^ CRC16_TABLE[(crc >> 8) ^ rows[:, 0]]).astype(np.uint16)
        rows = rows[:, 1:]
    table = _word_table("crc16")
    step = np.empty(n, np.uint16)
    for word in _words(rows, ">"):
        np.bitwise_xor(crc, word, out=step)
        # the method, not np.take: its wrapper costs more than a packet row's lookup
        table.take(step, out=crc, mode="clip")  # clip: no bounds-check buffering
    return crc


def crc32(rows: np.ndarray) -> np.ndarray:
    """zlib CRC-32 of every row of an (n, m) uint8 array, vectorized over rows."""
    n, m = rows.shape
    crc = np.full(n, 0xFFFFFFFF, np.uint32)
    table = _word_table("crc32")
    step = np.empty(n, np.uint16)
    for word in _words(rows[:, : m - m % 2], "<"):
        np.bitwise_xor(crc, word, out=step, casting="unsafe")  # keeps the low 16 bits
        crc >>= 16
        crc ^= table[step]
    if m % 2:
        crc = CRC32_TABLE[(crc ^ rows[:, -1]) & 0xFF] ^ (crc >> 8)
    return cast(np.ndarray, crc ^ np.uint32(0xFFFFFFFF))  # numpy types the xor as Any


def xor8(rows: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, np.bitwise_xor.reduce(rows, axis=1).astype(np.uint8))  # ufunc: Any


def sum8(rows: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, (rows.sum(axis=1, dtype=np.uint32) & 0xFF).astype(np.uint8))  # Any


CHECKSUM_FUNCS = {"xor8": (xor8, "u1"), "sum8": (sum8, "u1"),
                  "crc16-ccitt": (crc16_ccitt, "u2"), "crc32": (crc32, "u4")}
HEADER = "_header"
CHECKSUM = "_checksum"


class PacketFormat:
    """A `PacketSpec` compiled: structured dtype, size, checksum function, encoder."""

    def __init__(self, spec: PacketSpec):
        self.spec = spec
        self.header = np.frombuffer(bytes.fromhex(spec.header), np.uint8)
        order = "<" if spec.byteorder == "little" else ">"
        layout: list[tuple[Any, ...]] = [(HEADER, "u1", (self.header.size,))]
        for f in spec.fields:
            layout.append((f.name, order + f.dtype, (f.count,)))
        self.checksum_func: ArrayFn | None = None
        if spec.checksum != "none":
            func, code = CHECKSUM_FUNCS[spec.checksum]
            self.checksum_func = func
            layout.append((CHECKSUM, order + code))
        self.dtype = np.dtype(layout)  # packed: no alignment padding, as on the wire
        self.size = self.dtype.itemsize
        self.covered = slice(self.header.size, self.size - (
            self.dtype[CHECKSUM].itemsize if self.checksum_func else 0))
        roles = {f.role: f for f in spec.fields if f.role}
        self.sequence = roles.get("sequence")
        self.device_time = roles.get("device_time")
        self.values = [f for f in spec.fields if f.role is None]

    def has_header(self, rows: np.ndarray) -> np.ndarray:
        ok = rows[:, 0] == self.header[0]
        for j in range(1, self.header.size):
            ok &= rows[:, j] == self.header[j]
        return cast(np.ndarray, ok)  # numpy types the in-place `&=` as Any

    def valid(self, rows: np.ndarray) -> np.ndarray:
        """Which (n, size) uint8 rows carry a correct checksum (header not checked)."""
        if self.checksum_func is None:
            return np.ones(rows.shape[0], bool)
        rows = np.ascontiguousarray(rows)
        stored = rows.reshape(-1).view(self.dtype)[CHECKSUM]
        return cast(np.ndarray, self.checksum_func(rows[:, self.covered]) == stored)  # Any

    def encode(self, values: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Packets for `n` samples as an (n, size) uint8 array; missing fields are zero."""
        records = np.zeros(n, self.dtype)
        records[HEADER] = self.header
        for f in self.spec.fields:
            if f.name in values:
                records[f.name] = np.asarray(values[f.name]).reshape(n, f.count)
        rows = records.view(np.uint8).reshape(n, self.size)
        if self.checksum_func is not None:
            records[CHECKSUM] = self.checksum_func(rows[:, self.covered])
        return rows

    def value_dtype(self, name: str) -> np.dtype:
        f = next(f for f in self.values if f.name == name)
        return np.dtype(np.float64) if f.scale is not None else np.dtype(f.dtype)


@dataclass
class Decoded:
    """Samples decoded from one read: sequence numbers, device times (ns) and field values."""

    seq: np.ndarray  # int64, unwrapped; a running count when the device sends none
    device_ns: np.ndarray  # int64 ns of the device clock, unwrapped; -1 when it has none
    values: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n, count)

    def __len__(self) -> int:
        return int(self.seq.shape[0])


def time_to_ns(unit: str) -> ArrayFn:
    factor = TIME_UNITS_NS[unit]

    def convert(v: np.ndarray) -> np.ndarray:
        if v.dtype.kind in "ui":
            return v.astype(np.int64) * int(factor)
        return np.round(v.astype(np.float64) * factor).astype(np.int64)

    return convert


class PacketStream:
    """Parses a byte stream of packets, one read at a time, keeping torn bytes for the next.

    `failures` counts corrupt packets: a checksum that fails or a damaged header, measured in
    whole packets from the bytes skipped between two good packets (bytes before the first good
    packet after a (re)connect are a torn start, counted only as whole packets), plus packets
    that passed the checksum with a corrupt sequence number or device time (drivers/counters.py).
    `resets` counts device resets (a counter that went backwards or jumped): the counters
    resynchronize instead of shifting by a wrap. `skipped_bytes` counts every byte not part of an
    accepted packet.
    """

    def __init__(self, spec: PacketSpec):
        self.format = PacketFormat(spec)
        self._tail = b""
        self._gap = 0  # bytes skipped since the last good packet
        self._synced = False
        self._held = np.zeros(0, self.format.dtype)  # a last packet not judged yet
        self._count = 0  # packets emitted: the sequence of a device that sends none
        self.failures = 0
        self.skipped_bytes = 0
        self.packets = 0
        fmt = self.format
        counters = []
        if fmt.sequence is not None:
            counters.append(Counter.sequence(8 * np.dtype(fmt.sequence.dtype).itemsize))
        dt = fmt.device_time
        self._time_ticks = False  # the clock counts integer ticks (else: float, converted first)
        if dt is not None:
            self._time_ticks = np.dtype(dt.dtype).kind in "ui"
            self._to_ns = time_to_ns(dt.unit)
            bits = 8 * np.dtype(dt.dtype).itemsize if self._time_ticks else 0
            unit_ns = TIME_UNITS_NS[dt.unit] if self._time_ticks else 1.0
            counters.append(Counter.clock(bits, unit_ns))
        self.counters = Counters(counters)

    @property
    def resets(self) -> int:
        return self.counters.resets

    def reset(self) -> None:
        """Forget partial bytes and counter history (after a reconnect)."""
        self._tail, self._gap, self._synced = b"", 0, False
        self._held = self._held[:0]
        self.counters.reset()

    def feed(self, data: bytes) -> Decoded:
        records = self.records(data)
        return self.decode(records)

    def records(self, data: bytes) -> np.ndarray:
        """The good packets in `data` (plus the bytes kept from the previous read)."""
        fmt = self.format
        size = fmt.size
        buf = self._tail + data
        a = np.frombuffer(buf, np.uint8)
        if a.size < size:
            self._tail = buf
            return np.zeros(0, fmt.dtype)
        k = a.size // size
        rows = a[: k * size].reshape(k, size)
        # in sync (the usual case): packets back to back from the start of the buffer
        if fmt.has_header(rows).all() and fmt.valid(rows).all():
            starts = np.arange(k, dtype=np.int64) * size
        else:
            starts, rows = self._search(a)
        self._tail = buf[self._account(starts, a.size):]
        # a view: decode() copies every field out, so the buffer is not kept
        return rows.reshape(-1).view(fmt.dtype) if rows.size else np.zeros(0, fmt.dtype)

    def _search(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every header position, checksum-tested, then a non-overlapping left-to-right pick."""
        fmt = self.format
        size = fmt.size
        n = a.size - size + 1
        hit = a[:n] == fmt.header[0]
        for j in range(1, fmt.header.size):
            hit &= a[j : j + n] == fmt.header[j]
        cand = np.flatnonzero(hit)
        rows = a[cand[:, None] + np.arange(size)]
        good = fmt.valid(rows)
        cand, rows = cand[good], rows[good]
        keep = _non_overlapping(cand, size)
        return cand[keep], rows[keep]

    def _account(self, starts: np.ndarray, length: int) -> int:
        """Count what was skipped; returns where the bytes kept for the next read begin."""
        size = self.format.size
        last_end = 0
        if starts.size:
            gaps = np.diff(starts) - size
            first = self._gap + int(starts[0])
            lost = math.ceil(first / size) if self._synced else first // size
            self.failures += lost + int(np.ceil(gaps / size).sum())
            self.skipped_bytes += first + int(gaps.sum())
            self._gap = 0
            self._synced = True
            last_end = int(starts[-1]) + size
            self.packets += int(starts.size)
        keep_from = max(last_end, length - size + 1)
        self._gap += keep_from - last_end
        return keep_from

    def decode(self, records: np.ndarray) -> Decoded:
        fmt = self.format
        records = np.concatenate([self._held, records]) if self._held.size else records
        raws = []
        if fmt.sequence is not None:
            raws.append(raw_values(records[fmt.sequence.name][:, 0]))
        if fmt.device_time is not None:
            raw = records[fmt.device_time.name][:, 0]
            raws.append(raw_values(raw) if self._time_ticks else self._to_ns(raw))
        rejected = self.counters.rejected
        judged = self.counters.track(raws)
        self.failures += self.counters.rejected - rejected
        self._held = records[-1:].copy() if judged.held else records[:0]
        records = records[judged.keep]
        n = records.shape[0]
        counters = iter(judged.values)
        if fmt.sequence is not None:
            seq = next(counters)
        else:
            seq = np.arange(self._count, self._count + n, dtype=np.int64)
        self._count += n
        if fmt.device_time is not None:
            device = next(counters)
            device = self._to_ns(device) if self._time_ticks else device
        else:
            device = np.full(n, -1, np.int64)
        values = {}
        for f in fmt.values:
            v = records[f.name]
            values[f.name] = (v * f.scale if f.scale is not None
                              else v.astype(np.dtype(f.dtype)))  # native byte order
        return Decoded(seq=seq, device_ns=device, values=values)


def _non_overlapping(starts: np.ndarray, size: int) -> np.ndarray:
    """Mask keeping the packets a left-to-right scan would take: the first, then the first that
    starts after it ends, and so on.

    Overlaps happen where a header pattern inside a payload passes the checksum, and everywhere
    in a run of header bytes with no checksum. Each candidate points at the next one the scan
    would take; the chain from the first is walked by pointer doubling, so a read costs
    O(n log n) vectorized work, never a round per overlap (which was quadratic in a run's length).
    """
    m = starts.size
    keep = np.zeros(m, bool)
    if m == 0:
        return keep
    nxt = np.append(np.searchsorted(starts, starts + size), m)  # m: past the end, points at m
    reached = np.zeros(m + 1, bool)
    reached[0] = True
    while not reached[m]:
        # every node reached so far also reaches the node its pointer lands on; then the
        # pointers double their stride
        reached[nxt[reached]] = True
        nxt = nxt[nxt]
    keep[:] = reached[:m]
    return keep
