"""Supervisor: ``aofnode serve``. Starts, watches and stops the actor processes.

Design:
- Makes the data directory private (0700; an existing looser one is tightened, with a warning)
  and takes its lock file (0600, flock, non-blocking): a second node on the same directory is
  refused. A directory the node creates is made durable (its parent fsynced) before anything
  is acknowledged in it. Nothing there is reached through a symbolic link: ``--dir`` itself
  must not be one (checked on the fd opened with O_NOFOLLOW, not with stat), and a node file
  (lock, AOF, ``run``, a rewrite temp file) that is a link, is not a regular file (``run``: a
  directory) or belongs to another user stops the start with exit 6: in a directory that was
  left loose, another user may have planted it to make the node write elsewhere. The lock's
  fd is passed to every actor, so the lock is held until the last process of this node is
  gone, even after a kill -9 of the supervisor.
- Starts the closer, the log actor, the front, then (with ``--resp-bind``) the RESP front, each
  as ``python -m aofnode.roles ROLE``, and watches each through a pidfd on the runtime's poller: a
  death wakes it at once (no polling).
- A ``--requirepass`` password reaches the two fronts only, in their environment
  (``REQUIREPASS_ENV``; /proc/PID/environ is owner-only), never in Config (every actor's command
  line, readable by all). Every other actor is started without that variable.
- Restarts an actor that dies, backing off 0.1 s doubling to ``--restart-backoff-max`` (default
  5 s) while it keeps dying within 10 s of its start. A front learns of a log actor's death by
  itself (EOF on their socket), and the log actor of a front's.
- Stops instead of looping, with a documented exit code (node/exitcodes.py):
  * an actor exits with a fatal code (corrupt AOF, port in use, unusable data directory): a
    restart cannot fix it, so the node stops with that code;
  * an actor dies ``crash_loop_count`` times within ``crash_loop_window_s`` (default 5 in 60 s):
    ``actor_crash_loop`` is logged and the node stops with ``CRASH_LOOP``. An actor that has
    been up longer than the window is restarted as always (kill -9 of a healthy actor).
- SIGHUP never stops the node: with ``--curve-allow`` it is passed to the front (which rereads
  the allow-list), without it it is logged (``sighup_ignored``) and ignored.
- A log actor that exits with ``SHUTDOWN`` ran the SHUTDOWN command: the node stops as below.
- On SIGTERM/SIGINT: stop both fronts together (each finishes the batches it has in flight),
  then the log actor (it fsyncs), then the closer (it finishes its jobs); exit 0.
"""
from __future__ import annotations

import collections
import errno
import fcntl
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import time

from aofnode import exitcodes
from aofnode.fronts import curve as auth, listen
from aofnode.fronts.zmq_pub import pub_config_error
from aofnode.runtime import private_sockets
from aofnode.runtime.heartbeat import heartbeat_path, read_heartbeat
from aofnode.runtime.actor import Actor, Runtime
from aofnode.aof.fileops import not_ours, open_dir, open_in_dir, open_private
from aofnode.aof.rewrite_run import TEMP_PREFIX
from aofnode.config import (AOF_NAME, LOCK_NAME, REQUIREPASS_ENV, Config, parse_host_port,
                            resp_config_error)
from aofnode.logconfig import configure
from aofnode.retry import backoff_delay

__all__ = ["serve", "Supervisor", "take_lock", "prepare_data_dir"]

ROLES = ("closer", "log", "front", "resp")  # start order; "resp" only with --resp-bind
FRONT_ROLES = ("front", "resp")
STOP_TIMEOUT_S = 20.0
# How often the watchdog reads the log actor's heartbeat.
WATCHDOG_CHECK_S = 1.0
# Restart backoff: 0.1 s doubling up to ``config.restart_backoff_max_s`` (default 5 s) while an
# actor keeps dying within 10 s of its start.
MIN_BACKOFF_S, STABLE_AFTER_S = 0.1, 10.0


class _Child:
    def __init__(self, role: str) -> None:
        self.role = role
        self.proc: subprocess.Popen | None = None
        self.pidfd: int | None = None
        self.started = 0.0
        self.quick_deaths = 0
        self.restart_at: float | None = None
        self.deaths: collections.deque[float] = collections.deque()


