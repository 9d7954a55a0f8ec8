"""Derived signals and image encodings in real recorded episodes, read back with plain h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from collector.config import load_station, validate_station
from collector.storage.reader import open_episode
from drivers.sim.camera import read_counter
from tests.conftest import SIM_CONFIG, record_config

ARM_TOLERANCE_MS = 30


def record(config) -> str:
    return record_config(config).path


def test_velocities_and_filtered_force_are_stored_without_seams(tmp_path):
    config = load_station(SIM_CONFIG, [f"station.output_dir={tmp_path}", "engine.kind=inline",
                                       "episode.duration_s=2.0",
                                       "pipeline.derived.lowpass_hz=15",
                                       "devices.arm.align.method=interpolate",
                                       f"devices.arm.align.tolerance_ms={ARM_TOLERANCE_MS}"])
    path = record(config)
    with h5py.File(path, "r") as f:
        n = f["timestamps"].shape[0]
        assert f["observations/arm/qvel"].shape == (n, 6)
        assert f["observations/arm/qvel"].attrs["unit"] == "rad/s"
        assert f["observations/ft/value_lowpass"].shape == (n, 6)
        arm = {k: v[:] for k, v in f["raw/arm"].items()}
        ft = {k: v[:] for k, v in f["raw/ft"].items()}
        grid_qvel = f["observations/arm/qvel"][:]
        ts = f["timestamps"][:]
        quality = {k: v[:] for k, v in f["quality/ft"].items()}
    # velocities: backward differences of the raw joint positions on the device clock
    t = arm["device_ns"] / 1e9
    np.testing.assert_allclose(arm["qvel"][1:], np.diff(arm["qpos"], axis=0) / np.diff(t)[:, None],
                               rtol=1e-9, atol=1e-9)
    assert np.abs(arm["qvel"]).max() > 0.1  # the arm moved
    # on the grid: a line between the samples around a tick when both lie within the tolerance,
    # the nearest sample across a gap (a busy host can stall the arm's peer for a few ticks)
    at = arm["capture_ns"]
    inside = (ts > at[0]) & (ts < at[-1])
    tick = ts[inside]
    right = np.searchsorted(at, tick)
    left = right - 1
    tol = ARM_TOLERANCE_MS * 1_000_000
    bridged = ((tick - at[left]) <= tol) & ((at[right] - tick) <= tol)
    assert bridged.mean() > 0.5  # most ticks are interpolated, so the check below has teeth
    nearest = np.where(tick - at[left] <= at[right] - tick, left, right)
    for j in range(6):
        expected = np.where(bridged, np.interp(tick, at, arm["qvel"][:, j]),
                            arm["qvel"][nearest, j])
        np.testing.assert_allclose(grid_qvel[inside, j], expected, rtol=1e-6, atol=1e-9)
    # low-pass: the textbook recursion over every raw sample reproduces the stored signal, so
    # neither chunk nor batch boundaries left a mark
    x, y = ft["value"].astype(np.float64), ft["value_lowpass"].astype(np.float64)
    alpha = -np.expm1(-2 * np.pi * 15 * np.diff(ft["device_ns"]) / 1e9)
    ref = np.empty_like(x)
    ref[0] = y[0]
    for i in range(1, len(x)):
        ref[i] = ref[i - 1] + alpha[i - 1] * (x[i] - ref[i - 1])
    np.testing.assert_allclose(y, ref, atol=1e-4)
    assert np.std(np.diff(y[:, 1])) < 0.3 * np.std(np.diff(x[:, 1]))
    assert not quality["out_of_range"].any() and (quality["saturated_score"] == 0).all()


@pytest.mark.parametrize("encoding,resize", [("png", None), ("raw", None), ("jpeg", [320, 240])])
def test_encodings_decode_from_their_stored_parameters(tmp_path, encoding, resize):
    images = {"encoding": encoding, "quality": 80, "png_compression": 3, "resize": resize}
    config = validate_station({
        "station": {"id": "e", "output_dir": str(tmp_path)}, "engine": {"kind": "inline"},
        "episode": {"duration_s": 1.0, "reset_s": 0},
        "devices": [{"name": "cam", "type": "sim_camera"}],
        "pipeline": {"images": images},
    }, source="test")
    path = record(config)
    width, height = resize or (640, 480)
    with h5py.File(path, "r") as f:
        ds = f["observations/images/cam"]
        attrs = dict(ds.attrs)
        assert attrs["encoding"] == encoding
        if encoding == "raw":
            assert attrs["color_order"] == "rgb"
        else:  # true colour in the codec: the order is the decoder's
            assert (attrs["pil_color_order"], attrs["cv2_color_order"]) == ("rgb", "bgr")
        assert (attrs["width"], attrs["height"]) == (width, height)
        assert attrs["quality"] == (80 if encoding == "jpeg" else 0)
        assert attrs["png_compression"] == (3 if encoding == "png" else 0)
        first = ds[0]
        seq = f["raw/cam/seq"][:]
        capture = f["raw/cam/capture_ns"][:]
        chosen = f["quality/cam/capture_ns"][0]
    magic = {"png": b"\x89PNG", "jpeg": b"\xff\xd8\xff"}
    if encoding == "raw":
        assert first.shape == (height, width, 3)
    else:
        assert bytes(first[:len(magic[encoding])]) == magic[encoding]
    with open_episode(path) as ep:
        frame = ep.images("cam")[0]
    assert frame.shape == (height, width, 3) and frame.dtype == np.uint8
    if resize is None:  # the counter survives lossless storage exactly
        assert read_counter(frame) == seq[np.searchsorted(capture, chosen)]
        if encoding == "raw":
            np.testing.assert_array_equal(frame, first)
