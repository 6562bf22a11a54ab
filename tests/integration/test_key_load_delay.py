"""key-load-delay (Redis's hidden debug setting) on a real node: a node restarted with
``--key-load-delay`` loads its AOF slowly enough to be seen LOADING on both fronts, then
serves every key; CONFIG GET names it only when asked by name; CONFIG SET reaches DEBUG RELOAD."""
from __future__ import annotations

import time

import pytest

redis = pytest.importorskip("redis")

from aofnode.client import Client, CommandError  # noqa: E402
from tests.integration.test_resp_front import _start  # noqa: E402
from tests.nodeproc import wait_for  # noqa: E402

KEYS = 100
# x 100 entries: a load of at least 6 s, which outlasts the start of the fronts' processes on a
# loaded machine (the RESP port is held from the start, but no one answers before its front runs)
DELAY_US = 60_000


def _loading_reply(port: int):
    """A GET's reply, or the error a Redis client raises for it (None: not listening yet)."""
    try:
        with redis.Redis(port=port, protocol=2, socket_timeout=2, socket_connect_timeout=1) as r:
            return r.get("k0")
    except redis.ConnectionError as exc:  # BusyLoadingError is one
        return exc if "loading" in str(exc).lower() else None
    except redis.TimeoutError:  # accepted by the held port, its front not running yet
        return None


def test_a_slow_load_answers_loading_on_both_fronts_then_serves(make_node):
    node, port = _start(make_node)
    with redis.Redis(port=port, protocol=2, socket_timeout=10) as r:
        for i in range(KEYS):
            r.set(f"k{i}", f"v{i}")  # acknowledged under always: each is in the AOF
        assert r.config_get("key-load-delay") == {"key-load-delay": "0"}
    assert node.stop() == 0
    node.extra = (*node.extra, "--key-load-delay", str(DELAY_US))
    began = time.monotonic()
    node.start(wait=False)
    got = wait_for(lambda: _loading_reply(port), 20, what="the RESP front's first reply")
    assert isinstance(got, redis.BusyLoadingError), got
    with Client(node.endpoint, timeout=5, retries=1, loading_timeout=0) as c:
        with pytest.raises(CommandError, match="LOADING"):
            c.execute("GET", "k0")
    wait_for(lambda: _loading_reply(port) == b"v0", 30, what="the load's end")
    assert time.monotonic() - began >= KEYS * DELAY_US / 1e6  # a lower bound: each entry slept
    with redis.Redis(port=port, protocol=2, socket_timeout=10) as r:
        assert r.mget([f"k{i}" for i in range(KEYS)]) == [f"v{i}".encode() for i in range(KEYS)]
        # the option's value, hidden from patterns, as Redis's HIDDEN_CONFIG
        assert r.config_get("key-load-delay") == {"key-load-delay": str(DELAY_US)}
        assert "key-load-delay" not in r.config_get("*")
        assert "key-load-delay" not in r.config_get("key-*")
    loaded = node.events("aof_loaded")
    assert loaded[-1]["entries"] == KEYS and loaded[-1]["seconds"] >= KEYS * DELAY_US / 1e6


def test_config_set_delays_debug_reload(make_node):
    node, port = _start(make_node, "--enable-debug-command", "yes")
    with redis.Redis(port=port, protocol=2, socket_timeout=30) as r:
        for i in range(20):
            r.set(f"k{i}", i)  # one AOF entry each
        assert r.config_set("key-load-delay", "50000") is True  # 50 ms x 20 entries
        assert r.config_get("key-load-delay") == {"key-load-delay": "50000"}
        began = time.monotonic()
        assert r.execute_command("DEBUG", "RELOAD") == b"OK"
        assert time.monotonic() - began >= 20 * 0.05
        assert r.config_set("key-load-delay", "-50") is True  # Redis's form: 1 us every 50
        with pytest.raises(redis.ResponseError, match="argument couldn't be parsed into an integer"):
            r.config_set("key-load-delay", "soon")
        assert r.config_get("key-load-delay") == {"key-load-delay": "-50"}
