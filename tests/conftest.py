import fcntl
import os

import pytest

from tests.fakeclock import FakeClock

from tests.nodeproc import Node


@pytest.fixture
def make_node(tmp_path):
    """Factory for real nodes; every process they started is killed at teardown."""
    nodes = []

    def make(appendfsync: str = "always", extra: tuple = (), env: dict | None = None, root=None,
             log_via_pipe: bool = False) -> Node:
        node = Node(root or tmp_path, appendfsync=appendfsync, extra=extra, env=env, log_via_pipe=log_via_pipe)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.kill_all()


@pytest.fixture
def node(make_node):
    return make_node().start()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _solo(request, tmp_path_factory):
    """``@pytest.mark.solo``: under pytest-xdist, the test runs while no other test of the run
    does, for a test whose bound (a latency, a rate) holds only on a machine it has to itself.
    A readers-writer lock over the workers of one run, two flock(2)ed files in the directory
    they share (pytest's base temp of the run): every test holds ``solo.lock`` shared, a solo
    test holds it exclusive. ``solo.gate`` keeps a waiting solo test from starving: it holds the
    gate exclusive until it has the lock, and the others pass the gate before they take the lock.
    Set up before the test's other fixtures (autouse), released after their teardown."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: every test runs alone already
        yield
        return
    run_dir = tmp_path_factory.getbasetemp().parent  # .../pytest-N, above each popen-gwK
    solo = request.node.get_closest_marker("solo") is not None
    with open(run_dir / "solo.gate", "a") as gate, open(run_dir / "solo.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # closing the file releases the lock
