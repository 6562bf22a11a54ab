"""Transactions in the log actor, in process (tests/unit/test_log_actor.py's harness): atomic
messages, WATCH and what dirties it, limits and forgetting, and the decoder's rules."""
from __future__ import annotations

import dataclasses
import time

import msgpack
import pytest

from aofnode import protocol
from aofnode.runtime import messages as m
from aofnode.aof import format as aof_format
from aofnode.aof.entries import decode_payload
from tests.unit.test_log_actor import Harness


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path)
    harness.seq = 1000
    yield harness
    if harness.actor.writer.fd >= 0:
        harness.stop()


def body(requests, db=0, **header):
    return msgpack.packb([{"db": db, **header}, [list(r) for r in requests]])


def send(h, client, *requests, db=0, **header):
    """One message of ``client``; its decoded reply."""
    h.seq += 1
    seq = h.seq
    h.front.send(m.Batch(seq, [client], [body(requests, db, **header)]))
    [r] = h._receive(lambda msgs: [x for x in msgs if type(x) is m.Replies and seq in x.seqs])
    return msgpack.unpackb(r.replies[r.seqs.index(seq)], raw=False)


def exec_(h, client, *requests, watched=False, db=0):
    return send(h, client, *requests, db=db, multi=True, watched=watched)


# -- atomic messages ----------------------------------------------------------------------------

def test_a_transaction_replies_like_exec_with_errors_in_place(h):
    got = exec_(h, 1, ("SET", "a", "1"), ("INCR", "a"), ("HSET", "a", "f", "v"), ("GET", "a"))
    assert got[0] == [0, "OK"] and got[1] == [0, 2] and got[2][:2] == [1, "WRONGTYPE"]
    assert got[3] == [0, b"2"]


def test_a_single_request_transaction_is_a_batch(h):
    assert exec_(h, 1, ("PING",)) == [[0, "PONG"]]


@pytest.mark.parametrize("bad, code", [
    (("NOPE",), "EXECABORT"), (("GET",), "EXECABORT"), (("WATCH", "k"), "EXECABORT"),
])
def test_a_queueing_error_discards_the_whole_transaction(h, bad, code):
    got = exec_(h, 1, ("SET", "x", "1"), bad)
    assert got[:2] == [1, code]
    assert send(h, 1, ("EXISTS", "x")) == [[0, 0]]


@pytest.mark.parametrize("header", [{"multi": 1}, {"watched": True}, {"multi": True, "watched": "y"}])
def test_bad_transaction_headers_are_refused(header):
    got = protocol.decode_message(msgpack.packb([{"db": 0, **header}, [["PING"]]]))
    assert type(got) is protocol.Error and got.code == "PROTO"


def test_multi_header_without_db_decodes():
    got = protocol.decode_message(msgpack.packb([{"multi": True}, ["PING"]]))
    assert type(got) is protocol.AtomicMessage and got.is_batch and got.db == 0


def test_a_transaction_is_never_cut_by_the_quantum_or_the_cycle(h):
    # 3,000 INCRs (past QUANTUM and cycle_max_commands) sent with another client's reads: the
    # reader's requests never see a count between 0 and 3,000.
    h.actor.config = dataclasses.replace(h.actor.config, cycle_max_commands=100)
    h.seq += 1
    tx = body([("INCR", "n")] * 3000, multi=True)
    reads = protocol.encode_batch([("GET", "n")] * 500)
    h.front.send(m.Batch(h.seq, [1, 2], [tx, reads]))
    replies = {}

    def both(msgs):
        for r in msgs:
            if type(r) is m.Replies:
                replies.update(zip(r.seqs, r.replies))
        msgs.clear()
        return len(replies) == 2
    h._receive(both)
    seen = {w[1] for w in msgpack.unpackb(replies[h.seq + 1], raw=False)}
    assert seen <= {None, b"3000"}
    assert len(msgpack.unpackb(replies[h.seq], raw=False)) == 3000


def test_a_transactions_writes_are_in_one_aof_record(h):
    exec_(h, 1, *[("SET", f"k{i}", "v") for i in range(50)])
    records = []
    aof_format.scan(h.config.aof_path, records.append)
    assert [len(r) for r in records][-1] == 50


# -- WATCH --------------------------------------------------------------------------------------

def watch_then(h, change, *, db=0, setup=(), key="k"):
    """Client 1 watches ``key``, client 2 runs ``change``: client 1's EXEC reply."""
    for req in setup:
        send(h, 3, req)
    assert send(h, 1, ("WATCH", key), db=db) == [[0, "OK"]]
    if change:
        send(h, 2, *change)
    return exec_(h, 1, ("SET", "done", "1"), watched=True, db=db)


ABORTED = [0, None]
RAN = [[0, "OK"]]


@pytest.mark.parametrize("setup, change, expected", [
    ((), None, RAN),
    ((), [("SET", "k", "v")], ABORTED),
    ((), [("SET", "other", "v")], RAN),
    ((("SET", "k", "v"),), [("DEL", "k")], ABORTED),
    ((), [("DEL", "k")], RAN),  # nothing changed
    ((("SET", "k", "v"),), [("EXPIRE", "k", "100")], ABORTED),
    ((("SET", "k", "v"),), [("RENAME", "k", "k2")], ABORTED),
    ((("SET", "src", "v"),), [("RENAME", "src", "k")], ABORTED),
    ((("RPUSH", "k", "a"),), [("LPUSH", "k", "b")], ABORTED),
    ((("SADD", "s", "a"),), [("SMOVE", "s", "k", "a")], ABORTED),
    ((("SET", "k", "v"),), [("FLUSHDB",)], ABORTED),
    ((), [("FLUSHDB",)], RAN),  # a key that does not exist is not touched
    ((("SET", "k", "v"),), [("FLUSHALL",)], ABORTED),
    ((), [("FLUSHALL",)], RAN),
    ((("SET", "k", "v"),), [("SWAPDB", "0", "1")], ABORTED),
    ((), [("SWAPDB", "0", "1")], RAN),
    ((), [("SELECT", "1"), ("SET", "k", "v"), ("SWAPDB", "0", "1")], ABORTED),  # exists in db 1
    ((("SET", "k", "v"),), [("MOVE", "k", "1")], ABORTED),
    ((), [("SELECT", "1"), ("SET", "k", "v")], RAN),  # another db
    ((("SET", "k", "1"),), [("INCR", "k")], ABORTED),
    ((("HSET", "k", "f", "1"),), [("HDEL", "k", "nope")], RAN),  # nothing changed
])
def test_what_breaks_a_watch(h, setup, change, expected):
    assert watch_then(h, change, setup=setup) == expected


def test_own_write_before_exec_breaks_the_watch(h):
    send(h, 1, ("WATCH", "k"))
    send(h, 1, ("SET", "k", "mine"))
    assert exec_(h, 1, ("GET", "k"), watched=True) == ABORTED


def test_exec_and_unwatch_end_the_watch(h):
    send(h, 1, ("WATCH", "k"))
    assert exec_(h, 1, ("PING",), watched=True) == [[0, "PONG"]]
    send(h, 2, ("SET", "k", "v"))
    assert exec_(h, 1, ("PING",)) == [[0, "PONG"]]
    send(h, 1, ("WATCH", "k"))
    assert send(h, 1, ("UNWATCH",)) == [[0, "OK"]]
    send(h, 2, ("SET", "k", "w"))
    assert exec_(h, 1, ("PING",)) == [[0, "PONG"]]


def test_lazy_expiry_breaks_the_watch(h):
    send(h, 3, ("SET", "k", "v", "PX", "50"))
    send(h, 1, ("WATCH", "k"))
    time.sleep(0.08)
    assert exec_(h, 1, ("PING",), watched=True) == ABORTED


def test_active_expiry_breaks_the_watch(h):
    send(h, 3, ("SET", "k", "v", "PX", "30"))
    send(h, 1, ("WATCH", "k"))
    time.sleep(0.05)
    h.actor.on_tick(time.monotonic())
    assert exec_(h, 1, ("PING",), watched=True) == ABORTED


