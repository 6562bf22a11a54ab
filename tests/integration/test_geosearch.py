"""GEORADIUS, GEORADIUSBYMEMBER (and their _RO forms), GEOSEARCH and GEOSEARCHSTORE on a real
node: byte-identical RESP replies against redis-server in RESP2 and RESP3 (skipped without it)
over a fixed set of cities and over random points (fixed seeds), including members at the same
place (ties in distance, whose order COUNT's partial sort decides); the stored results replayed
from the AOF and rewritten, with the source key gone; the ZeroMQ front."""
from __future__ import annotations

import random
import shutil
import socket

import pytest
import redis

from aofnode.bench.resp import encode_command
from tests.integration.test_parity_commands import _start_again
from tests.integration.test_resp_differential import differing_replies
from tests.integration.test_resp_front import _start
from tests.integration.test_rewrite import wait_rewrites
from tests.nodeproc import wait_for

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")

CITIES = [
    ("13.361389", "38.115556", "Palermo"), ("15.087269", "37.502669", "Catania"),
    ("12.496366", "41.902782", "Rome"), ("9.189982", "45.464204", "Milan"),
    ("2.352222", "48.856613", "Paris"), ("-0.127758", "51.507351", "London"),
    ("13.404954", "52.520008", "Berlin"), ("-3.703790", "40.416775", "Madrid"),
    ("-74.005974", "40.712776", "NewYork"), ("-73.935242", "40.730610", "Queens"),
    ("-118.243683", "34.052235", "LosAngeles"), ("139.691711", "35.689487", "Tokyo"),
    ("151.209290", "-33.868820", "Sydney"), ("174.763336", "-36.848461", "Auckland"),
    ("-179.9", "-16.5", "Fiji"), ("179.9", "-16.6", "Fiji2"), ("-58.381592", "-34.603722", "BuenosAires"),
    ("18.423300", "-33.918861", "CapeTown"), ("-21.942400", "64.146600", "Reykjavik"),
    ("25.7", "83.0", "Arctic"), ("-60.0", "-84.9", "Antarctic"), ("0", "0", "NullIsland"),
    ("13.361389", "38.115556", "Palermo2"), ("13.361389", "38.115556", "Palermo3"),
]
_ADD = ("GEOADD", "c", *[x for city in CITIES for x in city])

