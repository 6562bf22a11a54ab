"""The file-system calls the AOF code shares, each with its durability meaning spelled out.

Design:
- ``write_all`` loops over short writes. On an error it raises the ``OSError`` with
  ``exc.written`` set to the bytes that did reach the file, so a caller can cut a partial record.
- ``rename`` and ``fsync_dir`` are two calls on purpose. After ``rename`` returns, the new name
  is what every process sees, but only ``fsync_dir`` makes it survive a power loss. A caller must
  treat a failure of each differently: a failed rename changed nothing; a failed directory fsync
  comes *after* a rename that did happen (see docs/aof.md, "Crash consistency").
  ``replace_file`` is ``rename`` that first makes sure an fd holds the old file, so the rename is
  never the old file's last reference (freeing a 1 GiB file's blocks takes ~270 ms).
- ``open_private`` creates (or opens) a data file with mode 0600 whatever the umask, and tightens
  an existing file with looser bits: the AOF holds every value ever written.
- ``die_with_parent`` is PR_SET_PDEATHSIG, for actors and the rewrite child.
- Nothing here logs, retries or closes a caller's fd: errors go back as ``OSError``.
"""
from __future__ import annotations

import ctypes
import os
import signal

__all__ = ["write_all", "rename", "replace_file", "fsync_dir", "open_private", "die_with_parent", "PRIVATE_MODE"]

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


def replace_file(temp_path: str, live_path: str, live_fd: int | None) -> int | None:
    """``rename``, keeping the old file alive (the rewrite's step 4.3). No directory fsync.

    Returns an fd that holds the old file (``live_fd`` if it is the file at ``live_path``,
    else one opened here before the rename), or None if there was no old file. The caller hands
    it to the closer, so the rename never frees the old file's blocks in this process. If this
    raises, the rename did not happen (and nothing opened here is left open).
    """
    held = None
    try:
        st = os.stat(live_path)
        if live_fd is not None and os.fstat(live_fd).st_ino == st.st_ino:
            held = live_fd
        else:
            held = os.open(live_path, os.O_RDONLY | os.O_CLOEXEC)  # scenario 2: keep it alive
    except FileNotFoundError:
        pass
    try:
        rename(temp_path, live_path)
    except OSError:
        if held is not None and held != live_fd:
            os.close(held)
        raise
    return held


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
