"""Redis 7 functions: FUNCTION LOAD/DELETE/FLUSH/LIST/STATS/KILL, FCALL and FCALL_RO (a subset).

Design
------
* A library is a Lua body whose first line is ``#!lua name=<lib>``; loading runs the body once
  with ``redis.register_function`` (node/store/luaboot.py) and keeps each registered function
  (callback and flags) by name. Functions run as scripts do (one executor command, atomic in
  the log actor, effects logged, the busy guard of node/log/busy.py), with KEYS and ARGV as
  their two arguments.
* Libraries are part of the dataset, as in Redis 7: their bodies live in
  ``keyspace.functions`` (name -> body), so the AOF rewrite writes them back
  (node/aof/rewrite_child.py, ``FUNCTION LOAD REPLACE``), and every change is propagated:
  ``FUNCTION LOAD REPLACE <body>``, ``FUNCTION DELETE <lib>``, ``FUNCTION FLUSH``. Replay loads
  them again (Lua is needed to replay a library, never to replay a call). FLUSHALL leaves them,
  as Redis's does.
* The compiled callbacks belong to the Lua state: SCRIPT FLUSH makes a new one, so
  ``_functions`` is rebuilt from the bodies when the state changes (``_function_table``).
* Bounds: a library body runs at most ``FUNCTION_LOAD_TIMEOUT_MS`` (Redis's 500 ms); the bodies
  are bounded by the message size and counted in INFO (``used_memory_functions``).
* Not here: FUNCTION DUMP/RESTORE, descriptions in LIST, the ``allow-oom``/``allow-stale``
  flags' effects (accepted), FUNCTION STATS' running script.
"""

from __future__ import annotations

import re
from typing import Any

from aofnode.protocol.errors import ERR, Error
from aofnode.store.luabridge import LuaEngine, ScriptRun
from aofnode.store.pattern import glob_match
from aofnode.store.scripting import parse_numkeys

__all__ = ["FunctionCommands", "FUNCTION_LOAD_TIMEOUT_MS"]

FUNCTION_LOAD_TIMEOUT_MS = 500
_NAME = re.compile(rb"[A-Za-z0-9_]+\Z")
_FLAGS = ("no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys")
_NOT_FOUND = Error(ERR, "Function not found")
_RO_WRITE = Error(ERR, "Can not execute a script with write flag using *_ro command.")


def _meta(body: bytes) -> str | Error:
    """The library name of a body's ``#!lua name=<lib>`` line (Redis's errors otherwise)."""
    if not body.startswith(b"#!"):
        return Error(ERR, "Missing library metadata")
    line = body.partition(b"\n")[0]
    words = line[2:].split()
    engine = words[0].decode("utf-8", "replace") if words else ""
    if engine.lower() != "lua":
        return Error(ERR, f"Engine '{engine}' not found")
    name = None
    for word in words[1:]:
        if word.startswith(b"name="):
            name = word[5:]
        else:
            return Error(ERR, f"Invalid metadata value given: {word.decode('utf-8', 'replace')}")
    if name is None:
        return Error(ERR, "Library name was not given")
    if not _NAME.match(name):
        return Error(ERR, "Library names can only contain letters, numbers, or underscores(_) "
                          "and must be at least one character long")
    return name.decode()


def _code(body: bytes) -> bytes:
    """The body Lua compiles: the shebang line emptied, so line numbers stay the user's."""
    return body[body.find(b"\n"):] if b"\n" in body else b""


