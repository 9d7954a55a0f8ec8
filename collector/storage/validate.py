"""Check episode files against the layout schema: one message per problem, naming the path."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from pydantic import ValidationError

from collector.errors import EpisodeFileError
from collector.storage.checksums import (
    ChunkCheck,
    check_chunks,
    frame_crc_problems,
    packet_crcs,
)
from collector.storage.layout import (
    EFFICIENCY,
    IMAGES,
    LAYOUT_ATTR,
    PARTIAL_SUFFIX,
    RAW,
    TIMESTAMPS,
    VLEN_UINT8,
)
from collector.storage.reader import Episode, open_episode, plain_attr
from collector.storage.videos import VideoCheck, check_video, video_length
from collector.storage.writer import hdf5_dtype
from core.codec import decode_frame
from schemas.episode import (
    FORMAT,
    FORMAT_VERSION,
    EfficiencyAccounts,
    EpisodeMetadata,
    unflatten_accounts,
)
from schemas.layout import (
    NO_FRAME,
    VIDEO_CRC,
    DatasetSpec,
    EpisodeLayout,
    ImageSpec,
    StreamSpec,
    frame_crc_path,
    has_frame_crcs,
    image_dataset,
    video_path,
)

# Problems of order: rows that are all readable, but out of the order the format promises (times
# going back). `validate` fails them; the commands that only read (inspect, replay) still can.
NOT_INCREASING, BACK_IN_TIME, FRAME_GOES_BACK = ("not increasing at row", "goes back in time at",
                                                 "goes back from frame")
SAMPLED_FRAMES = 8  # JPEG/PNG frames decoded per camera unless every frame is asked for
READ_VERSIONS = (1, 2)  # format 1: every camera per tick; 2: video cameras (/videos)


@dataclass
class FileCheck:
    """What validating one file found: its problems, each video camera's decode check, and
    (unless quick) the read of every chunk."""

    problems: list[str] = field(default_factory=list)
    videos: list[VideoCheck] = field(default_factory=list)
    chunks: ChunkCheck | None = None  # None: --quick, no chunk was read in full
    checksums: bool = False  # the file carries checksums (written since they exist)
    # JPEG/PNG cameras whose frames have no CRC-32 (files written before frame checksums)
    unchecked_frames: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems


def find_episodes(root: Path) -> list[Path]:
    root = Path(root)
    return [root] if root.is_file() else sorted(root.rglob("*.h5"))


def validate_episode(path: Path) -> FileCheck:
    """The full check of one episode, as `collector validate` makes it by default: every chunk
    read (and its checksum verified), every video packet decoded. What passes, every command
    can read. `.problems`: one `/path/inside: what is wrong` each; empty (`.valid`): valid."""
    return check_file(path)


def open_valid(path: str | Path) -> Episode:
    """`open_episode` for the commands that read a whole episode (inspect, replay): a finished
    file is first checked for structure (tens of milliseconds: packet CRCs and a few sampled
    JPEG/PNG frames, no video decoded, no chunk read in full), so a malformed one is refused
    with its first problem instead of failing deep in a command; rows out of order alone
    (`NOT_INCREASING`...) are still read. A partial file
    (`.h5.partial`, being written or left by a crash) opens as it is."""
    path = Path(path)
    if not path.is_file():
        raise EpisodeFileError(f"{path}: no such episode file")
    if not path.name.endswith(PARTIAL_SUFFIX):
        problems = [p for p in check_file(path, quick=True, decode=False).problems
                    if not any(order in p for order in (NOT_INCREASING, BACK_IN_TIME,
                                                         FRAME_GOES_BACK))]
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise EpisodeFileError(f"{path}: not a valid episode: {problems[0]}{more}; "
                                   f"`collector validate {path}` lists every problem")
    return open_episode(path)


def unreadable(path: str | Path, exc: OSError) -> EpisodeFileError:
    """A read that failed inside a file that looked valid: damaged data (a chunk whose
    checksum fails, bytes cut off), said in one line."""
    first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return EpisodeFileError(f"{path}: data unreadable ({first}); `collector validate {path}` "
                            "names the damaged datasets and rows")


def validate_file(path: Path, all_frames: bool = False, quick: bool = False) -> list[str]:
    """Every problem found in one file, as `/path/inside: what is wrong`. Empty: valid."""
    return check_file(path, all_frames, quick).problems


def check_file(path: Path, all_frames: bool = False, quick: bool = False,
               decode: bool = True) -> FileCheck:
    """`validate_file`, with how each video camera's packets decoded (every packet is) and how
    the chunks read. `quick`: structure, packet CRCs and sampled JPEG/PNG frames only, no
    chunk read in full; `decode` False: no video decoded either (tens of milliseconds)."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        return FileCheck([f"/: cannot open as HDF5 ({first})"])
    with f:
        try:
            return _check_open(f, all_frames, quick, decode)
        except OSError as exc:  # HDF5 metadata (a group, an attribute) damaged on disk
            first = str(exc).splitlines()[0] if str(exc) else "OSError"
            return FileCheck([f"/: unreadable HDF5 structure ({first})"])


