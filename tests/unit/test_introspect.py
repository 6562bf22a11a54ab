"""Introspection in process: OBJECT, MEMORY and the digest on the executor (tables), and the log
actor's CONFIG, SLOWLOG, LATENCY, DEBUG, error counts and INFO fields through its real channel
(tests/unit/test_log_actor.py's Harness)."""
from __future__ import annotations

import dataclasses

import pytest

from aofnode.protocol.errors import Error
from aofnode.store.digest import ZERO_DIGEST, keyspace_digest
from aofnode.store.executor import Executor
from aofnode.store.memory import TTL_OVERHEAD, entry_size
from aofnode.store.objects import encoding_of
from aofnode.store import listcore
from tests.unit.test_log_actor import Harness


def run(ex, *cmd, db=0):
    return ex.execute(db, cmd[0], [a if type(a) is bytes else str(a).encode() for a in cmd[1:]])


# -- OBJECT ENCODING ---------------------------------------------------------------------------

def _hash(n, size=1):
    return {b"f%d" % i: b"v" * size for i in range(n)}


def _set(members):
    return (dict.fromkeys(members),)


def _zset(members):
    scores = {m: 1.0 for m in members}
    return (scores, sorted((s, m) for m, s in scores.items()))


ENCODINGS = [
    (b"123", "int"), (b"-9223372036854775808", "int"), (b"9223372036854775808", "embstr"),
    (b"01", "embstr"), (b"+1", "embstr"), (b" 1", "embstr"), (b"x" * 44, "embstr"),
    (b"x" * 45, "raw"), (b"1" * 21, "embstr"),
    (_hash(512, 64), "listpack"), (_hash(513), "hashtable"), (_hash(1, 65), "hashtable"),
    (listcore.new_list([b"a"]), "quicklist"), (listcore.new_list([b"a"] * 1000), "quicklist"),
    (_set([b"1", b"-2"]), "intset"), (_set([str(i).encode() for i in range(513)]), "hashtable"),
    (_set([b"a"]), "hashtable"), (_set([b"01"]), "hashtable"),
    (_zset([b"a" * 64]), "listpack"), (_zset([b"a" * 65]), "skiplist"),
    (_zset([b"m%d" % i for i in range(129)]), "skiplist"),
]


@pytest.mark.parametrize("value,expected", ENCODINGS)
def test_encoding_is_redis_70s_for_the_value(value, expected):
    assert encoding_of(value) == expected


def test_object_subcommands_and_errors():
    ex = Executor()
    run(ex, "SET", "n", "7")
    run(ex, "SET", "big", "70000")
    assert run(ex, "OBJECT", "ENCODING", "n") == b"int"
    assert run(ex, "OBJECT", "ENCODING", "nope") is None
    assert run(ex, "OBJECT", "REFCOUNT", "n") == 2147483647
    assert run(ex, "OBJECT", "REFCOUNT", "big") == 1
    assert run(ex, "OBJECT", "IDLETIME", "n") == 0
    freq = run(ex, "OBJECT", "FREQ", "n")
    assert type(freq) is Error and freq.message.startswith("An LFU maxmemory policy is not selected")
    assert run(ex, "OBJECT", "nope").message == "unknown subcommand 'nope'. Try OBJECT HELP."
    assert run(ex, "OBJECT", "encoding").message == \
        "wrong number of arguments for 'object|encoding' command"
    assert run(ex, "OBJECT", "HELP")[0].startswith("OBJECT <subcommand>")


def test_memory_usage_is_the_size_model():
    ex = Executor()
    run(ex, "HSET", "h", "f", "v", "g", "w")
    run(ex, "SET", "s", "v", "EX", "100")
    assert run(ex, "MEMORY", "USAGE", "h") == entry_size(b"h", {b"f": b"v", b"g": b"w"})
    assert run(ex, "MEMORY", "USAGE", "s", "SAMPLES", "0") == entry_size(b"s", b"v") + TTL_OVERHEAD
    assert run(ex, "MEMORY", "USAGE", "nope") is None
    assert run(ex, "MEMORY", "USAGE", "s", "SAMPLES").message == "syntax error"
    assert run(ex, "MEMORY", "USAGE", "s", "SAMPLES", "-1").code == "ERR"
    stats = run(ex, "MEMORY", "STATS")
    assert stats[stats.index(b"keys.count") + 1] == 2


def test_memory_usage_adds_the_access_clock_under_allkeys_lru():
    ex = Executor()
    ex.maxmemory, ex.maxmemory_policy = 1 << 30, "allkeys-lru"
    run(ex, "SET", "s", "v")
    assert run(ex, "MEMORY", "USAGE", "s") == ex.keyspace.used_memory


