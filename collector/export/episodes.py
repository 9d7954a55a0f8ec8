"""Which episodes an export takes: by outcome, by quality masks, and only files that validate.

The choice reads attributes and the per-tick flags of `/quality` only, so it is cheap enough to
run over a whole folder before anything is written; validation (`collector validate`'s own
check, every video packet decoded) runs on the episodes taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from collector.export.staging import ExportError
from collector.storage.layout import QUALITY, REJECTED_DIR, TIMESTAMPS
from collector.storage.reader import plain_attr
from collector.storage.validate import find_episodes, validate_file

MISSING = "missing"


@dataclass(frozen=True)
class Selection:
    """What an episode must be to be exported.

    outcomes: the outcomes taken (success only unless widened).
    max_missing: the largest fraction of ticks any one stream may have marked missing
        (None: no limit). Missing ticks hold a repeated sample and stay marked in the export.
    require_clean: flags (blurred, frozen, dropped, ...) no tick of any stream may carry."""

    outcomes: frozenset[str] = frozenset({"success"})
    max_missing: float | None = None
    require_clean: tuple[str, ...] = ()

    def describe(self) -> str:
        out = [f"outcome {' or '.join(sorted(self.outcomes))}"]
        if self.max_missing is not None:
            out.append(f"at most {self.max_missing:.1%} missing ticks per stream")
        out += [f"no {flag} tick" for flag in self.require_clean]
        return ", ".join(out)

    def verdict(self, f: h5py.File) -> str:
        """Why this open episode is left out; "" when it is taken."""
        outcome = plain_attr(f.attrs.get("outcome"))
        if outcome not in self.outcomes:
            return f"outcome {outcome}"
        if TIMESTAMPS not in f or QUALITY not in f:
            return "no /timestamps or /quality: not a complete episode"
        n = int(f[TIMESTAMPS].shape[0])
        if n == 0:
            return "no ticks"
        for stream, group in f[QUALITY].items():
            if self.max_missing is not None and MISSING in group:
                share = float(np.count_nonzero(group[MISSING][:n])) / n
                if share > self.max_missing:
                    return f"{stream} misses {share:.1%} of ticks (--max-missing " \
                           f"{self.max_missing:g})"
            for flag in self.require_clean:
                if flag in group and group[flag].dtype == np.bool_:
                    bad = int(np.count_nonzero(group[flag][:n]))
                    if bad:
                        return f"{stream} has {bad} {flag} tick(s) (--require-clean {flag})"
        return ""


@dataclass
class Selected:
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)  # "<path> (why)"


def sources(roots: Iterable[Path]) -> list[Path]:
    """Episode files named, or found under the folders named (their `rejected/` left out)."""
    out: list[Path] = []
    for root in map(Path, roots):
        if not root.exists():
            raise ExportError(f"{root}: no such file or folder")
        out += [p for p in find_episodes(root) if REJECTED_DIR not in p.parts or root == p]
    return out


def select(paths: list[Path], selection: Selection) -> Selected:
    """The episodes `selection` takes, in the order given; an error when it takes none, or
    when a flag asked for is one no episode has (a typo would otherwise take everything)."""
    chosen = Selected([])
    known: set[str] = set()
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                if QUALITY in f:
                    for group in f[QUALITY].values():
                        known |= {k for k, v in group.items() if v.dtype == np.bool_}
                why = selection.verdict(f)
        except OSError as exc:
            why = f"cannot open as HDF5 ({str(exc).splitlines()[0] if str(exc) else exc})"
        if why:
            chosen.skipped.append(f"{path} ({why})")
        else:
            chosen.paths.append(path)
    unknown = sorted(set(selection.require_clean) - known)
    if unknown and paths:
        raise ExportError(f"--require-clean {','.join(unknown)}: no such flag in these "
                          f"episodes; they have {', '.join(sorted(known)) or 'none'}")
    if not chosen.paths:
        raise ExportError(f"no episode is {selection.describe()} among {len(paths)} file(s); "
                          f"nothing exported (widen with --outcomes, --max-missing, "
                          f"--require-clean)")
    return chosen


def check_valid(path: Path) -> None:
    """Refuse an episode `collector validate` finds problems in: its arrays are not what its
    layout says, and an exporter would write garbage or stop half-way."""
    problems = validate_file(path)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ExportError(f"{path}: {problems[0]}{more}; `collector validate {path}` lists "
                          f"them; `collector recover` or leave the file out")
