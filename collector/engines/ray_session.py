"""Ray is started once per process: local and bounded by default, or attached to a cluster."""

from __future__ import annotations

import logging
import os
import threading
import time

from collector.errors import PipelineError
from schemas.station import EngineConfig

_startup_s: float | None = None


def station_resource(station_id: str) -> str:
    """The custom resource a node offers when a station's hardware is plugged into it.

    Start such a node with `ray start --resources '{"station:<id>": 1}'`; a local Ray started
    by Collector offers it for the station it runs.
    """
    return f"station:{station_id}"


def ensure_ray(engine: EngineConfig, station_id: str) -> float:
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
        kwargs["object_store_memory"] = engine.object_store_mb * 1024 * 1024
        kwargs["resources"] = {station_resource(station_id): 1}
    try:
        _init_beside_signals(kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = engine.address or "a local Ray instance"
        raise PipelineError(f"could not start Ray at {where}: {exc}; check engine.address, or "
                            "use --engine inline") from None
    _startup_s = time.perf_counter() - started
    return _startup_s


class _NoSigtermNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SIGTERM handler is not set")


def _init_beside_signals(kwargs: dict) -> None:
    """`ray.init` in a thread of its own. On the main thread, Ray first replaces the SIGTERM
    handler with `sys.exit(15)`, so a SIGTERM during its start (many seconds on a loaded host)
    killed the station mid-start with exit 15, or 134 when it hit Ray's C++ start-up. Off the
    main thread, Ray leaves the handlers alone, and the station's own keep working (the main
    thread runs them while it waits here)."""
    import ray

    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(**kwargs)
        except BaseException as exc:  # re-raised on the calling thread
            failure.append(exc)

    notice = _NoSigtermNotice()  # Ray's warning that it did not set its handler: intended
    worker_log = logging.getLogger("ray._private.worker")
    worker_log.addFilter(notice)
    try:
        thread = threading.Thread(target=init, name="ray-init", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.2)  # short joins: signal handlers run on this thread in between
    finally:
        worker_log.removeFilter(notice)
    if failure:
        raise failure[0]


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