def _proc_state(pid: int) -> str:
    """The kernel's one-letter state of ``pid`` (R running, S sleeping, D disk, T stopped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "?"


def _make_dirs_durably(path: str, mode: int = 0o700) -> None:
    """``mkdir -p`` whose new directories survive a power loss: after a directory is created,
    its parent is fsynced (else a power cut after the first start could take the whole data
    directory, acknowledged writes and all). ``mode`` is for ``path``; the parents created on
    the way get the umask's default, as with ``os.makedirs``."""
    if os.path.lexists(path):
        return
    parent = os.path.dirname(path) or "."
    _make_dirs_durably(parent, 0o777)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # above the data dir: links are fine
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _node_file_is_dir(name: str) -> bool | None:
    """For a name the node uses in its data directory, whether it is a directory; else None."""
    if name in (LOCK_NAME, AOF_NAME) or name.startswith(TEMP_PREFIX):
        return False
    if name == private_sockets.RUN_DIR:
        return True
    return None


def prepare_data_dir(path: str, log) -> int:
    """Create ``path`` as 0700 (durably), or tighten an existing one (warning once with its old
    mode), check the node's files in it, make its ``run`` directory for the internal sockets and
    return an fd on it (O_NOFOLLOW: a symlinked ``--dir`` is refused, as is a directory owned by
    another user: its owner could swap files or sockets under us)."""
    path = os.path.normpath(path)
    _make_dirs_durably(path)
    try:
        fd = open_dir(path)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(path):
            raise OSError(errno.ELOOP, f"{path} is a symbolic link; give the real directory") from None
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise PermissionError(errno.EPERM, f"owned by uid {st.st_uid}, not by us (uid {os.geteuid()})")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            log.warning("data_dir_tightened", dir=os.path.abspath(path), old_mode=oct(mode), new_mode="0o700")
            os.fchmod(fd, 0o700)
        # After the chmod nobody else can add a name; now look at what may have been planted.
        with os.scandir(fd) as entries:
            for entry in entries:
                is_dir = _node_file_is_dir(entry.name)
                if is_dir is None:
                    continue
                reason = not_ours(entry.stat(follow_symlinks=False), want_dir=is_dir)
                if reason:
                    raise PermissionError(errno.EPERM, f"{entry.name} {reason}; remove it if you "
                                          f"did not put it there")
        private_sockets.prepare_run_dir(path, dir_fd=fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def take_lock(path: str, dir_fd: int | None = None) -> int | None:
    """The data directory's lock file ``path`` (0600, opened relative to ``dir_fd`` or to an fd
    on its directory, never through a link), or None if another node holds it."""
    fd, _ = open_private(path, os.O_RDWR | os.O_CREAT, dir_fd=dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.set_inheritable(fd, True)
    return fd


class Supervisor(Actor):
    tick_interval = 0.05  # restart timers; deaths themselves wake the poller (pidfd)
    stop_signals = (signal.SIGTERM, signal.SIGINT)
    ignored_signals = ()

    def __init__(self, config: Config, log, lock_fd: int, command: list[str] | None = None,
                 requirepass: str | None = None, listeners: dict | None = None) -> None:
        self.config = config
        # role -> its listening socket, bound by serve() and held for the node's life (listen.py)
        self.listeners: dict[str, socket.socket] = listeners or {}
        self.log = log
        self.lock_fd = lock_fd
        self.command = command or [sys.executable, "-m", "aofnode.roles"]
        roles = ROLES if config.resp_bind else tuple(r for r in ROLES if r != "resp")
        self.children = {role: _Child(role) for role in roles}
        self._requirepass = requirepass
        self.exit_code = exitcodes.OK
        self.runtime: Runtime | None = None
        self._next_watch = 0.0
        self._reported_beat = 0.0
        self._sighup = False

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.log.info("node_starting", dir=os.path.abspath(self.config.dir), bind=self.config.bind,
                      appendfsync=self.config.appendfsync, resp_bind=self.config.resp_bind or "")
        # SIGHUP never stops the node: with CURVE the front rereads its allow-list (auth.py);
        # without, there is nothing to reread, and it is logged and ignored (so is a hangup of
        # the terminal; the actors ignore it too, node/runtime/actor.py).
        signal.signal(signal.SIGHUP, lambda _s, _f: setattr(self, "_sighup", True))
        for child in self.children.values():
            self._spawn(child)

    def _close_listeners(self) -> None:
        """The fronts are gone: give the endpoints up (and an ipc endpoint's file, as libzmq
        removes it when it bound it itself)."""
        for sock in self.listeners.values():
            if sock.family == socket.AF_UNIX:
                path = sock.getsockname()
                if isinstance(path, str) and path:
                    listen.remove_ipc_file(path)
            sock.close()
        self.listeners = {}

    def _spawn(self, child: _Child) -> None:
        env = os.environ.copy()
        env.pop(REQUIREPASS_ENV, None)  # not inherited from whoever started us, nor by others
        env.pop(listen.LISTEN_FD_ENV, None)
        if child.role in ("front", "resp") and self._requirepass is not None:
            env[REQUIREPASS_ENV] = self._requirepass
        fds = [self.lock_fd]
        listener = self.listeners.get(child.role)
        if listener is not None:
            fds.append(listener.fileno())
            env[listen.LISTEN_FD_ENV] = str(listener.fileno())
        child.proc = subprocess.Popen([*self.command, child.role, self.config.to_json()],
                                      pass_fds=fds, stdin=subprocess.DEVNULL, env=env)
        child.pidfd = os.pidfd_open(child.proc.pid)
        child.started = time.monotonic()
        child.restart_at = None
        self.runtime.watch(child.pidfd, lambda c=child: self._on_exit(c))
        self.log.info("actor_spawned", role=child.role, child_pid=child.proc.pid)

    def _on_exit(self, child: _Child) -> None:
        self.runtime.unwatch(child.pidfd)
        os.close(child.pidfd)
        child.pidfd = None
        code = child.proc.wait()
        if self.runtime.stop_requested:
            return
        now = time.monotonic()
        if code == exitcodes.SHUTDOWN:  # the SHUTDOWN command: stop the node as on SIGTERM
            self.log.info("shutdown_command", role=child.role)
            self.runtime.request_stop()
            return
        self.log.warning("actor_died", role=child.role, child_pid=child.proc.pid, returncode=code)
        if code in exitcodes.FATAL:
            self._stop_node(code, f"{child.role} actor exited with fatal code {code}")
            return
        child.deaths.append(now)
        window = self.config.crash_loop_window_s
        while child.deaths and now - child.deaths[0] > window:
            child.deaths.popleft()
        if len(child.deaths) >= self.config.crash_loop_count:
            self.log.error("actor_crash_loop", role=child.role, deaths=len(child.deaths), window_s=window)
            print(f"aofnode: the {child.role} actor died {len(child.deaths)} times in {window:g} s; "
                  "stopping (see the log)", file=sys.stderr)
            self._stop_node(exitcodes.CRASH_LOOP, "crash loop")
            return
        child.quick_deaths = 0 if now - child.started > STABLE_AFTER_S else child.quick_deaths + 1
        delay = backoff_delay(MIN_BACKOFF_S, child.quick_deaths, self.config.restart_backoff_max_s)
        child.restart_at = now + delay
        self.log.info("actor_restart_scheduled", role=child.role, in_s=delay)

    def _stop_node(self, code: int, reason: str) -> None:
        self.exit_code = code
        self.log.error("node_stopping", reason=reason, exit_code=code)
        if code == exitcodes.CORRUPT_AOF:
            print(f"aofnode: the AOF {self.config.aof_path} is corrupt; see the log, then run "
                  f"'aofnode check-aof --fix {self.config.aof_path}'", file=sys.stderr)
        self.runtime.request_stop()

    def on_stop_requested(self) -> None:
        if self.exit_code == exitcodes.OK:
            self.log.info("shutdown_requested", signal=self.runtime.stop_signal)

    def on_tick(self, now: float) -> None:
        if self.runtime.stop_requested:
            return
        if self._sighup:  # handled here, not in the handler: the handler only sets the flag
            self._sighup = False
            front = self.children["front"].proc
            if not self.config.curve_allow:
                self.log.info("sighup_ignored", reason="no CURVE allow-list to reread")
            else:
                if front is not None and front.returncode is None:
                    front.send_signal(signal.SIGHUP)
                self.log.info("sighup_forwarded", role="front", child_pid=front.pid if front else 0)
        for child in self.children.values():
            if child.restart_at is not None and now >= child.restart_at:
                self._spawn(child)
        if self.config.watchdog_timeout_s > 0 and now >= self._next_watch:
            self._next_watch = now + WATCHDOG_CHECK_S
            self._watch_log(now)

    def _watch_log(self, now: float) -> None:
        """A log actor whose loop stopped turning is reported once per stall, not once a check."""
        child = self.children["log"]
        if child.proc is None or child.restart_at is not None or child.proc.poll() is not None:
            return
        beat = read_heartbeat(heartbeat_path(self.config.run_dir, "log"))
        if beat <= 0 or now - beat < self.config.watchdog_timeout_s or beat == self._reported_beat:
            return
        self._reported_beat = beat
        state = _proc_state(child.proc.pid)
        self.log.error("actor_hung", role="log", child_pid=child.proc.pid, stalled_s=round(now - beat, 1),
                       process_state=state, killing=self.config.watchdog_kill)
        if self.config.watchdog_kill:
            child.proc.kill()  # the pidfd wakes us: restarted as any dead actor

    def on_stop(self) -> int:
        """Both fronts first, together (each finishes the batches it has in flight: the log
        actor still runs them), then log (fsyncs), then closer (drains). An actor that exits
        non-zero here (the log actor's final fsync failed, or it died on the way) makes
        ``serve`` exit non-zero too: a clean 0 promises a clean stop."""
        fronts = [role for role in FRONT_ROLES if role in self.children]
        for step in (fronts, ["log"], ["closer"]):
            procs = [(role, self.children[role].proc) for role in step if self.children[role].proc is not None]
            for _, proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            for role, proc in procs:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.log.error("actor_stop_timeout", role=role, child_pid=proc.pid)
                    proc.kill()
                    proc.wait()
                self.log.info("actor_exited", role=role, child_pid=proc.pid, returncode=proc.returncode)
                if proc.returncode not in (0, exitcodes.SHUTDOWN) and self.exit_code == exitcodes.OK:
                    self.exit_code = exitcodes.ERROR
            if step is fronts:
                self._close_listeners()
        self.log.info("node_stopped", exit_code=self.exit_code)
        return self.exit_code


def raise_fd_limit(log) -> None:
    """Under the common 1024 soft limit a node would silently stop accepting past ~1,000
    clients. The soft limit goes up to the hard one here, before the actors start (they
    inherit it); the front says in INFO how many clients that allows (``max_clients``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    log.info("fd_limit", soft_before=soft, soft=resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def serve(config: Config, requirepass: str | None = None) -> int:
    """Run the node; ``requirepass`` is --requirepass (kept out of Config: see the docstring)."""
    log = configure("supervisor", config.log_format, config.log_file)
    raise_fd_limit(log)
    refusal = auth.config_error(config)  # CURVE settings, or a reachable endpoint without them
    if refusal:
        log.error("bind_refused", bind=config.bind, error=refusal)
        print(f"aofnode: {refusal}", file=sys.stderr)
        return exitcodes.BIND
    refusal = resp_config_error(config, requirepass) or pub_config_error(config)  # never the password
    if refusal:
        log.error("bind_refused", bind=config.resp_bind or "", error=refusal)
        print(f"aofnode: {refusal}", file=sys.stderr)
        return exitcodes.BIND
    if auth.insecure_bind(config):
        log.warning("insecure_bind", bind=config.bind)
    try:
        dir_fd = prepare_data_dir(config.dir, log)
        try:
            lock_fd = take_lock(config.lock_path, dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        log.error("data_dir_unusable", dir=config.dir, errno=exc.errno, error=str(exc))
        print(f"aofnode: cannot use the data directory {config.dir}: {exc.strerror or exc}", file=sys.stderr)
        return exitcodes.STORAGE
    if lock_fd is None:
        try:
            holder_fd = open_in_dir(config.lock_path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(holder_fd) as f:
                holder = f.read(32).strip()
        except OSError:
            holder = "?"
        log.error("data_dir_locked", dir=config.dir, holder_pid=holder)
        print(f"aofnode: {config.dir} is in use by another aofnode (pid {holder}); refusing to start",
              file=sys.stderr)
        return exitcodes.LOCKED
    listeners = {}
    try:  # the first bind, once for the node's life (node/fronts/listen.py)
        what, endpoint = "", config.bind
        sock = listen.zmq_listener(config.bind)
        if sock is not None:
            listeners["front"] = sock
        if config.resp_bind:
            what, endpoint = "--resp-bind ", config.resp_bind
            host, port = parse_host_port(config.resp_bind)
            listeners["resp"] = listen.tcp_listener("127.0.0.1" if host == "localhost" else host, port,
                                                    listen.RESP_BACKLOG)
    except OSError as exc:
        for sock in listeners.values():
            sock.close()
        error = f"cannot bind {what}{endpoint}: {exc.strerror or exc}"
        log.error("bind_failed", bind=endpoint, error=error)
        print(f"aofnode: {error}", file=sys.stderr)
        return exitcodes.BIND
    return Runtime(Supervisor(config, log, lock_fd, requirepass=requirepass, listeners=listeners)).run()
