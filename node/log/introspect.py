"""The log actor's introspection: command and error counts, CONFIG, SLOWLOG, LATENCY, DEBUG,
and INFO's Redis fields.

Design:
- ``Introspection.execute`` stands between the log actor's cycle and the executor for every
  command: it answers the commands whose state is the log actor's (CONFIG, SLOWLOG, LATENCY,
  DEBUG: ``OWN``) and passes the rest to the executor, timing each one for INFO commandstats,
  the slow log and the latency monitor. That costs ~0.3-0.5 us a command (two clock reads,
  the counters, one more call; measured around a GET that takes ~0.5 us), as Redis also
  times every command. OBJECT and MEMORY read only
  the keyspace: the executor answers them (node/store/objects.py).
- ``error`` counts every error reply the log actor makes (total_error_replies and INFO
  errorstats), by the prefix a RESP client reads: aofnode's codes that Redis lacks count as ERR,
  as protocol/resp_reply.py's ``error_line`` writes them. Errors a front makes itself (an
  unknown command, a wrong arity, AUTH) never reach the log actor: the fronts count them and
  send them with their counters as ``errorstat_<PREFIX>``, which INFO adds in (docs/limits.md).
- ``info`` is INFO's provider: the Reporter's sections (node/log/report.py) with Redis 7.0's
  field names added in front of aofnode's own, which stay (docs/limits.md and tools read
  them); node/log/redis_info.py has the fields.
- DEBUG is refused unless ``--enable-debug-command`` allows it (Redis 7's default is no).
  RELOAD does not replace the keyspace: it fsyncs the AOF, replays it into a fresh executor and
  checks that the digest is the live one (the keyspace a reload would make is then this one).
"""
from __future__ import annotations

import ipaddress
import os
import time

from aofnode.aof import format as aof_format
from aofnode.log.config_set import config_command
from aofnode.log.latencystats import LatencyStats
from aofnode.log.redis_info import add_redis_fields, front_counts, front_errorstats, front_histograms
from aofnode.log.slowlog import LatencyMonitor, SlowLog, latency_command, slowlog_command
from aofnode.protocol.errors import ERR, OOM, Error
from aofnode.protocol.resp_reply import error_line
from aofnode.store.access import LRU_CLOCK_MAX
from aofnode.store.digest import keyspace_digest, value_digest
from aofnode.store.executor import Executor
from aofnode.store.strings import arity_error
from aofnode.store.objects import encoding_of, refcount_of, sub_error
from aofnode.store.rdb import dump_value

__all__ = ["Introspection", "OWN"]

OWN = frozenset(("CONFIG", "SLOWLOG", "LATENCY", "DEBUG", "SAVE"))
_clock = time.perf_counter_ns
_NEVER = 1 << 62
# Commands whose subcommand names their commandstats entry, as Redis 7's ``config|get``; only
# these subcommands, so that no client can grow the table without bound.
_SUBCOMMANDS = {
    "CLIENT": {b"UNBLOCK"},  # the one CLIENT subcommand the RESP front forwards
    "CONFIG": {b"GET", b"SET", b"RESETSTAT", b"REWRITE", b"HELP"},
    "SLOWLOG": {b"GET", b"LEN", b"RESET", b"HELP"},
    "LATENCY": {b"LATEST", b"HISTORY", b"RESET", b"DOCTOR", b"HELP"},
    "DEBUG": {b"SLEEP", b"SET-ACTIVE-EXPIRE", b"RELOAD", b"DIGEST", b"DIGEST-VALUE", b"OBJECT",
              b"PROTOCOL", b"HELP"},
    "OBJECT": {b"ENCODING", b"REFCOUNT", b"IDLETIME", b"FREQ", b"HELP"},
    "MEMORY": {b"USAGE", b"STATS", b"DOCTOR", b"HELP"},
}

_DEBUG_REFUSED = Error(ERR, "DEBUG command not allowed. If the enable-debug-command option is "
                            "set to \"local\", you can run it from a local connection, otherwise "
                            "you need to set this option in the configuration file, and then "
                            "restart the server.")
