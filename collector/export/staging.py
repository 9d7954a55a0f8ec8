"""An export is written under a temporary name beside its destination and renamed at the end.

The name is `.<out>.exporting`: hidden, and no `.h5`/`.partial` suffix, so `collector recover`
and `collector validate`, which look for episode files, never take a half-written export for a
crashed episode. A failed export removes it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from collector.errors import CollectorError

SUFFIX = ".exporting"


class ExportError(CollectorError):
    """An export that cannot be made as asked: nothing selected, a bad option, a bad source."""


def staging_path(out: Path) -> Path:
    return out.with_name(f".{out.name}{SUFFIX}")


@contextmanager
def staged(out: Path, folder: bool) -> Iterator[Path]:
    """Yield the temporary path to write; on success it becomes `out`, on any failure it goes.
    A folder destination must not exist yet (mixing two exports in one folder would make a
    dataset neither describes); a file destination is replaced."""
    out = Path(out)
    if folder and out.exists():
        raise ExportError(f"--out {out}: already exists; remove it or name a new folder")
    if not folder and out.is_dir():
        raise ExportError(f"--out {out}: is a folder; name the file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(out)
    _remove(tmp)  # left by an export that was killed
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    tmp.replace(out)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
