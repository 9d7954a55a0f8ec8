"""Finished episodes damaged from outside (tests/malformed.py), met by validate, inspect, replay.

validate rejects every malformed file, naming what is wrong; inspect and replay refuse it in
one line with a non-zero exit, never a traceback. Unusual but valid files pass and are read.
Bits flipped inside stored chunks are found, each chunk, by dataset and rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from collector.cli import main
from collector.storage.validate import check_file, validate_episode
from tests.conftest import run_cli
from tests.malformed import (
    MALFORMED,
    UNUSUAL,
    VIDEO,
    flip_chunk_bytes,
    make_malformed,
    record_source,
    truncated,
)

TRUNCATED_AT = (0, 512, 4096, 100_000, 400_000)
# rows all readable but out of order: validate fails them, inspect and replay may read them
OUT_OF_ORDER = {"timestamps_not_increasing", "raw_arrival_backwards", "video_index_backwards"}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return record_source(tmp_path_factory.mktemp("source"))


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The real CLI entry, in this process (a traceback fails the test with it)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_refused(capsys, path: Path, *args: str, or_read: bool = False) -> None:
    """One line naming the file, non-zero exit (`or_read`: or a clean success)."""
    code, _, err = cli(capsys, *args)
    if or_read and code == 0:
        assert err.strip() == "" or "Traceback" not in err, err
        return
    lines = err.strip().splitlines()
    assert code != 0, (path.name, args, err)
    assert len(lines) == 1 and lines[0].startswith("collector: error: "), (path.name, err)
    assert str(path) in lines[0]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_malformed_file_is_refused_in_one_line(source, tmp_path, capsys, name):
    path = make_malformed(source, tmp_path, name)
    code, out, _ = cli(capsys, "validate", str(path))
    named = [line for line in out.splitlines() if line.startswith(f"{path}: /")]
    assert code == 1 and named, (name, out)
    readable = name in OUT_OF_ORDER
    assert_refused(capsys, path, "inspect", str(path), or_read=readable)
    assert_refused(capsys, path, "replay", str(path), "--to", "video",
                   str(tmp_path / "sheet.png"), "--frames", "2", or_read=readable)


@pytest.mark.parametrize("size", TRUNCATED_AT)
def test_a_truncated_file_is_refused_in_one_line(source, tmp_path, capsys, size):
    path = truncated(source, tmp_path, size)
    code, out, _ = cli(capsys, "validate", str(path))
    assert code == 1 and f"{path}: /: cannot open as HDF5" in out
    assert_refused(capsys, path, "inspect", str(path))
    assert_refused(capsys, path, "replay", str(path), "--to", "video",
                   str(tmp_path / "out.mp4"))


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_but_valid_files_pass_and_are_read(source, tmp_path, capsys, name):
    path = make_malformed(source, tmp_path, name)
    assert validate_episode(path).problems == []
    code, out, err = cli(capsys, "inspect", str(path))
    assert code == 0 and "episode" in out, err
    with h5py.File(path) as f:
        ticks = f["timestamps"].shape[0]
    code, out, err = cli(capsys, "replay", str(path), "--to", "video",
                         str(tmp_path / "sheet.png"), "--frames", "2")
    if ticks:
        assert code == 0 and (tmp_path / "sheet.png").stat().st_size > 0, err
    else:  # nothing to replay: said so in one line
        assert code != 0 and err.strip().splitlines() == [
            f"collector: error: {path}: the episode has no grid ticks to replay"]


def test_the_commands_end_in_a_subprocess_too(source, tmp_path):
    """The same through the installed command: one line on stderr, no traceback, an end."""
    for name in ("control_hz_zero", "image_no_height", "layout_not_json"):
        path = make_malformed(source, tmp_path, name)
        for args in (["inspect", str(path)],
                     ["replay", str(path), "--to", "video", str(tmp_path / "o.mp4")]):
            result = run_cli(*args)
            assert result.returncode == 1, result.stderr
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_recorded_episode_has_checksums_everywhere(source):
    """Every fixed-size dataset carries Fletcher-32; every video packet a CRC-32 that matches."""
    with h5py.File(source) as f:
        fixed = []
        f.visititems(lambda name, ds: fixed.append(ds) if isinstance(ds, h5py.Dataset)
                     and h5py.check_vlen_dtype(ds.dtype) is None else None)
        assert fixed and all(ds.fletcher32 for ds in fixed), [
            ds.name for ds in fixed if not ds.fletcher32]
        crc = f[f"videos/{VIDEO}/crc32"]
        assert crc.shape == f[f"videos/{VIDEO}/packets"].shape and crc.dtype == np.uint32
    check = validate_episode(source)
    assert check.valid and check.checksums and check.chunks is not None
    assert check.chunks.checked == len(fixed) and check.chunks.unchecked == 0


def test_every_flipped_chunk_is_found_by_dataset_and_rows(source, tmp_path):
    path = tmp_path / "rotten.h5"
    shutil.copy(source, path)
    damaged = flip_chunk_bytes(path, np.random.default_rng(18))
    assert sum(map(len, damaged.values())) > 50  # every chunk of every dataset
    problems = check_file(path).problems
    for name, firsts in damaged.items():
        mine = [p for p in problems if p.startswith(f"{name}: rows ")]
        assert len(mine) == 1, (name, problems)
        assert f"Fletcher-32 checksum mismatch in {len(firsts)} of {len(firsts)} chunks" in mine[0]
        assert mine[0].startswith(f"{name}: rows {firsts[0]}..")


def test_one_flipped_chunk_is_named_with_its_rows(source, tmp_path, capsys):
    path = tmp_path / "one.h5"
    shutil.copy(source, path)
    with h5py.File(path) as f:
        ds = f["observations/ft/value"]
        info = ds.id.get_chunk_info(0)
        rows = min(ds.chunks[0], ds.shape[0])  # the last chunk's rows end with the data
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 10)
        byte = fh.read(1)[0]
        fh.seek(info.byte_offset + 10)
        fh.write(bytes([byte ^ 0x40]))
    code, out, _ = cli(capsys, "validate", str(path))
    assert code == 1
    assert (f"{path}: /observations/ft/value: rows 0..{rows - 1} corrupt (Fletcher-32 checksum "
            "mismatch in 1 of") in out
    assert " MB/s)" in out
    code, out, _ = cli(capsys, "validate", "--quick", str(path))  # the sampled check misses it
    assert code == 0 and "chunks:" not in out
    assert_refused(capsys, path, "inspect", str(path))


def test_a_file_without_checksums_validates_and_says_so(tmp_path, capsys):
    old = Path(__file__).parent / "data" / "format1_episode.h5"
    code, out, _ = cli(capsys, "validate", str(old))
    assert code == 0, out
    assert "1 file(s) have no checksums" in out
