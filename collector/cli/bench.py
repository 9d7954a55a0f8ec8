"""`collector bench [CONFIG]`: end-to-end throughput, latency and resources, against baselines.

`collector bench --compare A.json B.json` prints the ratio of every figure between two runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

from collector.errors import ConfigError

DEFAULT_CONFIG = "configs/sim_station.yaml"


def register(sub) -> None:
    parser = sub.add_parser("bench", help="benchmark the station against its baselines")
    parser.add_argument("config", nargs="?", default=DEFAULT_CONFIG,
                        help="station YAML file (default %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="PATH=VALUE", help="override one field, as for `record`")
    parser.add_argument("--mode", choices=["realtime", "max"], default="realtime",
                        help="realtime: nominal rates; max: simulated cameras unthrottled")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of recording (default %(default)g)")
    parser.add_argument("--engine", choices=["ray", "inline"], help="override engine.kind")
    parser.add_argument("--json", dest="json_path", type=Path,
                        help="results file (default bench-results/<timestamp>.json)")
    parser.add_argument("--plot", type=Path, help="draw throughput and latency over time here")
    parser.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"),
                        help="print the ratio B/A of every figure of two runs, run nothing")
    parser.add_argument("--load", type=float, default=0.5,
                        help="max mode: first offered camera rate, as a multiple of the bare "
                             "loop on every core (then calibrated; default %(default)g)")
    parser.add_argument("--max-fps", type=float,
                        help="max mode: camera and grid rate per camera (overrides --load)")
    parser.add_argument("--baseline-s", type=float, default=5.0,
                        help="seconds each rate baseline runs (default %(default)g)")
    parser.add_argument("--disk-mb", type=int, default=256,
                        help="MiB written by the disk baseline (default %(default)s)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-results/work"),
                        help="where episodes are written (removed afterwards unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the recorded episodes")
    parser.set_defaults(func=bench)


def bench(args: argparse.Namespace) -> int:
    from collector.bench.report import compare, format_result, load_result

    if args.compare:
        a, b = (load_result(p) for p in args.compare)
        print(compare(a, b, *args.compare))
        return 0
    if args.duration <= 0 or args.baseline_s <= 0 or args.disk_mb < 1:
        raise ConfigError("--duration and --baseline-s must be positive and --disk-mb at "
                          "least 1; e.g. --duration 30")
    if args.load <= 0 or (args.max_fps is not None and args.max_fps <= 0):
        raise ConfigError("--load and --max-fps must be positive; e.g. --load 2")

    from collector.bench.run import BenchOptions, run_bench

    opts = BenchOptions(config=args.config, overrides=list(args.overrides), mode=args.mode,
                        duration_s=args.duration, engine=args.engine, load=args.load,
                        max_fps=args.max_fps, baseline_s=args.baseline_s,
                        disk_mb=args.disk_mb, workdir=args.workdir)
    fresh = not args.workdir.exists()
    try:
        result = run_bench(opts, say=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir / "episodes", ignore_errors=True)
            if fresh:
                shutil.rmtree(args.workdir, ignore_errors=True)
    path = args.json_path or Path("bench-results") / (
        f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{args.mode}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.model_dump_json(indent=1) + "\n")
    print(format_result(result))
    print(f"results: {path}")
    if args.plot:
        from collector.bench.plot import plot_result

        plot_result(result, args.plot)
        print(f"plot: {args.plot}")
    return 0
