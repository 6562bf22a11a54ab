"""The RESP front actor in process: real TCP clients, and the test playing the log actor over the
real channel (as tests/unit/test_front_actor.py does for the ZeroMQ front). No subprocess: the
runtime is driven turn by turn."""
from __future__ import annotations

import socket

import msgpack
import pytest
import structlog

from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.fronts.core import MAX_CLIENT_WAITING as MAX_CONN_WAITING
from aofnode.fronts.resp_front import BindError, RespFront
from aofnode.runtime.actor import Runtime
from aofnode.config import Config
from aofnode import protocol
from aofnode.bench.resp import ReplyParser, RespError, encode_command
from tests.nodeproc import free_port, wait_for


def _make(tmp_path, password: bytes | None = None, **kw):
    (tmp_path / "data").mkdir(exist_ok=True)
    config = Config(dir=str(tmp_path / "data"), resp_bind=f"127.0.0.1:{free_port()}", **kw)
    actor = RespFront(config, structlog.get_logger(), password)
    rt = Runtime(actor)
    rt.start()
    return actor, rt, config


@pytest.fixture
def front(tmp_path):
    actor, rt, config = _make(tmp_path)
    yield actor, rt, config
    actor.on_stop()


class _Client:
    def __init__(self, config: Config, rt: Runtime) -> None:
        host, port = config.resp_bind.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.sock.setblocking(False)
        self.rt = rt
        self.parser = ReplyParser()
        self.got: list = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def call(self, *args) -> None:
        self.send(encode_command(*args))

    def replies(self, n: int) -> list:
        def enough():
            self.rt.run_once(timeout=0.01)
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                data = None
            if data:
                self.parser.feed(data)
                self.got.extend(self.parser.replies())
            return len(self.got) >= n
        wait_for(enough, timeout=5, what=f"{n} replies")
        out, self.got = self.got[:n], self.got[n:]
        return out

    def closed(self) -> bool:
        self.rt.run_once(timeout=0.01)
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
        if data:
            self.parser.feed(data)
            self.got.extend(self.parser.replies())
            return False
        return True


def _log_side(actor, rt, config):
    ch = channel.connect(config.resp_backend_path)
    assert ch is not None
    ch.send(m.Hello(4321))
    wait_for(lambda: rt.run_once(timeout=0.01) or actor.ready, timeout=5, what="ready")
    return ch


def _batches(rt, ch):
    def got():
        rt.run_once(timeout=0.01)
        return [msg for msg in ch.receive() if type(msg) is m.Batch]
    return wait_for(got, timeout=5, what="a batch")


def test_loading_until_the_log_actor_says_hello_but_connection_commands_answer(front):
    actor, rt, config = front
    c = _Client(config, rt)
    c.call("GET", "k")
    c.call("SELECT", "3")
    c.call("PING")
    assert c.replies(3) == [RespError("LOADING", "LOADING aofnode is loading the dataset in memory"),
                            "OK", RespError("LOADING", "LOADING aofnode is loading the dataset in memory")]


def test_a_pipeline_becomes_one_message_with_the_connections_db(front):
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.send(encode_command("SELECT", "4") + encode_command("SET", "k", "v") + encode_command("GET", "k"))
    [batch] = _batches(rt, ch)
    # The header asks for the replies as RESP2, the connection's protocol (node/log/replies.py);
    # the names go as the command table's keys, checked here (the log actor only looks them up).
    [body] = batch.bodies
    assert msgpack.unpackb(body) == [{"db": 4, "resp": 2}, [["SET", b"k", b"v"], ["GET", b"k"]]]
    ch.send(m.Replies(1, [batch.first_seq], [msgpack.packb([[0, "OK"], [0, b"v"]])]))
    assert c.replies(3) == ["OK", "OK", b"v"]


def test_replies_made_as_resp_by_the_log_actor_are_written_as_they_came(front):
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.send(encode_command("HELLO", "3") + encode_command("SET", "k", "v") + encode_command("GET", "k"))
    [batch] = _batches(rt, ch)
    [body] = batch.bodies
    assert msgpack.unpackb(body)[0] == {"resp": 3}
    # Bytes a protocol 2 reply could not be, passed through untouched: the front does not decode.
    ch.send(m.Replies(1, [batch.first_seq], [b"+OK\r\n,1.5\r\n"]))
    hello, ok, double = c.replies(3)
    assert (ok, double) == ("OK", 1.5)


