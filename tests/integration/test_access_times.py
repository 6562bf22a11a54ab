"""Per-key access times at a real node: OBJECT IDLETIME as time passes, the commands that do and
do not touch a key, RESTORE's IDLETIME and FREQ, access times not in the AOF, allkeys-lfu keeping
the hot keys; and the replies and error texts beside redis-server (skipped without one)."""
from __future__ import annotations

import redis

from aofnode.store.rdb import dump_value
from tests.integration.test_resp_differential import differing_replies
from tests.integration.test_resp_front import _start, _wait_resp
from tests.nodeproc import wait_for


def test_idletime_grows_and_only_touching_commands_reset_it(make_node):
    node = make_node("everysec").start()
    with node.client() as c:
        c.execute("SET", "foo", "bar")
        assert c.execute("OBJECT", "IDLETIME", "foo") in (0, 1)
        # OBJECT itself does not touch, so polling with it lets the time run.
        wait_for(lambda: c.execute("OBJECT", "IDLETIME", "foo") >= 2, timeout=10,
                 what="OBJECT IDLETIME >= 2")
        assert c.execute_many([("TTL", "foo"), ("PTTL", "foo"), ("TYPE", "foo"),
                               ("EXISTS", "foo"), ("SCAN", "0")])[:4] == [-1, -1, "string", 1]
        assert c.execute("OBJECT", "IDLETIME", "foo") >= 2
        assert c.execute("TOUCH", "foo", "nope") == 1
        assert c.execute("OBJECT", "IDLETIME", "foo") < 2
        c.execute("SET", "bar", "x")
        wait_for(lambda: c.execute("OBJECT", "IDLETIME", "bar") >= 2, timeout=10,
                 what="OBJECT IDLETIME >= 2")
        assert c.execute("GET", "bar") == b"x"
        assert c.execute("OBJECT", "IDLETIME", "bar") < 2


def test_restore_sets_idletime_and_freq_and_the_aof_keeps_neither(make_node):
    node = make_node("always").start()
    payload = dump_value(b"bar")
    with node.client() as c:
        assert c.execute("RESTORE", "old", "0", payload, "IDLETIME", "1000") == "OK"
        assert 1000 <= c.execute("OBJECT", "IDLETIME", "old") <= 1010
        assert c.execute("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu") == "OK"
        assert c.execute("RESTORE", "hot", "0", payload, "FREQ", "100") == "OK"
        assert c.execute("OBJECT", "FREQ", "hot") == 100
        assert c.execute("GET", "hot") == b"bar"
        assert c.execute("OBJECT", "FREQ", "hot") in (100, 101)
    node.stop()
    node.start()  # the command line's policy again (noeviction): LRU times
    with node.client() as c:
        # Loaded from the AOF: their access time is the load, as Redis's AOF keeps none.
        assert c.execute("OBJECT", "IDLETIME", "old") < 1000
        assert c.execute("GET", "old") == b"bar"


def test_allkeys_lfu_evicts_and_keeps_the_hot_keys(make_node):
    # 10 samples: with 5, all five drawn among the hot ~8% would happen about once a run in
    # 150 (~3,000 evictions); with 10, never.
    node = make_node("everysec", extra=("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lfu",
                                        "--lfu-log-factor", "1", "--maxmemory-samples", "10")).start()
    value = b"x" * 1000
    hot = [f"k{i}" for i in range(0, 1000, 10)]
    with node.client() as c:
        for start in range(0, 1000, 100):
            c.execute_many([("SET", f"k{i}", value) for i in range(start, start + 100)])
        for _ in range(20):
            c.execute_many([("GET", key) for key in hot])
        assert min(c.execute_many([("OBJECT", "FREQ", key) for key in hot])) > 5
        for start in range(1000, 4000, 100):  # ~3 MB more than fits
            assert c.execute_many([("SET", f"k{i}", value) for i in range(start, start + 100)]) \
                == ["OK"] * 100
        info = c.execute("INFO")
        assert info["stats"]["evicted_keys"] > 2000
        assert info["memory"]["used_memory"] <= 2 << 20
        assert info["memory"]["maxmemory_policy"] == "allkeys-lfu"
        assert info["memory"]["lfu_log_factor"] == 1
        assert info["memory"]["maxmemory_samples"] == 10
        assert c.execute("EXISTS", *hot) == len(hot)


# -- beside redis-server ------------------------------------------------------------------------

