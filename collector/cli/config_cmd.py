"""`collector config check FILE` and `collector config schema`."""

from __future__ import annotations

import argparse
import json

from collector.cli import add_config_args
from collector.config import load_station
from collector.write_rate import describe, write_rate
from schemas.station import StationConfig


def register(sub) -> None:
    parser = sub.add_parser("config", help="check a station YAML file or print its JSON Schema")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate a station YAML file")
    add_config_args(check)
    check.set_defaults(func=check_config)
    schema = actions.add_parser("schema", help="print the JSON Schema of station files")
    schema.set_defaults(func=print_schema)


def check_config(args: argparse.Namespace) -> int:
    config = load_station(args.config, args.overrides)
    kinds = ", ".join(f"{d.name} ({d.type})" for d in config.devices)
    print(f"{args.config}: ok: station {config.station.id}, {len(config.devices)} devices: {kinds}")
    print(describe(write_rate(config), config))
    return 0


def print_schema(args: argparse.Namespace) -> int:
    print(json.dumps(StationConfig.model_json_schema(), indent=2))
    return 0
