"""Internal sockets that only this node's own processes can use.

Design (the threat: any local user who reaches an internal socket can connect, say HELLO and
become the log actor, as an abstract-namespace socket would let them):
- Every internal socket is a file in ``<data dir>/run``, a directory of mode 0700 owned by the
  node's user (checked, and re-chmod'ed, at every start; a symlink there is refused). Another
  user cannot even reach the socket files: connect(2) fails with EACCES at the directory.
- The socket files themselves are 0600, and the directory is created before any socket, so
  there is no window in which the socket is reachable.
- Defence in depth, for a directory made looser by hand: after accept (and after connect, for
  the listening peer) ``is_sibling`` checks SO_PEERCRED: same uid, and a process whose parent is
  our parent (every actor is a child of the same supervisor). A rejected peer is logged once by
  the caller and its connection closed: it changes nothing.
- sun_path holds 107 bytes. A longer data directory path is reached through
  ``/proc/self/fd/<dirfd>/<name>`` (an O_PATH descriptor of the run directory), which bind(2)
  and connect(2) resolve like the real path.
- We hold the data directory's lock, so a socket file found at bind time is stale (left by a
  killed process): it is removed first.
"""
from __future__ import annotations

import os
import socket
import stat
import struct

__all__ = ["RUN_DIR", "prepare_run_dir", "listen", "connect", "peer_credentials", "is_sibling",
           "SiblingListener"]

RUN_DIR = "run"
_SUN_PATH_MAX = 107
_dir_fds: dict[str, int] = {}


def prepare_run_dir(data_dir: str, dir_fd: int | None = None) -> str:
    """Create (or tighten) ``<data_dir>/run`` as a 0700 directory of ours; return its path.

    Everything goes through fds opened with O_NOFOLLOW (``dir_fd`` on the data directory, if
    the caller holds one): a ``run`` that is a link, or not a directory, is refused (ELOOP or
    ENOTDIR), never followed, and the chmod is an fchmod of what was checked."""
    path = os.path.join(data_dir, RUN_DIR)
    nofollow_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    dfd = dir_fd if dir_fd is not None else os.open(data_dir.rstrip("/") or "/", nofollow_dir)
    try:
        try:
            os.mkdir(RUN_DIR, 0o700, dir_fd=dfd)
        except FileExistsError:
            pass
        fd = os.open(RUN_DIR, nofollow_dir, dir_fd=dfd)
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid():
                raise PermissionError(f"{path} is not a directory owned by uid {os.geteuid()}")
            if stat.S_IMODE(st.st_mode) != 0o700:
                os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
    finally:
        if dir_fd is None:
            os.close(dfd)
    return path


def _address(path: str) -> str:
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        return path
    parent, name = os.path.split(path)
    fd = _dir_fds.get(parent)
    if fd is None:
        fd = _dir_fds[parent] = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}"


def listen(path: str, kind: int = socket.SOCK_STREAM, backlog: int = 8) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    old = os.umask(0o177)  # the file is born 0600: no window with looser bits
    try:
        sock.bind(_address(path))
    finally:
        os.umask(old)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def connect(path: str, kind: int = socket.SOCK_STREAM) -> socket.socket | None:
    """A connected, non-blocking socket to a sibling actor; None if there is none to reach
    (not listening yet, or the peer is not one of ours)."""
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        sock.connect(_address(path))
    except OSError:
        sock.close()
        return None
    if not is_sibling(sock):
        sock.close()
        return None
    sock.setblocking(False)
    return sock


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the peer, from the kernel (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def _parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # The command name is in parentheses and may hold spaces: split after the last ')'.
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def is_sibling(sock: socket.socket) -> bool:
    """True if the peer runs as our user and is a child of our parent (the supervisor)."""
    pid, uid, _gid = peer_credentials(sock)
    return uid == os.geteuid() and _parent_pid(pid) == os.getppid()


class SiblingListener:
    """A listening socket that hands over only sibling actors' connections.

    Others are closed at once and logged as ``internal_peer_rejected`` for the first and every
    1000th (a flood must not flood the log); ``rejected`` counts them all, for INFO."""

    def __init__(self, path: str, kind: int, log, channel: str) -> None:
        self.sock = listen(path, kind)
        self.log = log
        self.channel = channel
        self.rejected = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> list[socket.socket]:
        """Every sibling connection waiting now (non-blocking sockets)."""
        accepted = []
        while True:
            try:
                sock, _ = self.sock.accept()
            except BlockingIOError:
                return accepted
            if is_sibling(sock):
                sock.setblocking(False)
                accepted.append(sock)
                continue
            pid, uid, _ = peer_credentials(sock)
            sock.close()
            self.rejected += 1
            if self.rejected == 1 or self.rejected % 1000 == 0:
                self.log.warning("internal_peer_rejected", channel=self.channel, peer_pid=pid,
                                 peer_uid=uid, rejected=self.rejected)

    def close(self) -> None:
        self.sock.close()
