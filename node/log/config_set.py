"""CONFIG GET, SET, RESETSTAT and HELP, answered by the log actor.

Design:
- The log actor is where the settings that change at run time live (the executor's maxmemory,
  the writer's fsync policy, the rewriter's thresholds, the cycle budgets, the slow log), so
  CONFIG is answered here for every front alike. ``PARAMS`` names each setting as Redis names
  it (aofnode's own ones by their ``serve`` option) with how to read it and, if it can change,
  how to parse and apply it; the rest is read-only (``can't set immutable config``, as Redis
  says of its own, except to the value it has, which changes nothing and succeeds: a client
  may set back every setting CONFIG GET gave it). The fronts' own settings (maxclients, the password) are read from the
  counters they report; a front that answered CONFIG itself would answer for itself alone.
- CONFIG SET takes several pairs and is all or nothing for the values: every value is parsed
  first, then each is applied in turn. ``Config`` is frozen (the supervisor hands the same one
  to a restarted actor): a changed setting gives the log actor and its Reporter a new Config
  with that field replaced, so a restarted log actor starts again from the command line, as
  Redis without CONFIG REWRITE does.
- Values as Redis parses them: memory sizes with k/kb/m/mb/g/gb (k = 1000, kb = 1024), integers
  in a range, enumerations. Redis's error texts.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from aofnode.config import FSYNC_POLICIES
from aofnode.log import notify
from aofnode.log.latencystats import parse_percentiles, percentile_text
from aofnode.protocol import MAX_BULK_BYTES, NUM_DBS
from aofnode.protocol.errors import ERR, Error
from aofnode.store import objects
from aofnode.store.eviction import POLICIES
from aofnode.store.pattern import glob_match

__all__ = ["HIDDEN", "PARAMS", "config_command"]

LLONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1
_MEMORY = re.compile(rb"(\d+)(b|k|kb|m|mb|g|gb)?", re.I)
_UNITS = {b"": 1, b"b": 1, b"k": 1000, b"kb": 1024, b"m": 1000 ** 2, b"mb": 1024 ** 2,
          b"g": 1000 ** 3, b"gb": 1024 ** 3}

_HELP = [
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Prints this help.",
]


class Invalid(ValueError):
    """A value CONFIG SET refuses; the message is Redis's reason."""


def parse_memory(raw: bytes) -> int:
    m = _MEMORY.fullmatch(raw.strip())
    if not m:
        raise Invalid("argument must be a memory value")
    return int(m.group(1)) * _UNITS[(m.group(2) or b"").lower()]


def _ranged(low: int, high: int) -> Callable[[bytes], int]:
    def parse(raw: bytes) -> int:
        try:
            n = int(raw)
        except ValueError:
            raise Invalid("argument couldn't be parsed into an integer") from None
        if not low <= n <= high:
            raise Invalid(f"argument must be between {low} and {high} inclusive")
        return n
    return parse


def _memory_ranged(raw: bytes) -> int:
    n = parse_memory(raw)
    if n > LLONG_MAX:
        raise Invalid(f"argument must be between 0 and {LLONG_MAX} inclusive")
    return n


