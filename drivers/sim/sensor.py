"""A simulated force/torque sensor: a contact- and load-driven signal at a high rate."""

from __future__ import annotations

import time

import numpy as np

from core.errors import DeviceError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.sim.faults import FaultPlan
from drivers.sim.world import Pacer, SimWorld
from schemas.devices import SimSensorConfig


class SimSensor(ThreadedDevice):
    def __init__(self, config: SimSensorConfig, world: SimWorld, realtime: bool = True):
        channels = len(config.channels)
        super().__init__(StreamInfo(config.name, "sensor", config.rate_hz,
                                    {"value": FieldInfo((channels,), "float32", config.unit,
                                                        tuple(config.channels),
                                                        tuple(config.channel_units()))}))
        self.config = config
        self.world = world
        self.faults = FaultPlan(config.faults, salt=101)
        self.block_s = config.burst_ms / 1000  # samples reach the host in bursts, as over USB
        self.pacer = Pacer(1.0 / self.block_s, realtime)
        self.period_ns = int(1e9 / config.rate_hz)
        self.next_seq = 0
        self.t0_ns: int | None = None

    def _connect(self) -> None:
        now = time.monotonic_ns()
        if self.faults.opened_ns is None:
            self.faults.opened_ns = now
        if self.faults.disconnected(now):
            raise DeviceError(f"{self.config.name}: simulated sensor unplugged")
        if self.t0_ns is None:
            self.t0_ns = now
        self.pacer.next_ns = max(self.pacer.next_ns, now)

    def _capture(self) -> CapturedSamples | None:
        assert self.t0_ns is not None, "captured before _connect"  # the reader connects first
        now = self.pacer.wait(self._stop) if self.pacer.realtime else None
        if now is None:  # max mode: one block's worth of samples per call
            last = self.next_seq + max(1, int(self.block_s * 1e9 / self.period_ns))
        else:
            if self.faults.disconnected(time.monotonic_ns()):
                raise DeviceError(f"{self.config.name}: simulated sensor unplugged")
            last = (now - self.t0_ns) // self.period_ns
        seq = np.arange(self.next_seq, max(self.next_seq, last), dtype=np.int64)
        if seq.size == 0:
            return None
        self.next_seq = int(seq[-1]) + 1
        t = self.t0_ns + seq * self.period_ns
        values = self.signal(t)
        keep = ~self.faults.draw(seq.size, self.faults.faults.drop_rate)
        return CapturedSamples(device_ns=self.faults.device_clock(t)[keep], seq=seq[keep],
                       values={"value": values[keep]})

    def signal(self, t_ns: np.ndarray) -> np.ndarray:
        return ft_signal(self.world, self.faults.rng, t_ns, len(self.config.channels))


def ft_signal(world: SimWorld, rng: np.random.Generator, t_ns: np.ndarray,
              channels: int) -> np.ndarray:
    """Force: the carried object's weight and a contact spike when the gripper closes."""
    _, gripper, _, carried = world.snapshot()
    n = t_ns.size
    out = rng.normal(0.0, 0.05, (n, channels))
    phase = t_ns.astype(np.float64) / 1e9
    out[:, 0] += 0.3 * np.sin(2 * np.pi * 0.5 * phase)
    if channels > 2:
        out[:, 2] += -4.9 * carried + 2.0 * gripper
    return out.astype(np.float32)
