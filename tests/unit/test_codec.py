"""Tables of (input, expected) for the ZeroMQ wire (protocol/wire.py, server.py, client.py) and
protocol/commands.py. No sockets."""

from __future__ import annotations

import ast
import importlib
import pathlib

import msgpack
import pytest

from aofnode import protocol
from aofnode.protocol import errors
from aofnode.protocol import (
    ERR,
    NOPROTO,
    ARGTYPE,
    ARITY,
    MAX_ARGS,
    MAX_BATCH_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CONTAINERS,
    MAX_MESSAGE_OBJECTS,
    PROTO,
    TOOBIG,
    UNKNOWNCMD,
    Error,
    Message,
    ProtocolError,
    Request,
    decode_batch_reply,
    decode_message,
    decode_reply,
    encode_batch,
    encode_batch_reply,
    encode_reply,
    encode_request,
    wire_reply,
)
from aofnode.protocol.commands import COMMANDS, CommandSpec

raw = msgpack.packb


def pack(payload) -> bytes:
    """A protocol-2 message for db 0: ``[{}, payload]``."""
    return raw([{}, payload])


def v2(payload: bytes) -> bytes:
    """Wrap already-encoded payload bytes as a protocol-2 message: array of 2, empty map first."""
    return b"\x92\x80" + payload


def single(name: str, *args: bytes) -> Message:
    return Message(False, (Request(name, args),))


@pytest.mark.parametrize("db", [0, 1, 15])
def test_the_header_db_reaches_the_message(db):
    assert decode_message(encode_request("GET", "k", db=db)).db == db
    assert decode_message(encode_batch([("GET", "k"), ("PING",)], db=db)).db == db


def test_an_empty_header_means_db_0():
    assert decode_message(raw([{}, ["PING"]])).db == 0


def test_the_header_resp_reaches_the_message_and_defaults_to_protocol_2():
    """The RESP front's field: its replies wanted as RESP2 or RESP3 (node/log/replies.py)."""
    assert decode_message(raw([{"db": 2, "resp": 3}, [["GET", "k"], ["PING"]]])).resp == 3
    assert decode_message(raw([{"resp": 2}, ["GET", "k"]])).resp == 2
    assert decode_message(raw([{}, ["PING"]])).resp == 0


# --- Requests: valid ------------------------------------------------------------------------

VALID_REQUESTS = [
    # (command, args as sent, expected Request)
    ("PING", (), Request("PING", ())),
    ("GET", (b"k",), Request("GET", (b"k",))),
    ("get", (b"k",), Request("GET", (b"k",))),
    ("GeT", (b"k",), Request("GET", (b"k",))),
    (b"get", (b"k",), Request("GET", (b"k",))),
    ("SET", ("k", "v"), Request("SET", (b"k", b"v"))),
    ("SET", ("clé", "ü€😀"), Request("SET", ("clé".encode(), "ü€😀".encode()))),
    ("INCRBY", (b"n", 42), Request("INCRBY", (b"n", b"42"))),
    ("INCRBY", (b"n", -7), Request("INCRBY", (b"n", b"-7"))),
    ("INCRBY", (b"n", 2**64 - 1), Request("INCRBY", (b"n", b"18446744073709551615"))),
    ("INCRBY", (b"n", -(2**63)), Request("INCRBY", (b"n", b"-9223372036854775808"))),
    ("SET", (b"", b""), Request("SET", (b"", b""))),
    ("SET", (b"k", b"\x00\xff" * 100), Request("SET", (b"k", b"\x00\xff" * 100))),
    ("SET", (b"k", "v", 1, b"PX", 100), Request("SET", (b"k", b"v", b"1", b"PX", b"100"))),
    ("MSET", tuple(b"%d" % i for i in range(200)), Request("MSET", tuple(b"%d" % i for i in range(200)))),
    ("DEL", (b"a", "b", 3), Request("DEL", (b"a", b"b", b"3"))),
    ("HSET", (b"h", b"f", b"v"), Request("HSET", (b"h", b"f", b"v"))),
    ("bgrewriteaof", (), Request("BGREWRITEAOF", ())),
]


@pytest.mark.parametrize("command, args, expected", VALID_REQUESTS)
def test_request_round_trip(command, args, expected):
    body = encode_request(command, *args)
    assert decode_message(body) == Message(False, (expected,))


@pytest.mark.parametrize("command, args, expected", VALID_REQUESTS)
def test_request_round_trip_in_batch(command, args, expected):
    body = encode_batch([(command, *args), ("PING",)])
    assert decode_message(body) == Message(True, (expected, Request("PING", ())))


