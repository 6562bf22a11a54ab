"""The closer actor in process: FIFO jobs, the release handshake, and a closer that trusts no
path and survives every malformed job (issue "trust", finding 2)."""
from __future__ import annotations

import os
import socket

import msgpack
import pytest
import structlog

from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets
from aofnode.closer.actor import Closer, unlink_allowed
from aofnode.log.closer_client import CloserClient
from aofnode.runtime.actor import Runtime
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


@pytest.mark.timeout(30)  # were it to wait anyway, the hour below would time the test out
def test_drain_without_reconnect_stops_at_an_unreachable_closer(tmp_path):
    """At shutdown after the supervisor died, no one starts another closer: the log actor
    drains without reconnecting, so it leaves at once (the fd closes with the process)."""
    client = CloserClient(str(tmp_path / "gone.sock"), structlog.get_logger())
    fd = os.open(tmp_path / "old.aof", os.O_RDWR | os.O_CREAT)
    client.submit_close(fd, "old.aof")
    assert client.drain(timeout=3600, reconnect=False) is False
    assert client.pending_jobs == 1  # still held, for no one
    os.close(fd)


def test_unlink_allowed_rules(tmp_path):
    d = str(tmp_path)
    assert unlink_allowed(os.path.join(d, "temp-rewriteaof-bg-1.aof"), d) is None
    assert unlink_allowed(os.path.join(d, "appendonly.aof"), d)
    assert unlink_allowed("/tmp/temp-rewriteaof-bg-1.aof", d)


# -- freeing big files in steps (issue 11, "the switch stalls") ----------------------------------
# Real blocks, not a sparse file: a sparse file has nothing to free, and st_blocks is what the
# tests watch go down. 8 MiB in 1 MiB steps: 7 cuts, then the close frees the last MiB.
BIG = 8 << 20
STEP = 1 << 20