class FunctionCommands:
    """The function commands, as an Executor mixin (beside ``ScriptCommands``)."""

    COMMANDS = {"FUNCTION": "_cmd_function", "FCALL": "_cmd_fcall", "FCALL_RO": "_cmd_fcall_ro"}
    # function name -> (library, callback, flags); for the Lua state ``_functions_of``
    _functions: dict[str, tuple[str, Any, list[str]]] = {}
    _functions_of: LuaEngine | None = None
    # The Executor's and ScriptCommands'.
    keyspace: Any
    propagated: list
    loading: bool
    _engine: Any

    # --- the registry ---------------------------------------------------------------------------
    def _function_table(self) -> dict[str, tuple[str, Any, list[str]]]:
        engine = self._engine()
        if self._functions_of is not engine:  # a new Lua state: compile the bodies again
            self._functions_of, self._functions = engine, {}
            for lib, body in self.keyspace.functions.items():
                loaded = engine.load_library(_code(body), 0)
                if type(loaded) is not Error:
                    for name, fn, flags in loaded:
                        self._functions[name.decode()] = (lib, fn, [f.decode() for f in flags])
        return self._functions

    def function_info(self) -> dict[str, int]:
        libs = self.keyspace.functions
        return {"number_of_functions": len(self._functions) if libs else 0,
                "number_of_libraries": len(libs),
                "used_memory_functions": sum(map(len, libs.values()))}

    def _load(self, body: bytes, replace: bool) -> str | Error:
        lib = _meta(body)
        if type(lib) is Error:
            return lib
        libs = self.keyspace.functions
        if lib in libs and not replace:
            return Error(ERR, f"Library '{lib}' already exists")
        table = self._function_table()
        assert self._functions_of is not None  # made by _function_table
        loaded = self._functions_of.load_library(_code(body), FUNCTION_LOAD_TIMEOUT_MS)
        if type(loaded) is Error:
            return loaded
        if not loaded:
            return Error(ERR, "No functions registered")
        names: dict[str, tuple[str, Any, list[str]]] = {}
        for raw, fn, flags in loaded:
            if type(raw) is not bytes or not _NAME.match(raw):
                return Error(ERR, "Function names can only contain letters, numbers, or "
                                  "underscores(_) and must be at least one character long")
            name = raw.decode()
            if name in names or (name in table and table[name][0] != lib):
                return Error(ERR, f"Function {name} already exists")
            if any(type(f) is not bytes or f.decode() not in _FLAGS for f in flags):
                return Error(ERR, "Error registering functions: unknown flag given")
            names[name] = (lib, fn, [f.decode() for f in flags])
        for name in [n for n, entry in table.items() if entry[0] == lib]:
            del table[name]
        table.update(names)
        libs[lib] = body
        if not self.loading:
            self.propagated.append([0, "FUNCTION", b"LOAD", b"REPLACE", body])
        return lib

    # --- FUNCTION -------------------------------------------------------------------------------
    def _cmd_function(self, db, args):
        sub = args[0].decode("utf-8", "replace").upper()
        rest = args[1:]
        if sub == "LOAD" and rest:
            replace = len(rest) == 2 and rest[0].upper() == b"REPLACE"
            if len(rest) > 2 or (len(rest) == 2 and not replace):
                return Error(ERR, f"Unknown option given: {rest[0].decode('utf-8', 'replace')}")
            loaded = self._load(rest[-1], replace)
            return loaded if type(loaded) is Error else loaded.encode()
        if sub == "DELETE" and len(rest) == 1:
            lib = rest[0].decode("utf-8", "replace")
            if lib not in self.keyspace.functions:
                return Error(ERR, "Library not found")
            del self.keyspace.functions[lib]
            table = self._function_table()
            for name in [n for n, entry in table.items() if entry[0] == lib]:
                del table[name]
            if not self.loading:
                self.propagated.append([0, "FUNCTION", b"DELETE", rest[0]])
            return "OK"
        if sub == "FLUSH" and len(rest) <= 1:
            if rest and rest[0].upper() not in (b"SYNC", b"ASYNC"):
                return Error(ERR, "FUNCTION FLUSH only supports SYNC|ASYNC option")
            self.keyspace.functions.clear()
            self._functions = {}
            if not self.loading:
                self.propagated.append([0, "FUNCTION", b"FLUSH"])
            return "OK"
        if sub == "LIST":
            return self._list(rest)
        if sub == "STATS" and not rest:
            self._function_table()
            return {b"running_script": None,
                    b"engines": {b"LUA": {b"libraries_count": len(self.keyspace.functions),
                                          b"functions_count": len(self._functions)}}}
        if sub == "KILL" and not rest:
            return Error("NOTBUSY", "No scripts in execution right now.")
        if sub in ("LOAD", "DELETE", "FLUSH", "STATS", "KILL"):
            return Error(ERR, f"wrong number of arguments for 'function|{sub.lower()}' command")
        given = args[0].decode("utf-8", "replace")[:128]
        return Error(ERR, f"unknown subcommand '{given}'. Try FUNCTION HELP.")

    def _list(self, rest: list) -> Any:
        with_code, pattern, i = False, None, 0
        while i < len(rest):
            word = rest[i].upper()
            if word == b"WITHCODE" and not with_code:
                with_code = True
            elif word == b"LIBRARYNAME" and pattern is None and i + 1 < len(rest):
                pattern, i = rest[i + 1], i + 1
            else:
                return Error(ERR, "Unknown argument " + rest[i].decode("utf-8", "replace"))
            i += 1
        table = self._function_table()
        out = []
        for lib, body in sorted(self.keyspace.functions.items()):
            if pattern is not None and not glob_match(pattern, lib.encode()):
                continue
            fns = [{b"name": name.encode(), b"description": None, b"flags": list(flags)}
                   for name, (owner, _, flags) in sorted(table.items()) if owner == lib]
            entry: dict[bytes, Any] = {b"library_name": lib.encode(), b"engine": b"LUA",
                                       b"functions": fns}
            if with_code:
                entry[b"library_code"] = body
            out.append(entry)
        return out

    # --- FCALL ----------------------------------------------------------------------------------
    def _cmd_fcall(self, db, args):
        return self._fcall(db, args, read_only=False)

    def _cmd_fcall_ro(self, db, args):
        return self._fcall(db, args, read_only=True)

    def _fcall(self, db: int, args: list, read_only: bool):
        numkeys = parse_numkeys(args)
        if type(numkeys) is Error:
            return numkeys
        name = args[0].decode("utf-8", "replace")
        entry = self._function_table().get(name)
        if entry is None:
            return _NOT_FOUND
        _, fn, flags = entry
        no_writes = "no-writes" in flags
        if read_only and not no_writes:
            return _RO_WRITE
        run = ScriptRun(db, read_only or no_writes)
        assert self._functions_of is not None  # made by _function_table
        return self._functions_of.run(fn, name, args[2:2 + numkeys], args[2 + numkeys:], run,
                                      function=True)