def test_decoded_args_are_tuple_of_bytes():
    (req,) = decode_message(pack(["set", "k", 5])).items
    assert type(req) is Request
    assert type(req.name) is str
    assert type(req.args) is tuple
    assert all(type(a) is bytes for a in req.args)


def test_every_command_in_table_decodes_at_its_minimum_arity():
    for name, spec in COMMANDS.items():
        argc = abs(spec.arity)
        args = tuple(b"a%d" % i for i in range(argc - 1))
        assert decode_message(encode_request(name.lower(), *args)) == single(name, *args)


def test_batch_keeps_order():
    cmds = [("SET", b"k%d" % i, b"v") for i in range(50)]
    msg = decode_message(encode_batch(cmds))
    assert msg.is_batch
    assert [r.args[0] for r in msg.items] == [b"k%d" % i for i in range(50)]


def test_batch_of_max_length_is_accepted():
    msg = decode_message(encode_batch([("PING",)] * MAX_BATCH_LENGTH))
    assert msg.is_batch and len(msg.items) == MAX_BATCH_LENGTH


def test_in_place_errors_keep_other_items_valid():
    body = pack([
        ["SET", "k", "v"],
        ["NOPE"],
        ["GET"],
        [],
        ["GET", 1.5],
        [5],
        [["PING"]],
        ["get", "k"],
    ])
    msg = decode_message(body)
    assert msg.is_batch
    assert [type(i).__name__ if type(i) is Request else i.code for i in msg.items] == [
        "Request", UNKNOWNCMD, ARITY, PROTO, ARGTYPE, ARGTYPE, PROTO, "Request",
    ]
    assert msg.items[0] == Request("SET", (b"k", b"v"))
    assert msg.items[-1] == Request("GET", (b"k",))


# --- Requests: malformed --------------------------------------------------------------------

def _header_only_array(n: int) -> bytes:
    """An array32 header declaring n elements, followed by none: the unpacker checks n first."""
    return b"\xdd" + n.to_bytes(4, "big")


def _array(n: int, elements: bytes) -> bytes:
    """An array32 header declaring n elements, then the given encoded elements."""
    return _header_only_array(n) + elements


def _del_with_args(argc: int) -> bytes:
    """["DEL", 0, 0, ...] with ``argc`` arguments, built without packing a list."""
    return _array(argc + 1, b"\xa3DEL" + b"\x00" * argc)


def _requests_with_empty_containers(requests: int, per_request: int, empty: bytes) -> bytes:
    """A batch of ["DEL", <empty>, ...] requests: 1 + requests * (1 + per_request) containers."""
    request = _array(per_request + 1, b"\xa3DEL" + empty * per_request)
    return _array(requests, request * requests)


