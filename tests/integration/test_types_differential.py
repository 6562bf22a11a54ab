"""Lists, sets and sorted sets against redis-server itself: the same random command stream, sent
over RESP2 to a real node (``--resp-bind``) and to redis-server, must get the same replies,
errors included. Replies are compared parsed, not as bytes: a null array (``*-1``) and a null
bulk (``$-1``) are both None here (aofnode's reply values have one null; docs/resp.md), and the
members of a set reply are compared sorted (a set has no order). Skipped without redis-server."""
from __future__ import annotations

import random
import shutil
import socket

import pytest

from aofnode.bench.resp import ReplyParser, RespError, encode_command
from tests.integration.test_resp_front import _start

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server is not installed")

UNORDERED = {"SMEMBERS", "SINTER", "SUNION", "SDIFF"}
KEYS = ["k1", "k2", "k3", "str"]


def _common(rng):
    k, k2 = rng.choice(KEYS), rng.choice(KEYS)
    return rng.choice([
        ("DEL", k), ("TYPE", k), ("EXISTS", k, k2), ("RENAME", k, k2), ("SET", "str", "x"),
        ("GET", k), ("HSET", k, "f", "v"), ("EXPIRE", k, "1000"), ("TTL", k), ("PERSIST", k),
        ("SCAN", "0", "TYPE", rng.choice(["list", "set", "zset", "string"]), "COUNT", "1000"),
    ])


def list_command(rng):
    k, k2 = rng.choice(KEYS), rng.choice(KEYS)
    v = rng.choice(["a", "b", "c"])
    i, j = str(rng.randrange(-5, 5)), str(rng.randrange(-5, 5))
    side, side2 = rng.choice(["LEFT", "RIGHT", "left", "UP"]), rng.choice(["LEFT", "RIGHT"])
    return rng.choice([
        ("LPUSH", k, v, v), ("RPUSH", k, v), ("LPUSHX", k, v), ("RPUSHX", k, v), ("LPOP", k),
        ("RPOP", k, str(rng.randrange(-1, 4))), ("LLEN", k), ("LINDEX", k, i), ("LSET", k, i, v),
        ("LRANGE", k, i, j), ("LTRIM", k, i, j), ("LREM", k, i, v),
        ("LINSERT", k, rng.choice(["BEFORE", "AFTER", "X"]), v, "z"),
        ("LPOS", k, v, "RANK", rng.choice(["1", "-1", "2", "0"]), "COUNT", rng.choice(["0", "1"])),
        ("LPOS", k, v, "MAXLEN", str(rng.randrange(-1, 4))), ("LMOVE", k, k2, side, side2),
        ("RPOPLPUSH", k, k2), ("LMPOP", str(rng.randrange(0, 3)), k, k2, side,
                                "COUNT", str(rng.randrange(0, 3))),
        # blocking pops: served at once, or a 1 ms timeout (never 0: that waits forever)
        ("BLPOP", k, k2, _timeout(rng)), ("BRPOP", k, _timeout(rng)),
        ("BLMOVE", k, k2, side, side2, _timeout(rng)), ("BRPOPLPUSH", k, k2, _timeout(rng)),
        ("BLMPOP", _timeout(rng), str(rng.randrange(0, 3)), k, k2, side, "COUNT",
         str(rng.randrange(0, 3))),
    ] + [_common(rng)])


def _timeout(rng):
    return rng.choice(["0.001", "0.001", "-1", "x", "0.0001"])


def set_command(rng):
    k, k2, k3 = rng.choice(KEYS), rng.choice(KEYS), rng.choice(KEYS)
    m = rng.choice(["a", "b", "c", "1", "2"])
    return rng.choice([
        ("SADD", k, m, "b"), ("SREM", k, m), ("SCARD", k), ("SISMEMBER", k, m),
        ("SMISMEMBER", k, m, "a"), ("SMEMBERS", k), ("SMOVE", k, k2, m), ("SINTER", k, k2),
        ("SUNION", k, k2, k3), ("SDIFF", k, k2), ("SINTERSTORE", k3, k, k2),
        ("SUNIONSTORE", k3, k, k2), ("SDIFFSTORE", k3, k, k2),
        ("SINTERCARD", str(rng.randrange(0, 3)), k, k2, "LIMIT", str(rng.randrange(-1, 3))),
        ("SPOP", k, "0"), ("SRANDMEMBER", k, "0"), ("SPOP", k, "-1"),
    ] + [_common(rng)])


