"""A RESP client that sends its commands and then half-closes (shutdown(SHUT_WR), as nc -N,
socat and shell pipes do) gets every reply, flushed, and then the connection closes: as
redis-server 7.0 does, whose bytes are compared when it is installed."""
from __future__ import annotations

import shutil
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.nodeproc import Node, RedisServer, free_port, wait_for

STREAMS = 100


def _half_closed(port: int, i: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"SET hc %d\r\nPING\r\n" % i)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk


def _up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16) == b"+PONG\r\n"
    except OSError:
        return False


@pytest.mark.parametrize("appendfsync", ["always", "no"])
def test_every_half_closed_stream_gets_its_replies(tmp_path, appendfsync):
    port = free_port()
    node = Node(tmp_path / "node", appendfsync=appendfsync, extra=("--resp-bind", f"127.0.0.1:{port}"))
    (tmp_path / "node").mkdir()
    node.start()
    try:
        wait_for(lambda: _up(port), 20, what="RESP front up")
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda i: _half_closed(port, i), range(STREAMS)))
        answered = sum(g == b"+OK\r\n+PONG\r\n" for g in got)
        assert answered == STREAMS, [g for g in got if g != b"+OK\r\n+PONG\r\n"][:5]
        with node.client() as c:
            assert int(c.execute("GET", "hc")) in range(STREAMS)
    finally:
        node.kill_all()


def test_half_close_bytes_match_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed: no reference bytes")
    port = free_port()
    node = Node(tmp_path / "node", appendfsync="no", extra=("--resp-bind", f"127.0.0.1:{port}"))
    (tmp_path / "node").mkdir()
    node.start()
    redis = RedisServer(tmp_path / "redis")
    try:
        wait_for(lambda: _up(port), 20, what="RESP front up")
        streams = [b"SET hc 1\r\nPING\r\n", b"GET hc\r\nDEL hc\r\nGET hc\r\n",
                   b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$2\r\nhc\r\n", b"PING\r\nGET",
                   b"NOSUCH x\r\nPING\r\n"]
        for stream in streams:
            replies = []
            for p in (port, redis.port):
                with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
                    s.sendall(stream)
                    s.shutdown(socket.SHUT_WR)
                    data = b""
                    while chunk := s.recv(4096):
                        data += chunk
                replies.append(data)
            assert replies[0] == replies[1], stream
    finally:
        redis.stop()
        node.kill_all()
