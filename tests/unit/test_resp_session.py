"""node/fronts/resp_session.py: the RESP connection commands, as tables of (argv -> reply bytes)
with Redis 7.0's wording, and a fuzz run that no argv can make raise."""
from __future__ import annotations

import random

import pytest

from aofnode.fronts.resp_session import LOCAL, Session, check_forwarded, config_settings
from aofnode.config import Config
from aofnode.version import VERSION
from aofnode.bench.resp import ReplyParser

SETTINGS = config_settings(Config(resp_bind="127.0.0.1:6380", appendfsync="always"), 1000)


def _run(session: Session, *argv: bytes) -> bytes:
    return session.run(argv[0].decode().upper(), list(argv))


CASES = [  # (password, argv, reply)
    (None, [b"SELECT", b"15"], b"+OK\r\n"),
    (None, [b"SELECT", b"16"], b"-ERR DB index is out of range\r\n"),
    (None, [b"SELECT", b"01"], b"-ERR value is not an integer or out of range\r\n"),
    (None, [b"AUTH", b"x"], b"-ERR AUTH <password> called without any password configured for the default "
                             b"user. Are you sure your configuration is correct?\r\n"),
    (b"pw", [b"AUTH", b"x"], b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
    (b"pw", [b"AUTH", b"pw"], b"+OK\r\n"),
    (b"pw", [b"AUTH", b"default", b"pw"], b"+OK\r\n"),
    (b"pw", [b"AUTH", b"alice", b"pw"], b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"),
    (None, [b"AUTH", b"a", b"b", b"c"], b"-ERR syntax error\r\n"),
    (None, [b"HELLO", b"4"], b"-NOPROTO unsupported protocol version\r\n"),
    (None, [b"HELLO", b"x"], b"-ERR Protocol version is not an integer or out of range\r\n"),
    (b"pw", [b"HELLO", b"3"], b"-NOAUTH HELLO must be called with the client already authenticated, otherwise "
                               b"the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the "
                               b"client and select the RESP protocol version at the same time\r\n"),
    (None, [b"RESET"], b"+RESET\r\n"),
    (None, [b"QUIT"], b"+OK\r\n"),
]


@pytest.mark.parametrize("password,argv,reply", CASES)
def test_connection_commands(password, argv, reply):
    assert _run(Session(7, password, SETTINGS), *argv) == reply


def test_hello_replies_as_redis_does_in_both_protocols():
    s = Session(7, None, SETTINGS)
    p = ReplyParser()
    p.feed(_run(s, b"HELLO"))
    [two] = p.replies()
    assert two == [b"server", b"aofnode", b"version", VERSION.encode(), b"proto", 2, b"id", 7,
                   b"mode", b"standalone", b"role", b"master", b"modules", []]
    three = _run(s, b"HELLO", b"3", b"SETNAME", b"me")
    assert three.startswith(b"%7\r\n$6\r\nserver\r\n")
    assert s.resp3 and s.name == b"me"
    assert _run(s, b"RESET") == b"+RESET\r\n" and not s.resp3 and s.name is None


def test_auth_with_hello_and_the_gate():
    s = Session(1, b"pw", SETTINGS)
    assert s.gate("GET") == b"-NOAUTH Authentication required.\r\n"
    assert s.gate("AUTH") is None and s.gate("HELLO") is None
    assert _run(s, b"HELLO", b"3", b"AUTH", b"default", b"nope").startswith(b"-WRONGPASS")
    assert s.auth_failures == 1 and not s.authenticated
    assert _run(s, b"HELLO", b"3", b"AUTH", b"default", b"pw").startswith(b"%7")
    assert s.authenticated and s.gate("GET") is None
    assert _run(s, b"RESET") == b"+RESET\r\n" and not s.authenticated  # RESET forgets AUTH too


def test_command_table_for_clients():
    s = Session(1, None, SETTINGS)
    p = ReplyParser()
    p.feed(_run(s, b"COMMAND", b"INFO", b"get", b"mset", b"nope"))
    [[get, mset, nope]] = p.replies()
    assert get == [b"get", 2, ["readonly", "fast"], 1, 1, 1, ["@read", "@string", "@fast"], [], [], []]
    assert mset[:6] == [b"mset", -3, ["write", "denyoom"], 1, -1, 2]
    assert nope is None
    p.feed(_run(s, b"COMMAND", b"COUNT") + _run(s, b"COMMAND"))
    count, table = p.replies()
    assert count == len(table) > 40
    p.feed(_run(s, b"COMMAND", b"DOCS", b"set"))
    [docs] = p.replies()
    assert docs[0] == b"set" and b"summary" in docs[1]


@pytest.mark.parametrize("argv,name,error", [
    ([b"get", b"k"], "GET", None),
    ([b"GeT"], "GET", b"-ERR wrong number of arguments for 'get' command\r\n"),
    ([b"foo", b"a", b"b"], "FOO", b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"),
    ([b"x", b"y" * 200], "X", b"-ERR unknown command 'x', with args beginning with: '" + b"y" * 128 + b"' \r\n"),
])
def test_check_forwarded(argv, name, error):
    assert check_forwarded(argv) == (name, error)


def test_no_argv_makes_a_connection_command_raise():
    rng = random.Random(5)
    words = [b"", b"2", b"3", b"AUTH", b"default", b"pw", b"SETNAME", b"GET", b"*", b"ID", b"GETNAME",
             b"SETINFO", b"lib-name", b"INFO", b"COUNT", b"LIST", b"DOCS", b"get", b"\xff\x00", b"-1",
             b"99999999999999999999", b"max*", b"[", b"\\"]
    for i in range(20_000):
        s = Session(1, b"pw" if i % 2 else None, SETTINGS)
        s.resp3 = i % 3 == 0
        name = rng.choice(sorted(LOCAL))
        argv = [name.encode()] + [rng.choice(words) if rng.random() < 0.8 else rng.randbytes(rng.randrange(5))
                                  for _ in range(rng.randrange(6))]
        reply = s.run(name, argv)
        assert type(reply) is bytes and reply.endswith(b"\r\n") and reply[:1] in b"+-:$*%=_", (argv, reply)
        assert check_forwarded([rng.choice(words) or b"x", *argv[1:]])[0]
