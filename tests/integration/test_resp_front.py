"""The RESP front in a real node (``aofnode serve --resp-bind``): redis-py sessions in RESP2 and
RESP3, AUTH, redis-cli, junk, a slow reader, and kill -9 of the resp actor."""
from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import threading

import pytest

redis = pytest.importorskip("redis")

from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

from tests.nodeproc import free_port  # noqa: E402
from aofnode.bench.resp import ReplyParser, RespError, encode_command  # noqa: E402
from tests.nodeproc import pid_alive, wait_for  # noqa: E402

REDIS_CLI = shutil.which("redis-cli")


def _start(make_node, *extra, appendfsync="always", password=None):
    port = free_port()
    node = make_node(appendfsync=appendfsync, extra=("--resp-bind", f"127.0.0.1:{port}", *extra)).start()
    _wait_resp(port, password=password)
    return node, port


def _wait_resp(port: int, password: str | None = None, timeout: float = 20.0) -> None:
    def up():
        try:
            with redis.Redis(port=port, protocol=2, password=password, socket_timeout=1,
                             socket_connect_timeout=1) as r:
                return r.ping()
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False
    wait_for(up, timeout, what=f"RESP on port {port}")


@pytest.fixture
def resp_node(make_node):
    return _start(make_node)


@pytest.mark.parametrize("protocol", [2, 3])
def test_a_redis_py_session(resp_node, protocol):
    node, port = resp_node
    r = redis.Redis(port=port, protocol=protocol, socket_timeout=5)
    assert r.ping() is True
    # strings
    assert r.set("s", "v") is True
    assert r.get("s") == b"v"
    assert r.get("missing") is None
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "missing", "b") == [b"1", None, b"2"]
    assert r.incr("n") == 1 and r.incrby("n", 41) == 42
    assert r.append("s", "w") == 2 and r.strlen("s") == 2
    # hashes
    assert r.hset("h", mapping={"f": "1", "g": "2"}) == 2
    assert r.hgetall("h") == {b"f": b"1", b"g": b"2"}
    assert r.hget("h", "f") == b"1" and r.hlen("h") == 2
    assert sorted(r.hkeys("h")) == [b"f", b"g"]
    assert r.hincrby("h", "f", 9) == 10
    # expiry
    assert r.set("e", "v", px=150) is True
    assert 0 < r.pttl("e") <= 150
    wait_for(lambda: r.exists("e") == 0, timeout=5, what="the key to expire")
    assert r.expire("s", 100) is True and 0 < r.ttl("s") <= 100
    assert r.persist("s") is True and r.ttl("s") == -1
    # SCAN iteration sees every key exactly as many times as it exists
    r.mset({f"k:{i}": i for i in range(300)})
    assert sorted(r.scan_iter(match="k:*", count=25)) == sorted(f"k:{i}".encode() for i in range(300))
    assert r.type("h") == b"hash" and r.type("s") == b"string"
    # pipelines keep order, errors in place
    pipe = r.pipeline(transaction=False)
    pipe.set("p", "1").incr("h").get("p").incr("p")
    out = pipe.execute(raise_on_error=False)
    assert out[0] is True and out[2] == b"1" and out[3] == 2
    assert isinstance(out[1], redis.ResponseError) and str(out[1]).startswith("WRONGTYPE")
    # errors
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE'"):
        r.execute_command("NOPE", "x")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    assert r.pipeline(transaction=True).set("x", "1").get("x").execute() == [True, b"1"]  # MULTI/EXEC
    # connection commands and INFO
    assert r.client_id() > 0
    assert r.client_setname("me") is True and r.client_getname() in ("me", b"me")
    assert r.config_get("appendfsync") == {"appendfsync": "always"} or \
        r.config_get("appendfsync") == {b"appendfsync": b"always"}
    info = r.info()
    assert info["db0"]["keys"] == r.dbsize() > 300
    r.close()


def test_select_is_per_connection(resp_node):
    node, port = resp_node
    with redis.Redis(port=port, db=3, protocol=2) as r3, redis.Redis(port=port, protocol=3) as r0:
        r3.set("only-in-3", "x")
        assert r0.get("only-in-3") is None
        assert r3.get("only-in-3") == b"x"
        with pytest.raises(redis.ResponseError, match="DB index is out of range"):
            r0.execute_command("SELECT", "16")
    with node.client() as c:  # the ZeroMQ side sees the same keyspace
        assert c.execute_many([("SELECT", "3"), ("GET", "only-in-3")]) == ["OK", b"x"]
    # SELECT in the middle of one pipelined write: the commands after it run in the new db.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"".join(encode_command(*c) for c in [("SET", "p", "0"), ("SELECT", "2"), ("SET", "p", "2"),
                                                         ("GET", "p"), ("SELECT", "0"), ("GET", "p")]))
        parser, got = ReplyParser(), []
        while len(got) < 6:
            parser.feed(s.recv(65536))
            got += parser.replies()
    assert got == ["OK", "OK", "OK", b"2", "OK", b"0"]


