"""Before AUTH, Redis 7 checks its unauthenticated caps (10 elements, 16 KiB per bulk) before
its general ones, so a client that sends a big length hears that it is unauthenticated: the
parser's answers, as a table, and the same table against redis-server's bytes when installed."""
from __future__ import annotations

import shutil
import socket

import pytest

from aofnode.protocol import RequestParser
from tests.nodeproc import RedisServer

UNAUTH_BULK = "Protocol error: unauthenticated bulk length"
UNAUTH_MULTIBULK = "Protocol error: unauthenticated multibulk length"
INVALID_BULK = "Protocol error: invalid bulk length"
INVALID_MULTIBULK = "Protocol error: invalid multibulk length"

TABLE = [  # (bytes from a client that has not sent AUTH, the error, or None: no error yet)
    (b"*1\r\n$100000000\r\n", UNAUTH_BULK),  # past the 64 MiB cap too: pre-AUTH first
    (b"*1\r\n$67108865\r\n", UNAUTH_BULK),
    (b"*1\r\n$16385\r\n", UNAUTH_BULK),
    (b"*1\r\n$16384\r\n", None),
    (b"*1\r\n$600000000\r\n", INVALID_BULK),  # past Redis's own 512 MiB: invalid for it too
    (b"*1\r\n$-5\r\n", INVALID_BULK),
    (b"*1\r\n$abc\r\n", INVALID_BULK),
    (b"*11\r\n", UNAUTH_MULTIBULK),
    (b"*2000000\r\n", UNAUTH_MULTIBULK),  # past the 1,048,577 cap too
    (b"*3000000000\r\n", INVALID_MULTIBULK),  # past INT_MAX: invalid for Redis too
    (b"*abc\r\n", INVALID_MULTIBULK),
    (b"*10\r\n", None),
    (b"*-1\r\n", None),
]


def _parser_bytes(data: bytes) -> bytes:
    p = RequestParser(authenticated=False)
    assert p.feed(data) == []
    return b"" if p.error is None else b"-ERR %s\r\n" % p.error.encode()


@pytest.mark.parametrize("data,error", TABLE)
def test_preauth_caps_come_first(data, error):
    p = RequestParser(authenticated=False)
    assert p.feed(data) == []
    assert p.error == error


def test_preauth_table_matches_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed: no reference bytes")
    redis = RedisServer(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as s:
            s.sendall(b"CONFIG SET requirepass s3cret\r\n")
            assert s.recv(100) == b"+OK\r\n"
        for data, _ in TABLE:
            with socket.create_connection(("127.0.0.1", redis.port), timeout=10) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while chunk := s.recv(4096):
                    got += chunk
            assert got == _parser_bytes(data), data
    finally:
        redis.stop()
