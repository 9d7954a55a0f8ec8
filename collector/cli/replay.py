"""`collector replay EPISODE --to robot|video|pipeline`: play a recorded episode back."""

from __future__ import annotations

import argparse

import yaml

from collector.config import _apply_override, load_station, validate_station
from collector.replay.source import (
    DEFAULT_BOUND_RAD,
    ReplayError,
    episode_range,
    open_recorded,
    parse_fields,
)
from collector.storage.reader import Episode
from collector.storage.validate import unreadable

MODES = ("robot", "video", "pipeline")
EXIT_ABOVE_BOUND = 6  # robot replay ran, but tracked worse than the bound (3: a device failed)


def register(sub) -> None:
    parser = sub.add_parser(
        "replay", help="replay an episode to the robot, to video or through the pipeline",
        description="--to robot: send the recorded actions to the arm and report the tracking "
                    "error; --to video OUT.mp4: camera mosaic with a timeline (--frames N: "
                    "contact sheet PNG; --camera NAME: that camera's own video, remuxed "
                    "without re-encoding where it is stored as h264/av1); --to pipeline "
                    "[CONFIG]: re-record the episode through the pipeline from replay devices.")
    parser.add_argument("episode", help="a recorded episode .h5")
    parser.add_argument("--to", required=True, nargs="+", metavar=("MODE", "TARGET"),
                        help="robot | video OUT.mp4 (OUT.png with --frames) | pipeline [CONFIG]"
                             " (CONFIG: a station YAML naming replay devices; default: derived "
                             "from the episode's rig)")
    parser.add_argument("--start", type=float, default=None, help="episode seconds to start at")
    parser.add_argument("--end", type=float, default=None, help="episode seconds to stop at")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE", help="override a field of the rig/station config")
    robot = parser.add_argument_group("--to robot")
    robot.add_argument("--speed", type=float, default=1.0,
                       help="time scale (2: twice as fast; default %(default)s)")
    robot.add_argument("--config", help="station YAML with the arm to drive "
                                        "(default: the rig the episode was recorded with)")
    robot.add_argument("--bound", type=float, default=DEFAULT_BOUND_RAD,
                       help="RMS tracking error bound in rad (default %(default)s)")
    robot.add_argument("--save", help="write the replayed joint trajectory to this .npz")
    video = parser.add_argument_group("--to video")
    video.add_argument("--camera", metavar="NAME",
                       help="one camera's own video instead of the mosaic: an h264/av1 camera's "
                            "stored packets remuxed (no re-encode), a jpeg/png/raw camera's "
                            "images re-encoded with h264; OUT: .mp4 or .mkv")
    video.add_argument("--fields", help="fields to plot under the video, e.g. "
                                        "ft.value[2],arm.qpos[0], or by channel name: ft.tz "
                                        "(default: first of each)")
    video.add_argument("--frames", type=int, default=None,
                       help="write a contact sheet of N frames (PNG) instead of a video")
    video.add_argument("--tile-width", type=int, default=320,
                       help="pixels per camera tile (default %(default)s)")
    pipe = parser.add_argument_group("--to pipeline")
    pipe.add_argument("--out", default=None,
                      help="output folder (default: replays; with CONFIG, its output_dir)")
    pipe.add_argument("--engine", choices=["ray", "inline"], help="override engine.kind")
    pipe.add_argument("--realtime", action="store_true",
                      help="pace the replay in real time (default: as fast as the pipeline "
                           "goes, deterministic)")
    parser.set_defaults(func=replay)


def replay(args: argparse.Namespace) -> int:
    mode, *rest = args.to
    if mode not in MODES or len(rest) > 1:
        raise ReplayError(f"--to {' '.join(args.to)}: expected one of robot, video OUT.mp4, "
                          "pipeline [CONFIG]")
    args.to, args.target = mode, rest[0] if rest else None
    if mode == "robot" and args.target:
        raise ReplayError(f"--to robot takes no target (got {args.target!r}); use --config")
    with open_recorded(args.episode) as episode:
        ticks = episode_range(episode, args.start, args.end)
        try:
            if args.to == "robot":
                return _robot(args, episode, ticks)
            if args.to == "video":
                return _video(args, episode, ticks)
            return _pipeline(args, episode, ticks)
        except OSError as exc:
            if exc.errno is not None:  # the system's: an output that cannot be written
                raise
            raise unreadable(args.episode, exc) from None  # HDF5's: a damaged chunk


def _robot(args, episode: Episode, ticks) -> int:
    from collector.replay.robot import replay_to_robot

    if args.config:
        config = load_station(args.config, args.overrides)
    else:
        config = _stored_config(episode, args.overrides)
    report = replay_to_robot(episode, ticks, config, args.speed,
                             args.bound, args.save)
    print(report.format())
    return 0 if report.within_bound else EXIT_ABOVE_BOUND


def _video(args, episode: Episode, ticks) -> int:
    from collector.replay.video import write_contact_sheet, write_video

    if not args.target:
        raise ReplayError("--to video needs an output file, e.g. --to video out.mp4")
    if args.camera is not None:
        return _camera_video(args, episode, ticks)
    fields = parse_fields(args.fields, episode)
    if args.frames is not None:
        picked = write_contact_sheet(episode, ticks, fields, args.target, args.frames,
                                     args.tile_width)
        print(f"wrote {args.target}: contact sheet of {len(picked)} frames (ticks "
              f"{', '.join(map(str, picked))})")
        return 0
    frames, fps = write_video(episode, ticks, fields, args.target, args.tile_width)
    print(f"wrote {args.target}: re-encoded {frames} frames (a mosaic of every camera with the "
          f"timeline) at {fps:g} fps = {frames / fps:.2f} s")
    return 0


def _camera_video(args, episode: Episode, ticks) -> int:
    from collector.replay.camera_video import write_camera_video

    for given, option in ((args.frames, "--frames"), (args.fields, "--fields")):
        if given is not None:
            raise ReplayError(f"{option} draws on the mosaic; --camera {args.camera} writes the "
                              f"camera's own video: leave out one of them")
    written = write_camera_video(episode, args.camera, ticks, args.target)
    print(f"wrote {args.target}: {args.camera}: {written.describe()}")
    return 0


def _pipeline(args, episode: Episode, ticks) -> int:
    from collector.cli.record import format_summary
    from collector.replay.pipeline import (
        derived_config,
        replay_to_pipeline,
        user_config,
        with_overrides,
    )

    start = args.start or 0.0
    if args.target:
        config = user_config(args.target, args.overrides, episode, start, args.end)
    else:
        config = derived_config(episode, ticks, start, args.end, args.overrides)
    config = with_overrides(config, args.out or ("replays" if not args.target else None),
                            args.engine)
    summary = replay_to_pipeline(config, realtime=args.realtime)
    print(f"replayed {episode.path} through the pipeline ({len(ticks)} ticks)")
    print(format_summary(summary))
    return 0


def _stored_config(episode: Episode, overrides: list[str]):
    text = episode.metadata.get("rig_config")
    if not text:
        raise ReplayError(f"{episode.path}: no rig_config stored; pass --config STATION.yaml")
    raw = yaml.safe_load(text)
    for item in overrides:
        _apply_override(raw, item, episode.path)
    return validate_station(raw, source=f"{episode.path} rig_config")
