"""The ``aofnode`` command: ``serve``, ``cli``, ``check-aof`` and ``logs``."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys

from node.config import DEFAULT_BIND, FSYNC_POLICIES, Config

__all__ = ["main"]


def _size(text: str) -> int:
    units = {"k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
    t = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * units[suffix])
    return int(t)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aofnode", description="aofnode: a key-value node with an append-only file, over ZeroMQ")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run a node in the foreground")
    s.add_argument("--dir", default="data", help="data directory (default: ./data)")
    s.add_argument("--bind", default=DEFAULT_BIND, help=f"client endpoint, tcp:// or ipc:// (default: {DEFAULT_BIND})")
    s.add_argument("--appendfsync", choices=FSYNC_POLICIES, default="everysec")
    s.add_argument("--log-file", default=None, help="append JSON log lines here (default: stderr)")
    s.add_argument("--log-format", choices=("json", "console"), default="json")
    s.add_argument("--auto-aof-rewrite-percentage", type=int, default=100)
    s.add_argument("--auto-aof-rewrite-min-size", type=_size, default=64 << 20)
    s.add_argument("--aof-rewrite-diff-limit", type=_size, default=256 << 20)
    s.add_argument("--aof-rewrite-child-nice", type=int, default=10, metavar="N",
                   help="niceness added to the rewrite child (0: same priority as the node)")
    s.add_argument("--aof-close-inline", action="store_true",
                   help="benchmarking only: close the old AOF in the log actor, not the closer")
    s.add_argument("--client-output-limit", type=_size, default=64 << 20, metavar="SIZE",
                   help="cut off a client whose unsent replies pass SIZE (default 64mb)")
    s.add_argument("--channel-output-limit", type=_size, default=256 << 20, metavar="SIZE",
                   help="back-pressure between the log actor and the front past SIZE unsent (default 256mb)")
    s.add_argument("--cycle-max-commands", type=int, default=4096, metavar="N",
                   help="requests one log-actor cycle runs before it fsyncs and replies (default 4096)")
    s.add_argument("--cycle-max-ms", type=float, default=5.0, metavar="MS",
                   help="milliseconds one log-actor cycle runs before it fsyncs and replies (default 5)")
    s.add_argument("--watchdog-timeout", dest="watchdog_timeout_s", type=float, default=10.0, metavar="SECONDS",
                   help="log actor_hung when the log actor's loop has not turned for SECONDS (default 10; 0: off)")
    s.add_argument("--watchdog-kill", action="store_true",
                   help="also kill a hung log actor, so that it restarts")
    s.add_argument("--maxmemory", type=_size, default=None, metavar="SIZE",
                   help="keyspace memory limit (default: 40%% of the machine's or cgroup's memory; 0: none)")
    s.add_argument("--maxmemory-policy", choices=("noeviction", "allkeys-lru"), default="noeviction",
                   help="at maxmemory: refuse writes that may grow memory (default), or evict keys")
    s.add_argument("--crash-loop-count", type=int, default=5, metavar="N",
                   help="stop the node (exit 7) when one actor dies N times within the window (default 5)")
    s.add_argument("--crash-loop-window", dest="crash_loop_window_s", type=float, default=60.0, metavar="SECONDS",
                   help="the crash-loop window (default 60)")

    c = sub.add_parser("cli", help="send commands to a node (interactive without COMMAND)")
    c.add_argument("--connect", default=DEFAULT_BIND, help=f"node endpoint (default: {DEFAULT_BIND})")
    c.add_argument("--timeout", type=float, default=5.0)
    c.add_argument("--raw", action="store_true", help="print replies without quotes and types")
    c.add_argument("command", nargs=argparse.REMAINDER)

    k = sub.add_parser("check-aof", help="verify an AOF file; --fix truncates it to the last good record")
    k.add_argument("file")
    k.add_argument("--fix", action="store_true")
    k.add_argument("--yes", action="store_true", help="do not ask before truncating")

    g = sub.add_parser("logs", help="summarize or plot a node's JSON log (docs/logs.md)")
    gs = g.add_subparsers(dest="logs_cmd", required=True)
    gsum = gs.add_parser("summarize", help="tables of rewrites, fsyncs, loads, warnings, restarts")
    gsum.add_argument("file", help="log file, or - for stdin")
    gsum.add_argument("--json", action="store_true", help="print one JSON object instead")
    gplot = gs.add_parser("plot", help="a timeline PNG of the same events")
    gplot.add_argument("file", help="log file, or - for stdin")
    gplot.add_argument("-o", "--output", required=True, help="PNG file to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "serve":
        from node.actors.supervisor import serve
        from node.sysmem import default_maxmemory
        # Every serve option's dest is the name of its Config field: one place to add a setting.
        settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
        if args.log_file:
            settings["log_file"] = os.path.abspath(args.log_file)
        if args.maxmemory is None:
            settings["maxmemory"] = default_maxmemory()
        config = Config(**settings)
        return serve(config)
    if args.cmd == "check-aof":
        from node.aof.check import check_aof_main
        return check_aof_main(args.file, fix=args.fix, yes=args.yes)
    if args.cmd == "logs":
        from node.tools.logtools import logs_main
        return logs_main(args)
    return _cli(args)


# -- cli ----------------------------------------------------------------------------------------

def format_reply(value, raw: bool = False, indent: str = "") -> str:
    """Render a reply the way redis-cli does (``raw``: as redis-cli prints to a pipe)."""
    from protocol.client import CommandError
    if isinstance(value, CommandError):
        return f"{value.code} {value.message}" if raw else f"(error) {value.code} {value.message}"
    if value is None:
        return "" if raw else "(nil)"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value) if raw else f"(integer) {value}"
    if isinstance(value, float):
        return repr(value) if raw else f"(double) {value!r}"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        if raw:
            return value.decode("utf-8", "replace")
        return '"' + "".join(_escape(b) for b in value) + '"'
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) for v in value.values()):  # INFO
            lines = []
            for section, fields in value.items():
                lines.append(f"# {section.capitalize()}")
                lines.extend(f"{k}:{v}" for k, v in fields.items())
                lines.append("")
            return "\n".join(lines).rstrip("\n")
        value = [x for kv in value.items() for x in kv]
    if isinstance(value, list):
        if not value:
            return "" if raw else "(empty array)"
        if raw:
            return "\n".join(format_reply(v, True) for v in value)
        width = len(str(len(value)))
        out = []
        for i, v in enumerate(value, 1):
            prefix = f"{i:>{width}}) "
            text = format_reply(v, False, indent + " " * len(prefix))
            out.append((indent if i > 1 else "") + prefix + text)
        return "\n".join(out)
    return repr(value)


def _escape(b: int) -> str:
    if b in (0x22, 0x5C):
        return "\\" + chr(b)
    if 0x20 <= b < 0x7F:
        return chr(b)
    return {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}.get(b, f"\\x{b:02x}")


def _cli(args) -> int:
    from protocol.client import Client, CommandError, NodeTimeout
    raw = args.raw or (bool(args.command) and not sys.stdout.isatty())
    with Client(args.connect, timeout=args.timeout) as client:
        if args.command:
            try:
                print(format_reply(client.execute(*args.command), raw))
            except CommandError as exc:
                print(format_reply(exc, raw))
                return 1
            except NodeTimeout as exc:
                print(f"Could not connect to aofnode at {args.connect}: {exc}", file=sys.stderr)
                return 1
            return 0
        return _interactive(client, args.connect)


def _interactive(client, endpoint: str) -> int:
    from protocol.client import CommandError, NodeTimeout
    try:
        import readline
        history = os.path.expanduser("~/.aofnode_history")
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    except ImportError:
        readline = None
    host = endpoint.split("://", 1)[-1]
    db = 0
    try:
        while True:
            prompt = f"{host}[{db}]> " if db else f"{host}> "
            try:
                line = input(prompt)
            except EOFError:
                print()
                break
            try:
                words = shlex.split(line)
            except ValueError as exc:
                print(f"Invalid argument(s): {exc}")
                continue
            if not words:
                continue
            if words[0].lower() in ("quit", "exit"):
                break
            try:
                reply = client.execute(*words)
                if words[0].upper() == "SELECT":
                    db = int(words[1])
                print(format_reply(reply))
            except CommandError as exc:
                print(format_reply(exc))
            except NodeTimeout as exc:
                print(f"Could not connect to aofnode at {endpoint}: {exc}")
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass
    return 0