MALFORMED = [
    # (id, body, expected code, substring of the message or None)
    ("not msgpack", b"\xc1", PROTO, "malformed"),
    ("empty body", b"", PROTO, None),
    ("text", b"GET k\r\n", PROTO, None),
    ("truncated", pack(["SET", "k", "value"])[:-2], PROTO, "malformed"),
    ("truncated header", b"\x93", PROTO, None),
    ("protocol 1 request", raw(["PING"]), NOPROTO, "protocol 2"),
    ("protocol 1 batch", raw([["PING"], ["GET", "k"]]), NOPROTO, "protocol 2"),
    ("no header", raw([["PING"]]), NOPROTO, None),
    ("header not a map", raw([1, ["PING"]]), PROTO, "[header"),
    ("three elements", raw([{}, ["PING"], 1]), PROTO, "[header"),
    ("unknown header field", raw([{"DB": 1}, ["PING"]]), PROTO, "unknown header field"),
    ("header db not an int", raw([{"db": "1"}, ["PING"]]), PROTO, "db must be an integer"),
    ("header db out of range", raw([{"db": 16}, ["PING"]]), ERR, "DB index is out of range"),
    ("header db negative", raw([{"db": -1}, ["PING"]]), ERR, "DB index is out of range"),
    ("header resp not 2 or 3", raw([{"resp": 4}, ["PING"]]), PROTO, "resp must be 2 or 3"),
    ("header resp not an int", raw([{"resp": "3"}, ["PING"]]), PROTO, "resp must be 2 or 3"),
    ("header resp a bool", raw([{"resp": True}, ["PING"]]), PROTO, "resp must be 2 or 3"),
    ("trailing bytes", pack(["PING"]) + b"\x00", PROTO, "trailing"),
    ("two messages", pack(["PING"]) * 2, PROTO, "trailing"),
    ("invalid utf-8 str", v2(b"\x91\xa2\xff\xfe"), PROTO, None),
    ("top-level int", raw(1), PROTO, "got int"),
    ("payload int", pack(1), PROTO, "got int"),
    ("top-level str", pack("PING"), PROTO, "got str"),
    ("top-level bin", pack(b"PING"), PROTO, "got bin"),
    ("top-level map", pack({"cmd": "PING"}), PROTO, "got map"),
    ("top-level nil", pack(None), PROTO, "got nil"),
    ("empty array", pack([]), PROTO, "empty"),
    ("batch mixing array and non-array", pack([["PING"], "PING"]), PROTO, "batch"),
    ("batch with nil item", pack([["PING"], None]), PROTO, "batch"),
    ("very deep nesting", v2(b"\x91" * 5000 + b"\xc0"), PROTO, None),
    ("map with int keys", pack(["SET", "k", {1: 2}]), PROTO, None),
    ("unknown command", pack(["FOO", "x"]), UNKNOWNCMD, "unknown command 'FOO'"),
    ("unknown command keeps case", pack(["foo"]), UNKNOWNCMD, "'foo'"),
    ("unknown non-ascii bin name", pack([b"G\xffT", "k"]), UNKNOWNCMD, None),
    ("non-ascii look-alike", pack(["ſet", "k", "v"]), UNKNOWNCMD, None),
    ("empty name", pack([""]), UNKNOWNCMD, None),
    ("too few args", pack(["GET"]), ARITY, "wrong number of arguments for 'get' command"),
    ("too many args exact arity", pack(["GET", "a", "b"]), ARITY, "'get'"),
    ("too few args variadic", pack(["SET", "k"]), ARITY, "'set'"),
    ("too few args hset", pack(["HSET", "h", "f"]), ARITY, "'hset'"),
    ("too many args dbsize", pack(["DBSIZE", "x"]), ARITY, "'dbsize'"),
    ("float arg", pack(["SET", "k", 1.5]), ARGTYPE, "argument 2 must be str, bin or int, got float"),
    ("nil arg", pack(["GET", None]), ARGTYPE, "argument 1 must be str, bin or int, got nil"),
    ("bool arg", pack(["GET", True]), ARGTYPE, "got bool"),
    ("false arg", pack(["SET", "k", False]), ARGTYPE, "got bool"),
    ("map arg", pack(["SET", "k", {"a": 1}]), ARGTYPE, "got map"),
    ("nested array arg", pack(["SET", "k", ["v"]]), ARGTYPE, "got array"),
    ("ext arg", pack(["GET", msgpack.ExtType(5, b"x")]), ARGTYPE, "got ext"),
    ("timestamp ext arg", pack(["GET", msgpack.Timestamp(1)]), ARGTYPE, "got ext"),
    # Over 64 KiB (counted) exts are one placeholder, and timestamps floats built in C.
    ("ext arg, counted", pack(["SET", "k", msgpack.ExtType(5, b"x"), bytes(70_000)]), ARGTYPE,
     "argument 2 must be str, bin or int, got ext"),
    ("timestamp arg, counted", pack(["SET", "k", msgpack.Timestamp(1), bytes(70_000)]), ARGTYPE,
     "argument 2 must be str, bin or int, got float"),
    ("command name int", pack([1, "k"]), ARGTYPE, "command name"),
    ("command name nil", pack([None]), ARGTYPE, "command name"),
    ("command name map", pack([{"a": "b"}]), ARGTYPE, "command name"),
    ("command name float", pack([1.0]), ARGTYPE, "command name"),
    ("array over MAX_ARGS", v2(_header_only_array(MAX_ARGS + 2)), TOOBIG, None),
    ("batch too long", pack([["PING"]] * (MAX_BATCH_LENGTH + 1)), TOOBIG, "batch"),
    ("batch too long, counted", pack([["ECHO", "x" * 20]] * (MAX_BATCH_LENGTH + 1)), TOOBIG,
     "batch of 10001 requests"),
    # The object counts (issue 9, finding 3): refused while decoding, with TOOBIG.
    ("arrays past MAX_MESSAGE_CONTAINERS",
     v2(_requests_with_empty_containers(100, 700, b"\x90")), TOOBIG, "arrays and maps"),
    ("maps past MAX_MESSAGE_CONTAINERS",
     v2(_requests_with_empty_containers(100, 700, b"\x80")), TOOBIG, "arrays and maps"),
    ("nested arrays past MAX_MESSAGE_CONTAINERS",
     v2(_array(2, raw(["PING"]) + _array(70, (b"\x91" * 1000 + b"\xc0") * 70))), TOOBIG,
     "arrays and maps"),
    ("objects past MAX_MESSAGE_OBJECTS", v2(_array(3, _del_with_args(MAX_ARGS) * 3)), TOOBIG,
     "msgpack objects"),
]


