"""Ray is started once per process: local and bounded by default, or attached to a cluster."""

from __future__ import annotations

import os
import time

from collector.errors import PipelineError
from schemas.station import EngineConfig

_startup_s: float | None = None


def ensure_ray(engine: EngineConfig) -> float:
    """Start (or attach to) Ray unless this process already has; return the start-up seconds."""
    global _startup_s
    import ray

    if ray.is_initialized():
        return _startup_s or 0.0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = time.perf_counter()
    kwargs: dict = {"include_dashboard": False, "logging_level": "WARNING",
                    "log_to_driver": True}
    if engine.address:
        kwargs["address"] = engine.address
    else:
        kwargs["object_store_memory"] = engine.object_store_mb * 1024 * 1024
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = engine.address or "a local Ray instance"
        raise PipelineError(f"could not start Ray at {where}: {exc}; check engine.address, or "
                            "use --engine inline") from None
    _startup_s = time.perf_counter() - started
    return _startup_s
