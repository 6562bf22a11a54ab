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
