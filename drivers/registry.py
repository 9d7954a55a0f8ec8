"""Which driver serves which device type, and the simulated serial devices wired to them."""

from __future__ import annotations

from drivers.base import Device
from drivers.serial_arm import SerialArm
from drivers.serial_sensor import SerialSensor
from drivers.sim.peers import SimArmPeer, SimSensorPeer
from drivers.sim.wired import WiredSerialArm, WiredSerialSensor
from drivers.sim.world import SimWorld
from schemas.devices import (
    OpenCVCameraConfig,
    SerialArmConfig,
    SerialSensorConfig,
    SimArmConfig,
    SimSensorConfig,
)


def open_real_device(spec: SerialSensorConfig | SerialArmConfig | OpenCVCameraConfig,
                     stores_jpeg: bool = False) -> Device:
    """The driver for a hardware device entry of the station YAML. `stores_jpeg`: a camera's
    frames are stored as JPEG at its own size (what `passthrough: jpeg` needs)."""
    if isinstance(spec, SerialSensorConfig):
        return SerialSensor(spec)
    if isinstance(spec, SerialArmConfig):
        return SerialArm(spec)
    if isinstance(spec, OpenCVCameraConfig):
        from drivers.opencv_camera import OpenCVCamera

        return OpenCVCamera(spec, stores_jpeg)
    raise TypeError(f"no driver for device type {spec.type!r}")  # a new type without a driver


def sim_serial_sensor(spec: SimSensorConfig, world: SimWorld,
                      log_samples: int = 0) -> SerialSensor:
    """The simulated sensor on a pty (or TCP), read by the real `serial_sensor` driver."""
    peer = SimSensorPeer(spec, world, log_samples=log_samples)
    protocol = spec.protocol()
    kind = "lines" if spec.lines is not None else "packet"
    config = SerialSensorConfig(name=spec.name, type="serial_sensor", port=peer.url,
                                baudrate=spec.baudrate, rate_hz=spec.rate_hz, align=spec.align,
                                **{kind: protocol})
    return WiredSerialSensor(config, peer)


def sim_serial_arm(spec: SimArmConfig, world: SimWorld) -> SerialArm:
    """The simulated arm on a pty (or TCP), driven by the real `serial_arm` driver."""
    peer = SimArmPeer(spec, world)
    config = SerialArmConfig(name=spec.name, type="serial_arm", port=peer.url,
                             baudrate=spec.baudrate, rate_hz=spec.rate_hz, joints=spec.joints,
                             align=spec.align)
    return WiredSerialArm(config, peer)
