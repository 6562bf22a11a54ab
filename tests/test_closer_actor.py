"""The closer actor in process: FIFO jobs, the release handshake, and a closer that trusts no
path and survives every malformed job (issue "trust", finding 2)."""
from __future__ import annotations

import os
import socket

import msgpack
import pytest
import structlog

from node.actors import messages as m
from node.actors import private_sockets
from node.actors.closer import Closer, unlink_allowed
from node.actors.closer_client import CloserClient
from node.actors.runtime import Runtime
from tests.nodeproc import wait_for


@pytest.fixture
def closer(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run_dir = private_sockets.prepare_run_dir(str(data))
    actor = Closer(str(data), os.path.join(run_dir, "closer.sock"), structlog.get_logger())
    rt = Runtime(actor)
    rt.start()
    yield actor, rt, data
    actor.on_stop()


def _connect(actor) -> socket.socket:
    sock = private_sockets.connect(actor.path, socket.SOCK_SEQPACKET)
    assert sock is not None
    return sock


def _send(sock, msg, fds=()):
    data = msgpack.packb(m.encode(msg)) if not isinstance(msg, bytes) else msg
    socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)


def _reply(rt, sock) -> m.JobDone:
    def got():
        rt.run_once(timeout=0.05)
        try:
            return sock.recv(4096)
        except BlockingIOError:
            return None
    return m.decode(msgpack.unpackb(wait_for(got, timeout=5, what="a closer reply"), raw=False))


def test_unlink_of_a_temp_file_runs_and_replies(closer):
    actor, rt, data = closer
    temp = data / "temp-rewriteaof-bg-42.aof"
    temp.write_bytes(b"x")
    sock = _connect(actor)
    _send(sock, m.UnlinkJob(1, str(temp)))
    done = _reply(rt, sock)
    assert done.job_id == 1 and done.ok
    assert not temp.exists()


@pytest.mark.parametrize("name", ["appendonly.aof", "aofnode.lock", "temp-rewriteaof-1.txt", "secret"])
def test_unlink_refuses_anything_but_a_temp_file(closer, name):
    actor, rt, data = closer
    victim = data / name
    victim.write_bytes(b"keep me")
    sock = _connect(actor)
    _send(sock, m.UnlinkJob(5, str(victim)))
    done = _reply(rt, sock)
    assert (done.job_id, done.ok) == (5, False)
    assert "refused" in done.error
    assert victim.read_bytes() == b"keep me"


def test_unlink_refuses_paths_outside_the_data_dir(closer, tmp_path):
    actor, rt, data = closer
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / "temp-rewriteaof-bg-1.aof"
    victim.write_bytes(b"keep")
    link_dir = data / "sub"
    os.symlink(outside, link_dir)
    link_file = data / "temp-rewriteaof-bg-2.aof"
    os.symlink(victim, link_file)
    sock = _connect(actor)
    for i, path in enumerate([str(victim), str(data / ".." / "elsewhere" / victim.name),
                              str(link_dir / victim.name), str(link_file)]):
        _send(sock, m.UnlinkJob(i, path))
        assert _reply(rt, sock).ok is False, path
    assert victim.exists() and link_file.is_symlink()


MALFORMED = [
    b"\xc1garbage",                                      # not msgpack
    msgpack.packb({"op": "unlink", "path": 7}),          # the old dict format
    msgpack.packb([b"U", 1, 7]),                         # an integer path
    msgpack.packb([b"U", 1]),                            # a missing path
    msgpack.packb([b"U", [1], "/etc/passwd"]),           # a list id
    msgpack.packb([b"C", 2, "x"]),                       # a close job with no fd
    msgpack.packb([b"Z", 3]),                            # an unknown kind
    msgpack.packb([b"D", 4, True, 0.0, ""]),             # a reply sent as a job
    b"",                                                 # an empty datagram
]


@pytest.mark.parametrize("payload", MALFORMED)
def test_malformed_jobs_never_crash_and_the_closer_keeps_serving(closer, payload):
    actor, rt, data = closer
    sock = _connect(actor)
    sock.send(payload)
    for _ in range(5):
        rt.run_once(timeout=0.01)
    temp = data / "temp-rewriteaof-bg-9.aof"
    temp.write_bytes(b"x")
    sock2 = _connect(actor)
    _send(sock2, m.UnlinkJob(9, str(temp)))
    assert _reply(rt, sock2).ok
    assert not temp.exists()


def test_fds_that_come_with_a_refused_job_are_closed(closer, tmp_path):
    actor, rt, data = closer
    f = open(tmp_path / "some-file", "wb")
    sock = _connect(actor)
    _send(sock, m.UnlinkJob(3, str(data / "appendonly.aof")), fds=[f.fileno()])
    assert _reply(rt, sock).ok is False
    before = len(os.listdir("/proc/self/fd"))
    # The closer's copy was closed: closing ours leaves no descriptor on the file.
    f.close()
    assert len(os.listdir("/proc/self/fd")) == before - 1
    assert not any(os.readlink(f"/proc/self/fd/{n}").endswith("some-file")
                   for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{n}"))


def test_a_close_job_waits_for_its_release(closer, tmp_path):
    actor, rt, _data = closer
    path = tmp_path / "old.aof"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    sock = _connect(actor)
    _send(sock, m.CloseJob(1, str(path)), fds=[fd])
    os.close(fd)
    for _ in range(5):
        rt.run_once(timeout=0.01)
    assert actor.jobs_done == 0 and not actor.queue  # held, not run
    _send(sock, m.Release(1))
    done = _reply(rt, sock)
    assert done.job_id == 1 and done.ok and actor.jobs_done == 1


def test_a_dropped_submitter_releases_its_held_jobs(closer, tmp_path):
    actor, rt, _data = closer
    fd = os.open(tmp_path / "old.aof", os.O_RDWR | os.O_CREAT)
    sock = _connect(actor)
    _send(sock, m.CloseJob(1, "old.aof"), fds=[fd])
    os.close(fd)
    sock.close()
    wait_for(lambda: rt.run_once(timeout=0.05) or actor.jobs_done == 1, timeout=5, what="the held job to run")


def test_closer_client_end_to_end(closer, tmp_path):
    actor, rt, data = closer
    client = CloserClient(actor.path, structlog.get_logger())
    temp = data / "temp-rewriteaof-bg-7.aof"
    temp.write_bytes(b"x")
    client.submit_unlink(str(temp))
    fd = os.open(tmp_path / "old.aof", os.O_RDWR | os.O_CREAT)
    client.submit_close(fd, "old.aof")
    client.submit_unlink(str(data / "appendonly.aof"))  # refused by the closer

    def settled():
        rt.run_once(timeout=0.02)
        client.tick()
        return client.pending_jobs == 0
    wait_for(settled, timeout=5, what="every job answered")
    assert not temp.exists()
    assert actor.jobs_done == 2 and client.failed_jobs == 1


def test_unlink_allowed_rules(tmp_path):
    d = str(tmp_path)
    assert unlink_allowed(os.path.join(d, "temp-rewriteaof-bg-1.aof"), d) is None
    assert unlink_allowed(os.path.join(d, "appendonly.aof"), d)
    assert unlink_allowed("/tmp/temp-rewriteaof-bg-1.aof", d)
