"""The ``aofnode`` command: ``serve``, ``cli``, ``check-aof`` and ``logs``."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from aofnode.store.eviction import POLICIES

from aofnode.config import (DEBUG_COMMAND_ENV, DEBUG_COMMAND_MODES, DEFAULT_BIND, FSYNC_POLICIES,
                             USUAL_RESP_BIND, Config)

__all__ = ["main"]


def _size(text: str) -> int:
    units = {"k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30}
    t = text.strip().lower()
    for suffix in sorted(units, key=len, reverse=True):
        if t.endswith(suffix):
            return int(float(t[: -len(suffix)]) * units[suffix])
    return int(t)


def _int_from(low: int):
    """An argparse type: an integer from ``low`` to INT_MAX (Redis's range for the setting)."""
    def parse(text: str) -> int:
        n = int(text)
        if not low <= n <= (1 << 31) - 1:
            raise argparse.ArgumentTypeError(f"must be between {low} and {(1 << 31) - 1}")
        return n
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aofnode",
                                description="aofnode: a key-value node with an append-only file, over ZeroMQ")
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
    s.add_argument("--aof-rewrite-child-sched", choices=("normal", "idle"), default="normal",
                   help="scheduling class of the rewrite child (idle: SCHED_IDLE; default normal)")
    s.add_argument("--aof-close-inline", action="store_true",
                   help="benchmarking only: close the old AOF in the log actor, not the closer")
    s.add_argument("--client-output-limit", type=_size, default=64 << 20, metavar="SIZE",
                   help="cut off a client whose unsent replies pass SIZE (default 64mb)")
    s.add_argument("--channel-output-limit", type=_size, default=16 << 20, metavar="SIZE",
                   help="back-pressure between the log actor and a front past SIZE unsent (default 16mb)")
    s.add_argument("--max-watched-keys-per-client", type=int, default=10_000, metavar="N",
                   help="keys one client may WATCH; past it WATCH is refused (default 10000)")
    s.add_argument("--max-watched-keys", type=int, default=100_000, metavar="N",
                   help="keys WATCHed over all clients; past it the oldest clients' watches are "
                        "dropped and their transactions abort (default 100000)")
    s.add_argument("--tracking-table-max-keys", type=int, default=1_000_000, metavar="N",
                   help="keys remembered for CLIENT TRACKING; past it the oldest are forgotten and "
                        "their clients told (default 1000000, 0: no limit)")
    s.add_argument("--cycle-max-commands", type=int, default=4096, metavar="N",
                   help="requests one log-actor cycle runs before it fsyncs and replies (default 4096)")
    s.add_argument("--cycle-max-ms", type=float, default=5.0, metavar="MS",
                   help="milliseconds one log-actor cycle runs before it fsyncs and replies (default 5)")
    s.add_argument("--watchdog-timeout", dest="watchdog_timeout_s", type=float, default=10.0, metavar="SECONDS",
                   help="log actor_hung when the log actor's loop has not turned for SECONDS (default 10; 0: off)")
    s.add_argument("--watchdog-kill", action="store_true",
                   help="also kill a hung log actor, so that it restarts")
    s.add_argument("--busy-reply-threshold", dest="busy_reply_threshold_ms", type=int, default=5000,
                   metavar="MS", help="a script running longer makes other clients get BUSY until "
                                      "SCRIPT KILL (default 5000; 0: never)")
    s.add_argument("--key-load-delay", type=int, default=0, metavar="USEC",
                   help="debugging: sleep USEC microseconds per AOF entry loaded, to watch LOADING "
                        "(default 0; negative N: 1 us every N entries)")
    s.add_argument("--maxmemory", type=_size, default=None, metavar="SIZE",
                   help="keyspace memory limit (default: 40%% of the machine's or cgroup's memory; 0: none)")
    s.add_argument("--maxmemory-policy", choices=POLICIES, default="noeviction",
                   help="at maxmemory: refuse writes that may grow memory (default), or evict keys"
                        " as Redis's policy of that name")
    s.add_argument("--maxmemory-samples", type=_int_from(1), default=5, metavar="N",
                   help="keys sampled per eviction (default 5, as Redis)")
    s.add_argument("--lfu-log-factor", type=_int_from(0), default=10, metavar="N",
                   help="LFU counter growth: higher, slower (default 10, as Redis)")
    s.add_argument("--lfu-decay-time", type=_int_from(0), default=1, metavar="MINUTES",
                   help="LFU counter decay: minus one per MINUTES idle (default 1, as Redis; 0: never)")
    s.add_argument("--crash-loop-count", type=int, default=5, metavar="N",
                   help="stop the node (exit 7) when one actor dies N times within the window (default 5)")
    s.add_argument("--crash-loop-window", dest="crash_loop_window_s", type=float, default=60.0, metavar="SECONDS",
                   help="the crash-loop window (default 60)")
    s.add_argument("--restart-backoff-max", dest="restart_backoff_max_s", type=_positive_seconds, default=5.0,
                   metavar="SECONDS", help="the longest wait before restarting an actor that keeps dying "
                                           "(0.1 s doubling up to this; default 5)")
    s.add_argument("--curve-secret-key", default=None, metavar="FILE",
                   help="CURVE: the node's secret certificate (aofnode keygen); needs --curve-allow")
    s.add_argument("--curve-allow", default=None, metavar="DIR",
                   help="CURVE: directory of allowed clients' public certificates (*.key; reread on SIGHUP)")
    s.add_argument("--insecure-bind", action="store_true",
                   help="allow a non-loopback endpoint without CURVE (anyone who reaches it gets in)")
    s.add_argument("--resp-bind", default=None, metavar="HOST:PORT",
                   help=f"also serve the Redis protocol (RESP) on TCP at HOST:PORT, usually {USUAL_RESP_BIND} "
                        "(default: off; a non-loopback address needs a password)")
    s.add_argument("--pub-bind", default=None, metavar="ENDPOINT",
                   help="also publish every PUBLISH on a ZeroMQ PUB socket at ENDPOINT as [channel, message] "
                        "(default: off; loopback or ipc unless CURVE or --insecure-bind)")
    s.add_argument("--requirepass-file", default=None, metavar="PATH",
                   help="clients of both fronts must AUTH with the password in PATH (its first line; "
                        "the file must not be accessible by group or others; read again at each front start)")
    # Not a Config field: Config travels on the actors' command lines, which anyone can read in
    # /proc/PID/cmdline. The supervisor hands it to the fronts in their environment instead.
    s.add_argument("--requirepass", default=None, metavar="PASSWORD",
                   help="clients must AUTH with PASSWORD. Visible to every local user in ps "
                        "(this command line): prefer --requirepass-file")

    debug_default = os.environ.get(DEBUG_COMMAND_ENV, "no")
    s.add_argument("--enable-debug-command", choices=DEBUG_COMMAND_MODES,
                   default=debug_default if debug_default in DEBUG_COMMAND_MODES else "no",
                   help="allow DEBUG: no (default, or $%s), yes, or local (only when every endpoint "
                        "is loopback or ipc)" % DEBUG_COMMAND_ENV)

    c = sub.add_parser("cli", help="send commands to a node (interactive without COMMAND)")
    c.add_argument("--connect", default=DEFAULT_BIND, help=f"node endpoint (default: {DEFAULT_BIND})")
    c.add_argument("--timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                   help=f"seconds to wait for each reply (default {CLI_TIMEOUT_S:g}). The first PING, "
                        f"which checks that a node answers, waits {PROBE_TIMEOUT_S:g} s unless "
                        "--timeout is given: then it waits that long too")
    c.add_argument("-n", "--db", type=_db_index, default=0, metavar="DB",
                   help="the database to run the commands in, 0 to 15 (default 0), as redis-cli -n")
    c.add_argument("--raw", action="store_true", help="print replies without quotes and types")
    c.add_argument("--requirepass-file", dest="password_file", default=None, metavar="PATH",
                   help="AUTH with the password in PATH (its first line), as the node's option")
    c.add_argument("-a", dest="password", default=None, metavar="PASSWORD",
                   help="AUTH with PASSWORD. Visible to every local user in ps: prefer "
                        "--requirepass-file")
    c.add_argument("--curve-server-key", default=None, metavar="FILE",
                   help="CURVE: the node's public certificate; with --curve-key")
    c.add_argument("--curve-key", default=None, metavar="FILE",
                   help="CURVE: this client's secret certificate (aofnode keygen)")
    c.add_argument("command", nargs=argparse.REMAINDER)

    kg = sub.add_parser("keygen", help="write a CURVE key pair: NAME.key (public) and NAME.key_secret (0600)")
    kg.add_argument("name")
    kg.add_argument("--dir", default=".", help="where to write them (default: .)")

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
        from aofnode.supervisor import serve
        from aofnode.sysmem import default_maxmemory
        # Every serve option's dest is the name of its Config field: one place to add a setting.
        settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
        if args.log_file:
            settings["log_file"] = os.path.abspath(args.log_file)
        if args.requirepass_file:
            settings["requirepass_file"] = os.path.abspath(args.requirepass_file)
        if args.maxmemory is None:
            settings["maxmemory"] = default_maxmemory()
        config = Config(**settings)
        return serve(config, requirepass=args.requirepass)
    if args.cmd == "keygen":
        from aofnode.tools.keygen import keygen_main
        return keygen_main(args.name, args.dir)
    if args.cmd == "check-aof":
        from aofnode.aof.check import check_aof_main
        return check_aof_main(args.file, fix=args.fix, yes=args.yes)
    if args.cmd == "logs":
        from aofnode.tools.logs import logs_main
        return logs_main(args)
    return _cli(args)


