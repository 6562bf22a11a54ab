"""A script past busy-reply-threshold on a real node: other clients, RESP and ZeroMQ, get BUSY;
SCRIPT KILL ends a script that has not written (UNKILLABLE otherwise); SHUTDOWN NOSAVE stops
the node even then, and no acknowledged write is lost (node/log/busy.py)."""
from __future__ import annotations

import threading

import pytest

redis = pytest.importorskip("redis")

from aofnode.client import CommandError  # noqa: E402
from tests.integration.test_resp_front import _start, _wait_resp  # noqa: E402
from tests.nodeproc import wait_for  # noqa: E402

_BUSY = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."


def _eval_in_thread(port: int, script: str, *keys: str) -> tuple[threading.Thread, dict]:
    """Send EVAL from its own connection; the outcome (reply or exception) lands in ``out``."""
    out: dict = {}

    def run():
        r = redis.Redis(port=port, protocol=2, socket_timeout=60)
        try:
            out["reply"] = r.eval(script, len(keys), *keys)
        except Exception as exc:  # the outcome under test, whatever it is
            out["error"] = exc
        finally:
            r.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _busy(fn) -> bool:
    """True when ``fn`` is answered BUSY (the script passed the threshold)."""
    try:
        fn()
    except (redis.ResponseError, CommandError) as exc:
        assert str(exc) == _BUSY or str(exc) == _BUSY[5:], exc
        return True
    return False


def _shutdown(r, *args) -> None:
    """SHUTDOWN gets no reply of success: the log actor exits at once, and the front answers
    what was in flight ABORTED (or the connection closes first), as redis-server closes it."""
    with pytest.raises((redis.ConnectionError, redis.ResponseError), match="^(ABORTED|Connection)"):
        r.execute_command("SHUTDOWN", *args)


@pytest.fixture
def busy_node(make_node):
    return _start(make_node, "--busy-reply-threshold", "100")


def test_script_kill_ends_a_busy_read_only_script(busy_node):
    node, port = busy_node
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    r.set("k", "before")
    with pytest.raises(redis.ResponseError, match="NOTBUSY No scripts in execution right now."):
        r.execute_command("SCRIPT", "KILL")
    thread, out = _eval_in_thread(port, "local n = redis.call('get', KEYS[1]) while true do end", "k")
    wait_for(lambda: _busy(r.ping), 10, what="RESP clients answered BUSY")
    assert _busy(r.info)
    with node.client(timeout=10) as zc:
        assert _busy(lambda: zc.execute("GET", "k"))  # the ZeroMQ front too
        with pytest.raises(CommandError) as exc:
            zc.execute("SET", "k", "during")
        assert exc.value.code == "BUSY"
    tx = redis.Redis(port=port, protocol=2, socket_timeout=10)
    assert tx.execute_command("MULTI") == b"OK"
    assert _busy(lambda: tx.execute_command("INCR", "n"))  # queued in the RESP front: BUSY too
    assert r.execute_command("SCRIPT", "KILL") == b"OK"
    thread.join(10)
    with pytest.raises(redis.ResponseError, match="previous errors"):
        tx.execute_command("EXEC")  # as Redis: a command refused while queueing aborts EXEC
    assert not thread.is_alive()
    err = out.get("error")
    assert isinstance(err, redis.ResponseError), out
    assert str(err).startswith("Script killed by user with SCRIPT KILL... script: "), err
    assert r.ping() is True  # served again, on both fronts
    with node.client(timeout=10) as zc:
        assert zc.execute("GET", "k") == b"before"  # the kill left the keyspace as it was
    assert r.get("k") == b"before" and r.dbsize() == 1
    stats = r.info("stats")
    assert (stats["busy_scripts"], stats["killed_scripts"], stats["busy_reply_threshold"]) == \
        (1, 1, 100)
    assert r.config_get("lua-time-limit") == {"lua-time-limit": "100"}


def test_a_writing_script_is_unkillable_and_shutdown_nosave_stops_the_node(busy_node):
    node, port = busy_node
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    for i in range(50):  # acknowledged (appendfsync always): they must survive
        r.set(f"acked:{i}", i)
    thread, out = _eval_in_thread(port, "redis.call('set', KEYS[1], 'half') while true do end", "x")
    wait_for(lambda: _busy(r.ping), 10, what="RESP clients answered BUSY")
    with pytest.raises(redis.ResponseError, match="^UNKILLABLE Sorry the script already executed"):
        r.execute_command("SCRIPT", "KILL")
    assert _busy(r.ping)
    assert _busy(lambda: r.execute_command("SHUTDOWN"))  # only NOSAVE, as Redis
    _shutdown(r, "NOSAVE")
    assert node.proc.wait(30) == 0
    thread.join(10)
    assert "error" in out  # the script's caller never got a reply of success
    node.start()
    _wait_resp(port)
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    assert [r.get(f"acked:{i}") for i in range(50)] == [str(i).encode() for i in range(50)]
    assert r.get("x") is None  # the script never ended: none of it reached the AOF
    assert node.events("shutdown_command")


def test_shutdown_without_a_script(busy_node):
    node, port = busy_node
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    r.set("a", "1")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("SHUTDOWN", "NOSAVE", "SAVE")
    with pytest.raises(redis.ResponseError, match="No shutdown in progress."):
        r.execute_command("SHUTDOWN", "ABORT")
    _shutdown(r)
    assert node.proc.wait(30) == 0
    node.start()
    _wait_resp(port)
    assert redis.Redis(port=port, protocol=2, socket_timeout=10).get("a") == b"1"
