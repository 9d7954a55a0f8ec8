"""A preallocated ring buffer of samples: a reader thread writes, the pipeline drains."""

from __future__ import annotations

import threading

import numpy as np

OVERFLOW_SEQ_KEPT = 1 << 16  # per drain; past it, lost samples look like the device's drops

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
        self._lent = 0  # slots just before the head that the last drain lent out as views
        self._reserved = False  # the slot at the tail is lent to the producer (`reserve`)
        self._overflow = 0
        self._overflow_seq: list[np.ndarray] = []  # sequence numbers of those samples
        self._lock = threading.Lock()

    def push(self, arrival_ns: np.ndarray, device_ns: np.ndarray, seq: np.ndarray,
             values: dict[str, np.ndarray]) -> int:
        """Append a block of samples; returns how many were refused for lack of room."""
        n = int(arrival_ns.shape[0])
        with self._lock:
            assert not self._reserved, "push while a slot is reserved"
            take = min(n, self.capacity - self._size - self._lent)
            tail = (self._head + self._size) % self.capacity
            first = min(take, self.capacity - tail)
            # at most two slice copies (the ring wraps once): a memcpy each, and numpy lets
            # other threads run meanwhile
            for dst, src in ((slice(tail, tail + first), slice(0, first)),
                             (slice(0, take - first), slice(first, take))):
                if dst.stop <= dst.start:
                    continue
                self._times[dst, 0] = arrival_ns[src]
                self._times[dst, 1] = device_ns[src]
                self._times[dst, 2] = seq[src]
                for name, buf in self._fields.items():
                    buf[dst] = values[name][src]
            self._size += take
            if take < n:
                self._count_overflow(seq[take:])
            return n - take

    def reserve(self) -> dict[str, np.ndarray] | None:
        """The next free slot's fields, as views for the producer to fill in place (a camera
        renders or converts its frame straight into the ring: no copy on the way); None when
        the ring is full, before anything was made. One slot at a time: `commit` it, or
        `release` it (a frame the device dropped)."""
        with self._lock:
            assert not self._reserved, "a slot is already reserved"
            if self._size + self._lent >= self.capacity:
                return None
            tail = (self._head + self._size) % self.capacity
            self._reserved = True
            return {name: buf[tail] for name, buf in self._fields.items()}

    def commit(self, arrival_ns: int, device_ns: int, seq: int) -> None:
        """The reserved slot holds a sample now: it joins the buffered ones."""
        with self._lock:
            assert self._reserved, "commit without a reserved slot"
            # the tail has not moved: drains take only committed slots, clears move the head
            # by exactly the committed ones
            tail = (self._head + self._size) % self.capacity
            self._times[tail] = (arrival_ns, device_ns, seq)
            self._size += 1
            self._reserved = False

    @property
    def reserved(self) -> bool:
        return self._reserved

    def release(self) -> None:
        """Give the reserved slot back unused."""
        with self._lock:
            self._reserved = False

    def drain(self, limit: int | None = None, lend: bool = False
              ) -> tuple[np.ndarray, dict[str, np.ndarray], int, np.ndarray]:
        """Every buffered sample, oldest first, and the overflow since the last drain: how
        many, and the sequence numbers of (at most OVERFLOW_SEQ_KEPT of) them.

        `limit`: at most this many, the newest: older ones are dropped and counted as overflow
        (a consumer that far behind would place them too late for their ticks anyway, and
        taking them would keep it behind).

        `lend`: hand out views into the ring instead of copies, valid until the next drain (for
        a caller that serializes them at once); samples that wrap around the ring's end are
        copied as usual (one drain in every few).
        """
        with self._lock:
            self._lent = 0  # the caller is done with what the last drain lent
            if limit is not None and self._size > limit:
                skip = self._size - limit
                self._count_overflow(self._times[(self._head + np.arange(skip)) % self.capacity, 2])
                self._head = (self._head + skip) % self.capacity
                self._size -= skip
            take = self._size
            if lend and take <= self.capacity - self._head:
                run = slice(self._head, self._head + take)
                times = self._times[run]
                fields = {name: buf[run] for name, buf in self._fields.items()}
                self._lent = take
            else:
                # at most two contiguous runs (the ring wraps once): slice copies are a memcpy,
                # several times faster than fancy indexing for camera frames
                first = min(take, self.capacity - self._head)
                runs = [slice(self._head, self._head + first), slice(0, take - first)]
                times = np.concatenate([self._times[r] for r in runs])
                fields = {name: np.concatenate([buf[r] for r in runs])
                          for name, buf in self._fields.items()}
            overflow, overflow_seq = self._overflow, self._take_overflow_seq()
            self._head = (self._head + take) % self.capacity
            self._size = 0
            self._overflow = 0
            return times, fields, overflow, overflow_seq

    def full(self) -> bool:
        return self._size + self._lent >= self.capacity

    def refuse(self, seq: np.ndarray) -> None:
        """Count samples a producer did not even offer because the ring was full."""
        with self._lock:
            self._count_overflow(seq)

    def _count_overflow(self, seq: np.ndarray) -> None:
        """So that perception can tell the samples we lost from those the device lost."""
        self._overflow += len(seq)
        if sum(len(s) for s in self._overflow_seq) < OVERFLOW_SEQ_KEPT:
            self._overflow_seq.append(np.asarray(seq, np.int64).copy())

    def _take_overflow_seq(self) -> np.ndarray:
        out = np.concatenate(self._overflow_seq) if self._overflow_seq else np.zeros(0, np.int64)
        self._overflow_seq = []
        return out

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
            self._lent = 0
            self._overflow = 0
            self._overflow_seq = []
            return thrown, newest

    def __len__(self) -> int:
        return self._size
