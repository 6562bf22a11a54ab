"""Introspection against redis-server itself, and through redis-py against a real node.

INFO's field names, OBJECT ENCODING across sizes and CONFIG GET patterns are compared with
redis-server 7.0 (skipped without it). CONFIG goes through the ZeroMQ front: the RESP front
answers CONFIG itself until it forwards it to the log actor (docs/limits.md)."""
from __future__ import annotations

import shutil
import socket

import pytest
import redis

from aofnode.bench.resp import ReplyParser, encode_command
from tests.nodeproc import RedisServer
from tests.integration.test_resp_differential import _reply
from tests.integration.test_resp_front import _start

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")

# The sections clients read. errorstats differ by which errors were made, so it is left out.
SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
            "keyspace")
# CONFIG settings aofnode has that Redis has not (aofnode's serve options).
AOFNODE_ONLY = {"aof-rewrite-diff-limit", "cycle-max-commands", "cycle-max-ms",
                "client-output-limit", "channel-output-limit", "watchdog-timeout"}


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    client = redis.Redis(port=server.port, socket_timeout=10)
    yield client
    client.close()
    server.stop()


@pytest.fixture
def node(make_node):
    node, port = _start(make_node, "--enable-debug-command", "yes", appendfsync="everysec")
    client = redis.Redis(port=port, socket_timeout=10)
    yield node, client
    client.close()


def _populate(c):
    c.flushall()
    c.set("k", "v")
    c.setex("t", 100, "v")
    c.hset("h", "f", "v")
    c.get("nope")


@needs_redis
def test_info_has_every_field_redis_has_in_the_sections_clients_read(node, redis_client):
    _node, aof = node
    for c in (aof, redis_client):
        _populate(c)
    for section in SECTIONS:
        missing = set(redis_client.info(section)) - set(aof.info(section))
        assert missing == set(), f"INFO {section} lacks {sorted(missing)}"


def _encodings(c) -> list:
    c.flushall()
    c.mset({"int": "12345", "neg": "-1", "big": "12345678901234567890", "short": "x" * 44,
            "long": "x" * 45})
    c.hset("h512", mapping={f"f{i}": "v" * 64 for i in range(512)})
    c.hset("h513", mapping={f"f{i}": "v" for i in range(513)})
    c.hset("hlong", "f", "v" * 65)
    c.rpush("l1", "a")
    c.rpush("l1000", *["x" * 100] * 1000)
    c.sadd("ints512", *range(512))
    c.sadd("ints513", *range(513))
    c.sadd("strs", "a")
    c.zadd("z128", {f"m{i}": i for i in range(128)})
    c.zadd("z129", {f"m{i}": i for i in range(129)})
    c.zadd("zlong", {"m" * 65: 1})
    keys = ["int", "neg", "big", "short", "long", "h512", "h513", "hlong", "l1", "l1000",
            "ints512", "ints513", "strs", "z128", "z129", "zlong", "nope"]
    return [(k, c.object("encoding", k), c.object("refcount", k) if k != "nope" else None)
            for k in keys]


@needs_redis
def test_object_encoding_across_sizes_is_redis_servers(node, redis_client):
    _node, aof = node
    assert _encodings(aof) == _encodings(redis_client)