FIXED = [
    ("FLUSHALL",), _ADD,
    ("GEORADIUS", "c", "15", "37", "200", "km"),
    ("GEORADIUS", "c", "15", "37", "200", "km", "WITHDIST"),
    ("GEORADIUS", "c", "15", "37", "200", "km", "WITHCOORD", "WITHDIST", "WITHHASH", "ASC"),
    ("GEORADIUS", "c", "15", "37", "200", "km", "withhash", "withcoord", "desc"),
    ("GEORADIUS", "c", "15", "37", "200000", "m", "COUNT", "2"),
    ("GEORADIUS", "c", "15", "37", "200", "mi", "COUNT", "2", "DESC", "WITHDIST"),
    ("GEORADIUS", "c", "15", "37", "700000", "ft", "COUNT", "1", "ANY"),
    ("GEORADIUS", "c", "15", "37", "500", "KM", "COUNT", "3", "ANY", "ASC", "WITHDIST"),
    ("GEORADIUS", "c", "0", "0", "20000", "km", "WITHDIST"),
    ("GEORADIUS", "c", "0", "0", "inf", "km", "WITHDIST", "ASC"),
    ("GEORADIUS", "c", "0", "0", "1e300", "m", "ASC"),
    ("GEORADIUS", "c", "0", "0", "0", "m", "WITHDIST"),
    ("GEORADIUS", "c", "13.361389", "38.115556", "0", "km", "WITHDIST", "ASC"),
    ("GEORADIUS", "c", "179.99", "-16.55", "100", "km", "WITHDIST", "ASC"),
    ("GEORADIUS", "c", "-180", "-85.05112878", "10000", "km", "ASC"),
    ("GEORADIUS", "c", "180", "85.05112878", "2000", "km", "ASC", "WITHCOORD"),
    ("GEORADIUS", "c", "30", "80", "1000", "km", "ASC", "WITHDIST"),
    ("GEORADIUS", "c", "-74", "40.7", "5000", "km", "COUNT", "2", "ASC", "WITHDIST"),
    ("GEORADIUS", "c", "13.361389", "38.115556", "10", "km", "COUNT", "2"),
    ("GEORADIUS", "c", "13.361389", "38.115556", "10", "km", "COUNT", "2", "DESC"),
    # errors, in Redis's order
    ("GEORADIUS", "c", "15", "37", "200", "yd"), ("GEORADIUS", "c", "15", "37", "-1", "km"),
    ("GEORADIUS", "c", "15", "37", "x", "km"), ("GEORADIUS", "c", "x", "37", "x", "km"),
    ("GEORADIUS", "c", "181", "37", "1", "km"), ("GEORADIUS", "c", "15", "86", "1", "yd"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "COUNT", "0"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "COUNT", "-3"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "COUNT", "x", "bogus"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "COUNT"), ("GEORADIUS", "c", "15", "37", "1", "km", "ANY"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "bogus", "COUNT", "0"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "STORE"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "STORE", "d", "WITHDIST"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "WITHHASH", "STOREDIST", "d"),
    ("GEORADIUS_RO", "c", "15", "37", "200", "km", "STORE", "d"),
    ("GEORADIUS_RO", "c", "15", "37", "200", "km", "WITHDIST", "ASC"),
    ("GEORADIUS", "c", "15", "37", "200", "km", "FROMMEMBER", "Rome"),
    ("GEORADIUS", "missing", "15", "37", "200", "km"), ("GEORADIUS", "missing", "15", "99", "200", "km"),
    ("GEORADIUS", "missing", "15", "37", "200", "km", "ANY"),
    # BYMEMBER
    ("GEORADIUSBYMEMBER", "c", "Palermo", "200", "km", "WITHDIST", "WITHCOORD"),
    ("GEORADIUSBYMEMBER", "c", "Rome", "1000", "km", "ASC", "COUNT", "4", "WITHDIST"),
    ("GEORADIUSBYMEMBER_RO", "c", "Tokyo", "10000", "km", "DESC", "WITHHASH"),
    ("GEORADIUSBYMEMBER", "c", "nobody", "1", "km"), ("GEORADIUSBYMEMBER", "c", "nobody", "x", "yd"),
    ("GEORADIUSBYMEMBER", "c", "Rome", "x", "km"), ("GEORADIUSBYMEMBER", "c", "Rome", "1", "yd"),
    ("GEORADIUSBYMEMBER", "missing", "m", "-5", "yd"),
    ("GEORADIUSBYMEMBER", "missing", "m", "1", "km", "bogus"),
    ("GEORADIUSBYMEMBER", "missing", "m", "1", "km", "STORE", "d"),
    ("GEORADIUSBYMEMBER_RO", "c", "Rome", "1", "km", "STOREDIST", "d"),
    # GEOSEARCH
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYRADIUS", "1500", "km", "ASC", "WITHDIST"),
    ("GEOSEARCH", "c", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "ASC", "WITHCOORD"),
    ("GEOSEARCH", "c", "FROMLONLAT", "15", "37", "BYBOX", "4000", "400", "km", "WITHDIST", "WITHHASH"),
    ("GEOSEARCH", "c", "FROMLONLAT", "15", "37", "BYBOX", "400", "4000", "km", "DESC"),
    ("GEOSEARCH", "c", "FROMLONLAT", "-100", "-50", "BYBOX", "40000", "40000", "km", "ASC"),
    ("GEOSEARCH", "c", "FROMLONLAT", "0", "0", "BYBOX", "inf", "1", "km", "ASC"),
    ("GEOSEARCH", "c", "FROMLONLAT", "0", "0", "BYBOX", "0", "0", "km", "WITHDIST"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Palermo", "BYBOX", "1", "1", "mi", "COUNT", "2", "DESC"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Palermo", "BYBOX", "1000", "1000", "km", "COUNT", "3", "ANY"),
    ("GEOSEARCH", "c", "frommember", "Palermo", "byradius", "2000", "km", "count", "2", "any", "desc"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "FROMMEMBER", "Milan", "BYRADIUS", "10", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "FROMLONLAT", "1", "1", "BYRADIUS", "10", "km"),
    ("GEOSEARCH", "c", "FROMLONLAT", "1", "1", "FROMMEMBER", "Rome", "BYRADIUS", "10", "km"),
    ("GEOSEARCH", "c", "FROMLONLAT", "1", "1", "BYRADIUS", "10", "km", "BYBOX", "1", "1", "km"),
    ("GEOSEARCH", "c", "FROMLONLAT", "1", "1", "BYBOX", "1", "1", "km", "BYRADIUS", "1", "km"),
    ("GEOSEARCH", "c", "FROMLONLAT", "1", "1", "BYRADIUS", "10", "km", "BYRADIUS", "2000", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "nobody", "BYRADIUS", "10", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYRADIUS", "-10", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYRADIUS", "x", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYBOX", "x", "y", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYBOX", "1", "y", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYBOX", "1", "-1", "yd"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYBOX", "1", "1", "yd"),
    ("GEOSEARCH", "c", "FROMLONLAT", "200", "1", "BYBOX", "1", "1", "km"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYBOX", "1", "1"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYRADIUS", "10", "km", "STORE", "d"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYRADIUS", "10", "km", "STOREDIST"),
    ("GEOSEARCH", "c", "BYRADIUS", "10", "km", "WITHDIST"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "WITHDIST", "ASC"),
    ("GEOSEARCH", "c", "FROMMEMBER", "Rome", "BYRADIUS", "10", "km", "ANY"),
    ("GEOSEARCH", "missing", "FROMMEMBER", "Rome", "BYRADIUS", "10", "km"),
    ("GEOSEARCH", "missing", "FROMLONLAT", "1", "100", "BYRADIUS", "10", "km"),
    # STORE, STOREDIST, GEOSEARCHSTORE: the reply, then what was stored
    ("GEORADIUS", "c", "15", "37", "2000", "km", "STORE", "d"), ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "c", "15", "37", "2000", "km", "STOREDIST", "d", "COUNT", "3"),
    ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "c", "15", "37", "2000", "km", "STORE", "d", "STOREDIST", "e"),
    ("EXISTS", "d"), ("ZRANGE", "e", "0", "-1", "WITHSCORES"),
    ("GEORADIUSBYMEMBER", "c", "Rome", "500", "mi", "STOREDIST", "e", "DESC", "COUNT", "2"),
    ("ZRANGE", "e", "0", "-1", "WITHSCORES"),
    ("GEORADIUS", "c", "15", "37", "1", "km", "STORE", "e"), ("EXISTS", "e"),
    ("SET", "s", "x"), ("GEORADIUS", "c", "15", "37", "2000", "km", "STORE", "s"), ("TYPE", "s"),
    ("GEORADIUS", "missing", "15", "37", "2000", "km", "STORE", "s"), ("EXISTS", "s"),
    ("GEOSEARCHSTORE", "d", "c", "FROMMEMBER", "Rome", "BYRADIUS", "1500", "km", "STOREDIST"),
    ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
    ("GEOSEARCHSTORE", "d", "c", "FROMLONLAT", "15", "37", "BYBOX", "400", "400", "km", "COUNT", "1"),
    ("ZRANGE", "d", "0", "-1", "WITHSCORES"),
    ("GEOSEARCHSTORE", "d", "c", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "m"), ("EXISTS", "d"),
    ("GEOSEARCHSTORE", "d", "c", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "m", "WITHDIST"),
    ("GEOSEARCHSTORE", "d", "c", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "m", "STORE", "x"),
    ("GEOSEARCHSTORE", "d", "missing", "FROMLONLAT", "15", "37", "BYBOX", "1", "1", "m"),
    ("GEOSEARCHSTORE", "c", "c", "FROMMEMBER", "Rome", "BYRADIUS", "500", "km"),
    ("ZRANGE", "c", "0", "-1", "WITHSCORES"), _ADD,
    # wrong type, odd scores
    ("GEORADIUS", "s", "15", "37", "x", "km"), ("GEOSEARCH", "s", "bogus"),
    ("GEOSEARCHSTORE", "d", "s", "bogus"), ("GEORADIUSBYMEMBER", "s", "m", "1", "km"),
    ("ZADD", "z", "inf", "a", "-inf", "b", "1e300", "c", "-5", "d", "0", "e", "1.5", "f"),
    ("GEOPOS", "z", "a", "b", "c", "d", "e", "f"), ("GEODIST", "z", "a", "d"), ("GEOHASH", "z", "a", "b"),
    ("GEORADIUSBYMEMBER", "z", "a", "100", "km", "WITHCOORD", "WITHHASH"),
    ("GEORADIUSBYMEMBER", "z", "b", "100", "km", "WITHCOORD", "WITHHASH"),
    ("GEOSEARCH", "z", "FROMLONLAT", "-180", "-85", "BYRADIUS", "100", "km", "WITHDIST", "WITHHASH"),
]