def test_local_answers_wait_behind_earlier_commands(front):
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.send(encode_command("GET", "a") + encode_command("NOPE", "x") + encode_command("CLIENT", "ID")
           + encode_command("GET", "b"))
    batches = []
    wait_for(lambda: batches.extend(_batches(rt, ch)) or len(batches) >= 1 and sum(len(b.bodies) for b in batches) == 2,
             timeout=5, what="two messages")
    for _ in range(5):
        rt.run_once(timeout=0.01)
    assert c.got == [] and not c.closed()  # nothing may overtake the first GET
    seqs = [b.first_seq + i for b in batches for i in range(len(b.bodies))]
    ch.send(m.Replies(len(batches), seqs[::-1], [msgpack.packb([[0, b"2"]]), msgpack.packb([[0, b"1"]])]))
    first, unknown, cid, second = c.replies(4)
    assert (first, second) == (b"1", b"2")
    assert unknown == RespError("ERR", "ERR unknown command 'NOPE', with args beginning with: 'x' ")
    assert type(cid) is int


def test_the_log_actors_death_aborts_what_was_in_flight(front):
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.call("SET", "k", "v")
    _batches(rt, ch)
    ch.close()
    [reply] = c.replies(1)
    assert reply.code == "ABORTED"
    c.call("GET", "k")
    assert c.replies(1)[0].code == "LOADING"


def test_resp3_after_hello_and_shaped_replies(front):
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.call("HELLO", "3")
    [hello] = c.replies(1)
    assert hello[b"proto"] == 3 and hello[b"server"] == b"aofnode"
    c.send(encode_command("HGETALL", "h") + encode_command("GET", "nope"))
    [batch] = _batches(rt, ch)
    ch.send(m.Replies(1, [batch.first_seq], [msgpack.packb([[0, [b"f", b"v"]], [0, None]])]))
    c.sock.setblocking(False)
    raw = b""
    def got_raw():
        nonlocal raw
        rt.run_once(timeout=0.01)
        try:
            raw += c.sock.recv(4096)
        except BlockingIOError:
            pass
        return raw.endswith(b"_\r\n")
    wait_for(got_raw, timeout=5, what="RESP3 replies")
    assert raw == b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n_\r\n"


def test_a_protocol_error_answers_what_came_before_then_closes(front):
    actor, rt, config = front
    _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.send(b"CLIENT ID\r\n*1\r\n$-5\r\n")
    cid, err = c.replies(2)
    assert type(cid) is int
    assert err == RespError("ERR", "ERR Protocol error: invalid bulk length")
    wait_for(c.closed, timeout=5, what="the connection closed")
    assert actor.stats["protocol_errors"] == 1


def test_requirepass_gates_everything_but_auth(tmp_path):
    actor, rt, config = _make(tmp_path, password=b"s3cret")
    try:
        c = _Client(config, rt)
        c.call("GET", "k")
        c.call("AUTH", "wrong")
        c.call("AUTH", "s3cret")
        c.call("CLIENT", "GETNAME")
        assert c.replies(4) == [RespError("NOAUTH", "NOAUTH Authentication required."),
                                RespError("WRONGPASS", "WRONGPASS invalid username-password pair or user is disabled."),
                                "OK", None]
        assert actor.stats["auth_failures"] == 1
        # Before AUTH, Redis's tighter limits: a big bulk is refused before it is buffered.
        d = _Client(config, rt)
        d.send(b"*2\r\n$3\r\nGET\r\n$100000\r\n")
        assert d.replies(1) == [RespError("ERR", "ERR Protocol error: unauthenticated bulk length")]
    finally:
        actor.on_stop()


def test_a_slow_reader_is_cut_at_the_output_limit(tmp_path):
    actor, rt, config = _make(tmp_path, client_output_limit=256 * 1024)
    try:
        ch = _log_side(actor, rt, config)
        c = _Client(config, rt)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        big = b"x" * 65536
        sent = 0
        def cut():
            nonlocal sent
            c.call("GET", "big")
            for batch in [msg for msg in ch.receive() if type(msg) is m.Batch]:
                ch.send(m.Replies(1, [batch.first_seq + i for i in range(len(batch.bodies))],
                                  [msgpack.packb([[0, big]])] * len(batch.bodies)))
                sent += len(batch.bodies)
            rt.run_once(timeout=0.01)
            return actor.stats["output_limit_disconnections"]
        wait_for(cut, timeout=10, what="the slow reader cut off")
        assert not actor.conns
        assert sent * len(big) > 256 * 1024  # it was cut by bytes held, not by a count
        # The kernel still drains what it had taken into the client's 4 KiB window, slowly:
        # the process holds nothing of it any more.
        assert actor.total_out == 0
    finally:
        actor.on_stop()


