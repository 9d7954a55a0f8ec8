"""`collector plot EPISODE --out FILE.png`: sensor and joint streams over time, flags shaded."""

from __future__ import annotations

import argparse

from collector.replay.source import episode_range, open_recorded


def register(sub) -> None:
    parser = sub.add_parser("plot", help="plot an episode's sensor and joint streams")
    parser.add_argument("episode", help="a recorded episode .h5")
    parser.add_argument("--out", required=True, help="the image to write, e.g. episode.png")
    parser.add_argument("--start", type=float, default=None, help="episode seconds to start at")
    parser.add_argument("--end", type=float, default=None, help="episode seconds to stop at")
    parser.set_defaults(func=plot)


def plot(args: argparse.Namespace) -> int:
    from collector.replay.plot import plot_episode

    with open_recorded(args.episode) as episode:
        ticks = episode_range(episode, args.start, args.end)
        panels = plot_episode(episode, ticks, args.out)
    print(f"wrote {args.out}: {panels} panels, {len(ticks)} ticks")
    return 0