@needs_redis
def test_config_get_patterns_name_what_redis_names(node, redis_client):
    n, _aof = node
    patterns = ["maxmemory*", "*fsync*", "slowlog-*", "auto-aof-*", "latency-monitor-threshold",
                "appendonly", "save", "databases", "hz", "*-max-*", "nothing*",
                "key-load-delay", "KEY-LOAD-DELAY", "key-load-*", "*load-delay", "key-load-dela?"]
    same_value = {"key-load-delay", "appendfsync", "slowlog-log-slower-than", "slowlog-max-len",
                  "latency-monitor-threshold", "auto-aof-rewrite-percentage",
                  "auto-aof-rewrite-min-size", "appendonly", "databases", "hz", "save",
                  "hash-max-listpack-entries", "hash-max-listpack-value", "set-max-intset-entries",
                  "zset-max-listpack-entries", "zset-max-listpack-value"}
    with n.client() as c:
        for pattern in patterns:
            ours = c.execute("CONFIG", "GET", pattern)
            theirs = redis_client.config_get(pattern)
            names = set(ours) - AOFNODE_ONLY
            assert names <= set(theirs), pattern
            assert ("key-load-delay" in ours) == ("key-load-delay" in theirs), pattern  # hidden
            for name in names & same_value:
                assert ours[name].decode() == theirs[name], name
        for client_set, client_get in ((lambda k, v: c.execute("CONFIG", "SET", k, v),
                                        lambda k: c.execute("CONFIG", "GET", k)[k].decode()),
                                       (redis_client.config_set,
                                        lambda k: redis_client.config_get(k)[k])):
            client_set("maxmemory", "100mb")
            assert client_get("maxmemory") == "104857600"
            client_set("maxmemory", "0")


def test_redis_py_reads_introspection_from_a_node(node):
    _node, r = node
    r.set("k", "v" * 100)
    info = r.info()
    assert info["redis_version"] == "7.0.15" and info["role"] == "master"
    assert info["connected_clients"] >= 1 and "aofnode_version" in info
    assert r.info("persistence")["aof_enabled"] == 1
    assert r.object("encoding", "k") == b"raw"
    assert r.memory_usage("k") > 100
    # Under load any command may pass the 10 ms threshold, so start from an empty log and look
    # for the one command that must be there.
    assert r.slowlog_reset() and r.slowlog_len() in (0, 1)
    r.execute_command("DEBUG", "SLEEP", "0.02")  # over slowlog-log-slower-than's 10 ms
    [entry] = [e for e in r.slowlog_get() if e["command"].startswith(b"debug")]
    assert entry["command"] == b"debug SLEEP 0.02" and entry["duration"] >= 19_000
    assert r.execute_command("LATENCY", "LATEST") == []
    assert len(r.execute_command("DEBUG", "DIGEST")) == 40
    assert r.execute_command("DEBUG", "RELOAD")
    with pytest.raises(redis.ResponseError):
        r.hget("k", "f")
    assert r.info("errorstats")["errorstat_WRONGTYPE"] == {"count": 1}


def test_redis_py_config_set_reaches_the_log_actor(node):
    _node, r = node
    assert r.config_set("slowlog-log-slower-than", 0)
    r.get("k")
    assert r.slowlog_len() >= 1
    assert r.config_get("appendonly") == {"appendonly": "yes"}
    assert r.config_get("requirepass") == {}  # never revealed, whatever the pattern
    assert "requirepass" not in r.config_get("*")


# Commands answered by the RESP front itself (AUTH, CLIENT, MULTI/EXEC, refusals) and by the log
# actor, counted alike in commandstats and errorstats (usec aside).
STATS_SCRIPT = [
    ("AUTH", "k"), ("SET", "k"), ("SET", "a", "b"), ("MULTI",), ("SET", "x"), ("EXEC",),
    ("MULTI",), ("SET", "a", "b"), ("AUTH", "a"), ("EXEC",), ("EXEC",), ("DISCARD",),
    ("CLIENT", "ID"), ("CLIENT", "NOSUCH"), ("MULTI", "x"), ("GET", "a"), ("INCR", "a"),
    ("LPUSH", "l", "a"), ("BLPOP", "l", "0"), ("GEOADD", "g", "0", "0", "m"),
    ("GEOADD", "a", "0", "0", "m"), ("NOSUCHCOMMAND",),
]


