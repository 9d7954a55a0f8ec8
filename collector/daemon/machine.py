"""The episode state machine's inputs: operator commands, checked against the state they
arrive in. The API thread calls `command`; the daemon loop reads what was asked and moves.

    starting -> idle -> recording -> resetting -> idle -> ...      (auto: idle starts at once)
                  \\-> paused <-/   (pause waits for the episode in progress to end)
    any -> stopping (API shutdown: the episode in progress is finished first; SIGTERM or
                     SIGINT: it is cut short now and kept as `truncated`)

A command that does not fit the state raises `Conflict` and changes nothing. Commands are
serialized against the machine: from the moment a start is accepted (or auto mode takes one)
until the episode records, the episode is `coming`: a second start is refused, and a stop,
reject or abort is kept and ends that episode as soon as it records its first tick.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from schemas.api import Accepted, EndWithReason, StartEpisode

# The outcome each ending gives; None: the station decides (success / failure, or truncated
# when cut short). `accept` is the operator's verdict: the episode ends now and is a success.
ENDINGS = {"stop": None, "accept": "success", "reject": "rejected", "abort": "aborted"}
ACCEPTED_BY = "accepted by the operator via /episodes/accept"


class Conflict(Exception):
    """The command does not apply in the current state (HTTP 409)."""


@dataclass
class Ending:
    """How the operator asked the episode in progress to end."""

    command: str  # stop | accept | reject | abort
    reason: str = ""

    @property
    def outcome(self) -> str | None:
        """None: the station decides (success / failure, or truncated when cut short)."""
        return ENDINGS[self.command]

    @property
    def cut_by(self) -> str:
        """Who stopped the episode, for the reason of a `truncated` outcome."""
        return self.reason or "stopped by the operator via /episodes/stop"


class Controller:
    def __init__(self, mode: str):
        self.mode = mode  # auto: episodes follow one another; manual: POST /episodes/start
        self.lock = threading.Lock()
        self.wake = threading.Event()  # set on every accepted command
        self.state = "starting"
        self.paused = False
        self.shutdown = False
        self.abort_on_shutdown = False
        self.start: StartEpisode | None = None
        self.coming = False  # a start is accepted and its episode is not recording yet
        self.ending: Ending | None = None
        self.signalled: Ending | None = None  # how a signal asked any episode to end

    def command(self, name: str, body) -> Accepted:
        with self.lock:
            getattr(self, f"_{name}")(body)
            state = self.state
        self.wake.set()
        return Accepted(accepted=name, state=state)

    # -- commands (under the lock) ---------------------------------------------------------

    def _start(self, body: StartEpisode) -> None:
        self._refuse_when_stopping()
        if self.paused:
            raise Conflict("collection is paused: POST /resume first")
        if self.coming:
            raise Conflict("an episode is already starting; wait for it to end")
        if self.state != "idle":
            raise Conflict(f"cannot start an episode while {self.state}; wait for idle")
        self.start = body
        self.coming = True

    def _stop(self, body) -> None:
        self._end(Ending("stop"))

    def _accept(self, body) -> None:
        self._end(Ending("accept", ACCEPTED_BY))

    def _reject(self, body: EndWithReason) -> None:
        self._end(Ending("reject", body.reason))

    def _abort(self, body: EndWithReason) -> None:
        self._end(Ending("abort", body.reason))

    def _end(self, ending: Ending) -> None:
        if self.state != "recording" and not self.coming:
            raise Conflict(f"no episode is recording (state {self.state})")
        if self.ending is not None:
            raise Conflict(f"the episode is already ending ({self.ending.command})")
        self.ending = ending

    def _pause(self, body) -> None:
        self._refuse_when_stopping()
        if self.paused:
            raise Conflict("collection is already paused")
        self.paused = True

    def _resume(self, body) -> None:
        self._refuse_when_stopping()
        if not self.paused:
            raise Conflict("collection is not paused")
        self.paused = False

    def _shutdown(self, body) -> None:
        self.shutdown = True

    def _refuse_when_stopping(self) -> None:
        if self.shutdown:
            raise Conflict("the station is shutting down")

    # -- signals ---------------------------------------------------------------------------

    def interrupt(self, signal_name: str, abort: bool) -> None:
        """SIGTERM / SIGINT: cut the episode short now (kept, `truncated`) and stop; `abort`
        (a second SIGINT): abort it into rejected/. An episode that starts after the signal
        (a race with the loop) is cut at once the same way."""
        with self.lock:
            self.shutdown = True
            self.abort_on_shutdown = self.abort_on_shutdown or abort
            if abort:
                self.signalled = Ending("abort", f"interrupted (second {signal_name})")
            elif self.signalled is None:
                self.signalled = Ending("stop", f"stopped by {signal_name}")
            if self.state == "recording" and (abort or self.ending is None):
                self.ending = self.signalled
        self.wake.set()

    # -- the daemon loop's side ------------------------------------------------------------

    def set_state(self, state: str, locked: bool = False) -> None:
        """Move to `state`; `locked`: the caller already holds the lock."""
        if not locked:
            with self.lock:
                return self.set_state(state, locked=True)
        self.state = state
        if state == "recording":
            self.coming = False
            signalled = self.signalled
            if signalled is not None and (signalled.command == "abort" or self.ending is None):
                self.ending = signalled
        elif not self.coming:  # an ending asked while the episode set up is kept for it
            self.ending = None
        return None

    def take_start(self) -> StartEpisode | None:
        """The start to act on now, if any (auto mode starts by itself)."""
        with self.lock:
            if self.shutdown or self.paused:
                return None
            start, self.start = self.start, None
            if start is None and self.mode == "auto":
                start = StartEpisode()
            self.coming = start is not None
            return start

    def wait(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()
