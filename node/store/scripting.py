"""Lua scripts: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT, with Redis 7.0's semantics.

Design
------
* A script is one executor command, so the log actor runs it whole inside one cycle: nothing
  else runs between its commands, and the AOF entries its writes propagate go to disk in that
  cycle's record (node/aof/format.py; see docs/aof.md for the one exception, a cycle over
  256 MiB of entries). The AOF holds the effects (the entries the commands a script ran
  propagate, as Redis 7 replicates effects), never the script: replay needs no Lua.
* ``redis.call`` goes through ``_script_call``: the command table's arity, the commands a
  script may not run (Redis's ``noscript`` ones that aofnode has), SELECT (changes the
  script's database only), the read-only rule of EVAL_RO / EVALSHA_RO and shebang
  ``no-writes`` scripts, and maxmemory's OOM check, which as in Redis applies only before the
  script's first write (refusing a later one would leave half a script applied).
* Scripts are cached by SHA1 in memory, bounded by ``SCRIPT_CACHE_MAX_SCRIPTS`` and
  ``SCRIPT_CACHE_MAX_BYTES`` (the least recently used script is dropped first; a client that
  gets NOSCRIPT sends EVAL again, as redis-py's ``Script`` does). SCRIPT FLUSH empties the
  cache and starts a fresh Lua state, which frees everything scripts allocated.
* A script's time has no limit here, as in Redis: ``script_guard(run, elapsed_ms)``, when the
  log actor sets it, is asked from the Lua hook; it answers other clients BUSY past
  busy-reply-threshold and says when SCRIPT KILL ends the script (node/log/busy.py). Without
  it (a bare executor) SCRIPT KILL can only answer NOTBUSY.
* Limits (docs/limits.md): ``script_max_memory`` bounds the Lua heap, read when the Lua state
  is made.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any, Callable

from aofnode.protocol.commands import COMMANDS, parse_select
from aofnode.protocol.errors import ERR, Error
from aofnode.protocol.resp_reply import info_text
from aofnode.protocol.wire import MAX_MESSAGE_BYTES
from aofnode.store.luabridge import LuaEngine, Rand48, ScriptRun

__all__ = ["ScriptCommands", "parse_numkeys", "SCRIPT_CACHE_MAX_SCRIPTS", "SCRIPT_CACHE_MAX_BYTES",
           "SCRIPT_MAX_MEMORY"]

_clock = time.perf_counter_ns
SCRIPT_CACHE_MAX_SCRIPTS = 10_000
SCRIPT_CACHE_MAX_BYTES = 64 * 1024 * 1024  # of script bodies
SCRIPT_MAX_MEMORY = 256 * 1024 * 1024  # the Lua heap; 0: no limit

# Commands Redis 7.0 refuses from scripts (its noscript flag) that aofnode has.
_NOSCRIPT = frozenset(("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "SCRIPT", "HELLO",
                       "BGREWRITEAOF", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
                       "BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP", "BZPOPMIN",
                       "BZPOPMAX", "BZMPOP", "SUBSCRIBE", "PSUBSCRIBE", "FUNCTION", "FCALL",
                       "FCALL_RO", "SHUTDOWN",
                       # Redis's noscript commands aofnode has not: refused as Redis refuses them
                       "CLUSTER", "SAVE", "BGSAVE", "SYNC", "PSYNC", "REPLICAOF", "SLAVEOF",
                       "MONITOR", "CLIENT", "ACL"))
_NOSCRIPT_ERR = Error(ERR, "This Redis command is not allowed from script")
_UNKNOWN_ERR = Error(ERR, "Unknown Redis command called from script")
_ARITY_ERR = Error(ERR, "Wrong number of args calling Redis command from script")
_NO_ARGS_ERR = Error(ERR, "Please specify at least one argument for this redis lib call")
_ARG_TYPE_ERR = Error(ERR, "Lua redis lib command arguments must be strings or integers")
_READ_ONLY_ERR = Error(ERR, "Write commands are not allowed from read-only scripts.")
_OOM_ERR = Error("OOM", "command not allowed when used memory > 'maxmemory'.")
_TOO_BIG_ERR = Error(ERR, f"redis.call arguments over {MAX_MESSAGE_BYTES} bytes (the message "
                          "size limit of a client's command)")
_NOSCRIPT_REPLY = Error("NOSCRIPT", "No matching script. Please use EVAL.")
_FLAGS = {"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}


def _arg_bytes(arg: Any) -> bytes | None:
    t = type(arg)
    if t is bytes:
        return arg
    if t is int:
        return b"%d" % arg
    if t is float:
        return b"%d" % arg if arg.is_integer() and abs(arg) < 2**63 else repr(arg).encode()
    return None


def _shebang(body: bytes) -> tuple[bytes, frozenset | None] | Error:
    """(the body Lua compiles, its flags) from a ``#!lua flags=...`` first line; flags None
    without one (Redis's compatibility mode)."""
    if not body.startswith(b"#!"):
        return body, None
    line, nl, rest = body.partition(b"\n")
    words = line.decode("utf-8", "replace").split()
    if words[0] != "#!lua":
        return Error(ERR, f"Unexpected engine in script shebang: {words[0]}")
    flags: set[str] = set()
    for word in words[1:]:
        if not word.startswith("flags="):
            return Error(ERR, f"Unknown lua shebang option: {word}")
        for flag in filter(None, word[6:].split(",")):
            if flag not in _FLAGS:
                return Error(ERR, f"Unexpected flag in script shebang: {flag}")
            flags.add(flag)
    return nl + rest, frozenset(flags)


def parse_numkeys(args: list) -> int | Error:
    """EVAL's and FCALL's key count (``args[1]``), with Redis's errors."""
    text = args[1].decode("ascii", "replace")
    try:
        numkeys = int(text) if text.strip() == text else None
    except ValueError:
        numkeys = None
    if numkeys is None or not -(1 << 63) <= numkeys < (1 << 63):
        return Error(ERR, "value is not an integer or out of range")
    if numkeys < 0:
        return Error(ERR, "Number of keys can't be negative")
    if numkeys > len(args) - 2:
        return Error(ERR, "Number of keys can't be greater than number of args")
    return numkeys


class ScriptCommands:
    """The scripting commands, as an Executor mixin."""

    COMMANDS = {"EVAL": "_cmd_eval", "EVALSHA": "_cmd_evalsha", "EVAL_RO": "_cmd_eval_ro",
                "EVALSHA_RO": "_cmd_evalsha_ro", "SCRIPT": "_cmd_script"}
    script_guard: Callable[[ScriptRun, float], bool] | None = None
    # Set by the log actor for each cycle: MISCONF or NOREPLICAS while writes are refused. A
    # script gets it at its first write, or before it runs if its shebang allows writes.
    write_refusal: Error | None = None
    # While someone monitors: told (db, argv) of each command a script runs (node/log/monitor.py).
    monitor_script: Any = None
    # While anyone tracks (CLIENT TRACKING): told the name of each command a script runs
    # (node/log/tracking.py: a script that reads has its declared keys remembered).
    track_script: Any = None
    # Told (name, args, reply, ns) of each command a script runs, for commandstats (the log
    # actor's node/log/introspect.py); None in a bare executor.
    script_stats: Any = None
    script_max_memory = SCRIPT_MAX_MEMORY
    script_cache_max_scripts = SCRIPT_CACHE_MAX_SCRIPTS
    script_cache_max_bytes = SCRIPT_CACHE_MAX_BYTES
    _lua: LuaEngine | None = None
    # sha -> (body, compiled function, read-only flag); made with the Lua state (``_engine``).
    _scripts: OrderedDict = OrderedDict()
    _script_bytes = 0
    _script_rand: Rand48 | None = None
    scripts_evicted = 0
    # True while a script's redis.call runs a command: what it reads must not depend on a set's
    # layout (SORT BY nosort), as Redis forces for its script callers.
    in_script = False
    # The Executor's, which this mixin's redis.call uses.
    maxmemory: int
    _make_room: Callable[[str], Any]
    _handlers: dict[str, Callable[[int, Any], Any]]

    # --- the cache ---------------------------------------------------------------------------
    def _engine(self) -> LuaEngine:
        if self._lua is None:
            if self._script_rand is None:
                self._script_rand = Rand48()  # outlives the Lua state, as Redis's does
            self._lua = LuaEngine(self._script_call, max_memory=self.script_max_memory,
                                  rand=self._script_rand)
            self._lua.should_abort = self.script_guard
            self._scripts = OrderedDict()
            self._script_bytes = 0
        return self._lua

    def _script_load(self, body: bytes) -> tuple[str, Any] | Error:
        """(sha, cache entry) for ``body``, compiling and caching it if new."""
        engine = self._engine()
        sha = hashlib.sha1(body).hexdigest()
        entry = self._scripts.get(sha)
        if entry is not None:
            self._scripts.move_to_end(sha)
            return sha, entry
        parsed = _shebang(body)
        if type(parsed) is Error:
            return parsed
        fn = engine.compile(parsed[0])
        if type(fn) is Error:
            return fn
        entry = (body, fn, parsed[1])
        self._scripts[sha] = entry
        self._script_bytes += len(body)
        while len(self._scripts) > 1 and (len(self._scripts) > self.script_cache_max_scripts or
                                          self._script_bytes > self.script_cache_max_bytes):
            _, (old, _, _) = self._scripts.popitem(last=False)
            self._script_bytes -= len(old)
            self.scripts_evicted += 1
        return sha, entry

    def script_info(self) -> dict[str, int]:
        """INFO's scripting fields (the executor adds them to the ``memory`` section)."""
        return {"number_of_cached_scripts": len(self._scripts or ()),
                "used_memory_scripts": self._script_bytes,
                "used_memory_lua": self._lua.runtime.get_memory_used() or 0 if self._lua else 0,
                "evicted_scripts": self.scripts_evicted}

    # --- EVAL and friends --------------------------------------------------------------------
    def _cmd_eval(self, db, args):
        return self._eval(db, args, by_sha=False, read_only=False)

    def _cmd_evalsha(self, db, args):
        return self._eval(db, args, by_sha=True, read_only=False)

    def _cmd_eval_ro(self, db, args):
        return self._eval(db, args, by_sha=False, read_only=True)

    def _cmd_evalsha_ro(self, db, args):
        return self._eval(db, args, by_sha=True, read_only=True)

    def _eval(self, db: int, args: list, by_sha: bool, read_only: bool):
        numkeys = parse_numkeys(args)
        if type(numkeys) is Error:
            return numkeys
        if by_sha:
            self._engine()
            sha = args[0].decode("ascii", "replace").lower()
            entry = self._scripts.get(sha)
            if entry is None:
                return _NOSCRIPT_REPLY
            self._scripts.move_to_end(sha)
        else:
            loaded = self._script_load(args[0])
            if type(loaded) is Error:
                return loaded
            sha, entry = loaded
        _, fn, flags = entry
        run = ScriptRun(db, read_only or (flags is not None and "no-writes" in flags))
        if flags is not None and not run.read_only and self.write_refusal is not None:
            return self.write_refusal
        if flags is not None and self.maxmemory:
            # A script with a shebang declares whether it may write: one that may, without
            # allow-oom, is refused before it runs while memory is full (Redis 7.0's
            # scriptPrepareForRun); with allow-oom its writes skip the OOM check.
            if "allow-oom" in flags:
                run.allow_oom = True
            elif not run.read_only and self._make_room("SET") is not None:
                return _OOM_ERR
        return self._engine().run(fn, sha, args[2:2 + numkeys], args[2 + numkeys:], run)

    # --- redis.call ---------------------------------------------------------------------------
    def _script_call(self, run: ScriptRun, name_arg: Any, raw_args: list):
        if name_arg is None:
            return _NO_ARGS_ERR
        maybe = [_arg_bytes(a) for a in raw_args]
        if type(name_arg) is not bytes or None in maybe:
            return _ARG_TYPE_ERR if type(name_arg) is bytes else _UNKNOWN_ERR
        args: list[bytes] = [a for a in maybe if a is not None]
        if sum(map(len, args)) > MAX_MESSAGE_BYTES:
            # A client's command is bounded by the message size, so one AOF entry always fits
            # in one record (node/aof/format.py); a script's must be too.
            return _TOO_BIG_ERR
        name = name_arg.decode("latin-1").upper()
        spec = COMMANDS.get(name)
        if name in _NOSCRIPT:
            return _NOSCRIPT_ERR
        if spec is None or name not in self._handlers and name != "SELECT":  # PUBLISH, CONFIG...
            return _UNKNOWN_ERR  # the log actor's own commands: not the executor's to run
        if not spec.accepts(len(args) + 1):
            return _ARITY_ERR
        if name == "SELECT":
            selected = parse_select(args[0])
            if type(selected) is Error:
                return selected
            run.db = selected
            return "OK"
        if spec.write:
            if run.read_only:
                return _READ_ONLY_ERR
            if self.write_refusal is not None:
                return self.write_refusal
            if spec.denyoom and not run.wrote and not run.allow_oom and self.maxmemory and \
                    self._make_room(name) is not None:
                return _OOM_ERR
            run.wrote = True
        if self.monitor_script is not None:
            self.monitor_script(run.db, [name_arg.lower(), *args])
        if self.track_script is not None:
            self.track_script(name)
        stats = self.script_stats
        start = _clock() if stats is not None else 0
        self.in_script = True
        try:
            reply = self._handlers[name](run.db, args)
        except IndexError:
            return _ARITY_ERR
        finally:
            self.in_script = False
        if stats is not None:
            stats(name, args, reply, _clock() - start)
        # The shapes the RESP front gives these two (protocol/resp_reply.py), as scripts see
        # Redis's: INFO is a text, HGETALL a map in RESP3.
        if name == "INFO" and type(reply) is dict:
            return info_text(reply)
        if name == "HGETALL" and run.resp == 3 and type(reply) is list:
            return dict(zip(reply[::2], reply[1::2]))
        return reply

    # --- SCRIPT -------------------------------------------------------------------------------
    def _cmd_script(self, db, args):
        sub = args[0].decode("utf-8", "replace").upper()
        rest = args[1:]
        if sub == "LOAD" and len(rest) == 1:
            loaded = self._script_load(rest[0])
            return loaded if type(loaded) is Error else loaded[0].encode()
        if sub == "EXISTS" and rest:
            self._engine()
            return [int(a.decode("ascii", "replace").lower() in self._scripts) for a in rest]
        if sub == "FLUSH" and len(rest) <= 1:
            if rest and rest[0].upper() not in (b"SYNC", b"ASYNC"):
                return Error(ERR, "SCRIPT FLUSH only support SYNC|ASYNC option")
            self._lua = None  # the next script makes a fresh Lua state (and cache)
            self._scripts, self._script_bytes = None, 0
            return "OK"
        if sub == "KILL" and not rest:
            # A command runs only when no script does: a busy script's SCRIPT KILL is taken
            # from the Lua hook (node/log/busy.py).
            return Error("NOTBUSY", "No scripts in execution right now.")
        if sub in ("LOAD", "EXISTS", "FLUSH", "KILL"):
            return Error(ERR, f"wrong number of arguments for 'script|{sub.lower()}' command")
        if sub == "HELP" and not rest:
            return ["SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "EXISTS <sha1> [<sha1> ...]", "FLUSH [ASYNC|SYNC]", "KILL",
                    "LOAD <script>", "HELP"]
        given = args[0].decode("utf-8", "replace")[:128]
        return Error(ERR, f"unknown subcommand '{given}'. Try SCRIPT HELP.")
