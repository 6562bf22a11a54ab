"""CLIENT on the RESP front (node/fronts/resp_clients.py) and the front's counters for INFO:
CLIENT LIST/INFO fields as redis-server 7.0 and redis-py read them, KILL, REPLY, PAUSE,
connected_clients counting a new connection at once, and errors made at the front counted in
errorstats. Unit tables with a stand-in front, then a real node (redis-server for the field
names, skipped without it)."""
from __future__ import annotations

import random
import shutil
import socket
import threading
import time

import pytest
import redis

from aofnode.config import Config
from aofnode.fronts.resp_clients import ClientCommands
from aofnode.fronts.resp_session import Session, config_settings
from tests.nodeproc import RedisServer, wait_for
from tests.integration.test_resp_front import _start

SETTINGS = config_settings(Config(resp_bind="127.0.0.1:6380"), 1000)


class _Parser:
    buffered = 0


class _Conn:
    def __init__(self, conn_id: int) -> None:
        self.session = Session(conn_id, None, SETTINGS, addr=f"127.0.0.1:{5000 + conn_id}",
                               laddr="127.0.0.1:6380", fd=10 + conn_id)
        self.parser, self.out = _Parser(), bytearray()
        self.reading, self.closing, self.closed = True, False, False


class _Front(ClientCommands):
    def __init__(self, n: int) -> None:
        self.conns = {i: _Conn(i) for i in range(1, n + 1)}
        self.held: dict = {}
        self.paused: set = set()
        self.stopping = False

    def _close(self, conn) -> None:
        conn.closed = True
        del self.conns[conn.session.id]

    def _pause(self, conn) -> None:
        conn.reading = False

    def _resume(self, conn) -> None:
        conn.reading = True

    def ask(self, conn_id: int, *argv: bytes) -> bytes:
        return self._client_command(self.conns[conn_id], [b"CLIENT", *argv])


