"""`collector plot`: the sensor and joint streams of an episode over time, quality flags shaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collector.replay.source import ReplayError, TickRange, control_hz, grid_fields, tick_flags
from collector.storage.reader import Episode

MAX_LEGEND = 8  # channels named in a legend; wider fields are drawn without one


def plot_episode(episode: Episode, ticks: TickRange, out: str | Path) -> int:
    """Write the plot; returns how many field panels it holds."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    out = Path(out)
    if not out.parent.is_dir():
        raise ReplayError(f"{out}: folder {out.parent} does not exist")
    panels = [(s, f) for s, fields in grid_fields(episode).items() for f in fields]
    if not panels:
        raise ReplayError(f"{episode.path}: no sensor or joint streams to plot")
    flags = tick_flags(episode, ticks)
    t = np.arange(ticks.first, ticks.stop) / control_hz(episode)
    fig, axes = plt.subplots(len(panels) + 1, 1, sharex=True, squeeze=False,
                             figsize=(11, 1.9 * (len(panels) + 1)), constrained_layout=True)
    axes = axes[:, 0]
    for ax, (stream, field) in zip(axes, panels, strict=False):
        values = episode.fields(stream)[field][ticks.slice]
        values = values.reshape(values.shape[0], -1)
        unit = episode.file[_grid_path(episode, stream, field)].attrs.get("unit", "")
        for c in range(values.shape[1]):
            ax.plot(t, values[:, c], lw=1, label=f"[{c}]")
        ax.set_ylabel(f"{stream}.{field}" + (f"\n({unit})" if unit else ""), fontsize=8)
        if 1 < values.shape[1] <= MAX_LEGEND:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6, frameon=False)
        mine = [f for name, f in flags.items() if name.split(":")[0] == stream]
        if mine:
            bad = np.any(np.stack(mine), axis=0)
            ax.fill_between(t, 0, 1, where=bad, step="mid", color="tab:red", alpha=0.25,
                            transform=ax.get_xaxis_transform(), label="flagged")
        ax.grid(alpha=0.3)
    _flag_panel(axes[-1], t, flags)
    axes[-1].set_xlabel("episode time (s)")
    meta = episode.metadata
    fig.suptitle(f"{meta.get('episode_id', episode.path.stem)}  outcome "
                 f"{meta.get('outcome', '?')}  ({len(ticks)} ticks)", fontsize=10)
    try:
        fig.savefig(out, dpi=90)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{out}: could not write the plot ({exc})") from None
    finally:
        plt.close(fig)
    return len(panels)


def _flag_panel(ax, t: np.ndarray, flags: dict[str, np.ndarray]) -> None:
    """One row per `stream:flag`, a red bar wherever it is raised."""
    names = sorted(flags)
    period = float(t[1] - t[0]) if t.size > 1 else 1.0
    for row, name in enumerate(names):
        on = flags[name]
        edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        spans = [(t[a] - period / 2, (b - a) * period) for a, b in zip(starts, stops,
                                                                        strict=True)]
        ax.broken_barh(spans, (row - 0.4, 0.8), color="tab:red")
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_ylim(-0.6, max(len(names), 1) - 0.4)
    ax.set_title("quality flags (red: raised)", fontsize=8, loc="left")


def _grid_path(episode: Episode, stream: str, field: str) -> str:
    for root in ("observations", "actions"):
        if f"{root}/{stream}/{field}" in episode.file:
            return f"{root}/{stream}/{field}"
    return f"observations/{stream}/{field}"
