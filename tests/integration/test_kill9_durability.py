"""Hazard: kill -9 of any node process under ``appendfsync always`` loses no acknowledged write."""
import os
import signal
import threading
import time

import pytest

from aofnode.client import Client, CommandError, NodeTimeout
from tests.nodeproc import pid_alive, wait_for

WRITERS = 4

# Kill -9 under a write load: one "kill9" test at a time, beside at most one heavy test
# (pyproject.toml, addopts).
pytestmark = pytest.mark.xdist_group("kill9")


class Writers:
    """Client threads writing unique keys; a write counts only once its reply said OK."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.acked: dict[bytes, bytes] = {}
        self.max_counter = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,), daemon=True) for t in range(WRITERS)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def _run(self, t: int) -> None:
        client = Client(self.endpoint, timeout=2.0, retries=1)
        i = 0
        while not self.stop.is_set():
            key, value = f"w{t}-{i}".encode(), f"v{i}".encode()
            i += 1
            try:
                replies = client.execute_many([("SET", key, value), ("INCR", "counter")])
            except (CommandError, NodeTimeout):
                time.sleep(0.01)
                continue
            if replies[0] == "OK" and isinstance(replies[1], int):
                with self.lock:
                    self.acked[key] = value
                    self.max_counter = max(self.max_counter, replies[1])
            else:
                time.sleep(0.01)
        client.close()


def _verify(node, writers: Writers) -> None:
    keys = list(writers.acked)
    assert len(keys) > 100
    with node.client(timeout=10) as c:
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            values = c.execute("MGET", *chunk)
            missing = [k for k, v in zip(chunk, values) if v != writers.acked[k]]
            assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        assert int(c.execute("GET", "counter")) >= writers.max_counter


@pytest.mark.parametrize("role", ["log", "front", "closer"])
def test_kill9_actor_then_supervisor_restarts_it(make_node, role):
    node = make_node("always").start()
    victim = node.actor_pids()[role]
    with Writers(node.endpoint) as writers:
        wait_for(lambda: writers.count() >= 300, 30, what="300 acknowledged writes")
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: node.actor_pids().get(role) not in (None, victim), 20, what=f"{role} restarted")
        before = writers.count()
        wait_for(lambda: writers.count() >= before + 200, 30, what="writes after the restart")
    _verify(node, writers)
    node.stop()  # and again from the AOF alone
    node.start()
    _verify(node, writers)


@pytest.mark.parametrize("who", ["supervisor", "every_process"])
def test_kill9_node_then_restart(make_node, who):
    node = make_node("always").start()
    with Writers(node.endpoint) as writers:
        wait_for(lambda: writers.count() >= 500, 30, what="500 acknowledged writes")
        pids = node.all_pids() if who == "every_process" else [node.proc.pid]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # Actors die with their supervisor (PDEATHSIG); the data dir stays locked until they have.
        wait_for(lambda: not any(pid_alive(p) for p in node.all_pids()), 20, what="every node process gone")
    node.start()
    _verify(node, writers)
