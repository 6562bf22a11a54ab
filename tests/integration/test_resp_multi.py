"""MULTI/EXEC/DISCARD/WATCH/UNWATCH on the RESP front of a real node: redis-py's default
pipeline() and transaction() with WATCH under concurrent increments, the replies of the error
cases, and the same cases beside redis-server 7.0 (skipped without it)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading

import pytest

redis = pytest.importorskip("redis")

from aofnode.bench.resp import ReplyParser, RespError, encode_command  # noqa: E402
from tests.nodeproc import free_port, wait_for  # noqa: E402
from tests.integration.test_resp_front import _start  # noqa: E402


@pytest.fixture
def resp_node(make_node):
    return _start(make_node)


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_default_pipeline_is_a_transaction(resp_node, protocol):
    _, port = resp_node
    r = redis.Redis(port=port, protocol=protocol, socket_timeout=5)
    with r.pipeline() as p:
        p.set("a", 1).incr("a").hset("h", "f", "v").hgetall("h").get("nope")
        assert p.execute() == [True, 2, 1, {b"f": b"v"}, None]
    with r.pipeline() as p:
        p.set("s", "x").incr("s").get("s")
        with pytest.raises(redis.ResponseError):
            p.execute()  # an error in place: the others ran
    assert r.get("s") == b"x"


def incr(pipe):
    value = int(pipe.get("c") or 0)  # immediate mode after WATCH
    pipe.multi()
    pipe.set("c", value + 1)


def _transfer_loop(port, n, errors):
    r = redis.Redis(port=port, socket_timeout=10)
    try:
        for _ in range(n):
            r.transaction(incr, "c")  # retries on WatchError
    except Exception as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_transaction_with_watch_under_concurrent_increments(resp_node):
    _, port = resp_node
    errors: list = []
    threads = [threading.Thread(target=_transfer_loop, args=(port, 150, errors)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    r = redis.Redis(port=port, socket_timeout=5)
    assert int(r.get("c")) == 300
    assert r.transaction(incr, "c") == [True]
    assert int(r.info("clients")["watched_keys"]) == 0


# -- the error cases, sent raw: (commands, replies) with RESP2 replies as bytes -----------------

CASES = [
    ("queued and exec", [["MULTI"], ["SET", "k", "v"], ["INCR", "k"], ["GET", "k"], ["EXEC"]]),
    ("exec without multi", [["EXEC"]]),
    ("discard without multi", [["DISCARD"]]),
    ("nested multi", [["MULTI"], ["MULTI"], ["PING"], ["EXEC"]]),
    ("unknown command aborts", [["MULTI"], ["SET", "a", "1"], ["NOPE"], ["EXEC"], ["GET", "a"]]),
    ("arity error aborts", [["MULTI"], ["GET"], ["EXEC"]]),
    ("discard", [["MULTI"], ["SET", "d", "1"], ["DISCARD"], ["GET", "d"], ["EXEC"]]),
    ("empty exec", [["MULTI"], ["EXEC"]]),
    ("watch inside multi", [["MULTI"], ["WATCH", "x"], ["PING"], ["EXEC"]]),
    ("watch arity", [["WATCH"]]),
    ("unwatch", [["WATCH", "w"], ["UNWATCH"], ["SET", "w", "1"], ["MULTI"], ["PING"], ["EXEC"]]),
    ("dirty watch", [["WATCH", "w2"], ["SET", "w2", "1"], ["MULTI"], ["PING"], ["EXEC"]]),
    ("dirty watch, empty", [["WATCH", "w3"], ["SET", "w3", "1"], ["MULTI"], ["EXEC"]]),
    ("exec unwatches", [["WATCH", "w4"], ["MULTI"], ["EXEC"], ["SET", "w4", "1"], ["MULTI"],
                        ["PING"], ["EXEC"]]),
    ("discard unwatches", [["WATCH", "w5"], ["MULTI"], ["DISCARD"], ["SET", "w5", "1"], ["MULTI"],
                           ["PING"], ["EXEC"]]),
    ("execabort unwatches", [["WATCH", "w6"], ["MULTI"], ["NOPE"], ["EXEC"], ["SET", "w6", "1"],
                             ["MULTI"], ["PING"], ["EXEC"]]),
    ("select in multi", [["MULTI"], ["SELECT", "2"], ["SET", "sk", "1"], ["EXEC"], ["GET", "sk"],
                         ["SELECT", "0"], ["GET", "sk"]]),
    ("wrongtype in place", [["SET", "t", "x"], ["MULTI"], ["LPUSH", "t", "a"], ["GET", "t"], ["EXEC"]]),
    ("exec arity", [["MULTI"], ["EXEC", "x"], ["EXEC"]]),
    ("connection commands in place", [["MULTI"], ["SET", "c", "1"], ["CLIENT", "SETNAME", "tx"],
                                      ["CONFIG", "GET", "no-such-setting"], ["GET", "c"], ["EXEC"],
                                      ["CLIENT", "GETNAME"]]),
    ("flushdb touches watched", [["SET", "f", "1"], ["WATCH", "f"], ["FLUSHDB"], ["MULTI"], ["PING"],
                                 ["EXEC"]]),
    ("flushdb, missing key", [["WATCH", "f2"], ["FLUSHDB"], ["MULTI"], ["PING"], ["EXEC"]]),
]


def run_raw(port: int, commands: list[list[str]]) -> list:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(encode_command(*[c.encode() for c in cmd]) for cmd in commands))
        parser, replies = ReplyParser(), []
        while len(replies) < len(commands):
            data = sock.recv(65536)
            assert data, f"connection closed after {replies}"
            parser.feed(data)
            replies.extend(parser.replies())
    return [_plain(r) for r in replies]


def _plain(reply):
    if isinstance(reply, RespError):
        return ("error", reply.code, reply.message)
    if isinstance(reply, list):
        return [_plain(r) for r in reply]
    return reply


def test_error_cases_on_aofnode(resp_node):
    _, port = resp_node
    for name, commands in CASES:
        redis.Redis(port=port).flushall()
        check_case(name, commands, run_raw(port, commands))


def check_case(name, commands, got):
    assert len(got) == len(commands)
    if name == "queued and exec":
        assert got[:4] == ["OK", "QUEUED", "QUEUED", "QUEUED"]
        assert got[4][0] == "OK" and got[4][1][:2] == ("error", "ERR") and got[4][2] == b"v"
    if name in ("dirty watch", "dirty watch, empty", "flushdb touches watched"):
        assert got[-1] is None
    if name in ("unknown command aborts", "arity error aborts", "execabort unwatches"):
        assert ("error", "EXECABORT", "EXECABORT Transaction discarded because of previous errors.") in got


@pytest.fixture
def redis_server(tmp_path):
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed: no differential test")
    port = free_port()
    d = tmp_path / "redis"
    d.mkdir()
    proc = subprocess.Popen([exe, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(d)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _pings(port), 10, what="redis-server")
        yield port
    finally:
        proc.kill()
        proc.wait(10)


def _pings(port):
    try:
        return redis.Redis(port=port, socket_timeout=1).ping()
    except redis.ConnectionError:
        return False


def test_error_cases_beside_redis_server(resp_node, redis_server):
    _, port = resp_node
    for name, commands in CASES:
        redis.Redis(port=redis_server).flushall()
        redis.Redis(port=port).flushall()
        assert run_raw(port, commands) == run_raw(redis_server, commands), name


def test_zeromq_transaction_and_watch_across_fronts(resp_node):
    from aofnode.client import Client, CommandError

    node, port = resp_node
    r = redis.Redis(port=port, socket_timeout=5)
    with Client(node.endpoint, timeout=5) as c:
        assert c.transaction([("SET", "z", "1"), ("INCR", "z"), ("HGET", "z", "f")])[:2] == ["OK", 2]
        c.watch("z")
        assert c.transaction([("INCR", "z")]) == [3]  # the watch held
        c.watch("z")
        r.set("z", "100")  # another front changes it
        assert c.transaction([("INCR", "z")]) is None
        assert r.get("z") == b"100"
        with pytest.raises(CommandError) as err:
            c.transaction([("SET", "z", "1"), ("NOPE",)])
        assert err.value.code == "EXECABORT"
        # a watch the node no longer holds (the front's key for this peer went) aborts
        c.watch("z")
        r.execute_command("CLIENT", "ID")
        info = r.info("clients")
        assert info["watching_clients"] == 1


def test_reset_ends_a_watch_in_the_log_actor(resp_node):
    _, port = resp_node
    got = run_raw(port, [["WATCH", "rk"], ["RESET"], ["SET", "rk", "1"], ["MULTI"], ["PING"], ["EXEC"]])
    assert got == ["OK", "RESET", "OK", "OK", "QUEUED", ["PONG"]]
    assert int(redis.Redis(port=port).info("clients")["watched_keys"]) == 0


def test_a_closed_connection_forgets_its_watch(resp_node):
    _, port = resp_node
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(encode_command(b"WATCH", b"a", b"b"))
        assert sock.recv(100) == b"+OK\r\n"
        r = redis.Redis(port=port, socket_timeout=5)
        assert int(r.info("clients")["watched_keys"]) == 2
    wait_for(lambda: int(r.info("clients")["watched_keys"]) == 0, 10, what="the watch forgotten")


def _oom_transactions(port: int) -> list:
    """Past maxmemory: a command queued in MULTI gets OOM (reads too: queueing takes memory) and
    EXEC EXECABORT; DISCARD works; a block of writes queued before the limit is refused whole
    at EXEC."""
    admin = redis.Redis(port=port, socket_timeout=10)
    admin.flushall()
    admin.set("x", "value")
    r = redis.Redis(port=port, socket_timeout=10)
    out = []
    admin.config_set("maxmemory", 1)
    try:
        with r.pipeline(transaction=False) as p:
            p.execute_command("MULTI").set("y", "1").get("x").execute_command("EXEC")
            out.append(_outcome(p))
        with r.pipeline(transaction=False) as p:
            p.execute_command("MULTI").get("x").ping().execute_command("EXEC")
            out.append(_outcome(p))
        with r.pipeline(transaction=False) as p:
            p.execute_command("MULTI").set("y", "1").execute_command("DISCARD").ping()
            out.append(_outcome(p))
    finally:
        admin.config_set("maxmemory", 0)
    assert r.execute_command("MULTI") == b"OK"
    assert r.execute_command("SET", "late", "1") is False  # redis-py reads QUEUED so
    admin.config_set("maxmemory", 1)  # queued before the limit: EXEC refuses the block
    try:
        out.append(_outcome_of(lambda: r.execute_command("EXEC")))
    finally:
        admin.config_set("maxmemory", 0)
    return out


def _outcome_of(fn):
    try:
        return fn()
    except redis.ResponseError as exc:
        return str(exc)


def _outcome(p) -> list:
    return [str(v) if isinstance(v, Exception) else v for v in p.execute(raise_on_error=False)]


def test_oom_at_queue_time_and_at_exec(resp_node, redis_server):
    _, port = resp_node
    got = _oom_transactions(port)
    oom = "command not allowed when used memory > 'maxmemory'."
    # redis-py drops the OOM and EXECABORT codes
    assert got[0] == [b"OK", oom, oom, "Transaction discarded because of previous errors."]
    assert got[1] == [b"OK", oom, oom, "Transaction discarded because of previous errors."]
    assert got[2] == [b"OK", oom, b"OK", True]
    assert got[3] == "Transaction discarded because of: OOM " + oom
    assert got == _oom_transactions(redis_server)
