"""One Lua 5.1 state for scripts: the sandbox, the time limit, and Redis's reply conversions.

Design
------
* Lua is ``lupa.lua51`` (the Lua 5.1 Redis embeds, in lupa's wheels: no compiler). The state
  is made with ``encoding=None`` (Lua strings are bytes both ways, as Redis's are binary),
  without lupa's ``python`` global, and with an attribute filter that refuses every Python
  attribute, so a script cannot climb from a callback to Python's internals.
  ``max_memory`` bounds what scripts may allocate (a Lua "not enough memory" error past it).
* luaboot.py builds the sandbox; lualibs.py gives cjson, cmsgpack, bit and struct.
* ``run`` calls a compiled script. Its instruction hook (every ``HOOK_EVERY`` instructions)
  calls ``_check``, which asks ``should_abort(run, elapsed_ms)`` when it is set: that is where
  the log actor answers other clients BUSY and takes SCRIPT KILL while a script runs
  (node/log/busy.py). True aborts the script with Redis's SCRIPT KILL error, which ``pcall``
  cannot catch. Nothing else ends a script: Redis sets no time limit either.
* Conversions are Redis 7.0's (``to_lua`` for a command's reply, ``from_lua`` for what the
  script returns): RESP2 by default, RESP3 after ``redis.setresp(3)``.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, Callable

import lupa.lua51 as lua
import structlog

from aofnode.protocol.errors import ERR, Error
from aofnode.store.luaboot import BOOT, HOOK_EVERY
from aofnode.store.lualibs import make_libs

__all__ = ["LuaEngine", "Rand48", "ScriptRun", "KILLED_MESSAGE", "to_lua", "from_lua", "error_text", "split_error"]

_MIN_I64 = -(1 << 63)
# Nesting past this is refused (Redis refuses past Lua's C stack): two Python frames a level
# must stay well under Python's recursion limit of 1000.
_MAX_DEPTH = 300
# Redis's error for a script that SCRIPT KILL ended (script_lua.c luaMaskCountHook).
KILLED_MESSAGE = "ERR Script killed by user with SCRIPT KILL..."
_INTERNAL_CODES = frozenset(("UNKNOWNCMD", "ARITY", "ARGTYPE", "PROTO", "TOOBIG"))
_LOG_LEVELS = ("debug", "info", "info", "warning")  # LOG_DEBUG, VERBOSE, NOTICE, WARNING
_CONSTS = {b"LOG_DEBUG": 0, b"LOG_VERBOSE": 1, b"LOG_NOTICE": 2, b"LOG_WARNING": 3,
           b"REPL_NONE": 0, b"REPL_AOF": 1, b"REPL_SLAVE": 2, b"REPL_REPLICA": 2,
           b"REPL_ALL": 3, b"REDIS_VERSION": b"7.0.15", b"REDIS_VERSION_NUM": 0x07000F}


class ScriptCallError(Exception):
    """redis.call's error, raised through Lua; its one argument is Redis's error text."""


def _exception_text(exc: BaseException) -> bytes:
    """The error text of an exception that crossed Lua: redis.call's own, or (a bug in a
    command, a library callback) ERR and the exception."""
    if type(exc) is ScriptCallError:
        return exc.args[0]
    return f"ERR Error in a script callback: {type(exc).__name__}: {exc}".encode(
        "utf-8", "replace")


class _TooDeep(Exception):
    """A reply nested deeper than _MAX_DEPTH: the whole reply becomes an error."""


def _deny_attributes(obj, name, is_setting):
    raise AttributeError("Python attributes are not reachable from scripts")


def error_text(err: Error) -> bytes:
    """An error reply as the one string Lua sees (``{err = "CODE message"}``)."""
    code = ERR if err.code in _INTERNAL_CODES else err.code
    return (f"{code} {err.message}" if err.message else code).encode("utf-8", "replace")


def split_error(text: bytes) -> Error:
    """A script's error string as an ``Error``: the first word is the code, as Redis prints it."""
    s = text.decode("utf-8", "replace").replace("\r", " ").replace("\n", " ")
    code, _, message = s.partition(" ")
    return Error(code or ERR, message)


class ScriptRun:
    """What one running script needs: its db, RESP version, read-only flag and start time."""

    __slots__ = ("db", "resp", "read_only", "wrote", "started", "allow_oom")

    def __init__(self, db: int, read_only: bool) -> None:
        self.db = db
        self.resp = 2
        self.read_only = read_only
        self.wrote = False
        self.started = time.monotonic()
        self.allow_oom = False  # a ``#!lua flags=allow-oom`` script: its writes skip OOM


