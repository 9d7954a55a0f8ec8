"""Builds the devices of a station from its config: one place that knows every device type."""

from __future__ import annotations

from dataclasses import dataclass

from collector.task import PickPlaceTask, TaskRunner
from drivers.base import Device
from drivers.sim.arm import SimArm
from drivers.sim.camera import SimCamera
from drivers.sim.sensor import SimSensor
from drivers.sim.world import SimWorld
from schemas.devices import SimArmConfig, SimCameraConfig, SimSensorConfig
from schemas.station import StationConfig


@dataclass
class Rig:
    """The open devices of one station, and the task runner when the station has an arm."""

    devices: list[Device]
    task: TaskRunner | None

    def streams(self) -> list[Device]:
        return [*self.devices, self.task] if self.task else list(self.devices)

    def open(self) -> None:
        opened = []
        try:
            for device in self.streams():
                device.open()
                opened.append(device)
        except Exception:
            for device in opened:
                device.close()
            raise

    def close(self) -> None:
        for device in self.streams():
            device.close()


def build_rig(config: StationConfig, realtime: bool = True) -> Rig:
    world = SimWorld(joints=_joints(config))
    devices: list[Device] = []
    arm = None
    views = 0
    for spec in config.devices:
        if isinstance(spec, SimCameraConfig):
            devices.append(SimCamera(spec, world, view=views, realtime=realtime))
            views += 1
        elif isinstance(spec, SimSensorConfig):
            # Max mode unthrottles the cameras only: sensor, arm and task threads spinning flat
            # out would only starve the process's GIL of the frames being measured.
            devices.append(SimSensor(spec, world, realtime=True))
        elif isinstance(spec, SimArmConfig):
            arm = SimArm(spec, world, realtime=True)
            devices.append(arm)
        else:
            from drivers.registry import open_real_device  # real hardware: imported on demand

            devices.append(open_real_device(spec))
    task = None
    if arm is not None:
        episode = config.episode
        task = TaskRunner(arm, PickPlaceTask(arm.config.joints, episode.task_success_rate),
                          episode.control_hz, realtime=True)
    return Rig(devices, task)


def _joints(config: StationConfig) -> int:
    arms = [d for d in config.devices if isinstance(d, SimArmConfig)]
    return arms[0].joints if arms else 6