def _check_open(f: h5py.File, all_frames: bool, quick: bool, decode: bool) -> FileCheck:
    out = FileCheck(_metadata(f))
    layout, more = _layout(f)
    out.problems += more
    out.checksums = layout is not None and layout.checksums
    if not quick:  # first: the checks below read values, and a damaged chunk fails a read
        out.chunks = check_chunks(f)
        if out.chunks.problems:
            out.problems += out.chunks.problems
            return out
        if layout is not None:
            out.problems += _frame_crcs(f, layout, out)
    out.problems += _timestamps(f)
    if layout is not None:
        out.problems += _datasets(f, layout, all_frames) + _images(f, layout)
        for s in layout.streams:
            if s.is_video:
                out.problems += _video(f, layout, s, out.videos if decode else None)
        if not out.problems:
            out.problems += _outcome(f)
    out.problems += _efficiency(f)
    return out


def _metadata(f: h5py.File) -> list[str]:
    attrs = {k: plain_attr(v) for k, v in f.attrs.items()}
    out = []
    if attrs.get("format") != FORMAT:
        out.append(f"/: attribute 'format' is {attrs.get('format')!r}, expected {FORMAT!r}")
    elif attrs.get("format_version") not in READ_VERSIONS:
        out.append(f"/: attribute 'format_version' is {attrs.get('format_version')!r}; this "
                   f"Collector reads versions {', '.join(map(str, READ_VERSIONS))} (writes "
                   f"{FORMAT_VERSION})")
    try:
        EpisodeMetadata.model_validate(attrs)
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            if err["type"] == "missing":
                out.append(f"/: missing attribute '{name}'")
            elif name not in ("format", "format_version"):
                out.append(f"/: attribute '{name}' {err['msg'].lower()}")
    return out + _rates(attrs) + _rig_config(attrs)


def _rates(attrs: dict[str, Any]) -> list[str]:
    """A grid rate every command can divide by."""
    hz = attrs.get("control_hz")
    if isinstance(hz, int | float) and not (math.isfinite(hz) and hz > 0):
        return [f"/: attribute 'control_hz' is {hz}, expected a rate above 0 Hz"]
    return []


def _rig_config(attrs: dict[str, Any]) -> list[str]:
    """The station YAML the episode was recorded with (replay and recover read it back)."""
    text = attrs.get("rig_config")
    if not isinstance(text, str):
        return []  # missing or of the wrong type: reported with the other attributes
    try:
        rig = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return [f"/: attribute 'rig_config' is not YAML ({first})"]
    if rig is not None and not isinstance(rig, dict):
        return [f"/: attribute 'rig_config' is a YAML {type(rig).__name__}, expected the "
                "station's mapping"]
    return []


def _outcome(f: h5py.File) -> list[str]:
    """An episode that says it succeeded holds at least one tick."""
    outcome = plain_attr(f.attrs.get("outcome"))
    if outcome == "success" and TIMESTAMPS in f and f[TIMESTAMPS].shape[0] == 0:
        return ["/: outcome 'success' but no tick recorded (/timestamps is empty)"]
    return []


def _layout(f: h5py.File) -> tuple[EpisodeLayout | None, list[str]]:
    if LAYOUT_ATTR not in f.attrs:
        return None, [f"/: missing attribute '{LAYOUT_ATTR}' (the dataset list); datasets "
                      "not checked"]
    try:
        return EpisodeLayout.model_validate_json(plain_attr(f.attrs[LAYOUT_ATTR])), []
    except ValidationError as exc:
        return None, [f"/: attribute '{LAYOUT_ATTR}' does not describe a layout "
                      f"({exc.error_count()} errors)"]


