"""GEOADD, GEOPOS, GEODIST and GEOHASH on a real node: byte-identical RESP replies against
redis-server (RESP2 and RESP3; skipped without it), AOF replay and rewrite across restarts, and
the ZeroMQ front."""
from __future__ import annotations

import random
import shutil

import pytest
import redis

from tests.integration.test_parity_commands import _start_again
from tests.integration.test_resp_differential import differing_replies
from tests.integration.test_resp_front import _start
from tests.integration.test_rewrite import wait_rewrites

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")

GEO = [
    ("FLUSHALL",),
    ("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
    ("GEOADD", "g", "13.361389", "38.115556", "Palermo"), ("GEOADD", "g", "CH", "13", "38", "Palermo"),
    ("GEOADD", "g", "NX", "1", "1", "Palermo", "2", "2", "New"), ("GEOADD", "g", "XX", "3", "3", "Other"),
    ("GEOADD", "g", "XX", "CH", "3", "3", "New"), ("GEOADD", "g", "NX", "XX", "1", "1", "a"),
    ("GEOADD", "g", "1", "1", "a", "2"), ("GEOADD", "g", "CH", "CH", "CH"),
    ("GEOADD", "g", "GT", "1", "1"), ("GEOADD", "g", "200", "10", "a"),
    ("GEOADD", "g", "10", "-86", "a"), ("GEOADD", "g", "-180", "-85.05112878", "edge"),
    ("GEOADD", "g", "180", "85.05112878", "edge2"), ("GEOADD", "g", "inf", "1", "a"),
    ("GEOADD", "g", "x", "1", "a"), ("GEOADD", "g", "1", "nan", "a"), ("GEOADD", "g", " 1", "1", "a"),
    ("GEOADD", "g", "0", "0", "zero"), ("GEOADD", "g", "-0.0", "-0", "mzero"),
    ("GEOADD", "g", "1"), ("ZRANGE", "g", "0", "-1", "WITHSCORES"),
    ("GEOPOS", "g", "Palermo", "nope", "Catania", "edge", "edge2", "zero", "mzero"),
    ("GEOPOS", "g"), ("GEOPOS", "missing", "a", "b"),
    ("GEODIST", "g", "Palermo", "Catania"), ("GEODIST", "g", "Palermo", "Catania", "km"),
    ("GEODIST", "g", "Palermo", "Catania", "MI"), ("GEODIST", "g", "Palermo", "Catania", "ft"),
    ("GEODIST", "g", "Palermo", "Catania", "m"), ("GEODIST", "g", "Palermo", "Catania", "yd"),
    ("GEODIST", "g", "Palermo", "Catania", "km", "x"), ("GEODIST", "g", "Palermo", "nope"),
    ("GEODIST", "missing", "a", "b"), ("GEODIST", "g", "Palermo", "Palermo"),
    ("GEODIST", "g", "zero", "edge"), ("GEODIST", "g", "edge", "edge2", "km"),
    ("GEOHASH", "g", "Palermo", "Catania", "nope", "edge", "edge2", "zero"), ("GEOHASH", "g"),
    ("GEOHASH", "missing", "a"),
    ("ZADD", "z", "-5", "neg", "1e300", "huge", "4503599627370496", "big"),
    ("GEOPOS", "z", "big"), ("GEOHASH", "z", "big"),
    ("ZADD", "z", "inf", "i", "-inf", "ni", "18446744073709555712", "two64", "9223372036854777856", "two63"),
    ("GEOPOS", "z", "i", "ni", "two64", "two63", "neg", "huge"), ("GEOHASH", "z", "i", "ni", "two63"),
    ("GEODIST", "z", "i", "ni", "km"), ("GEODIST", "z", "neg", "two63"),
    ("SET", "s", "v"), ("GEOADD", "s", "1", "1", "a"), ("GEOADD", "s", "1", "100", "a"),
    ("GEOPOS", "s", "a"), ("GEODIST", "s", "a", "b"), ("GEODIST", "s", "a", "b", "yd"),
    ("GEOHASH", "s", "a"),
]


def _random_geo(rng: random.Random) -> list[tuple[str, ...]]:
    """Random positions across the whole range, then every read of them."""
    points = [(f"{rng.uniform(-180, 180):.6f}", f"{rng.uniform(-85.05, 85.05):.6f}", f"p{i}")
              for i in range(60)]
    out: list[tuple[str, ...]] = [("DEL", "r"), ("GEOADD", "r", *[x for p in points for x in p])]
    names = [p[2] for p in points]
    out += [("GEOPOS", "r", *names), ("GEOHASH", "r", *names), ("ZRANGE", "r", "0", "-1", "WITHSCORES")]
    out += [("GEODIST", "r", rng.choice(names), rng.choice(names), rng.choice(["m", "km", "mi", "ft"]))
            for _ in range(40)]
    return out


@needs_redis
@pytest.mark.parametrize("protocol", ["2", "3"])
def test_replies_are_redis_servers_bytes(make_node, redis_port, protocol):
    _node, port = _start(make_node, appendfsync="everysec")
    commands = GEO + _random_geo(random.Random(protocol))
    assert differing_replies({"redis": redis_port, "aofnode": port}, protocol, commands) == []


def test_geoadd_is_replayed_and_rewritten(make_node):
    node, port = _start(make_node, appendfsync="always")
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert r.geoadd("g", (13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania")) == 2
        assert r.geoadd("g", (1, 1, "Palermo"), xx=True, ch=True) == 1
        before = r.zrange("g", 0, -1, withscores=True)
        assert r.geodist("g", "Palermo", "Catania", "km") == pytest.approx(4309.1, abs=1)
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert r.zrange("g", 0, -1, withscores=True) == before
        r.bgrewriteaof()
    with node.client() as c:
        wait_rewrites(c, 1)
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert r.zrange("g", 0, -1, withscores=True) == before
        lon, lat = r.geopos("g", "Catania")[0]
        assert lon == pytest.approx(15.087269, abs=1e-5) and lat == pytest.approx(37.502669, abs=1e-5)


def test_the_zeromq_front_serves_geo(node):
    with node.client() as c:
        assert c.execute("GEOADD", "g", "13.361389", "38.115556", "Palermo") == 1
        assert c.execute("GEOPOS", "g", "Palermo", "nope") == [
            [b"13.36138933897018433", b"38.11555639549629859"], None]
        assert c.execute("GEOHASH", "g", "Palermo") == [b"sqc8b49rny0"]
        assert c.execute("GEODIST", "g", "Palermo", "Palermo") == b"0.0000"
