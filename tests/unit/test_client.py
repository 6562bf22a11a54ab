"""aofnode.client against scripted ZeroMQ peers: Lazy Pirate timeouts, retry rules, SELECT,
the LOADING budget."""
import threading
import time

import msgpack
import pytest
import zmq

from aofnode import protocol
from aofnode.client import Client, CommandError, NodeTimeout
from tests.nodeproc import free_port


class ScriptedNode:
    """A real ROUTER socket on loopback that answers from a script: each request pops the next
    action: a reply value, an Error, or None (stay silent). It records what it received.

    For its first ``loading_for`` seconds it answers every request LOADING instead, as a node
    reading its AOF does, without popping the script."""

    def __init__(self, script: list, loading_for: float = 0.0) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.script = list(script)
        self.received: list = []  # the requests (payloads) ...
        self.headers: list = []  # ... and the protocol-2 headers they came with
        self.identities: list[bytes] = []
        self.loading_replies = 0
        self._loading_until = time.monotonic() + loading_for
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self) -> None:
        sock = zmq.Context.instance().socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(self.endpoint)
        self._ready.set()
        while not self._stop.is_set():
            if not sock.poll(50):
                continue
            frames = sock.recv_multipart()
            self.identities.append(frames[0])
            header, payload = msgpack.unpackb(frames[-1], raw=False)
            self.headers.append(header)
            self.received.append(payload)
            if time.monotonic() < self._loading_until:
                self.loading_replies += 1
                loading = protocol.Error(protocol.LOADING, protocol.LOADING_MESSAGE)
                sock.send_multipart([*frames[:-1], protocol.encode_reply(loading)])
                continue
            action = self.script.pop(0) if self.script else None
            if type(action) is tuple:  # a tuple in the script: the replies to a batch
                sock.send_multipart([*frames[:-1], protocol.encode_batch_reply(list(action))])
            elif action is not None:
                sock.send_multipart([*frames[:-1], protocol.encode_reply(action)])
        sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def scripted():
    made = []

    def make(script, **kwargs):
        made.append(ScriptedNode(script, **kwargs))
        return made[-1]
    yield make
    for s in made:
        s.close()


def test_timeout_of_a_retry_safe_command_retries_on_fresh_sockets(scripted):
    node = scripted([None, None, b"late but fine"])
    with Client(node.endpoint, timeout=0.2, retries=3) as c:
        assert c.execute("GET", "k") == b"late but fine"
    assert len(node.received) == 3
    assert len(set(node.identities)) == 3  # Lazy Pirate: a new socket for every attempt


def test_timeout_of_a_write_is_not_retried(scripted):
    node = scripted([None, "OK"])
    with Client(node.endpoint, timeout=0.2, retries=3) as c:
        with pytest.raises(NodeTimeout):
            c.execute("INCR", "n")
    assert len(node.received) == 1


def test_loading_is_retried_for_any_command_then_succeeds(scripted):
    loading = protocol.Error(protocol.LOADING, "loading")
    node = scripted([loading, loading, 7])
    with Client(node.endpoint, timeout=2, retries=3) as c:
        assert c.execute("INCR", "n") == 7
    assert len(node.received) == 3


def test_a_reload_of_a_second_is_waited_out_with_backoff(scripted):
    # Finding 10 of issue 9: a reload of 1M entries takes ~2 s; the client used to give up after
    # ~0.1 s. A write is retried too: LOADING means the node refused it before executing it.
    node = scripted(["OK"], loading_for=1.0)
    with Client(node.endpoint, timeout=2, retries=1) as c:
        started = time.monotonic()
        assert c.execute("SET", "k", "v") == "OK"
        waited = time.monotonic() - started
    assert 1.0 <= waited < 1.0 + 1.0 + 0.5  # at most one capped wait (1 s) past the reload
    assert node.received == [["SET", "k", "v"]] * (node.loading_replies + 1)
    # Jittered backoff from 50 ms, capped at 1 s: a handful of tries, not a busy loop.
    assert 2 <= node.loading_replies <= 25


