"""The file-system calls the AOF code shares, each with its durability meaning spelled out.

Design:
- ``write_all`` loops over short writes. On an error it raises the ``OSError`` with
  ``exc.written`` set to the bytes that did reach the file, so a caller can cut a partial record.
- ``rename`` and ``fsync_dir`` are two calls on purpose. After ``rename`` returns, the new name
  is what every process sees, but only ``fsync_dir`` makes it survive a power loss. A caller must
  treat a failure of each differently: a failed rename changed nothing; a failed directory fsync
  comes *after* a rename that did happen (see docs/aof.md, "Crash consistency").
- ``open_private`` creates (or opens) a data file with mode 0600 whatever the umask, and tightens
  an existing file with looser bits: the AOF holds every value ever written.
- ``die_with_parent`` is PR_SET_PDEATHSIG, for actors and the rewrite child.
- Nothing here logs, retries or closes a caller's fd: errors go back as ``OSError``.
"""
from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["write_all", "rename", "fsync_dir", "open_private", "die_with_parent", "PRIVATE_MODE"]

PRIVATE_MODE = 0o600
PR_SET_PDEATHSIG = 1


def write_all(fd: int, data: bytes) -> None:
    """write(2) until all of ``data`` is written. On error, ``exc.written`` says how much was."""
    view = memoryview(data)
    written = 0
    try:
        while written < len(view):
            written += os.write(fd, view[written:])
    except OSError as exc:
        exc.written = written
        raise


def rename(temp_path: str, live_path: str) -> None:
    """Atomically replace ``live_path`` by ``temp_path``. Visible at once, durable only after
    ``fsync_dir`` of the directory succeeded."""
    os.rename(temp_path, live_path)


def fsync_dir(path: str) -> None:
    """fsync the directory ``path`` (or the directory holding the file ``path``), so the names
    created or renamed in it survive a power loss."""
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: str, flags: int) -> tuple[int, int]:
    """``os.open(path, flags | O_CLOEXEC)`` with mode 0600; return (fd, the mode it had before).

    A new file gets 0600 even under a umask such as 0o277 that would strip the owner's write bit;
    an existing one with other bits is fchmod'ed to 0600. The old mode is returned so the caller
    can log a change once.
    """
    fd = os.open(path, flags | os.O_CLOEXEC, PRIVATE_MODE)
    try:
        mode = os.fstat(fd).st_mode & 0o7777
        if mode != PRIVATE_MODE:
            os.fchmod(fd, PRIVATE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd, mode


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` when our parent dies, so no process outlives a killed parent.

    Actors use SIGTERM (they still finish a batch and fsync); the rewrite child uses SIGKILL (its
    temp file is useless without the parent). Best effort: a no-op where prctl is missing.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass
