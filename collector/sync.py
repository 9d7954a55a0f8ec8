"""Placing a stream's samples onto the episode grid, vectorized with `np.searchsorted`."""

from __future__ import annotations

import numpy as np

from collector.batch import StreamOnGrid

NO_SAMPLE = np.int64(-1)


def align_to_grid(
    times: np.ndarray,
    values: dict[str, np.ndarray],
    grid: np.ndarray,
    method: str,
    tolerance_ns: int,
    period_ns: int,
) -> StreamOnGrid:
    """Align samples (sorted `times`, int64 ns) onto `grid` ticks.

    - nearest: the closest sample, missing if farther than `tolerance_ns`;
    - interpolate: linear between the samples around the tick when both lie within
      `tolerance_ns` of it, else the nearest sample: a line drawn across a gap (a dropout, the
      stream's first or last sample) would invent values nobody measured, and a replay of
      the stored samples, which need not hold the far one, could not reproduce them;
    - mean / last / max: over the samples in the window (tick - period, tick].
    Missing ticks repeat the nearest sample (or zeros when the stream is empty) so arrays stay
    rectangular; the `missing` flag says not to trust them.
    """
    m = grid.shape[0]
    if times.shape[0] == 0:
        return StreamOnGrid(
            values={k: np.zeros((m, *v.shape[1:]), v.dtype) for k, v in values.items()},
            capture_ns=np.full(m, NO_SAMPLE),
            dt_ns=np.zeros(m, np.int64),
            missing=np.ones(m, bool),
        )
    nearest = _nearest_index(times, grid)
    dt = np.abs(grid - times[nearest])
    if method == "nearest":
        return StreamOnGrid(
            values={k: v[nearest] for k, v in values.items()},
            capture_ns=times[nearest],
            dt_ns=dt,
            missing=dt > tolerance_ns,
        )
    if method == "interpolate":
        return _interpolate(times, values, grid, nearest, dt, tolerance_ns)
    return _window(times, values, grid, method, period_ns, nearest, dt)


def _nearest_index(times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    right = np.searchsorted(times, grid).clip(1, times.shape[0] - 1) if times.shape[0] > 1 \
        else np.zeros(grid.shape[0], np.intp)
    if times.shape[0] == 1:
        return right
    left = right - 1
    take_left = (grid - times[left]) <= (times[right] - grid)
    return np.where(take_left, left, right)


def _interpolate(times, values, grid, nearest, dt, tolerance_ns) -> StreamOnGrid:
    n = times.shape[0]
    right = np.searchsorted(times, grid).clip(1, max(n - 1, 1))
    left = right - 1
    if n == 1:
        left = right = np.zeros_like(right)
    span = (times[right] - times[left]).astype(np.float64)
    w = np.divide(grid - times[left], span, out=np.zeros(grid.shape, np.float64),
                  where=span > 0).clip(0.0, 1.0)
    across_gap = ((grid - times[left]) > tolerance_ns) | ((times[right] - grid) > tolerance_ns)
    w = np.where(across_gap, (nearest == right).astype(np.float64), w)
    out = {}
    for key, v in values.items():
        if np.issubdtype(v.dtype, np.floating):
            shape = (-1,) + (1,) * (v.ndim - 1)
            a, b = v[left].astype(np.float64), v[right].astype(np.float64)
            out[key] = (a + (b - a) * w.reshape(shape)).astype(v.dtype)
        else:  # counters, flags, images: interpolating them would invent values
            out[key] = v[nearest]
    inside = (grid >= times[0] - tolerance_ns) & (grid <= times[-1] + tolerance_ns)
    return StreamOnGrid(values=out, capture_ns=times[nearest], dt_ns=dt,
                        missing=~inside | (dt > tolerance_ns))


def _window(times, values, grid, method, period_ns, nearest, dt) -> StreamOnGrid:
    lo = np.searchsorted(times, grid - period_ns, side="right")
    hi = np.searchsorted(times, grid, side="right")
    count = hi - lo
    empty = count == 0
    last = np.maximum(hi - 1, 0)
    out = {}
    for key, v in values.items():
        if method == "last" or not np.issubdtype(v.dtype, np.number):
            out[key] = v[np.where(empty, nearest, last)]
        elif method == "mean":
            flat = v.reshape(v.shape[0], -1).astype(np.float64)
            csum = np.vstack([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)])
            mean = (csum[hi] - csum[lo]) / np.maximum(count, 1)[:, None]
            mean[empty] = flat[nearest[empty]]
            out[key] = mean.reshape(-1, *v.shape[1:]).astype(v.dtype)
        else:  # max over each window; reduceat needs non-empty segments, so patch the empties
            starts = np.minimum(lo, v.shape[0] - 1)
            peak = np.maximum.reduceat(v, starts, axis=0)
            peak[empty] = v[nearest[empty]]
            # reduceat runs each segment to the next start, not to `hi`: redo the overlong ones
            overlong = ~empty & (np.append(starts[1:], v.shape[0]) != hi)
            for i in np.flatnonzero(overlong):  # rare: only where windows are not adjacent
                peak[i] = v[lo[i] : hi[i]].max(axis=0)
            out[key] = peak
    window_dt = np.where(empty, dt, np.abs(grid - times[last]))
    return StreamOnGrid(values=out, capture_ns=np.where(empty, times[nearest], times[last]),
                        dt_ns=window_dt, missing=empty)