@pytest.mark.parametrize(
    "body, code, text", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_single(body, code, text):
    result = decode_message(body)
    if type(result) is Message:  # a well-formed message whose only request is bad
        assert not result.is_batch and len(result.items) == 1
        result = result.items[0]
    assert type(result) is Error
    assert result.code == code, result
    if text is not None:
        assert text in result.message


# Request-level failures are the same code inside a batch, in place, with the batch kept.
REQUEST_LEVEL = [
    (["FOO"], UNKNOWNCMD),
    (["GET"], ARITY),
    (["GET", "a", "b"], ARITY),
    (["GET", 1.5], ARGTYPE),
    (["GET", None], ARGTYPE),
    (["GET", True], ARGTYPE),
    (["GET", {"a": 1}], ARGTYPE),
    (["GET", ["a"]], ARGTYPE),
    (["GET", msgpack.ExtType(1, b"")], ARGTYPE),
    ([7], ARGTYPE),
    ([], PROTO),  # empty batch item
    ([["PING"]], PROTO),  # nested too deep: a batch inside a batch
]


@pytest.mark.parametrize("bad, code", REQUEST_LEVEL)
def test_malformed_request_in_batch_is_in_place(bad, code):
    msg = decode_message(pack([["PING"], bad, ["ECHO", "x"]]))
    assert type(msg) is Message and msg.is_batch
    first, middle, last = msg.items
    assert first == Request("PING", ())
    assert type(middle) is Error and middle.code == code
    assert last == Request("ECHO", (b"x",))


def test_oversized_body_is_rejected_before_decoding():
    # A body just over the limit, built cheaply: zero bytes (decoding it would give a
    # trailing-bytes PROTO, so TOOBIG proves the size check comes first).
    body = bytes(MAX_MESSAGE_BYTES + 1)
    result = decode_message(body)
    assert type(result) is Error and result.code == TOOBIG
    assert str(MAX_MESSAGE_BYTES) in result.message


def test_body_at_the_size_limit_is_decoded():
    overhead = len(pack(["SET", "k", bytes(70_000)])) - 70_000  # array, name, key, bin32 header
    value_len = MAX_MESSAGE_BYTES - overhead
    body = pack(["SET", "k", bytes(value_len)])
    assert len(body) == MAX_MESSAGE_BYTES
    (req,) = decode_message(body).items
    assert req.name == "SET" and len(req.args[1]) == value_len


def test_message_at_the_object_limit_is_decoded_and_one_more_is_refused():
    # [header, batch of two DELs]: 1 + 2 + (1 + 1 + MAX_ARGS) + (1 + 1 + rest) objects.
    rest = MAX_MESSAGE_OBJECTS - 7 - MAX_ARGS
    at_limit = decode_message(v2(_array(2, _del_with_args(MAX_ARGS) + _del_with_args(rest))))
    assert type(at_limit) is Message
    assert [len(r.args) for r in at_limit.items] == [MAX_ARGS, rest]
    over = decode_message(v2(_array(2, _del_with_args(MAX_ARGS) + _del_with_args(rest + 1))))
    assert over == Error(TOOBIG, f"message has more than {MAX_MESSAGE_OBJECTS} msgpack objects")


def test_message_at_the_container_limit_is_decoded_and_one_more_is_refused():
    # [header, batch of one DEL whose arguments are empty arrays]: 4 + k containers (the message,
    # the header map, the batch, the DEL), in-place ARGTYPE.
    k = MAX_MESSAGE_CONTAINERS - 4
    at_limit = decode_message(v2(_requests_with_empty_containers(1, k, b"\x90")))
    assert type(at_limit) is Message
    assert at_limit.items[0].code == ARGTYPE
    over = decode_message(v2(_requests_with_empty_containers(1, k + 1, b"\x90")))
    assert type(over) is Error and over.code == TOOBIG
    assert over.message.startswith(
        f"message has more than {MAX_MESSAGE_CONTAINERS} arrays and maps")


def test_long_unknown_name_is_truncated_in_message():
    result = decode_message(pack(["X" * 10_000])).items[0]
    assert result.code == UNKNOWNCMD
    assert len(result.message) < 100


@pytest.mark.parametrize(
    "body",
    [b"", b"\x00", b"\xff" * 10, b"\x91" * 2000, b"\x92\xc0\xc0", b"\xdf\xff\xff\xff\xff",
     b"\xc6\xff\xff\xff\xff", b"\x81\x91\x01\x02", b"\x91\x81\xa1a\xc0",
     b"\x90" * 70_000, _array(70_000, b"\x90" * 70_000), _array(70_000, b"\x90" * 60_000)],
)
def test_decode_message_never_raises(body):
    result = decode_message(body)
    assert type(result) in (Message, Error)


# --- Replies --------------------------------------------------------------------------------

REPLY_VALUES = [
    ("status", "OK"),
    ("status non-ascii", "PONG ü"),
    ("bulk", b"value"),
    ("empty bulk", b""),
    ("binary bulk", bytes(range(256))),
    ("int", 42),
    ("negative int", -(2**63)),
    ("big int", 2**64 - 1),
    ("nil", None),
    ("float", 1.5),
    ("true", True),
    ("false", False),
    ("empty array", []),
    ("array", [b"a", None, b"c"]),
    ("nested arrays", [b"0", [b"k1", b"k2", [1, [None, "OK"]]]]),
    ("map", {"server": "aofnode", "version": "0.1.0", "proto": 1}),
    ("nested map", {"keyspace": {"db0": {"keys": 3, "expires": 0}}, "list": [1, 2]}),
    ("bin-keyed map", {b"f1": b"v1", b"f2": b"v2"}),
]
ERRORS = [
    Error("ERR", "value is not an integer or out of range"),
    Error("WRONGTYPE", "Operation against a key holding the wrong kind of value"),
    Error("LOADING", "loading the AOF"),
    Error("ABORTED", "the log actor died: the request may or may not have been applied"),
    Error("PROTO", ""),
]


@pytest.mark.parametrize("value", [v for _, v in REPLY_VALUES], ids=[i for i, _ in REPLY_VALUES])
def test_reply_round_trip(value):
    decoded = decode_reply(encode_reply(value))
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize("error", ERRORS, ids=[e.code for e in ERRORS])
def test_error_reply_round_trip(error):
    assert decode_reply(encode_reply(error)) == error


@pytest.mark.parametrize(
    "value, wire",
    [(None, [0, None]), ("OK", [0, "OK"]), ([1, 2], [0, [1, 2]]), (Error("ERR", "x"), [1, "ERR", "x"])],
)
def test_wire_reply_shape(value, wire):
    assert wire_reply(value) == wire
    assert msgpack.unpackb(encode_reply(value)) == wire


def test_ping_bytes():
    # The examples of docs/protocol.md, byte for byte: [{}, ["PING"]] and, for db 3,
    # [{"db": 3}, ["SET", "k", "v"]].
    assert encode_request("PING") == bytes.fromhex("928091a450494e47")
    assert encode_request("SET", "k", "v", db=3) == bytes.fromhex("9281a2646203" "93a3534554a16ba176")
    assert decode_message(bytes.fromhex("9281a2646203" "93a3534554a16ba176")).db == 3
    assert encode_reply("PONG") == bytes.fromhex("9200a4504f4e47")
    assert encode_reply(Error("ERR", "x")) == bytes.fromhex("9301a3455252a178")


def test_batch_reply_round_trip():
    values = [v for _, v in REPLY_VALUES] + ERRORS
    assert decode_batch_reply(encode_batch_reply(values)) == values


def test_whole_batch_rejection_is_a_single_error():
    rejected = decode_message(pack([["PING"]] * (MAX_BATCH_LENGTH + 1)))
    assert type(rejected) is Error
    body = encode_reply(rejected)
    assert type(msgpack.unpackb(body)[0]) is int  # how a client tells it apart
    assert decode_batch_reply(body) == rejected


BAD_REPLIES = [
    ("not msgpack", b"\xc1"),
    ("trailing", encode_reply("OK") + b"\x00"),
    ("not array", pack("OK")),
    ("empty array", pack([])),
    ("unknown tag", pack([2, "x"])),
    ("bool tag", pack([False, "x"])),
    ("value too long", pack([0, "x", "y"])),
    ("error too short", pack([1, "ERR"])),
    ("error code not str", pack([1, 5, "x"])),
    ("error message not str", pack([1, "ERR", b"x"])),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_REPLIES], ids=[i for i, _ in BAD_REPLIES])
