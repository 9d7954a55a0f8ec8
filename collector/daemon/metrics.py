"""`GET /metrics`: the station's status in Prometheus text format, from its own registry."""

from __future__ import annotations

import threading
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from collector.efficiency import loss_totals
from collector.recent import RECENT_S
from schemas.api import State, Status

STATES = get_args(State)


class StationMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # never the process-global one
        r = self.registry
        self.state = Gauge("collector_state", "1 for the state the station is in", ["state"],
                           registry=r)
        self.factor = Gauge("collector_efficiency_ratio", "session efficiency factors",
                            ["factor"], registry=r)
        self.seconds = Gauge("collector_session_seconds", "session time, scheduled and "
                             "recording", ["kind"], registry=r)
        self.samples = Gauge("collector_session_samples", "grid samples this session",
                             ["kind"], registry=r)
        self.loss_s = Gauge("collector_loss_seconds", "scheduled time lost, by cause",
                            ["cause"], registry=r)
        self.loss_n = Gauge("collector_loss_samples", "grid samples lost, by cause",
                            ["cause"], registry=r)
        self.episodes = Gauge("collector_episodes", "episodes this session, by outcome",
                              ["outcome"], registry=r)
        self.rate = Gauge("collector_device_rate_hz", "measured sample rate", ["device"],
                          registry=r)
        self.up = Gauge("collector_device_up", "1 while the driver is connected to the "
                        "device, 0 while it is disconnected or reconnecting", ["device"],
                        registry=r)
        self.lag = Gauge("collector_pipeline_lag_seconds", "how far the episode's device reads "
                         "run behind their schedule; 0 between episodes", registry=r)
        self.dt_p99 = Gauge("collector_stream_dt_p99_seconds", "99th percentile of |tick time "
                            "- capture time| over the stream's grid ticks written in the last "
                            f"{RECENT_S:g} s; absent while none were", ["stream"], registry=r)
        self.down_s = Gauge("collector_device_disconnected_seconds",
                            "time the device was disconnected", ["device"], registry=r)
        self.resets = Gauge("collector_device_counter_resets", "device resets (sequence or "
                            "device clock restarted or jumped) the serial parser resynchronized",
                            ["device"], registry=r)
        self.disk_free = Gauge("collector_disk_free_bytes", "free space on the disk episodes "
                               "go to", registry=r)
        self.disk_guard = Gauge("collector_disk_guard_bytes", "storage.min_free_gb: below "
                                "this free space the station stops recording", registry=r)
        self._lock = threading.Lock()

    def render(self, status: Status, disk_free_gb: float | None = None,
               disk_guard_gb: float | None = None) -> str:
        with self._lock:  # one scrape at a time rewrites the gauges
            if disk_free_gb is not None:
                self.disk_free.set(disk_free_gb * 1e9)
            if disk_guard_gb is not None:
                self.disk_guard.set(disk_guard_gb * 1e9)
            for state in STATES:
                self.state.labels(state).set(1 if status.state == state else 0)
            a = status.session
            for name in ("availability", "performance", "quality", "efficiency"):
                self.factor.labels(name).set(getattr(a, name))
            self.seconds.labels("scheduled").set(a.scheduled_s)
            self.seconds.labels("recording").set(a.recording_s)
            for kind in ("expected", "delivered", "good"):
                self.samples.labels(kind).set(getattr(a, f"{kind}_samples"))
            totals = loss_totals(a)
            for kind in ("missing", "flagged", "discarded"):
                self.samples.labels(kind).set(getattr(totals, kind))
            self.lag.set(status.pipeline_lag_s)
            for gauge, values in ((self.loss_s, a.loss_seconds), (self.loss_n, a.loss_samples),
                                  (self.episodes, status.episodes)):
                gauge.clear()
                for label, value in values.items():
                    gauge.labels(label).set(value)
            for gauge in (self.rate, self.up, self.down_s, self.resets):
                gauge.clear()
            self.dt_p99.clear()
            for stream, recent in status.recent.items():
                if recent.dt_p99_ms is not None:
                    self.dt_p99.labels(stream).set(recent.dt_p99_ms / 1e3)
            for device, h in status.devices.items():
                self.rate.labels(device).set(h.get("rate_hz", 0.0))
                self.up.labels(device).set(1 if h.get("connected") else 0)
                self.down_s.labels(device).set(h.get("disconnected_s", 0.0))
                self.resets.labels(device).set(h.get("counter_resets", 0))
            return generate_latest(self.registry).decode()