@pytest.fixture
def stepping(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run_dir = private_sockets.prepare_run_dir(str(data))
    actor = Closer(str(data), os.path.join(run_dir, "closer.sock"), structlog.get_logger(),
                   free_step_bytes=STEP, free_step_pause_s=0.005)
    rt = Runtime(actor)
    rt.start()
    yield actor, rt, data
    actor.on_stop()


def _write_big(path, size=BIG) -> None:
    with open(path, "wb") as f:
        for _ in range(size // STEP):
            f.write(b"a" * STEP)
        f.flush()
        os.fsync(f.fileno())  # allocated now, not at the close (delayed allocation)


def _fds_on(name: str) -> list[str]:
    """This process's fds on a file called ``name`` (the closer runs in this process)."""
    out = []
    for n in os.listdir("/proc/self/fd"):
        try:
            if os.path.basename(os.readlink(f"/proc/self/fd/{n}")).startswith(name):
                out.append(f"/proc/self/fd/{n}")
        except OSError:
            pass
    return out


def _note_blocks(name: str, seen: list[int]) -> None:
    for link in _fds_on(name):
        try:
            seen.append(os.stat(link).st_blocks)
        except FileNotFoundError:
            pass


def _blocks_while_done(rt, sock, name: str, seen: list[int] | None = None) -> tuple[m.JobDone, list[int]]:
    """Turn the closer until its reply, noting the file's st_blocks (through the closer's own
    fd, so the test holds no reference of its own) after every turn."""
    seen = [] if seen is None else seen

    def got():
        rt.run_once(timeout=0.05)
        _note_blocks(name, seen)
        try:
            return sock.recv(4096)
        except BlockingIOError:
            return None
    data = wait_for(got, timeout=10, what="the stepped job's reply")
    return m.decode(msgpack.unpackb(data, raw=False)), seen


def _no_second_reply(rt, sock) -> None:
    for _ in range(5):
        rt.run_once(timeout=0.01)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)


def _steps_logged(logs, kind: str) -> list[dict]:
    return [e for e in logs if e["event"] == "closer_job_done" and e["kind"] == kind]


def _assert_stepped_down(seen: list[int]) -> None:
    distinct = [b for i, b in enumerate(seen) if i == 0 or b != seen[i - 1]]
    # One turn per step: the closer's fd showed the file shrinking through several sizes, never
    # growing, and it was gone before the reply.
    assert distinct == sorted(distinct, reverse=True), distinct
    assert len(distinct) >= 4, distinct
    assert distinct[0] >= (BIG - STEP) // 512


@pytest.mark.parametrize("flags", [os.O_WRONLY | os.O_APPEND, os.O_RDONLY], ids=["writer-fd", "read-only-fd"])
def test_a_big_nameless_file_is_freed_in_steps_then_closed(stepping, flags):
    # The writer's fd is O_WRONLY|O_APPEND (node/aof/writer.py); a read-only one is what
    # fileops.replace_file holds when the writer's fd was not the live file.
    actor, rt, data = stepping
    path = data / "appendonly.aof"
    _write_big(path)
    fd = os.open(path, flags)
    os.unlink(path)  # renamed over by the rewrite: the old file has no name left
    sock = _connect(actor)
    with structlog.testing.capture_logs() as logs:
        _send(sock, m.CloseJob(1, str(path)), fds=[fd])
        os.close(fd)
        _send(sock, m.Release(1))
        done, seen = _blocks_while_done(rt, sock, "appendonly.aof")
    assert (done.job_id, done.ok) == (1, True)
    _assert_stepped_down(seen)
    [ev] = _steps_logged(logs, "close")
    assert ev["steps"] == BIG // STEP - 1 and ev["bytes"] == BIG and ev["step_errno"] is None
    assert _fds_on("appendonly.aof") == []  # every fd the closer had (and opened) is closed
    _no_second_reply(rt, sock)
    assert actor.jobs_done == 1 and actor.freeing is None


def test_a_file_that_still_has_a_name_is_never_truncated(stepping):
    # The log actor closes the *live* AOF through the closer at shutdown: it keeps every byte.
    actor, rt, data = stepping
    path = data / "appendonly.aof"
    _write_big(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    sock = _connect(actor)
    with structlog.testing.capture_logs() as logs:
        _send(sock, m.CloseJob(1, str(path)), fds=[fd])
        os.close(fd)
        _send(sock, m.Release(1))
        done = _reply(rt, sock)
    assert done.ok
    assert os.path.getsize(path) == BIG and os.stat(path).st_blocks >= BIG // 512
    assert "steps" not in _steps_logged(logs, "close")[0]
    assert _fds_on("appendonly.aof") == []


def test_a_temp_file_with_another_name_loses_only_that_name(stepping):
    # Unlinking a temp name that is a hard link of a file with another name: the file still has
    # a name after the unlink, so it is closed, never truncated.
    actor, rt, data = stepping
    keep = data / "appendonly.aof"
    _write_big(keep)
    temp = data / "temp-rewriteaof-bg-4.aof"
    os.link(keep, temp)
    sock = _connect(actor)
    _send(sock, m.UnlinkJob(1, str(temp)))
    assert _reply(rt, sock).ok
    assert not temp.exists() and os.path.getsize(keep) == BIG and os.stat(keep).st_blocks >= BIG // 512
    assert _fds_on("appendonly.aof") == [] and actor.freeing is None


def test_a_big_temp_file_is_unlinked_at_once_then_freed_in_steps(stepping):
    actor, rt, data = stepping
    temp = data / "temp-rewriteaof-bg-3.aof"
    _write_big(temp)
    sock = _connect(actor)
    with structlog.testing.capture_logs() as logs:
        _send(sock, m.UnlinkJob(4, str(temp)))
        wait_for(lambda: rt.run_once(timeout=0.05) or actor.freeing is not None, timeout=5,
                 what="the first step")
        assert not temp.exists()  # the name goes in the first step
        seen: list[int] = []
        _note_blocks("temp-rewriteaof-bg-3.aof", seen)
        done, seen = _blocks_while_done(rt, sock, "temp-rewriteaof-bg-3.aof", seen)
    assert (done.job_id, done.ok) == (4, True)
    _assert_stepped_down(seen)
    [ev] = _steps_logged(logs, "unlink")
    assert ev["steps"] == BIG // STEP - 1
    assert _fds_on("temp-rewriteaof-bg-3.aof") == []
    _no_second_reply(rt, sock)


def test_stepping_keeps_the_path_rules(stepping, tmp_path):
    # A big file behind a temp-looking symlink, or outside the data directory, is refused before
    # anything is opened: the target keeps its name and every block.
    actor, rt, data = stepping
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / "temp-rewriteaof-bg-1.aof"
    _write_big(victim)
    link = data / "temp-rewriteaof-bg-2.aof"
    os.symlink(victim, link)
    sock = _connect(actor)
    for i, path in enumerate([str(link), str(victim), str(data / "appendonly.aof")]):
        _send(sock, m.UnlinkJob(i, path))
        done = _reply(rt, sock)
        assert done.ok is False and "refused" in done.error, path
    assert link.is_symlink() and os.path.getsize(victim) == BIG
    assert os.stat(victim).st_blocks >= BIG // 512 and actor.freeing is None


def test_jobs_behind_a_stepped_one_wait_their_turn(stepping):
    actor, rt, data = stepping
    big = data / "temp-rewriteaof-bg-5.aof"
    small = data / "temp-rewriteaof-bg-6.aof"
    _write_big(big)
    small.write_bytes(b"x")
    sock = _connect(actor)
    _send(sock, m.UnlinkJob(1, str(big)))
    _send(sock, m.UnlinkJob(2, str(small)))
    first = _reply(rt, sock)
    second = _reply(rt, sock)
    assert (first.job_id, second.job_id) == (1, 2) and first.ok and second.ok  # FIFO
    assert not small.exists()


def test_a_stop_finishes_the_steps_without_the_pauses(stepping):
    actor, rt, data = stepping
    actor.free_step_pause_s = 3600.0  # a stop must not wait for this
    temp = data / "temp-rewriteaof-bg-8.aof"
    _write_big(temp)
    sock = _connect(actor)
    _send(sock, m.UnlinkJob(1, str(temp)))
    wait_for(lambda: rt.run_once(timeout=0.05) or actor.freeing is not None, timeout=5, what="the first step")
    assert not actor.finished()
    rt.request_stop()
    wait_for(lambda: rt.run_once(timeout=0.05) or actor.finished(), timeout=5, what="the stop")
    done = _reply(rt, sock)
    assert done.ok and _fds_on("temp-rewriteaof-bg-8.aof") == []


def test_stepping_off_closes_at_once(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    run_dir = private_sockets.prepare_run_dir(str(data))
    actor = Closer(str(data), os.path.join(run_dir, "closer.sock"), structlog.get_logger(), free_step_bytes=0)
    rt = Runtime(actor)
    rt.start()
    try:
        temp = data / "temp-rewriteaof-bg-9.aof"
        _write_big(temp)
        sock = _connect(actor)
        with structlog.testing.capture_logs() as logs:
            _send(sock, m.UnlinkJob(1, str(temp)))
            assert _reply(rt, sock).ok
        assert "steps" not in _steps_logged(logs, "unlink")[0] and not temp.exists()
    finally:
        actor.on_stop()