def _timestamps(f: h5py.File) -> list[str]:
    if TIMESTAMPS not in f:
        return [f"/{TIMESTAMPS}: missing"]
    ts = f[TIMESTAMPS]
    if ts.ndim != 1 or ts.dtype != np.int64:
        return []  # reported with the other datasets
    values = ts[:]
    bad = np.flatnonzero(np.diff(values) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        return [f"/{TIMESTAMPS}: {NOT_INCREASING} {i} ({values[i]} after {values[i - 1]}"
                f"; {bad.size} such row(s))"]
    return []


def _datasets(f: h5py.File, layout: EpisodeLayout, all_frames: bool) -> list[str]:
    out = []
    n = f[TIMESTAMPS].shape[0] if TIMESTAMPS in f else None
    for spec in layout.grid_datasets():
        out += _dataset(f, spec, n)
    for s in layout.streams:
        raw = layout.raw_datasets(s)
        lengths = {d.path: f[d.path].shape[0] for d in raw if d.path in f}
        for spec in raw:
            out += _dataset(f, spec, None)
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{p.rsplit('/', 1)[1]} {m}" for p, m in lengths.items())
            out.append(f"/{RAW}/{s.name}: datasets differ in length ({sizes})")
        arrival = f"{RAW}/{s.name}/arrival_ns"
        if arrival in lengths:
            bad = np.flatnonzero(np.diff(f[arrival][:]) < 0)
            if bad.size:
                out.append(f"/{arrival}: {BACK_IN_TIME} row {int(bad[0]) + 1}")
        if s.image is not None and not s.is_video and IMAGES + "/" + s.name in f:
            out += _frames(f[f"{IMAGES}/{s.name}"], s.image, all_frames)
    return out


def _video(f: h5py.File, layout: EpisodeLayout, s: StreamSpec,
           checks: list[VideoCheck] | None) -> list[str]:
    """A video camera: its datasets of one length, each packet matching its CRC-32, the grid's
    frame indices in range and never going back, and every packet decoding to a frame of the
    camera's size (`checks` None: not decoded)."""
    specs = layout.video_datasets(s)
    out = [p for d in specs for p in _dataset(f, d, None)]
    where = "/" + video_path(s.name)
    if out or video_path(s.name) not in f:
        return out
    group = f[video_path(s.name)]
    lengths = {d.path.rsplit("/", 1)[1]: f[d.path].shape[0] for d in specs}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{k} {m}" for k, m in lengths.items())
        out.append(f"{where}: datasets differ in length ({sizes})")
    missing = [k for k in ("codec", "width", "height") if k not in group.attrs]
    if missing:
        return [*out, f"{where}: missing attribute(s) {', '.join(missing)}: cannot decode"]
    if layout.checksums and not out:
        out += _packet_crcs(group, where)
    frames = video_length(group)
    grid = f"{IMAGES}/{s.name}"
    if grid in f and f[grid].dtype == np.int64:
        out += _frame_indices(f[grid][:], frames, grid)
    if checks is None:
        return out
    check = check_video(group, s.name)
    checks.append(check)
    if check.problem:
        out.append(f"{where}/packets[{check.decodable}]: camera {s.name!r} frame "
                   f"{check.decodable} does not decode ({check.problem}); {check.decodable} "
                   f"of {check.frames} frames do")
    return out


def _packet_crcs(group: h5py.Group, where: str) -> list[str]:
    """Each packet against the CRC-32 the writer stored beside it."""
    try:
        stored = group[VIDEO_CRC][:]
        packets = group["packets"][:]
    except OSError:
        return []  # a damaged chunk: named by the chunk check
    bad = np.flatnonzero(packet_crcs(packets) != stored)
    if not bad.size:
        return []
    rows = ", ".join(map(str, bad[:5].tolist())) + (", ..." if bad.size > 5 else "")
    return [f"{where}/packets: rows {rows} corrupt (CRC-32 mismatch in {bad.size} of "
            f"{len(stored)} packets): the file was damaged after it was written"]


def _frame_crcs(f: h5py.File, layout: EpisodeLayout, out: FileCheck) -> list[str]:
    """Every JPEG/PNG frame against its CRC-32 (a frame's bytes can change and still decode);
    cameras of files written before frame checksums are noted in `out`, not failed."""
    problems = []
    for s in layout.streams:
        frames, crcs = f"{IMAGES}/{s.name}", frame_crc_path(s.name)
        if not has_frame_crcs(s) or frames not in f:
            continue
        if not layout.frame_checksums:
            out.unchecked_frames.append(s.name)
        elif crcs in f and not _dataset(f, DatasetSpec(crcs, (), "uint32", 1, grid=True), None) \
                and not _dataset(f, image_dataset(s), None):
            problems += frame_crc_problems(f[frames], f[crcs])
    return problems


def _images(f: h5py.File, layout: EpisodeLayout) -> list[str]:
    """A per-tick camera's dataset says how to read it: its size (and encoding), as declared."""
    out = []
    for s in layout.streams:
        path = f"{IMAGES}/{s.name}"
        if s.image is None or s.is_video or path not in f:
            continue
        attrs = f[path].attrs
        want = {"height": s.image.height, "width": s.image.width, "encoding": s.image.encoding}
        for key, value in want.items():
            if key not in attrs:
                out.append(f"/{path}: missing attribute '{key}' (the layout says {value!r})")
            elif plain_attr(attrs[key]) != value:
                out.append(f"/{path}: attribute '{key}' is {plain_attr(attrs[key])!r}, but the "
                           f"layout says {value!r}")
    return out


def _frame_indices(index: np.ndarray, frames: int, path: str) -> list[str]:
    out = []
    bad = np.flatnonzero((index < NO_FRAME) | (index >= frames))
    if bad.size:
        out.append(f"/{path}: tick {int(bad[0])} shows frame {int(index[bad[0]])}, but the "
                   f"camera stored frames 0..{frames - 1} ({bad.size} such tick(s))")
    back = np.flatnonzero(np.diff(index) < 0)
    if back.size:
        i = int(back[0]) + 1
        out.append(f"/{path}: {FRAME_GOES_BACK} {int(index[i - 1])} to {int(index[i])} at "
                   f"tick {i} (ticks show frames in capture order)")
    return out


def _dataset(f: h5py.File, spec: DatasetSpec, rows: int | None) -> list[str]:
    where = "/" + spec.path
    if spec.path not in f:
        return [f"{where}: missing"]
    ds = f[spec.path]
    if not isinstance(ds, h5py.Dataset):
        return [f"{where}: is a group, expected a dataset"]
    out = []
    expected = hdf5_dtype(spec.dtype)
    if spec.dtype == VLEN_UINT8:
        base = h5py.check_vlen_dtype(ds.dtype)
        if base is None or base != np.uint8:
            out.append(f"{where}: dtype {ds.dtype}, expected variable-length uint8 (encoded "
                       "frames)")
    elif ds.dtype != expected:
        out.append(f"{where}: dtype {ds.dtype}, expected {expected}")
    if tuple(ds.shape[1:]) != tuple(spec.shape):
        out.append(f"{where}: shape per row {tuple(ds.shape[1:])}, expected {tuple(spec.shape)}")
    if rows is not None and ds.shape[0] != rows:
        out.append(f"{where}: {ds.shape[0]} rows, but /{TIMESTAMPS} has {rows} (truncated?)")
    return out


def _frames(ds: h5py.Dataset, image: ImageSpec, all_frames: bool) -> list[str]:
    n = ds.shape[0]
    if not n:
        return []
    rows = range(n) if all_frames else sorted(set(np.linspace(0, n - 1, SAMPLED_FRAMES,
                                                              dtype=int).tolist()))
    expected = (image.height, image.width, image.channels)
    for i in rows:
        try:
            frame = decode_frame(ds[i], image.encoding)
        except (ValueError, OSError) as exc:
            return [f"/{ds.name.lstrip('/')}[{i}]: does not decode as {image.encoding} ({exc})"]
        if frame.shape != expected:
            return [f"/{ds.name.lstrip('/')}[{i}]: decodes to {frame.shape}, expected {expected}"]
    return []


def _efficiency(f: h5py.File) -> list[str]:
    if EFFICIENCY not in f:
        return [f"/{EFFICIENCY}: missing"]
    attrs = {k: plain_attr(v) for k, v in f[EFFICIENCY].attrs.items()}
    try:
        EfficiencyAccounts.model_validate(unflatten_accounts(attrs))
    except ValidationError as exc:
        return [f"/{EFFICIENCY}: attribute '{'.'.join(map(str, e['loc']))}' "
                f"{e['msg'].lower()}" for e in exc.errors()]
    return []

