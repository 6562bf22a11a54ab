"""The log actor's reply encoders (node/log/replies.py): a table of results -> wire bytes."""
from __future__ import annotations

import pytest

from aofnode.log.replies import Protocol2Replies, RespReplies
from aofnode.log.work import Pending
from aofnode import protocol as codec
from aofnode.protocol.errors import Error

BOOM = Error(codec.ERR, "boom")

# (result, protocol 2 bytes): [0, value] or [1, code, message], msgpack.
SINGLE = [
    (None, "9200c0"),
    (0, "9200" "00"),
    (-1, "9200" "ff"),
    (1 << 40, "9200" "cf0000010000000000"),
    (b"v", "9200" "c40176"),
    (b"", "9200" "c400"),
    ("OK", "9200" "a24f4b"),
    (1.5, "9200" "cb3ff8000000000000"),
    (True, "9200" "c3"),
    ([b"a", None], "9200" "92c40161c0"),
    ({"s": {"k": 1}}, "9200" "81a17381a16b01"),
    (BOOM, "9301" "a3455252" "a4626f6f6d"),
]


def _pending(results, is_batch=False, failed=None) -> Pending:
    p = Pending(1, b"")
    p.results, p.is_batch, p.failed = list(results), is_batch, failed
    return p


@pytest.mark.parametrize("value, wire", SINGLE, ids=[repr(v)[:20] for v, _ in SINGLE])
def test_one_request_message(value, wire):
    [got] = Protocol2Replies().encode([_pending([value])])
    assert got == bytes.fromhex(wire)
    assert got == codec.encode_reply(value)  # the protocol's own form, byte for byte


def test_a_batch_is_the_list_of_its_replies_in_order():
    values = [v for v, _ in SINGLE]
    [got] = Protocol2Replies().encode([_pending(values, is_batch=True)])
    assert got == bytes.fromhex("9c" + "".join(wire for _, wire in SINGLE))  # fixarray of 12
    assert got == codec.encode_batch_reply(values)


def test_an_empty_batch_and_a_batch_of_one_stay_lists():
    encode = Protocol2Replies().encode
    assert encode([_pending([], is_batch=True)]) == [bytes.fromhex("90")]
    assert encode([_pending([b"v"], is_batch=True)]) == [bytes.fromhex("91" "9200c40176")]


def test_a_failed_message_is_one_error_whatever_ran_before():
    too_big = Error(codec.TOOBIG, "cut")
    got = Protocol2Replies().encode([_pending([b"ran", b"ran"], is_batch=True, failed=too_big),
                                      _pending([], failed=BOOM)])
    assert got == [codec.encode_reply(too_big), bytes.fromhex("9301a3455252a4626f6f6d")]


def test_one_reply_per_message_in_order():
    done = [_pending([b"a"]), _pending([1, BOOM], is_batch=True), _pending(["OK"])]
    assert Protocol2Replies().encode(done) == [codec.encode_reply(b"a"),
                                               codec.encode_batch_reply([1, BOOM]),
                                               codec.encode_reply("OK")]
    assert Protocol2Replies().encode([]) == []


# RespReplies: the RESP front's replies made in the log actor must be byte for byte what the
# front made of the protocol 2 reply before (node/fronts/resp_gateway.py, itself checked against
# redis-server by tests/integration/test_resp_differential.py), for every shape.
RESP_CASES = [  # (command line, result)
    (["GET", b"k"], b"v"), (["GET", b"k"], None), (["SET", b"k", b"v"], "OK"), (["INCR", b"k"], 7),
    (["DEL", b"k"], BOOM), (["LRANGE", b"l", b"0", b"-1"], [b"a", b"b"]), (["TYPE", b"k"], "string"),
    (["INFO"], {"server": {"redis_version": "7.0.15", "n": 1}}),
    (["HGETALL", b"h"], [b"f", b"v"]), (["HGETALL", b"h"], []),
    (["ZSCORE", b"z", b"m"], b"1.5"), (["ZSCORE", b"z", b"m"], None),
    (["ZADD", b"z", b"INCR", b"1", b"m"], b"2"), (["ZMSCORE", b"z", b"a", b"b"], [b"1", None]),
    (["ZRANGE", b"z", b"0", b"-1", b"withscores"], [b"a", b"1", b"b", b"2"]),
    (["ZRANGE", b"z", b"0", b"-1"], [b"a", b"b"]),
    (["ZPOPMIN", b"z"], [b"a", b"1"]), (["ZPOPMIN", b"z", b"2"], [b"a", b"1", b"b", b"2"]),
    (["BZPOPMIN", b"z", b"0"], [b"z", b"a", b"1"]), (["BZPOPMIN", b"z", b"0"], None),
    (["ZMPOP", b"1", b"z", b"MIN"], [b"z", [[b"a", b"1"]]]), (["ZMPOP", b"1", b"z", b"MIN"], None),
    (["LMPOP", b"1", b"l", b"LEFT"], None), (["LPOP", b"l", b"2"], None), (["LPOP", b"l"], None),
    (["SMEMBERS", b"s"], [b"a"]), (["SPOP", b"s", b"2"], [b"a", b"b"]), (["SPOP", b"s"], b"a"),
    (["HRANDFIELD", b"h", b"2", b"WITHVALUES"], [b"f", b"v"]),
    (["UNSUBSCRIBE"], [["unsubscribe", None, 0]]),
    (["EVAL", b"return 1", b"0"], [1, [b"x", None], "OK", 1.5, True, False, {"a": 1}]),
]


def _resp_pending(cases, resp: int, failed=None) -> Pending:
    p = _pending([v for _, v in cases], is_batch=True, failed=failed)
    p.items = tuple(codec.Request(argv[0], tuple(argv[1:])) for argv, _ in cases)
    p.count, p.resp = len(cases), resp
    return p


@pytest.mark.parametrize("resp", [2, 3])
@pytest.mark.parametrize("argv, value", RESP_CASES, ids=[" ".join(map(str, a))[:40] for a, _ in RESP_CASES])
def test_resp_replies_are_the_fronts_former_ones(argv, value, resp):
    from aofnode.fronts.resp_gateway import encode_message_reply
    from aofnode.protocol.resp_reply import SHAPED, reply_shape

    [wire] = Protocol2Replies().encode([_pending([value], is_batch=True)])
    names = [reply_shape(argv[0], [a.encode() if type(a) is str else a for a in argv])] \
        if argv[0] in SHAPED else None
    [got] = RespReplies().encode([_resp_pending([(argv, value)], resp)])
    assert got == encode_message_reply(wire, 1, names, resp == 3)


def test_resp_replies_of_a_message_follow_each_other_and_a_failed_one_repeats_its_error():
    cases = [(["SET", b"k", b"v"], "OK"), (["GET", b"k"], b"v"), (["INCR", b"k"], BOOM)]
    assert RespReplies().encode([_resp_pending(cases, 2)]) == [
        b"+OK\r\n$1\r\nv\r\n-ERR boom\r\n"]
    cut = Error(codec.TOOBIG, "cut")
    assert RespReplies().encode([_resp_pending(cases, 3, failed=cut)]) == [b"-ERR cut\r\n" * 3]


def test_resp_replies_give_protocol_2_to_messages_that_did_not_ask():
    """A transaction, or a pub/sub message the front must read, or one refused before its header
    was read: protocol 2, which the front tells apart by its first byte (a msgpack array)."""
    done = [_pending([b"a"]), _pending([], failed=BOOM)]
    got = RespReplies().encode(done)
    assert got == Protocol2Replies().encode(done)
    assert all(reply[0] >= 0x80 for reply in got)
