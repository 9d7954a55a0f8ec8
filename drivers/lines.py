"""ASCII line protocols (`1,200,0.5,...` or `seq=1 t_ms=200 fx=0.5 ...`), parsed a read at a time.

One compiled regular expression matches every well-formed line of a read in a single C-level
`re.findall`; numpy converts all the captured numbers at once. Lines that do not match (torn,
corrupt, wrong field count) are skipped and counted, never emitted.
"""

from __future__ import annotations

import re

import numpy as np

from drivers.counters import Counter, Counters
from drivers.packet import Decoded, time_to_ns
from schemas.devices import LineSpec

MAX_LINE = 4096  # bytes: a longer unfinished line is dropped, so memory stays bounded
BLANK = re.compile(rb"^[ \t]*\r?\n", re.MULTILINE)
NUMBER = rb"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"


class LineFormat:
    def __init__(self, spec: LineSpec):
        self.spec = spec
        sep = re.escape(spec.separator.encode())
        if spec.format == "csv":
            columns = sum(f.count for f in spec.fields)
            body = sep.join([NUMBER] * columns)
        else:
            pairs = [re.escape(k.encode()) + rb"\s*=\s*" + NUMBER
                     for f in spec.fields for k in f.key_names()]
            body = (sep + rb"\s*").join(pairs)
        self.pattern = re.compile(rb"^[ \t]*" + body + rb"[ \t]*\r?$", re.MULTILINE)
        self.columns = np.cumsum([0] + [f.count for f in spec.fields])
        roles = {f.role: i for i, f in enumerate(spec.fields) if f.role}
        self.sequence = roles.get("sequence")
        self.device_time = roles.get("device_time")

    def encode(self, values: dict[str, np.ndarray], n: int) -> bytes:
        """Lines for `n` samples (the simulator's side of the protocol)."""
        cols = []
        for f in self.spec.fields:
            v = np.asarray(values[f.name]).reshape(n, f.count)
            fmt = "%d" if f.role else "%.6g"
            for c in range(f.count):
                text = np.char.mod(fmt, v[:, c])
                if self.spec.format == "kv":
                    text = np.char.add(f.key_names()[c] + "=", text)
                cols.append(text)
        if not cols or n == 0:
            return b""
        sep = self.spec.separator if self.spec.format == "csv" else self.spec.separator + " "
        joined = cols[0]
        for col in cols[1:]:  # not `c`: that is the int column index above
            joined = np.char.add(np.char.add(joined, sep), col)
        return ("\n".join(joined.tolist()) + "\n").encode()


class LineStream:
    """Parses a stream of lines: keeps the unfinished last line, counts bad ones in `failures`.

    The first line after a (re)connect may be torn (the device was mid-line): it is skipped
    without counting as a failure. Sequence numbers and device times are checked as a packet's
    are (drivers/counters.py): a line with a corrupt counter is a failure, a reset is counted in
    `resets` and resynchronized.
    """

    def __init__(self, spec: LineSpec):
        self.format = LineFormat(spec)
        self.spec = spec
        self._tail = b""
        self._started = False
        self.failures = 0
        self.packets = 0
        dt = next((f for f in spec.fields if f.role == "device_time"), None)
        self._to_ns = time_to_ns(dt.unit) if dt else None
        self._held = np.zeros((0, int(self.format.columns[-1])))  # a last line not judged yet
        counters = [Counter.sequence(64)] if self.format.sequence is not None else []
        if self.format.device_time is not None and self._to_ns is not None:
            counters.append(Counter.clock(0, 1.0))  # judged in ns: the text has no wrap
        self.counters = Counters(counters)

    @property
    def resets(self) -> int:
        return self.counters.resets

    def reset(self) -> None:
        self._tail, self._started = b"", False
        self._held = self._held[:0]
        self.counters.reset()

    def feed(self, data: bytes) -> Decoded:
        buf = self._tail + data
        end = buf.rfind(b"\n") + 1
        self._tail = buf[end:]
        if len(self._tail) > MAX_LINE:  # no newline in sight: noise, or the wrong baud rate
            self._tail = b""
            self.failures += 1
        text = buf[:end]
        if not self._started and text:
            first = text.find(b"\n") + 1
            text, self._started = text[first:], True
        lines = text.count(b"\n") - len(BLANK.findall(text))
        found = self.format.pattern.findall(text)
        table = np.array(found, dtype=np.float64).reshape(len(found), int(self.format.columns[-1]))
        self.failures += max(lines - len(found), 0)
        return self._decode(table)

    def _decode(self, table: np.ndarray) -> Decoded:
        fmt = self.format
        table = np.concatenate([self._held, table]) if self._held.size else table
        raws = []
        if fmt.sequence is not None:
            raws.append(table[:, fmt.columns[fmt.sequence]].astype(np.int64))
        if fmt.device_time is not None and self._to_ns is not None:
            raws.append(self._to_ns(table[:, fmt.columns[fmt.device_time]]))
        rejected = self.counters.rejected
        judged = self.counters.track(raws)
        self.failures += self.counters.rejected - rejected
        self._held = table[-1:].copy() if judged.held else table[:0]
        table = table[judged.keep]
        counters = iter(judged.values)
        n = table.shape[0]
        values = {}
        for i, f in enumerate(self.spec.fields):
            v = table[:, fmt.columns[i] : fmt.columns[i + 1]]
            if f.role is None:
                values[f.name] = v * f.scale if f.scale is not None else v
        if fmt.sequence is not None:
            seq = next(counters)
        else:
            seq = np.arange(self.packets, self.packets + n, dtype=np.int64)
        if fmt.device_time is not None and self._to_ns is not None:  # both from one field
            device = next(counters)
        else:
            device = np.full(n, -1, np.int64)
        self.packets += n
        return Decoded(seq=seq, device_ns=device, values=values)
