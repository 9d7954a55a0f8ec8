"""Replay to the robot: the recorded actions go to the arm at the recorded timing, and the joint
trajectory it follows is compared with the recorded one, tick by tick on episode time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from collector.config import validate_station
from collector.replay.source import DEFAULT_BOUND_RAD, ReplayError, TickRange
from collector.rig import build_rig
from collector.storage.layout import OBSERVATIONS
from collector.storage.reader import Episode
from collector.sync import align_to_grid
from collector.task import ACTION_STREAM
from schemas.station import StationConfig

GAP_S = 0.1  # a tick with no replayed joint state within this is counted as missing
SETTLE_S = 1.0  # time given to reach the recorded start pose (12 lag time constants in sim)
READ_EVERY_S = 0.05
DELIVERY_WAIT_S = 2.0  # after the last command, longest wait for the arm to report past the end


@dataclass
class TrackingReport:
    arm: str
    ticks: int
    missing: int  # ticks with no replayed sample near them
    rms_rad: np.ndarray  # per joint, over the tracked ticks only (NaN when none is)
    max_rad: np.ndarray
    bound_rad: float
    speed: float
    arm_rate_hz: float = 0.0  # how often the arm reports its joint state (0: not known)

    @property
    def rms_all(self) -> float:
        return float(np.sqrt(np.mean(self.rms_rad ** 2)))

    @property
    def tracked(self) -> int:
        return self.ticks - self.missing

    @property
    def within_bound(self) -> bool:
        return self.rms_all <= self.bound_rad and self.missing == 0

    def format(self) -> str:
        joints = " ".join(f"{v:.4f}" for v in self.rms_rad)
        peaks = " ".join(f"{v:.4f}" for v in self.max_rad)
        # the verdict names what failed: an RMS under the bound with ticks missing is not "exceeds"
        verdict = "within" if self.rms_all <= self.bound_rad else "EXCEEDS"
        over = f"the {self.tracked} tracked ticks" if self.missing else "all ticks"
        lines = [f"replayed {self.ticks} ticks to {self.arm} at speed {self.speed:g}"
                 f" ({self.missing} ticks without a replayed sample)"]
        if self.tracked:
            lines += [f"  tracking error RMS per joint (rad), over {over}: {joints}",
                      f"  tracking error max per joint (rad): {peaks}",
                      f"  RMS over all joints {self.rms_all:.4f} rad: {verdict} the bound "
                      f"{self.bound_rad:g} rad"]
        else:
            lines.append(f"  no tick had a replayed sample: nothing to judge against the bound "
                         f"{self.bound_rad:g} rad")
        if self.missing:
            lines.append(f"  NOT TRACKED: {self.missing} ticks have no replayed sample to judge"
                         + self._why_untracked())
        return "\n".join(lines)

    def _why_untracked(self) -> str:
        """A replay sped up past the arm's rate leaves ticks between its samples: say so."""
        if not self.arm_rate_hz:
            return ""
        spacing_s = self.speed / self.arm_rate_hz  # episode seconds between two joint states
        if spacing_s <= GAP_S:
            return ""
        return (f" (at speed {self.speed:g} the arm's {self.arm_rate_hz:g} Hz state comes every "
                f"{spacing_s:.2f} s of episode time, more than the {GAP_S:g} s a tick may be from "
                f"one: use --speed {GAP_S * self.arm_rate_hz:g} or less)")


@dataclass
class Commands:
    """The recorded actions, in episode time order."""

    times: np.ndarray  # capture ns on the recording's clock
    qpos: np.ndarray
    gripper: np.ndarray


def recorded_commands(episode: Episode, ticks: TickRange) -> Commands:
    """Every command sent in the range, and the one in force at its first tick."""
    grid = episode.timestamps
    lo, hi = int(grid[ticks.first]), int(grid[ticks.stop - 1])
    raw = episode.raw(ACTION_STREAM)
    if raw.get("capture_ns") is not None and raw["capture_ns"].size:
        t = raw["capture_ns"]
        first = max(int(np.searchsorted(t, lo, "right")) - 1, 0)
        stop = int(np.searchsorted(t, hi, "right"))
        return Commands(t[first:stop], raw["qpos"][first:stop], raw["gripper"][first:stop, 0])
    if ACTION_STREAM not in episode.streams():
        raise ReplayError(f"{episode.path}: no recorded actions (/actions/{ACTION_STREAM}) "
                          "to send to the arm")
    fields = episode.fields(ACTION_STREAM)
    return Commands(grid[ticks.slice], fields["qpos"][ticks.slice],
                    fields["gripper"][ticks.slice, 0])


def arm_stream(config: StationConfig) -> str:
    arms = [d for d in config.devices if "arm" in d.type]
    if not arms:
        raise ReplayError("the rig has no arm to replay to; pass --config with an arm device")
    return arms[0].name