# -- cli ----------------------------------------------------------------------------------------
# The prompt, the argument splitter, reply rendering and help are in node/tools/repl.py.

# The first PING waits at most this long before the CLI says it could not connect. ZeroMQ
# connects lazily and keeps retrying by itself, so "no node" shows only as silence. A node
# answers a PING within one log-actor cycle (5 ms by default, plus an fsync under `always`), and
# while it loads (LOADING is an answer too), so 1 s is a wait for the network, not for the node.
PROBE_TIMEOUT_S = 1.0
# Each command's wait for its reply, without --timeout.
CLI_TIMEOUT_S = 5.0


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _db_index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 15:
        raise argparse.ArgumentTypeError(f"a database is 0 to 15, got {text!r}")
    return value


def _cli(args) -> int:
    try:
        return _run_cli(args)
    except BrokenPipeError:  # `aofnode cli KEYS '*' | head`: the reader left, nothing to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return 1


def _run_cli(args) -> int:
    from aofnode.tools import repl
    from aofnode.client import Client, CommandError, NodeTimeout
    # Arguments are the bytes the shell passed (os.fsencode undoes Python's decoding); unlike a
    # line typed at the prompt they are not unescaped, as in redis-cli.
    words = [os.fsencode(w) for w in args.command]
    if words and words[0].lower() == b"help":
        try:
            print(repl.help_text(words[1:]))
        except repl.UnknownHelpTopic as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    curve = _curve(args)
    if isinstance(curve, str):
        print(f"aofnode cli: {curve}", file=sys.stderr)
        return 1
    password = _password(args)
    if isinstance(password, str):
        print(f"aofnode cli: {password}", file=sys.stderr)
        return 1
    timeout = CLI_TIMEOUT_S if args.timeout is None else args.timeout
    failure = _probe(args.connect, PROBE_TIMEOUT_S if args.timeout is None else args.timeout, curve)
    if failure:
        print(f"Could not connect to aofnode at {args.connect}: {failure}", file=sys.stderr)
        return 1
    raw = args.raw or (bool(words) and not sys.stdout.isatty())
    try:
        client = Client(args.connect, timeout=timeout, curve=curve, db=args.db, password=password)
    except CommandError as exc:  # AUTH refused
        print(f"aofnode cli: AUTH failed: {exc}", file=sys.stderr)
        return 1
    with client:
        if not words:
            return repl.interactive(client, args.connect)
        try:
            print(repl.format_command_reply(words, client.execute(*words), raw))
        except CommandError as exc:
            print(repl.format_reply(exc, raw))
            return 1
        except NodeTimeout as exc:
            print(f"No reply from aofnode at {args.connect}: {exc}", file=sys.stderr)
            return 1
        return 0