# -- digest ------------------------------------------------------------------------------------

def _fill(ex, order):
    for i in order:
        run(ex, "SET", f"s{i}", i)
        run(ex, "HSET", "h", f"f{i}", i)
        run(ex, "SADD", "set", i)
        run(ex, "ZADD", "z", i / 3, f"m{i}")
    run(ex, "RPUSH", "l", "a", "b")
    run(ex, "SET", "t", "x", "PXAT", "99999999999999")


def test_digest_is_order_independent_and_sees_every_change():
    a, b = Executor(), Executor()
    assert keyspace_digest(a.keyspace) == ZERO_DIGEST
    _fill(a, range(50))
    _fill(b, reversed(range(50)))
    assert keyspace_digest(a.keyspace) == keyspace_digest(b.keyspace) != ZERO_DIGEST
    for change in (("LPUSH", "l", "c"), ("PEXPIREAT", "t", "99999999999998"), ("SELECT_MOVE",)):
        before = keyspace_digest(b.keyspace)
        if change[0] == "SELECT_MOVE":
            run(b, "MOVE", "s1", "2")
        else:
            run(b, *change)
        assert keyspace_digest(b.keyspace) != before, change


# -- the log actor -----------------------------------------------------------------------------

@pytest.fixture
def actor(tmp_path):
    h = Harness(tmp_path)
    h.actor.config = dataclasses.replace(h.actor.config, enable_debug_command="yes")
    yield h
    if h.actor.writer.fd >= 0:
        h.stop()


def ok(reply):
    assert reply[0] == 0, reply
    return reply[1]


def err(reply):
    assert reply[0] == 1, reply
    return reply[2]


def test_config_get_patterns_and_set(actor):
    got = ok(actor.call(("CONFIG", "GET", "maxmemory*", "appendfsync")))
    assert got == {"maxmemory": b"0", "maxmemory-policy": b"noeviction", "maxmemory-samples": b"5",
                   "maxmemory-clients": b"0", "appendfsync": b"always"}
    assert ok(actor.call(("CONFIG", "GET", "nothing*"))) == {}
    assert ok(actor.call(("CONFIG", "SET", "maxmemory", "1kb", "maxmemory-policy", "allkeys-lru",
                          "appendfsync", "everysec", "auto-aof-rewrite-min-size", "1mb",
                          "auto-aof-rewrite-percentage", "50", "cycle-max-commands", "100"))) == "OK"
    a = actor.actor
    assert (a.executor.maxmemory, a.executor.maxmemory_policy) == (1024, "allkeys-lru")
    assert a.writer.policy == "everysec" and a.config.appendfsync == "everysec"
    assert (a.rewriter.auto_min_size, a.rewriter.auto_percentage) == (1 << 20, 50)
    assert a.config.cycle_max_commands == 100 and a.reporter.config.maxmemory == 1024
    info = ok(actor.call(("INFO", "memory")))["memory"]
    assert info["maxmemory"] == 1024 and info["maxmemory_policy"] == "allkeys-lru"


CONFIG_ERRORS = [
    (("CONFIG", "SET", "nope", "1"), "Unknown option or number of arguments for CONFIG SET - 'nope'"),
    (("CONFIG", "SET", "maxmemory", "lots"),
     "CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value"),
    (("CONFIG", "SET", "appendonly", "no"),
     "CONFIG SET failed (possibly related to argument 'appendonly') - can't set immutable config"),
    (("CONFIG", "SET", "maxmemory", "1", "maxmemory", "2"),
     "CONFIG SET failed (possibly related to argument 'maxmemory') - duplicate parameter"),
    (("CONFIG", "SET", "maxmemory-policy", "lfu"),
     "CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be "
     "one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, "
     "allkeys-lru, allkeys-lfu, allkeys-random, noeviction"),
    (("CONFIG", "SET", "maxmemory-samples", "0"),
     "CONFIG SET failed (possibly related to argument 'maxmemory-samples') - argument must be "
     "between 1 and 2147483647 inclusive"),
    (("CONFIG", "SET", "lfu-log-factor", "-1"),
     "CONFIG SET failed (possibly related to argument 'lfu-log-factor') - argument must be "
     "between 0 and 2147483647 inclusive"),
    (("CONFIG", "SET", "slowlog-max-len", "-1"),
     "CONFIG SET failed (possibly related to argument 'slowlog-max-len') - argument must be "
     "between 0 and 9223372036854775807 inclusive"),
    (("CONFIG", "SET", "maxmemory"), "wrong number of arguments for 'config|set' command"),
    (("CONFIG", "GET"), "wrong number of arguments for 'config|get' command"),
    (("CONFIG", "NOPE"), "unknown subcommand 'NOPE'. Try CONFIG HELP."),
    (("CONFIG", "REWRITE"), "The server is running without a config file"),
    # read-only, but a wrong value gets Redis's reason first
    (("CONFIG", "SET", "maxmemory-clients", "200%"), "CONFIG SET failed (possibly related to "
     "argument 'maxmemory-clients') - percentage argument must be less or equal to 100"),
    (("CONFIG", "SET", "maxmemory-clients", "10%"), "CONFIG SET failed (possibly related to "
     "argument 'maxmemory-clients') - can't set immutable config"),
    (("CONFIG", "SET", "latency-tracking", "maybe"), "CONFIG SET failed (possibly related to "
     "argument 'latency-tracking') - argument must be 'yes' or 'no'"),
    (("CONFIG", "SET", "latency-tracking-info-percentiles", "10.0 50.0 101.0"),
     "CONFIG SET failed (possibly related to argument 'latency-tracking-info-percentiles') - "
     "latency-tracking-info-percentiles parameter should be between 0.0 and 100.0"),
]


