"""Ray is started once per process: local and bounded by default, or attached to a cluster."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from collector.errors import PipelineError
from schemas.station import EngineConfig

_startup_s: float | None = None
_watchdog: subprocess.Popen | None = None  # held open: its stdin closes when we exit


def station_resource(station_id: str) -> str:
    """The custom resource a node offers when a station's hardware is plugged into it.

    Start such a node with `ray start --resources '{"station:<id>": 1}'`; a local Ray started
    by Collector offers it for the station it runs.
    """
    return f"station:{station_id}"


# Ray names its unix sockets <temp_dir>/session_<date>_<time>_<usec>_<pid>/sockets/plasma_store;
# the kernel takes at most 107 bytes (sun_path): the session part takes up to 64 of them
SOCKET_PATH_MAX = 107
SESSION_SOCKET_CHARS = len("/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store")


# Ray records an event for every task and actor call and keeps up to 100 000 of them in its
# GCS, for the dashboard and `ray list tasks`, neither of which a station uses. At the shipped
# station's ~100 calls a second the GCS grew 0.23 MB/s (about 200 MB before it evicts: memory
# growth an operator reads as a leak); on empty calls the reports cost ~2 % of a core. A local
# Ray goes without them; a cluster Collector attaches to keeps its own settings.
LOCAL_SYSTEM_CONFIG = {"task_events_report_interval_ms": 0}


def ray_temp_dir(engine: EngineConfig, output_dir: str | Path) -> Path | None:
    """Where a local Ray keeps its files: `engine.temp_dir`, else beside the station's episodes
    (`<output_dir>/.ray`); None (Ray's default, the system temp folder) when that path is too
    long for Ray's unix sockets."""
    folder = Path(engine.temp_dir or Path(output_dir) / ".ray").expanduser().absolute()
    if len(str(folder)) + SESSION_SOCKET_CHARS > SOCKET_PATH_MAX:
        if engine.temp_dir:
            raise PipelineError(
                f"engine.temp_dir {folder} is {len(str(folder))} characters: Ray's socket paths "
                f"under it would pass the {SOCKET_PATH_MAX}-byte unix limit; choose one of at "
                f"most {SOCKET_PATH_MAX - SESSION_SOCKET_CHARS}")
        return None
    return folder


class _TokenNotice(logging.Filter):
    """Drops Ray's notice that a new local Ray turned token authentication on: it is printed
    on every start, and the station keeps the setting (set RAY_AUTH_MODE to choose). Every
    other warning, the token ones included, passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(TOKEN_NOTICE)


TOKEN_NOTICE = "Token authentication is enabled for this Ray cluster."


def _quiet_token_notice() -> None:
    log = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _TokenNotice) for f in log.filters):
        log.addFilter(_TokenNotice())


def ensure_ray(engine: EngineConfig, station_id: str, output_dir: str | Path = ".") -> float:
    """Start (or attach to) Ray unless this process already has; return the start-up seconds."""
    global _startup_s
    import ray

    if ray.is_initialized():
        return _startup_s or 0.0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    kwargs: dict = {"include_dashboard": False, "logging_level": "WARNING"}
    if engine.address:
        kwargs["address"] = engine.address
    else:
        _quiet_token_notice()
        kwargs["object_store_memory"] = engine.object_store_mb * 1024 * 1024
        kwargs["resources"] = {station_resource(station_id): 1}
        kwargs["_system_config"] = dict(LOCAL_SYSTEM_CONFIG)
        temp_dir = ray_temp_dir(engine, output_dir)
        if temp_dir is not None:
            temp_dir.mkdir(parents=True, exist_ok=True)
            kwargs["_temp_dir"] = str(temp_dir)
    try:
        _init_beside_signals(kwargs)
    except Exception as exc:
        if not _is_startup_failure(exc):
            raise  # a bug: its traceback says where
        where = engine.address or "a local Ray instance"
        raise PipelineError(f"could not start Ray at {where}: {exc}; check engine.address, or "
                            "use --engine inline") from None
    _startup_s = time.perf_counter() - started
    if not engine.address:
        _start_watchdog()
    return _startup_s


def _is_startup_failure(exc: Exception) -> bool:
    """Ray failing to come up, as opposed to a bug: the errors it raises for an unreachable
    address or a bad setting, and the plain `Exception` its node raises when the raylet or the
    GCS does not register in time ("The current node timed out during startup"), which a
    loaded host provokes."""
    return isinstance(exc, (ConnectionError, RuntimeError, ValueError)) or type(exc) is Exception


class _NoSigtermNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SIGTERM handler is not set")


def _init_beside_signals(kwargs: dict) -> None:
    """`ray.init` in a thread of its own, which then lives as long as the process.

    On the main thread, Ray first replaces the SIGTERM handler with `sys.exit(15)`, so a
    SIGTERM during its start (many seconds on a loaded host) killed the station mid-start with
    exit 15, or 134 when it hit Ray's C++ start-up. Off the main thread, Ray leaves the handlers
    alone, and the station's own keep working (the main thread runs them while it waits here).
    The thread must not end: Ray starts its GCS and raylet with PR_SET_PDEATHSIG, which Linux
    fires when the *thread* that spawned them exits, so a finished init thread would SIGKILL
    the local cluster seconds after it came up. As a daemon thread it ends with the process,
    which is the fate-sharing Ray meant."""
    import ray

    failure: list[BaseException] = []
    started = threading.Event()

    def init() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # re-raised on the calling thread
            failure.append(exc)
        finally:
            started.set()
        if not failure:
            threading.Event().wait()  # hold the spawning thread for the cluster's lifetime

    notice = _NoSigtermNotice()  # Ray's warning that it did not set its handler: intended
    worker_log = logging.getLogger("ray._private.worker")
    worker_log.addFilter(notice)
    try:
        thread = threading.Thread(target=init, name="ray-init", daemon=True)
        thread.start()
        while not started.wait(0.2):  # short waits: signal handlers run on this thread between
            pass
    finally:
        worker_log.removeFilter(notice)
    if failure:
        raise failure[0]


def _start_watchdog() -> None:
    """The local Ray's processes end with this one, however it ends (collector/engines/
    ray_watchdog.py: after a SIGKILL, Ray's agents would otherwise linger a minute)."""
    global _watchdog
    script = Path(__file__).with_name("ray_watchdog.py")
    # its stdin is the pipe whose end tells it we are gone; its own session keeps a Ctrl-C
    # in the terminal from reaching it before we have shut Ray down
    _watchdog = subprocess.Popen([sys.executable, str(script), str(os.getpid())],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)


def capture_placement(station_id: str) -> dict:
    """Actor options that put a station's capture on the node its hardware is on.

    On a single-node Ray with no such resource, everything is local anyway: no constraint.
    """
    import ray

    name = station_resource(station_id)
    if ray.cluster_resources().get(name, 0) > 0:
        return {"resources": {name: 0.01}}
    if len([n for n in ray.nodes() if n.get("Alive")]) <= 1:
        return {}
    raise PipelineError(
        f"no Ray node offers the resource {name!r} for station {station_id}; start the node "
        f"the station's hardware is on with: ray start --resources '{{\"{name}\": 1}}'")