def to_lua(runtime, value: Any, resp: int, depth: int = 0) -> Any:
    """A command's reply value as the Lua value redis.call returns (Redis 7.0's rules)."""
    t = type(value)
    if t is bytes or t is int:
        return value
    if t is str:
        return runtime.table_from({b"ok": value.encode("utf-8", "replace")})
    if value is None:
        return None if resp == 3 else False
    if t is Error:
        return runtime.table_from({b"err": error_text(value)})
    if t is bool:
        return value if resp == 3 else int(value)
    if t is float:
        return (runtime.table_from({b"double": value}) if resp == 3
                else repr(value).encode())
    if t is list or t is tuple:
        return runtime.table_from([to_lua(runtime, v, resp, depth + 1) for v in value])
    if t is dict:
        items = [(k.encode() if type(k) is str else k, to_lua(runtime, v, resp, depth + 1))
                 for k, v in value.items()]
        if resp == 3:
            return runtime.table_from({b"map": runtime.table_from(dict(items))})
        return runtime.table_from([x for pair in items for x in pair])
    return None


def _index(table, key):
    return table[key]


def from_lua(value: Any, resp: int, depth: int = 0, get: Callable = _index) -> Any:
    """A script's Lua result as a reply value (Redis 7.0's rules). ``get`` reads a table's
    field: the engine gives Lua's ``rawget``, as Redis reads the reply with lua_rawget (a
    metatable's __index must not run, nor raise, while the reply is converted)."""
    t = type(value)
    if t is bytes:
        return value
    if t is int:
        return value if _MIN_I64 <= value < -_MIN_I64 else _MIN_I64
    if t is float:
        if not math.isfinite(value) or not _MIN_I64 <= value < -_MIN_I64:
            return _MIN_I64  # what Redis's C cast gives on x86-64
        return int(value)
    if t is bool:
        if resp == 3:
            return value
        return 1 if value else None
    if lua.lua_type(value) != "table":
        return None
    if depth > _MAX_DEPTH:
        raise _TooDeep()
    return _table_reply(value, resp, depth, get)


def _table_reply(table, resp: int, depth: int, get: Callable) -> Any:
    err = get(table, b"err")
    if type(err) is bytes:
        # Inside an array an error stays its text: the log actor's reply formats carry an
        # error only as a whole reply (docs/resp.md lists this gap).
        return split_error(err) if depth == 0 else err
    ok = get(table, b"ok")
    if type(ok) is bytes:
        return ok.decode("utf-8", "replace")
    if resp == 3:
        double = get(table, b"double")
        if type(double) in (int, float):
            return float(double)
        mapping = get(table, b"map")
        if lua.lua_type(mapping) == "table":
            as_map: dict[Any, Any] = {}
            for k, v in mapping.items():
                key = from_lua(k, resp, depth + 1, get)
                as_map[key if type(key) in (bytes, int, str) else repr(key).encode()] = \
                    from_lua(v, resp, depth + 1, get)
            return as_map
    out: list[Any] = []
    i = 1
    while True:
        item = get(table, i)
        if item is None:
            return out
        out.append(from_lua(item, resp, depth + 1, get))
        i += 1


