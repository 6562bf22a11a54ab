"""protocol.client against scripted ZeroMQ peers: Lazy Pirate timeouts, retry rules, SELECT."""
import threading

import msgpack
import pytest
import zmq

from protocol import codec
from protocol.client import Client, CommandError, NodeTimeout
from tests.nodeproc import free_port


class ScriptedNode:
    """A real ROUTER socket on loopback that answers from a script: each request pops the next
    action: a reply value, an Error, or None (stay silent). It records what it received."""

    def __init__(self, script: list) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.script = list(script)
        self.received: list = []
        self.identities: list[bytes] = []
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
            self.received.append(msgpack.unpackb(frames[-1], raw=False))
            action = self.script.pop(0) if self.script else None
            if action is not None:
                sock.send_multipart([*frames[:-1], codec.encode_reply(action)])
        sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def scripted():
    made = []

    def make(script):
        made.append(ScriptedNode(script))
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
    loading = codec.Error(codec.LOADING, "loading")
    node = scripted([loading, loading, 7])
    with Client(node.endpoint, timeout=2, retries=3) as c:
        assert c.execute("INCR", "n") == 7
    assert len(node.received) == 3


def test_aborted_write_surfaces_as_error(scripted):
    node = scripted([codec.Error(codec.ABORTED, "maybe applied")])
    with Client(node.endpoint, timeout=2, retries=3) as c:
        err = pytest.raises(CommandError, c.execute, "SET", "k", "v").value
    assert err.code == codec.ABORTED
    assert len(node.received) == 1


def test_selected_db_is_selected_again_on_a_new_socket(scripted):
    node = scripted(["OK", None, "OK", b"v"])
    with Client(node.endpoint, timeout=0.2, retries=2) as c:
        c.execute("SELECT", 4)
        assert c.execute("GET", "k") == b"v"
    assert node.received == [["SELECT", 4], ["GET", "k"], ["SELECT", 4], ["GET", "k"]]


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
