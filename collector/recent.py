"""The last seconds of the grid, per stream, for the operator: each stream's |dt| p99 and the
quality flags raised, over the ticks recorded in the last `RECENT_S` seconds.

Execution, the ordered stage where every tick's flags are final (the blur verdict, video rows),
digests each batch it writes (`TickDigest`: a few small arrays); the engine gathers the digests
where the station runs (in Ray they come back with each batch's result, so nothing asks the
busy execution actor) into `RecentTicks`: one fixed ring per stream, sized to the window, so
memory is bounded by the window, never by the session. Tick times are on the station's clock,
so "the last seconds" is judged there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.batch import GridBatch
from collector.quality import PERFORMANCE_CHECKS

RECENT_S = 10.0  # the window the live figures cover


@dataclass
class TickDigest:
    """What the live figures need of one stream's ticks in one written batch."""

    period_ns: int  # the grid's tick spacing
    tick_ns: np.ndarray  # (m,) int64, grid time of each tick (station clock)
    dt_ns: np.ndarray  # (m,) int64, |tick - capture time| of the sample it shows
    delivered: np.ndarray  # (m,) bool: not missing
    flagged: dict[str, np.ndarray]  # quality check -> (m,) bool, delivered ticks only


def digest(batch: GridBatch) -> dict[str, TickDigest]:
    """Per stream, its ticks in `batch` as written (missing ticks raise no quality flag, as in
    the accounts: they were never delivered)."""
    out = {}
    for name, stream in batch.streams.items():
        delivered = ~stream.missing
        out[name] = TickDigest(
            batch.clock.period_ns, batch.timestamps, stream.dt_ns, delivered,
            {check: flag & delivered for check, flag in stream.flags.items()
             if check not in PERFORMANCE_CHECKS})
    return out


@dataclass(frozen=True)
class RecentFigures:
    """One stream over the window: `ticks` delivered, their |dt| p99 (None: no tick in the
    window, e.g. between episodes) and, per quality check, how many of them it flagged."""

    window_s: float
    ticks: int
    dt_p99_ms: float | None
    flagged: dict[str, int]


class _Ring:
    """The newest `capacity` ticks of one stream."""

    def __init__(self, capacity: int, period_ns: int, checks: list[str]):
        self.period_ns, self.checks = period_ns, checks
        self.tick_ns = np.full(capacity, np.iinfo(np.int64).min, np.int64)  # empty: never recent
        self.dt_ns = np.zeros(capacity, np.int64)
        self.delivered = np.zeros(capacity, bool)
        self.flagged = np.zeros((len(checks), capacity), bool)
        self.end = 0  # ticks ever written; the next goes at end % capacity

    def add(self, d: TickDigest) -> None:
        capacity = len(self.tick_ns)
        m = len(d.tick_ns)
        keep = slice(max(m - capacity, 0), m)  # a batch longer than the ring: its newest
        at = (self.end + np.arange(m)[keep]) % capacity
        self.tick_ns[at] = d.tick_ns[keep]
        self.dt_ns[at] = d.dt_ns[keep]
        self.delivered[at] = d.delivered[keep]
        for i, check in enumerate(self.checks):
            flag = d.flagged.get(check)
            self.flagged[i, at] = False if flag is None else flag[keep]
        self.end += m

    def view(self, since_ns: int, window_s: float) -> RecentFigures:
        recent = (self.tick_ns >= since_ns) & self.delivered
        n = int(recent.sum())
        p99 = float(np.percentile(self.dt_ns[recent], 99)) / 1e6 if n else None
        counts = self.flagged[:, recent].sum(axis=1)
        return RecentFigures(window_s, n, p99,
                             {c: int(k) for c, k in zip(self.checks, counts, strict=True)})


class RecentTicks:
    """Every stream's ticks of the last `window_s` seconds, in fixed rings."""

    def __init__(self, window_s: float = RECENT_S):
        self.window_s = window_s
        self._rings: dict[str, _Ring] = {}

    def add(self, digests: list[dict[str, TickDigest]]) -> None:
        for batch in digests:
            for name, d in batch.items():
                ring = self._rings.get(name)
                if ring is None or ring.period_ns != d.period_ns or set(ring.checks) != set(
                        d.flagged):  # a new episode at another rate, or other checks
                    capacity = int(self.window_s * 1e9 // d.period_ns) + 1
                    ring = self._rings[name] = _Ring(capacity, d.period_ns, sorted(d.flagged))
                ring.add(d)

    def held(self) -> dict[str, int]:
        """Per stream, how many ticks its ring holds: the window's, whatever the run's length."""
        return {name: len(ring.tick_ns) for name, ring in self._rings.items()}

    def view(self, now_ns: int) -> dict[str, RecentFigures]:
        since = now_ns - int(self.window_s * 1e9)
        return {name: ring.view(since, self.window_s) for name, ring in self._rings.items()}
