"""node/store/scripting.py through the Executor: EVAL's conversions, sandbox, errors, cache,
read-only scripts, the time limit, and AOF replay of a script's effects."""

from __future__ import annotations

import hashlib
import time

import pytest

from tests.fakeclock import FakeClock

from aofnode.aof import format as aof_format
from aofnode.aof.entries import decode_payload
from aofnode.protocol.errors import Error
from aofnode.store.executor import Executor

T0 = 1_700_000_000_000


@pytest.fixture
def ex() -> Executor:
    return Executor(clock_ms=FakeClock(T0))


def _b(a) -> bytes:
    return a if isinstance(a, bytes) else str(a).encode()


def ev(ex, script, keys=(), argv=(), name="EVAL", db=0):
    return ex.execute(db, name, [_b(script), _b(len(keys)), *map(_b, keys), *map(_b, argv)])


def _strip(reply):
    """An error's message without Redis's " script: <sha>, on @user_script:N." suffix."""
    if type(reply) is Error and " script: " in reply.message:
        return Error(reply.code, reply.message.split(" script: ")[0])
    return reply


TABLE = [
    ("return {1,2,3.5,'x',false,nil,5}", [1, 2, 3, b"x", None]),
    ("return 3.99", 3), ("return -3.99", -3), ("return true", 1), ("return false", None),
    ("return nil", None), ("return {ok='FINE'}", "FINE"),
    ("return {err='MYERR bad thing'}", Error("MYERR", "bad thing")),
    ("return redis.error_reply('X y')", Error("X", "y")),
    ("return redis.status_reply('S')", "S"), ("return {1,{2,{3}},'a'}", [1, [2, [3]], b"a"]),
    ("return 1e20", -(2**63)), ("return redis.sha1hex('')",
                                b"da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ("return redis.call('ping')", "PONG"), ("return type(redis.call('ping'))", b"table"),
    ("return redis.pcall('nosuch')", Error("ERR", "Unknown Redis command called from script")),
    ("return redis.call('get')",
     Error("ERR", "Wrong number of args calling Redis command from script")),
    ("return redis.call('eval', 'return 1', 0)",
     Error("ERR", "This Redis command is not allowed from script")),
    ("return redis.call('get', {})",
     Error("ERR", "Lua redis lib command arguments must be strings or integers")),
    ("x = 5", Error("ERR", "user_script:1: Attempt to modify a readonly table")),
    ("return os", Error("ERR", "user_script:1: Script attempted to access nonexistent global "
                               "variable 'os'")),
    ("return io", Error("ERR", "user_script:1: Script attempted to access nonexistent global "
                               "variable 'io'")),
    ("return loadfile", Error("ERR", "user_script:1: Script attempted to access nonexistent "
                                     "global variable 'loadfile'")),
    ("return rawset(_G, 'x', 1)", Error("ERR", "Attempt to modify a readonly table")),
    ("string.rep = nil", Error("ERR", "user_script:1: Attempt to modify a readonly table")),
    ("error('boom')", Error("ERR", "user_script:1: boom")),
    ("error({err='TBL boom'})", Error("TBL", "boom")),
    ("return 'a' ..", Error("ERR", "Error compiling script (new function): user_script:1: "
                                   "unexpected symbol near '<eof>'")),
    ("return loadstring(string.char(27) .. 'Lua')", None),
    ("return cjson.encode({1,2,{a=1}})", b'[1,2,{"a":1}]'),
    ("return cjson.decode('[1,2,{\"a\":3}]')[3].a", 3),
    ("return cmsgpack.unpack(cmsgpack.pack({1,2,'x'}))", [1, 2, b"x"]),
    ("return bit.tohex(65535)", b"0000ffff"), ("return bit.band(7,3)", 3),
    ("return bit.lshift(1,31)", -(2**31)), ("return bit.bnot(0)", -1),
    ("return struct.unpack('>I2', struct.pack('>I2', 300))", 300),
    ("return redis.LOG_NOTICE", 2), ("return #KEYS + #ARGV", 0),
    ("redis.setresp(4)", Error("ERR", "user_script:1: RESP version must be 2 or 3.")),
]


@pytest.mark.parametrize("script,expected", TABLE)
def test_conversions_and_sandbox(ex, script, expected):
    assert _strip(ev(ex, script)) == expected


def test_keys_argv_and_effects_only_in_the_aof(ex):
    script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])"
    assert ev(ex, script, ["a", "n"], ["v"]) == 1
    entries = ex.take_propagated()
    assert [e[1] for e in entries] == ["SET", "SET"]
    assert all(e[1] not in ("EVAL", "EVALSHA") for e in entries)


