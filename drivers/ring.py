"""A preallocated ring buffer of samples: a reader thread writes, the pipeline drains."""

from __future__ import annotations

import threading

import numpy as np


class SampleRing:
    """Fixed-capacity FIFO of samples, each a set of named numpy fields plus timestamps.

    Memory is allocated once. When the consumer falls behind, the newest samples are refused and
    counted as overflow, so a slow pipeline shows up in the accounts instead of in RAM.
    """

    def __init__(self, capacity: int, fields: dict[str, tuple[tuple[int, ...], np.dtype]]):
        self.capacity = capacity
        self._times = np.zeros((capacity, 3), np.int64)  # arrival, device, seq
        self._fields = {
            name: np.zeros((capacity, *shape), dtype) for name, (shape, dtype) in fields.items()
        }
        self._head = 0  # next slot to read
        self._size = 0
        self._overflow = 0
        self._lock = threading.Lock()

    def push(self, arrival_ns: np.ndarray, device_ns: np.ndarray, seq: np.ndarray,
             values: dict[str, np.ndarray]) -> int:
        """Append a block of samples; returns how many were refused for lack of room."""
        n = int(arrival_ns.shape[0])
        with self._lock:
            room = self.capacity - self._size
            take = min(n, room)
            if take:
                slots = (self._head + self._size + np.arange(take)) % self.capacity
                self._times[slots, 0] = arrival_ns[:take]
                self._times[slots, 1] = device_ns[:take]
                self._times[slots, 2] = seq[:take]
                for name, buf in self._fields.items():
                    buf[slots] = values[name][:take]
                self._size += take
            self._overflow += n - take
            return n - take

    def drain(self, limit: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], int, int]:
        """The oldest `limit` samples (all by default) as fresh arrays, the overflow since the
        last drain, and how many samples stay buffered."""
        with self._lock:
            take = self._size if limit is None else min(self._size, limit)
            # at most two contiguous runs (the ring wraps once): slice copies are a memcpy,
            # several times faster than fancy indexing for camera frames
            first = min(take, self.capacity - self._head)
            runs = [slice(self._head, self._head + first), slice(0, take - first)]
            times = np.concatenate([self._times[r] for r in runs])
            fields = {name: np.concatenate([buf[r] for r in runs])
                      for name, buf in self._fields.items()}
            overflow = self._overflow
            self._head = (self._head + take) % self.capacity
            self._size -= take
            self._overflow = 0
            return times, fields, overflow, self._size

    def clear(self) -> tuple[int, int | None]:
        """Forget every buffered sample (and the overflow count); returns how many there were
        and the arrival time of the newest."""
        with self._lock:
            thrown = self._size
            newest = None
            if thrown:
                newest = int(self._times[(self._head + thrown - 1) % self.capacity, 0])
            self._head = (self._head + self._size) % self.capacity
            self._size = 0
            self._overflow = 0
            return thrown, newest

    def __len__(self) -> int:
        return self._size
