"""A position-controlled robot arm over serial: joint state in, position commands out.

The protocol (binary, little-endian, every packet checked by CRC-16/CCITT-FALSE over the bytes
after the header), for an arm with J joints:

    arm -> host, state, at the arm's rate:
        A5 5A | seq u4 | t_us u4 (arm clock, us) | qpos f4 x J (rad) | gripper f4 (0..1) | crc16
    host -> arm, command, whenever the host sends one:
        C3 3C | seq u4 | qpos f4 x J (rad target) | gripper f4 (0 open .. 1 closed)  | crc16

The arm moves toward the newest valid command; it ignores a command whose CRC fails. Both
packets are ordinary `PacketSpec`s, so the state stream is parsed by the same vectorized parser
as any serial sensor.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from core.errors import DeviceError
from drivers.base import CapturedSamples, FieldInfo, StreamInfo, ThreadedDevice
from drivers.packet import PacketFormat, PacketStream
from drivers.serial_port import ReadPacer, capture_packets, open_port, write_all
from schemas.devices import PacketField, PacketSpec, SerialArmConfig


def arm_state_packet(joints: int) -> PacketSpec:
    return PacketSpec(header="A55A", byteorder="little", checksum="crc16-ccitt", fields=[
        PacketField(name="seq", dtype="u4", role="sequence"),
        PacketField(name="t_us", dtype="u4", role="device_time", unit="us"),
        PacketField(name="qpos", dtype="f4", count=joints, unit="rad"),
        PacketField(name="gripper", dtype="f4"),
    ])


def arm_command_packet(joints: int) -> PacketSpec:
    return PacketSpec(header="C33C", byteorder="little", checksum="crc16-ccitt", fields=[
        PacketField(name="seq", dtype="u4", role="sequence"),
        PacketField(name="qpos", dtype="f4", count=joints, unit="rad"),
        PacketField(name="gripper", dtype="f4"),
    ])


class SerialArm(ThreadedDevice):
    def __init__(self, config: SerialArmConfig):
        super().__init__(StreamInfo(config.name, "arm", config.rate_hz, {
            "qpos": FieldInfo((config.joints,), "float64", "rad"),
            "gripper": FieldInfo((1,), "float64", ""),
        }))
        self.config = config
        self.state = PacketStream(arm_state_packet(config.joints))
        self.commands = PacketFormat(arm_command_packet(config.joints))
        self.commands_sent = 0
        self.commands_lost = 0  # while the arm was unplugged
        self._write_lock = threading.Lock()
        self.port = None
        self.pacer = ReadPacer(config.read_interval_ms / 1000, self._stop)  # t_us: a clock

    def command(self, qpos: np.ndarray, gripper: float) -> None:
        """Send a joint position target (rad) and a gripper closure (0 open .. 1 closed)."""
        packet = self.commands.encode({
            "seq": np.array([self.commands_sent]),
            "qpos": np.asarray(qpos, np.float32)[None],
            "gripper": np.array([[gripper]], np.float32),
        }, 1).tobytes()
        with self._write_lock:
            port = self.port
            self.commands_sent += 1
            if port is None:
                self.commands_lost += 1
                return
            try:
                write_all(port, packet, self.config.name)
            except DeviceError:
                self.commands_lost += 1  # the reader thread notices and reconnects

    def _connect(self) -> None:
        port = open_port(self.config.port, self.config.baudrate, self.config.name)
        self.state.reset()
        with self._write_lock:
            self.port = port

    def _capture(self) -> CapturedSamples | None:
        capture = capture_packets(self.port, self.config.name, self.state, self.pacer)
        self._note_parser(self.state.failures, self.state.resets)
        if capture is not None:  # joint state is float64 on the grid, whatever the wire carries
            capture.values = {k: v.astype(np.float64) for k, v in capture.values.items()}
        return capture

    def _disconnect(self) -> None:
        with self._write_lock:
            port, self.port = self.port, None
        if port is not None:
            with contextlib.suppress(Exception):  # already gone with the cable
                port.close()