def _near(rng: random.Random, lon: float, lat: float, spread: float) -> tuple[str, str]:
    return (f"{min(180.0, max(-180.0, lon + rng.uniform(-spread, spread))):.6f}",
            f"{min(85.0, max(-85.0, lat + rng.uniform(-spread, spread))):.6f}")


def _cluster(rng: random.Random, prefix: str, n: int, lon: float, lat: float, spread: float) -> list[str]:
    """``n`` points near (lon, lat), a third of them on a few shared spots (ties in distance)."""
    spots = [_near(rng, lon, lat, spread) for _ in range(4)]
    out: list[str] = []
    for i in range(n):
        out += [*(rng.choice(spots) if i % 3 == 0 else _near(rng, lon, lat, spread)), f"{prefix}{i}"]
    return out


def _random_searches(rng: random.Random, n: int) -> list[tuple[str, ...]]:
    """Points over the whole range and three clusters, then ``n`` random searches of every form
    (the STORE forms followed by what they stored)."""
    world = [x for i in range(300) for x in (f"{rng.uniform(-180, 180):.6f}",
                                             f"{rng.uniform(-85.05, 85.05):.6f}", f"w{i}")]
    points = world + _cluster(rng, "a", 400, 2.35, 48.85, 0.05) + _cluster(rng, "b", 150, 179.95, 0, 0.1) \
        + _cluster(rng, "c", 100, -40, 84.5, 0.5)
    out: list[tuple[str, ...]] = [("DEL", "r", "rd"), ("GEOADD", "r", *points)]
    members = [points[i] for i in range(2, len(points), 3)]
    centres = [(2.35, 48.85), (179.95, 0.0), (-179.99, 0.05), (-40.0, 84.5), (0.0, 0.0)]
    for _ in range(n):
        if rng.random() < 0.5:
            lon, lat = rng.choice(centres)
            lon, lat = lon + rng.uniform(-0.02, 0.02), lat + rng.uniform(-0.02, 0.02)
        else:
            lon, lat = rng.uniform(-180, 180), rng.uniform(-85, 85)
        lon, lat = max(-180.0, min(180.0, lon)), max(-85.0, min(85.0, lat))
        unit = rng.choice(["m", "km", "mi", "ft"])
        per_unit = {"m": 1, "km": 1000, "mi": 1609.34, "ft": 0.3048}[unit]
        size = f"{10 ** rng.uniform(2, 7.3) / per_unit:.3f}"
        size2 = f"{10 ** rng.uniform(2, 7.3) / per_unit:.3f}"
        opts: list[str] = []
        if rng.random() < 0.6:
            opts += ["COUNT", str(rng.choice([1, 2, 3, 5, 8, 20, 45, 100]))]
            if rng.random() < 0.3:
                opts.append("ANY")
        if rng.random() < 0.6:
            opts.append(rng.choice(["ASC", "DESC"]))
        withs = [w for w in ("WITHDIST", "WITHHASH", "WITHCOORD") if rng.random() < 0.4]
        form = rng.randrange(5)
        centre = (["FROMLONLAT", f"{lon:.6f}", f"{lat:.6f}"] if rng.random() < 0.6
                  else ["FROMMEMBER", rng.choice(members)])
        by = ["BYRADIUS", size, unit] if rng.random() < 0.5 else ["BYBOX", size, size2, unit]
        if form == 0:
            out.append(("GEORADIUS", "r", f"{lon:.6f}", f"{lat:.6f}", size, unit, *opts, *withs))
        elif form == 1:
            out.append(("GEORADIUSBYMEMBER_RO", "r", rng.choice(members), size, unit, *opts, *withs))
        elif form == 2:
            out.append(("GEOSEARCH", "r", *centre, *by, *opts, *withs))
        elif form == 3:
            out.append(("GEOSEARCHSTORE", "rd", "r", *centre, *by, *opts,
                        *(["STOREDIST"] if rng.random() < 0.5 else [])))
            out.append(("ZRANGE", "rd", "0", "-1", "WITHSCORES"))
        else:
            out.append(("GEORADIUS", "r", f"{lon:.6f}", f"{lat:.6f}", size, unit, *opts,
                        rng.choice(["STORE", "STOREDIST"]), "rd"))
            out.append(("ZRANGE", "rd", "0", "-1", "WITHSCORES"))
    return out


