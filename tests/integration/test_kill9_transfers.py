"""Hazard: kill -9 of the log actor during a stream of MULTI/EXEC transfers between keys, under
``appendfsync always``. A transaction's writes are one AOF record, so after every recovery the
sum of the accounts is what it was at the start, and no acknowledged transfer is lost.

Transfers come from ZeroMQ clients (``Client.transaction``) and from a RESP client (redis-py's
default ``pipeline()``, a MULTI/EXEC). ``AOFNODE_KILL9_TRANSFER_KILLS`` sets the number of kills
(default 10, for the suite's time; a longer manual run: 50). The kills come seconds apart, so
the supervisor's restart backoff would double to its 5 s cap after a few of them (26 s of
waiting for 10 kills): ``--restart-backoff-max 0.1`` restarts each time after 0.1 s, since what
is tested is the recovery, not the wait before it."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from aofnode.client import Client, CommandError, NodeTimeout
from tests.nodeproc import free_port, wait_for

redis = pytest.importorskip("redis")

# A kill -9 loop: one "kill9" test at a time, beside at most one heavy test (pyproject.toml).
pytestmark = pytest.mark.xdist_group("kill9")

ACCOUNTS = [f"acct{i}".encode() for i in range(8)]
START = 1000
TOTAL = START * len(ACCOUNTS)
KILLS = int(os.environ.get("AOFNODE_KILL9_TRANSFER_KILLS", "10"))


class Transfers:
    """Threads sending transfers; each also counts its own acknowledged transfers in the node
    (``n:<thread>``, incremented inside the transaction) and here (``acked``)."""

    def __init__(self, endpoint: str, resp_port: int, zmq_threads: int = 2) -> None:
        self.endpoint, self.resp_port = endpoint, resp_port
        self.stop = threading.Event()
        self.acked = {f"z{t}": 0 for t in range(zmq_threads)}
        self.acked["r"] = 0
        self.threads = [threading.Thread(target=self._zmq, args=(f"z{t}",), daemon=True)
                        for t in range(zmq_threads)]
        self.threads.append(threading.Thread(target=self._resp, daemon=True))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()

    def total_acked(self) -> int:
        return sum(self.acked.values())

    @staticmethod
    def _block(name: str, rng: random.Random) -> list:
        a, b = rng.sample(ACCOUNTS, 2)
        amount = rng.randint(1, 50)
        return [("DECRBY", a, amount), ("INCRBY", b, amount), ("INCR", f"n:{name}")]

    def _zmq(self, name: str) -> None:
        rng = random.Random(name)
        client = Client(self.endpoint, timeout=2.0, retries=1, loading_timeout=0)
        while not self.stop.is_set():
            try:
                replies = client.transaction(self._block(name, rng))
            except (CommandError, NodeTimeout):
                time.sleep(0.01)
                continue
            if replies and all(type(r) is int for r in replies):
                self.acked[name] += 1
            else:
                time.sleep(0.01)
        client.close()

    def _resp(self) -> None:
        rng = random.Random("r")
        r = redis.Redis(port=self.resp_port, socket_timeout=2, socket_connect_timeout=2)
        while not self.stop.is_set():
            try:
                with r.pipeline() as p:  # transaction=True: MULTI ... EXEC
                    for cmd, *args in self._block("r", rng):
                        p.execute_command(cmd, *args)
                    replies = p.execute()
            except (redis.RedisError, OSError):
                time.sleep(0.01)
                continue
            if all(type(x) is int for x in replies):
                self.acked["r"] += 1
        r.close()


def _check(node_endpoint: str, transfers: Transfers) -> None:
    """Sum constant; every acknowledged transfer applied (at most one more per thread: one
    may have been applied and its reply lost with the log actor)."""
    acked = dict(transfers.acked)  # before the read: counts only grow
    with Client(node_endpoint, timeout=10, retries=3) as c:
        names = list(acked)
        values = c.transaction([("MGET", *ACCOUNTS), ("MGET", *[f"n:{n}" for n in names])])
    balances, counts = values
    assert sum(int(v) for v in balances) == TOTAL, balances
    for name, count in zip(names, counts):
        assert int(count or 0) >= acked[name], (name, count, acked[name])


def test_kill9_log_actor_during_transfers_keeps_the_sum(make_node):
    port = free_port()
    node = make_node("always", extra=("--resp-bind", f"127.0.0.1:{port}", "--crash-loop-count",
                                      str(10 * KILLS + 10), "--restart-backoff-max", "0.1")).start()
    with node.client() as c:
        c.execute("MSET", *[x for a in ACCOUNTS for x in (a, START)])
    rng = random.Random(20)
    with Transfers(node.endpoint, port) as transfers:
        wait_for(lambda: transfers.total_acked() >= 50, 60, what="50 acknowledged transfers")
        for kill in range(KILLS):
            victim = node.actor_pids()["log"]
            time.sleep(rng.uniform(0.0, 0.3))  # at a random point of the stream
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda victim=victim: node.actor_pids().get("log") not in (None, victim), 30,
                     what=f"log actor restarted after kill {kill + 1}")
            before = transfers.total_acked()
            wait_for(lambda before=before: transfers.total_acked() >= before + 10, 60,
                     what=f"transfers after kill {kill + 1}")
            _check(node.endpoint, transfers)
    _check(node.endpoint, transfers)
    node.stop()  # and from the AOF alone
    check = subprocess.run([os.path.join(os.path.dirname(sys.executable), "aofnode"), "check-aof",
                            str(node.aof_path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "status: ok" in check.stdout, check.stdout
    node.start()
    _check(node.endpoint, transfers)
