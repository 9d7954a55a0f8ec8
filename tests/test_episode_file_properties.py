"""Property: whatever is done to an episode file, every command ends in one line or a result,
and what `validate` passes, `inspect` and `export` handle (hypothesis over damage and values).

The damages are tests/malformed.py's, combined at random, plus values written over random rows
of random datasets (NaN, zero, negative, huge); each example is a copy of one real recording.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.cli import main
from tests.malformed import MALFORMED, record_source

PROGRESS = re.compile(r"\[\d+:\d\d")  # a progress bar's line: its elapsed time
VALUES = (0, -1, 2**62, float("nan"), float("inf"))
EXAMPLES = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return record_source(tmp_path_factory.mktemp("source"), duration_s=1.0)


def numeric_datasets(f: h5py.File) -> list[str]:
    found: list[str] = []
    f.visititems(lambda name, ds: found.append(name) if isinstance(ds, h5py.Dataset)
                 and ds.dtype.kind in "iuf" and ds.ndim >= 1 and ds.shape[0] else None)
    return sorted(found)


def overwrite(f: h5py.File, which: float, where: float, value: float) -> None:
    """`value` over one row of one numeric dataset (picked by the fractions given)."""
    names = numeric_datasets(f)
    if not names:
        return
    ds = f[names[min(int(which * len(names)), len(names) - 1)]]
    row = min(int(where * ds.shape[0]), ds.shape[0] - 1)
    if ds.dtype.kind in "iu" and not np.isfinite(value):
        value = -1
    info = np.iinfo(ds.dtype) if ds.dtype.kind in "iu" else None
    if info is not None:
        value = int(np.clip(value, info.min, info.max))
    ds[row] = value


fractions = st.floats(0, 1, allow_nan=False)


@pytest.mark.parametrize("examples", [pytest.param(20, id="fast"),
                                      pytest.param(200, id="long", marks=[pytest.mark.slow,
                                                                         pytest.mark.timeout(3600)])])
@pytest.mark.slow
def test_every_command_ends_cleanly_and_validate_is_a_promise(source, tmp_path_factory, capsys,
                                                               examples):
    @settings(EXAMPLES, max_examples=examples)
    @given(damages=st.lists(st.sampled_from(sorted(MALFORMED)), max_size=2, unique=True),
           edits=st.lists(st.tuples(fractions, fractions, st.sampled_from(VALUES)),
                          max_size=3))
    def check(damages: list[str], edits: list[tuple[float, float, float]]) -> None:
        work = tmp_path_factory.mktemp("example")
        path = work / "episode.h5"
        shutil.copy(source, path)
        with h5py.File(path, "r+") as f:
            for name in damages:
                # an earlier damage may have taken what this one changes
                with contextlib.suppress(KeyError, ValueError, TypeError):
                    MALFORMED[name](f)
            for which, where, value in edits:
                overwrite(f, which, where, value)
        codes = {}
        for command, args in (("validate", [str(path)]), ("inspect", [str(path)]),
                              ("export", ["--format", "robomimic", "--out",
                                          str(work / "out.hdf5"), str(path)])):
            codes[command] = main([command, *args])  # an exception here is a traceback
            said = capsys.readouterr()
            if command == "validate":  # its findings are results: one line each, on stdout
                found = [x for x in said.out.splitlines() if x.startswith(f"{path}: ")]
                assert bool(found) == bool(codes[command]), said
            elif codes[command]:  # one-line errors (beside progress bars), no traceback
                lines = [x for x in said.err.splitlines()
                         if x.strip() and not PROGRESS.search(x)]
                assert lines and all(x.startswith("collector: error: ") for x in lines), said
        if codes["validate"] == 0:
            assert codes["inspect"] == 0 and codes["export"] == 0, (damages, edits, codes)
        if not damages and not edits:  # the recording itself
            assert codes == {"validate": 0, "inspect": 0, "export": 0}, (codes, said)
        shutil.rmtree(work)

    check()
