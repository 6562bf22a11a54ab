"""maxmemory at the node (issue "limits", finding 4): OOM replies with reads and deletes still
served, eviction that survives a restart, and INFO's memory section."""
from __future__ import annotations

from aofnode.client import CommandError
from aofnode.sysmem import MAXMEMORY_SHARE, total_memory


# SETs per round trip: under appendfsync always one at a time waited for an fdatasync each
# (~10 s for the 2 MB here); a batch shares one. Each is still its own command, in order.
BATCH = 100


def _sets(start: int, stop: int) -> list:
    return [("SET", f"k{i}", b"x" * 1000) for i in range(start, stop)]


def _fill_until_oom(c, limit_keys=100_000):
    for start in range(0, limit_keys, BATCH):
        for i, reply in enumerate(c.execute_many(_sets(start, start + BATCH)), start):
            if isinstance(reply, CommandError):
                return i, reply
    raise AssertionError("no OOM before the key budget ran out")


def test_noeviction_refuses_growth_and_serves_reads_and_deletes(make_node):
    node = make_node("always", extra=("--maxmemory", "2mb")).start()
    with node.client() as c:
        written, exc = _fill_until_oom(c)
        assert exc.code == "OOM" and "maxmemory" in str(exc)
        assert 1000 < written < 2100  # ~2 MB of 1 KB values and their overhead
        assert c.execute("GET", "k0") == b"x" * 1000  # reads work
        assert c.execute("DEL", *[f"k{i}" for i in range(500)]) == 500  # deletes work
        assert c.execute("SET", "again", "v") == "OK"  # and free room again
        memory = c.execute("INFO", "memory")["memory"]
    assert memory["maxmemory"] == 2 << 20 and memory["maxmemory_policy"] == "noeviction"
    assert memory["used_memory"] <= 2 << 20
    assert memory["used_memory_rss"] > memory["used_memory"]


def test_allkeys_lru_evicts_and_the_evictions_survive_a_restart(make_node):
    node = make_node("always", extra=("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")).start()
    with node.client() as c:
        for start in range(0, 5000, BATCH):  # ~5.5 MB asked for
            assert c.execute_many(_sets(start, start + BATCH)) == ["OK"] * BATCH
        assert c.execute("GET", "k4999") == b"x" * 1000  # the newest survive
        info = c.execute("INFO")
        keys_before = c.execute("DBSIZE")
    assert info["stats"]["evicted_keys"] == 5000 - keys_before > 0
    assert info["memory"]["used_memory"] <= 2 << 20
    node.stop()
    node.start()
    with node.client() as c:
        assert c.execute("DBSIZE") == keys_before  # each eviction was a DEL in the AOF


def test_the_default_maxmemory_is_a_share_of_the_machine(make_node):
    node = make_node("everysec").start()
    memory = node.info("memory")
    assert memory["maxmemory"] == int(total_memory() * MAXMEMORY_SHARE) > 0
    assert memory["total_system_memory"] == total_memory()