def test_a_second_front_on_the_same_port_cannot_bind(front):
    _actor, _rt, config = front
    other = Runtime(RespFront(config, structlog.get_logger()))
    with pytest.raises(BindError, match="cannot bind"):
        other.start()


def test_a_reachable_bind_without_a_password_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    config = Config(dir=str(tmp_path / "data"), resp_bind=f"0.0.0.0:{free_port()}")
    with pytest.raises(BindError, match="without a password"):
        Runtime(RespFront(config, structlog.get_logger())).start()


def test_a_connection_is_not_read_past_its_waiting_bound(front):
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    total = MAX_CONN_WAITING + 30_000  # more than one 64 KiB read past the bound (~2,700 GETs each)
    unsent = memoryview(encode_command("GET", "k") * total)
    batches = []

    def pump():
        nonlocal unsent
        if unsent:
            try:
                unsent = unsent[c.sock.send(unsent):]
            except BlockingIOError:
                pass
        rt.run_once(timeout=0.01)
        batches.extend(msg for msg in ch.receive() if type(msg) is m.Batch)

    wait_for(lambda: pump() or actor.paused, timeout=10, what="the connection paused")
    [conn] = actor.paused
    for _ in range(20):  # paused: nothing more is read however long it waits
        pump()
    forwarded = conn.waiting
    assert MAX_CONN_WAITING <= forwarded < total
    # Answering lets it read on, and every command is answered once, in order.
    answered = 0

    def all_answered():
        nonlocal answered
        pump()
        while batches:
            b = batches.pop(0)
            replies = []
            for body in b.bodies:
                n = _count(body)
                replies.append(msgpack.packb([[0, b"%d" % (answered + i)] for i in range(n)]))
                answered += n
            ch.send(m.Replies(1, list(range(b.first_seq, b.first_seq + len(b.bodies))), replies))
        return answered == total
    wait_for(all_answered, timeout=20, what="every command forwarded")
    assert c.replies(total) == [b"%d" % i for i in range(total)]


def _count(body: bytes) -> int:
    return len(protocol.decode_message(body).items)


def test_a_run_of_commands_is_cut_before_a_message_would_pass_its_byte_bound(front, monkeypatch):
    """Here with a 1000-byte bound instead of ~64 MiB: the same code path, small enough that one
    read holds many commands."""
    import aofnode.fronts.resp_route as resp_route
    monkeypatch.setattr(resp_route, "MESSAGE_BYTES", 1000)
    actor, rt, config = front
    ch = _log_side(actor, rt, config)
    c = _Client(config, rt)
    c.send(b"".join(encode_command("SET", "k%02d" % i, b"v" * 100) for i in range(40)))
    bodies = []
    wait_for(lambda: bodies.extend(body for b in _batches(rt, ch) for body in b.bodies)
             or sum(map(_count, bodies)) == 40, timeout=5, what="40 commands forwarded")
    assert len(bodies) >= 5 and all(len(body) <= 1000 for body in bodies)


def test_incomplete_commands_are_bounded_all_together(front, monkeypatch):
    """Here with a 1 MiB bound instead of 256 MiB: three clients each send most of a big
    command and stop; the one holding most is closed once they pass it together."""
    import aofnode.fronts.resp_front as resp_front
    monkeypatch.setattr(resp_front, "TOTAL_INPUT_LIMIT", 1 << 20)
    actor, rt, config = front
    clients = [_Client(config, rt) for _ in range(3)]
    held = 0
    for i, c in enumerate(clients):
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n" + b"x" * (200_000 + 50_000 * i))
        held += 200_000 + 50_000 * i
        wait_for(lambda held=held: rt.run_once(timeout=0.01) or actor.input_bytes >= held, timeout=5,
                 what="the bytes taken")
    assert actor.stats["input_limit_disconnections"] == 0 and len(actor.conns) == 3  # 750,000 bytes
    c = clients[2]
    c.send(b"x" * 400_000)  # the biggest grows past the bound
    wait_for(lambda: rt.run_once(timeout=0.01) or actor.stats["input_limit_disconnections"], timeout=5,
             what="a cut")
    assert len(actor.conns) == 2 and actor.input_bytes < 1 << 20
    wait_for(c.closed, timeout=5, what="the biggest closed")