def test_evalsha_script_load_exists_flush(ex):
    body = b"return ARGV[1]"
    sha = hashlib.sha1(body).hexdigest()
    assert ex.execute(0, "SCRIPT", [b"LOAD", body]) == sha.encode()
    assert ex.execute(0, "EVALSHA", [sha.upper().encode(), b"0", b"hi"]) == b"hi"
    assert ex.execute(0, "SCRIPT", [b"EXISTS", sha.encode(), b"nope"]) == [1, 0]
    assert ex.execute(0, "SCRIPT", [b"FLUSH"]) == "OK"
    assert ex.execute(0, "EVALSHA", [sha.encode(), b"0"]) == Error(
        "NOSCRIPT", "No matching script. Please use EVAL.")
    assert ex.execute(0, "SCRIPT", [b"FLUSH", b"x"]) == Error(
        "ERR", "SCRIPT FLUSH only support SYNC|ASYNC option")
    assert ex.execute(0, "SCRIPT", [b"KILL"]) == Error(
        "NOTBUSY", "No scripts in execution right now.")
    assert ex.execute(0, "SCRIPT", [b"foo"]) == Error(
        "ERR", "unknown subcommand 'foo'. Try SCRIPT HELP.")


@pytest.mark.parametrize("numkeys,expected", [
    ("-1", "Number of keys can't be negative"),
    ("2", "Number of keys can't be greater than number of args"),
    ("x", "value is not an integer or out of range")])
def test_numkeys(ex, numkeys, expected):
    assert ex.execute(0, "EVAL", [b"return 1", numkeys.encode(), b"a"]) == Error("ERR", expected)


def test_read_only_scripts_refuse_writes(ex):
    reply = ev(ex, "return redis.call('set','a','b')", name="EVAL_RO")
    assert _strip(reply) == Error("ERR", "Write commands are not allowed from read-only scripts.")
    assert _strip(ev(ex, "#!lua flags=no-writes\nreturn redis.pcall('del','a')")) == Error(
        "ERR", "Write commands are not allowed from read-only scripts.")
    assert ev(ex, "return redis.call('get', 'a')", name="EVAL_RO") is None
    assert ex.take_propagated() == []


def test_select_inside_a_script_changes_only_the_scripts_db(ex):
    assert ev(ex, "redis.call('select', 3); return redis.call('set', 'k', 'v')") == "OK"
    assert ex.execute(3, "GET", [b"k"]) == b"v" and ex.execute(0, "GET", [b"k"]) is None
    assert ex.take_propagated()[0][0] == 3


def test_no_state_leaks_between_scripts(ex):
    assert _strip(ev(ex, "_G.x = 1")) == Error("ERR", "user_script:1: Attempt to modify a "
                                                        "readonly table")
    assert _strip(ev(ex, "setmetatable(_G, nil)")).code == "ERR"
    assert _strip(ev(ex, "return x")).message.endswith("nonexistent global variable 'x'")


def _guard_after(ms):
    """A guard that kills the script once it ran ``ms`` milliseconds (SCRIPT KILL's effect)."""
    seen = []

    def guard(run, elapsed_ms):
        seen.append(run)
        return elapsed_ms >= ms
    return guard, seen


def test_a_killed_script_ends_and_pcall_cannot_swallow_it(ex):
    guard, seen = _guard_after(200)
    ex.script_guard = guard
    ex.execute(0, "SCRIPT", [b"FLUSH"])  # the guard is given to a new Lua state
    script = "local n = 0\nwhile true do pcall(function() while true do n = n + 1 end end) end"
    started = time.monotonic()
    reply = ev(ex, script)
    assert time.monotonic() - started < 5
    sha = hashlib.sha1(script.encode()).hexdigest()
    # Redis's text, with the line the script was on (script_lua.c luaMaskCountHook).
    assert reply == Error("ERR", "Script killed by user with SCRIPT KILL... script: "
                                 f"{sha}, on @user_script:2.")
    assert seen and not seen[0].wrote
    assert ev(ex, "return 1") == 1  # the state is usable afterwards


def test_no_guard_no_limit_as_redis(ex):
    """Without a guard nothing ends a script (Redis has no time limit): a long one finishes."""
    assert ex.script_guard is None
    assert ev(ex, "local n = 0 for i = 1, 3000000 do n = n + 1 end return n") == 3000000