_DEBUG_HELP = [
    "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "OBJECT <key>",
    "    Show low level info about the <key> and associated value.",
    "PROTOCOL <type>",
    "    Reply with a test value of the specified type. <type> can be: string,",
    "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
    "    true, false.",
    "RELOAD",
    "    Check that the AOF, fsynced, replays into the current dataset (same digest).",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "HELP",
    "    Prints this help.",
]
# DEBUG PROTOCOL's values as RESP2 shows them; a map is flat, since msgpack replies keep to
# string keys (RESP3's own types: see docs/limits.md).
_PROTOCOL = {
    b"string": b"Hello World", b"integer": 12345, b"double": 3.141,
    b"bignum": b"1234567999999999999999999999999999999", b"null": None,
    b"array": [0, 1, 2], b"set": [0, 1, 2], b"map": [0, False, 1, True, 2, False],
    b"attrib": b"Some real reply following the attribute",
    b"verbatim": b"This is a verbatim\nstring", b"true": True, b"false": False,
}


def _stat_name(name: str, args) -> str:
    if args:
        sub = args[0].upper()
        if sub in _SUBCOMMANDS[name]:
            return f"{name}|{sub.decode()}"
    return name


def _prefix(code: str) -> str:
    return error_line(code, "")[1:-2].decode()


def _all_local(config) -> bool:
    """True when every endpoint is loopback, ipc or inproc: every client is then local."""
    hosts = []
    if config.bind.startswith("tcp://"):
        hosts.append(config.bind[6:].rpartition(":")[0].strip("[]"))
    if config.resp_bind:
        hosts.append(config.resp_bind.rpartition(":")[0].strip("[]"))
    for host in hosts:
        try:
            if not (host == "localhost" or ipaddress.ip_address(host).is_loopback):
                return False
        except ValueError:
            return False
    return True


