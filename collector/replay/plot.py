"""`collector plot`: the sensor and joint streams of an episode over time, quality flags shaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from collector.replay.source import ReplayError, TickRange, control_hz, grid_fields, tick_flags
from collector.storage.reader import Episode

MAX_LEGEND = 8  # channels named in a legend; wider fields are drawn without one
FLAG_ROW_IN = 0.22  # inches per raised flag: room for its 8-pt label


def plot_episode(episode: Episode, ticks: TickRange, out: str | Path) -> int:
    """Write the plot; returns how many field panels it holds."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ReplayError(f"{out}: folder {out.parent} does not exist")
    fig = episode_figure(episode, ticks)
    try:
        fig.savefig(out, dpi=90)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{out}: could not write the plot ({exc})") from None
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return len(fig.axes) - 1


def episode_figure(episode: Episode, ticks: TickRange):
    """The figure: a panel per field and unit, then the quality flags raised."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    # one panel per field and unit: forces and torques of one sensor share no axis
    panels = [(s, f, unit, idx) for s, fields in grid_fields(episode).items() for f in fields
              for unit, idx in episode.channels(s, f).by_unit()]
    if not panels:
        raise ReplayError(f"{episode.path}: no sensor or joint streams to plot")
    flags = tick_flags(episode, ticks)
    raised = {name: on for name, on in flags.items() if on.any()}
    t = np.arange(ticks.first, ticks.stop) / control_hz(episode)
    flag_rows = max(len(raised), 1)
    heights = [1.9] * len(panels) + [0.6 + FLAG_ROW_IN * flag_rows]
    fig, axes = plt.subplots(len(panels) + 1, 1, sharex=True, squeeze=False,
                             figsize=(11, sum(heights)), constrained_layout=True,
                             gridspec_kw={"height_ratios": heights})
    axes = axes[:, 0]
    for ax, (stream, field, unit, idx) in zip(axes, panels, strict=False):
        values = episode.fields(stream)[field][ticks.slice]
        values = values.reshape(values.shape[0], -1)
        channels = episode.channels(stream, field)
        for c in idx:
            ax.plot(t, values[:, c], lw=1, label=channels.names[c])
        ax.set_ylabel(f"{stream}.{field}" + (f"\n({unit})" if unit else ""), fontsize=8)
        if 1 < len(idx) <= MAX_LEGEND:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        mine = [on for name, on in raised.items() if name.split(":")[0] == stream]
        if mine:
            ax.fill_between(t, 0, 1, where=np.any(np.stack(mine), axis=0), step="mid",
                            color="tab:red", alpha=0.25, transform=ax.get_xaxis_transform(),
                            label="flagged")
        ax.grid(alpha=0.3)
    _flag_panel(axes[-1], t, raised, len(flags))
    axes[-1].set_xlabel("episode time (s)")
    meta = episode.metadata
    fig.suptitle(f"{meta.get('episode_id', episode.path.stem)}  outcome "
                 f"{meta.get('outcome', '?')}  ({len(ticks)} ticks)", fontsize=10)
    return fig


def _flag_panel(ax, t: np.ndarray, raised: dict[str, np.ndarray], checks: int) -> None:
    """One row per `stream:flag` raised in the range, a red bar wherever it is; the checks
    that never fired are counted in the title, not drawn (40 empty rows hide the few that did)."""
    names = sorted(raised)
    period = float(t[1] - t[0]) if t.size > 1 else 1.0
    for row, name in enumerate(names):
        edges = np.diff(np.concatenate([[0], raised[name].astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        spans = [(t[a] - period / 2, (b - a) * period) for a, b in zip(starts, stops,
                                                                        strict=True)]
        ax.broken_barh(spans, (row - 0.4, 0.8), color="tab:red")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(-0.6, max(len(names), 1) - 0.4)
    ax.invert_yaxis()  # alphabetical from the top
    clear = checks - len(names)
    if not names:
        ax.text(0.5, 0.5, f"no quality flag raised ({checks} checks clear)",
                transform=ax.transAxes, ha="center", va="center", fontsize=9)
    ax.set_title(f"quality flags raised (red), {len(names)} of {checks}; the other {clear} "
                 "never raised in this range", fontsize=8, loc="left")
