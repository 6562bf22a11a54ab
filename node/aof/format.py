"""The AOF file format: header, record framing, loading, torn-tail repair and ``check-aof``.

Design:
- Owns the bytes on disk, nothing else: a 16-byte header (magic ``AOFNODE\\0``, version u32 BE,
  reserved u32 BE = 0), then records ``length u32 BE | crc32c u32 BE | payload``. The CRC-32C
  covers the 4 length bytes followed by the payload, so a flipped length is caught too. A payload
  is a msgpack array of entries ``[db: int, NAME: str, *args: bytes]`` (docs/aof.md has the byte
  tables and a worked example). Pure file code: no sockets, and it never decides fsync policy
  (that is node/aof_writer.py).
- ``encode_entries`` is on the hot path (one call per batch): one msgpack pack, one CRC, one
  precompiled struct pack, one concatenation.
- ``scan`` reads sequentially in ``READ_CHUNK_BYTES`` chunks, so a multi-GiB file is never held
  in memory; only one record (at most ``MAX_RECORD_BYTES``) plus one chunk is.
- Classification of what a crash can leave versus what only a bug or bad disk can leave:
  * torn tail (repairable by truncation, the node starts): an empty file, a partial header that is
    a prefix of a valid header, a partial record header or payload at EOF, a bad CRC or absurd
    length on a record that reaches EOF, or a record followed only by zero bytes (a crash after
    the size was extended but before the data reached the disk leaves zeros on ext4/XFS).
  * corrupt (the node refuses to start): wrong magic/version, a bad record with good bytes after
    it, or a record whose CRC is right but whose payload is not valid entries (that is our bug).
- What it does not promise: a bad length field in the middle of the file that points past EOF is
  indistinguishable from a torn write and is classified torn (``load`` logs ``bytes_cut`` so that
  an unusually large cut is visible).
"""
from __future__ import annotations

import os
import shlex
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

import google_crc32c
import msgpack

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "RECORD_HEADER_SIZE",
    "MAX_RECORD_BYTES",
    "CorruptAOF",
    "ScanResult",
    "encode_header",
    "encode_record",
    "encode_entries",
    "scan",
    "load",
    "check_aof_main",
]

MAGIC = b"AOFNODE\x00"
VERSION = 1
HEADER_SIZE = 16
RECORD_HEADER_SIZE = 8
# One record is one batch of writes. 256 MiB is far above any real batch (the codec caps a request
# well below that) and low enough that a garbage length cannot make the loader allocate GiBs.
MAX_RECORD_BYTES = 256 * 1024 * 1024
# Sequential read size: 8 MiB amortises the syscall cost (>1 GB/s from page cache here) while
# keeping memory bounded. Tests monkeypatch it smaller to exercise records spanning chunks.
READ_CHUNK_BYTES = 8 * 1024 * 1024

_HEADER = struct.Struct(">8sII")
_U32 = struct.Struct(">I")
_RECORD_HEADER = struct.Struct(">II")
_crc_value = google_crc32c.value
_crc_extend = google_crc32c.extend
_BYTES_ONLY = frozenset((bytes,))

OnEntries = Callable[[list], Any]
Progress = Callable[[int, int, float], Any]


