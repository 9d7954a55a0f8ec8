"""A simulated position-controlled arm: reports joint state, accepts joint commands."""

from __future__ import annotations

import time

import numpy as np

from core.errors import DeviceError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.sim.faults import FaultPlan
from drivers.sim.world import Pacer, SimWorld
from schemas.devices import SimArmConfig


class SimArm(ThreadedDevice):
    def __init__(self, config: SimArmConfig, world: SimWorld, realtime: bool = True):
        super().__init__(StreamInfo(config.name, "arm", config.rate_hz, {
            "qpos": FieldInfo((config.joints,), "float64", "rad"),
            "gripper": FieldInfo((1,), "float64", ""),
        }))
        self.config = config
        self.world = world
        self.faults = FaultPlan(config.faults, salt=201)
        self.pacer = Pacer(config.rate_hz, realtime)
        self.seq = 0

    def command(self, qpos: np.ndarray, gripper: float) -> None:
        """Send a joint position target (rad) and a gripper closure (0 open .. 1 closed)."""
        self.world.command(qpos, gripper)

    def _connect(self) -> None:
        now = time.monotonic_ns()
        if self.faults.opened_ns is None:
            self.faults.opened_ns = now
        if self.faults.disconnected(now):
            raise DeviceError(f"{self.config.name}: simulated arm unplugged")
        self.pacer.next_ns = max(self.pacer.next_ns, now)

    def _capture(self) -> CapturedSamples | None:
        t = self.pacer.wait(self._stop)
        if self.faults.disconnected(time.monotonic_ns()):
            raise DeviceError(f"{self.config.name}: simulated arm unplugged")
        qpos = self.world.step_to(np.array([t], np.int64))
        seq = np.array([self.seq])
        self.seq += 1
        if self.faults.draw(1, self.faults.faults.drop_rate)[0]:
            return None
        return CapturedSamples(device_ns=self.faults.device_clock(np.array([t])), seq=seq,
                       values={"qpos": qpos, "gripper": np.array([[self.world.gripper]])})