def test_malformed_reply_raises(body):
    with pytest.raises(ProtocolError):
        decode_reply(body)


@pytest.mark.parametrize(
    "body",
    [b"\xc1", pack([]), pack("x"), encode_reply("OK"), pack([[0, 1], "x"]), pack([[0, 1], [3]])],
)
def test_malformed_batch_reply_raises(body):
    with pytest.raises(ProtocolError):
        decode_batch_reply(body)


def test_encode_reply_of_unencodable_value_raises():
    with pytest.raises(TypeError):
        encode_reply(object())


# --- Client-side encoding -------------------------------------------------------------------

@pytest.mark.parametrize("bad", [1.5, None, True, [b"x"], {"a": 1}, object()])
def test_encode_request_refuses_bad_arg_types(bad):
    with pytest.raises(TypeError):
        encode_request("SET", "k", bad)


@pytest.mark.parametrize("bad", [1, None, ["GET"]])
def test_encode_request_refuses_bad_command(bad):
    with pytest.raises(TypeError):
        encode_request(bad)


@pytest.mark.parametrize(
    "commands, exc",
    [([], ValueError), ([()], ValueError), (["GET"], ValueError), ([("GET", 1.5)], TypeError)],
)
def test_encode_batch_refuses(commands, exc):
    with pytest.raises(exc):
        encode_batch(commands)


