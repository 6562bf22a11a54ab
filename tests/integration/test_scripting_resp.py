"""Scripts over a real node's RESP front (``--resp-bind``): redis-py's ``register_script``
(EVALSHA, then EVAL on NOSCRIPT), ``Lock`` acquire and release (release is an EVALSHA), and a
script's effects surviving a restart (replayed from the AOF, which holds no script)."""
from __future__ import annotations

import pytest

redis = pytest.importorskip("redis")

from tests.integration.test_resp_front import _start, _wait_resp  # noqa: E402
from tests.nodeproc import wait_for  # noqa: E402


@pytest.fixture
def resp_node(make_node):
    return _start(make_node)


def test_register_script_and_lock(resp_node):
    node, port = resp_node
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert incr_by(keys=["counter"], args=[5]) == 5  # NOSCRIPT, then EVAL
    assert incr_by(keys=["counter"], args=[2]) == 7  # EVALSHA
    assert r.script_exists(incr_by.sha) == [True]
    assert r.script_flush() is True and r.script_exists(incr_by.sha) == [False]
    assert incr_by(keys=["counter"], args=[1]) == 8
    lock = r.lock("resource", timeout=30)
    assert lock.acquire(blocking=False) is True
    assert r.lock("resource").acquire(blocking=False) is False
    assert lock.extend(10) is True
    lock.release()
    assert r.exists("resource") == 0
    stolen = r.lock("resource", timeout=30)
    assert stolen.acquire(blocking=False) is True
    r.set("resource", "someone else")
    with pytest.raises(redis.exceptions.LockNotOwnedError):  # the script saw another token
        stolen.release()
    with pytest.raises(redis.ResponseError, match="^MYERR bad$"):
        r.eval("return redis.error_reply('MYERR bad')", 0)
    with pytest.raises(redis.ResponseError, match="read-only scripts"):
        r.eval_ro("return redis.call('set', KEYS[1], 'x')", 1, "k")
    r3 = redis.Redis(port=port, protocol=3, socket_timeout=10)
    assert r3.eval("return {1, 'a', {ok='S'}}", 0) == [1, b"a", b"S"]


def test_script_effects_are_replayed_after_a_restart(resp_node):
    node, port = resp_node
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    script = ("for i = 1, 20 do redis.call('RPUSH', KEYS[1], i) end "
              "redis.call('HSET', KEYS[2], 'n', redis.call('LLEN', KEYS[1])) return 1")
    assert r.eval(script, 2, "l", "h") == 1
    assert r.eval(script, 2, "l", "h") == 1
    before = (r.lrange("l", 0, -1), r.hgetall("h"))
    r.close()
    node.stop()
    node.start()
    _wait_resp(port)
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    assert (r.lrange("l", 0, -1), r.hgetall("h")) == before
    assert b"redis.call" not in node.aof_path.read_bytes()  # effects, never the script


def test_functions_survive_a_restart_and_a_rewrite(resp_node):
    node, port = resp_node
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    lib = ("#!lua name=mylib\nredis.register_function('incr2', function(KEYS, ARGV)\n"
           " return redis.call('incrby', KEYS[1], 2)\nend)")
    assert r.function_load(lib) == b"mylib"
    assert r.fcall("incr2", 1, "n") == 2
    assert r.function_list() == [[b"library_name", b"mylib", b"engine", b"LUA", b"functions",
                                  [[b"name", b"incr2", b"description", None, b"flags", []]]]]
    r.close()
    node.stop()
    node.start()
    _wait_resp(port)
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    assert r.fcall("incr2", 1, "n") == 4  # the library was replayed, and the calls' effects
    assert r.bgrewriteaof()
    wait_for(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, 30, what="rewrite")
    r.close()
    node.stop()
    node.start()
    _wait_resp(port)
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    assert r.fcall("incr2", 1, "n") == 6  # from the rewritten AOF