class CorruptAOF(Exception):
    """The AOF has a bad record with valid data after it (or a bad header): refuse to start."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"AOF {path} is corrupt at offset {offset}: {reason}; "
            f"inspect and repair with: aofnode check-aof --fix {shlex.quote(path)}"
        )


@dataclass(frozen=True, slots=True)
class ScanResult:
    ok_up_to: int  # file offset just past the last good record (0 if the header is not good)
    records: int  # good records before ok_up_to
    entries: int  # entries in those records
    file_size: int
    status: str  # "ok" | "torn_tail" | "corrupt"
    problem: str | None  # human-readable reason, None when ok
    bad_offset: int | None  # where the problem starts, None when ok


# -- encoding (hot path) --------------------------------------------------------------------------

def encode_header() -> bytes:
    return _HEADER.pack(MAGIC, VERSION, 0)


def encode_record(payload: bytes) -> bytes:
    n = len(payload)
    if not 0 < n <= MAX_RECORD_BYTES:
        raise ValueError(f"record payload of {n} bytes is outside 1..{MAX_RECORD_BYTES}")
    length = _U32.pack(n)
    return b"".join((length, _U32.pack(_crc_extend(_crc_value(length), payload)), payload))


def encode_entries(entries: list) -> bytes:
    """Frame a batch of entries ``[db, NAME, *args]`` as one record (one write(2) for the batch)."""
    return encode_record(msgpack.packb(entries, use_bin_type=True))


# -- decoding -------------------------------------------------------------------------------------

def _decode_entries(payload: bytes) -> list:
    """Unpack and validate one payload; raise ValueError if it is not a list of valid entries."""
    n = len(payload)
    try:
        entries = msgpack.unpackb(
            payload, raw=False, use_list=True, max_bin_len=n, max_str_len=n, max_array_len=n,
            max_map_len=0, max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"payload is not valid msgpack: {exc}") from None
    if type(entries) is not list:
        raise ValueError(f"payload is a {type(entries).__name__}, expected an array of entries")
    for entry in entries:
        # This check costs ~3x the unpack itself (~0.5 us per entry here), so it is one expression.
        if not (
            type(entry) is list
            and len(entry) >= 2
            and type(entry[0]) is int
            and entry[0] >= 0
            and type(entry[1]) is str
            and entry[1]
            and set(map(type, entry[2:])) <= _BYTES_ONLY
        ):
            raise ValueError(
                f"entry {entries.index(entry)} is not [db: int, NAME: str, *args: bytes]: "
                f"{entry!r:.200}"
            )
    return entries


def _zeros_to_eof(f, start: int, file_size: int) -> bool:
    """True if every byte from ``start`` to EOF is zero; streams so a huge tail stays cheap."""
    f.seek(start)
    remaining = file_size - start
    while remaining > 0:
        chunk = f.read(min(READ_CHUNK_BYTES, remaining))
        if not chunk:
            break
        if chunk.count(0) != len(chunk):
            return False
        remaining -= len(chunk)
    return True


def _check_header(f, file_size: int) -> tuple[str, str] | None:
    """None if the header is good, else (status, problem); the cut point is always offset 0."""
    head = f.read(HEADER_SIZE)
    if file_size == 0:
        return "torn_tail", "empty file (no header)"
    if head.count(0) == len(head) and _zeros_to_eof(f, 0, file_size):
        return "torn_tail", f"file of {file_size} zero bytes (header never reached the disk)"
    if len(head) < HEADER_SIZE:
        if encode_header().startswith(head):
            return "torn_tail", f"partial header ({len(head)} of {HEADER_SIZE} bytes)"
        return "corrupt", f"file of {len(head)} bytes is not an aofnode AOF (bad header)"
    magic, version, reserved = _HEADER.unpack(head)
    if magic != MAGIC:
        return "corrupt", f"bad magic {magic!r}, expected {MAGIC!r}: not an aofnode AOF"
    if version != VERSION:
        return "corrupt", f"unsupported version {version}, this node reads version {VERSION}"
    if reserved != 0:
        # Reserved for flags a future version may set: an old reader must not silently ignore them.
        return "corrupt", f"reserved header field is {reserved}, expected 0"
    return None


class _Reader:
    """Sequential reads in ``READ_CHUNK_BYTES`` chunks, keeping only the bytes not yet taken."""

    def __init__(self, f, offset: int, file_size: int) -> None:
        self._f = f
        self._read_pos = offset  # file offset of the next byte to read
        self._file_size = file_size
        self._data = b""
        self._pos = 0  # index in _data of the next byte to take

    def take(self, n: int) -> bytes:
        """The next n bytes (fewer only if the file shrank under us)."""
        avail = len(self._data) - self._pos
        if avail < n:
            # One read for the whole missing part: a big record costs one copy, not one per chunk.
            want = max(READ_CHUNK_BYTES, n - avail)
            more = self._f.read(min(want, self._file_size - self._read_pos))
            self._read_pos += len(more)
            self._data = self._data[self._pos:] + more
            self._pos = 0
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out


def _classify_bad_record(f, start: int, declared_end: int, file_size: int, problem: str):
    """(status, problem) for a record with a bad crc or length that starts at ``start``."""
    if declared_end >= file_size:
        return "torn_tail", f"{problem} on the last record"
    if _zeros_to_eof(f, start, file_size):
        return "torn_tail", f"{problem}, followed only by zero bytes to EOF"
    return "corrupt", f"{problem}: bad record in the middle of the file"


def scan(
    path: str | os.PathLike,
    on_entries: OnEntries | None = None,
    progress: Progress | None = None,
    progress_interval_s: float = 1.0,
) -> ScanResult:
    """Validate the whole file; call ``on_entries(entries)`` for each good record, in order.

    ``progress(records, bytes_done, seconds)`` is called at most every ``progress_interval_s``.
    Exceptions from the callbacks propagate. See the module docstring for the classification.
    """
    started = time.monotonic()
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        bad = _check_header(f, file_size)
        if bad is not None:
            return ScanResult(0, 0, 0, file_size, bad[0], bad[1], 0)
        f.seek(HEADER_SIZE)
        reader = _Reader(f, HEADER_SIZE, file_size)
        records = entries = 0
        start = HEADER_SIZE  # file offset of the current record = end of the good prefix
        next_progress = started + progress_interval_s
        status = problem = None
        while start < file_size:
            if file_size - start < RECORD_HEADER_SIZE:
                status = "torn_tail"
                problem = f"partial record header at EOF ({file_size - start} of 8 bytes)"
                break
            head = reader.take(RECORD_HEADER_SIZE)
            length, crc = _RECORD_HEADER.unpack(head)
            declared_end = start + RECORD_HEADER_SIZE + length
            if length > MAX_RECORD_BYTES:
                status, problem = _classify_bad_record(
                    f, start, declared_end, file_size,
                    f"absurd record length {length} (max {MAX_RECORD_BYTES})",
                )
                break
            if declared_end > file_size:
                status = "torn_tail"
                problem = (
                    f"partial payload at EOF "
                    f"({file_size - start - RECORD_HEADER_SIZE} of {length} bytes)"
                )
                break
            payload = reader.take(length)
            if len(payload) < length:
                status, problem = "torn_tail", "file shrank while it was being read"
                break
            if _crc_extend(_crc_value(head[:4]), payload) != crc:
                status, problem = _classify_bad_record(
                    f, start, declared_end, file_size, "bad crc32c"
                )
                break
            try:
                batch = _decode_entries(payload)
            except ValueError as exc:
                # The CRC matched, so these are the bytes we wrote: a bug, never a torn write.
                status = "corrupt"
                problem = f"record with a valid crc32c has a bad payload: {exc}"
                break
            if on_entries is not None:
                on_entries(batch)
            records += 1
            entries += len(batch)
            start = declared_end
            if progress is not None:
                now = time.monotonic()
                if now >= next_progress:
                    progress(records, start, now - started)
                    next_progress = now + progress_interval_s
    if status is None:
        return ScanResult(start, records, entries, file_size, "ok", None, None)
    return ScanResult(start, records, entries, file_size, status, problem, start)


# -- node start -----------------------------------------------------------------------------------

def _truncate_durably(path: str | os.PathLike, size: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)  # the new size is inode metadata: fsync (not fdatasync) makes it durable
    finally:
        os.close(fd)


def load(path: str | os.PathLike, apply: OnEntries, log) -> ScanResult:
    """Replay the AOF into ``apply(entries)`` at node start.

    - A missing file is an empty, ok AOF (the writer creates it).
    - A torn tail is cut off (ftruncate + fsync) and logged once as ``aof_truncated``.
    - Mid-file corruption raises ``CorruptAOF``. ``apply`` has already been called for every
      record before the bad one, so the caller must discard its state (it refuses to start anyway).
    """
    started = time.monotonic()
    if not os.path.exists(path):
        return ScanResult(0, 0, 0, 0, "ok", None, None)

    def on_progress(records: int, bytes_done: int, seconds: float) -> None:
        log.info("aof_load_progress", records=records, bytes=bytes_done, seconds=round(seconds, 3))

    result = scan(path, on_entries=apply, progress=on_progress, progress_interval_s=1.0)
    if result.status == "corrupt":
        raise CorruptAOF(os.fspath(path), result.bad_offset or 0, result.problem or "corrupt")
    if result.status == "torn_tail":
        _truncate_durably(path, result.ok_up_to)
        log.warning(
            "aof_truncated",
            offset=result.ok_up_to,
            bytes_cut=result.file_size - result.ok_up_to,
            reason=result.problem,
        )
    log.info(
        "aof_loaded",
        records=result.records,
        entries=result.entries,
        bytes=result.ok_up_to,
        seconds=round(time.monotonic() - started, 3),
    )
    return result


# -- aofnode check-aof ----------------------------------------------------------------------------

def check_aof_main(
    path: str,
    fix: bool,
    yes: bool,
    out: TextIO = sys.stdout,
    confirm: Callable[[str], str] = input,
) -> int:
    """``aofnode check-aof FILE [--fix] [--yes]``: 0 ok or fixed, 1 problems left, 2 error.

    Output is one ``key: value`` per line so scripts can parse it. ``--fix`` cuts the file at
    ``ok_up_to``: for mid-file corruption everything from the first bad record on is lost, as with
    redis-check-aof --fix. Run it only while the node is stopped.
    """
    def say(line: str) -> None:
        print(line, file=out)

    try:
        result = scan(path)
    except OSError as exc:
        say(f"error: cannot read {path}: {exc.strerror or exc}")
        return 2
    say(f"status: {result.status}")
    say(f"records: {result.records}")
    say(f"entries: {result.entries}")
    say(f"ok_up_to: {result.ok_up_to}")
    say(f"file_size: {result.file_size}")
    if result.status == "ok":
        return 0
    say(f"bad_offset: {result.bad_offset}")
    say(f"problem: {result.problem}")
    if result.status == "corrupt" and result.bad_offset == 0:
        # A bad header means this may not be an AOF at all: truncating would erase someone's file.
        say("error: bad header; refusing to truncate, remove or move the file by hand")
        return 1
    if not fix:
        say(f"run: aofnode check-aof --fix {shlex.quote(path)}")
        return 1
    lost = result.file_size - result.ok_up_to
    if not yes:
        try:
            answer = confirm(
                f"Truncate {path} from {result.file_size} to {result.ok_up_to} bytes "
                f"({lost} bytes lost)? [y/N] "
            )
        except EOFError:
            answer = ""
        if not answer.strip().lower().startswith("y"):
            say("aborted: file left unchanged")
            return 1
    try:
        if os.stat(path).st_size != result.file_size:
            say("error: file size changed since the check (is the node running?); not truncated")
            return 2
        _truncate_durably(path, result.ok_up_to)
    except OSError as exc:
        say(f"error: cannot truncate {path}: {exc.strerror or exc}")
        return 2
    say(f"truncated: {lost} bytes")
    return 0
