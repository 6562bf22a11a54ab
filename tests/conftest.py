import contextlib
import fcntl
import os
import shutil

import pytest

from tests.fakeclock import FakeClock

from tests.nodeproc import Node, RedisServer


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


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    """A reference redis-server for a module's differential tests (skipped without one)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server.port
    server.stop()


@pytest.fixture
def node(make_node):
    return make_node().start()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """A solo test joins the "heavy" group (pyproject.toml, addopts): no heavy test is running
    when it starts, so it waits only for the light tests of the other workers, never a minute
    for a heavy one while every worker idles at the gate (``_exclusion`` below)."""
    for item in items:
        if item.get_closest_marker("solo") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group("heavy"))


def _heavy(item) -> bool:
    return any(m.args[:1] == ("heavy",) or m.kwargs.get("name") == "heavy"
               for m in item.iter_markers("xdist_group"))


@pytest.fixture(autouse=True)
def _exclusion(request, tmp_path_factory):
    """Under pytest-xdist, what the marks promise, enforced with flock(2) on files in the
    directory the workers of one run share (pytest's base temp of the run):

    1. ``xdist_group("heavy")``: one heavy test at a time. ``--dist loadgroup`` would already
       run the group on one worker, but pytest-xdist 3.8 marks a group in ``item._nodeid``,
       which pytest 9.2 no longer reads, so the group is ignored; ``heavy.lock``, held
       exclusive, keeps the promise either way (and costs nothing once the group works).
    2. ``@pytest.mark.solo``: the test runs while no other test does, for a bound (a latency, a
       rate) that holds only on a machine it has to itself. A readers-writer lock: every test
       holds ``solo.lock`` shared, a solo test exclusive; ``solo.gate`` keeps a waiting solo test
       from starving: it holds the gate exclusive until it has the lock, and the others pass
       the gate before they take the lock.

    Locks are taken in that order (heavy, gate, lock), so no two tests wait for each other.
    Autouse: set up before the test's other fixtures, released after their teardown."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: every test runs alone already
        yield
        return
    run_dir = tmp_path_factory.getbasetemp().parent  # .../pytest-N, above each popen-gwK
    solo = request.node.get_closest_marker("solo") is not None
    with contextlib.ExitStack() as held:  # closing a file releases its lock
        if _heavy(request.node):
            fcntl.flock(held.enter_context(open(run_dir / "heavy.lock", "a")), fcntl.LOCK_EX)
        gate = held.enter_context(open(run_dir / "solo.gate", "a"))
        lock = held.enter_context(open(run_dir / "solo.lock", "a"))
        fcntl.flock(gate, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        yield