def _password(args) -> bytes | str | None:
    """The password of -a or --requirepass-file as bytes, None without them, or why not."""
    if args.password is not None and args.password_file:
        return "-a and --requirepass-file: give one of them"
    if args.password is not None:
        print("Warning: a password given with -a is visible to every local user in ps; "
              "prefer --requirepass-file.", file=sys.stderr)
        return os.fsencode(args.password)
    if args.password_file:
        from aofnode.config import read_password_file
        try:
            return read_password_file(args.password_file).encode("utf-8", "surrogateescape")
        except ValueError as exc:
            return str(exc)
    return None


def _curve(args) -> tuple[bytes, bytes, bytes] | str | None:
    """The CURVE keys of --curve-server-key and --curve-key, None without them, or why not."""
    if not (args.curve_server_key or args.curve_key):
        return None
    if not (args.curve_server_key and args.curve_key):
        return "--curve-server-key and --curve-key go together"
    from aofnode.tools.keygen import load_client_curve
    try:
        return load_client_curve(args.curve_server_key, args.curve_key)
    except (OSError, ValueError) as exc:
        return str(exc)


def _probe(endpoint: str, timeout: float, curve=None) -> str | None:
    """One PING, one try, at most ``timeout`` seconds: None if something answered, else why not.

    Any reply counts, an error too (LOADING, a refused protocol version): a node is there, and
    the command itself will say what is wrong.
    """
    import zmq
    from aofnode.client import Client, CommandError, NodeTimeout
    try:
        with Client(endpoint, timeout=timeout, retries=1, loading_timeout=0, curve=curve) as probe:
            probe.execute("PING")
    except CommandError:
        return None
    except NodeTimeout:
        # A CURVE node answers a plain client with silence (the handshake fails), exactly as no
        # node at all: say both.
        if curve is None:
            return (f"no answer in {float(timeout)!r} s: is the node running? If it uses CURVE, "
                    "give --curve-server-key and --curve-key")
        return (f"no answer in {float(timeout)!r} s: is the node running, with this server key, "
                "and is this client's public key in its --curve-allow directory?")
    except zmq.ZMQError as exc:  # e.g. a malformed endpoint
        return str(exc)
    return None
