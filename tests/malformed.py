"""Malformed FINISHED episodes, one per kind of damage, made with plain h5py from a real one.

(The partials a crash leaves are recover's: tests/ names them apart.) `record_source` records
one real episode of the simulated station with a video camera (h264), a JPEG camera and a raw
camera beside the sensor and the arm; `make_malformed` copies it once per entry of `MALFORMED`
and damages the copy. Every command must meet each with a one-line error or a correct result:
never a traceback, never a hang; `collector validate` must reject each.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from tests.conftest import record_one

SOURCE_OVERRIDES = [
    *(f"devices.{cam}.{k}={v}" for cam in ("cam_high", "cam_left_wrist", "cam_right_wrist")
      for k, v in (("width", 96), ("height", 72))),
    "pipeline.images.encoding=h264",
    "pipeline.images.cameras={cam_left_wrist: {encoding: jpeg}, cam_right_wrist: "
    "{encoding: raw}}",
]
VIDEO, JPEG, RAW_CAM = "cam_high", "cam_left_wrist", "cam_right_wrist"


def record_source(out: Path, duration_s: float = 2.0) -> Path:
    """One real episode: h264, JPEG and raw cameras, the force/torque sensor and the arm."""
    return Path(record_one(out, duration_s, *SOURCE_OVERRIDES).path)


Damage = Callable[[h5py.File], None]


def _grid_paths(f: h5py.File) -> list[str]:
    layout = json.loads(f.attrs["layout"])
    out = ["timestamps"]
    for s in layout["streams"]:
        if s["kind"] == "camera":
            out.append(f"observations/images/{s['name']}")
            if f"checksums/images/{s['name']}" in f:  # a JPEG/PNG frame's CRC-32, one a tick
                out.append(f"checksums/images/{s['name']}")
        else:
            root = "actions" if s["kind"] == "action" else "observations"
            out += [f"{root}/{s['name']}/{k}" for k in s["fields"]]
        out += [f"quality/{s['name']}/{k}" for k in f[f"quality/{s['name']}"]]
    return out


def _resize_grid(rows: int) -> Damage:
    def damage(f: h5py.File) -> None:
        for path in _grid_paths(f):
            f[path].resize(rows, axis=0)
    return damage


def _attr(name: str, value: object, where: str = "/") -> Damage:
    def damage(f: h5py.File) -> None:
        f[where].attrs[name] = value
    return damage


def _del_attr(name: str, where: str = "/") -> Damage:
    def damage(f: h5py.File) -> None:
        del f[where].attrs[name]
    return damage


def _delete(path: str) -> Damage:
    def damage(f: h5py.File) -> None:
        del f[path]
    return damage


def _replace(path: str, make: Callable[[np.ndarray], np.ndarray]) -> Damage:
    """The dataset rewritten with other values, dtype or shape (attributes kept)."""
    def damage(f: h5py.File) -> None:
        old = f[path]
        data, attrs = old[()], dict(old.attrs)
        del f[path]
        new = f.create_dataset(path, data=make(data))
        new.attrs.update(attrs)
    return damage


def _set_rows(path: str, rows: slice, value: object) -> Damage:
    def damage(f: h5py.File) -> None:
        ds = f[path]
        data = ds[()]
        data[rows] = value
        ds[...] = data
    return damage


def _layout(edit: Callable[[dict], object]) -> Damage:
    def damage(f: h5py.File) -> None:
        layout = json.loads(f.attrs["layout"])
        edit(layout)
        f.attrs["layout"] = json.dumps(layout)
    return damage


def _stream(layout: dict, name: str) -> dict:
    return next(s for s in layout["streams"] if s["name"] == name)


def _packets(edit: Callable[[np.ndarray], None]) -> Damage:
    """The video camera's packets rewritten (as a bad encoder or a bad copy would)."""
    def damage(f: h5py.File) -> None:
        ds = f[f"videos/{VIDEO}/packets"]
        packets = ds[()]
        edit(packets)
        for i, p in enumerate(packets):
            ds[i] = p
    return damage


