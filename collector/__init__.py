"""Collector: robot stations in, time-synchronized HDF5 episodes and efficiency accounts out."""

from collector.storage.reader import Episode, open_episode

__version__ = "0.1.0"
__all__ = ["Episode", "__version__", "open_episode"]