@needs_redis
@pytest.mark.parametrize("protocol", ["2", "3"])
def test_replies_are_redis_servers_bytes(make_node, redis_port, protocol):
    _node, port = _start(make_node, appendfsync="everysec")
    commands = FIXED + _random_searches(random.Random(int(protocol)), 200)
    assert differing_replies({"redis": redis_port, "aofnode": port}, protocol, commands) == []
    with redis.Redis(port=port, socket_timeout=5) as r:  # the data were there to be searched
        assert r.zcard("c") == len(CITIES) and r.zcard("r") == 950
        near = r.execute_command("GEORADIUS", "r", "2.35", "48.85", "10", "km", "COUNT", "300")
        assert len(near) == 300


def test_stores_are_replayed_and_rewritten_without_their_source(make_node):
    """GEORADIUS STORE / GEOSEARCHSTORE are logged as the sorted sets they made (DEL + ZADD): the
    source key is deleted before the restarts, so a replay of the search itself would store
    nothing."""
    node, port = _start(make_node, appendfsync="always")
    with redis.Redis(port=port, socket_timeout=5) as r:
        r.execute_command(*_ADD)
        r.zadd("d", {"old": 1})
        r.zadd("e", {"old": 2})
        assert r.execute_command("GEORADIUS", "c", "15", "37", "2000", "km", "STORE", "d") == 9
        assert r.execute_command("GEOSEARCHSTORE", "e", "c", "FROMMEMBER", "Rome", "BYBOX", "1500",
                                 "1500", "km", "COUNT", "3", "STOREDIST") == 3
        assert r.execute_command("GEORADIUSBYMEMBER", "c", "Tokyo", "1", "km", "STORE", "f") == 1
        assert r.execute_command("GEORADIUS", "c", "0", "-80", "1", "m", "STORE", "f") == 0
        stored = {k: r.zrange(k, 0, -1, withscores=True) for k in ("d", "e", "f")}
        assert [m for m, _ in stored["e"]] == [b"Rome", b"Palermo", b"Palermo2"] and stored["f"] == []
        r.delete("c")
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert {k: r.zrange(k, 0, -1, withscores=True) for k in ("d", "e", "f")} == stored
        assert r.exists("c") == 0
        r.bgrewriteaof()
    with node.client() as c:
        wait_rewrites(c, 1)
    assert node.stop() == 0
    node.start()
    _start_again(port)
    with redis.Redis(port=port, socket_timeout=5) as r:
        assert {k: r.zrange(k, 0, -1, withscores=True) for k in ("d", "e", "f")} == stored