def test_a_reload_longer_than_the_budget_fails_with_a_clear_error(scripted):
    node = scripted(["OK"], loading_for=30.0)
    with Client(node.endpoint, timeout=2, loading_timeout=0.4) as c:
        started = time.monotonic()
        err = pytest.raises(CommandError, c.execute, "GET", "k").value
        waited = time.monotonic() - started
    assert err.code == protocol.LOADING
    assert err.message.startswith(protocol.LOADING_MESSAGE)
    assert "still loading after 0.4s" in err.message
    assert "loading_timeout=0.4s" in err.message
    assert 0.4 <= waited < 0.4 + 0.5  # the last try lands on the deadline, not a wait past it
    assert f"{node.loading_replies} tries" in err.message


def test_a_batch_is_retried_while_loading_and_fails_whole(scripted):
    node = scripted([], loading_for=30.0)
    with Client(node.endpoint, timeout=2, loading_timeout=0.2) as c:
        err = pytest.raises(CommandError, c.execute_many, [("SET", "a", "1"), ("GET", "a")]).value
    assert err.code == protocol.LOADING
    assert node.loading_replies >= 2


def test_loading_timeout_zero_does_not_retry(scripted):
    node = scripted(["OK"], loading_for=30.0)
    with Client(node.endpoint, timeout=2, loading_timeout=0) as c:
        assert pytest.raises(CommandError, c.execute, "PING").value.code == protocol.LOADING
    assert len(node.received) == 1


def test_a_failed_select_leaves_the_db_unchanged(scripted):
    node = scripted([protocol.Error(protocol.ERR, "DB index is out of range"), b"v"])
    with Client(node.endpoint, timeout=0.5, retries=2) as c:
        assert pytest.raises(CommandError, c.execute, "SELECT", 99).value.code == protocol.ERR
        assert c.db == 0
        assert c.execute("GET", "k") == b"v"
    assert node.headers == [{}, {}]


def test_aborted_write_surfaces_as_error(scripted):
    node = scripted([protocol.Error(protocol.ABORTED, "maybe applied")])
    with Client(node.endpoint, timeout=2, retries=3) as c:
        err = pytest.raises(CommandError, c.execute, "SET", "k", "v").value
    assert err.code == protocol.ABORTED
    assert len(node.received) == 1


def test_the_selected_db_travels_in_every_header_even_on_a_new_socket(scripted):
    """Protocol 2: no SELECT is replayed on a new socket; the db is in each message's header, so
    a retry on a fresh socket (a restarted front, identity churn) runs on the same db."""
    node = scripted(["OK", None, b"v", ("OK", b"w"), b"x"])
    with Client(node.endpoint, timeout=0.2, retries=2) as c:
        c.execute("SELECT", 4)
        assert c.execute("GET", "k") == b"v"  # the first try times out; the retry's socket is new
        assert c.execute_many([("SELECT", 5), ("GET", "j")]) == ["OK", b"w"]
        assert c.db == 5
        assert c.execute("GET", "i") == b"x"
    assert node.received == [["SELECT", 4], ["GET", "k"], ["GET", "k"], [["SELECT", 5], ["GET", "j"]],
                             ["GET", "i"]]
    assert node.headers == [{}, {"db": 4}, {"db": 4}, {"db": 4}, {"db": 5}]
    assert len(set(node.identities[1:3])) == 2  # the retry came from a new socket


def test_db_at_construction(scripted):
    node = scripted(["OK"])
    with Client(node.endpoint, timeout=1, db=9) as c:
        c.execute("SET", "k", "v")
    assert node.headers == [{"db": 9}]


def test_pipeline_timeout_raises_and_is_not_retried_when_unsafe(scripted):
    node = scripted([None, None])
    with Client(node.endpoint, timeout=0.2, retries=3) as c:
        with pytest.raises(NodeTimeout):
            c.execute_many([("GET", "a"), ("SET", "b", "1")])  # one write makes it unsafe
    assert len(node.received) == 1


def test_argument_of_a_wrong_type_is_refused_client_side():
    with Client("tcp://127.0.0.1:1", timeout=0.1, retries=1) as c:
        with pytest.raises(TypeError):
            c.execute("SET", "k", 1.5)
