"""Hazard: one ZeroMQ client pipelines the biggest legal SETs and never reads.

Twenty SETs of 60 MiB (1.2 GiB) sent at once by one DEALER: the front must push back on that
client (it stops reading once the bytes waiting for the log actor pass its bound, and ZeroMQ's
small receive pipe and TCP then hold the rest in the client), so its peak RSS stays under the
bound documented in docs/limits.md, and another client's PING is still answered within a second.
Without the byte bound the front peaked at 4.6 GiB and a PING waited 7.4 s.
A ROUTER cannot pause one peer, so a PING waits for about four of those SETs at worst: one
until the front reads again, one whose body is still in the channel ahead of it, one running in
the log actor, and its own turn behind the next. One takes ~0.2 s on an idle machine (the bound
is then 1 s) and over 1 s on a loaded one, so the bound is four times what one SET takes alone
here, and at least 1 s.
"""
from __future__ import annotations

import time

import msgpack
import zmq

import pytest

from aofnode.fronts.core import MAX_CLIENT_WAITING_BYTES
from aofnode.fronts.log_link import MAX_BATCH_BYTES
from aofnode.fronts.zmq_front import PEER_RCVHWM
from aofnode.protocol.wire import MAX_MESSAGE_BYTES

MIB = 1 << 20
SETS = 20
VALUE_BYTES = 60 * MIB
DEADLINE_S = 50.0

# 1.2 GiB through the front ("heavy": one such test at a time), and a latency bound that holds
# on a machine it has to itself ("solo": no other test runs meanwhile; tests/conftest.py).
pytestmark = [pytest.mark.xdist_group("heavy"), pytest.mark.solo]
# docs/limits.md: the process itself; what waits for the log actor (the client's bound, the
# message that passed it and the one parked while it is paused); ZeroMQ's read-ahead; and the
# channel's copies of batches in flight (two untaken, and the packing of one).
PEAK_RSS_BOUND = (64 * MIB + MAX_CLIENT_WAITING_BYTES + (2 + PEER_RCVHWM) * MAX_MESSAGE_BYTES
                  + 4 * MAX_BATCH_BYTES)


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def test_a_client_pipelining_big_sets_is_pushed_back_and_others_are_served(make_node):
    # No automatic rewrite: its forks and copies of the growing AOF are not the front's to bound.
    node = make_node("everysec", extra=("--auto-aof-rewrite-percentage", "0")).start()
    front_pid = node.actor_pids()["front"]
    value = b"v" * VALUE_BYTES
    body = msgpack.packb([{}, ["SET", "big", value]])
    last = msgpack.packb([{}, ["SET", "last", value]])  # its client's messages run in order
    assert len(body) <= MAX_MESSAGE_BYTES  # each SET is within the documented limit
    with node.client(timeout=30.0, retries=1) as c:
        t0 = time.monotonic()
        assert c.execute("SET", "big", value) == "OK"
        one_set = time.monotonic() - t0
    ctx = zmq.Context()
    hog = ctx.socket(zmq.DEALER)
    hog.setsockopt(zmq.LINGER, 0)
    hog.connect(node.endpoint)
    try:
        for i in range(SETS):  # zero-copy: the sends share two buffers in this process
            hog.send_multipart([b"", last if i == SETS - 1 else body], copy=False)
        worst = 0.0
        deadline = time.monotonic() + DEADLINE_S
        with node.client(timeout=10.0, retries=1) as victim:
            while True:
                t0 = time.monotonic()
                assert victim.execute("PING") == "PONG"
                worst = max(worst, time.monotonic() - t0)
                if victim.execute("EXISTS", "last"):
                    break
                assert time.monotonic() < deadline, "the SETs still run"
                time.sleep(0.05)
        assert hog.poll(10_000)
        replies = []
        while len(replies) < SETS and hog.poll(5_000):
            replies.append(msgpack.unpackb(hog.recv_multipart()[-1], raw=False))
        assert replies == [[0, "OK"]] * SETS
        peak = _peak_rss(front_pid)
        assert peak < PEAK_RSS_BOUND, f"front peak RSS {peak / MIB:.0f} MiB"
        print(f"front peak RSS {peak / MIB:.0f} MiB, worst PING {worst * 1000:.0f} ms, one SET {one_set:.2f} s")
        assert worst < max(1.0, 4 * one_set), f"a PING waited {worst:.2f} s (one SET alone: {one_set:.2f} s)"
    finally:
        hog.close(linger=0)
        ctx.term()