def test_auth_with_a_password_file(make_node, tmp_path):
    secret = tmp_path / "pass"
    secret.write_text("correct horse\n")
    os.chmod(secret, 0o600)
    node, port = _start(make_node, "--requirepass-file", str(secret), password="correct horse")
    # redis-py retries an AuthenticationError (a ConnectionError) 3 times with backoff, against
    # redis-server too: no retries here keeps the test fast.
    once = Retry(NoBackoff(), 0)
    with redis.Redis(port=port, protocol=2, retry=once) as r:
        with pytest.raises(redis.AuthenticationError, match="Authentication required"):
            r.get("k")
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        redis.Redis(port=port, protocol=3, password="wrong", retry=once).ping()
    for protocol in (2, 3):
        with redis.Redis(port=port, protocol=protocol, password="correct horse") as r:
            assert r.set("k", "v") is True and r.get("k") == b"v"
    # Before AUTH a client cannot make the node buffer much (Redis's limits).
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"*2\r\n$3\r\nGET\r\n$1000000\r\n")
        assert _read_until_closed(s).startswith(b"-ERR Protocol error: unauthenticated bulk length")


def test_requirepass_on_the_command_line_shows_in_info(make_node):
    """--requirepass reaches the resp actor in its environment, not as --requirepass-file: INFO
    says resp_requirepass 1 either way (the resp actor's Stats say so)."""
    node, port = _start(make_node, "--requirepass", "s3cret", password="s3cret")
    with redis.Redis(port=port, protocol=2, password="s3cret") as r:
        wait_for(lambda: r.info("server").get("resp_requirepass") == 1, timeout=10,
                 what="resp_requirepass 1 in INFO")
    with node.client() as c:
        assert c.execute("INFO", "server")["server"]["resp_requirepass"] == 1


def test_a_password_file_that_is_not_utf8(make_node, tmp_path):
    secret = tmp_path / "pass"
    secret.write_bytes(b"\xff\xfe\n")
    os.chmod(secret, 0o600)
    node, port = _start(make_node, "--requirepass-file", str(secret), password=b"\xff\xfe")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(encode_command("AUTH", b"\xff\xfd") + encode_command("AUTH", b"\xff\xfe")
                  + encode_command("SET", "k", "v"))
        parser, got = ReplyParser(), []
        while len(got) < 3:
            parser.feed(s.recv(65536))
            got += parser.replies()
    assert got[0] == RespError("WRONGPASS", "WRONGPASS invalid username-password pair or user is disabled.")
    assert got[1:] == ["OK", "OK"]


def _read_until_closed(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli is not installed")
def test_redis_cli_one_shot_and_pipe(resp_node, tmp_path):
    node, port = resp_node
    cli = [REDIS_CLI, "-p", str(port)]
    run = lambda *a, **kw: subprocess.run([*cli, *a], capture_output=True, timeout=30, **kw)  # noqa: E731
    assert run("SET", "greeting", "hello world").stdout == b"OK\n"
    assert run("GET", "greeting").stdout == b"hello world\n"
    assert run("HSET", "h", "f", "v").stdout == b"1\n"
    assert b"ERR unknown command 'NOPE'" in run("NOPE").stdout
    # --pipe: mass insertion, as the Redis docs show it (RESP in a file)
    n = 5000
    data = tmp_path / "mass.resp"
    data.write_bytes(b"".join(encode_command("SET", f"mass:{i}", f"v{i}") for i in range(n)))
    with open(data, "rb") as f:
        out = subprocess.run([*cli, "--pipe"], stdin=f, capture_output=True, timeout=60)
    assert out.returncode == 0, out
    assert f"errors: 0, replies: {n}".encode() in out.stdout
    assert run("GET", f"mass:{n - 1}").stdout == f"v{n - 1}\n".encode()


def test_junk_never_crashes_the_resp_front(resp_node):
    node, port = resp_node
    pid = node.actor_pids()["resp"]
    rng = random.Random(12)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))) for _ in range(40)]
    samples += [b"*3\r\n$3\r\nSET\r\n$1\r\n", b"*-9\r\n", b"$5\r\nhello\r\n", b"*1\r\n$999999999999\r\n",
                b'SET "unterminated\r\n', b"\x00\xff\r\n" * 100, b"*2\r\n$4\r\nPING\r\n$2\r\nabXX",
                b"HELLO 3 AUTH\r\n", b"HELLO 9\r\n", b"CLIENT SETNAME 'a b'\r\n", b"CONFIG GET *\r\n",
                b"COMMAND DOCS\r\n", b"COMMAND INFO get nope\r\n", b"AUTH a b c\r\n", b"SELECT -0\r\n"]
    for sample in samples:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(sample)
            s.shutdown(socket.SHUT_WR)
            _read_until_closed(s)
    assert node.actor_pids()["resp"] == pid and pid_alive(pid)
    with redis.Redis(port=port, protocol=3) as r:
        assert r.ping() is True


