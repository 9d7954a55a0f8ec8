"""Derived signals: joint velocities and low-pass filtered sensor fields, at the full raw rate.

They are computed on the raw samples as they arrive, before alignment, with the state of each
stream carried from chunk to chunk, so a chunk boundary never shows in the result. That needs the
samples in order, which is why perception (one ordered stage) runs this and not the computation
pool (whose workers each see every n-th batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.base import FieldInfo, StreamInfo
from schemas.station import DerivedSignals

VELOCITY_OF = {"qpos": "qvel"}  # arm field -> its derivative (the ALOHA/ACT names)
LOWPASS_SUFFIX = "_lowpass"
MAX_EXPONENT = 50.0  # the filter's closed form multiplies by e^(w t); keep it well inside float64


def derived_fields(info: StreamInfo, config: DerivedSignals) -> dict[str, FieldInfo]:
    """The fields a stream gains: `qvel` for arms, `<field>_lowpass` for sensor float fields."""
    out = {}
    if info.kind == "arm" and config.velocities:
        for source, name in VELOCITY_OF.items():
            if source in info.fields:
                f = info.fields[source]
                out[name] = FieldInfo(f.shape, "float64", per_second(f.unit), f.channels,
                                      tuple(per_second(u) for u in f.units))
    if info.kind == "sensor" and config.lowpass_hz is not None:
        for name, f in info.fields.items():
            if np.issubdtype(np.dtype(f.dtype), np.floating):
                out[name + LOWPASS_SUFFIX] = FieldInfo(f.shape, f.dtype, f.unit, f.channels,
                                                       f.units)
    return out


def per_second(unit: str) -> str:
    return f"{unit}/s" if unit else "1/s"


def sample_times(capture_ns: np.ndarray, device_ns: np.ndarray) -> np.ndarray:
    """Seconds to differentiate over: the device clock when it has one (no transport jitter)."""
    t = device_ns if device_ns.size and (device_ns >= 0).all() else capture_ns
    return t.astype(np.int64)


def finite_difference(t_ns: np.ndarray, q: np.ndarray,
                      previous: tuple[int, np.ndarray] | None) -> np.ndarray:
    """Backward differences dq/dt per sample; the first sample of a stream gets 0."""
    n = q.shape[0]
    out = np.zeros(q.shape, np.float64)
    if n == 0:
        return out
    if previous is not None:
        t_ns = np.concatenate([[previous[0]], t_ns])
        q = np.concatenate([previous[1][None], q])
    dt = np.diff(t_ns).astype(np.float64) / 1e9
    shape = (-1,) + (1,) * (q.ndim - 1)
    dq = np.diff(q.astype(np.float64), axis=0)
    rate = np.divide(dq, dt.reshape(shape), out=np.zeros_like(dq), where=dt.reshape(shape) > 0)
    out[n - rate.shape[0]:] = rate
    return out


def lowpass(t_ns: np.ndarray, x: np.ndarray, cutoff_hz: float,
            previous: tuple[int, np.ndarray] | None) -> np.ndarray:
    """First-order low-pass over irregular sample times, vectorized in closed form.

    y_n = y_{n-1} + a_n (x_n - y_{n-1}) with a_n = 1 - exp(-w dt_n), unrolled as
    y_n = e^(-w tau_n) [y_start + sum_k a_k x_k e^(w tau_k)], tau from the block start. Blocks
    keep w tau below MAX_EXPONENT so the sums stay exact in float64.
    """
    n = x.shape[0]
    out = np.empty(x.shape, np.float64)
    if n == 0:
        return out.astype(x.dtype)
    w = 2 * np.pi * cutoff_hz
    if previous is None:
        previous = (int(t_ns[0]), x[0].astype(np.float64))
    t_prev, y_prev = previous
    shape = (-1,) + (1,) * (x.ndim - 1)
    # time in units of the time constant; a long pause (e^-25 ~ 0) simply restarts the filter
    steps = np.diff(np.concatenate([[t_prev], t_ns])).astype(np.float64) / 1e9 * w
    tau = np.cumsum(steps.clip(0.0, MAX_EXPONENT / 2))
    start = 0
    while start < n:
        stop = start + int(np.searchsorted(tau[start:], tau[start] + MAX_EXPONENT, "right"))
        base = 0.0 if start == 0 else tau[start - 1]
        rel = tau[start:stop] - base
        a = -np.expm1(-np.diff(np.concatenate([[0.0], rel])))  # 1 - e^(-w dt), exact if small
        growth = np.exp(rel)
        acc = np.cumsum((a * growth).reshape(shape) * x[start:stop], axis=0)
        out[start:stop] = (y_prev[None] + acc) / growth.reshape(shape)
        y_prev = out[stop - 1]
        start = stop
    return out.astype(x.dtype)


def is_derived(field: str) -> bool:
    """A field the pipeline computes (so a replay recomputes it rather than replaying it)."""
    return field in VELOCITY_OF.values() or field.endswith(LOWPASS_SUFFIX)


@dataclass
class Deriver:
    """Adds the derived fields of one stream to each chunk, carrying state across chunks."""

    fields: dict[str, FieldInfo]
    cutoff_hz: float | None
    _last_t: int | None = None
    _last: dict | None = None

    def reset(self) -> None:
        self._last_t, self._last = None, None

    def derive(self, capture_ns: np.ndarray, device_ns: np.ndarray,
               values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.fields or capture_ns.shape[0] == 0:
            return {name: np.zeros((0, *f.shape), f.dtype) for name, f in self.fields.items()}
        t = sample_times(capture_ns, device_ns)
        last = self._last or {}
        out = {}
        for source, name in VELOCITY_OF.items():
            if name in self.fields:
                prev = None if self._last_t is None else (self._last_t, last[source])
                out[name] = finite_difference(t, values[source], prev)
        for name in self.fields:
            if name.endswith(LOWPASS_SUFFIX):
                assert self.cutoff_hz is not None  # derived_fields adds these only with a cutoff
                source = name[: -len(LOWPASS_SUFFIX)]
                prev = None if self._last_t is None else (self._last_t, last[name])
                out[name] = lowpass(t, values[source], self.cutoff_hz, prev)
        self._last_t = int(t[-1])
        self._last = {**{s: values[s][-1].copy() for s in VELOCITY_OF if s in values},
                      **{k: v[-1].astype(np.float64) for k, v in out.items()
                         if k.endswith(LOWPASS_SUFFIX)}}
        return out
