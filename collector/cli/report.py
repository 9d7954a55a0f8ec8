"""`collector report DIR`: collection efficiency of a session file, a station folder or a whole
output folder. A table by default, `--json` for machines, `--plot FILE` for a PNG chart of the
factors and the losses by cause over time."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.daemon.accounts import SESSIONS_DIR, fold, read_session
from collector.efficiency import combine, describe_losses, largest_first
from collector.errors import EpisodeFileError
from collector.storage.reader import open_episode
from schemas.episode import EfficiencyAccounts
from schemas.session import SessionRecord

FACTORS = ("availability", "performance", "quality", "efficiency")
FACTOR_STYLE = {"availability": {"color": "tab:blue", "linewidth": 1.6, "zorder": 3},
                "performance": {"color": "tab:orange", "linewidth": 1.6, "linestyle": "--",
                                "zorder": 3},
                "quality": {"color": "tab:green", "linewidth": 1.8, "linestyle": ":",
                            "zorder": 4},
                "efficiency": {"color": "tab:red", "linewidth": 4.0, "alpha": 0.6, "zorder": 2}}
TOP_CAUSES = 8  # the chart names this many causes per panel; the rest are "other"


def register(sub) -> None:
    parser = sub.add_parser("report", help="efficiency of a session or an output folder")
    parser.add_argument("dir", help="an output folder, a station folder or a sessions/*.jsonl")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG chart of the factors and "
                        "losses by cause over time")
    parser.set_defaults(func=report)


@dataclass
class Session:
    session_id: str
    station_id: str
    path: str
    records: list[SessionRecord] = field(default_factory=list)

    @property
    def accounts(self) -> EfficiencyAccounts:
        return fold(self.records)

    @property
    def outcomes(self) -> dict[str | None, int]:
        return dict(Counter(r.outcome for r in self.records if r.kind == "episode"))


def report(args: argparse.Namespace) -> int:
    sessions = find_sessions(Path(args.dir))
    total = combine([s.accounts for s in sessions])
    if args.json:
        print(json.dumps({
            "sessions": [{"session_id": s.session_id, "station_id": s.station_id,
                          "path": s.path, "episodes": s.outcomes,
                          "accounts": s.accounts.model_dump()} for s in sessions],
            "total": total.model_dump(),
        }, indent=2))
    else:
        print(format_table(sessions, total))
    if args.plot:
        plot(sessions, Path(args.plot))
        if not args.json:
            print(f"chart written to {args.plot}")
    return 0


NO_SESSION = "no session"  # episodes no session file lists: `collector record`, or salvaged


def find_sessions(root: Path) -> list[Session]:
    """Session files under `root` (or `root` itself), and the episodes under `root` that no
    session file lists (what `collector record` wrote), by their own accounts, as one
    "no session" entry per station."""
    if root.is_file() and root.suffix == ".jsonl":
        files = [root]
    elif root.is_dir():
        files = sorted(root.rglob(f"{SESSIONS_DIR}/*.jsonl"))
    else:
        raise EpisodeFileError(f"{root}: no such file or folder; pass an output folder, a "
                               f"station folder or a sessions/<id>.jsonl file")
    sessions = []
    for path in files:
        records = read_session(path)
        if records:
            sessions.append(Session(path.stem, records[0].station_id, str(path), records))
    if root.is_dir():
        # by id: a session file may hold paths relative to the daemon's working folder
        listed = {r.episode_id for s in sessions for r in s.records if r.episode_id}
        sessions += _sessions_from_episodes(root, listed)
    if not sessions:
        raise EpisodeFileError(f"{root}: no session accounts (sessions/*.jsonl) and no episodes "
                               f"found; point at the output_dir of `collector run`")
    return sessions


def _sessions_from_episodes(root: Path, listed: set[str]) -> list[Session]:
    by_station: dict[str, Session] = {}
    for path in sorted(root.rglob("*.h5")):
        with open_episode(path) as ep:
            meta, accounts = ep.metadata, ep.accounts
        if accounts is None or meta.get("episode_id") in listed:
            continue  # no accounts of its own, or booked by its session already
        station = str(meta.get("station_id", "?"))
        session = by_station.setdefault(station, Session(NO_SESSION, station, str(root)))
        session.records.append(SessionRecord(
            kind="episode", session_id=NO_SESSION, station_id=station,
            started_at=meta.get("started_at", ""), ended_at=meta.get("ended_at", ""),
            seconds=accounts.scheduled_s, episode_id=meta.get("episode_id"),
            outcome=meta.get("outcome"), reason=meta.get("reason", ""), path=str(path),
            accounts=accounts))
    for s in by_station.values():
        s.records.sort(key=lambda r: r.ended_at)
    return list(by_station.values())


def format_table(sessions: list[Session], total: EfficiencyAccounts) -> str:
    width = max([22, *(len(s.session_id) + 2 for s in sessions)])
    head = (f"{'session':<{width}}{'station':<12}{'episodes':>9}{'scheduled':>11}{'recorded':>10}"
            f"{'avail.':>9}{'perf.':>8}{'quality':>9}{'effic.':>8}")
    lines = [head, "-" * len(head)]

    def row(name: str, station: str, episodes: int, a: EfficiencyAccounts) -> str:
        return (f"{name:<{width}}{station:<12}{episodes:>9}{_hms(a.scheduled_s):>11}"
                f"{_hms(a.recording_s):>10}{a.availability:>9.1%}{a.performance:>8.1%}"
                f"{a.quality:>9.1%}{a.efficiency:>8.1%}")

    for s in sessions:
        lines.append(row(s.session_id, s.station_id, sum(s.outcomes.values()), s.accounts))
    if len(sessions) > 1:
        lines += ["-" * len(head), row("all", "", sum(sum(s.outcomes.values())
                                                      for s in sessions), total)]
    outcomes: Counter[str | None] = Counter()
    for s in sessions:
        outcomes.update(s.outcomes)
    lines += ["", "episodes: " + (", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
                                  or "none")]
    outside = sum(len(s.records) for s in sessions if s.session_id == NO_SESSION)
    if outside:
        lines.append(f"  {outside} of them in no session file (salvaged by `recover`, or "
                     f"recorded by an older `record`): their own accounts, shown as "
                     f"'{NO_SESSION}'")
    lines += ["", f"losses: {describe_losses(total)}"]
    lines += ["", "time lost (availability), by cause:"]
    for cause, seconds in largest_first(total.loss_seconds):
        share = seconds / total.scheduled_s if total.scheduled_s else 0.0
        lines.append(f"  {cause:<34}{seconds:>12.2f} s{share:>9.2%} of scheduled")
    lines += ["", "samples lost (performance, quality), by cause:"]
    for cause, count in largest_first(total.loss_samples):
        base = total.expected_samples or 1
        lines.append(f"  {cause:<34}{count:>12d}  {count / base:>9.2%} of expected")
    return "\n".join(lines)


def _hms(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def timeline(sessions: list[Session]) -> tuple[list[dt.datetime], list[EfficiencyAccounts]]:
    """Running totals after each record, in time order across every session."""
    records = sorted((r for s in sessions for r in s.records if r.kind != "shutdown"),
                     key=lambda r: r.ended_at)
    times, running = [], []
    total = combine([])
    for r in records:
        if r.kind == "episode" and r.accounts:
            total = combine([total, r.accounts])
        elif r.kind == "interval" and r.cause:
            total = combine([total], {r.cause: r.seconds})
        else:
            continue
        times.append(dt.datetime.fromisoformat(r.ended_at))
        running.append(total)
    return times, running


def plot(sessions: list[Session], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = session_figure(sessions)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def session_figure(sessions: list[Session]) -> Any:
    """The efficiency so far, time lost and samples lost over the sessions (a matplotlib
    Figure; matplotlib is imported only when a chart is asked for)."""
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times, running = timeline(sessions)
    fig, axes = plt.subplots(3, 1, figsize=(11, 10), sharex=True,
                             gridspec_kw={"height_ratios": [1.2, 1, 1]})
    title = ", ".join(sorted({f"{s.station_id} / {s.session_id}" for s in sessions}))
    fig.suptitle(f"Collection efficiency: {title}", fontsize=12)
    ax = axes[0]
    for name in FACTORS:
        values = [getattr(a, name) * 100 if a.expected_samples or name == "availability"
                  else float("nan") for a in running]  # no samples yet: no factor to show
        # factors often coincide (100% quality, efficiency = availability): the thick
        # efficiency line goes under the others, each with its own dash, and the legend
        # gives each one's final value, so none hides behind another
        ax.plot(times, values, label=f"{name} {values[-1]:.1f}%" if values else name,
                drawstyle="steps-post", **FACTOR_STYLE[name])
    ax.set_ylabel("session so far, %")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", ncol=4, fontsize=9)
    _stacked(axes[1], times, [a.loss_seconds for a in running], "time lost, s (cumulative)")
    _stacked(axes[2], times, [a.loss_samples for a in running],
             "samples lost (cumulative)")
    locator = mdates.AutoDateLocator()
    axes[2].xaxis.set_major_locator(locator)
    axes[2].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[2].set_xlabel("time (UTC)")
    fig.tight_layout()
    return fig


def _stacked(ax, times: list, losses: list[dict], label: str) -> None:
    final = losses[-1] if losses else {}
    causes = [c for c, _ in largest_first(final)]
    named, rest = causes[:TOP_CAUSES], causes[TOP_CAUSES:]
    series = [[d.get(c, 0) for d in losses] for c in named]
    labels = list(named)
    if rest:
        series.append([sum(d.get(c, 0) for c in rest) for d in losses])
        labels.append(f"other ({len(rest)} cause{'s' if len(rest) > 1 else ''})")
    if series:
        ax.stackplot(times, series, labels=labels, step="post", alpha=0.85)
        ax.legend(loc="upper left", fontsize=8, ncol=2)
    else:
        ax.text(0.5, 0.5, "no losses", transform=ax.transAxes, ha="center")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)