class Introspection:
    def __init__(self, owner) -> None:
        self.owner = owner  # the LogActor: its config, executor, writer, rewriter, reporter
        self.slowlog = SlowLog()
        self.latency = LatencyMonitor()
        self.latencystats = LatencyStats()
        self.cmdstats: dict[str, list[int]] = {}  # name -> [calls, usec, rejected, failed]
        self.errorstats: dict[str, int] = {}
        self.front_error_base: dict[str, int] = {}  # the fronts' error counts at RESETSTAT
        self.front_cmd_base: dict[str, int] = {}  # and their command counts
        self.front_latency_base: dict[str, dict[int, int]] = {}  # and latency histograms
        self.used_memory_peak = 0
        self.started = time.time()
        self.last_save = int(self.started)  # SAVE's (INFO rdb_last_save_time, LASTSAVE)
        self.run_id = os.urandom(20).hex()
        executor = owner.executor
        self._executor = executor
        self._execute = executor.execute
        self._handlers = executor.handlers  # mutated in place by add_handler, never replaced
        self._slow_from = 0
        self.thresholds_changed()
        blocking = getattr(owner, "blocking", None)
        if blocking is not None:
            blocking.on_answer = self.unblocked
        self._own = {"CONFIG": self._config, "SLOWLOG": self._slowlog,
                     "LATENCY": self._latency, "DEBUG": self._debug, "SAVE": self._save}
        executor.script_stats = self.script_command  # a script's commands count too, as in Redis

    # -- the hot path ---------------------------------------------------------------------------

    def execute(self, db: int, name: str, args):
        own = self._own.get(name)
        start = _clock()
        if own is not None:
            reply = own(db, args)
        elif self._executor._maxmemory:  # eviction and OOM first: the executor's own path
            reply = self._execute(db, name, args)
        else:
            # The executor's dispatch inline (its table, its arity guard): one Python call less
            # per command, ~8% of a pipelined SET's time in the log actor here.
            handler = self._handlers.get(name)
            if handler is None:
                reply = self._execute(db, name, args)  # the unknown-command error
            else:
                try:
                    reply = handler(db, args)
                except IndexError:
                    reply = arity_error(name)
        elapsed = _clock() - start
        usec = elapsed // 1000
        # Keyed by the upper-case name (lower-cased for INFO); "CONFIG|GET" for a subcommand.
        key = _stat_name(name, args) if name in _SUBCOMMANDS else name
        if self.latencystats.enabled:
            self.latencystats.record(key, elapsed)
        stats = self.cmdstats.get(key)
        if stats is None:
            stats = self.cmdstats[key] = [0, 0, 0, 0]
        if type(reply) is not Error:
            stats[0] += 1
            stats[1] += usec
        elif reply.code == OOM:
            stats[2] += 1  # refused before it ran, as Redis counts rejected_calls
        else:
            stats[0] += 1
            stats[1] += usec
            stats[3] += 1
        if usec >= self._slow_from:
            self._slow(name, args, usec)
        return reply

    def script_command(self, name: str, args, reply, ns: int) -> None:
        """A command a script ran (redis.call): counted in commandstats and latencystats as
        Redis's call() counts it; the slow log keeps the script's own entry only."""
        key = _stat_name(name, args) if name in _SUBCOMMANDS else name
        if self.latencystats.enabled:
            self.latencystats.record(key, ns)
        stats = self.cmdstats.get(key)
        if stats is None:
            stats = self.cmdstats[key] = [0, 0, 0, 0]
        stats[0] += 1
        stats[1] += ns // 1000
        if type(reply) is Error:
            stats[3] += 1

    def unblocked(self, name: str, ns: int, failed: bool = False) -> None:
        """A blocked command answered (served, timed out, or by CLIENT UNBLOCK: ``failed``):
        one call, as Redis counts it then."""
        stats = self.cmdstats.get(name)
        if stats is None:
            stats = self.cmdstats[name] = [0, 0, 0, 0]
        stats[0] += 1
        stats[1] += ns // 1000
        stats[3] += failed
        if self.latencystats.enabled:
            self.latencystats.record(name, ns)

    def _slow(self, name: str, args, usec: int) -> None:
        if usec >= self.slowlog.slower_than_us >= 0:
            self.slowlog.note(name, args, usec)
        threshold_ms = self.latency.threshold_ms
        if threshold_ms and usec >= threshold_ms * 1000:
            self.latency.note("command", usec // 1000)

    def thresholds_changed(self) -> None:
        """The least time worth a look in ``execute``: the slow log's or the latency monitor's
        threshold, kept in one attribute (CONFIG SET calls this) so the hot path reads one."""
        slow = self.slowlog.slower_than_us
        lat = self.latency.threshold_ms * 1000 if self.latency.threshold_ms else _NEVER
        self._slow_from = min(slow if slow >= 0 else _NEVER, lat)

    def error(self, reply: Error) -> Error:
        """Count one error reply (see the module docstring) and give it back."""
        self.owner.stats["total_error_replies"] += 1
        prefix = _prefix(reply.code)
        self.errorstats[prefix] = self.errorstats.get(prefix, 0) + 1
        return reply

    def error_during(self, key: str, reply: Error) -> Error:
        """An error reply sent to another client while command ``key`` runs (CLIENT UNBLOCK
        ERROR): counted, and that command counts as failed, as Redis counts a call during which
        an error reply was made (``incrCommandStatsOnError``)."""
        stats = self.cmdstats.get(key)
        if stats is None:
            stats = self.cmdstats[key] = [0, 0, 0, 0]
        stats[3] += 1
        return self.error(reply)

    def rejected(self, name: str) -> None:
        """A command refused without running (MISCONF)."""
        stats = self.cmdstats.setdefault(name, [0, 0, 0, 0])
        stats[2] += 1

    # -- INFO -----------------------------------------------------------------------------------

    def info(self) -> dict[str, dict]:
        return add_redis_fields(self, self.owner.reporter.info())

    def front_counter(self, name: str) -> int:
        return sum(c.get(name, 0) for c in self.owner.fronts.counters())

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: Redis's resetServerStats for the counters the log actor keeps."""
        owner = self.owner
        for key in owner.stats:
            owner.stats[key] = 0
        ex = owner.executor
        ex.expired_keys = ex.keyspace_hits = ex.keyspace_misses = ex.evicted_keys = 0
        owner.rewriter.latest_fork_usec = 0
        owner.writer.delayed_fsyncs = 0
        self.cmdstats.clear()
        self.errorstats.clear()
        self.latencystats.reset()
        self.front_error_base = front_errorstats(self, since_reset=False)
        self.front_cmd_base = front_counts(self, "cmdstat_", None)
        self.front_latency_base = front_histograms(self, since_reset=False)
        self.used_memory_peak = ex.keyspace.used_memory
        owner.reporter.instantaneous_ops = 0.0
        owner.reporter._ops_window = (time.monotonic(), 0)

    # -- commands -------------------------------------------------------------------------------

    def _config(self, db, args):
        return config_command(self, args)

    def _save(self, db, args):
        """SAVE: aofnode's dataset on disk is the AOF, so SAVE makes it durable: what earlier
        cycles wrote is fdatasync'ed now, and this cycle's entries when they are appended,
        before this reply goes out (SAVE is a write, so a failed append answers MISCONF). It
        blocks the log actor for the fdatasyncs, as Redis's SAVE blocks its server."""
        writer = self.owner.writer
        if not writer.fsync_now():
            return self.owner._misconf()
        writer.sync_next_append = True
        self.last_save = int(time.time())
        return "OK"

    def _slowlog(self, db, args):
        return slowlog_command(self.slowlog, args)

    def _latency(self, db, args):
        return latency_command(self.latency, args)

    def _debug(self, db, args):
        mode = self.owner.config.enable_debug_command
        if mode == "no" or (mode == "local" and not _all_local(self.owner.config)):
            return _DEBUG_REFUSED
        sub, n = args[0].upper(), len(args)
        keyspace = self.owner.executor.keyspace
        if sub == b"DIGEST" and n == 1:
            return keyspace_digest(keyspace)
        if sub == b"DIGEST-VALUE":
            return [value_digest(keyspace.peek(db, key)) for key in args[1:]]
        if sub == b"SLEEP" and n == 2:
            return self._sleep(args[1])
        if sub == b"SET-ACTIVE-EXPIRE" and n == 2:
            self.owner.executor.active_expire = args[1] != b"0"
            return "OK"
        if sub == b"OBJECT" and n == 2:
            return self._debug_object(db, args[1])
        if sub == b"RELOAD":
            return self._reload()
        if sub == b"PROTOCOL" and n == 2:
            kind = args[1].lower()
            if kind not in _PROTOCOL:
                return Error(ERR, "Wrong protocol type name. Please use one of the following: "
                                  "string|integer|double|bignum|null|array|set|map|attrib|"
                                  "push|verbatim|true|false")
            return _PROTOCOL[kind]
        if sub == b"HELP" and n == 1:
            return list(_DEBUG_HELP)
        if sub in (b"JMAP", b"CHANGE-REPL-ID"):
            return Error(ERR, f"DEBUG {sub.decode()} is not supported by aofnode")
        return sub_error("DEBUG", args[0], (b"DIGEST", b"SLEEP", b"SET-ACTIVE-EXPIRE",
                                            b"OBJECT", b"PROTOCOL", b"HELP"))

    def _sleep(self, raw: bytes):
        try:
            seconds = float(raw)
        except ValueError:
            return Error(ERR, "value is not a valid float")
        if seconds > 0:
            time.sleep(seconds)  # blocks the log actor, as DEBUG SLEEP blocks Redis
        return "OK"

    def _debug_object(self, db, key: bytes):
        keyspace = self.owner.executor.keyspace
        value = keyspace.peek(db, key)
        if value is None:
            return Error(ERR, "no such key")
        stamp = keyspace.access_stamp(db, key) or 0
        # Redis prints its 24-bit field: the LRU clock's seconds, or LFU's minutes and counter.
        lru = (stamp & LRU_CLOCK_MAX if stamp >= 0
               else (((-1 - stamp) >> 8) & 0xFFFF) << 8 | ((-1 - stamp) & 255))
        return (f"Value at:0x{id(value):x} refcount:{refcount_of(value)} "
                f"encoding:{encoding_of(value)} serializedlength:{len(dump_value(value))} "
                f"lru:{lru} lru_seconds_idle:{keyspace.idle_seconds(db, key)}")

    def _reload(self):
        """Fsync the AOF, replay it into a fresh executor, compare digests."""
        owner = self.owner
        # This cycle's writes so far are not in the AOF yet (step 2 comes after the cycle): they
        # go now; if that fails the writer keeps them pending and the cycle refuses its writes.
        entries = owner.executor.take_propagated()
        if entries and not owner._append(aof_format.encode_entries(entries)):
            return Error(ERR, "Error writing the AOF before the reload check")
        if not owner.writer.fsync_now():
            return Error(ERR, "Error trying to fsync the AOF before the reload check")
        fresh = Executor()
        fresh.loading = True
        execute = fresh.execute

        def apply(entries: list) -> None:
            for entry in entries:
                execute(entry[0], entry[1], entry[2:])

        aof_format.load(owner.config.aof_path, apply, owner.log, owner.config.key_load_delay)
        fresh.loading = False
        if keyspace_digest(fresh.keyspace) != keyspace_digest(owner.executor.keyspace):
            return Error(ERR, "DEBUG RELOAD: the AOF replays into a dataset with another digest")
        return "OK"
