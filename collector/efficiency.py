"""Collection efficiency = availability x performance x quality, every loss with its cause.

Samples are (grid tick, stream) pairs: an episode of N ticks over S streams expects N x S.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from collector.batch import GridBatch, StreamCounters
from schemas.episode import EfficiencyAccounts

FAILED_OUTCOMES = {"failure": "task_failure", "rejected": "rejected", "aborted": "aborted"}


@dataclass
class EpisodeTally:
    """Counts gathered while an episode streams through execution."""

    rates: dict[str, float] = field(default_factory=dict)  # stream -> nominal rate, Hz
    expected: int = 0
    ticks: int = 0
    period_ns: int = 0
    missing: Counter = field(default_factory=Counter)  # stream -> ticks with no sample
    flagged: Counter = field(default_factory=Counter)  # "<check>:<stream>" -> bad ticks
    bad_ticks: Counter = field(default_factory=Counter)  # stream -> ticks failing any check
    lost: Counter = field(default_factory=Counter)  # cause -> samples lost with crashed batches
    counters: dict[str, StreamCounters] = field(default_factory=dict)

    def add(self, batch: GridBatch) -> None:
        self.ticks += len(batch)
        self.period_ns = batch.clock.period_ns
        for name, stream in batch.streams.items():
            self.expected += len(batch)
            self.missing[name] += int(stream.missing.sum())
            bad = np.zeros(len(batch), bool)
            for check, flag in stream.flags.items():
                hit = flag & ~stream.missing
                self.flagged[f"{check}:{name}"] += int(hit.sum())
                bad |= hit
            self.bad_ticks[name] += int(bad.sum())
        for name, c in batch.counters.items():
            self.counters.setdefault(name, StreamCounters()).add(c)

    def add_lost(self, cause: str, ticks: int, streams: int) -> None:
        """Ticks whose batch died with a stage: expected, never delivered, blamed on `cause`."""
        self.expected += ticks * streams
        self.lost[cause] += ticks * streams

    def accounts(self, recording_s: float, overhead_s: dict[str, float],
                 outcome: str) -> EfficiencyAccounts:
        """Close the books. `overhead_s`: scheduled time not spent recording, by cause.

        Each lost grid sample is charged to exactly one factor:
        - availability: while a device is disconnected the station is down (its episode lacks
          a stream), so that time is lost by cause `disconnect:<device>`, and the grid samples
          of that time are neither expected nor delivered for performance;
        - performance: the remaining missing samples, charged first to sequence gaps
          (`dropped:<stream>`, as many ticks as the dropped samples span), then to ring
          overflow (`overflow:<stream>`), the rest to `sync_miss:<stream>`;
        - quality: delivered samples that fail a check (`<check>:<stream>`), and every good
          sample of an episode that failed, was rejected or aborted.
        """
        hz = 1e9 / self.period_ns if self.period_ns else 0.0
        recording_s = max(recording_s, 0.0)
        device_lost = {n: min(c.lost_s, recording_s) for n, c in self.counters.items()
                       if c.lost_s > 0}
        lost_s = {k: v for k, v in overhead_s.items() if v > 0}
        lost_s |= {f"disconnect:{n}": v for n, v in device_lost.items()}
        unavailable = max(device_lost.values(), default=0.0)  # streams down together overlap
        scheduled = recording_s + sum(v for v in overhead_s.values() if v > 0)
        available = max(recording_s - unavailable, 0.0)

        streams = len(self.missing) or 1
        down_ticks = min(round(unavailable * hz), self.ticks)
        expected = self.expected - down_ticks * streams
        loss_samples: dict[str, int] = {}
        for name, missing in self.missing.items():
            c = self.counters.get(name, StreamCounters())
            rest = missing - min(missing, round(device_lost.get(name, 0.0) * hz))
            # A dropped sample of a stream at about the grid rate or slower leaves hz / rate
            # ticks without it; a faster stream's neighbours cover a lone drop (interpolation
            # or the nearest sample within tolerance), so its missing ticks are sync misses.
            rate = self.rates.get(name) or hz
            ticks_per_sample = hz / rate if rate < 2 * hz else 0.0
            for cause, count in (("dropped", round(c.dropped * ticks_per_sample)),
                                 ("overflow", round(c.overflow * ticks_per_sample))):
                charged = min(rest, count)
                if charged:
                    loss_samples[f"{cause}:{name}"] = charged
                    rest -= charged
            if rest:
                loss_samples[f"sync_miss:{name}"] = rest
        loss_samples |= dict(self.lost)  # batches that died with a stage (Ray engine)
        delivered = max(expected - sum(loss_samples.values()), 0)
        loss_samples |= {k: v for k, v in self.flagged.items() if v}
        good = max(delivered - sum(self.bad_ticks.values()), 0)
        if outcome in FAILED_OUTCOMES:
            loss_samples[FAILED_OUTCOMES[outcome]] = good
            good = 0
        availability = available / scheduled if scheduled > 0 else 0.0
        performance = delivered / expected if expected > 0 else 0.0
        quality = good / delivered if delivered else 0.0
        return EfficiencyAccounts(
            scheduled_s=scheduled, recording_s=recording_s, expected_samples=max(expected, 0),
            delivered_samples=delivered, good_samples=good, availability=availability,
            performance=performance, quality=quality,
            efficiency=availability * performance * quality,
            loss_seconds={k: round(v, 6) for k, v in lost_s.items()}, loss_samples=loss_samples,
        )


def combine(parts: list[EfficiencyAccounts],
            idle_s: dict[str, float] | None = None) -> EfficiencyAccounts:
    """The accounts of many episodes plus the time between them (`idle_s`, by cause), e.g. a
    session: times and samples add up, the factors are recomputed from the sums."""
    scheduled = sum(a.scheduled_s for a in parts)
    available = sum(a.availability * a.scheduled_s for a in parts)
    lost_s: Counter = Counter()
    lost_samples: Counter = Counter()
    for a in parts:
        lost_s.update(a.loss_seconds)
        lost_samples.update(a.loss_samples)
    for cause, seconds in (idle_s or {}).items():
        if seconds > 0:
            lost_s[cause] += seconds
            scheduled += seconds
    expected = sum(a.expected_samples for a in parts)
    delivered = sum(a.delivered_samples for a in parts)
    good = sum(a.good_samples for a in parts)
    availability = available / scheduled if scheduled > 0 else 0.0
    performance = delivered / expected if expected else 0.0
    quality = good / delivered if delivered else 0.0
    return EfficiencyAccounts(
        scheduled_s=scheduled, recording_s=sum(a.recording_s for a in parts),
        expected_samples=expected, delivered_samples=delivered, good_samples=good,
        availability=availability, performance=performance, quality=quality,
        efficiency=availability * performance * quality,
        loss_seconds={k: round(v, 6) for k, v in sorted(lost_s.items())},
        loss_samples=dict(sorted(lost_samples.items())),
    )
