"""`collector recover` on a full disk (a 30 MB tmpfs): one line, the disk-full exit code, the
partial untouched and no `.recovering` copy left to take the last free space."""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from collector.errors import DiskFullError
from tests.conftest import ROOT, partials, run_cli, wait_until
from tests.killed_partials import sigkilled_partial


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def killed_partial(tmp_path_factory) -> Path:
    return sigkilled_partial(tmp_path_factory.mktemp("killed"))


def fill(folder: Path, leave: int = 0) -> Path:
    """Write one file until the disk has `leave` bytes or fewer free."""
    filler = folder / "filler"
    block = b"\0" * (1 << 20)
    try:
        # unbuffered: a write the full disk refused leaves nothing for close() to flush again
        # (buffered, close raised ENOSPC once when recover's copy took the last bytes first)
        fh = open(filler, "wb", buffering=0)  # noqa: SIM115  (closed below)
    except OSError as exc:  # full already (recover's own copy took the rest): the state asked
        assert exc.errno == errno.ENOSPC
        return filler
    with fh:
        while shutil.disk_usage(folder).free > leave:
            size = min(len(block), max(shutil.disk_usage(folder).free - leave, 4096))
            try:
                fh.write(block[:size])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def said(stderr: str) -> list[str]:
    """stderr without the progress bar's lines."""
    return [x for x in stderr.strip().splitlines() if not x.startswith("recovering ")]


def place(partial: Path, disk: Path) -> Path:
    day = disk / "sim-01" / "2026-12-01"
    day.mkdir(parents=True)
    return Path(shutil.copy(partial, day / partial.name))


@pytest.mark.slow
def test_a_full_disk_stops_recover_before_it_writes(small_disk, killed_partial):
    partial = place(killed_partial, small_disk)
    before = partial.read_bytes()
    fill(small_disk, leave=partial.stat().st_size // 2)
    done = run_cli("recover", str(small_disk))
    assert done.returncode == DiskFullError.exit_code, done.stdout + done.stderr
    [line] = said(done.stderr)
    assert line.startswith("collector: error: disk full:") and "free some space" in line
    assert partial.read_bytes() == before  # untouched, still there to recover later
    assert not list(small_disk.rglob("*.recovering")) and not list(small_disk.rglob("*.unlocked"))
    # space freed: the same partial recovers
    (small_disk / "filler").unlink()
    again = run_cli("recover", str(small_disk))
    assert again.returncode == 0, again.stdout + again.stderr
    assert not partials(small_disk) and len(list(small_disk.rglob("*.h5"))) == 1


@pytest.mark.slow
def test_the_disk_filling_during_recover_leaves_nothing_behind(small_disk, killed_partial):
    """Another process fills the disk while recover copies: recover either finished first or
    stops with the disk-full line; either way no `.recovering` file and the data kept."""
    partial = place(killed_partial, small_disk)
    proc = subprocess.Popen([sys.executable, "-m", "collector", "recover", str(small_disk)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: bool(list(small_disk.rglob("*.recovering"))) or proc.poll() is not None,
                   "recover starts its copy")
        fill(small_disk)
        out, err = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert "Traceback" not in err, err
    assert not list(small_disk.rglob("*.recovering")), "a .recovering copy was left behind"
    finals = list(small_disk.rglob("*.h5"))
    if proc.returncode == 0:
        [final] = finals
        with h5py.File(final) as f:
            assert f.attrs["outcome"] == "recovered"
    else:
        assert proc.returncode == DiskFullError.exit_code, out + err
        [line] = said(err)
        assert line.startswith("collector: error: disk full")
        assert partial.exists() and not finals