def replay_to_robot(episode: Episode, ticks: TickRange, config: StationConfig,
                    speed: float = 1.0, bound_rad: float = DEFAULT_BOUND_RAD,
                    save: str | None = None) -> TrackingReport:
    if speed <= 0:
        raise ReplayError(f"--speed {speed:g}: must be more than 0")
    name = arm_stream(config)
    recorded_arm = next((s for s, k in episode.streams().items() if k not in ("camera", "action")
                         and f"{OBSERVATIONS}/{s}/qpos" in episode.file), None)
    if recorded_arm is None:
        raise ReplayError(f"{episode.path}: no recorded joint state (observations/<arm>/qpos)")
    observed = episode.fields(recorded_arm)
    commands = recorded_commands(episode, ticks)
    only_arm = config.model_dump(mode="json")
    only_arm["devices"] = [d for d in only_arm["devices"] if d["name"] == name]
    rig = build_rig(validate_station(only_arm, source="replay rig"), realtime=True)
    arm = rig.devices[0]  # the task runner is never opened: the recording commands the arm
    rate_hz = float(arm.describe().rate_hz)
    arm.open()
    try:
        start_q, start_g = observed["qpos"][ticks.first], float(observed["gripper"][ticks.first, 0])
        times, qpos = _drive(arm, commands, int(episode.timestamps[ticks.first]),
                             int(episode.timestamps[ticks.stop - 1]), speed, start_q, start_g)
    finally:
        arm.close()
    grid = episode.timestamps[ticks.slice]
    period = int(np.median(np.diff(episode.timestamps))) if len(episode) > 1 else 1
    aligned = align_to_grid(times, {"qpos": qpos}, grid, "interpolate", int(GAP_S * 1e9),
                            period)
    # a tick without a replayed sample holds a stand-in value: judging it would blame (or
    # credit) the arm for a stretch it never reported on, so only tracked ticks are judged
    tracked = ~aligned.missing
    error = (aligned.values["qpos"] - observed["qpos"][ticks.slice])[tracked]
    if save:
        np.savez(save, episode_ns=times, qpos=qpos, grid_ns=grid, replayed=aligned.values["qpos"],
                 recorded=observed["qpos"][ticks.slice])
    if tracked.any():
        rms, peak = np.sqrt(np.mean(error ** 2, axis=0)), np.abs(error).max(axis=0)
    else:
        rms = peak = np.full(error.shape[1], np.nan)
    return TrackingReport(arm=name, ticks=len(ticks), missing=int(aligned.missing.sum()),
                          rms_rad=rms, max_rad=peak, bound_rad=bound_rad, speed=speed,
                          arm_rate_hz=rate_hz)


def _drive(arm, commands: Commands, first_tick_ns: int, last_tick_ns: int, speed: float,
           start_q: np.ndarray, start_g: float) -> tuple[np.ndarray, np.ndarray]:
    """Move to the start pose, then send every command at its (scaled) time while reading
    the joint states; returns their times mapped back onto the recording's clock (on which
    the first and last ticks judged are given)."""
    arm.command(start_q, start_g)
    time.sleep(SETTLE_S)
    arm.read()  # the approach to the start pose is not part of the replay
    t0 = time.monotonic_ns() + 20_000_000
    due = t0 + ((commands.times - first_tick_ns) / speed).astype(np.int64).clip(min=0)
    end = int(t0 + (commands.times[-1] - first_tick_ns) / speed) + 150_000_000
    chunks = []
    next_read = time.monotonic()
    for i in range(due.shape[0]):
        _sleep_until(int(due[i]))
        arm.command(commands.qpos[i], float(commands.gripper[i]))
        if time.monotonic() >= next_read:
            chunks.append(arm.read())
            next_read = time.monotonic() + READ_EVERY_S
    _sleep_until(end)
    # the last ticks are judged on samples taken after them: a reader that is behind (a busy
    # or stalled host) still has to deliver them, so wait for one past the end, not a fixed time
    past_end = t0 + int((last_tick_ns - first_tick_ns) / speed)
    give_up = time.monotonic() + DELIVERY_WAIT_S
    while True:
        chunks.append(arm.read())
        newest = chunks[-1].capture_ns
        if (newest.size and newest[-1] >= past_end) or time.monotonic() >= give_up:
            break
        time.sleep(READ_EVERY_S)
    capture = np.concatenate([c.capture_ns for c in chunks])
    qpos = np.concatenate([c.fields["qpos"] for c in chunks])
    if capture.size == 0:
        raise ReplayError(f"{arm.describe().name}: the arm reported no joint state during replay")
    return first_tick_ns + ((capture - t0) * speed).astype(np.int64), qpos


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
