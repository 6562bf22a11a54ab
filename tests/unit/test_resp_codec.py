"""RESP as tables (protocol/resp_request.py, protocol/resp_reply.py, node/fronts/resp_gateway.py):
request bytes -> commands or a protocol error (every case also fed split at every byte boundary),
and reply values -> RESP2 and RESP3 bytes. No sockets. Every test runs with each request fast
path: hiredis's reader (if installed) and the split of the read."""
from __future__ import annotations

import random

import msgpack
import pytest

from aofnode import protocol
from aofnode.bench.resp import ReplyParser, RespError, encode_command
from aofnode.fronts.resp_gateway import encode_message_reply
from aofnode.protocol import RequestParser
from aofnode.protocol import resp_request

PARSERS = ["hiredis", "python"] if resp_request.PARSER == "hiredis" else ["python"]


@pytest.fixture(autouse=True, params=PARSERS)
def parser_kind(request, monkeypatch):
    """RequestParser() takes hiredis when it is installed: run each test without it too."""
    if request.param == "python":
        monkeypatch.setattr(resp_request, "_Reader", None)
    return request.param

MB = protocol.MAX_MESSAGE_BYTES

# (name, input, commands expected, protocol error expected or None)
REQUESTS = [
    ("multibulk", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", [[b"GET", b"k"]], None),
    ("pipeline", b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [[b"PING"], [b"ECHO", b""]], None),
    ("binary bulk with CRLF inside", b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\r\n\r\n", [[b"ECHO", b"\r\n\r\n"]], None),
    ("*0 and *-1 are nothing", b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]], None),
    ("inline", b"SET k v\r\n", [[b"SET", b"k", b"v"]], None),
    ("inline with LF only", b"GET k\n", [[b"GET", b"k"]], None),
    ("inline blanks", b"  GET \t k  \r\n", [[b"GET", b"k"]], None),
    ("empty lines are nothing", b"\r\n\n\r\nPING\r\n", [[b"PING"]], None),
    ("inline double quotes", b'SET "a b" "x\\x41\\n\\"y"\r\n', [[b"SET", b"a b", b'xA\n"y']], None),
    ("inline single quotes", b"SET 'a\"b' 'it\\'s'\r\n", [[b"SET", b'a"b', b"it's"]], None),
    ("inline quote starts mid-word", b'SET a"b c"\r\n', [[b"SET", b"ab c"]], None),
    ("inline NUL ends the line", b"GET k\0junk\r\n", [[b"GET", b"k"]], None),
    ("inline then multibulk", b"PING\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"], [b"PING"]], None),
    ("unbalanced quotes", b'SET "a\r\n', [], "Protocol error: unbalanced quotes in request"),
    ("closing quote then text", b'SET "a"b\r\n', [], "Protocol error: unbalanced quotes in request"),
    ("bad multibulk length", b"*x\r\n", [], "Protocol error: invalid multibulk length"),
    ("multibulk length with a plus", b"*+1\r\n", [], "Protocol error: invalid multibulk length"),
    ("multibulk length with a leading zero", b"*01\r\n", [], "Protocol error: invalid multibulk length"),
    ("multibulk over MAX_ARGS + 1", b"*%d\r\n" % (protocol.MAX_ARGS + 2), [],
     "Protocol error: invalid multibulk length"),
    ("expected $", b"*1\r\n:3\r\n", [], "Protocol error: expected '$', got ':'"),
    ("negative bulk", b"*1\r\n$-1\r\n", [], "Protocol error: invalid bulk length"),
    ("bulk with blanks", b"*1\r\n$ 3\r\nGET\r\n", [], "Protocol error: invalid bulk length"),
    ("bulk over the message limit, refused unread", b"*2\r\n$3\r\nSET\r\n$%d\r\n" % (MB + 1), [],
     "Protocol error: invalid bulk length"),
    ("bulks of one command over the limit together", b"*3\r\n$3\r\nSET\r\n$%d\r\n" % (MB // 2) + b"x" * (MB // 2)
     + b"\r\n$%d\r\n" % (MB // 2), [], "Protocol error: command of more than %d bytes" % protocol.MAX_COMMAND_BYTES),
    ("no CRLF after the bulk", b"*1\r\n$4\r\nPINGxx", [], "Protocol error: expected CRLF after bulk string"),
    # hiredis reads these as replies; a request holds only bulks, framed exactly (Redis's errors).
    ("simple string element", b"*1\r\n+PING\r\n", [], "Protocol error: expected '$', got '+'"),
    ("verbatim element", b"*1\r\n=8\r\ntxt:PING\r\n", [], "Protocol error: expected '$', got '='"),
    ("nested array", b"*1\r\n*1\r\n$4\r\nPING\r\n", [], "Protocol error: expected '$', got '*'"),
    ("nested array declaring 4G elements", b"*1\r\n*4294967295\r\n$1\r\na\r\n", [],
     "Protocol error: expected '$', got '*'"),
    ("4G elements declared", b"*4294967295\r\n$1\r\na\r\n", [], "Protocol error: invalid multibulk length"),
    ("null bulk element", b"*2\r\n$3\r\nGET\r\n$-1\r\n", [], "Protocol error: invalid bulk length"),
    ("a CRLF made across a bulk's end", b"*1\r\n$3\r\nab\r\n\nY", [],
     "Protocol error: expected CRLF after bulk string"),
    ("RESP3 null after a command", b"*1\r\n$4\r\nPING\r\n*1\r\n_\r\n", [[b"PING"]],
     "Protocol error: expected '$', got '_'"),
    ("commands before the error still come", b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n", [[b"PING"]],
     "Protocol error: invalid bulk length"),
    ("inline line too long", b"x" * (protocol.MAX_INLINE_BYTES + 1), [], "Protocol error: too big inline request"),
    ("complete inline line too long", b"x" * (protocol.MAX_INLINE_BYTES + 1) + b"\r\n", [],
     "Protocol error: too big inline request"),
    ("multibulk count line too long", b"*" + b"1" * (protocol.MAX_INLINE_BYTES + 1), [],
     "Protocol error: too big mbulk count string"),
    ("bulk count line too long", b"*1\r\n$" + b"1" * (protocol.MAX_INLINE_BYTES + 1), [],
     "Protocol error: too big bulk count string"),
    ("incomplete is nothing yet", b"*2\r\n$3\r\nGET\r\n$1\r\n", [], None),
]


def _feed_split(data: bytes, cut: int) -> tuple[list, str | None]:
    p = RequestParser()
    got = p.feed(data[:cut])
    got += p.feed(data[cut:])
    return got, p.error


@pytest.mark.parametrize("name,data,commands,error", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_requests(name, data, commands, error):
    p = RequestParser()
    assert p.feed(data) == commands
    assert p.error == error
    # Split at every byte boundary (the big cases at 16 of them): same outcome.
    cuts = range(len(data) + 1) if len(data) < 4096 else list(range(0, len(data), len(data) // 16)) + [len(data)]
    for cut in cuts:
        assert _feed_split(data, cut) == (commands, error), f"split at {cut}"


@pytest.mark.parametrize("name,data,commands,error", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_requests_behind_a_pipeline(name, data, commands, error):
    """The same cases behind eight commands in the same read: a read of several commands is
    where the hiredis path runs, and it must give up on each case exactly as the parser does."""
    pipeline = b"*1\r\n$4\r\nPING\r\n" * 8
    p = RequestParser()
    assert p.feed(pipeline + data) == [[b"PING"]] * 8 + commands
    assert p.error == error


def test_one_byte_at_a_time():
    data = b"".join(REQUESTS[i][1] for i in range(13))
    p = RequestParser()
    got = []
    for i in range(len(data)):
        got += p.feed(data[i:i + 1])
    assert got == [c for i in range(13) for c in REQUESTS[i][2]]
    assert p.error is None


def test_an_oversized_bulk_is_refused_before_it_is_buffered():
    p = RequestParser()
    assert p.feed(b"*2\r\n$3\r\nSET\r\n$%d\r\n" % (MB + 1)) == []
    assert p.error == "Protocol error: invalid bulk length"
    assert p.buffered == 0
    assert p.feed(b"x" * 1000) == []  # nothing more is taken after an error
    assert p.buffered == 0


def test_a_big_bulk_gathers_without_quadratic_copies():
    p = RequestParser()
    size = 8 * 1024 * 1024
    assert p.feed(b"*2\r\n$4\r\nECHO\r\n$%d\r\n" % size) == []
    chunk = b"y" * 65536
    for _ in range(size // len(chunk)):
        assert p.feed(chunk) == []
    assert size <= p.buffered < size + 100  # the bulk, and ECHO already parsed
    [[name, value]] = p.feed(b"\r\n")
    assert (name, len(value)) == (b"ECHO", size)
    assert p.buffered == 0


@pytest.mark.parametrize("data,error", [
    (b"*11\r\n", "Protocol error: unauthenticated multibulk length"),
    (b"*2\r\n$3\r\nGET\r\n$16385\r\n", "Protocol error: unauthenticated bulk length"),
])
def test_limits_before_auth(data, error):
    p = RequestParser(authenticated=False)
    assert p.feed(data) == []
    assert p.error == error


def test_within_the_limits_before_auth():
    p = RequestParser(authenticated=False)
    cmd = [b"AUTH", b"x" * 16384]
    assert p.feed(encode_command(*cmd)) == [cmd]
    assert p.error is None


SPLITS = [
    (b"", []),
    (b"a  b", [b"a", b"b"]),
    (b'"\\t\\r\\b\\a\\q"', [b"\t\r\b\aq"]),
    (b'"\\xzz"', [b"xzz"]),  # not hex: the escape is the character itself
    (b"'a\\nb'", [b"a\\nb"]),  # single quotes: only \' is an escape
    (b'""', [b""]),
    (b'"a', None),
    (b"'a", None),
    (b'"a"x', None),
    (b"'a'x", None),
    (b'"a"\tb', [b"a", b"b"]),
    # \v and \f are skipped between arguments but do not end one (sdssplitargs)
    (b"\va\vb \f c", [b"a\vb", b"c"]),
    (b"a\f b\v", [b"a\f", b"b\v"]),
    (b"SET x\fy 1", [b"SET", b"x\fy", b"1"]),
]


@pytest.mark.parametrize("line,expected", SPLITS)
def test_split_inline(line, expected):
    assert protocol.split_inline(line) == expected


# (value, RESP2, RESP3)
VALUES = [
    ("OK", b"+OK\r\n", b"+OK\r\n"),
    (b"v", b"$1\r\nv\r\n", b"$1\r\nv\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    (-3, b":-3\r\n", b":-3\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ([b"a", None, 1], b"*3\r\n$1\r\na\r\n$-1\r\n:1\r\n", b"*3\r\n$1\r\na\r\n_\r\n:1\r\n"),
    ({"a": 1}, b"*2\r\n$1\r\na\r\n:1\r\n", b"%1\r\n$1\r\na\r\n:1\r\n"),
    (1.5, b"$3\r\n1.5\r\n", b",1.5\r\n"),
    (True, b":1\r\n", b"#t\r\n"),
    ("two\r\nlines", b"+two  lines\r\n", b"+two  lines\r\n"),
]


@pytest.mark.parametrize("value,resp2,resp3", VALUES)
def test_encode_value(value, resp2, resp3):
    assert protocol.encode_value(value, False) == resp2
    assert protocol.encode_value(value, True) == resp3


# Shapes that differ between aofnode's value and Redis's reply (checked against redis-server 7.0).
SHAPED = [
    ("HGETALL", [b"f", b"v"], b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n", b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"),
    ("HGETALL", [], b"*0\r\n", b"%0\r\n"),
    ("INFO", {"server": {"aofnode_version": "1"}}, b"$29\r\n# Server\r\naofnode_version:1\r\n\r\n",
     b"=33\r\ntxt:# Server\r\naofnode_version:1\r\n\r\n"),
    ("SCAN", [b"0", [b"k"]], b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n", b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"),
]


@pytest.mark.parametrize("name,value,resp2,resp3", SHAPED)
def test_command_reply_shapes(name, value, resp2, resp3):
    assert protocol.encode_command_reply(name, value, False) == resp2
    assert protocol.encode_command_reply(name, value, True) == resp3


ERRORS = [
    ((protocol.WRONGTYPE, "Operation against a key holding the wrong kind of value"),
     b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
    ((protocol.ARITY, "wrong number of arguments for 'get' command"),
     b"-ERR wrong number of arguments for 'get' command\r\n"),
    ((protocol.UNKNOWNCMD, "unknown command 'foo'"), b"-ERR unknown command 'foo'\r\n"),
    ((protocol.TOOBIG, "too big"), b"-ERR too big\r\n"),
    ((protocol.PROTO, "bad"), b"-ERR bad\r\n"),
    ((protocol.LOADING, "loading"), b"-LOADING loading\r\n"),
    ((protocol.OOM, "full"), b"-OOM full\r\n"),
    ((protocol.MISCONF, "disk"), b"-MISCONF disk\r\n"),
    ((protocol.BUSY, "busy"), b"-BUSY busy\r\n"),
    ((protocol.ABORTED, "maybe"), b"-ABORTED maybe\r\n"),
    ((protocol.ERR, "a\r\nb"), b"-ERR a  b\r\n"),
    # Redis's own codes for RESTORE, scripts, transactions and blocking pops keep their prefix.
    (("BUSYKEY", "Target key name already exists."), b"-BUSYKEY Target key name already exists.\r\n"),
    (("NOSCRIPT", "No matching script."), b"-NOSCRIPT No matching script.\r\n"),
    (("EXECABORT", "Transaction discarded."), b"-EXECABORT Transaction discarded.\r\n"),
]


@pytest.mark.parametrize("error,line", ERRORS)
def test_error_lines(error, line):
    assert protocol.error_line(*error) == line


def test_reply_parser_reads_both_protocols():
    p = ReplyParser()
    data = (b"+OK\r\n-ERR bad thing\r\n:5\r\n$-1\r\n*2\r\n$1\r\na\r\n_\r\n%1\r\n$1\r\nk\r\n#t\r\n"
            b",2.5\r\n=8\r\ntxt:abcd\r\n~1\r\n:1\r\n")
    for cut in range(len(data) + 1):
        p = ReplyParser()
        p.feed(data[:cut])
        got = p.replies()
        p.feed(data[cut:])
        got += p.replies()
        assert got == ["OK", RespError("ERR", "ERR bad thing"), 5, None, [b"a", None], {b"k": True}, 2.5,
                       b"abcd", [1]]


def test_encode_command_round_trips_through_the_request_parser():
    cmd = [b"SET", b"k\r\n", b"\x00\xff"]
    assert RequestParser().feed(encode_command(*cmd)) == [cmd]


def test_no_input_makes_the_parser_raise():
    rng = random.Random(3)
    pieces = [b"*", b"$", b"\r\n", b"\n", b"1", b"-1", b"3", b"0", b"GET", b'"', b"'", b"\\x4", b" ", b"\0",
              b"99999999999", b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"]
    for _ in range(3000):
        p = RequestParser(authenticated=rng.random() < 0.5)
        for _ in range(rng.randrange(1, 8)):
            data = b"".join(rng.choice(pieces) if rng.random() < 0.7 else rng.randbytes(rng.randrange(4))
                            for _ in range(rng.randrange(12)))
            for argv in p.feed(data):
                assert argv and all(type(a) is bytes for a in argv)
        assert p.error is None or p.error.startswith("Protocol error: ")


def test_random_pipelines_in_random_reads_match_the_commands_sent():
    """The split fast path and the general parser hand over at any byte: bulks with CRLFs
    inside, bulks longer than the fast path's table, inline commands between multibulks."""
    rng = random.Random(9)
    for _ in range(200):
        commands = []
        data = b""
        for _ in range(rng.randrange(1, 40)):
            if rng.random() < 0.1:
                cmd = [b"PING", b"x%d" % rng.randrange(100)]
                data += b" ".join(cmd) + b"\r\n"
            else:
                cmd = [b"SET"] + [rng.choice([b"k", b"a\r\nb", b"\r\n", b"", b"v" * rng.randrange(5000)])
                                  for _ in range(rng.randrange(1, 5))]
                data += encode_command(*cmd)
            commands.append(cmd)
        p = RequestParser()
        got, pos = [], 0
        while pos < len(data):
            step = rng.choice([1, 7, 100, 4096, 16384, 65536])
            got += p.feed(data[pos:pos + step])
            pos += step
        assert got == commands and p.error is None and p.buffered == 0


# (msgpack reply of a message, requests in it, names, RESP2 bytes)
MESSAGE_REPLIES = [
    (msgpack.packb([[0, "OK"], [0, b"v"], [0, None]]), 3, None, b"+OK\r\n$1\r\nv\r\n$-1\r\n"),
    (msgpack.packb([[1, "ARITY", "wrong number of arguments for 'get' command"], [0, 1]]), 2, None,
     b"-ERR wrong number of arguments for 'get' command\r\n:1\r\n"),
    # one error for the whole message: every request gets it (a RESP client counts replies)
    (msgpack.packb([1, "TOOBIG", "too big"]), 3, None, b"-ERR too big\r\n" * 3),
    (msgpack.packb([[0, [b"f", b"v"]], [0, {"keyspace": {}}]]), 2, ["HGETALL", "INFO"],
     b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n$12\r\n# Keyspace\r\n\r\n"),
    # malformed bytes or a wrong count: still exactly `count` replies
    (b"\xc1", 2, None, b"-ERR malformed reply from the log actor\r\n" * 2),
    (msgpack.packb([[0, "OK"]]), 2, None, b"-ERR malformed reply from the log actor\r\n" * 2),
    (msgpack.packb([[0, "OK"], "junk"]), 2, None, b"+OK\r\n-ERR malformed reply from the log actor\r\n"),
]


@pytest.mark.parametrize("reply,count,names,expected", MESSAGE_REPLIES)
def test_message_replies(reply, count, names, expected):
    assert encode_message_reply(reply, count, names, False) == expected


def test_buffered_counts_the_arguments_of_an_incomplete_command():
    """Many small arguments of a command not complete yet are memory too (the front's total
    input bound counts them)."""
    p = RequestParser()
    n = 100_000
    assert p.feed(b"*%d\r\n" % (n + 1) + b"$1\r\nx\r\n" * n) == []
    assert p.buffered >= n * 41
    [cmd] = p.feed(b"$1\r\ny\r\n")
    assert len(cmd) == n + 1 and p.buffered == 0
