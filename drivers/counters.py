"""A device's counters (sequence number, device clock) made monotonic: unwrapped, and
resynchronized after a device reset or a corrupt value.

A counter on the wire wraps (a u2 sequence every 65 536 packets, a u4 microsecond clock every
4295 s); unwrapping adds the modulus each time it wraps. Added blindly, a counter that went
backwards (the device restarted) or took a garbage value (a corrupt packet that an 8-bit checksum
let through, about 1 in 256) would shift every later sample by a whole wrap. So each step is
checked against what a counter can do between two packets: a sequence advances by at least 1, a
clock by at least 0, neither by more than `limit`. A row whose step is implausible while the row
after it continues the row before it is a corrupt value: dropped (`rejected`). Any other
implausible step is a reset (`resets`): the row is kept and every counter goes on from its last
value by its usual step, so no later sample is shifted by a wrap or steps backwards.

Rows are judged a whole read at a time (numpy over the read, no per-row loop). The last row of a
read has no successor yet: when its step is implausible it is held back (`held`) and judged with
the next read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# A device clock that moved further than this between two packets on an open port restarted or
# was corrupt: the same horizon under which a sequence is believed (a quarter of its range).
MAX_DEVICE_GAP_S = 10.0


@dataclass
class Counter:
    """One counter's unwrapping state; values are int64 in the counter's own units."""

    modulus: int  # 0: the counter does not wrap
    least: int  # smallest plausible step: 1 for a sequence, 0 for a clock
    limit: int  # largest plausible step
    fixed_step: int | None = None  # step taken across a reset; None: the last plausible step
    last_raw: int | None = None
    last: int = 0
    usual: int = 1

    @classmethod
    def sequence(cls, bits: int) -> Counter:
        modulus = 1 << bits if bits < 63 else 0
        return cls(modulus, 1, modulus // 4 if modulus else 1 << 40, fixed_step=1)

    @classmethod
    def clock(cls, bits: int, unit_ns: float) -> Counter:
        """A device clock counting `unit_ns` per tick; bits 0: a float clock, given in ns."""
        modulus = 1 << bits if 0 < bits < 63 else 0
        limit = int(MAX_DEVICE_GAP_S * 1e9 / unit_ns)
        return cls(modulus, 0, min(limit, modulus // 4) if modulus else limit)

    def steps(self, raw: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Signed steps from `prev` to `raw`; a wrapping counter's within half its range."""
        d: np.ndarray = raw - prev
        if self.modulus:
            half = self.modulus // 2
            d = (d + half) % self.modulus - half
        return d

    def plausible(self, d: np.ndarray) -> np.ndarray:
        return (d >= self.least) & (d <= self.limit)


def raw_values(v: np.ndarray) -> np.ndarray:
    """An integer counter field as int64 (a signed field read as its unsigned bit pattern)."""
    v = v.astype(v.dtype.newbyteorder("="), copy=False)
    if v.dtype.itemsize < 8:
        v = v.view(f"u{v.dtype.itemsize}")
    return v.astype(np.int64)


@dataclass
class Tracked:
    """One read judged: which rows to emit, and their counters unwrapped."""

    keep: np.ndarray  # bool per row given; False for rejected rows and the held last row
    held: bool  # the last row's step is implausible: give it again with the next read
    values: list[np.ndarray] = field(default_factory=list)  # per counter, for the kept rows