PAYLOAD = dump_value(b"bar")  # the same bytes as redis-server's DUMP of "bar"
COMMANDS = [
    ("FLUSHALL",), ("CONFIG", "SET", "maxmemory-policy", "noeviction"),
    ("SET", "k", "v"), ("OBJECT", "IDLETIME", "k"), ("OBJECT", "FREQ", "k"),
    ("OBJECT", "IDLETIME", "nope"), ("OBJECT", "FREQ", "nope"), ("OBJECT", "FREQ"),
    ("CONFIG", "GET", "lfu-log-factor"), ("CONFIG", "GET", "lfu-decay-time"),
    ("CONFIG", "GET", "maxmemory-samples"),
    ("CONFIG", "SET", "maxmemory-samples", "0"), ("CONFIG", "SET", "maxmemory-samples", "x"),
    ("CONFIG", "SET", "lfu-log-factor", "-1"), ("CONFIG", "SET", "lfu-decay-time", "-1"),
    ("CONFIG", "SET", "maxmemory-policy", "lfu"),
    ("CONFIG", "SET", "maxmemory-samples", "7", "lfu-log-factor", "12", "lfu-decay-time", "2"),
    ("CONFIG", "GET", "maxmemory-samples"), ("CONFIG", "GET", "lfu-log-factor"),
    ("CONFIG", "SET", "maxmemory-samples", "5", "lfu-log-factor", "10", "lfu-decay-time", "1"),
    ("RESTORE", "r", "0", PAYLOAD, "IDLETIME", "-1"), ("RESTORE", "r", "0", PAYLOAD, "FREQ", "256"),
    ("RESTORE", "r", "0", PAYLOAD, "FREQ", "-1"), ("RESTORE", "r", "0", PAYLOAD, "IDLETIME", "x"),
    ("RESTORE", "r", "0", PAYLOAD, "IDLETIME", "1", "FREQ", "1"),
    ("RESTORE", "r", "0", PAYLOAD, "FREQ", "1", "IDLETIME", "1"), ("EXISTS", "r"),
    ("RESTORE", "r", "0", PAYLOAD, "FREQ", "100"), ("OBJECT", "FREQ", "r"),
    ("CONFIG", "SET", "maxmemory-policy", "volatile-lfu"),
    ("RESTORE", "f", "0", PAYLOAD, "FREQ", "100"), ("OBJECT", "FREQ", "f"),
    ("OBJECT", "IDLETIME", "f"), ("SET", "n", "v"), ("OBJECT", "FREQ", "n"), ("GET", "n"),
    ("OBJECT", "FREQ", "n"), ("TTL", "n"), ("TYPE", "n"), ("EXISTS", "n"), ("OBJECT", "FREQ", "n"),
    ("RESTORE", "g", "0", PAYLOAD, "IDLETIME", "50"), ("OBJECT", "FREQ", "g"),
    ("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"), ("CONFIG", "GET", "maxmemory-policy"),
    ("CONFIG", "SET", "maxmemory-policy", "volatile-ttl"),
    ("CONFIG", "SET", "maxmemory-policy", "allkeys-random"),
    ("CONFIG", "SET", "maxmemory-policy", "volatile-random"),
    ("CONFIG", "SET", "maxmemory-policy", "volatile-lru"), ("OBJECT", "FREQ", "n"),
    ("CONFIG", "SET", "maxmemory-policy", "noeviction"),
]


def test_replies_and_errors_are_redis_servers(make_node, redis_port):
    _node, port = _start(make_node, appendfsync="everysec")
    try:
        assert differing_replies({"redis": redis_port, "aofnode": port}, "2", COMMANDS) == []
    finally:
        with redis.Redis(port=redis_port) as r:  # the module's redis-server, as it was
            r.config_set("maxmemory-policy", "noeviction")


def test_restore_idletime_reads_the_same_on_both(make_node, redis_port):
    _node, port = _start(make_node, appendfsync="everysec")
    _wait_resp(port)
    with redis.Redis(port=redis_port) as r, redis.Redis(port=port, socket_timeout=10) as a:
        for c in (r, a):
            c.delete("idle")
            c.restore("idle", 0, PAYLOAD, idletime=1000)
        idle = {name: c.object("idletime", "idle") for name, c in (("redis", r), ("aofnode", a))}
    assert all(1000 <= v <= 1002 for v in idle.values()), idle