def _garble(packets: np.ndarray) -> None:
    p = packets[3].copy()
    p[len(p) // 2:] ^= 0x5A
    packets[3] = p


def _grow_one(path: str) -> Damage:
    """One row more in one dataset than in its siblings."""
    def damage(f: h5py.File) -> None:
        ds = f[path]
        ds.resize(ds.shape[0] + 1, axis=0)
    return damage


def _jpeg_garbage(f: h5py.File) -> None:
    ds = f[f"observations/images/{JPEG}"]
    for i in range(ds.shape[0]):
        ds[i] = np.frombuffer(b"not a jpeg", np.uint8)


def _quality_dtype(f: h5py.File) -> None:
    _replace("quality/ft/missing", lambda a: a.astype(np.float32))(f)


# name -> damage; the names say what is wrong, so a failing test names the input class
MALFORMED: dict[str, Damage] = {
    "zero_ticks_success": _resize_grid(0),
    "control_hz_zero": _attr("control_hz", 0.0),
    "control_hz_negative": _attr("control_hz", -30.0),
    "control_hz_nan": _attr("control_hz", float("nan")),
    "control_hz_inf": _attr("control_hz", float("inf")),
    "control_hz_text": _attr("control_hz", "thirty"),
    "image_no_height": _del_attr("height", f"observations/images/{JPEG}"),
    "image_no_width": _del_attr("width", f"observations/images/{RAW_CAM}"),
    "image_no_encoding": _del_attr("encoding", f"observations/images/{JPEG}"),
    "image_height_wrong": _attr("height", 4, f"observations/images/{JPEG}"),
    "rig_config_unparsable": _attr("rig_config", "devices: [unclosed\n  - {a: "),
    "rig_config_a_list": _attr("rig_config", "- 1\n- 2\n"),
    "rig_config_missing": _del_attr("rig_config"),
    "ft_rows_short": lambda f: f["observations/ft/value"].resize(
        f["timestamps"].shape[0] * 2 // 3, axis=0),
    "quality_rows_short": lambda f: f["quality/arm/dt_ns"].resize(5, axis=0),
    "timestamps_float_nan": _replace("timestamps", lambda a: np.where(
        np.arange(a.size) == 3, np.nan, a.astype(np.float64))),
    "timestamps_float_inf": _replace("timestamps", lambda a: np.where(
        np.arange(a.size) == 3, np.inf, a.astype(np.float64))),
    "timestamps_not_increasing": _set_rows("timestamps", slice(10, 12), 0),
    "timestamps_missing": _delete("timestamps"),
    "timestamps_2d": _replace("timestamps", lambda a: np.stack([a, a], axis=1)),
    "layout_missing": _del_attr("layout"),
    "layout_not_json": _attr("layout", "{not json"),
    "layout_unknown_stream_kind": _layout(lambda lo: _stream(lo, "ft").update(kind="laser")),
    "layout_names_absent_stream": _layout(lambda lo: lo["streams"].append(
        {**_stream(lo, "ft"), "name": "ghost"})),
    "quality_group_missing": _delete("quality/ft"),
    "stream_group_missing": _delete("observations/ft"),
    "qpos_wrong_dtype": _replace("observations/arm/qpos", lambda a: a.astype(np.float32)),
    "ft_wrong_shape": _replace("observations/ft/value", lambda a: a[:, :3]),
    "dataset_is_a_group": lambda f: (_delete("observations/arm/qpos")(f),
                                     f.create_group("observations/arm/qpos")),
    "quality_missing_wrong_dtype": _quality_dtype,
    "efficiency_missing": _delete("efficiency"),
    "efficiency_attr_text": _attr("availability", "high", "efficiency"),
    "format_foreign": _attr("format", "someone.else"),
    "format_version_99": _attr("format_version", 99),
    "outcome_unknown": _attr("outcome", "exploded"),
    "episode_id_missing": _del_attr("episode_id"),
    "raw_arrival_backwards": _set_rows("raw/ft/arrival_ns", slice(20, 21), 0),
    "raw_lengths_differ": _grow_one("raw/ft/seq"),
    "video_codec_missing": _del_attr("codec", f"videos/{VIDEO}"),
    "video_width_missing": _del_attr("width", f"videos/{VIDEO}"),
    "video_index_out_of_range": _set_rows(f"observations/images/{VIDEO}", slice(5, 6), 10**6),
    "video_index_backwards": _set_rows(f"observations/images/{VIDEO}", slice(-3, None), 0),
    "video_lengths_differ": _grow_one(f"videos/{VIDEO}/seq"),
    "video_packet_garbled": _packets(_garble),
    "video_packet_empty": _packets(lambda p: p.__setitem__(4, np.zeros(0, np.uint8))),
    "video_crc_missing": _delete(f"videos/{VIDEO}/crc32"),
    "jpeg_frame_garbage": _jpeg_garbage,
}


# name -> change that leaves a valid, if unusual, episode: every command must handle it
UNUSUAL: dict[str, Damage] = {
    "one_tick": _resize_grid(1),
    "outcome_failure_zero_ticks": lambda f: (_resize_grid(0)(f), _attr("outcome", "failure")(f)),
}


def make_malformed(source: Path, out: Path, name: str) -> Path:
    """A copy of `source` with one damage of `MALFORMED` (or change of `UNUSUAL`) done to it."""
    path = out / f"{name}.h5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        {**MALFORMED, **UNUSUAL}[name](f)
    return path


def flip_chunk_bytes(path: Path, rng: np.random.Generator) -> dict[str, list[int]]:
    """Flip one byte inside every stored chunk of every checksummed dataset, in the raw file
    bytes at the offsets HDF5 reports (`get_chunk_info`). Returns dataset -> first row of each
    chunk damaged."""
    damaged: dict[str, list[int]] = {}
    spots: list[int] = []
    with h5py.File(path, "r") as f:
        def visit(name: str, ds: object) -> None:
            if isinstance(ds, h5py.Dataset) and ds.fletcher32:
                for i in range(ds.id.get_num_chunks()):
                    info = ds.id.get_chunk_info(i)
                    # the last 4 bytes are the checksum itself: damage the data before it
                    spots.append(info.byte_offset + int(rng.integers(0, info.size - 4)))
                    damaged.setdefault("/" + name, []).append(info.chunk_offset[0])
        f.visititems(visit)
    with open(path, "r+b") as fh:
        for at in spots:
            fh.seek(at)
            byte = fh.read(1)[0]
            fh.seek(at)
            fh.write(bytes([byte ^ (1 << int(rng.integers(0, 8)))]))
    return damaged


def truncated(source: Path, out: Path, size: int) -> Path:
    """The first `size` bytes of a finished episode (a copy cut short)."""
    path = out / f"truncated_{size}.h5"
    path.write_bytes(source.read_bytes()[:size])
    return path
