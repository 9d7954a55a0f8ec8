"""Collection efficiency = availability x performance x quality, every loss with its cause.

Samples are (grid tick, stream) pairs: an episode of N ticks over S streams expects N x S.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from collector.batch import GridBatch, StreamCounters
from collector.quality import PERFORMANCE_CHECKS
from schemas.episode import EfficiencyAccounts

FAILED_OUTCOMES = {"failure": "task_failure", "rejected": "rejected", "aborted": "aborted"}


@dataclass
class EpisodeTally:
    """Counts gathered while an episode streams through execution.

    Every lost or bad tick of a stream is counted once, under its first cause: a tick is lost
    (performance) when missing, else when its sample was dropped; a delivered tick is bad
    (quality) under the first check that flags it, in the order the checks are stored. So the
    sample losses add up exactly: expected - delivered, and delivered - good.
    """

    expected: int = 0
    missing: Counter = field(default_factory=Counter)  # stream -> ticks with no sample
    lost: Counter = field(default_factory=Counter)  # "<check>:<stream>" -> undelivered ticks
    flagged: Counter = field(default_factory=Counter)  # "<check>:<stream>" -> bad ticks
    bad_ticks: Counter = field(default_factory=Counter)  # stream -> ticks failing any check
    counters: dict[str, StreamCounters] = field(default_factory=dict)

    def add(self, batch: GridBatch) -> None:
        for name, stream in batch.streams.items():
            self.expected += len(batch)
            self.missing[name] += int(stream.missing.sum())
            gone = stream.missing.copy()
            for check in PERFORMANCE_CHECKS:
                if check in stream.flags:
                    hit = stream.flags[check] & ~gone
                    self.lost[f"{check}:{name}"] += int(hit.sum())
                    gone |= hit
            bad = np.zeros(len(batch), bool)
            for check, flag in stream.flags.items():
                if check in PERFORMANCE_CHECKS:
                    continue
                hit = flag & ~gone & ~bad
                self.flagged[f"{check}:{name}"] += int(hit.sum())
                bad |= hit
            self.bad_ticks[name] += int(bad.sum())
        for name, c in batch.counters.items():
            self.counters.setdefault(name, StreamCounters()).add(c)

    def accounts(self, recording_s: float, overhead_s: dict[str, float],
                 outcome: str) -> EfficiencyAccounts:
        """Close the books. `overhead_s`: scheduled time not spent recording, by cause."""
        device_lost = {f"disconnect:{n}": c.lost_s for n, c in self.counters.items() if c.lost_s}
        lost_s = {**{k: v for k, v in overhead_s.items() if v > 0}, **device_lost}
        unavailable = max(device_lost.values(), default=0.0)  # streams down together overlap
        scheduled = recording_s + sum(v for v in overhead_s.values() if v > 0)
        available = max(recording_s - unavailable, 0.0)

        # grid samples only: raw-rate counts (sequence gaps, ring overflow) are in the counters
        delivered = self.expected - sum(self.missing.values()) - sum(self.lost.values())
        loss_samples = {f"missing:{n}": v for n, v in self.missing.items() if v}
        loss_samples |= {k: v for k, v in self.lost.items() if v}
        loss_samples |= {k: v for k, v in self.flagged.items() if v}
        good = delivered - sum(self.bad_ticks.values())
        if outcome in FAILED_OUTCOMES:
            loss_samples[FAILED_OUTCOMES[outcome]] = good
            good = 0
        availability = available / scheduled if scheduled > 0 else 0.0
        performance = delivered / self.expected if self.expected else 0.0
        quality = good / delivered if delivered else 0.0
        return EfficiencyAccounts(
            scheduled_s=scheduled, recording_s=recording_s, expected_samples=self.expected,
            delivered_samples=delivered, good_samples=good, availability=availability,
            performance=performance, quality=quality,
            efficiency=availability * performance * quality,
            loss_seconds={k: round(v, 6) for k, v in lost_s.items()}, loss_samples=loss_samples,
        )
