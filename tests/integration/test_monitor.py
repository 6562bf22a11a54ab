"""MONITOR on a real node, differential against redis-server 7.0 where it is installed.

The lines are compared without their time and client address (those differ by nature); the
address is checked to be the client's own ``ip:port``, or ``lua`` for a script's commands."""
from __future__ import annotations

import os
import re
import signal
import shutil
import socket

import pytest
import redis

from aofnode.client import CommandError
from tests.nodeproc import RedisServer, wait_for
from tests.integration.test_resp_front import _start

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")
_LINE = re.compile(rb"^\+(\d+\.\d{6}) \[(\d+) ([^\]]+)\] (.*)$")


def _lower_name(args: bytes) -> bytes:
    """A line's arguments with the command name in lower case (clients send either)."""
    name, space, rest = args.partition(b" ")
    return name.lower() + space + rest


class Monitor:
    """A raw connection in MONITOR mode: its lines, as they come."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.sock.sendall(b"MONITOR\r\n")
        assert self.line() == b"+OK"

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def until(self, last: bytes) -> list[tuple[bytes, bytes, bytes]]:
        """The (db, address, arguments) of each line up to the one whose arguments are ``last``."""
        out = []
        while True:
            found = _LINE.match(self.line())
            assert found is not None
            out.append(found.groups()[1:])
            if _lower_name(found.group(4)) == last:
                return out

    def close(self) -> None:
        self.sock.close()


def _scenario(port: int) -> list[tuple[bytes, bytes, bytes]]:
    mon = Monitor(port)
    r = redis.Redis(port=port, protocol=2, socket_timeout=10)
    r.ping()  # the client's own set-up lines go before the scenario's first line
    r.set("start", "1")
    mon.until(b'"set" "start" "1"')
    r.set("foo", "bar")
    r.get("foo")
    r.eval("redis.call('set', KEYS[1], ARGV[1])", 1, "foo", "bar baz\n")
    r.function_load("#!lua name=mon\nredis.register_function('f', function() "
                    "return redis.call('get', 'foo') end)", replace=True)
    r.fcall("f", 0)
    tx = r.pipeline(transaction=True)
    tx.set("foo", "bar").incr("n")  # sent as INCRBY n 1
    tx.execute()
    r.execute_command("MULTI")
    with pytest.raises(redis.ResponseError):
        r.execute_command("NO-SUCH-COMMAND")
    with pytest.raises(redis.ResponseError):
        r.execute_command("EXEC")
    r.config_get("maxmemory")  # an administrative command: never shown
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # redis-py reconnects
        raw.sendall(b"AUTH not-real\r\n")
        assert raw.recv(1000).startswith(b"-")
        raw.sendall(b"AUTH user not-a-password\r\n")
        assert raw.recv(1000).startswith(b"-")
        raw.sendall(b"HELLO 2 AUTH user not-a-password\r\n")
        assert raw.recv(1000).startswith(b"-")
    r.execute_command("SELECT", "1")
    r.set("in-db-1", "x")
    r.set("end", "1")
    lines = mon.until(b'"set" "end" "1"')
    mon.close()
    r.close()
    return lines


def _shape(lines):
    """Lines without addresses, but ``lua`` kept; the command names in lower case."""
    out = []
    for db, addr, args in lines:
        out.append((db, b"lua" if addr == b"lua" else b"client", _lower_name(args)))
    return out


@pytest.fixture
def node_port(make_node):
    _node, port = _start(make_node)
    return port


def test_monitor_lines(node_port):
    lines = _shape(_scenario(node_port))
    commands = [args for _db, _addr, args in lines]
    assert commands.index(b'"set" "foo" "bar"') < commands.index(b'"get" "foo"')
    i = commands.index(b'"eval" "redis.call(\'set\', KEYS[1], ARGV[1])" "1" "foo" "bar baz\\n"')
    assert lines[i + 1] == (b"0", b"lua", b'"set" "foo" "bar baz\\n"')
    i = commands.index(b'"fcall" "f" "0"')
    assert lines[i + 1] == (b"0", b"lua", b'"get" "foo"')
    i = commands.index(b'"multi"')
    assert commands[i:i + 4] == [b'"multi"', b'"set" "foo" "bar"', b'"incrby" "n" "1"', b'"exec"']
    assert commands[i + 4:i + 6] == [b'"multi"', b'"exec"']  # the aborted one
    assert b'"auth" "(redacted)"' in commands
    assert b'"auth" "(redacted)" "(redacted)"' in commands
    assert b'"hello" "2" "AUTH" "(redacted)" "(redacted)"' in commands
    assert not any(c.startswith(b'"config"') for c in commands)
    assert (b"1", b"client", b'"set" "in-db-1" "x"') in lines


@needs_redis
def test_monitor_lines_match_redis(node_port, tmp_path):
    server = RedisServer(tmp_path / "redis")
    try:
        theirs = _shape(_scenario(server.port))
    finally:
        server.stop()
    assert _shape(_scenario(node_port)) == theirs


def test_monitor_address_is_the_clients(node_port):
    mon = Monitor(node_port)
    with socket.create_connection(("127.0.0.1", node_port), timeout=10) as c:
        c.sendall(b"SET addr 1\r\n")
        assert c.recv(100) == b"+OK\r\n"
        found = _LINE.match(mon.line())
        assert found is not None
        assert found.group(3) == b"127.0.0.1:%d" % c.getsockname()[1]
        assert found.group(4) == b'"set" "addr" "1"'
    mon.close()


def test_reset_and_close_end_monitoring(node_port):
    r = redis.Redis(port=node_port, socket_timeout=10)

    def monitors():
        return r.info("stats")["monitor_clients"]

    first, second = Monitor(node_port), Monitor(node_port)
    wait_for(lambda: monitors() == 2, what="two monitors registered")
    first.sock.sendall(b"RESET\r\n")
    while (line := first.line()) != b"+RESET":  # lines of the INFOs above may come first
        assert _LINE.match(line) is not None
    r.set("after-reset", "1")
    second.until(b'"set" "after-reset" "1"')
    first.sock.sendall(b"PING\r\n")
    assert first.line() == b"+PONG"  # no line came between: it monitors no more
    second.close()
    first.close()
    wait_for(lambda: monitors() == 0, what="closed monitors forgotten by the log actor")
    r.close()


def test_zeromq_clients_cannot_monitor(make_node):
    node = make_node().start()
    with node.client() as client:
        with pytest.raises(CommandError, match="MONITOR needs a RESP connection"):
            client.execute("MONITOR")
        assert client.execute("INFO", "stats")["stats"]["monitor_clients"] == 0


def test_monitor_inside_a_transaction_is_refused_as_redis_refuses_it(node_port, tmp_path):
    def attempt(port):
        r = redis.Redis(port=port, protocol=2, socket_timeout=10)
        tx = r.pipeline(transaction=True)
        tx.execute_command("MONITOR").set("after", "1")
        replies = tx.execute(raise_on_error=False)
        r.close()
        return [str(x) for x in replies]

    got = attempt(node_port)
    assert got == ["MONITOR isn't allowed for DENY BLOCKING client", "True"]
    if shutil.which("redis-server"):
        server = RedisServer(tmp_path / "redis")
        try:
            assert attempt(server.port) == got
        finally:
            server.stop()
    r = redis.Redis(port=node_port, socket_timeout=10)
    assert r.info("stats")["monitor_clients"] == 0  # nothing left registered
    r.close()


@pytest.mark.timeout(90)
def test_monitors_are_closed_when_the_log_actor_dies(make_node):
    node, port = _start(make_node, appendfsync="everysec")
    mon = Monitor(port)
    os.kill(node.actor_pids()["log"], signal.SIGKILL)
    try:
        while mon.sock.recv(65536):  # lines of commands run before, then the close
            pass
    finally:
        mon.close()


def test_a_blocked_command_is_shown_once(node_port):
    mon = Monitor(node_port)
    r = redis.Redis(port=node_port, socket_timeout=10)
    assert r.blpop(["empty"], timeout=0.1) is None  # blocks, then times out
    r.rpush("list", "a")
    assert r.blpop(["list"], timeout=1) == (b"list", b"a")  # served at once
    r.set("end", "1")
    commands = [args for _db, _addr, args in mon.until(b'"set" "end" "1"')]
    assert [c for c in commands if c.lower().startswith(b'"blpop"')] == [
        b'"blpop" "empty" "0.1"', b'"blpop" "list" "1"']
    mon.close()
    r.close()