def _stats_after_script(port: int, script: list = STATS_SCRIPT) -> tuple[dict, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        parser = ReplyParser()
        for command in [("CONFIG", "RESETSTAT"), *script]:
            _reply(sock, parser, command)
        sock.sendall(encode_command("INFO", "commandstats"))
        commands = _info_fields(_read_bulk(sock, parser))
        sock.sendall(encode_command("INFO", "errorstats"))
        errors = _info_fields(_read_bulk(sock, parser))
    counted = {name: {k: v for k, v in fields.items()
                      if k in ("calls", "rejected_calls", "failed_calls")}
               for name, fields in commands.items() if name != "cmdstat_config|resetstat"}
    return counted, errors


def _read_bulk(sock, parser) -> bytes:
    while True:
        replies = parser.replies()
        if replies:
            return replies[0]
        data = sock.recv(65536)
        assert data
        parser.feed(data)


def _info_fields(text: bytes) -> dict:
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(":")
            out[name] = dict(kv.split("=") for kv in value.split(","))
    return out


@needs_redis
def test_commandstats_and_errorstats_count_as_redis_counts(make_node, redis_client):
    _node, port = _start(make_node, appendfsync="everysec")
    have = _stats_after_script(port)
    want = _stats_after_script(redis_client.connection_pool.connection_kwargs["port"])
    assert {"cmdstat_auth", "cmdstat_exec", "cmdstat_multi", "cmdstat_set", "cmdstat_client|id",
            "cmdstat_blpop", "cmdstat_geoadd"} <= set(have[0])
    assert have[0]["cmdstat_set"] == {"calls": "2", "rejected_calls": "2", "failed_calls": "0"}
    assert have == want


# The commands a script runs count as their own calls (failed ones too), as in Redis's call().
# Errorstats are left out: which of a script's errors Redis counts is docs/resp.md's.
SCRIPT_STATS_SCRIPT = [
    ("SET", "mykey", "myval"),
    ("EVAL", "redis.call('set', KEYS[1], 0) redis.call('expire', KEYS[1], 0) "
             "redis.call('geoadd', KEYS[1], 0, 0, 'bar') return redis.pcall('incr', 'mykey')",
     "1", "mykey"),
    ("SET", "s", "x"), ("EVAL", "return redis.pcall('incr', KEYS[1])", "1", "s"),
]


@needs_redis
def test_script_commands_count_in_commandstats_as_redis_counts(make_node, redis_client):
    _node, port = _start(make_node, appendfsync="everysec")
    have = _stats_after_script(port, SCRIPT_STATS_SCRIPT)
    want = _stats_after_script(redis_client.connection_pool.connection_kwargs["port"],
                               SCRIPT_STATS_SCRIPT)
    assert have[0]["cmdstat_set"]["calls"] == "3"
    assert have[0]["cmdstat_incr"] == {"calls": "2", "rejected_calls": "0", "failed_calls": "2"}
    assert have[0] == want[0]


def test_save_fsyncs_the_aof_before_its_reply(make_node):
    # aofnode's dataset on disk is the AOF: SAVE answers once it is fdatasync'ed, even under
    # appendfsync no, with the write pipelined before it in the same cycle.
    _node, port = _start(make_node, appendfsync="no")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        parser = ReplyParser()
        before = _info_fields_flat(_reply_bulk(sock, parser, ("INFO", "persistence")))
        sock.sendall(encode_command("SET", "k", "v") + encode_command("SAVE"))
        replies: list = []
        while len(replies) < 2:
            data = sock.recv(65536)
            assert data
            parser.feed(data)
            replies += parser.replies()
        assert [r.decode() if isinstance(r, bytes) else str(r) for r in replies] == ["OK", "OK"]
        after = _info_fields_flat(_reply_bulk(sock, parser, ("INFO", "persistence")))
    assert int(after["aof_fsyncs"]) >= int(before["aof_fsyncs"]) + 2
    assert int(after["rdb_last_save_time"]) >= int(before["rdb_last_save_time"])


def _reply_bulk(sock, parser, command) -> bytes:
    sock.sendall(encode_command(*command))
    return _read_bulk(sock, parser)


def _info_fields_flat(text: bytes) -> dict:
    return dict(line.split(":", 1) for line in text.decode().splitlines()
                if line and not line.startswith("#"))
