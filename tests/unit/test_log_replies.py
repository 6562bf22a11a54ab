"""The log actor's reply encoders (node/log/replies.py): a table of results -> wire bytes."""
from __future__ import annotations

import pytest

from aofnode.log.replies import Protocol2Replies
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
