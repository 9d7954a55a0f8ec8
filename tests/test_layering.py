"""Importing a driver loads no pipeline, storage or h5py (the import-linter contracts check the
imports statically; this checks what an import really loads, __init__ files included)."""

from __future__ import annotations

import subprocess
import sys


def test_a_driver_loads_neither_collector_nor_h5py():
    probe = ("import sys, drivers.base, drivers.sim.camera, core.codec; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('collector', 'h5py')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_collector_still_offers_open_episode():
    probe = ("import sys, collector; assert 'h5py' not in sys.modules; "
             "from collector import Episode, open_episode; "
             "from collector.storage.reader import open_episode as direct; "
             "assert open_episode is direct; print('h5py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
