"""`collector devices`: the cameras and serial ports on this machine, as YAML to paste."""

from __future__ import annotations

import argparse
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Found:
    yaml: str  # one device entry, ready for the station's devices: list
    note: str  # what else we could tell


def register(sub) -> None:
    parser = sub.add_parser("devices", help="list cameras and serial ports, ready to paste as YAML")
    parser.add_argument("--no-probe", action="store_true",
                        help="do not open cameras (faster; no resolution or fps)")
    parser.add_argument("--all", action="store_true",
                        help="also list built-in UARTs with no device behind them (ttyS*)")
    parser.set_defaults(func=list_devices)


def list_devices(args: argparse.Namespace) -> int:
    cameras = find_cameras(probe=not args.no_probe)
    ports, hidden = find_serial_ports(show_all=args.all)
    print("# cameras (type: opencv_camera)")
    if cameras:
        for cam in cameras:
            print(f"  - {cam.yaml}   # {cam.note}")
    else:
        print("#   none found (no /dev/video* devices); a video file or stream URL works as "
              "source: too")
    print("# serial ports (type: serial_sensor, or serial_arm for an arm)")
    if ports:
        for port in ports:
            print(f"  - {port.yaml}   # {port.note}")
    else:
        print("#   none found (no USB serial adapters); socket://host:port reaches "
              "serial-over-TCP")
    if hidden:
        print(f"#   ({hidden} built-in UART(s) with nothing attached not shown; --all lists them)")
    return 0


def find_cameras(probe: bool = True) -> list[Found]:
    found = []
    for i, path in enumerate(sorted(glob.glob("/dev/video*"), key=_number)):
        name = _sysfs_name(path)
        note = name or "video device"
        entry = f"{{name: cam{i}, type: opencv_camera, source: {path}"
        if probe:
            shape = _probe(path)
            if shape is None:
                note += "; could not read a frame (metadata node, or in use)"
            else:
                w, h, fps = shape
                entry += f", width: {w}, height: {h}, fps: {fps:g}"
        found.append(Found(entry + "}", note))
    return found


def find_serial_ports(show_all: bool = False) -> tuple[list[Found], int]:
    from serial.tools import list_ports

    found, hidden = [], 0
    for i, port in enumerate(sorted(list_ports.comports(), key=lambda p: p.device)):
        if port.hwid in (None, "", "n/a") and not show_all:
            hidden += 1
            continue
        details = [d for d in (port.description, port.manufacturer, port.product) if d
                   and d != "n/a"]
        if port.vid is not None:
            details.append(f"USB {port.vid:04x}:{port.pid:04x}")
        if port.serial_number:
            details.append(f"serial {port.serial_number}")
        stable = _by_id(port.device)
        device = stable or port.device
        entry = (f"{{name: serial{i}, type: serial_sensor, port: {device}, baudrate: 115200}}")
        note = "; ".join(dict.fromkeys(details)) or "serial port"
        found.append(Found(entry, f"{note}; add packet: or lines: (see README, Drivers)"))
    return found, hidden


def _number(path: str) -> int:
    m = re.search(r"(\d+)$", path)
    return int(m.group(1)) if m else 0


def _sysfs_name(path: str) -> str:
    try:
        return Path(f"/sys/class/video4linux/{Path(path).name}/name").read_text().strip()
    except OSError:
        return ""


def _by_id(device: str) -> str | None:
    """The stable /dev/serial/by-id/... name of a port, which survives replugging."""
    for link in glob.glob("/dev/serial/by-id/*"):
        if os.path.realpath(link) == os.path.realpath(device):
            return link
    return None


def _probe(path: str) -> tuple[int, int, float] | None:
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return None
        ok, frame = cap.read()
        if not ok or frame is None:
            return None
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        return frame.shape[1], frame.shape[0], round(fps, 2)
    finally:
        cap.release()
