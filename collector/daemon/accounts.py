"""Session accounts on disk: `<output>/<station>/sessions/<session>.jsonl`, appended as the
station runs, so a restarted daemon continues its session's books where they stopped."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter, defaultdict, deque
from pathlib import Path

from pydantic import ValidationError

from collector.efficiency import combine
from collector.errors import ConfigError, EpisodeFileError
from collector.stages.execution import EpisodeSummary
from schemas.episode import EfficiencyAccounts
from schemas.names import NAME_RULE, name_problem
from schemas.session import SessionRecord

SESSIONS_DIR = "sessions"
RECENT_KEPT = 20  # episodes the operator page lists (and offers for download)
EMPTY = combine([])


def session_path(station_dir: Path, session_id: str) -> Path:
    return Path(station_dir) / SESSIONS_DIR / f"{check_session_id(session_id)}.jsonl"


def check_session_id(session_id: str) -> str:
    """`session_id`, when it is a name (it becomes a file name); else a `ConfigError`."""
    problem = name_problem(session_id)
    if problem:
        raise ConfigError(f"session id {session_id!r}: {problem}; a session id is a name "
                          f"({NAME_RULE}), e.g. line-3")
    return session_id


def read_session(path: Path) -> list[SessionRecord]:
    """Every record of a session file. A torn last line (the process died mid-write) is
    skipped; a bad line anywhere else means the file is not a session file."""
    lines = Path(path).read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(SessionRecord.model_validate_json(line))
        except ValidationError as exc:
            if number == len(lines):
                break
            raise EpisodeFileError(f"{path}:{number}: not a session record "
                                   f"({exc.errors()[0]['msg']})") from None
    return records


def fold(records: list[SessionRecord]) -> EfficiencyAccounts:
    """The session's accounts: episodes' accounts plus the intervals between them, by cause."""
    episodes = [r.accounts for r in records if r.kind == "episode" and r.accounts]
    idle: defaultdict[str, float] = defaultdict(float)  # not Counter: its counts are ints
    for r in records:
        if r.kind == "interval" and r.cause:
            idle[r.cause] += r.seconds
    return combine(episodes, dict(idle))


class SessionBook:
    """Appends one record per episode and per interval; keeps running totals (bounded)."""

    def __init__(self, station_dir: Path, session_id: str, station_id: str):
        self.path = session_path(station_dir, session_id)
        self.session_id = session_id
        self.station_id = station_id
        self.path.parent.mkdir(parents=True, exist_ok=True)
        previous = read_session(self.path) if self.path.exists() else []
        self.total = fold(previous)
        self.outcomes = Counter(r.outcome for r in previous if r.kind == "episode")
        self.resumed = bool(previous)
        self.recent: deque[SessionRecord] = deque(
            (r for r in previous if r.kind == "episode"), maxlen=RECENT_KEPT)
        self._last = previous[-1] if previous else None

    def downtime_since_crash(self, until: dt.datetime) -> float:
        """Seconds from the last record to `until` (this run's start) when the previous run
        did not shut down cleanly: the station was scheduled but down (cause `restart`)."""
        if self._last is None or self._last.kind == "shutdown":
            return 0.0
        ended = dt.datetime.fromisoformat(self._last.ended_at)
        return max((until - ended).total_seconds(), 0.0)

    def interval(self, cause: str, seconds: float, started_at: dt.datetime) -> None:
        if seconds <= 0:
            return
        self._append(SessionRecord(kind="interval", cause=cause, seconds=seconds,
                                   **self._common(started_at)))
        self.total = combine([self.total], {cause: seconds})

    def episode(self, summary: EpisodeSummary, started_at: dt.datetime, reason: str) -> None:
        a = summary.accounts
        record = SessionRecord(
            kind="episode", seconds=a.scheduled_s, episode_id=summary.episode_id,
            outcome=summary.outcome, reason=reason, path=summary.path, accounts=a,
            **self._common(started_at))
        self._append(record)
        self.recent.append(record)
        self.total = combine([self.total, a])
        self.outcomes[summary.outcome] += 1

    def committed(self, summary: EpisodeSummary, began_s: float, began_at: dt.datetime,
                  now_s: float) -> None:
        """An episode set up at monotonic `began_s` and committed by `now_s`: its own accounts,
        and the time around its grid (set-up, commit) lost to `episode_overhead`."""
        self.episode(summary, began_at, summary.reason)
        self.interval("episode_overhead", now_s - began_s - summary.accounts.recording_s,
                      began_at)

    def shutdown(self) -> None:
        now = _now()
        self._append(SessionRecord(kind="shutdown", seconds=0.0, **self._common(now)))

    def live(self, cause: str | None, seconds: float) -> EfficiencyAccounts:
        """The totals, plus the interval still open."""
        return combine([self.total], {cause: seconds}) if cause and seconds > 0 else self.total

    def _common(self, started_at: dt.datetime) -> dict:
        return dict(session_id=self.session_id, station_id=self.station_id,
                    started_at=started_at.isoformat(), ended_at=_now().isoformat())

    def _append(self, record: SessionRecord) -> None:
        line = json.dumps(record.model_dump(mode="json", exclude_none=True)) + "\n"
        with open(self.path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self._last = record


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
