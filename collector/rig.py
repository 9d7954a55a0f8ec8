"""Builds the devices of a station from its config: one place that knows every device type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from collector.replay.device import ReplayClock, ReplayDevice
from collector.task import TaskRunner, make_task
from drivers.base import Device
from drivers.sim.arm import SimArm
from drivers.sim.camera import SimCamera
from drivers.sim.sensor import SimSensor
from drivers.sim.world import SimWorld
from schemas.devices import ARM_TYPES, ReplayConfig, SimArmConfig, SimCameraConfig, SimSensorConfig
from schemas.station import StationConfig

if TYPE_CHECKING:  # the hardware drivers are imported on demand (pyserial)
    from drivers.serial_arm import SerialArm


@dataclass
class Rig:
    """The open devices of one station, and the task runner when the station has an arm (a
    replay device takes that role in a station without one)."""

    devices: list[Device]
    task: TaskRunner | ReplayDevice | None

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
    arm: SimArm | SerialArm | None = None
    views = 0
    replay_clock = ReplayClock()  # every replay device of a rig plays on one clock
    for spec in config.devices:
        if isinstance(spec, SimCameraConfig):
            devices.append(SimCamera(spec, world, view=views, realtime=realtime))
            views += 1
        elif isinstance(spec, SimSensorConfig):
            if spec.link == "inprocess":
                # max mode unthrottles cameras only: a sensor spinning flat out starves the GIL
                devices.append(SimSensor(spec, world, realtime=True))
            else:  # a peer speaking the serial protocol, read by the real driver
                from drivers.registry import sim_serial_sensor

                devices.append(sim_serial_sensor(spec, world))
        elif isinstance(spec, SimArmConfig):
            if spec.link == "inprocess":
                arm = SimArm(spec, world, realtime=True)
            else:
                from drivers.registry import sim_serial_arm

                arm = sim_serial_arm(spec, world)
            devices.append(arm)
        elif isinstance(spec, ReplayConfig):
            devices.append(ReplayDevice(spec, replay_clock, realtime=realtime,
                                        step_ns=int(config.episode.chunk_ms * 1e6)))
        else:
            from drivers.registry import open_real_device  # real hardware: imported on demand

            device = open_real_device(spec, stores_jpeg(config, spec.name))
            devices.append(device)
            if isinstance(spec, ARM_TYPES):
                arm = cast("SerialArm", device)  # what open_real_device opens for an arm
    task: TaskRunner | ReplayDevice | None = None
    if arm is not None:
        episode = config.episode
        task = TaskRunner(arm, make_task(episode, arm.config.joints), episode.control_hz,
                          realtime=True)
    replays = [d for d in devices if isinstance(d, ReplayDevice)]
    if task is None and replays:  # a replay stream takes the task's role: it anchors the replay
        task = replays[0]
        devices.remove(task)
    return Rig(devices, task)


def stores_jpeg(config: StationConfig, camera: str) -> bool:
    """Whether a camera's frames are stored as JPEG at the size it delivers them: then a camera
    that delivers JPEG can keep its own bytes (opencv_camera `passthrough: jpeg`)."""
    spec = config.pipeline.images.for_camera(camera)
    return spec.encoding == "jpeg" and spec.resize is None


def _joints(config: StationConfig) -> int:
    arms = [d for d in config.devices if isinstance(d, ARM_TYPES)]
    return arms[0].joints if arms else 6