def test_config_lfu_and_samples_settings_apply_and_show_in_info(actor):
    got = ok(actor.call(("CONFIG", "GET", "lfu-*", "maxmemory-samples")))
    assert got == {"lfu-log-factor": b"10", "lfu-decay-time": b"1", "maxmemory-samples": b"5"}
    ok(actor.call(("CONFIG", "SET", "lfu-log-factor", "3", "lfu-decay-time", "0",
                   "maxmemory-samples", "10", "maxmemory-policy", "volatile-lfu")))
    a = actor.actor
    ks = a.executor.keyspace
    assert (ks.lfu_log_factor, ks.lfu_decay_time, a.executor.maxmemory_samples, ks.lfu) == \
        (3, 0, 10, True)
    assert (a.config.lfu_log_factor, a.config.lfu_decay_time, a.config.maxmemory_samples) == \
        (3, 0, 10)
    memory = ok(actor.call(("INFO", "memory")))["memory"]
    assert (memory["lfu_log_factor"], memory["lfu_decay_time"], memory["maxmemory_samples"]) == \
        (3, 0, 10)


def test_config_errors_and_all_or_nothing(actor):
    for request, message in CONFIG_ERRORS:
        assert err(actor.call(request)) == message, request
    # A read-only setting set to the value it has: nothing changes, OK (Redis's CONFIG sanity).
    everything = ok(actor.call(("CONFIG", "GET", "*")))
    pairs = [x for k, v in everything.items() for x in (k, v)]
    assert ok(actor.call(("CONFIG", "SET", *pairs))) == "OK"
    assert ok(actor.call(("CONFIG", "GET", "*"))) == everything
    assert ok(actor.call(("CONFIG", "SET", "maxmemory-clients", "0%"))) == "OK"
    # The second value is invalid: the first is not applied either.
    err(actor.call(("CONFIG", "SET", "maxmemory", "5", "slowlog-max-len", "x")))
    assert actor.actor.executor.maxmemory == 0


def test_errors_are_counted_by_prefix_and_resetstat_clears_them(actor):
    actor.call(("SET", "s", "1"))
    err(actor.call(("HGET", "s", "f")))
    err(actor.call(("INCRBY", "s", "x")))
    err(actor.call(("OBJECT", "nope")))
    info = ok(actor.call(("INFO", "errorstats", "stats", "commandstats")))
    assert info["errorstats"] == {"errorstat_ERR": {"count": 2}, "errorstat_WRONGTYPE": {"count": 1}}
    assert info["stats"]["total_error_replies"] == 3
    assert info["commandstats"]["cmdstat_hget"] == {
        "calls": 1, "usec": info["commandstats"]["cmdstat_hget"]["usec"],
        "usec_per_call": info["commandstats"]["cmdstat_hget"]["usec_per_call"],
        "rejected_calls": 0, "failed_calls": 1}
    assert "cmdstat_object" in info["commandstats"]  # an unknown subcommand adds no entry
    assert ok(actor.call(("CONFIG", "RESETSTAT"))) == "OK"
    info = ok(actor.call(("INFO", "errorstats", "stats", "commandstats")))
    assert info["errorstats"] == {} and info["stats"]["total_error_replies"] == 0
    assert info["stats"]["total_commands_processed"] == 1  # CONFIG RESETSTAT itself
    assert list(info["commandstats"]) == ["cmdstat_config|resetstat"]