CASES = [  # (argv after CLIENT, reply)
    ([b"GETNAME"], b"$-1\r\n"),
    ([b"SETNAME", b"a b"], b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"),
    ([b"SETINFO", b"lib-name", b"redis-py"], b"+OK\r\n"),
    ([b"NOPE"], b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"),
    ([], b"-ERR wrong number of arguments for 'client' command\r\n"),
    ([b"KILL"], b"-ERR wrong number of arguments for 'client|kill' command\r\n"),
    ([b"KILL", b"ID", b"10", b"x"], b"-ERR syntax error\r\n"),
    ([b"KILL", b"ID", b"0"], b"-ERR client-id should be greater than 0\r\n"),
    ([b"KILL", b"ID", b"str"], b"-ERR client-id should be greater than 0\r\n"),
    ([b"KILL", b"TYPE", b"x"], b"-ERR Unknown client type 'x'\r\n"),
    ([b"KILL", b"USER", b"x"], b"-ERR No such user 'x'\r\n"),
    ([b"KILL", b"SKIPME", b"maybe"], b"-ERR syntax error\r\n"),
    ([b"KILL", b"9.9.9.9:1"], b"-ERR No such client\r\n"),
    ([b"KILL", b"ID", b"99"], b":0\r\n"),
    ([b"LIST", b"TYPE", b"x"], b"-ERR Unknown client type 'x'\r\n"),
    ([b"LIST", b"ID", b"x"], b"-ERR Invalid client ID\r\n"),
    ([b"LIST", b"x"], b"-ERR syntax error\r\n"),
    ([b"LIST", b"TYPE", b"pubsub"], b"$0\r\n\r\n"),
    ([b"REPLY", b"x"], b"-ERR syntax error\r\n"),
    ([b"PAUSE", b"x"], b"-ERR timeout is not an integer or out of range\r\n"),
    ([b"PAUSE", b"-1"], b"-ERR timeout is negative\r\n"),
    ([b"PAUSE", b"--5"], b"-ERR timeout is not an integer or out of range\r\n"),
    ([b"PAUSE", b"10", b"x"], b"-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n"),
    ([b"NO-EVICT", b"x"], b"-ERR syntax error\r\n"),
    ([b"NO-EVICT", b"on"], b"+OK\r\n"),
    ([b"UNPAUSE"], b"+OK\r\n"),
]


@pytest.mark.parametrize("argv,reply", CASES)
def test_client_replies(argv, reply):
    assert _Front(2).ask(1, *argv) == reply


def test_tracking_is_refused_with_a_reason_where_the_front_answers_it():
    # The front forwards CLIENT TRACKING to the log actor (tests/integration/test_tracking.py);
    # it answers it only when a MULTI block runs its connection commands at EXEC.
    assert b"send it before MULTI" in _Front(1).ask(1, b"TRACKING", b"on")


def test_kill_forms_and_list_filters():
    front = _Front(4)
    assert front.ask(1, b"KILL", b"127.0.0.1:5002") == b"+OK\r\n" and 2 not in front.conns
    assert front.ask(1, b"KILL", b"LADDR", b"127.0.0.1:6380", b"ID", b"3") == b":1\r\n"
    listed = front.ask(1, b"LIST", b"ID", b"1", b"4")
    assert listed.count(b"id=") == 2 and b"cmd=client|list" in listed
    assert front.ask(1, b"KILL", b"SKIPME", b"no") == b":2\r\n"
    assert front.conns[1].session.close_after and 4 not in front.conns


def test_info_line_has_redis_7_fields_in_order():
    line = _Front(1).ask(1, b"INFO").split(b"\r\n")[1].decode()
    fields = [kv.split("=", 1)[0] for kv in line.split()]
    assert fields == ["id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub",
                      "ssub", "multi", "qbuf", "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl",
                      "oll", "omem", "tot-mem", "events", "cmd", "user", "redir", "resp", "lib-name",
                      "lib-ver"]
    assert "qbuf=26 " in line and "cmd=client|info " in line and "flags=N " in line


def test_pause_holds_writes_in_order_and_unpause_runs_them():
    front = _Front(2)
    taken = []
    front._take = lambda conn, commands: taken.extend(commands)  # type: ignore[method-assign]
    front._send_ready = lambda conn: None  # type: ignore[method-assign]
    assert front.ask(1, b"PAUSE", b"60000", b"WRITE") == b"+OK\r\n"
    conn = front.conns[2]
    now = front._hold_paused(conn, [[b"GET", b"k"], [b"SET", b"k", b"v"], [b"GET", b"k"]])
    assert now == [[b"GET", b"k"]] and not conn.reading
    assert front._hold_paused(conn, [[b"GET", b"j"]]) == []  # behind the held ones
    assert 0 < front.max_wait <= 60
    front.ask(1, b"UNPAUSE")
    assert taken == [[b"SET", b"k", b"v"], [b"GET", b"k"], [b"GET", b"j"]] and conn.reading
    assert front.max_wait is None


def test_no_argv_makes_client_raise():
    rng = random.Random(7)
    words = [b"", b"0", b"1", b"-1", b"ID", b"TYPE", b"ADDR", b"LADDR", b"SKIPME", b"yes", b"no",
             b"normal", b"pubsub", b"LIST", b"KILL", b"INFO", b"REPLY", b"on", b"off", b"skip",
             b"PAUSE", b"WRITE", b"ALL", b"\xff", b"--5", b"\xd9\xa3", b"99999999999999999999999", b"127.0.0.1:5001"]
    for _ in range(5000):
        front = _Front(3)
        argv = [rng.choice(words) for _ in range(rng.randrange(6))]
        reply = front.ask(1, *argv)
        assert type(reply) is bytes and (reply == b"" or reply.endswith(b"\r\n")), argv


# -- a real node ------------------------------------------------------------------------------


def _raw(port: int, payload: bytes, expect: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        got = b""
        deadline = time.monotonic() + timeout
        while len(got) < len(expect) and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got


def test_node_clients(make_node, tmp_path):
    node, port = _start(make_node, appendfsync="everysec")
    with redis.Redis(port=port, socket_timeout=5) as r, redis.Redis(port=port, socket_timeout=5) as r2:
        assert r.ping() and r2.ping()
        for _ in range(5):  # a new connection counts itself in its first INFO, no wait
            # A closed connection (the start-up probe's, the previous round's) reaches the front
            # asynchronously: its EOF may be read after the next accept. Let it go first.
            wait_for(lambda: r.info("clients")["connected_clients"] == 2, timeout=5,
                     what="the closed connections to be forgotten")
            with redis.Redis(port=port, socket_timeout=5) as fresh:
                assert fresh.info("clients")["connected_clients"] == 3
        info = r.client_info()
        assert info["flags"] == "N" and info["cmd"] == "client|info" and info["db"] == 0
        if shutil.which("redis-server"):
            server = RedisServer(tmp_path / "redis")
            try:
                with redis.Redis(port=server.port, socket_timeout=5) as ref:
                    assert list(info)[:-2] == list(ref.client_info())
            finally:
                server.stop()
        r2.client_setname("two")
        listed = {c["name"]: c for c in r.client_list()}
        assert set(listed) >= {"two", ""} and listed["two"]["cmd"] == "client|setname"
        assert r.client_kill_filter(_id=int(listed["two"]["id"])) == 1
        assert "two" not in {c["name"] for c in r.client_list()}
        assert r.info("clients")["connected_clients"] == 1
        # REPLY OFF/SKIP: replies dropped, forwarded commands still run
        expect = b"+OK\r\n$2\r\nv1\r\n$1\r\nc\r\n"
        assert _raw(port, b"CLIENT REPLY OFF\r\nPING a\r\nSET k v1\r\nCLIENT REPLY ON\r\nGET k\r\n"
                          b"CLIENT REPLY SKIP\r\nPING b\r\nPING c\r\n", expect) == expect
        # errors made at the front are counted (unknown command, arity, a CLIENT error)
        before = r.info("errorstats").get("errorstat_ERR", {}).get("count", 0)
        for bad in (("NOPE",), ("GET",), ("CLIENT", "NOPE")):
            with pytest.raises(redis.ResponseError):
                r.execute_command(*bad)
        assert r.info("errorstats")["errorstat_ERR"]["count"] == before + 3  # at once
        stats = r.info("stats")
        assert stats["total_error_replies"] >= 3
        clients = r.info("clients")
        assert "waiting_bytes" in clients and "clients_paused" in clients
        assert not any(k.startswith("errorstat_") for k in clients)


def test_node_pause(make_node):
    node, port = _start(make_node, appendfsync="everysec")
    with redis.Redis(port=port, socket_timeout=10) as r, redis.Redis(port=port, socket_timeout=10) as w:
        assert r.client_pause(400, all=False)
        start = time.monotonic()
        assert r.get("k") is None and time.monotonic() - start < 0.3  # reads go on
        w.set("k", "v")  # held until the pause ends
        assert time.monotonic() - start >= 0.35
        r.client_pause(60_000)  # ALL
        done = threading.Event()
        worker = threading.Thread(target=lambda: (w.get("k"), done.set()), daemon=True)
        worker.start()
        assert not done.wait(0.3)
        assert r.client_unpause()
        assert done.wait(5)
        worker.join(5)


def test_info_clients_has_the_zmq_fronts_waiting_pause_and_password_counters():
    """node/log/report.py: INFO clients picks the ZeroMQ front's counters by name; the RESP
    front's errorstat_ counters go to errorstats only (node/log/redis_info.py)."""
    from types import SimpleNamespace

    from aofnode.log.report import Reporter

    config = SimpleNamespace(client_output_limit=1, channel_output_limit=2)
    zmq = {"connected_clients": 2, "waiting_bytes": 123, "clients_paused": 1,
           "auth_enabled_password": 1, "auth_failures": 4, "noauth_replies": 5, "authenticated_clients": 2}
    fronts = SimpleNamespace(counters=lambda: [zmq, {"resp_connected_clients": 3, "errorstat_ERR": 9}],
                             pending_bytes=lambda: 0, backpressure_pauses=0)
    rep = Reporter(config, None, {}, keyspace=None, writer=None, rewriter=None, closer=None, meter=None,
                   fronts=fronts, started=0.0)
    clients = rep._clients(*_split(fronts.counters()))
    assert clients["connected_clients"] == 5 and clients["resp_connected_clients"] == 3
    assert {k: clients[k] for k in ("waiting_bytes", "clients_paused", "auth_enabled_password",
                                    "auth_failures", "noauth_replies", "authenticated_clients")} == {
        "waiting_bytes": 123, "clients_paused": 1, "auth_enabled_password": 1, "auth_failures": 4,
        "noauth_replies": 5, "authenticated_clients": 2}
    assert "errorstat_ERR" not in clients


def _split(counters: list[dict]) -> tuple[dict, dict]:
    front, *others = counters
    extra: dict = {}
    for c in others:
        extra.update(c)
    return front, extra
