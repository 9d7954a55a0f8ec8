"""The sample ring every threaded driver fills: bounded, counted, and honest about what it lost."""

from __future__ import annotations

import numpy as np

from drivers.ring import SampleRing

FRAME = ((4, 4, 3), np.dtype(np.uint8))


def push(ring: SampleRing, seqs) -> int:
    seq = np.asarray(seqs, np.int64)
    frames = np.broadcast_to(seq[:, None, None, None] % 256, (len(seq), 4, 4, 3)).astype(np.uint8)
    return ring.push(seq * 10, seq * 10, seq, {"image": frames})


def test_a_full_ring_refuses_the_newest_and_names_them():
    ring = SampleRing(4, {"image": FRAME})
    assert push(ring, range(6)) == 2
    times, fields, overflow, overflow_seq = ring.drain()
    np.testing.assert_array_equal(times[:, 2], [0, 1, 2, 3])
    assert overflow == 2 and overflow_seq.tolist() == [4, 5]
    np.testing.assert_array_equal(fields["image"][:, 0, 0, 0], [0, 1, 2, 3])


def test_a_capped_read_takes_the_newest_and_counts_the_rest_as_overflow():
    ring = SampleRing(8, {"image": FRAME})
    push(ring, range(7))
    times, fields, overflow, overflow_seq = ring.drain(limit=3)
    np.testing.assert_array_equal(times[:, 2], [4, 5, 6])
    np.testing.assert_array_equal(fields["image"][:, 0, 0, 0], [4, 5, 6])
    assert overflow == 4 and overflow_seq.tolist() == [0, 1, 2, 3]
    assert len(ring) == 0


def test_lent_views_stay_valid_until_the_next_drain_and_wrapped_runs_are_copied():
    ring = SampleRing(6, {"image": FRAME})
    push(ring, range(4))
    _, lent, _, _ = ring.drain(lend=True)
    assert np.shares_memory(lent["image"], ring._fields["image"])
    push(ring, range(4, 10))  # room for only 2: the 4 lent slots are not overwritten
    np.testing.assert_array_equal(lent["image"][:, 0, 0, 0], [0, 1, 2, 3])
    times, wrapped, overflow, overflow_seq = ring.drain(lend=True)
    assert overflow == 4 and overflow_seq.tolist() == [6, 7, 8, 9]
    np.testing.assert_array_equal(times[:, 2], [4, 5])
    assert push(ring, range(10, 15)) == 1  # the 2 slots just lent are still held
    times, _, _, overflow_seq = ring.drain(lend=True)
    np.testing.assert_array_equal(times[:, 2], [10, 11, 12, 13])
    assert overflow_seq.tolist() == [14]
    ring.drain()  # gives back what was lent
    push(ring, range(20, 24))  # these wrap around the ring's end
    times, wrapped, _, _ = ring.drain(lend=True)
    np.testing.assert_array_equal(times[:, 2], [20, 21, 22, 23])
    assert not np.shares_memory(wrapped["image"], ring._fields["image"])
    np.testing.assert_array_equal(wrapped["image"][:, 0, 0, 0], [20, 21, 22, 23])


def test_clear_forgets_samples_and_overflow():
    ring = SampleRing(3, {"image": FRAME})
    push(ring, range(5))
    ring.refuse(np.array([5]))
    assert ring.full() and ring.clear() == (3, 20)
    _, _, overflow, overflow_seq = ring.drain()
    assert overflow == 0 and overflow_seq.size == 0 and not ring.full()


def test_a_reserved_slot_is_filled_in_place_and_a_full_ring_reserves_none():
    ring = SampleRing(3, {"image": FRAME})
    for seq in range(3):
        slot = ring.reserve()
        assert slot is not None and np.shares_memory(slot["image"], ring._fields["image"])
        slot["image"][:] = seq + 1  # the producer draws straight into the ring
        if seq == 1:
            ring.release()  # a frame the device dropped: the slot is reused
            slot = ring.reserve()
            assert slot is not None
            slot["image"][:] = seq + 1
        ring.commit(seq * 10, seq * 10 + 1, seq)
    assert ring.reserve() is None  # full: nothing to draw into, before anything is made
    times, fields, overflow, _ = ring.drain(lend=True)
    np.testing.assert_array_equal(times, [[0, 1, 0], [10, 11, 1], [20, 21, 2]])
    np.testing.assert_array_equal(fields["image"][:, 0, 0, 0], [1, 2, 3])
    assert overflow == 0
    assert ring.reserve() is None  # the lent slots are still the reader's
    ring.drain()
    slot = ring.reserve()  # wraps to the ring's start
    assert slot is not None
    slot["image"][:] = 9
    ring.clear()  # between episodes: the reserved slot is not among those thrown away
    ring.commit(30, 31, 3)
    times, fields, _, _ = ring.drain()
    assert times[:, 2].tolist() == [3] and fields["image"][0, 0, 0, 0] == 9
