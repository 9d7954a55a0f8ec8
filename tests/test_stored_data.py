"""Stored data explains itself: channel names and units, the fill rule, colour order, readable
pictures. One episode of the simulated station with one camera swapped for the real OpenCV
driver reading a video file of a known colour, read back with plain h5py, PIL and cv2."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import cv2
import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml
from PIL import Image

from collector.config import load_station
from collector.errors import CollectorError
from collector.replay.plot import episode_figure
from collector.replay.source import episode_range, open_recorded, parse_fields
from collector.replay.video import Mosaic, legend_label
from schemas.layout import FILL_RULE_ATTR
from tests.conftest import SIM_CONFIG, record_config, run_cli

COLOUR_RGB = (200, 60, 30)  # distinct channels: a swap of R and B cannot pass for the original
W, H = 320, 240


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stored")
    video = folder / "orange.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (W, H))
    frame_bgr = np.zeros((H, W, 3), np.uint8)
    frame_bgr[:] = COLOUR_RGB[::-1]  # VideoWriter takes BGR
    for _ in range(200):
        out.write(frame_bgr)
    out.release()
    rig = yaml.safe_load(Path(SIM_CONFIG).read_text())
    rig["devices"][0] = {"name": "cam_file", "type": "opencv_camera", "source": str(video),
                         "width": W, "height": H, "fps": 30}
    config_path = folder / "station.yaml"
    config_path.write_text(yaml.safe_dump(rig))
    config = load_station(config_path, [f"station.output_dir={folder / 'episodes'}",
                                        "engine.kind=inline", "episode.duration_s=1.5",
                                        "episode.reset_s=0",
                                        # JPEG per tick: the colour attributes under test
                                        "pipeline.images.encoding=jpeg"])
    return Path(record_config(config).path)


def test_every_channel_has_its_name_and_unit_in_the_file(recorded):
    with h5py.File(recorded, "r") as f:
        for path in ("observations/ft/value", "raw/ft/value", "observations/ft/value_lowpass"):
            attrs = f[path].attrs
            assert list(attrs["channel_names"]) == ["fx", "fy", "fz", "tx", "ty", "tz"], path
            assert list(attrs["channel_units"]) == ["N"] * 3 + ["N*m"] * 3, path
            assert attrs["unit"] != "N"  # torques are not newtons
        qvel = f["observations/arm/qvel"].attrs
        assert list(qvel["channel_units"]) == ["rad/s"] * 6 and qvel["unit"] == "rad/s"


def test_the_fill_rule_of_missing_ticks_is_stated_in_the_file(recorded):
    with h5py.File(recorded, "r") as f:
        rule = f.attrs[FILL_RULE_ATTR]
    assert "nearest" in rule and "missing" in rule


def without_channel_attrs(recorded: Path, tmp_path: Path) -> Path:
    """The episode as a file written before channel attributes existed."""
    old = tmp_path / "old.h5"
    shutil.copy(recorded, old)
    with h5py.File(old, "r+") as f:
        def strip(name, obj):
            if isinstance(obj, h5py.Dataset):
                for key in ("channel_names", "channel_units"):
                    if key in obj.attrs:
                        del obj.attrs[key]
                if name.endswith("ft/value"):
                    obj.attrs["unit"] = "N"
        f.visititems(strip)
    return old


def test_inspect_lists_channels_and_reads_older_files(recorded, tmp_path):
    result = run_cli("inspect", str(recorded))
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("ft.value "))
    assert line.split(None, 1)[1] == "fx fy fz (N)  tx ty tz (N*m)"
    old = run_cli("inspect", str(without_channel_attrs(recorded, tmp_path)))
    assert old.returncode == 0, old.stderr
    assert "value[0..5] (N)" in old.stdout


def test_plot_names_channels_splits_units_and_shows_only_raised_flags(recorded, tmp_path):
    flagged = tmp_path / "flagged.h5"
    shutil.copy(recorded, flagged)
    with h5py.File(flagged, "r+") as f:
        for q in f["quality"].values():  # a clean episode but for one raised flag
            for ds in q.values():
                if ds.dtype == np.bool_:
                    ds[...] = False
        f["quality/ft/out_of_range"][5:9] = True
    with open_recorded(flagged) as episode:
        fig = episode_figure(episode, episode_range(episode, None, None))
    legends = {tuple(t.get_text() for t in ax.get_legend().get_texts())
               for ax in fig.axes if ax.get_legend() is not None}
    assert ("fx", "fy", "fz") in legends and ("tx", "ty", "tz") in legends
    ylabels = [ax.get_ylabel() for ax in fig.axes]
    assert "ft.value\n(N)" in ylabels and "ft.value\n(N*m)" in ylabels
    flag_rows = [t.get_text() for t in fig.axes[-1].get_yticklabels()]
    assert flag_rows == ["ft:out_of_range"]
    assert "1 of" in fig.axes[-1].get_title(loc="left")
    plt.close(fig)


def test_video_tiles_carry_camera_names_and_the_strip_its_scale(recorded):
    with open_recorded(recorded) as episode:
        ticks = episode_range(episode, None, None)
        refs = parse_fields("ft.value[5],arm.qpos[0]", episode)
        mosaic = Mosaic(episode, ticks, refs, 320)
        frame = mosaic.frame(3).copy()
        lay = mosaic.layout
        for c, camera in enumerate(lay.cameras):
            rows, cols = lay.tile(c)
            plain = cv2.resize(episode.images(camera)[ticks.first + 3], (lay.tile_w, lay.tile_h),
                               interpolation=cv2.INTER_AREA)
            corner = (slice(lay.tile_h - 20, lay.tile_h), slice(0, 8 * len(camera)))
            drawn = frame[rows, cols][corner].astype(int)
            assert np.abs(drawn - plain[corner]).sum() > 1000, camera  # the name is drawn
        ft = episode.fields("ft")["value"][ticks.slice, 5]
        label = legend_label(episode, refs[0], ft.astype(np.float64))
    assert label == f"ft.tz {ft.min():.3g} to {ft.max():.3g} N*m"


def test_robomimic_export_keeps_channels_and_every_mask(recorded, tmp_path):
    marked = tmp_path / "marked.h5"
    shutil.copy(recorded, marked)
    with h5py.File(marked, "r+") as f:
        f["quality/cam_file/missing"][4:7] = True  # ticks that hold a repeated frame
        f["quality/cam_file/blurred"][10] = True
        missing = f["quality/cam_file/missing"][:]
        ft_missing = f["quality/ft/missing"][:]
    out = tmp_path / "demos.hdf5"
    result = run_cli("export", str(out), str(marked), "--no-images")
    assert result.returncode == 0, result.stderr
    with h5py.File(out, "r") as f:
        obs = f["data/demo_0/obs"]
        assert (obs["cam_file_missing"][:] == missing).all() and missing.sum() >= 3
        assert obs["cam_file_blurred"][10] and (obs["ft_missing"][:] == ft_missing).all()
        assert list(obs["ft_value"].attrs["channel_units"]) == ["N"] * 3 + ["N*m"] * 3
        assert list(f["data/demo_0/actions"].attrs["channel_names"])[-1] == "gripper"
        assert "missing" in f["data"].attrs[FILL_RULE_ATTR]


def test_color_attributes_say_what_each_decoder_returns(recorded):
    with h5py.File(recorded, "r") as f:
        ds = f["observations/images/cam_file"]
        attrs = dict(ds.attrs)
        data = bytes(ds[len(ds) // 2])
    pil = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    cv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    order = {"rgb": list(COLOUR_RGB), "bgr": list(COLOUR_RGB[::-1])}
    centre = (slice(H // 4, 3 * H // 4), slice(W // 4, 3 * W // 4))
    assert np.allclose(pil[centre].mean(axis=(0, 1)), order[attrs["pil_color_order"]], atol=8)
    assert np.allclose(cv[centre].mean(axis=(0, 1)), order[attrs["cv2_color_order"]], atol=8)
    assert attrs["pil_color_order"] != attrs["cv2_color_order"]


def test_fields_are_picked_by_the_rigs_channel_names(recorded):
    with open_recorded(recorded) as episode:
        assert parse_fields("ft.tz,ft.fx", episode) == parse_fields("ft.value[5],ft.value[0]",
                                                                    episode)
        with pytest.raises(CollectorError, match="its channels: fx, fy, fz, tx, ty, tz"):
            parse_fields("ft.torque", episode)
