"""The real serial drivers wired to a simulated peer on the far end of their link: the peer
starts before the driver connects and stops after it disconnects."""

from __future__ import annotations

from drivers.serial_arm import SerialArm
from drivers.serial_sensor import SerialSensor
from drivers.sim.peers import SerialPeer, SimArmPeer, SimSensorPeer
from schemas.devices import SerialArmConfig, SerialSensorConfig


class _WithPeer:
    """Mixed in before a `ThreadedDevice`: its `open` and `close` bracket the peer's life."""

    peer: SerialPeer  # the ground truth, for tests

    def open(self) -> None:
        self.peer.start()
        super().open()  # type: ignore[misc]

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        self.peer.stop()


class WiredSerialSensor(_WithPeer, SerialSensor):
    def __init__(self, config: SerialSensorConfig, peer: SimSensorPeer):
        super().__init__(config)
        self.peer = peer


class WiredSerialArm(_WithPeer, SerialArm):
    def __init__(self, config: SerialArmConfig, peer: SimArmPeer):
        super().__init__(config)
        self.peer = peer