def _choice(choices: tuple[str, ...]) -> Callable[[bytes], str]:
    def parse(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").lower()
        if text not in choices:
            raise Invalid(f"argument(s) must be one of the following: {', '.join(choices)}")
        return text
    return parse


def _memory_or_percent(raw: bytes) -> int | str:
    """maxmemory-clients's value: a memory size, or a percentage of maxmemory (``10%``)."""
    if raw.endswith(b"%"):
        try:
            percent = int(raw[:-1])
        except ValueError:
            raise Invalid("argument must be a memory or percent value") from None
        if not 0 <= percent <= 100:
            raise Invalid("percentage argument must be less or equal to 100")
        return 0 if percent == 0 else raw.decode()
    return _memory_ranged(raw)


def _positive_float(raw: bytes) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise Invalid("argument couldn't be parsed into a number") from None
    if not 0 < value <= 60_000:
        raise Invalid("argument must be between 0 (exclusive) and 60000 inclusive")
    return value


def _replace_config(intro, **fields) -> None:
    """A new frozen Config for the log actor and its Reporter (see the module docstring)."""
    config = dataclasses.replace(intro.owner.config, **fields)
    intro.owner.config = config
    intro.owner.reporter.config = config


def _set_maxmemory(intro, n: int) -> None:
    intro.owner.executor.maxmemory = n
    intro.owner.executor.evict_now()
    _replace_config(intro, maxmemory=n)


def _set_policy(intro, policy: str) -> None:
    intro.owner.executor.maxmemory_policy = policy
    _replace_config(intro, maxmemory_policy=policy)


def _set_samples(intro, n: int) -> None:
    intro.owner.executor.maxmemory_samples = n
    _replace_config(intro, maxmemory_samples=n)


def _keyspace_setter(attr: str):
    def apply(intro, value: int) -> None:
        setattr(intro.owner.executor.keyspace, attr, value)
        _replace_config(intro, **{attr: value})
    return apply


def _set_appendfsync(intro, policy: str) -> None:
    if not intro.owner.writer.set_policy(policy):
        raise Invalid("the AOF could not be fsynced before the change")
    _replace_config(intro, appendfsync=policy)


def _rewriter_setter(attr: str, field: str):
    def apply(intro, value: int) -> None:
        setattr(intro.owner.rewriter, attr, value)
        _replace_config(intro, **{field: value})
    return apply


def _set_tracking_max_keys(intro, n: int) -> None:
    intro.owner.tracking.max_keys = n  # applied after the next cycle (node/log/tracking.py)
    _replace_config(intro, tracking_table_max_keys=n)


def _config_setter(field: str):
    def apply(intro, value) -> None:
        _replace_config(intro, **{field: value})
    return apply


def _attr_setter(obj: str, attr: str):
    def apply(intro, value) -> None:
        setattr(getattr(intro, obj), attr, value)
        intro.slowlog.trim()
        intro.thresholds_changed()
    return apply


def _notify_flags(raw: bytes) -> frozenset[str]:
    try:
        return notify.parse_flags(raw)
    except notify.Invalid as exc:
        raise Invalid(str(exc)) from None


def _yes_no(raw: bytes) -> bool:
    text = raw.lower()
    if text not in (b"yes", b"no"):
        raise Invalid("argument must be 'yes' or 'no'")
    return text == b"yes"


def _percentiles(raw: bytes) -> tuple[float, ...]:
    try:
        return parse_percentiles(raw)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def _resp_host_port(config) -> tuple[str, str]:
    host, _, port = (config.resp_bind or "").rpartition(":")
    return host.strip("[]"), port


def _client_output(config) -> str:
    limit = config.client_output_limit
    return f"normal {limit} {limit} 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"


# name -> (read, parse or None if read-only, apply). ``read`` takes the Introspection.
PARAMS: dict[str, tuple] = {
    "maxmemory": (lambda i: i.owner.executor.maxmemory, _memory_ranged, _set_maxmemory),
    "maxmemory-policy": (lambda i: i.owner.executor.maxmemory_policy, _choice(POLICIES), _set_policy),
    # Redis's ranges; a sample costs ~5 us with 1M keys in a db (node/store/eviction.py).
    "maxmemory-samples": (lambda i: i.owner.executor.maxmemory_samples, _ranged(1, INT_MAX),
                          _set_samples),
    "lfu-log-factor": (lambda i: i.owner.executor.keyspace.lfu_log_factor, _ranged(0, INT_MAX),
                       _keyspace_setter("lfu_log_factor")),
    "lfu-decay-time": (lambda i: i.owner.executor.keyspace.lfu_decay_time, _ranged(0, INT_MAX),
                       _keyspace_setter("lfu_decay_time")),
    "appendfsync": (lambda i: i.owner.writer.policy, _choice(FSYNC_POLICIES), _set_appendfsync),
    "auto-aof-rewrite-percentage": (lambda i: i.owner.rewriter.auto_percentage, _ranged(0, INT_MAX),
                                    _rewriter_setter("auto_percentage", "auto_aof_rewrite_percentage")),
    "auto-aof-rewrite-min-size": (lambda i: i.owner.rewriter.auto_min_size, _memory_ranged,
                                  _rewriter_setter("auto_min_size", "auto_aof_rewrite_min_size")),
    "aof-rewrite-diff-limit": (lambda i: i.owner.rewriter.diff_limit, _memory_ranged,
                               _rewriter_setter("diff_limit", "aof_rewrite_diff_limit")),
    "cycle-max-commands": (lambda i: i.owner.config.cycle_max_commands, _ranged(1, INT_MAX),
                           _config_setter("cycle_max_commands")),
    "cycle-max-ms": (lambda i: i.owner.config.cycle_max_ms, _positive_float,
                     _config_setter("cycle_max_ms")),
    "tracking-table-max-keys": (lambda i: i.owner.tracking.max_keys, _ranged(0, LLONG_MAX),
                                _set_tracking_max_keys),
    "slowlog-log-slower-than": (lambda i: i.slowlog.slower_than_us, _ranged(-LLONG_MAX - 1, LLONG_MAX),
                                _attr_setter("slowlog", "slower_than_us")),
    "slowlog-max-len": (lambda i: i.slowlog.max_len, _ranged(0, LLONG_MAX),
                        _attr_setter("slowlog", "max_len")),
    "notify-keyspace-events": (lambda i: notify.flags_text(i.owner.notifier.flags), _notify_flags,
                               lambda i, flags: i.owner.notifier.configure(flags)),
    # Replication's write gate: aofnode has no replicas, so N > 0 refuses every write
    # (NOREPLICAS), as Redis with fewer than N good replicas (node/log/actor.py)
    "min-replicas-to-write": (lambda i: i.owner.min_replicas_to_write, _ranged(0, INT_MAX),
                              lambda i, n: setattr(i.owner, "min_replicas_to_write", n)),
    # Redis 7's name and its older alias, one setting (node/log/busy.py reads the Config's)
    "busy-reply-threshold": (lambda i: i.owner.config.busy_reply_threshold_ms, _ranged(0, LLONG_MAX),
                             _config_setter("busy_reply_threshold_ms")),
    "lua-time-limit": (lambda i: i.owner.config.busy_reply_threshold_ms, _ranged(0, LLONG_MAX),
                       _config_setter("busy_reply_threshold_ms")),
    "latency-monitor-threshold": (lambda i: i.latency.threshold_ms, _ranged(0, LLONG_MAX),
                                  _attr_setter("latency", "threshold_ms")),
    # Redis's hidden debug aid (node/aof/format.py ``slowed``): the next load's delay per entry,
    # DEBUG RELOAD's; a restarted log actor takes the option's again.
    "key-load-delay": (lambda i: i.owner.config.key_load_delay, _ranged(-INT_MAX - 1, INT_MAX),
                       _config_setter("key_load_delay")),
    "latency-tracking": (lambda i: "yes" if i.latencystats.enabled else "no", _yes_no,
                         lambda i, on: setattr(i.latencystats, "enabled", on)),
    "latency-tracking-info-percentiles": (
        lambda i: " ".join(map(percentile_text, i.latencystats.percentiles)), _percentiles,
        lambda i, ps: setattr(i.latencystats, "percentiles", ps)),
    # read-only here: set by ``aofnode serve`` options, or owned by a front
    "appendonly": (lambda i: "yes", None, None),
    "appendfilename": (lambda i: "appendonly.aof", None, None),
    "dir": (lambda i: i.owner.config.dir, None, None),
    "save": (lambda i: "", None, None),
    "databases": (lambda i: NUM_DBS, None, None),
    "hz": (lambda i: 10, None, None),
    "proto-max-bulk-len": (lambda i: MAX_BULK_BYTES, None, None),
    "client-output-buffer-limit": (lambda i: _client_output(i.owner.config), None, None),
    "client-output-limit": (lambda i: i.owner.config.client_output_limit, None, None),
    "channel-output-limit": (lambda i: i.owner.config.channel_output_limit, None, None),
    # The RESP front's when there is one: Redis clients ask through it.
    "maxclients": (lambda i: i.front_counter("resp_max_clients") or i.front_counter("max_clients"),
                   None, None),
    "bind": (lambda i: _resp_host_port(i.owner.config)[0], None, None),
    "port": (lambda i: _resp_host_port(i.owner.config)[1] or "0", None, None),
    "enable-debug-command": (lambda i: i.owner.config.enable_debug_command, None, None),
    "watchdog-timeout": (lambda i: i.owner.config.watchdog_timeout_s, None, None),
    # Redis settings for what aofnode has not, with the value true of aofnode: no client
    # memory eviction, no replication, no daemon mode.
    "maxmemory-clients": (lambda i: 0, _memory_or_percent, None),
    "replicaof": (lambda i: "", None, None),
    "slaveof": (lambda i: "", None, None),
    "daemonize": (lambda i: "no", None, None),
    # the thresholds OBJECT ENCODING reports by (node/store/objects.py)
    "hash-max-listpack-entries": (lambda i: objects.HASH_MAX_LISTPACK_ENTRIES, None, None),
    "hash-max-listpack-value": (lambda i: objects.HASH_MAX_LISTPACK_VALUE, None, None),
    "set-max-intset-entries": (lambda i: objects.SET_MAX_INTSET_ENTRIES, None, None),
    "zset-max-listpack-entries": (lambda i: objects.ZSET_MAX_LISTPACK_ENTRIES, None, None),
    "zset-max-listpack-value": (lambda i: objects.ZSET_MAX_LISTPACK_VALUE, None, None),
}


def _text(value) -> bytes:
    if type(value) is float:
        value = f"{value:g}"
    return str(value).encode()


# Settings CONFIG GET gives only when named exactly, never for a pattern (Redis's HIDDEN_CONFIG).
HIDDEN = frozenset({"key-load-delay"})
_GLOB = re.compile(rb"[*?[]")


def config_get(intro, patterns) -> dict:
    """As Redis's configGetCommand: a name without ``*?[`` is looked up, hidden settings
    included, and answered under the spelling asked for; a pattern matches every setting but
    the hidden ones; a setting is given once (names compared without case)."""
    found: dict = {}
    seen: set[str] = set()
    for raw in patterns:
        pattern = raw.lower()
        if _GLOB.search(pattern) is None:
            name = pattern.decode("utf-8", "replace")
            param = PARAMS.get(name)
            if param is not None and name not in seen:
                seen.add(name)
                found[raw.decode("utf-8", "replace")] = _text(param[0](intro))
            continue
        for name, (read, _, _) in PARAMS.items():
            if name not in seen and name not in HIDDEN and glob_match(pattern, name.encode()):
                seen.add(name)
                found[name] = _text(read(intro))
    return found


def config_set(intro, args) -> object:
    if len(args) < 3 or len(args) % 2 == 0:
        return Error(ERR, "wrong number of arguments for 'config|set' command")
    parsed = []
    seen = set()
    for raw_name, raw_value in zip(args[1::2], args[2::2]):
        name = raw_name.decode("utf-8", "replace").lower()
        param = PARAMS.get(name)
        if param is None:
            return Error(ERR, f"Unknown option or number of arguments for CONFIG SET - '{name}'")
        if name in seen:
            return _failed(name, "duplicate parameter")
        seen.add(name)
        read, parse, apply = param
        try:
            value = parse(raw_value) if parse is not None else raw_value
        except Invalid as exc:
            return _failed(name, str(exc))
        if apply is None:  # read-only, but its value is checked first, as Redis checks it
            if raw_value == _text(read(intro)) or (parse is not None and value == read(intro)):
                continue  # to the value it has: nothing to change
            return _failed(name, "can't set immutable config")
        parsed.append((name, apply, value))
    for name, apply, value in parsed:
        try:
            apply(intro, value)
        except (Invalid, ValueError) as exc:
            return _failed(name, str(exc))
    return "OK"


def _failed(name: str, why: str) -> Error:
    return Error(ERR, f"CONFIG SET failed (possibly related to argument '{name}') - {why}")


def config_command(intro, args) -> object:
    sub = args[0].upper()
    if sub == b"GET":
        if len(args) < 2:
            return Error(ERR, "wrong number of arguments for 'config|get' command")
        return config_get(intro, args[1:])
    if sub == b"SET":
        return config_set(intro, args)
    if sub == b"RESETSTAT" and len(args) == 1:
        intro.reset_stats()
        return "OK"
    if sub == b"REWRITE" and len(args) == 1:
        return Error(ERR, "The server is running without a config file")
    if sub == b"HELP" and len(args) == 1:
        return list(_HELP)
    if sub in (b"RESETSTAT", b"REWRITE", b"HELP"):
        return Error(ERR, f"wrong number of arguments for 'config|{sub.decode().lower()}' command")
    shown = args[0][:128].decode("utf-8", "replace")
    return Error(ERR, f"unknown subcommand '{shown}'. Try CONFIG HELP.")
