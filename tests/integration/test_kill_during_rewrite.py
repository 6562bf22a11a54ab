"""Hazard: kill -9 of the log actor at every named step of a rewrite loses no acknowledged write.

``diff_catching_up`` is step 4.1 itself: the child is done and its file complete, no catch-up
slice has been written yet and the live AOF has not been switched. The test checks that the
kill really lands there (a pause after the first slice could already have renamed and switched
when the diff was small).
"""
import os
import signal

import pytest
import zmq

from aofnode import protocol

from tests.nodeproc import wait_for
from tests.integration.test_kill9_durability import Writers, _verify
from tests.integration.test_rewrite import release, temp_files, wait_paused

STEPS = ["forked", "diff_catching_up", "before_rename", "after_rename", "after_switch"]

# Kill -9 under a write load: one "kill9" test at a time, beside at most one heavy test
# (pyproject.toml, addopts).
pytestmark = pytest.mark.xdist_group("kill9")


@pytest.mark.parametrize("step", STEPS)
def test_kill9_log_actor_at_rewrite_step(make_node, step):
    node = make_node("always", env={"AOFNODE_TEST_PAUSE_AT": step}).start()
    live_inode = os.stat(node.aof_path).st_ino
    with Writers(node.endpoint) as writers:
        wait_for(lambda: writers.count() >= 300, 30, what="writes before the rewrite")
        # Fire and forget: at "forked" the log actor pauses before it can reply.
        trigger = zmq.Context.instance().socket(zmq.DEALER)
        trigger.setsockopt(zmq.LINGER, 0)
        trigger.connect(node.endpoint)
        trigger.send_multipart([b"", protocol.encode_request("BGREWRITEAOF")])
        victim = wait_paused(node, step)
        assert victim == node.actor_pids()["log"]
        if step == "diff_catching_up":
            [temp] = temp_files(node)
            [done] = node.events("rewrite_child_done")
            assert os.stat(node.dir / temp).st_size == done["bytes"]  # no slice appended yet
            assert os.stat(node.aof_path).st_ino == live_inode  # not switched
            assert not node.events("rewrite_switched")
        os.kill(victim, signal.SIGKILL)
        release(node, step)
        wait_for(lambda: node.actor_pids().get("log") not in (None, victim), 20, what="log restarted")
        trigger.close()
        before = writers.count()
        wait_for(lambda: writers.count() >= before + 200, 30, what="writes after the restart")
    _verify(node, writers)
    wait_for(lambda: not temp_files(node), 10, what="stale temp file cleaned")
    node.stop()
    node.start()
    _verify(node, writers)
