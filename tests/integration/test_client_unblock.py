"""CLIENT UNBLOCK on a real node, beside redis-server 7.0.15: every blocking pop unblocked in
each mode, in RESP2 and RESP3, must get Redis's bytes (the blocked client's reply and CLIENT
UNBLOCK's), and count in INFO as Redis counts it. Skipped without redis-server."""
from __future__ import annotations

import shutil
import socket
import threading

import pytest

from aofnode.bench.resp import ReplyParser, encode_command
from aofnode.client import Client
from tests.integration.test_resp_front import _start, _wait_resp
from tests.nodeproc import Node, free_port, wait_for

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

# Each blocking pop, on keys that do not exist (the test deletes them first).
BLOCKING = [
    ("BLPOP", "l1", "l2", "0"), ("BRPOP", "l1", "0"), ("BLMOVE", "l1", "l2", "LEFT", "RIGHT", "0"),
    ("BRPOPLPUSH", "l1", "l2", "0"), ("BLMPOP", "0", "2", "l1", "l2", "LEFT", "COUNT", "2"),
    ("BZPOPMIN", "z1", "0"), ("BZPOPMAX", "z1", "z2", "0"), ("BZMPOP", "0", "1", "z1", "MAX"),
]
MODES = [(), ("TIMEOUT",), ("ERROR",), ("timeout",), ("error",)]


