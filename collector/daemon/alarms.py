"""Alarms an operator must act on, judged from the daemon's status: a device down, the disk
below its guard, an episode the quality checks flagged, the pipeline falling behind.

`AlarmBook.update` is called with each status the operator page is sent; it keeps the alarms
raised now and the last few that cleared, with when, so a short outage is still seen.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

from collector.efficiency import FAILED_OUTCOMES, PERFORMANCE_CAUSES, loss_totals
from schemas.api import Status

LAG_ALARM_S = 0.5  # the loop's reads this far behind schedule: the pipeline cannot keep up
FLAGGED_ALARM = 0.1  # an episode with more of its samples flagged by the checks needs a look
CLEARED_KEPT = 10


@dataclass
class Alarm:
    key: str  # one alarm per key: "device:cam_high", "disk", "lag", "quality:<episode>"
    kind: str  # device_down | disk_low | quality | pipeline_behind
    message: str
    raised_at: float  # unix seconds
    cleared_at: float | None = None


def judge(status: Status, free_gb: float | None, guard_gb: float) -> dict[str, tuple[str, str]]:
    """key -> (kind, message) for every alarm the status shows now."""
    found: dict[str, tuple[str, str]] = {}
    for name, h in status.devices.items():
        if not h.get("connected", True):
            found[f"device:{name}"] = ("device_down", f"{name} is disconnected, reconnecting "
                                       f"({h.get('disconnected_s', 0.0):.1f} s down this "
                                       f"session); check its cable and power")
    if free_gb is not None and free_gb < guard_gb:
        found["disk"] = ("disk_low", f"disk free {free_gb:.2f} GB is below the guard "
                         f"storage.min_free_gb={guard_gb:g} GB; recording stops: free space")
    if status.pipeline_lag_s > LAG_ALARM_S:
        found["lag"] = ("pipeline_behind", f"the pipeline is {status.pipeline_lag_s:.2f} s "
                        f"behind its schedule (alarm above {LAG_ALARM_S:g} s); lower rates "
                        f"or add computation workers")
    last = status.last_episode
    if last is not None:
        a = last.accounts
        flagged = loss_totals(a).flagged  # by the checks; not an outcome's discarded samples
        share = flagged / a.delivered_samples if a.delivered_samples else 0.0
        if share > FLAGGED_ALARM:
            checks = {k: v for k, v in a.loss_samples.items()
                      if k.split(":", 1)[0] not in PERFORMANCE_CAUSES
                      and k not in FAILED_OUTCOMES.values()}
            worst = max(checks, key=checks.__getitem__) if checks else "none"
            found[f"quality:{last.episode_id}"] = (
                "quality", f"episode {last.episode_id} ({last.outcome}): {share:.0%} of its "
                f"samples flagged by the quality checks (alarm above {FLAGGED_ALARM:.0%}); "
                f"top check {worst}: look at it before keeping it")
    return found


class AlarmBook:
    def __init__(self) -> None:
        self.active: dict[str, Alarm] = {}
        self.cleared: deque[Alarm] = deque(maxlen=CLEARED_KEPT)
        # judged by the daemon's loop (every health refresh) and by each page snapshot
        self._lock = threading.Lock()

    def update(self, status: Status, free_gb: float | None, guard_gb: float,
               now: float | None = None) -> None:
        now = time.time() if now is None else now
        found = judge(status, free_gb, guard_gb)
        with self._lock:
            self._update(found, now)

    def _update(self, found: dict[str, tuple[str, str]], now: float) -> None:
        for key in list(self.active):
            if key not in found:
                alarm = self.active.pop(key)
                alarm.cleared_at = now
                self.cleared.appendleft(alarm)
        for key, (kind, message) in found.items():
            if key in self.active:
                self.active[key].message = message
            else:
                self.active[key] = Alarm(key, kind, message, now)

    def view(self) -> dict:
        with self._lock:
            return {"active": [asdict(a) for a in self.active.values()],
                    "cleared": [asdict(a) for a in self.cleared]}
