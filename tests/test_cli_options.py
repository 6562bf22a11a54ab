"""Every `aofnode serve` option is a Config field and every Config field an option: the CLI builds
Config from the options by name (node/tools/cli.py), so a setting cannot be forgotten on one side."""
from __future__ import annotations

import dataclasses

from node.config import Config
from node.tools import cli


def _serve_dests() -> set[str]:
    serve = cli._parser()._subparsers._group_actions[0].choices["serve"]
    return {a.dest for a in serve._actions} - {"help"}


def test_serve_options_and_config_fields_are_the_same_names():
    assert _serve_dests() == {f.name for f in dataclasses.fields(Config)}


def test_options_reach_the_config():
    args = cli._parser().parse_args(["serve", "--watchdog-timeout", "3", "--crash-loop-window", "9",
                                     "--maxmemory", "1mb", "--client-output-limit", "2mb"])
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)}
    config = Config(**settings)
    assert (config.watchdog_timeout_s, config.crash_loop_window_s) == (3.0, 9.0)
    assert (config.maxmemory, config.client_output_limit) == (1 << 20, 2 << 20)