class Conn:
    """One RESP connection: each reply's raw bytes."""

    def __init__(self, port: int, protocol: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.parser = ReplyParser()
        self.ready: list[bytes] = []
        if protocol == "3":
            self.call("HELLO", "3")

    def send(self, *command) -> None:
        self.sock.sendall(encode_command(*command))

    def read(self, n: int = 1) -> bytes:
        """The next ``n`` replies' bytes (no more is asked for before they are read)."""
        raw, got = b"", 0
        while got < n:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            raw += data
            self.parser.feed(data)
            got += len(self.parser.replies())
        assert got == n
        return raw

    def call(self, *command) -> bytes:
        self.send(*command)
        return self.read()

    def info(self, section: str) -> dict[str, str]:
        self.send("INFO", section)
        parser, raw = ReplyParser(), b""
        while True:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            raw += data
            parser.feed(data)
            got = parser.replies()
            if got:
                self.parser = ReplyParser()
                text = got[0].decode() if isinstance(got[0], bytes) else str(got[0])
                return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def close(self) -> None:
        self.sock.close()


def _blocked(ctl: Conn) -> int:
    return int(ctl.info("clients")["blocked_clients"])


def _transcript(port: int, protocol: str) -> list:
    """Every blocking pop unblocked in every mode, the error cases, and the client's use after."""
    ctl, blk = Conn(port, protocol), Conn(port, protocol)
    try:
        blk_id = int(blk.call("CLIENT", "ID")[1:-2])
        ctl_id = int(ctl.call("CLIENT", "ID")[1:-2])
        out = []
        for command in BLOCKING:
            for mode in MODES:
                ctl.call("DEL", "l1", "l2", "z1", "z2")
                blk.send(*command)
                wait_for(lambda: _blocked(ctl) == 1, 10, what=f"{command[0]} blocked")
                unblock = ctl.call("CLIENT", "UNBLOCK", str(blk_id), *mode)
                out.append((command[0], mode, unblock, blk.read()))
        assert _blocked(ctl) == 0
        # not blocked, unknown, refused
        ids = {"BLK": str(blk_id), "CTL": str(ctl_id)}  # named so: the ids differ by server
        for args in [("BLK",), ("CTL",), ("BLK", "ERROR"), ("0",), ("-5",), ("99999",), ("asd",),
                     ("asd", "foo"), ("BLK", "foo"), (), ("BLK", "ERROR", "x"), ("1.5",),
                     ("99999999999999999999",), ("+1",), (" 1",)]:
            sent = [ids.get(a, a) for a in args]
            out.append(("unblock", args, ctl.call("CLIENT", "UNBLOCK", *sent)))
        # queued in a transaction: runs at EXEC, in the block
        blk.send("BLPOP", "l1", "0")
        wait_for(lambda: _blocked(ctl) == 1, 10, what="BLPOP blocked")
        out.append(("multi", [ctl.call("MULTI"), ctl.call("CLIENT", "UNBLOCK", str(blk_id), "ERROR"),
                              ctl.call("CLIENT", "UNBLOCK", str(blk_id)), ctl.call("EXEC")], blk.read()))
        # under CLIENT REPLY OFF: no reply to it, but the waiter is answered all the same
        blk.send("BLPOP", "l1", "0")
        wait_for(lambda: _blocked(ctl) == 1, 10, what="BLPOP blocked")
        ctl.send("CLIENT", "REPLY", "OFF")
        ctl.send("CLIENT", "UNBLOCK", str(blk_id), "ERROR")
        out.append(("reply off", blk.read(), ctl.call("CLIENT", "REPLY", "ON")))
        # the blocked client's pipeline waits behind the pop, and runs after the unblock
        blk.send("BLPOP", "l1", "0")
        blk.send("ECHO", "after")
        wait_for(lambda: _blocked(ctl) == 1, 10, what="BLPOP blocked")
        out.append(("pipeline", ctl.call("CLIENT", "UNBLOCK", str(blk_id)), blk.read(2)))
        # and it still blocks and is served as before
        blk.send("BLPOP", "l1", "0")
        wait_for(lambda: _blocked(ctl) == 1, 10, what="BLPOP blocked")
        out.append(("served", ctl.call("LPUSH", "l1", "x"), blk.read()))
        return out
    finally:
        ctl.close()
        blk.close()


def _stats(port: int, mode: tuple) -> dict:
    """INFO's counts after one BLPOP unblocked in ``mode`` (Redis's conf_info test, in full)."""
    ctl, blk = Conn(port, "2"), Conn(port, "2")
    try:
        blk_id = int(blk.call("CLIENT", "ID")[1:-2])
        ctl.call("DEL", "l1")
        ctl.call("CONFIG", "RESETSTAT")
        blk.send("BLPOP", "l1", "0")
        wait_for(lambda: _blocked(ctl) == 1, 10, what="BLPOP blocked")
        ctl.call("CLIENT", "UNBLOCK", str(blk_id), *mode)
        blk.read()
        errors = ctl.info("errorstats")
        commands = ctl.info("commandstats")
        stats = ctl.info("stats")

        def counts(field: str) -> str:  # calls=1,usec=...: the usec vary
            return ",".join(kv for kv in commands.get(field, "").split(",") if "usec" not in kv)
        return {"errorstats": errors, "total_error_replies": stats["total_error_replies"],
                "blpop": counts("cmdstat_blpop"), "client|unblock": counts("cmdstat_client|unblock")}
    finally:
        ctl.close()
        blk.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory, redis_port):
    """One node for the module beside the module's redis-server: the transcripts clean up."""
    port = free_port()
    node = Node(tmp_path_factory.mktemp("node"), appendfsync="always",
                extra=("--resp-bind", f"127.0.0.1:{port}")).start()
    _wait_resp(port)
    yield {"redis": redis_port, "aofnode": port}
    node.kill_all()


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_unblock_replies_are_redis_servers_bytes(pair, protocol):
    theirs = _transcript(pair["redis"], protocol)
    ours = _transcript(pair["aofnode"], protocol)
    assert [row for row in zip(ours, theirs) if row[0] != row[1]] == []
    assert len(ours) == len(theirs)
    # and what they are, so that a change in both would still be seen
    assert ("BLPOP", ("ERROR",), b":1\r\n", b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n") in ours
    assert ("unblock", ("asd",), b"-ERR value is not an integer or out of range\r\n") in ours


@pytest.mark.parametrize("mode", [("ERROR",), ("TIMEOUT",)])
def test_unblock_counts_in_info_as_redis_counts(pair, mode):
    ours, theirs = _stats(pair["aofnode"], mode), _stats(pair["redis"], mode)
    assert ours == theirs
    if mode == ("ERROR",):
        assert ours["errorstats"] == {"errorstat_UNBLOCKED": "count=1"}
        assert ours["blpop"] == "calls=1,rejected_calls=0,failed_calls=1"
        assert ours["total_error_replies"] == "1"


def test_a_zeromq_client_cannot_be_named(make_node):
    """ZeroMQ clients have no CLIENT ID: CLIENT UNBLOCK reaches RESP connections only, even when
    a ZeroMQ client's number on its own front is the id given."""
    node, port = _start(make_node)
    with Client(node.endpoint, timeout=10) as zmq_client:
        ctl = Conn(port, "2")
        try:
            got: dict = {}
            t = threading.Thread(target=lambda: got.setdefault("r", zmq_client.execute("BLPOP", "q", "3")),
                                 daemon=True)
            t.start()
            wait_for(lambda: _blocked(ctl) == 1, 10, what="the ZeroMQ client blocked")
            assert [ctl.call("CLIENT", "UNBLOCK", str(i), "ERROR") for i in range(1, 5)] == [b":0\r\n"] * 4
            assert _blocked(ctl) == 1
            ctl.call("RPUSH", "q", "job")
            t.join(10)
            assert got == {"r": [b"q", b"job"]}
        finally:
            ctl.close()
