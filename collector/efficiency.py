"""Collection efficiency = availability x performance x quality, every loss with its cause.

Samples are (grid tick, stream) pairs: an episode of N ticks over S streams expects N x S.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from collector.batch import GridBatch, StreamCounters
from collector.quality import PERFORMANCE_CHECKS
from schemas.episode import EfficiencyAccounts

FAILED_OUTCOMES = {"failure": "task_failure", "truncated": "truncated", "rejected": "rejected",
                   "aborted": "aborted"}


# The loss vocabulary: the one set of names every place that shows losses uses (the record
# summary, inspect, report, /metrics, the API), each computed here from the accounts alone.
# A grid sample is one stream at one tick. Causes are the keys of the accounts' losses.
@dataclass(frozen=True)
class LossTotals:
    missing: int  # expected grid samples never delivered (performance): dropped:, overflow:, ...
    flagged: int  # delivered samples a quality check failed (quality): <check>:<stream>
    discarded: int  # good samples of a failed, rejected or aborted episode (quality)
    lost_s: float  # scheduled seconds not recording (availability): disconnect:, startup, ...


def loss_totals(a: EfficiencyAccounts) -> LossTotals:
    discarded = sum(a.loss_samples.get(cause, 0) for cause in FAILED_OUTCOMES.values())
    return LossTotals(missing=a.expected_samples - a.delivered_samples,
                      flagged=a.delivered_samples - a.good_samples - discarded,
                      discarded=discarded, lost_s=sum(a.loss_seconds.values()))


def describe_factors(a: EfficiencyAccounts) -> str:
    return (f"efficiency {a.efficiency:.1%} = availability {a.availability:.1%} x performance "
            f"{a.performance:.1%} x quality {a.quality:.1%}")


def describe_losses(a: EfficiencyAccounts) -> str:
    """One line: the totals, each with its causes, e.g.
    `missing 4 of 360 (dropped:cam_high 4)  flagged 0  discarded 0  lost 0.00 s`."""
    t = loss_totals(a)
    discarded_causes = set(FAILED_OUTCOMES.values())
    by_total: dict[str, dict] = {"missing": {}, "flagged": {}, "discarded": {}}
    for cause, n in a.loss_samples.items():
        total = ("discarded" if cause in discarded_causes
                 else "missing" if _is_performance(cause) else "flagged")
        by_total[total][cause] = n
    return (f"missing {t.missing} of {a.expected_samples}{_causes(by_total['missing'])}  "
            f"flagged {t.flagged}{_causes(by_total['flagged'])}  "
            f"discarded {t.discarded}{_causes(by_total['discarded'])}  "
            f"lost {t.lost_s:.2f} s{_causes(a.loss_seconds, '.2f', ' s')}")


# The causes of missing samples (performance), as `<cause>:<stream or stage>`.
PERFORMANCE_CAUSES = (*PERFORMANCE_CHECKS, "overflow", "sync_miss", "crash", "stalled",
                      "lost_batch")


def _is_performance(cause: str) -> bool:
    return cause.split(":", 1)[0] in PERFORMANCE_CAUSES


def largest_first(losses: Mapping[str, float]) -> list[tuple[str, float]]:
    """Causes by size, ties by name: every reader of the same accounts (the recorder's tally,
    the file's attributes in their own order) lists them in the same order."""
    return sorted(losses.items(), key=lambda kv: (-kv[1], kv[0]))


def _causes(losses: dict, spec: str = "d", unit: str = "") -> str:
    shown = [f"{k} {v:{spec}}{unit}" for k, v in largest_first(losses) if v]
    return f" ({', '.join(shown)})" if shown else ""


@dataclass
class EpisodeTally:
    """Counts gathered while an episode streams through execution.

    Every lost or bad tick of a stream is counted once, under one cause:
    - availability: while a device is disconnected the station is down, so that time is lost
      as `disconnect:<device>` and the grid samples of that time are not expected at all;
    - performance: a tick whose sample the device dropped (`dropped:<stream>`, from the
      per-tick flag; only for streams near the grid rate or slower: a faster stream's
      neighbours cover a lone drop), a tick lost with a crashed or stalled batch
      (`crash:<stage>`, `stalled:<worker>`), and the remaining missing ticks, charged to ring
      overflow (`overflow:<stream>`) as far as it explains them, the rest to `sync_miss:<stream>`;
    - quality: a delivered tick under the first check that flags it (`<check>:<stream>`), and
      every good sample of an episode that failed, was cut short (`truncated`: not a whole
      demonstration), rejected or aborted.
    So the sample losses add up exactly: expected - delivered, and delivered - good.
    """

    rates: dict[str, float] = field(default_factory=dict)  # stream -> nominal rate, Hz
    expected: int = 0
    ticks: int = 0
    period_ns: int = 0
    missing: Counter = field(default_factory=Counter)  # stream -> missing ticks not dropped
    dropped: Counter = field(default_factory=Counter)  # "<check>:<stream>" -> undelivered ticks
    flagged: Counter = field(default_factory=Counter)  # "<check>:<stream>" -> bad ticks
    bad_ticks: Counter = field(default_factory=Counter)  # stream -> ticks failing any check
    crashed: Counter = field(default_factory=Counter)  # cause -> samples lost with a stage
    held: int = 0  # grid samples filled from the nearest sample in time (flagged missing)
    counters: dict[str, StreamCounters] = field(default_factory=dict)

    def add(self, batch: GridBatch) -> None:
        self.ticks += len(batch)
        self.period_ns = batch.clock.period_ns
        hz = 1e9 / batch.clock.period_ns
        for name, stream in batch.streams.items():
            self.expected += len(batch)
            gone = np.zeros(len(batch), bool)
            if (self.rates.get(name) or hz) < 2 * hz:
                for check in PERFORMANCE_CHECKS:
                    if check in stream.flags:
                        hit = stream.flags[check] & ~gone
                        self.dropped[f"{check}:{name}"] += int(hit.sum())
                        gone |= hit
            self.missing[name] += int((stream.missing & ~gone).sum())
            self.held += int(stream.missing.sum())
            gone |= stream.missing
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

    def blame(self, stream: str, cause: str, ticks: int) -> None:
        """`ticks` of `stream`, counted missing by `add`, were lost with a stage (a video
        camera's frames that died with its encoder): blamed on `cause`, not on sync."""
        moved = min(ticks, self.missing[stream])
        self.missing[stream] -= moved
        self.crashed[cause] += moved

    def add_lost(self, cause: str, ticks: int, streams: int) -> None:
        """Ticks whose batch died with a stage: expected, never delivered, blamed on `cause`."""
        self.ticks += ticks
        self.expected += ticks * streams
        self.crashed[cause] += ticks * streams
        self.held += ticks * streams

    def accounts(self, recording_s: float, outcome: str) -> EfficiencyAccounts:
        """Close the books. An episode is scheduled for its grid alone: the time around it
        (start-up, set-up, commit, resets) is the session's (collector/daemon/accounts.py)."""
        hz = 1e9 / self.period_ns if self.period_ns else 0.0
        recording_s = max(recording_s, 0.0)
        device_lost = {n: min(c.lost_s, recording_s) for n, c in self.counters.items()
                       if c.lost_s > 0}
        lost_s = {f"disconnect:{n}": v for n, v in device_lost.items()}
        unavailable = max(device_lost.values(), default=0.0)  # streams down together overlap
        scheduled = recording_s
        available = max(recording_s - unavailable, 0.0)

        streams = len(self.missing) or 1
        down_ticks = min(round(unavailable * hz), self.ticks)
        expected = self.expected - down_ticks * streams
        loss_samples: dict[str, int] = {k: v for k, v in self.dropped.items() if v}
        for name, missing in self.missing.items():
            c = self.counters.get(name, StreamCounters())
            rest = missing - min(missing, round(device_lost.get(name, 0.0) * hz))
            rate = self.rates.get(name) or hz
            ticks_per_sample = hz / rate if rate < 2 * hz else 0.0
            charged = min(rest, round(c.overflow * ticks_per_sample))
            if charged:
                loss_samples[f"overflow:{name}"] = charged
                rest -= charged
            if rest:
                loss_samples[f"sync_miss:{name}"] = rest
        loss_samples |= {k: v for k, v in self.crashed.items() if v}
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
            # Counter sums float seconds fine; typeshed types its counts as int only
            lost_s[cause] += seconds  # type: ignore[assignment]
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