# --- Command table --------------------------------------------------------------------------

REDIS7_ARITY = {
    "PING": -1, "ECHO": 2, "HELLO": -1, "SELECT": 2, "INFO": -1, "DBSIZE": 1, "BGREWRITEAOF": 1,
    "SET": -3, "GET": 2, "GETDEL": 2, "SETNX": 3, "MSET": -3, "MGET": -2, "APPEND": 3,
    "STRLEN": 2, "INCR": 2, "DECR": 2, "INCRBY": 3, "DECRBY": 3, "DEL": -2, "EXISTS": -2,
    "TYPE": 2, "RENAME": 3, "EXPIRE": -3, "PEXPIRE": -3, "EXPIREAT": -3, "PEXPIREAT": -3,
    "TTL": 2, "PTTL": 2, "PERSIST": 2, "KEYS": 2, "SCAN": -2, "FLUSHDB": -1, "FLUSHALL": -1,
    "HSET": -4, "HGET": 3, "HMGET": -3, "HDEL": -3, "HGETALL": 2, "HLEN": 2, "HEXISTS": 3,
    "HINCRBY": 4, "HKEYS": 2, "HVALS": 2,
}
WRITES = {
    "SET", "GETDEL", "SETNX", "MSET", "APPEND", "INCR", "DECR", "INCRBY", "DECRBY", "DEL",
    "RENAME", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "FLUSHDB", "FLUSHALL",
    "HSET", "HDEL", "HINCRBY",
}
# Lists, sets and sorted sets: Redis 7.0's arities, writes and denyoom flags.
COLLECTION_ARITY = {
    "LPUSH": -3, "RPUSH": -3, "LPUSHX": -3, "RPUSHX": -3, "LPOP": -2, "RPOP": -2, "LLEN": 2,
    "LINDEX": 3, "LSET": 4, "LRANGE": 4, "LTRIM": 4, "LREM": 4, "LINSERT": 5, "LPOS": -3,
    "LMOVE": 5, "RPOPLPUSH": 3, "LMPOP": -4,
    "SADD": -3, "SREM": -3, "SCARD": 2, "SISMEMBER": 3, "SMISMEMBER": -3, "SMEMBERS": 2,
    "SRANDMEMBER": -2, "SPOP": -2, "SMOVE": 4, "SINTER": -2, "SUNION": -2, "SDIFF": -2,
    "SINTERSTORE": -3, "SUNIONSTORE": -3, "SDIFFSTORE": -3, "SINTERCARD": -3, "SSCAN": -3,
    "ZADD": -4, "ZINCRBY": 4, "ZSCORE": 3, "ZMSCORE": -3, "ZCARD": 2, "ZCOUNT": 4,
    "ZLEXCOUNT": 4, "ZRANK": 3, "ZREVRANK": 3, "ZRANGE": -4, "ZRANGEBYSCORE": -4,
    "ZREVRANGEBYSCORE": -4, "ZRANGEBYLEX": -4, "ZREVRANGEBYLEX": -4, "ZREVRANGE": -4,
    "ZRANGESTORE": -5, "ZREM": -3, "ZREMRANGEBYRANK": 4, "ZREMRANGEBYSCORE": 4,
    "ZREMRANGEBYLEX": 4, "ZPOPMIN": -2, "ZPOPMAX": -2, "ZMPOP": -4, "ZRANDMEMBER": -2,
    "ZUNION": -3, "ZINTER": -3, "ZDIFF": -3, "ZUNIONSTORE": -4, "ZINTERSTORE": -4,
    "ZDIFFSTORE": -4, "ZINTERCARD": -3, "ZSCAN": -3,
    "BLPOP": -3, "BRPOP": -3, "BLMOVE": 6, "BRPOPLPUSH": 4, "BLMPOP": -5, "BZPOPMIN": -3,
    "BZPOPMAX": -3, "BZMPOP": -5,
}
COLLECTION_DENYOOM = {
    "LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LSET", "LINSERT", "LMOVE", "RPOPLPUSH", "SADD",
    "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE", "ZADD", "ZINCRBY", "ZRANGESTORE", "ZUNIONSTORE",
    "ZINTERSTORE", "ZDIFFSTORE", "BLMOVE", "BRPOPLPUSH",
}
COLLECTION_WRITES = COLLECTION_DENYOOM | {
    "LPOP", "RPOP", "LTRIM", "LREM", "LMPOP", "SREM", "SPOP", "SMOVE", "ZREM", "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE", "ZREMRANGEBYLEX", "ZPOPMIN", "ZPOPMAX", "ZMPOP", "BLPOP", "BRPOP",
    "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
}
# Reads whose reply is random: a retry gets another reply, so they are not retry-safe.
RANDOM_READS = {"SRANDMEMBER", "ZRANDMEMBER"}
REDIS7_ARITY.update(COLLECTION_ARITY)
WRITES |= COLLECTION_WRITES
# The parity issue's commands (strings, bits, hashes, keys).
REDIS7_ARITY |= {
    "TIME": 1, "WATCH": -2, "UNWATCH": 1, "INCRBYFLOAT": 3, "GETEX": -2, "SETEX": 4, "PSETEX": 4,
    "GETSET": 3, "MSETNX": -3,
    "SETRANGE": 4, "GETRANGE": 4, "SUBSTR": 4, "LCS": -3, "SETBIT": 4, "GETBIT": 3,
    "BITCOUNT": -2, "BITPOS": -3, "BITOP": -4, "BITFIELD": -2, "BITFIELD_RO": -2, "UNLINK": -2,
    "TOUCH": -2, "EXPIRETIME": 2, "PEXPIRETIME": 2, "RENAMENX": 3, "COPY": -3, "MOVE": 3,
    "SWAPDB": 3, "RANDOMKEY": 1, "HMSET": -4, "HSETNX": 4, "HSTRLEN": 3, "HINCRBYFLOAT": 4,
    "HRANDFIELD": -2, "HSCAN": -3, "DUMP": 2, "RESTORE": -4,
}
# The introspection commands: OBJECT and MEMORY read; the others start work or change settings,
# so a retry is not the same request (as BGREWRITEAOF).
REDIS7_ARITY |= {"CONFIG": -2, "OBJECT": -2, "MEMORY": -2, "SLOWLOG": -2, "LATENCY": -2,
                 "DEBUG": -2}
