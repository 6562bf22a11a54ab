"""The tracking table in process (node/log/tracking.py) over a real Executor, and the Invalidate
message's wire form. The RESP behaviour, against redis-server: tests/integration/test_tracking.py."""
from __future__ import annotations

import pytest

from aofnode.log.tracking import Tracking
from aofnode.log.work import CLIENT_BITS
from aofnode.protocol.errors import Error
from aofnode.runtime import messages as m
from aofnode.store.executor import Executor

BASE = 1 << CLIENT_BITS  # front connection 1
A, B = BASE | 7, BASE | 8


class _Owner:
    """What the table reads of the log actor: the executor and the running client."""

    def __init__(self) -> None:
        self.executor = Executor()
        self._client = 0
        self.tx_running = False


@pytest.fixture
def table():
    return Tracking(_Owner(), max_keys=3)


def _as(table: Tracking, client: int, *argv: bytes):
    table.actor._client = client
    name, args = argv[0].decode().upper(), list(argv[1:])
    if name == "CLIENT":
        return table._client_command(0, args)
    run = table.wrap(lambda pending, item, writes: table.actor.executor.execute(0, item[0], item[1]))
    return run(None, (name, tuple(args)), [])


def _pushes(table: Tracking) -> list[tuple[int, list, bool, int]]:
    return [(msg.client, msg.pushes, msg.redirected, msg.broken) for _conn, msg in table.take()]


def test_a_read_is_remembered_and_a_change_invalidates_it_once(table):
    assert _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on") == "OK"
    _as(table, A, b"GET", b"k")
    assert table.info()["tracking_total_keys"] == 1
    _as(table, B, b"SET", b"k", b"1")
    _as(table, B, b"SET", b"k", b"2")  # forgotten after the first change
    assert _pushes(table) == [(7, [[b"k"]], False, 0)]
    assert table.info()["tracking_total_items"] == 0


def test_noloop_skips_the_clients_own_changes(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on", b"NOLOOP")
    _as(table, A, b"GET", b"k")
    _as(table, A, b"SET", b"k", b"1")
    assert _pushes(table) == []


def test_a_redirect_goes_to_its_target_until_the_target_is_gone(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"1", b"on", b"REDIRECT", b"8")
    _as(table, A, b"GET", b"k")
    _as(table, B, b"SET", b"k", b"1")
    assert _pushes(table) == [(8, [[b"k"]], True, 0)]
    table.forget(B)
    _as(table, A, b"GET", b"k")
    _as(table, A, b"SET", b"k", b"2")
    assert _pushes(table) == [(7, [], False, 8)]
    assert b"broken_redirect" in _as(table, A, b"CLIENT", b"TRACKINGINFO")["flags"]


def test_bcast_sends_each_prefix_once_per_cycle(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on", b"BCAST", b"PREFIX", b"a:", b"PREFIX", b"b:")
    _as(table, B, b"MSET", b"a:1", b"x", b"c:1", b"x", b"a:2", b"x")
    assert _pushes(table) == [(7, [[b"a:1", b"a:2"]], False, 0)]
    assert table.info()["tracking_total_prefixes"] == 2


def test_flush_invalidates_everything_and_empties_the_table(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on")
    _as(table, A, b"MGET", b"x", b"y")
    _as(table, B, b"FLUSHALL")
    assert _pushes(table) == [(7, [None], False, 0)]
    assert table.info()["tracking_total_keys"] == 0


def test_the_bound_forgets_the_oldest_keys_with_their_invalidation(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on")
    _as(table, A, b"MGET", b"k1", b"k2", b"k3", b"k4", b"k5")
    assert _pushes(table) == [(7, [[b"k1"], [b"k2"]], False, 0)]
    assert table.info()["tracking_total_keys"] == 3
    assert table.stats["tracking_evicted_keys"] == 2


def test_optin_remembers_only_after_caching_yes_for_one_command(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on", b"OPTIN")
    _as(table, A, b"GET", b"a")
    assert _as(table, A, b"CLIENT", b"CACHING", b"yes") == "OK"
    _as(table, A, b"GET", b"b")
    _as(table, A, b"GET", b"c")
    assert set(table.table) == {b"b"}


def test_the_last_client_gone_empties_the_table(table):
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on")
    _as(table, A, b"GET", b"k")
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"off")
    assert table.table == {} and table.items == 0
    assert table.actor.executor.track_script is None


@pytest.mark.parametrize("args,message", [
    ([b"on", b"PREFIX", b"a"], "PREFIX option requires BCAST mode to be enabled"),
    ([b"on", b"BCAST", b"OPTIN"], "OPTIN and OPTOUT are not compatible with BCAST"),
    ([b"on", b"OPTIN", b"OPTOUT"], "You can't specify both OPTIN mode and OPTOUT mode"),
    ([b"on", b"BCAST", b"PREFIX", b"ab", b"PREFIX", b"a"], "Prefix 'ab' overlaps with another provided prefix 'a'"),
    ([b"on", b"REDIRECT", b"x"], "value is not an integer or out of range"),
    ([b"on", b"REDIRECT", b"5"], "The client ID you want redirect to does not exist"),
    ([b"on", b"NOPE"], "syntax error"),
    ([b"maybe"], "syntax error"),
])
def test_errors_are_redis_s(table, args, message):
    reply = _as(table, A, b"CLIENT", b"TRACKING", b"0", *args)
    assert isinstance(reply, Error) and reply.message.startswith(message)
    assert table.clients == {}


def test_caching_needs_tracking_in_the_right_mode(table):
    assert "only when the client is in tracking mode" in _as(table, A, b"CLIENT", b"CACHING", b"yes").message
    _as(table, A, b"CLIENT", b"TRACKING", b"0", b"on", b"OPTOUT")
    assert "only valid when tracking is enabled in OPTIN mode" in _as(table, A, b"CLIENT", b"CACHING", b"yes").message
    assert _as(table, A, b"CLIENT", b"CACHING", b"no") == "OK"


@pytest.mark.parametrize("msg", [
    m.Invalidate(3, [[b"a", b"b"], None]), m.Invalidate(4, [[b"k"]], True), m.Invalidate(5, [], False, 9),
])
def test_invalidate_round_trips(msg):
    assert m.decode(m.encode(msg)) == msg


@pytest.mark.parametrize("obj", [
    [b"I", 3, [[1]], False, 0], [b"I", 3, [b"k"], False, 0], [b"I", 3, [], 1, 0], [b"I", "3", [], False, 0],
])
def test_a_malformed_invalidate_is_refused(obj):
    with pytest.raises(m.BadMessage):
        m.decode(obj)
