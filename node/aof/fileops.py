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
- No symbolic link is ever followed inside the data directory: a directory left loose by hand
  could have let another user plant ``appendonly.aof -> /somewhere/else``. ``open_dir`` opens a
  directory with ``O_NOFOLLOW`` (its last component must not be a link); every file is opened
  relative to such an fd (``dir_fd=``) with ``O_NOFOLLOW``, and ``rename`` and ``fsync_dir``
  work on that fd too, so a name that is (or becomes) a link is refused with ELOOP, never
  followed. ``open_private`` also refuses what is not a regular file of ours.
- ``open_private`` creates (or opens) a data file with mode 0600 whatever the umask, and tightens
  an existing file with looser bits: the AOF holds every value ever written.
- ``die_with_parent`` is PR_SET_PDEATHSIG, for actors and the rewrite child.
- Nothing here logs, retries or closes a caller's fd: errors go back as ``OSError``.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import stat

__all__ = ["write_all", "rename", "replace_file", "fsync_dir", "open_private", "open_dir", "open_in_dir",
           "not_ours", "die_with_parent", "PRIVATE_MODE"]

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


def open_dir(path: str) -> int:
    """An fd on the directory ``path`` (O_RDONLY: it can be fsynced). Its last component must
    not be a symbolic link (ELOOP, or ENOTDIR): a trailing slash would make open(2) follow one,
    so it is dropped first. The components above it are resolved as usual."""
    path = os.fspath(path)
    stripped = path.rstrip("/") or "/"
    return os.open(stripped, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _split(path: str) -> tuple[str, str]:
    parent, name = os.path.split(os.path.normpath(os.fspath(path)))
    return parent or ".", name


def open_in_dir(path: str, flags: int, mode: int = 0o777, dir_fd: int | None = None) -> int:
    """``os.open`` of ``path`` relative to an fd on its directory (``dir_fd``, else one opened
    here with ``open_dir``), with O_NOFOLLOW and O_CLOEXEC added."""
    parent, name = _split(path)
    own = dir_fd is None
    dfd = open_dir(parent) if own else dir_fd
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
    finally:
        if own:
            os.close(dfd)


def not_ours(st: os.stat_result, want_dir: bool = False) -> str | None:
    """Why a file of the data directory with this ``lstat``/``fstat`` must not be used, or None."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if want_dir and not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if not want_dir and not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"is owned by uid {st.st_uid}, not by us (uid {os.geteuid()})"
    return None


def rename(temp_path: str, live_path: str, dir_fd: int | None = None) -> None:
    """Atomically replace ``live_path`` by ``temp_path`` (both names in the directory of
    ``dir_fd``, if given). Visible at once, durable only after ``fsync_dir`` of the directory
    succeeded. rename(2) never follows a link: a link at ``live_path`` is replaced itself."""
    if dir_fd is None:
        os.rename(temp_path, live_path)
    else:
        os.rename(_split(temp_path)[1], _split(live_path)[1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def replace_file(temp_path: str, live_path: str, live_fd: int | None,
                 dir_fd: int | None = None) -> int | None:
    """``rename``, keeping the old file alive (the rewrite's step 4.3). No directory fsync.

    Returns an fd that holds the old file (``live_fd`` if it is the file at ``live_path``,
    else one opened here before the rename), or None if there was no old file. The caller hands
    it to the closer, so the rename never frees the old file's blocks in this process. If this
    raises, the rename did not happen (and nothing opened here is left open).
    """
    held = None
    name = _split(live_path)[1] if dir_fd is not None else live_path
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if live_fd is not None and os.fstat(live_fd).st_ino == st.st_ino:
            held = live_fd
        elif stat.S_ISREG(st.st_mode):  # scenario 2: keep it alive (a link is not followed)
            held = open_in_dir(live_path, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    try:
        rename(temp_path, live_path, dir_fd)
    except OSError:
        if held is not None and held != live_fd:
            os.close(held)
        raise
    return held


def fsync_dir(path: str | None = None, dir_fd: int | None = None) -> None:
    """fsync a directory, so the names created or renamed in it survive a power loss: the one
    ``dir_fd`` is open on, else ``path`` (or the directory holding the file ``path``)."""
    if dir_fd is not None:
        os.fsync(dir_fd)
        return
    lst = os.lstat(path) if os.path.lexists(path) else None
    directory = path if lst is not None and stat.S_ISDIR(lst.st_mode) else os.path.dirname(os.path.abspath(path))
    fd = open_dir(directory)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: str, flags: int, dir_fd: int | None = None) -> tuple[int, int]:
    """Open ``path`` (relative to ``dir_fd``, see ``open_in_dir``) with mode 0600; return (fd,
    the mode it had before).

    A new file gets 0600 even under a umask such as 0o277 that would strip the owner's write bit;
    an existing one with other bits is fchmod'ed to 0600. The old mode is returned so the caller
    can log a change once. A link is never followed (ELOOP), and what is not a regular file of
    ours is refused (EPERM) before anything is written or chmod'ed: O_NONBLOCK keeps a FIFO
    from blocking the open, and is cleared again for a regular file.
    """
    fd = open_in_dir(path, flags | os.O_NONBLOCK, PRIVATE_MODE, dir_fd)
    try:
        st = os.fstat(fd)
        reason = not_ours(st)
        if reason:
            raise PermissionError(errno.EPERM, f"{os.path.basename(path)} {reason}")
        if not flags & os.O_NONBLOCK:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        mode = st.st_mode & 0o7777
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