class LuaEngine:
    """A Lua state with the sandbox loaded; ``dispatch(run, name, args)`` runs redis.call."""

    def __init__(self, dispatch: Callable[[ScriptRun, bytes, list], Any], *,
                 max_memory: int = 0, rand: Rand48 | None = None) -> None:
        self.dispatch = dispatch
        # The log actor's BUSY / SCRIPT KILL guard: called from the instruction hook with the
        # running script and its elapsed milliseconds; True aborts the script.
        self.should_abort: Callable[[ScriptRun, float], bool] | None = None
        self.current: ScriptRun | None = None
        self._abort_message = ""
        # The heap limit is armed only while a script runs (``_arm``): lupa pushes arguments
        # and reads results outside a protected call, where a failed allocation is a Lua panic
        # that aborts the process.
        self.max_memory = max_memory
        self.runtime = lua.LuaRuntime(encoding=None, unpack_returned_tuples=True,
                                      register_eval=False, register_builtins=False,
                                      attribute_filter=_deny_attributes, max_memory=max_memory)
        self.runtime.set_max_memory(0)
        self._collect = self.runtime.eval("function() collectgarbage('collect') end")
        self._rawget = self.runtime.eval("rawget")
        rand = rand if rand is not None else Rand48()
        py = {"hook_every": HOOK_EVERY, "check": self._check,
              "abort_message": lambda: self._abort_message.encode(),
              "arm": self._arm, "disarm": self._disarm, "call": self._call,
              "pcall": self._pcall, "error_text": _exception_text, "sha1hex": _sha1hex, "log": _log,
              "setresp": self._setresp,
              "rand": rand.random, "srand": rand.seed,
              "redis_consts": self.runtime.table_from(_CONSTS)}
        py.update(make_libs(self.runtime))
        # encoding=None: Lua sees str keys as userdata, so the names go as bytes.
        table = self.runtime.table_from({k.encode(): v for k, v in py.items()})
        self._compile, self._run, self._load_library, self._fcall = \
            self.runtime.execute(BOOT, table)
        self.load_deadline = 0.0  # while FUNCTION LOAD runs a library's body

    def compile(self, body: bytes):
        """The compiled function, or an Error with Redis's compile-error text."""
        try:
            fn, problem = self._compile(body)
        except lua.LuaError as exc:  # e.g. out of memory while compiling
            return Error(ERR, f"Error compiling script (new function): {exc}")
        if fn is None:
            text = problem.decode("utf-8", "replace")
            return Error(ERR, f"Error compiling script (new function): {text}")
        return fn

    def load_library(self, body: bytes, timeout_ms: int):
        """FUNCTION LOAD's run of a library body: [(name, callback, [flags])], or an Error. A
        body that runs past ``timeout_ms`` is stopped (Redis's load timeout is 500 ms)."""
        self._abort_message = ""
        self.load_deadline = time.monotonic() + timeout_ms / 1000.0
        try:
            fns, problem = self._load_library(body)
        except lua.LuaError as exc:
            return Error(ERR, f"Error registering functions: {exc}")
        finally:
            self.load_deadline = 0.0
            self._disarm()
        if fns is None:
            text = problem.decode("utf-8", "replace") if type(problem) is bytes else str(problem)
            return Error(ERR, f"Error registering functions: {text}")
        out = []
        for i in range(1, len(fns) + 1):
            name, callback, flags = fns[i][1], fns[i][2], fns[i][3]
            out.append((name, callback, [flags[j] for j in range(1, len(flags) + 1)]))
        return out

    def run(self, fn, sha: str, keys: list, argv: list, run: ScriptRun,
            function: bool = False) -> Any:
        """Call a compiled script (or a registered function, with KEYS and ARGV as arguments);
        its reply value, or an Error naming the script (or function) and line."""
        self.current, self._abort_message = run, ""
        try:
            call = self._fcall if function else self._run
            ok, result = call(fn, len(keys), *keys, *argv)
        except lua.LuaError as exc:  # the state itself failed (e.g. out of memory)
            return Error(ERR, f"Error running script: {exc}")
        finally:
            self.current = None
            self._disarm()
            if self.max_memory and self.runtime.get_memory_used() > self.max_memory // 2:
                self._collect()
        if ok:
            try:
                return from_lua(result, run.resp, 0, self._rawget)
            except (_TooDeep, RecursionError):
                return Error(ERR, "reached lua stack limit")
            except (lua.LuaError, TypeError, ValueError) as exc:
                return Error(ERR, f"Error converting the script's reply: {exc}")
        if lua.lua_type(result) != "table":
            # Out of memory (Lua skips the handler then) or an error inside the handler.
            text = result if type(result) is bytes else str(result).encode()
            return Error(ERR, "Error running script: " + text.decode("utf-8", "replace"))
        err = split_error(result[b"err"])
        line = result[b"line"]
        if line is None:
            return err
        source = (result[b"source"] or b"@user_script").decode("utf-8", "replace")
        return Error(err.code, f"{err.message} script: {sha}, on {source}:{line}.")

    def _arm(self) -> None:
        self.runtime.set_max_memory(self.max_memory)

    def _disarm(self) -> None:
        self.runtime.set_max_memory(0)

    def _check(self) -> bool:
        run, guard = self.current, self.should_abort
        if self.load_deadline and time.monotonic() > self.load_deadline:
            self._abort_message = "FUNCTION LOAD timeout"
            return True
        if run is None or guard is None:
            return False
        if guard(run, (time.monotonic() - run.started) * 1000.0):
            self._abort_message = KILLED_MESSAGE
            return True
        return False

    def _call(self, name=None, *args) -> Any:
        """redis.call: the reply as Lua, or raise the error (the sandbox makes it a table)."""
        run = self.current
        assert run is not None  # redis.call exists only while a script runs
        reply = self.dispatch(run, name, list(args))
        if type(reply) is Error:
            raise ScriptCallError(error_text(reply))
        return to_lua(self.runtime, reply, run.resp)

    def _pcall(self, name=None, *args) -> Any:
        """redis.pcall: the reply as Lua, an error as a table {err = "CODE message"}."""
        run = self.current
        assert run is not None  # redis.pcall exists only while a script runs
        reply = self.dispatch(run, name, list(args))
        return to_lua(self.runtime, reply, 2 if type(reply) is Error else run.resp)

    def _setresp(self, version: int) -> None:
        assert self.current is not None  # redis.setresp exists only while a script runs
        self.current.resp = int(version)



class Rand48:
    """Redis's redisLrand48 behind math.random: never seeded by Redis 7.0 (so the sequence
    starts from rand48's default state and runs on across scripts and SCRIPT FLUSH), reseeded
    only by a script's math.randomseed."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = 0x1234ABCD330E

    def seed(self, seed) -> None:
        self.state = ((int(seed) & 0xFFFFFFFF) << 16 | 0x330E) & 0xFFFFFFFFFFFF

    def random(self) -> float:
        self.state = (0x5DEECE66D * self.state + 0xB) & 0xFFFFFFFFFFFF
        return ((self.state >> 17) % 0x7FFFFFFF) / 0x7FFFFFFF


def _sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


def _log(level: int, message: bytes) -> None:
    logger = structlog.get_logger("aofnode.script")
    getattr(logger, _LOG_LEVELS[int(level)])("script_log", message=message.decode(
        "utf-8", "replace"))
