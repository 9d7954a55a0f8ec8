"""`collector devices` through the real CLI: what it finds is valid YAML for a station."""

from __future__ import annotations

import glob

import yaml

from schemas.devices import OpenCVCameraConfig, SerialSensorConfig
from tests.conftest import run_cli


def test_devices_lists_cameras_and_ports_as_yaml():
    result = run_cli("devices", "--all")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "# cameras" in out and "# serial ports" in out
    entries = yaml.safe_load(out) or []  # comments vanish; entries form a YAML list
    cameras = [e for e in entries if e["type"] == "opencv_camera"]
    ports = [e for e in entries if e["type"] == "serial_sensor"]
    if not glob.glob("/dev/video*"):
        assert "none found (no /dev/video* devices)" in out and not cameras
    for entry in cameras:
        OpenCVCameraConfig.model_validate(entry)
    for entry in ports:  # a protocol is the one thing the user must add
        SerialSensorConfig.model_validate({**entry, "lines": {"fields": [{"name": "value"}]}})
    if not ports:
        assert "none found (no USB serial adapters)" in out
