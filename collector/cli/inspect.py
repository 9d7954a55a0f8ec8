"""`collector inspect FILE`: a readable summary of one episode."""

from __future__ import annotations

import argparse

import numpy as np

from collector.efficiency import describe_factors, describe_losses
from collector.storage.validate import open_valid, unreadable
from collector.storage.videos import VideoFrames


def register(sub) -> None:
    parser = sub.add_parser("inspect", help="summarize one episode file")
    parser.add_argument("file", help="an episode .h5 file")
    parser.set_defaults(func=inspect)


def inspect(args: argparse.Namespace) -> int:
    with open_valid(args.file) as ep:
        try:
            text = format_episode(ep)
        except OSError as exc:
            raise unreadable(args.file, exc) from None
    print(text)
    return 0


def format_episode(ep) -> str:
    meta = ep.metadata
    ts = ep.timestamps
    n = len(ts)
    w = max(len(s) for s in ep.streams()) + 2
    duration = (ts[-1] - ts[0]) / 1e9 + 1 / meta["control_hz"] if n else 0.0
    lines = [
        f"episode   {meta.get('episode_id', '?')}  ({ep.path})",
        f"station   {meta.get('station_id', '?')}   task {meta.get('task', '?')}   "
        f"outcome {meta.get('outcome', '?')}" + (f" ({meta['reason']})" if meta.get("reason")
                                                 else ""),
        f"time      {meta.get('started_at', '?')} .. {meta.get('ended_at', '?')}",
        f"grid      {n} ticks at {meta.get('control_hz', 0):g} Hz = {duration:.2f} s",
        "",
    ]
    rows = []
    for name, kind in ep.streams().items():
        if kind == "camera":  # what is stored: a video camera's frames once, others per tick
            frames = ep.frames(name)
            per_frame = frames.encoded_bytes() / max(len(frames), 1) / 1e3
            shape = (f"{len(frames)}x{frames.shape[0]}x{frames.shape[1]}x3 "
                     f"{per_frame:.1f} kB/frame")
            detail = (f"{frames.encoding} gop {frames.attrs.get('gop', '?')}"
                      if isinstance(frames, VideoFrames) else frames.encoding)
        else:
            fields = ep.fields(name)
            shape = ", ".join(f"{k}{list(v.shape[1:])}" for k, v in fields.items())
            detail = kind
        sync = ep.sync(name)
        raw = ep.raw(name)
        rate = _rate(raw.get("arrival_ns"))
        valid = sync.dt_ns[~sync.missing] / 1e6
        p50, p99 = (np.percentile(valid, [50, 99]) if valid.size else (float("nan"),) * 2)
        rows.append((name, detail, shape, f"{rate:>9.1f}{int(sync.missing.sum()):>9}"
                                          f"{p50:>13.2f}{p99:>9.2f}"))
    sw = max([len("shape")] + [len(r[2]) for r in rows]) + 2  # a sensor's fields can be long
    lines.append(f"{'stream':<{w}}{'kind':<12}{'shape':<{sw}}{'rate Hz':>9}{'held':>9}"
                 f"{'|dt| p50 ms':>13}{'p99 ms':>9}")
    lines += [f"{name:<{w}}{detail:<12}{shape:<{sw}}{figures}"
              for name, detail, shape, figures in rows]
    named = [(f"{name}.{field}", ep.channels(name, field))
             for name, kind in ep.streams().items() if kind != "camera"
             for field in ep.fields(name)]
    cw = max((len(key) for key, _ in named), default=0) + 2
    lines += ["", "channels"] + [f"  {key:<{cw}}{ch.describe()}" for key, ch in named]
    held = sum(int(ep.sync(name).missing.sum()) for name in ep.streams())
    lines += ["", f"held      {held} grid samples filled from the nearest sample in time "
              f"(/quality/<stream>/missing)"]
    accounts = ep.accounts
    if accounts is not None:
        lines += [describe_factors(accounts), f"  {describe_losses(accounts)}"]
        for cause, value in sorted(accounts.loss_seconds.items()):
            lines.append(f"  loss {cause:<28} {value:g} s")
        for cause, value in sorted(accounts.loss_samples.items()):
            lines.append(f"  loss {cause:<28} {value:g} samples")
    return "\n".join(lines)


def _rate(arrival: np.ndarray | None) -> float:
    if arrival is None or arrival.size < 2:
        return float("nan")
    return (arrival.size - 1) / ((arrival[-1] - arrival[0]) / 1e9)
