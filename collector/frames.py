"""Camera frames travel by reference: perception picks frames by handle, computation fetches
only the frames it checks and encodes.

Perception needs only a frame's time; copying every frame into the pending buffer, onto the grid
and into the next stage's message cost more than encoding it. So each read's frames stay where
they arrived (the `RawBatch`, in this process or in Ray's object store) as a *block*; the
pipeline moves an int64 handle per frame, and a `GridBatch` carries the blocks its handles point
into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from collector.batch import HeldBlock, RawBatch
from core.codec import JPEG_FIELD, JPEG_SIZE_FIELD

FRAME_FIELD = "frame"  # per-sample handle: block * BLOCK_ROWS + row within the block
FRAME_BEFORE = "frame_before"  # handle of the frame the camera delivered before (-1: none)
FRAME_INDEX = "frame_index"  # video cameras: the frame's number this episode (-1: not encoded)
BLOCK_ROWS = 1 << 24  # more frames than one read of one camera can hold


def frame_handles(block: int, n: int) -> np.ndarray:
    return block * BLOCK_ROWS + np.arange(n, dtype=np.int64)


def blocks_of(handles: np.ndarray) -> np.ndarray:
    return np.unique(handles // BLOCK_ROWS)


class FrameBlocks:
    """The blocks that samples waiting in perception point into; bounded by `forget_before`.

    A block is whatever holds a read's frames: the `RawBatch` itself (inline engine) or the
    engine's `HeldBlock` on it (Ray engine: a reference into the object store).
    """

    def __init__(self) -> None:
        self._blocks: dict[int, RawBatch | HeldBlock] = {}
        self._next = 0

    def add(self, source: RawBatch | HeldBlock) -> int:
        block = self._next
        self._next += 1
        self._blocks[block] = source
        return block

    def needed(self, handles: list[np.ndarray]) -> dict[int, RawBatch | HeldBlock]:
        """The blocks behind `handles` (handles of ticks with no sample may point nowhere)."""
        keys: np.ndarray | list[int] = np.unique(
            np.concatenate([blocks_of(h[h >= 0]) for h in handles])) if handles else []
        return {int(k): self._blocks[int(k)] for k in keys if int(k) in self._blocks}

    @property
    def next_block(self) -> int:
        return self._next

    def forget_before(self, block: int) -> None:
        for key in [k for k in self._blocks if k < block]:
            del self._blocks[key]

    def clear(self) -> None:
        self._blocks.clear()


def frame_at(handle: int, camera: str, image_field: str,
             blocks: Mapping[int, RawBatch | HeldBlock]) -> np.ndarray | None:
    """The frame behind one handle, or None when its block is not at hand."""
    source = blocks.get(handle // BLOCK_ROWS) if handle >= 0 else None
    if source is None:
        return None
    assert isinstance(source, RawBatch), "the engine resolves held blocks before computation"
    fields = source.chunks[camera].fields
    row = handle % BLOCK_ROWS
    if image_field == JPEG_FIELD:  # the frame's bytes, not its whole slot
        return fields[JPEG_FIELD][row, :int(fields[JPEG_SIZE_FIELD][row, 0])]
    return fields[image_field][row]


def pick_frames(handles: np.ndarray, camera: str, image_field: str,
                blocks: Mapping[int, RawBatch | HeldBlock],
                missing: np.ndarray, shape: tuple[int, ...],
                blank: np.ndarray | None = None) -> Sequence[np.ndarray] | np.ndarray:
    """The frames behind `handles`, as views into their blocks (resolved `RawBatch`es).

    A tick with no sample whose block is gone (an empty stream) shows a black frame (`blank`,
    when given: a camera's frames are JPEG bytes); a tick with a sample whose block is gone is
    a bug upstream.
    """
    if len(handles) == 0:
        return np.zeros((0, *shape), np.uint8)
    black = blank
    frames = []
    for tick, handle in enumerate(handles.tolist()):  # one view per frame: encoding is per frame
        frame = frame_at(handle, camera, image_field, blocks)
        if frame is None:
            if not missing[tick]:
                raise LookupError(f"{camera}: frame block {handle // BLOCK_ROWS} of tick "
                                  f"{tick} did not reach computation")
            black = black if black is not None else np.zeros(shape, np.uint8)
            frame = black
        frames.append(frame)
    return frames