def test_info_has_redis_fields_and_keeps_aofnodes(actor):
    info = ok(actor.call(("INFO",)))
    assert list(info)[:5] == ["server", "clients", "memory", "persistence", "stats"]
    assert "commandstats" not in info  # only when asked for, as Redis
    server = info["server"]
    assert server["redis_version"] == "7.0.15" and "aofnode_version" in server
    assert info["replication"]["role"] == "master"
    assert info["clients"]["connected_clients"] >= 1
    p = info["persistence"]
    for field in ("aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled",
                  "aof_last_rewrite_time_sec", "aof_current_size", "aof_base_size",
                  "aof_last_bgrewrite_status", "aof_last_write_status", "appendfsync",
                  "aof_fsyncs", "closer_pending_jobs"):
        assert field in p, field
    assert "cycle_max_commands" in server and "waiting_messages" in info["clients"]
    assert "used_cpu_user" in info["cpu"]
    assert set(ok(actor.call(("INFO", "everything")))) >= {"commandstats", "errorstats", "keyspace"}


def test_slowlog(actor):
    assert ok(actor.call(("SLOWLOG", "LEN"))) == 0
    ok(actor.call(("CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "3")))
    actor.call(("SET", "k", "v" * 300))
    for _ in range(4):
        actor.call(("GET", "k"))
    entries = ok(actor.call(("SLOWLOG", "GET", "-1")))
    assert len(entries) == 3 and entries[0][3] == [b"get", b"k"]
    assert entries[0][0] > entries[1][0] and entries[0][4:] == [b"", b""]
    ok(actor.call(("CONFIG", "SET", "slowlog-max-len", "128")))
    actor.call(("SET", "k", "v" * 300, *["x"] * 40))
    long_entry = ok(actor.call(("SLOWLOG", "GET", "1")))[0][3]
    assert len(long_entry) == 32 and long_entry[-1] == b"... (12 more arguments)"
    assert long_entry[2] == b"v" * 128 + b"... (172 more bytes)"
    assert ok(actor.call(("SLOWLOG", "RESET"))) == "OK"
    assert ok(actor.call(("SLOWLOG", "LEN"))) == 1  # the RESET itself, at threshold 0
    assert err(actor.call(("SLOWLOG", "GET", "-2"))) == "count should be greater than or equal to -1"


def test_latency_monitor(actor):
    assert ok(actor.call(("LATENCY", "LATEST"))) == []
    ok(actor.call(("CONFIG", "SET", "latency-monitor-threshold", "1")))
    ok(actor.call(("DEBUG", "SLEEP", "0.02")))
    [[event, ts, latest, worst]] = ok(actor.call(("LATENCY", "LATEST")))
    assert event == b"command" and latest >= 19 and worst >= latest and ts > 0
    assert len(ok(actor.call(("LATENCY", "HISTORY", "command")))) == 1
    assert ok(actor.call(("LATENCY", "RESET"))) == 1
    assert ok(actor.call(("LATENCY", "LATEST"))) == []


def test_debug_is_off_by_default(tmp_path):
    h = Harness(tmp_path)
    try:
        assert err(h.call(("DEBUG", "DIGEST"))).startswith("DEBUG command not allowed")
    finally:
        h.stop()


def test_debug_subcommands(actor):
    assert ok(actor.call(("DEBUG", "DIGEST"))) == ZERO_DIGEST
    actor.call(("SET", "a", "1"), ("HSET", "h", "f", "v"), ("SET", "t", "x", "EX", "100"))
    digest = ok(actor.call(("DEBUG", "DIGEST")))
    assert digest != ZERO_DIGEST
    assert ok(actor.call(("DEBUG", "RELOAD"))) == "OK"
    # RELOAD in the same message as writes: they reach the AOF before the check.
    assert actor.call(("SET", "b", "2"), ("DEBUG", "RELOAD")) == [[0, "OK"], [0, "OK"]]
    values = ok(actor.call(("DEBUG", "DIGEST-VALUE", "a", "nope")))
    assert len(values[0]) == 40 and values[1] == ZERO_DIGEST
    assert "encoding:int" in ok(actor.call(("DEBUG", "OBJECT", "a")))
    assert err(actor.call(("DEBUG", "OBJECT", "nope"))) == "no such key"


def test_debug_object_shows_the_access_stamp_as_redis_does(actor):
    ok(actor.call(("SET", "a", "1")))
    ks = actor.actor.executor.keyspace
    ks.set_access_stamp(0, b"a", ks.lru_clock - 30)  # as RESTORE IDLETIME 30 leaves it
    line = ok(actor.call(("DEBUG", "OBJECT", "a")))
    assert f" lru:{(ks.lru_clock - 30) & ((1 << 24) - 1)} lru_seconds_idle:30" in line
    assert ok(actor.call(("OBJECT", "IDLETIME", "a"))) == 30  # neither touched it
    ok(actor.call(("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu")))
    ok(actor.call(("RESTORE", "b", "0", ok(actor.call(("DUMP", "a"))), "FREQ", "200")))
    minute = ks.lru_clock // 60
    line = ok(actor.call(("DEBUG", "OBJECT", "b")))
    assert f" lru:{(minute & 0xFFFF) << 8 | 200} lru_seconds_idle:" in line
    assert ok(actor.call(("DEBUG", "SET-ACTIVE-EXPIRE", "0"))) == "OK"
    assert actor.actor.executor.active_expire_cycle(5.0) == 0
    assert ok(actor.call(("DEBUG", "PROTOCOL", "map"))) == [0, False, 1, True, 2, False]
    assert err(actor.call(("DEBUG", "JMAP"))).endswith("not supported by aofnode")
    assert err(actor.call(("DEBUG", "NOPE"))) == "unknown subcommand 'NOPE'. Try DEBUG HELP."


def test_debug_local_mode_needs_every_endpoint_local(actor):
    a = actor.actor
    a.config = dataclasses.replace(a.config, enable_debug_command="local")
    assert ok(actor.call(("DEBUG", "DIGEST"))) == ZERO_DIGEST  # tcp://127.0.0.1 only
    a.config = dataclasses.replace(a.config, resp_bind="0.0.0.0:6380")
    assert err(actor.call(("DEBUG", "DIGEST"))).startswith("DEBUG command not allowed")


def test_serve_option_defaults_to_the_environment(monkeypatch):
    from aofnode.tools import cli
    assert cli._parser().parse_args(["serve"]).enable_debug_command == "no"
    monkeypatch.setenv("AOFNODE_ENABLE_DEBUG_COMMAND", "yes")
    assert cli._parser().parse_args(["serve"]).enable_debug_command == "yes"
    args = cli._parser().parse_args(["serve", "--enable-debug-command", "local"])
    assert args.enable_debug_command == "local"


def test_front_error_counts_are_added_and_reset(actor):
    from aofnode.runtime import messages as m

    def front_sends(counters):
        actor.front.send(m.Stats(counters))
        ok(actor.call(("PING",)))  # the same channel, in order: the Stats came first

    front_sends({"errorstat_ERR": 5, "connected_clients": 3, "max_clients": 900})
    err(actor.call(("INCRBY", "k", "x")))
    info = ok(actor.call(("INFO", "errorstats", "stats", "clients")))
    assert info["errorstats"] == {"errorstat_ERR": {"count": 6}}
    assert info["stats"]["total_error_replies"] == 6
    assert info["clients"]["connected_clients"] == 3 and info["clients"]["maxclients"] == 900
    assert ok(actor.call(("CONFIG", "GET", "maxclients"))) == {"maxclients": b"900"}
    ok(actor.call(("CONFIG", "RESETSTAT")))
    assert ok(actor.call(("INFO", "errorstats")))["errorstats"] == {}
    front_sends({"errorstat_ERR": 7})
    info = ok(actor.call(("INFO", "errorstats", "stats")))
    assert info["errorstats"] == {"errorstat_ERR": {"count": 2}}
    assert info["stats"]["total_error_replies"] == 2


def test_key_load_delay_is_hidden_from_patterns_and_settable(actor):
    """Redis's HIDDEN_CONFIG: named exactly it is there, no pattern shows it."""
    assert ok(actor.call(("CONFIG", "GET", "key-load-delay"))) == {"key-load-delay": b"0"}
    assert ok(actor.call(("CONFIG", "GET", "KEY-LOAD-DELAY"))) == {"KEY-LOAD-DELAY": b"0"}  # as asked
    for pattern in ("*", "key-*", "*delay", "key-load-dela?", "key-load-dela[y]"):
        assert "key-load-delay" not in ok(actor.call(("CONFIG", "GET", pattern))), pattern
    assert ok(actor.call(("CONFIG", "SET", "key-load-delay", "-50"))) == "OK"
    assert actor.actor.config.key_load_delay == -50
    assert err(actor.call(("CONFIG", "SET", "key-load-delay", "2147483648"))) == (
        "CONFIG SET failed (possibly related to argument 'key-load-delay') - argument must be "
        "between -2147483648 and 2147483647 inclusive")
    assert ok(actor.call(("CONFIG", "GET", "key-load-delay", "maxmemory"))) == {
        "key-load-delay": b"-50", "maxmemory": b"0"}
