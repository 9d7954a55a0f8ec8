"""`Daemon`: one station, run until told to stop. Opens the devices, serves the API, runs the
episode state machine, and books every second of the session to recording or to a cause."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from collector.daemon.accounts import EMPTY, SessionBook
from collector.daemon.api import ApiContext, build_app
from collector.daemon.console import ConsoleSource
from collector.daemon.logs import JsonLog
from collector.daemon.machine import Controller
from collector.daemon.previews import PreviewStore
from collector.daemon.server import ApiServer
from collector.efficiency import loss_totals
from collector.errors import (
    CollectorError,
    ConfigError,
    DeviceError,
    DiskFullError,
    StartupInterrupted,
    raised_by_us,
)
from collector.station import EpisodeRun, Station
from collector.storage.disk import free_gb
from collector.task import task_name
from schemas.api import EpisodeStatus, LastEpisode, StartEpisode, Status, StreamRecent
from schemas.station import StationConfig

HEALTH_EVERY_S = 0.5
IDLE_POLL_S = 0.25


class ExitCode:
    """What `collector run` exits with (documented in the README)."""

    CLEAN = 0  # shutdown by API (episode finished), SIGTERM or SIGINT (episode kept, truncated)
    ERROR = 1  # any other expected failure (one JSON log line says what)
    CONFIG = 2  # the station YAML or an override does not validate
    DEVICE = 3  # a device could not be opened or failed while running
    DISK_FULL = 4  # free space fell below storage.min_free_gb, or the disk filled up
    API = 5  # the API could not listen on api.host:api.port (in use, not an address here)
    ABORTED = 130  # a second SIGINT: the episode in progress was aborted into rejected/


@dataclass
class _Interval:
    """The stretch of session time now running that is not an episode."""

    cause: str
    mono: float
    wall: dt.datetime


class Daemon:
    def __init__(self, config: StationConfig, session_id: str, mode: str = "auto",
                 log: JsonLog | None = None, started: float | None = None,
                 install_signals: Callable[[], None] | None = None):
        self.config = config
        self.install_signals = install_signals or (lambda: None)
        self.session_id = session_id
        self.log = log or JsonLog()
        self.control = Controller(mode)
        self.cancel = threading.Event()  # set by a signal: a start-up in progress stops
        self.station: Station | None = None
        self.book: SessionBook | None = None
        self.api: ApiServer | None = None
        self._api_ctx: ApiContext | None = None
        self.run_: EpisodeRun | None = None
        self.number = 0
        self.last: LastEpisode | None = None
        self.health: dict[str, dict] = {}
        self.recent: dict[str, StreamRecent] = {}  # per stream, its last seconds of ticks
        self.previews = PreviewStore()  # filled while an operator page is open
        self._health_at = 0.0
        started = time.monotonic() if started is None else started
        wall = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=time.monotonic() - started)
        self._interval = _Interval("startup", started, wall)

    # -- entry point -----------------------------------------------------------------------

    def run(self) -> int:
        try:
            return self._run()
        except StartupInterrupted:
            self.log("stopped", session=None, aborted=False, during="starting")
            return ExitCode.CLEAN
        except ConfigError as exc:
            return self._fail(ExitCode.CONFIG, "config_error", exc)
        except DeviceError as exc:
            return self._fail(ExitCode.DEVICE, "device_failure", exc)
        except DiskFullError as exc:
            return self._fail(ExitCode.DISK_FULL, "disk_full", exc)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                return self._fail(ExitCode.DISK_FULL, "disk_full", exc)
            raise
        except CollectorError as exc:
            return self._fail(exc.exit_code or ExitCode.ERROR, "error", exc)
        finally:
            self._close()

    def interrupt(self, signal_name: str, abort: bool = False) -> None:
        """From a signal handler: cut the episode short (truncated) and stop, or (abort) abort
        it; while starting, the start-up is abandoned at its next step."""
        self.control.interrupt(signal_name, abort)
        self.cancel.set()

    def _run(self) -> int:
        cfg = self.config
        self.log("starting", station_id=cfg.station.id, session_id=self.session_id,
                 engine=cfg.engine.kind, mode=self.control.mode, pid=os.getpid())
        self._start_api()  # first, so that a dashboard sees "starting" while devices open
        self.install_signals()
        self.station = Station(cfg, cancel=self.cancel)
        self.book = SessionBook(self.station.output, self.session_id, cfg.station.id)
        if self.book.resumed:
            down = self.book.downtime_since_crash(until=self._interval.wall)
            self.book.interval("restart", down, self._interval.wall - dt.timedelta(seconds=down))
            self.log("session_resumed", session_id=self.session_id, path=str(self.book.path),
                     restart_downtime_s=round(down, 3),
                     episodes=sum(self.book.outcomes.values()))
        self._refresh_health(force=True)
        self._close_interval("idle")
        self._set_state("idle")
        self.log("ready", streams=[i.name for i in self.station.infos],
                 startup_s=round(self.station.startup_s, 3))
        return self._loop()

    def _start_api(self) -> None:
        api = self.config.api
        token = api.token.get_secret_value() if api.token else None
        if api.token_env:
            token = os.environ.get(api.token_env) or None
            if token is None:
                raise ConfigError(f"api.token_env: environment variable {api.token_env} is not "
                                  f"set or empty; export the API token there")
        try:
            self._api_ctx = ApiContext(token, self.control, self.status, self.log,
                                       api.timeout_s, console=self._console())
            app = build_app(self._api_ctx)
            self.api = ApiServer(app, api.host, api.port, api.timeout_s)
        except OSError as exc:
            raise ApiBindError(f"api: cannot listen on {api.host}:{api.port} ({exc.strerror}); "
                               f"free the port or set api.port") from None
        self.api.start()
        self.log("api_listening", host=api.host, port=self.api.port,
                 token_required=token is not None)

    def _console(self) -> ConsoleSource:
        cfg = self.config

        def recent() -> list:
            book = self.book
            return list(reversed(book.recent)) if book is not None else []

        def free() -> float | None:
            station = self.station
            return free_gb(station.output) if station is not None else None

        return ConsoleSource(self.status, self.previews, recent, free,
                             cfg.storage.min_free_gb, task_name(cfg.episode))

    # -- the state machine -----------------------------------------------------------------

    def _open(self) -> tuple[Station, SessionBook]:
        """The station and its session book: set by `_run` before the state machine starts."""
        assert self.station is not None and self.book is not None, "the daemon has not started"
        return self.station, self.book

    def _loop(self) -> int:
        c = self.control
        while not c.shutdown:
            if c.paused:
                if c.state != "paused":
                    self._close_interval("paused")
                    self._set_state("paused")
                self._wait()
                continue
            if c.state == "paused":
                self._close_interval("idle")
                self._set_state("idle")
            start = c.take_start()
            if start is None:
                self._wait()
                continue
            self._record(start)
            if c.shutdown or c.paused:
                continue
            self._reset()
        self._set_state("stopping")
        self._close_interval(None)
        self._open()[1].shutdown()
        aborted = c.abort_on_shutdown
        self.log("stopped", session=self._session_summary(), aborted=aborted)
        return ExitCode.ABORTED if aborted else ExitCode.CLEAN

    def _record(self, start: StartEpisode) -> None:
        station, book = self._open()
        station.check_disk()
        cause_start = self._close_interval("episode_overhead")
        run = station.begin_episode(start.duration_s)
        self.number += 1
        self.run_ = run
        self._set_state("recording")
        self.log("episode_started", episode_id=run.episode_id, number=self.number,
                 duration_s=run.duration_s)
        # Between chunks: the operator's stop, reject or abort, and current health figures.
        summary = station.run_episode(run, lambda: self.control.ending,
                                      lambda _run: self._refresh_health())
        reason = summary.reason
        now = time.monotonic()
        a = summary.accounts
        # Straight into the reset when one follows: an "idle" between commit and reset would
        # invite a start that the reset then refuses (409, "while resetting").
        after = "resetting" if self._reset_follows() else "idle"
        with self.control.lock:  # status sees the episode booked and the state moved together
            book.committed(summary, cause_start.mono, cause_start.wall, now)
            self._interval = _Interval("reset" if after == "resetting" else "idle", now,
                                       dt.datetime.now(dt.timezone.utc))
            self.last = LastEpisode(episode_id=summary.episode_id, outcome=summary.outcome,
                                    reason=reason, path=summary.path, accounts=a)
            self.run_ = None
            self.control.set_state(after, locked=True)
        self.log("episode_committed", episode_id=summary.episode_id, outcome=summary.outcome,
                 reason=reason, path=summary.path, ticks=summary.ticks,
                 recording_s=round(a.recording_s, 3), efficiency=round(a.efficiency, 4),
                 availability=round(a.availability, 4), performance=round(a.performance, 4),
                 quality=round(a.quality, 4), loss_seconds=a.loss_seconds,
                 loss_samples=a.loss_samples)
        self._set_state(after)

    def _reset_follows(self) -> bool:
        c = self.control
        return self.config.episode.reset_s > 0 and not (c.shutdown or c.paused)

    def _reset(self) -> None:
        reset_s = self.config.episode.reset_s
        if reset_s <= 0:
            return
        if self.control.state != "resetting":  # `_record` moved there at the commit
            self._close_interval("reset")
            self._set_state("resetting")
        deadline = time.monotonic() + reset_s
        while not self.control.shutdown and time.monotonic() < deadline:
            self.control.wake.wait(min(IDLE_POLL_S, max(deadline - time.monotonic(), 0)))
            self.control.wake.clear()
            self._drain()
        self._close_interval("idle")
        self._set_state("idle")

    def _wait(self) -> None:
        self.control.wait(IDLE_POLL_S)
        self._drain()

    def _drain(self) -> None:
        """Between episodes: keep device buffers empty and the health figures current."""
        self._open()[0].discard()
        self._refresh_health(force=True)

    def _refresh_health(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._health_at >= HEALTH_EVERY_S:
            station = self._open()[0]
            self.health = station.health()
            self.recent = {name: StreamRecent(**asdict(figures))
                           for name, figures in station.recent_ticks().items()}
            self._health_at = now
            hub = self._api_ctx.hub if self._api_ctx is not None else None
            if hub is not None:  # alarms judged whether or not a page is open
                hub.judge_alarms()
        if self.previews.due(now):  # only while a page is open
            self.previews.update(self._open()[0].previews(), now)

    def _set_state(self, state: str) -> None:
        self.control.set_state(state)
        self.log("state", state=state)

    def _close_interval(self, next_cause: str | None) -> _Interval:
        """Book the interval now ending to its cause; start the next. Returns the new one."""
        now, wall = time.monotonic(), dt.datetime.now(dt.timezone.utc)
        ending = self._interval
        if self.book is not None:
            self.book.interval(ending.cause, now - ending.mono, ending.wall)
        self._interval = _Interval(next_cause or "idle", now, wall)
        return self._interval

    # -- status ----------------------------------------------------------------------------

    def status(self) -> Status:
        with self.control.lock:
            return self._status()

    def _status(self) -> Status:
        c = self.control
        run = self.run_
        current = None
        if run is not None:
            elapsed = max((time.monotonic_ns() - run.clock.start_ns) / 1e9, 0.0)
            ending = c.ending
            current = EpisodeStatus(episode_id=run.episode_id, number=self.number,
                                    elapsed_s=min(elapsed, run.duration_s),
                                    duration_s=run.duration_s,
                                    ending=ending.command if ending else None)
        interval = self._interval
        open_s = 0.0 if c.state == "recording" else time.monotonic() - interval.mono
        session = self.book.live(interval.cause, open_s) if self.book else EMPTY
        return Status(
            station_id=self.config.station.id, session_id=self.session_id, state=c.state,
            mode=c.mode, paused=c.paused, shutdown_requested=c.shutdown,
            episodes=dict(self.book.outcomes) if self.book else {},
            current_episode=current, last_episode=self.last, devices=self.health,
            recent=self.recent,
            # a run implies the station: begun by it
            pipeline_lag_s=(self.station.lag_s if run is not None and self.station is not None
                            else 0.0),
            session=session, losses=asdict(loss_totals(session)),
        )

    def _session_summary(self) -> dict:
        book = self._open()[1]
        a = book.total
        return {"scheduled_s": round(a.scheduled_s, 3), "efficiency": round(a.efficiency, 4),
                "availability": round(a.availability, 4),
                "performance": round(a.performance, 4), "quality": round(a.quality, 4),
                "episodes": dict(book.outcomes)}

    # -- ending ----------------------------------------------------------------------------

    def _fail(self, code: int, event: str, exc: Exception) -> int:
        if isinstance(exc, CollectorError):  # from a Ray actor: our line, not its traceback
            exc = raised_by_us(exc)
        self.log.error(event, message=str(exc), exit_code=code)
        if self.book is not None:
            with contextlib.suppress(OSError):  # the disk may be what failed
                self._close_interval(None)  # no shutdown record: a restart books the gap
        return code

    def _close(self) -> None:
        if self._api_ctx is not None and self._api_ctx.hub is not None:
            self._api_ctx.hub.close()  # the pages' streams end before the server stops
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.station is not None:
            self.station.close()
            self.station = None


class ApiBindError(CollectorError):
    exit_code = ExitCode.API
