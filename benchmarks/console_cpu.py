"""What an open operator page costs the station: CPU of `collector run` (its whole process
tree, Ray workers included) with pages open against closed, in one run, alternating windows.

A page here is what the browser's page does, in this process (not the station's): one
`/events` stream, and a GET of `/previews/<camera>.jpg` each time the stream names a new
preview. The station records in auto mode throughout.

    python -m benchmarks.console_cpu [--pages N] [--window-s S] [--set key=value ...]

Beside the windows (which a busy host makes noisy: other load moves the station's own CPU by
more than a page costs), it times the page's own work in this process, per item, and scales it
to the page's rates: one snapshot (`EventHub.snapshot_text`, from the station's real status)
4 times a second, and one preview (`PreviewTap.take` on a frame of the station's size) per
camera 4 times a second. The HTTP serving of those is not in that figure.

Writes benchmarks/results/console_cpu.json. The goal: under 5 % of one core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import skimage.data
import skimage.transform

from collector.daemon.console import EVENTS_HZ, ConsoleSource, EventHub
from collector.daemon.previews import PreviewStore
from collector.previews import PREVIEW_HZ, PreviewTap
from schemas.api import Status

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "console_cpu.json"
GOAL_PERCENT = 5.0


class Page:
    """One open page: the event stream, and each new preview fetched once."""

    def __init__(self, base: str):
        self.base = base
        self.snapshots = 0
        self.previews = 0
        self.preview_bytes = 0
        self.stream_bytes = 0
        self._stop = threading.Event()
        self._response = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._follow()
        except (OSError, ValueError, AttributeError):
            if not self._stop.is_set():  # closing the stream from `close` ends it so
                raise

    def _follow(self) -> None:
        shown: dict[str, int] = {}
        self._response = urllib.request.urlopen(self.base + "/events", timeout=30)
        for raw in self._response:
            if self._stop.is_set():
                break
            line = raw.decode()
            if not line.startswith("data: "):
                continue
            self.stream_bytes += len(raw)
            self.snapshots += 1
            for camera, p in json.loads(line[6:])["previews"].items():
                if shown.get(camera) != p["seq"]:
                    shown[camera] = p["seq"]
                    with urllib.request.urlopen(f"{self.base}/previews/{camera}.jpg",
                                                timeout=30) as r:
                        self.preview_bytes += len(r.read())
                    self.previews += 1

    def close(self) -> None:
        self._stop.set()
        if self._response is not None:
            self._response.close()
        self._thread.join(timeout=10)


def tree_cpu_s(root: psutil.Process) -> float:
    """User + system CPU seconds of `root` and every live descendant."""
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def measure(root: psutil.Process, seconds: float) -> float:
    """CPU of the tree over `seconds`, as % of one core."""
    c0, t0 = tree_cpu_s(root), time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for an event
    return 100 * (tree_cpu_s(root) - c0) / (time.monotonic() - t0)


def cpu_ms(work, repeat: int) -> float:
    """CPU milliseconds of one call of `work`, over `repeat` calls."""
    work()
    t0 = time.process_time()
    for _ in range(repeat):
        work()
    return 1000 * (time.process_time() - t0) / repeat


def work_costs(status: Status, frame_shape: tuple[int, int]) -> dict:
    """The page's own work per item, and per second at its rates, in this process."""
    hub = EventHub(ConsoleSource(lambda: status, PreviewStore(), list, lambda: 40.0, 2.0,
                                 "pick_place"))
    snapshot_ms = cpu_ms(hub.snapshot_text, 400)
    photo = skimage.transform.resize(skimage.data.astronaut(), frame_shape,
                                     preserve_range=True).astype(np.uint8)
    tap = PreviewTap()
    preview_ms = cpu_ms(lambda: tap.take("cam", photo, 0, 0), 200)
    cameras = sum(1 for h in status.devices.values() if h.get("kind") == "camera")
    per_s = EVENTS_HZ * snapshot_ms + PREVIEW_HZ * cameras * preview_ms
    return {"snapshot_cpu_ms": round(snapshot_ms, 3), "preview_cpu_ms": round(preview_ms, 3),
            "frame_shape": list(frame_shape), "cameras": cameras,
            "work_percent_of_one_core": round(per_s / 10, 2)}


def wait_for_line(proc: subprocess.Popen, event: str, timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    for line in proc.stdout:
        record = json.loads(line)
        if record.get("event") == event:
            return record
        if time.monotonic() > deadline:
            break
    raise SystemExit(f"collector run: no {event} line within {timeout_s:g} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "sim_station.yaml"))
    parser.add_argument("--pages", type=int, default=1)
    parser.add_argument("--window-s", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="closed/open pairs")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--out", default=str(RESULT))
    parser.add_argument("--frame-width", type=int, default=640, help="the cameras' width")
    parser.add_argument("--frame-height", type=int, default=480)
    args = parser.parse_args()

    out_dir = tempfile.mkdtemp(prefix="console-cpu-")
    sets = [f"station.output_dir={out_dir}", "api.port=0", *args.sets]
    cmd = [sys.executable, "-m", "collector", "run", args.config, "--session", "bench"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        base = f"http://127.0.0.1:{wait_for_line(proc, 'api_listening')['port']}"
        wait_for_line(proc, "episode_started")
        threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
        root = psutil.Process(proc.pid)
        time.sleep(args.warmup_s)  # the first episode's cold start is not the steady state
        windows = []
        for _ in range(args.rounds):
            windows.append({"pages": 0, "cpu_percent": round(measure(root, args.window_s), 2)})
            pages = [Page(base) for _ in range(args.pages)]
            time.sleep(2.0)  # the first previews are taken; then the steady cost is measured
            before = [(p.snapshots, p.previews, p.preview_bytes, p.stream_bytes) for p in pages]
            cpu = measure(root, args.window_s)
            after = [(p.snapshots, p.previews, p.preview_bytes, p.stream_bytes) for p in pages]
            for p in pages:
                p.close()
            got = [sum(a[i] - b[i] for a, b in zip(after, before, strict=True)) for i in range(4)]
            windows.append({"pages": args.pages, "cpu_percent": round(cpu, 2),
                            "snapshots_per_s": round(got[0] / args.window_s, 2),
                            "previews_per_s": round(got[1] / args.window_s, 2),
                            "preview_kb_per_s": round(got[2] / 1e3 / args.window_s, 1),
                            "stream_kb_per_s": round(got[3] / 1e3 / args.window_s, 1)})
            time.sleep(4.0)  # previews stop WANTED_FOR_S after the last page left
        with urllib.request.urlopen(base + "/status", timeout=30) as r:
            status = Status.model_validate_json(r.read())
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    closed = [w["cpu_percent"] for w in windows if w["pages"] == 0]
    opened = [w["cpu_percent"] for w in windows if w["pages"]]
    delta = sum(opened) / len(opened) - sum(closed) / len(closed)
    result = {
        "taken_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "load_average": [round(x, 2) for x in os.getloadavg()]},
        "config": args.config, "sets": args.sets, "pages": args.pages,
        "window_s": args.window_s, "windows": windows,
        "closed_cpu_percent": round(sum(closed) / len(closed), 2),
        "open_cpu_percent": round(sum(opened) / len(opened), 2),
        "page_cost_percent_of_one_core": round(delta, 2),
        "goal_percent": GOAL_PERCENT, "within_goal": delta < GOAL_PERCENT,
        "work": work_costs(status, (args.frame_height, args.frame_width)),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
