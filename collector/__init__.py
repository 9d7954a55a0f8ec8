"""Collector: robot stations in, time-synchronized HDF5 episodes and efficiency accounts out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.storage.reader import Episode, open_episode

__version__ = "0.1.0"
__all__ = ["Episode", "__version__", "open_episode"]

_READER = ("Episode", "open_episode")


def __getattr__(name: str) -> Any:
    # Lazy, so that importing any collector module (or a driver's error from it) does not load
    # h5py and the reader; `from collector import open_episode` still works.
    if name in _READER:
        from collector.storage import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'collector' has no attribute {name!r}")