def test_the_zeromq_front_serves_geo_searches(node):
    with node.client() as c:
        assert c.execute("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269",
                         "37.502669", "Catania") == 2
        assert c.execute("GEORADIUS", "g", "15", "37", "200", "km", "WITHDIST", "WITHHASH",
                         "WITHCOORD", "ASC") == [
            [b"Catania", b"56.4413", 3479447370796909, [b"15.08726745843887329", b"37.50266842333162032"]],
            [b"Palermo", b"190.4424", 3479099956230698, [b"13.36138933897018433", b"38.11555639549629859"]]]
        assert c.execute("GEOSEARCH", "g", "FROMMEMBER", "Palermo", "BYBOX", "400", "400", "km",
                         "DESC") == [b"Catania", b"Palermo"]
        assert c.execute("GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "100",
                         "km", "STOREDIST") == 1
        assert c.execute("ZRANGE", "d", "0", "-1", "WITHSCORES") == [b"Catania", b"56.441257870158204"]
        err = c.execute_many([("GEORADIUS_RO", "g", "15", "37", "1", "km", "STORE", "d")])[0]
        assert "syntax error" in str(err)



def test_a_search_reply_past_the_output_limit_cuts_the_client_off(make_node):
    """A map-wide search's replies are bounded as any reply is: a client that does not read
    them is cut off past --client-output-limit, the actors live on and others are served."""
    node, port = _start(make_node, "--client-output-limit", "1mb", appendfsync="everysec")
    rng = random.Random(3)
    points = [x for i in range(30_000) for x in (f"{rng.uniform(-180, 180):.6f}",
                                                f"{rng.uniform(-85, 85):.6f}", f"p{i}")]
    with redis.Redis(port=port, socket_timeout=30) as r:
        assert r.execute_command("GEOADD", "g", *points) == 30_000
    pids = node.actor_pids()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    search = encode_command("GEOSEARCH", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "21000", "km",
                            "WITHCOORD")  # ~2.2 MB of reply each

    def cut():
        try:
            s.sendall(search)  # never reads
        except OSError:
            return True
        return node.events("client_output_limit_reached")
    wait_for(cut, timeout=120, what="the client that does not read cut off")
    s.close()
    with redis.Redis(port=port, socket_timeout=30) as r:
        assert len(r.execute_command("GEORADIUS", "g", "0", "0", "1000", "km")) > 0
    assert node.actor_pids() == pids