@dataclass
class Counters:
    """The counters of one stream, judged together: a reset or a corrupt value in any of them
    is one event for the row."""

    counters: list[Counter]
    resets: int = 0
    rejected: int = 0

    def reset(self) -> None:
        """Forget history (after a reconnect): the next row starts every counter afresh."""
        for c in self.counters:
            c.last_raw = None

    def track(self, raws: list[np.ndarray]) -> Tracked:
        """Judge one read's rows; `raws` holds each counter's int64 values, same length."""
        n = raws[0].size if raws else 0
        if not self.counters or n == 0:
            return Tracked(np.ones(n, bool), False, [r.copy() for r in raws])
        fresh = self.counters[0].last_raw is None
        prevs = [np.concatenate([[r[0] if fresh else c.last_raw], r[:-1]])
                 for c, r in zip(self.counters, raws, strict=True)]
        steps = [c.steps(r, p) for c, r, p in zip(self.counters, raws, prevs, strict=True)]
        ok_in = self._all_plausible(steps)
        ok_in[0] |= fresh
        if ok_in.all():  # the usual read: nothing to reject, reset or hold
            return Tracked(np.ones(n, bool), False, self._advance(raws, steps, fresh))
        # a row whose successor continues its predecessor is a corrupt value
        ok_skip = self._plausible([r[1:] for r in raws], [p[:-1] for p in prevs])
        keep = np.ones(n, bool)
        keep[:-1] = ok_in[:-1] | ~ok_skip
        held = not ok_in[-1]
        self.rejected += int(n - 1 - keep[:-1].sum())
        keep[-1] = not held
        kept = [r[keep] for r in raws]
        return Tracked(keep, held, self._unwrap(kept, fresh) if kept[0].size else
                       [np.zeros(0, np.int64) for _ in raws])

    def _plausible(self, raws: list[np.ndarray], prevs: list[np.ndarray]) -> np.ndarray:
        return self._all_plausible([c.steps(r, p)
                                    for c, r, p in zip(self.counters, raws, prevs, strict=True)])

    def _all_plausible(self, steps: list[np.ndarray]) -> np.ndarray:
        ok = np.ones(steps[0].size, bool)
        for c, d in zip(self.counters, steps, strict=True):
            ok &= c.plausible(d)
        return ok

    def _advance(self, raws: list[np.ndarray], steps: list[np.ndarray],
                 fresh: bool) -> list[np.ndarray]:
        """`_unwrap` of a read whose every step is plausible, from the steps already taken:
        each counter goes on by its own steps (a fresh start's first step is 0). A 1 kHz
        sensor is read ~200 times a second in reads of a few rows, where numpy's cost per
        call, not per row, is the read's cost: this skips the second look at every step."""
        out = []
        for c, r, d in zip(self.counters, raws, steps, strict=True):
            if fresh:
                c.last = int(r[0])
            values = c.last + np.cumsum(d, dtype=np.int64)
            if c.fixed_step is None and (d.size > 1 or not fresh):
                c.usual = int(d[-1])  # the last plausible step (a fresh start's 0 is none)
            c.last_raw, c.last = int(r[-1]), int(values[-1])
            out.append(values)
        return out

    def _unwrap(self, raws: list[np.ndarray], fresh: bool) -> list[np.ndarray]:
        steps = []
        for c, r in zip(self.counters, raws, strict=True):
            if fresh:
                c.last_raw, c.last = int(r[0]), int(r[0])
            steps.append(c.steps(r, np.concatenate([[c.last_raw], r[:-1]])))
        ok = np.ones(raws[0].size, bool)
        for c, d in zip(self.counters, steps, strict=True):
            ok &= c.plausible(d)
        ok[0] |= fresh  # the first row after a (re)connect starts the counters: step 0
        self.resets += int((~ok).sum())
        usual = ok.copy()
        usual[0] &= not fresh  # ...which is no step to go on by
        out = []
        for c, r, d in zip(self.counters, raws, steps, strict=True):
            if fresh:
                d[0] = 0
            if c.fixed_step is not None:
                across = np.full(d.size, c.fixed_step, np.int64)
            else:  # the last plausible step before each row, or the one before this read
                before = np.concatenate([[c.usual], d])
                at = np.maximum.accumulate(np.where(np.concatenate([[True], usual]),
                                                    np.arange(d.size + 1), 0))
                across = before[at][:-1]
                c.usual = int(before[at[-1]])
            d = np.where(ok, d, across)
            values = c.last + np.cumsum(d, dtype=np.int64)
            c.last_raw, c.last = int(r[-1]), int(values[-1])
            out.append(values)
        return out