def test_the_guard_sees_the_scripts_writes(ex):
    guard, seen = _guard_after(50)
    ex.script_guard = guard
    ex.execute(0, "SCRIPT", [b"FLUSH"])
    ev(ex, "redis.call('set','w','1') while true do end")
    assert seen[-1].wrote  # what SCRIPT KILL reads to answer UNKILLABLE


def test_cache_is_bounded(ex):
    ex.script_cache_max_scripts = 3
    for i in range(10):
        assert ev(ex, f"return {i}") == i
    assert ex.script_info()["number_of_cached_scripts"] == 3
    assert ex.script_info()["evicted_scripts"] == 7


def test_oom_only_before_the_first_write(ex):
    ex.execute(0, "SET", [b"big", b"x" * 10000])
    ex.maxmemory = 1
    assert _strip(ev(ex, "return redis.call('set','a','b')")) == Error(
        "OOM", "command not allowed when used memory > 'maxmemory'.")
    assert ev(ex, "redis.call('del','nothing'); return redis.call('set','a','b')") == "OK"


def test_aof_replay_of_script_effects_rebuilds_the_keyspace(ex):
    script = """
    for i = 1, 50 do
      redis.call('HSET', KEYS[1], 'f' .. i, i)
      redis.call('RPUSH', KEYS[2], i)
      if i % 7 == 0 then redis.call('LPOP', KEYS[2]) end
    end
    redis.call('SET', KEYS[3], 'v', 'PX', 100000)
    redis.call('INCRBY', KEYS[4], math.random(100))
    redis.call('SELECT', 2)
    redis.call('SADD', KEYS[1], ARGV[1], ARGV[2])
    return 1
    """
    keys = ["h", "l", "s", "n"]
    for _ in range(3):
        assert ev(ex, script, keys, ["a", "b"]) == 1
    entries = ex.take_propagated()
    record = aof_format.encode_entries(entries)  # one cycle: one CRC-checked record
    payload = decode_payload(record[8:])
    fresh = Executor(clock_ms=FakeClock(T0))
    fresh.loading = True
    for entry in payload:
        fresh.execute(entry[0], entry[1], entry[2:])
    fresh.loading = False
    for db in (0, 2):
        for key in (b"h", b"l", b"s", b"n"):
            assert _contents(fresh, db, key) == _contents(ex, db, key)
            assert fresh.execute(db, "PTTL", [key]) == ex.execute(db, "PTTL", [key])


def _contents(ex, db, key):
    kind = ex.execute(db, "TYPE", [key])
    read = {"string": ("GET",), "hash": ("HGETALL",), "list": ("LRANGE", b"0", b"-1"),
            "set": ("SMEMBERS",), "none": ("EXISTS",)}[kind]
    value = ex.execute(db, read[0], [key, *read[1:]])
    return kind, sorted(value) if kind in ("set", "hash") else value


def test_nested_errors_and_deep_tables_never_raise(ex):
    reply = ev(ex, "return {1, redis.pcall('incr', KEYS[1])}", ["s"])
    ev(ex, "return redis.call('set', 's', 'x')")
    reply = ev(ex, "return {1, redis.pcall('incr', 's')}")
    assert reply == [1, b"ERR value is not an integer or out of range"]
    reply = ev(ex, "local t = {} local c = t for i = 1, 5000 do c[1] = {} c = c[1] end return t")
    assert reply == Error("ERR", "reached lua stack limit")
    assert ev(ex, "local t = {} t[1] = t return t") == Error("ERR", "reached lua stack limit")
    assert ev(ex, "redis.setresp(3) return {map={[{}]=1}}") is not None


def test_the_lua_heap_limit_is_an_error_never_a_crash(ex):
    ex.script_max_memory = 16 * 1024 * 1024
    ex.execute(0, "SCRIPT", [b"FLUSH"])
    for _ in range(2):
        reply = ev(ex, "local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end")
        assert reply == Error("ERR", "Error running script: not enough memory")
        assert ev(ex, "return #ARGV[1]", argv=[b"x" * (20 << 20)]) == 20 << 20


def test_one_call_is_bounded_like_one_client_message(ex):
    from aofnode.protocol.wire import MAX_MESSAGE_BYTES
    reply = ev(ex, "local s = string.rep('x', ARGV[1] / 2 + 1) "
                   "return redis.pcall('MSET', 'a', s, 'b', s)", argv=[MAX_MESSAGE_BYTES])
    assert type(reply) is Error and "message size limit" in reply.message
    assert ex.take_propagated() == []