ADMIN = {"BGREWRITEAOF", "CONFIG", "SLOWLOG", "LATENCY", "DEBUG"}
WRITES |= {
    "INCRBYFLOAT", "GETEX", "SETEX", "PSETEX", "GETSET", "MSETNX", "SETRANGE", "SETBIT", "BITOP",
    "BITFIELD", "UNLINK", "RENAMENX", "COPY", "MOVE", "SWAPDB", "HMSET", "HSETNX", "HINCRBYFLOAT",
    "RESTORE",
}
# Lua scripting (node/store/scripting.py): EVAL may write; a read-only script's reply may
# change on a retry (math.random advances), so the _RO forms are not retry-safe either.
REDIS7_ARITY |= {"EVAL": -3, "EVALSHA": -3, "EVAL_RO": -3, "EVALSHA_RO": -3, "SCRIPT": -2}
WRITES |= {"EVAL", "EVALSHA"}
RANDOM_READS |= {"EVAL_RO", "EVALSHA_RO"}
# Pub/sub (node/log/pubsub.py): PUBLISH's reply is a count of receivers, never the same on a retry.
REDIS7_ARITY |= {"SUBSCRIBE": -2, "UNSUBSCRIBE": -1, "PSUBSCRIBE": -2, "PUNSUBSCRIBE": -1,
                 "PUBLISH": 3, "PUBSUB": -2, "MONITOR": 1}
ADMIN |= {"PUBLISH", "MONITOR"}  # MONITOR changes its connection for good
# SHUTDOWN stops the node (node/log/busy.py): a retry would find no node.
REDIS7_ARITY |= {"SHUTDOWN": -1}
# Functions (node/store/functions.py): libraries are data, FUNCTION LOAD is written to the AOF.
REDIS7_ARITY |= {"FUNCTION": -2, "FCALL": -3, "FCALL_RO": -3}
WRITES |= {"FUNCTION", "FCALL"}
RANDOM_READS |= {"FCALL_RO"}
ADMIN |= {"SHUTDOWN"}
# Geo indexes (node/store/geo.py): GEOADD is ZADD with computed scores.
REDIS7_ARITY |= {"GEOADD": -5, "GEOPOS": -2, "GEODIST": -4, "GEOHASH": -2, "GEORADIUS": -6,
                 "GEORADIUS_RO": -6, "GEORADIUSBYMEMBER": -5, "GEORADIUSBYMEMBER_RO": -5,
                 "GEOSEARCH": -7, "GEOSEARCHSTORE": -8}
WRITES |= {"GEOADD", "GEORADIUS", "GEORADIUSBYMEMBER", "GEOSEARCHSTORE"}
REDIS7_ARITY |= {"SORT": -2, "SORT_RO": -2, "SAVE": 1}
WRITES |= {"SORT", "SAVE"}