def test_a_slow_reader_is_cut_at_the_output_limit(make_node):
    node, port = _start(make_node, "--client-output-limit", "1mb")
    with redis.Redis(port=port) as r:
        r.set("big", b"x" * 100_000)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = encode_command("GET", "big") * 50

    def cut():
        try:
            s.sendall(request)  # never reads: its replies pile up in the front
        except OSError:
            return True
        return node.events("client_output_limit_reached")
    wait_for(cut, timeout=30, what="the slow reader cut off")
    s.close()
    pid = node.actor_pids()["resp"]
    with redis.Redis(port=port) as r:  # everyone else is served on
        assert len(r.get("big")) == 100_000
    assert node.actor_pids()["resp"] == pid


def test_kill9_of_the_resp_front_loses_no_acknowledged_write(resp_node):
    node, port = resp_node
    acknowledged: list[int] = []
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            try:
                with redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1) as r:
                    while not stop.is_set():
                        r.set(f"w:{i}", i)
                        acknowledged.append(i)
                        i += 1
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                i += 1  # that one may or may not have been applied: not counted
    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: len(acknowledged) > 200, timeout=20, what="writes before the kill")
        old = node.actor_pids()["resp"]
        os.kill(old, signal.SIGKILL)
        with node.client() as c:  # ZeroMQ clients are served throughout
            assert c.execute("SET", "zmq", "ok") == "OK"
        wait_for(lambda: node.actor_pids().get("resp") not in (None, old), timeout=20, what="resp restarted")
        before = len(acknowledged)
        wait_for(lambda: len(acknowledged) > before + 200, timeout=20, what="writes after the restart")
    finally:
        stop.set()
        t.join(10)
    def check_every_acknowledged_write():
        with node.client() as c:
            assert c.execute("GET", "zmq") == b"ok"
            for start in range(0, len(acknowledged), 5000):
                chunk = acknowledged[start:start + 5000]
                assert c.execute_many([("GET", f"w:{i}") for i in chunk]) == [str(i).encode() for i in chunk]

    check_every_acknowledged_write()
    # And from the AOF alone: every process of the node killed with SIGKILL, then a new node.
    node.kill_all()
    node.start()
    check_every_acknowledged_write()


@pytest.mark.xdist_group("heavy")  # a load generator: one heavy test at a time (pyproject.toml)
@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="redis-benchmark is not installed")
def test_redis_benchmark_runs_clean(make_node):
    node, port = _start(make_node, appendfsync="everysec")
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get,incr,mset", "-P", "16",
                          "-n", "20000", "-q"], capture_output=True, timeout=120)
    text = out.stdout.decode(errors="replace").replace("\r", "\n")
    assert out.returncode == 0, text
    done = [line for line in text.splitlines() if "requests per second" in line]
    assert [line.split(":")[0] for line in done] == ["SET", "GET", "INCR", "MSET (10 keys)"], text
    assert "ERR" not in text and "rror" not in out.stderr.decode(errors="replace")
    with redis.Redis(port=port) as r:
        assert int(r.get("counter:__rand_int__")) == 20000  # every INCR ran, once


def test_the_log_actors_death_is_loading_then_service_again(resp_node):
    """kill -9 of the log actor: RESP clients get LOADING (or ABORTED for what was in flight),
    never a hang, then the same connection is served by its successor."""
    node, port = resp_node
    r = redis.Redis(port=port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    assert r.set("before", "1") is True
    old = node.actor_pids()["log"]
    os.kill(old, signal.SIGKILL)
    seen = set()

    def served_again():
        try:
            return r.set("after", "2") is True
        except redis.BusyLoadingError:
            seen.add("LOADING")
        except redis.ResponseError as exc:
            seen.add(str(exc).split()[0])
        return False
    wait_for(served_again, timeout=30, what="the RESP front served by a new log actor")
    assert seen and seen <= {"LOADING", "ABORTED"}  # told, not left hanging
    assert r.get("before") == b"1" and r.get("after") == b"2"
    assert node.actor_pids()["log"] != old
