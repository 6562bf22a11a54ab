"""Supervisor: ``aofnode serve``. Starts, watches and stops the actor processes.

Design:
- Takes the data directory's lock file first (flock, non-blocking): a second node on the same
  directory is refused. The lock's fd is passed to every actor, so the lock is held until the
  last process of this node is gone, even after a kill -9 of the supervisor.
- Starts the closer, the log actor, then the front, each as ``python -m node.actors ROLE``.
- Restarts an actor that dies (backing off when one dies repeatedly). The front learns of a
  log actor's death by itself (EOF on their socket): it fails the batches in flight and
  answers LOADING until the new log actor has reloaded the AOF.
- A log actor that exits with ``EXIT_CORRUPT`` found a corrupt AOF: restarting cannot help, so
  the node stops with that status and the message naming the repair command.
- On SIGTERM/SIGINT: stop the front (it finishes the batches in flight), then the log actor (it
  fsyncs), then the closer (it finishes its jobs); exit 0.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time

from node.config import Config
from node.logconfig import configure

__all__ = ["serve", "EXIT_CORRUPT", "EXIT_LOCKED"]

EXIT_LOCKED = 4
EXIT_CORRUPT = 3
ROLES = ("closer", "log", "front")
STOP_TIMEOUT_S = 20.0
# Restart backoff: 0.1 s doubling up to 5 s while an actor keeps dying within 10 s of its start.
MIN_BACKOFF_S, MAX_BACKOFF_S, STABLE_AFTER_S = 0.1, 5.0, 10.0


class _Child:
    def __init__(self, role: str) -> None:
        self.role = role
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.backoff = MIN_BACKOFF_S
        self.restart_at: float | None = None


def _take_lock(config: Config) -> int | None:
    fd = os.open(config.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.set_inheritable(fd, True)
    return fd


def serve(config: Config) -> int:
    log = configure("supervisor", config.log_format, config.log_file)
    os.makedirs(config.dir, exist_ok=True)
    lock_fd = _take_lock(config)
    if lock_fd is None:
        try:
            holder = open(config.lock_path).read().strip()
        except OSError:
            holder = "?"
        log.error("data_dir_locked", dir=config.dir, holder_pid=holder)
        print(f"aofnode: {config.dir} is in use by another aofnode (pid {holder}); refusing to start",
              file=sys.stderr)
        return EXIT_LOCKED
    stopping = False

    def on_signal(signum, _frm):
        nonlocal stopping
        if not stopping:
            log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    children = {role: _Child(role) for role in ROLES}

    def start(child: _Child) -> None:
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "node.actors", child.role, config.to_json()],
            pass_fds=(lock_fd,), stdin=subprocess.DEVNULL)
        child.started = time.monotonic()
        child.restart_at = None
        log.info("actor_spawned", role=child.role, child_pid=child.proc.pid)

    log.info("node_starting", dir=os.path.abspath(config.dir), bind=config.bind,
             appendfsync=config.appendfsync)
    for role in ROLES:
        start(children[role])
    exit_code = 0
    while not stopping:
        time.sleep(0.05)  # waitpid poll: 50 ms bounds how long LOADING lasts beyond the reload
        now = time.monotonic()
        for child in children.values():
            if child.restart_at is not None:
                if now >= child.restart_at and not stopping:
                    start(child)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            log.warning("actor_died", role=child.role, child_pid=child.proc.pid, returncode=code)
            if child.role == "log" and code == EXIT_CORRUPT:
                log.error("node_stopping_corrupt_aof", hint=f"aofnode check-aof --fix {config.aof_path}")
                print(f"aofnode: the AOF {config.aof_path} is corrupt; see the log, then run "
                      f"'aofnode check-aof --fix {config.aof_path}'", file=sys.stderr)
                stopping, exit_code = True, EXIT_CORRUPT
                break
            if now - child.started > STABLE_AFTER_S:
                child.backoff = MIN_BACKOFF_S
            child.restart_at = now + child.backoff
            log.info("actor_restart_scheduled", role=child.role, in_s=child.backoff)
            child.backoff = min(child.backoff * 2, MAX_BACKOFF_S)
    _stop_all(children, log)
    log.info("node_stopped", exit_code=exit_code)
    return exit_code


def _stop_all(children: dict[str, _Child], log) -> None:
    """Front first (finishes batches in flight), then log (fsyncs), then closer (drains jobs)."""
    for role in ("front", "log", "closer"):
        proc = children[role].proc
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("actor_stop_timeout", role=role, child_pid=proc.pid)
            proc.kill()
            proc.wait()
        log.info("actor_exited", role=role, child_pid=proc.pid, returncode=proc.returncode)