def test_command_table_is_exactly_the_specified_set():
    assert {name: spec.arity for name, spec in COMMANDS.items()} == REDIS7_ARITY


@pytest.mark.parametrize("name", sorted(REDIS7_ARITY))
def test_command_spec(name):
    spec = COMMANDS[name]
    assert type(spec) is CommandSpec
    assert spec.name == name == name.upper()
    assert spec.arity != 0
    assert spec.write == (name in WRITES)
    assert not (spec.write and spec.retry_safe), "no write command is retry-safe"
    assert spec.retry_safe == (not spec.write and name not in ADMIN
                               and name not in RANDOM_READS)
    if name in COLLECTION_ARITY:
        assert spec.denyoom == (name in COLLECTION_DENYOOM)
    assert spec.summary


@pytest.mark.parametrize(
    "arity, ok, bad", [(2, [2], [1, 3]), (-1, [1, 2, 50], []), (-3, [3, 4], [1, 2]), (4, [4], [3, 5])]
)
def test_arity_rule(arity, ok, bad):
    spec = CommandSpec("X", arity, False, True, "")
    assert all(spec.accepts(n) for n in ok)
    assert not any(spec.accepts(n) for n in bad)


# --- Package surface ------------------------------------------------------------------------

PROTOCOL_MODULES = sorted(p.name for p in pathlib.Path(protocol.__file__).parent.glob("*.py"))


def test_package_reexports_public_names():
    for name in protocol.__all__:
        assert hasattr(protocol, name), name
    for module in PROTOCOL_MODULES:
        if module != "__init__.py":
            names = importlib.import_module(f"aofnode.protocol.{module[:-3]}").__all__
            assert set(names) <= set(protocol.__all__), module


def test_error_codes_are_their_own_names():
    for code in errors.ERROR_CODES:
        assert getattr(errors, code) == code


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_protocol_never_imports_networking(module):
    # The package promises no networking code: every module of it, not a chosen few.
    source = (pathlib.Path(protocol.__file__).parent / module).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] in ("zmq", "socket") for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in ("zmq", "socket")


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_protocol_relative_imports_stay_in_the_package(module):
    # The modules import each other relatively (protocol/__init__.py); test_layers.py checks only absolute
    # imports, so a `from ..store import x` would cross the layer unseen.
    source = (pathlib.Path(protocol.__file__).parent / module).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert node.level <= 1, f"{module} imports from above the package"


# SELECT's argument, by Redis's rules (string2ll then the range), from a differential test
# against redis-server 7: Redis refuses "01", "+1", "-0" and says "value is not an integer or out
# of range" for "x"; aofnode accepted the first three and said "out of range" for the last.
SELECT_CASES = [
    (b"0", 0), (b"15", 15), (b"7", 7),
    (b"01", "value is not an integer or out of range"),
    (b"+1", "value is not an integer or out of range"),
    (b"-0", "value is not an integer or out of range"),
    (b"x", "value is not an integer or out of range"),
    (b" 1", "value is not an integer or out of range"),
    (b"1 ", "value is not an integer or out of range"),
    (b"", "value is not an integer or out of range"),
    (b"99999999999999999999", "value is not an integer or out of range"),
    (b"16", "DB index is out of range"),
    (b"-1", "DB index is out of range"),
]


@pytest.mark.parametrize("arg, expected", SELECT_CASES, ids=[repr(c[0]) for c in SELECT_CASES])
def test_select_argument_follows_redis(arg, expected):
    from aofnode.protocol.commands import parse_select
    result = parse_select(arg)
    if type(expected) is int:
        assert result == expected
    else:
        assert type(result) is Error and result.code == ERR and result.message == expected


def test_a_checked_message_takes_the_names_as_keys_and_checks_the_rest():
    """``checked`` (the RESP front's messages): a name that is a key of the command table is
    taken with its bytes arguments as they are; any other request gets the full check."""
    body = raw([{"resp": 2}, [["SET", b"k", b"v"], ["set", b"k", b"v"], ["GET", "k"], ["NOPE"], [],
                              ["INCRBY", b"n", 7], [["GET", b"k"]], ["GET", 1.5]]])
    items = decode_message(body, True).items
    assert items[:3] == (Request("SET", (b"k", b"v")), Request("SET", (b"k", b"v")), Request("GET", (b"k",)))
    assert items[3].code == UNKNOWNCMD and items[4].code == PROTO
    assert items[5] == Request("INCRBY", (b"n", b"7"))
    assert items[6].code == PROTO and items[7].code == ARGTYPE
    assert decode_message(body).items == items  # the same values as the full check