def test_a_stale_key_watched_does_not_fail_exec(h):
    send(h, 3, ("SET", "k", "v", "PX", "1"))
    time.sleep(0.01)
    send(h, 1, ("WATCH", "k"))
    send(h, 2, ("DEL", "k"))
    assert exec_(h, 1, ("PING",), watched=True) == [[0, "PONG"]]


def test_a_watch_the_node_no_longer_holds_aborts(h):
    send(h, 1, ("WATCH", "k"))
    h.actor.watches.forget(1)
    assert exec_(h, 1, ("PING",), watched=True) == ABORTED


def test_watch_limits_and_eviction(h):
    w = h.actor.watches
    w.max_per_client, w.max_total = 3, 5
    got = send(h, 1, ("WATCH", "a", "b", "c", "d"))
    assert got[0][:2] == [1, "ERR"] and "limit" in got[0][2]
    send(h, 1, ("WATCH", "a", "b", "c"))
    send(h, 2, ("WATCH", "x", "y", "z"))  # 6 > 5: client 1's watch goes
    assert w.stats["watch_evicted_clients"] == 1 and w.total == 3
    assert exec_(h, 1, ("PING",), watched=True) == ABORTED
    info = h.actor.executor.info_provider()["clients"]
    assert info["watched_keys"] == 3 and info["max_watched_keys"] == 5


def test_forget_and_front_loss_drop_the_watch(h):
    send(h, 1, ("WATCH", "k"))
    send(h, 2, ("WATCH", "k"))
    h.front.send(m.Forget(1))
    h._receive(lambda msgs: 1 not in h.actor.watches.clients or None)
    assert list(h.actor.watches.clients) == [2]
    h.actor.fronts.forget_owner(0)
    assert not h.actor.watches.clients and not h.actor.watches.by_key


def test_nobody_watching_costs_one_test(h):
    w = h.actor.watches
    h.actor.executor.propagated = [[0, "SET", b"k", b"v"]] * 10
    t0 = time.perf_counter()
    for _ in range(10000):
        w._seen = 0
        w.sync()
    assert (time.perf_counter() - t0) / 10000 < 5e-6


def test_a_split_cycle_never_cuts_a_transaction(monkeypatch):
    monkeypatch.setattr(aof_format, "MAX_RECORD_BYTES", 400)
    entries = [[0, "SET", b"k%d" % i, b"x" * 80] for i in range(12)]
    units = [(2, 6), (7, 10)]
    data = aof_format.encode_entries(entries, units)
    records, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 4], "big")
        records.append(len(decode_payload(data[pos + 8:pos + 8 + n])))
        pos += 8 + n
    bounds, at = set(), 0
    for n in records:
        at += n
        bounds.add(at)
    assert sum(records) == 12 and len(records) > 2
    assert not bounds & {3, 4, 5, 8, 9}, records
    with pytest.raises(ValueError):
        aof_format.encode_entries(entries, [(0, 8)])


def test_a_crash_at_any_byte_leaves_all_of_a_transaction_or_none(h, tmp_path):
    send(h, 3, ("MSET", "a", "100", "b", "100"))
    for _ in range(3):
        exec_(h, 1, ("DECRBY", "a", "7"), ("INCRBY", "b", "7"), ("SET", "note", "x" * 50))
    data = open(h.config.aof_path, "rb").read()
    cut_path = tmp_path / "cut.aof"
    for size in range(aof_format.HEADER_SIZE, len(data) + 1):
        cut_path.write_bytes(data[:size])
        entries = []
        result = aof_format.scan(str(cut_path), entries.extend)
        assert result.status in ("ok", "torn_tail")
        a = b = 0
        for entry in entries:
            if entry[1] == "MSET":
                a = b = 100
            elif entry[1] == "DECRBY":
                a -= 7
            elif entry[1] == "INCRBY":
                b += 7
        assert a + b in (0, 200), (size, entries)
        assert sum(e[1] == "DECRBY" for e in entries) == sum(e[1] == "INCRBY" for e in entries)
