"""Ray is started once per process: local and bounded by default, or attached to a cluster."""

from __future__ import annotations

import os
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
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = engine.address or "a local Ray instance"
        raise PipelineError(f"could not start Ray at {where}: {exc}; check engine.address, or "
                            "use --engine inline") from None
    _startup_s = time.perf_counter() - started
    return _startup_s


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
