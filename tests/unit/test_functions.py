"""FUNCTION and FCALL in the executor (node/store/functions.py): load, call, the read-only
rule, errors, what is propagated, and a replay that rebuilds the libraries."""
from __future__ import annotations

import pytest

from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor

LIB = (b"#!lua name=test\nredis.register_function('set_get', function(KEYS, ARGV)\n"
       b" redis.call('set', KEYS[1], ARGV[1]) return redis.call('get', KEYS[1])\nend)\n"
       b"redis.register_function{function_name='ro', callback=function(KEYS, ARGV)\n"
       b" return redis.call('get', KEYS[1])\nend, flags={'no-writes'}}")


@pytest.fixture
def ex():
    return Executor()


def fn(ex, *args):
    return ex.execute(0, args[0], [a if type(a) is bytes else str(a).encode() for a in args[1:]])


def test_load_call_and_the_read_only_rule(ex):
    assert fn(ex, "FUNCTION", "LOAD", LIB) == b"test"
    assert fn(ex, "FCALL", "set_get", 1, "k", "v") == b"v"
    assert fn(ex, "FCALL_RO", "ro", 1, "k") == b"v"
    assert fn(ex, "FCALL_RO", "set_get", 1, "k", "v") == Error(
        "ERR", "Can not execute a script with write flag using *_ro command.")
    assert fn(ex, "FUNCTION", "LOAD", LIB) == Error("ERR", "Library 'test' already exists")
    assert fn(ex, "FUNCTION", "LOAD", "REPLACE", LIB) == b"test"
    [lib] = fn(ex, "FUNCTION", "LIST")
    assert lib[b"library_name"] == b"test"
    assert [(f[b"name"], f[b"flags"]) for f in lib[b"functions"]] == [
        (b"ro", ["no-writes"]), (b"set_get", [])]
    assert fn(ex, "FCALL", "nope", 0) == Error("ERR", "Function not found")
    assert fn(ex, "FCALL", "set_get", -1) == Error("ERR", "Number of keys can't be negative")


@pytest.mark.parametrize("body, message", [
    (b"return 1", "Missing library metadata"),
    (b"#!js name=x\nreturn 1", "Engine 'js' not found"),
    (b"#!lua\nreturn 1", "Library name was not given"),
    (b"#!lua name=a-b\nreturn 1", "Library names can only contain letters, numbers, or "
                                   "underscores(_) and must be at least one character long"),
    (b"#!lua name=x\nlocal a = 1", "No functions registered"),
    (b"#!lua name=x\nredis.call('ping')", "Error registering functions: user_function:2: "
                                          "attempt to call field 'call' (a nil value)"),
    (b"#!lua name=x\nwhile true do end", "Error registering functions: FUNCTION LOAD timeout"),
])
def test_load_errors(ex, body, message):
    assert fn(ex, "FUNCTION", "LOAD", body) == Error("ERR", message)
    assert fn(ex, "FUNCTION", "LIST") == []  # nothing half-loaded


def test_propagated_forms_replay_the_libraries(ex):
    fn(ex, "FUNCTION", "LOAD", LIB)
    fn(ex, "FCALL", "set_get", 1, "k", "v")
    fn(ex, "FUNCTION", "LOAD", b"#!lua name=other\nredis.register_function('o', function() "
                               b"return 7 end)")
    fn(ex, "FUNCTION", "DELETE", "test")
    entries = ex.take_propagated()
    assert [e[1:3] for e in entries] == [["FUNCTION", b"LOAD"], ["SET", b"k"],
                                          ["FUNCTION", b"LOAD"], ["FUNCTION", b"DELETE"]]
    replay = Executor()
    replay.loading = True
    for entry in entries:
        replay.execute(entry[0], entry[1], entry[2:])
    replay.loading = False
    assert list(replay.keyspace.functions) == ["other"]
    assert fn(replay, "FCALL", "o", 0) == 7 and fn(replay, "GET", "k") == b"v"
    assert replay.take_propagated() == []


def test_script_flush_keeps_the_functions(ex):
    fn(ex, "FUNCTION", "LOAD", LIB)
    assert fn(ex, "SCRIPT", "FLUSH") == "OK"  # a new Lua state: the bodies are compiled again
    assert fn(ex, "FCALL", "set_get", 1, "k", "w") == b"w"
    assert fn(ex, "FUNCTION", "FLUSH") == "OK" and fn(ex, "FUNCTION", "LIST") == []
    assert fn(ex, "FLUSHALL") == "OK"


def test_the_rewrite_writes_the_libraries(tmp_path, ex):
    from aofnode.aof import format as aof_format
    from aofnode.aof.rewrite_child import _child_write

    fn(ex, "FUNCTION", "LOAD", LIB)
    fn(ex, "SET", "k", "v")
    path = tmp_path / "rewrite.aof"
    _child_write(ex.keyspace, str(path), ex.clock_ms())
    dst = Executor()
    dst.loading = True
    result = aof_format.scan(str(path), on_entries=lambda es: [dst.execute(e[0], e[1], e[2:]) for e in es])
    dst.loading = False
    assert result.status == "ok"
    assert dst.keyspace.functions == {"test": LIB}
    assert fn(dst, "FCALL_RO", "ro", 1, "k") == b"v"