def zset_command(rng):
    k, k2, k3 = rng.choice(KEYS), rng.choice(KEYS), rng.choice(KEYS)
    m = rng.choice(["a", "b", "c", "d"])
    s = rng.choice(["0", "1", "-1.5", "0.1", "inf", "-inf", "1e3", "x", "2.25"])
    lo, hi = rng.choice([("-inf", "+inf"), ("(0", "1"), ("0.1", "(1000"), ("x", "1")])
    llo, lhi = rng.choice([("-", "+"), ("[b", "(d"), ("(a", "[c"), ("a", "+")])
    flags = rng.choice([[], ["NX"], ["XX"], ["GT"], ["LT", "CH"], ["INCR"], ["NX", "GT"]])
    by = rng.choice([[], ["BYSCORE"], ["REV"], ["BYSCORE", "REV", "LIMIT", "1", "2"],
                     ["WITHSCORES"], ["LIMIT", "0", "1"]])
    return rng.choice([
        ("ZADD", k, *flags, s, m), ("ZADD", k, s, m, "2", "e"), ("ZINCRBY", k, s, m),
        ("ZSCORE", k, m), ("ZMSCORE", k, m, "e"), ("ZCARD", k), ("ZCOUNT", k, lo, hi),
        ("ZLEXCOUNT", k, llo, lhi), ("ZRANK", k, m), ("ZREVRANK", k, m),
        ("ZRANGE", k, "0", "-1", "WITHSCORES"), ("ZRANGE", k, lo, hi, *by),
        ("ZRANGE", k, llo, lhi, "BYLEX"), ("ZRANGEBYSCORE", k, lo, hi, "WITHSCORES"),
        ("ZREVRANGEBYSCORE", k, hi, lo, "LIMIT", "0", "2"), ("ZRANGEBYLEX", k, llo, lhi),
        ("ZREVRANGEBYLEX", k, lhi, llo), ("ZREVRANGE", k, "0", "1", "WITHSCORES"),
        ("ZRANGESTORE", k3, k, lo, hi, "BYSCORE"), ("ZREM", k, m, "e"),
        ("ZREMRANGEBYRANK", k, "0", "0"), ("ZREMRANGEBYSCORE", k, lo, hi),
        ("ZREMRANGEBYLEX", k, llo, lhi), ("ZPOPMIN", k), ("ZPOPMAX", k, "2"),
        ("ZMPOP", "2", k, k2, rng.choice(["MIN", "MAX", "MID"]), "COUNT", "2"),
        ("ZUNION", "2", k, k2, "WITHSCORES"),
        ("ZUNIONSTORE", k3, "2", k, k2, "WEIGHTS", "2", s, "AGGREGATE",
         rng.choice(["SUM", "MIN", "MAX", "AVG"])),
        ("ZINTER", "2", k, k2, "WITHSCORES"), ("ZINTERSTORE", k3, "2", k, k2),
        ("ZDIFF", "2", k, k2, "WITHSCORES"), ("ZDIFFSTORE", k3, "2", k, k2),
        ("ZINTERCARD", "2", k, k2), ("ZUNION", "0", k), ("SADD", k, m),
        ("ZRANDMEMBER", k, "0"), ("BZPOPMIN", k, k2, _timeout(rng)), ("BZPOPMAX", k, _timeout(rng)),
        ("BZMPOP", _timeout(rng), "2", k, k2, rng.choice(["MIN", "MAX", "MID"]), "COUNT", "2"),
    ] + [_common(rng)])


def _normal(command, reply):
    if isinstance(reply, RespError):
        return ("error", str(reply))
    if command[0].upper() in UNORDERED and isinstance(reply, list):
        return sorted(reply)
    if command[0] == "SCAN" and isinstance(reply, list):
        return [reply[0], sorted(reply[1])]
    return reply


def _send_all(sock, commands):
    sock.sendall(b"".join(encode_command(*c) for c in commands))
    parser, out = ReplyParser(), []
    while len(out) < len(commands):
        data = sock.recv(1 << 16)
        assert data, "connection closed"
        parser.feed(data)
        out.extend(parser.replies())
    return out


@pytest.mark.parametrize("generator", [list_command, set_command, zset_command])
def test_random_stream_gets_redis_servers_replies(make_node, redis_port, generator):
    _node, port = _start(make_node, appendfsync="everysec")
    rng = random.Random(generator.__name__)
    socks = {name: socket.create_connection(("127.0.0.1", p), timeout=10)
             for name, p in (("redis", redis_port), ("aofnode", port))}
    try:
        for sock in socks.values():
            _send_all(sock, [("FLUSHALL",)])
        differences = []
        for _ in range(10):
            commands = [generator(rng) for _ in range(200)]
            got = {name: _send_all(sock, commands) for name, sock in socks.items()}
            for command, want, have in zip(commands, got["redis"], got["aofnode"]):
                if _normal(command, want) != _normal(command, have):
                    differences.append((command, want, have))
        assert differences[:10] == []
    finally:
        for sock in socks.values():
            sock.close()
