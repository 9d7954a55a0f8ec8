"""Who holds a partial's lock: /proc/locks read back against a real `flock` in another process."""

from __future__ import annotations

import subprocess
import sys

from collector.storage.partial_lock import Lock, in_use, lock_holders, orphaned, wait_for_orphans

HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_SH)  # as EpisodeWriter does
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


def test_a_live_holder_is_named_and_not_waited_for(tmp_path):
    partial = tmp_path / "ep.h5.partial"
    partial.write_bytes(b"x")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(partial)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert in_use(partial)
        assert holder.pid in lock_holders(partial)
        # a plain process whose parent (this test) lives: a recorder, never an orphan
        assert not orphaned(holder.pid)
        assert wait_for_orphans(partial, 10.0) is Lock.LIVE  # answered at once: skip it
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert not in_use(partial) and lock_holders(partial) == []
    assert wait_for_orphans(partial, 10.0) is Lock.FREE
