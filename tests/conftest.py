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


@pytest.hookimpl(wrapper=True)  # around pytest-xdist's worker plugin, which names the groups
def pytest_collection_modifyitems(config, items):
    """Three things around pytest-xdist's naming of the groups (pyproject.toml, addopts):

    1. before: a solo test joins the "heavy" group. No heavy test is running when it starts, so
       it waits only for the tests of the other workers, never a minute for a heavy one while
       every worker idles at the gate (``_exclusion`` below).
    2. before, under xdist: the solo tests come first, so they run in the first seconds of the
       heavy group; later one would wait at the gate, with every worker idle, for the test the
       "kill9" group's worker is in (up to ~25 s for the transfer test).
    3. after: ``--dist loadgroup`` is made to see the groups. On a worker, pytest-xdist 3.8 names
       an item's group by setting ``item._nodeid`` to ``<nodeid>@<group>``, and its scheduler
       reads the group back from the node id; pytest 9.2 builds ``nodeid`` from ``item._id`` and
       never reads ``_nodeid``, so every group was ignored: each heavy test went to whichever
       worker was free and waited there on ``heavy.lock`` while that worker did nothing else
       (about 450 worker-seconds a run). With the suffixed id in ``_id`` the whole group is one
       unit of work for one worker, run one test after another, and no other worker waits on
       the lock. This is pytest-xdist's open fix (github.com/pytest-dev/pytest-xdist/pull/1388);
       it does nothing where ``_nodeid`` is still read (older pytest) or without xdist."""
    for item in items:
        if item.get_closest_marker("solo") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group("heavy"))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike: the same collection
        items.sort(key=lambda item: item.get_closest_marker("solo") is None)  # stable
    result = yield
    for item in items:
        grouped = item.__dict__.get("_nodeid")
        current = getattr(item, "_id", None)
        if isinstance(grouped, str) and current is not None and str(current) != grouped:
            item._id = type(current).parse(grouped)
    return result


def _groups(item) -> list[str]:
    return sorted({m.args[0] if m.args else m.kwargs.get("name", "default")
                   for m in item.iter_markers("xdist_group")})


_NEXT = pytest.StashKey[object]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Remember which test this worker runs next (``_exclusion``, 3)."""
    item.stash[_NEXT] = nextitem


class _Kept:
    """The locks a solo test passes on to the next test of its worker (``_exclusion``, 3)."""

    stack: contextlib.ExitStack | None = None


def _solo(item) -> bool:
    return item.get_closest_marker("solo") is not None


@pytest.fixture(autouse=True)
def _exclusion(request, tmp_path_factory):
    """Under pytest-xdist, what the marks promise, enforced with flock(2) on files in the
    directory the workers of one run share (pytest's base temp of the run):

    1. ``xdist_group(NAME)``: one test of the group at a time ("heavy": the tests that load the
       machine; "kill9": the kill -9 loops, which may run beside a heavy test). ``--dist
       loadgroup`` already runs each group on one worker (``pytest_collection_modifyitems``
       above); ``NAME.lock``, held exclusive, keeps the promise should the groups be lost again
       (a pytest or pytest-xdist upgrade), and costs nothing while they work.
    2. ``@pytest.mark.solo``: the test runs while no other test does, for a bound (a latency, a
       rate) that holds only on a machine it has to itself. A readers-writer lock: every test
       holds ``solo.lock`` shared, a solo test exclusive; ``solo.gate`` keeps a waiting solo test
       from starving: it holds the gate exclusive until it has the lock, and the others pass
       the gate before they take the lock.
    3. Solo tests in a row: a solo test whose worker runs another solo test of the same groups
       next keeps its group locks and the gate for it, so the next one need not wait again for
       the tests the other workers would start in between (one wait for a row of them, not one
       each: that wait is for whatever the other workers run, a kill -9 test of ~10 s).

    Locks are taken in that order (groups by name, gate, lock), so no two tests wait for each
    other; a solo test that was passed the group locks and the gate takes only the lock.
    Autouse: set up before the test's other fixtures, released after their teardown."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: every test runs alone already
        yield
        return
    run_dir = tmp_path_factory.getbasetemp().parent  # .../pytest-N, above each popen-gwK
    node = request.node
    solo, groups = _solo(node), _groups(node)
    held, _Kept.stack = _Kept.stack, None  # closing a file releases its lock
    if held is not None and not solo:  # passed on for a solo test that did not come: let go
        held.close()
        held = None
    if held is None:
        held = contextlib.ExitStack()
        for group in groups:
            fcntl.flock(held.enter_context(open(run_dir / f"{group}.lock", "a")), fcntl.LOCK_EX)
        gate = held.enter_context(open(run_dir / "solo.gate", "a"))
        fcntl.flock(gate, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
    with held, open(run_dir / "solo.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if solo else fcntl.LOCK_SH)
        if not solo:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield
        following = node.stash.get(_NEXT, None)
        if solo and following is not None and _solo(following) and _groups(following) == groups:
            _Kept.stack = held.pop_all()  # still held, for the next test