@pytest.mark.parametrize("script", [
    "getmetatable('').__index = nil",
    "getmetatable('').__index.rep = nil",
    "return redis.call.__class__",
    "return cjson.encode.__globals__",
    "return assert(loadstring(string.dump(function() return 1 end)))()",
])
def test_sandbox_escapes_are_errors(ex, script):
    assert type(ev(ex, script)) is Error
    assert ev(ex, "return ('ab'):rep(2)") == b"abab"  # and nothing changed for the next one


def test_a_runaway_coroutine_is_killed_too(ex):
    ex.script_guard = _guard_after(100)[0]
    ex.execute(0, "SCRIPT", [b"FLUSH"])
    reply = ev(ex, "local co = coroutine.wrap(function() while true do end end) co()")
    assert type(reply) is Error and "killed by user" in reply.message


class _Log:
    def info(self, *a, **k): pass
    warning = info


def test_a_torn_tail_applies_a_script_cycle_all_or_none(tmp_path):
    """Transfers between accounts by script, one log cycle each (one record): an AOF cut at
    every byte of the last record loads either the whole transfer or none of it."""
    ex = Executor(clock_ms=FakeClock(T0))
    transfer = ("local n = tonumber(ARGV[1]) "
                "redis.call('DECRBY', KEYS[1], n) redis.call('INCRBY', KEYS[2], n) "
                "redis.call('RPUSH', 'journal', KEYS[1] .. '>' .. KEYS[2]) return 1")
    records = [aof_format.encode_header()]
    for i in range(10):
        ex.execute(0, "SET", [b"acct%d" % i, b"100"])
    records.append(aof_format.encode_entries(ex.take_propagated()))
    for i in range(6):
        assert ev(ex, transfer, ["acct%d" % i, "acct%d" % (i + 3)], [7 * i + 1]) == 1
        records.append(aof_format.encode_entries(ex.take_propagated()))  # one cycle each
    whole = b"".join(records)
    last_start = len(whole) - len(records[-1])
    for cut in range(last_start, len(whole) + 1):
        path = tmp_path / f"cut{cut}.aof"
        path.write_bytes(whole[:cut])
        fresh = Executor(clock_ms=FakeClock(T0))
        fresh.loading = True
        aof_format.load(path, lambda entries, fresh=fresh: [fresh.execute(e[0], e[1], e[2:])
                                                            for e in entries], _Log())
        total = sum(int(fresh.execute(0, "GET", [b"acct%d" % i])) for i in range(10))
        assert total == 1000
        journal = fresh.execute(0, "LLEN", [b"journal"])
        assert journal == (6 if cut == len(whole) else 5)


@pytest.mark.parametrize("script", [
    "return _G",
    "local a = {}; setmetatable(a, {__index = function() foo() end}) return a",
    "local a = {}; setmetatable(a, {__index = function() redis.call('set', 'x', '1') end}) return a",
])
def test_a_reply_is_read_raw_as_redis_does(ex, script):
    """Redis reads a script's reply with lua_rawget: no __index runs (nor raises, nor writes)."""
    assert ev(ex, script) == []
    assert ex.execute(0, "GET", [b"x"]) is None


@pytest.mark.parametrize("script", ["setmetatable(_G, {})",
                                    "local g = getmetatable(_G)\ng.__index = {}"])
def test_globals_metatable_tricks_are_refused(ex, script):
    assert "Attempt to modify a readonly table" in ev(ex, script).message


def test_shebang_scripts_and_oom(ex):
    """Redis 7.0: a script with a shebang that may write is refused before it runs while memory
    is full; allow-oom lets its writes through; no-writes scripts run."""
    ex.execute(0, "SET", [b"x", b"123"])
    ex.maxmemory = 1
    oom = Error("OOM", "command not allowed when used memory > 'maxmemory'.")
    assert ev(ex, "#!lua flags=\nreturn 1") == oom
    assert ev(ex, "#!lua flags=allow-oom\nredis.call('set', 'x', 1) return 1") == 1
    assert ev(ex, "#!lua flags=no-writes\nreturn redis.call('get', 'x')") == b"1"
    assert _strip(ev(ex, "redis.call('set', 'x', 2) return 1")) == oom  # without a shebang
