"""The AOF file format: framing, scanning, the torn-tail rule and loading.

Design:
- Owns the bytes on disk, nothing else: a 16-byte header, then records ``length | crc32c |
  payload`` whose CRC-32C covers the length too, each payload a msgpack array of entries
  ``[db, NAME, *args]`` (docs/aof.md has the byte tables and a worked example). Pure file code:
  no sockets, no fsync policy (node/aof/writer.py).
- One rule, one place. ``check_entries`` (node/aof/entries.py) is the only definition of a valid
  entry; ``scan`` applies it to every record and decides the verdict (ok / torn_tail / corrupt).
  ``load`` (node start) and ``aofnode check-aof`` (node/aof/check.py) both take their verdict
  from ``scan``, so they cannot disagree.
- The torn-tail rule. A crash can only damage the end of what was being appended: the last
  record. The first bad record, at offset N, is a torn tail (``load`` cuts it and starts) only if
  1. it is not a record whose CRC matches (a valid CRC with invalid entries is always corrupt),
  2. the file from N to EOF is no longer than one maximal record (8 + ``MAX_RECORD_BYTES``), and
  3. no later offset holds a record this node could have written whose CRC matches
     (``_find_later_record``).
  Anything else is corrupt: ``load`` raises ``CorruptAOF`` and the node exits 3. Zero padding
  at the tail (a crash after the size was extended but before the data reached the disk) is
  judged by the same rule: zeros are garbage like any other, never a record (length 0).
- ``encode_entries`` is on the hot path (one call per cycle): one msgpack pack, one CRC, one
  concatenation; only a cycle over ``MAX_RECORD_BYTES`` takes the slower split path.
- ``scan`` reads sequentially in ``READ_CHUNK_BYTES`` chunks: at most one chunk plus one record
  (or one torn tail, which is no larger) is in memory, whatever the file size.
"""
from __future__ import annotations

import os
import shlex
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable

import google_crc32c
import msgpack

from aofnode.aof import fileops
from aofnode.aof.entries import ENTRY_HEADS, FIRST_ENTRY, RECORD_HEADS, decode_payload

__all__ = [
    "MAGIC", "VERSION", "HEADER_SIZE", "RECORD_HEADER_SIZE", "MAX_RECORD_BYTES",
    "CorruptAOF", "ScanResult", "encode_header", "encode_record", "encode_entries",
    "scan", "load", "truncate_durably",
]

MAGIC = b"AOFNODE\x00"
VERSION = 1
HEADER_SIZE = 16
RECORD_HEADER_SIZE = 8
# One record holds whole entries of one cycle. 256 MiB bounds what a garbage length can make the
# loader allocate. An entry of a cycle always fits: it carries bytes of one client message (at
# most protocol.wire.MAX_MESSAGE_BYTES = 64 MiB) plus a few dozen bytes of framing. A cycle
# bigger than this is written as several records (``encode_entries``). The rewrite child must
# keep its own entries under it too: it splits string values over HUGE_VALUE_BYTES.
MAX_RECORD_BYTES = 256 * 1024 * 1024
# Sequential read size: 8 MiB amortises the syscall cost (>1 GB/s from page cache here) while
# keeping memory bounded. Tests monkeypatch it smaller to exercise records spanning chunks.
READ_CHUNK_BYTES = 8 * 1024 * 1024

_HEADER = struct.Struct(">8sII")
_U32 = struct.Struct(">I")
_RECORD_HEADER = struct.Struct(">II")
_crc_value = google_crc32c.value
_crc_extend = google_crc32c.extend

OnEntries = Callable[[list], Any]
Progress = Callable[[int, int, float], Any]


class CorruptAOF(Exception):
    """The AOF holds something a crash cannot leave: the node refuses to start (exit 3)."""

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
    status: str  # "ok" | "torn_tail" (load cuts at ok_up_to) | "corrupt" (load refuses)
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


def encode_entries(entries: list, units: list[tuple[int, int]] = ()) -> bytes:
    """The records holding ``entries`` (``[db, NAME, *args]``), in order, as one bytes object.

    Usually one record. A cycle over ``MAX_RECORD_BYTES`` becomes several records, each holding
    whole entries, so the writer still appends the cycle with one write(2) and one group commit.
    ``units``: ranges ``[start, end)`` of entries that must stay in one record (a transaction's:
    a record is what replay and the torn-tail rule take or drop whole). No entries: ``b""``.
    """
    if not entries:
        return b""
    payload = msgpack.packb(entries, use_bin_type=True)
    if len(payload) <= MAX_RECORD_BYTES:
        return encode_record(payload)
    del payload
    return _encode_split(entries, units)


def _encode_split(entries: list, units: list[tuple[int, int]] = ()) -> bytes:
    """Several records of whole entries, never cutting inside a unit; the CRC is extended piece
    by piece, so the only copies are the packed entries and the result."""
    packer = msgpack.Packer(use_bin_type=True)
    room = MAX_RECORD_BYTES - 5  # 5: the largest array header
    inside = set()  # indexes a record may not start at
    for start, end in units:
        inside.update(range(start + 1, end))
    groups: list[list[bytes]] = [[]]
    used = 0
    cut = 0  # the group's last index a new record may start at, relative to the group
    for i, entry in enumerate(entries):
        packed = packer.pack(entry)
        if len(packed) > room:
            # Impossible for entries the node writes (see MAX_RECORD_BYTES): a bug, not input.
            raise ValueError(f"one entry of {len(packed)} bytes exceeds the record limit")
        if i not in inside:
            cut = len(groups[-1])
        if used + len(packed) > room:
            if cut == 0:
                raise ValueError("a transaction's entries exceed the record limit")
            moved = groups[-1][cut:]
            del groups[-1][cut:]
            groups.append(moved)
            used = sum(map(len, moved))
            cut = 0
            if used + len(packed) > room:
                raise ValueError("a transaction's entries exceed the record limit")
        groups[-1].append(packed)
        used += len(packed)
    pieces: list[bytes] = []
    for group in groups:
        head = packer.pack_array_header(len(group))
        length = _U32.pack(len(head) + sum(map(len, group)))
        crc = _crc_extend(_crc_value(length), head)
        for packed in group:
            crc = _crc_extend(crc, packed)
        pieces += (length, _U32.pack(crc), head, *group)
    return b"".join(pieces)


# -- scanning -------------------------------------------------------------------------------------

def _check_header(f, file_size: int) -> tuple[str, str] | None:
    """None if the header is good, else (status, problem); the cut point is always offset 0."""
    head = f.read(HEADER_SIZE)
    if file_size == 0:
        return "torn_tail", "empty file (no header)"
    if head.count(0) == len(head):
        return _judge_tail(f, 0, file_size, "zeroed header (it never reached the disk)")
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


def _find_later_record(tail: bytes) -> int | None:
    """Offset in ``tail`` (> 0; ``tail[0]`` starts the bad record) of a record this node could
    have written, whose length fits in ``tail`` and whose CRC matches; None if there is none.

    Only offsets followed by the start of a valid first entry are tried, so a tail of random or
    zero bytes costs one regex pass and (almost) no CRC work.
    """
    end = len(tail)
    for match in FIRST_ENTRY.finditer(tail):
        p = match.start()  # the db byte of a candidate first entry
        for e, entry_heads in ENTRY_HEADS:
            for o, record_heads in RECORD_HEADS:
                r = p - e - o - RECORD_HEADER_SIZE  # where that record would start
                if r <= 0 or tail[p - e] not in entry_heads or tail[r + 8] not in record_heads:
                    continue
                length, crc = _RECORD_HEADER.unpack_from(tail, r)
                payload_end = r + RECORD_HEADER_SIZE + length
                if 0 < length <= MAX_RECORD_BYTES and payload_end <= end:
                    payload = tail[r + RECORD_HEADER_SIZE:payload_end]
                    if _crc_extend(_crc_value(tail[r:r + 4]), payload) == crc:
                        return r
    return None


def _judge_tail(f, start: int, file_size: int, problem: str) -> tuple[str, str]:
    """(status, problem) for a bad record (bad length or CRC, or cut short) at ``start``: steps
    2 and 3 of the torn-tail rule in the module docstring."""
    size = file_size - start
    limit = RECORD_HEADER_SIZE + MAX_RECORD_BYTES
    if size > limit:
        return "corrupt", (f"{problem}, with {size} bytes from it to EOF: more than one record "
                           f"({limit} bytes), so not a torn tail")
    f.seek(start)
    later = _find_later_record(f.read(size))
    if later is not None:
        return "corrupt", (f"{problem}, with a valid record after it at offset {start + later}: "
                           "bad record in the middle of the file")
    return "torn_tail", f"{problem} (torn tail: nothing valid after it)"


def _walk(f, file_size: int, on_entries: OnEntries | None, progress: Progress | None,
          progress_interval_s: float) -> tuple[int, int, int, str | None, str | None]:
    """Read good records from the header on: (end of the good prefix, records, entries, status,
    problem). status None: clean EOF; "corrupt": a CRC-valid record with invalid entries;
    "bad": a bad length or CRC, or a record cut short, for ``_judge_tail``."""
    started = time.monotonic()
    next_progress = started + progress_interval_s
    reader = _Reader(f, HEADER_SIZE, file_size)
    records = entries = 0
    start = HEADER_SIZE  # file offset of the current record = end of the good prefix
    while start < file_size:
        status = "bad"
        if file_size - start < RECORD_HEADER_SIZE:
            problem = f"partial record header at EOF ({file_size - start} of 8 bytes)"
            break
        head = reader.take(RECORD_HEADER_SIZE)
        length, crc = _RECORD_HEADER.unpack(head)
        end = start + RECORD_HEADER_SIZE + length
        if not 0 < length <= MAX_RECORD_BYTES:
            problem = f"bad record length {length} (1..{MAX_RECORD_BYTES})"
            break
        if end > file_size:
            got = file_size - start - RECORD_HEADER_SIZE
            problem = f"partial payload ({got} of {length} bytes before EOF)"
            break
        payload = reader.take(length)
        if len(payload) < length:
            problem = "file shrank while it was being read"
            break
        if _crc_extend(_crc_value(head[:4]), payload) != crc:
            problem = "bad crc32c"
            break
        try:
            batch = decode_payload(payload)
        except ValueError as exc:
            # The CRC matched, so these are bytes we wrote: a bug or a bad disk, never a torn write.
            status, problem = "corrupt", f"record with a valid crc32c has a bad payload: {exc}"
            break
        if on_entries is not None:
            on_entries(batch)
        records += 1
        entries += len(batch)
        start = end
        if progress is not None:
            now = time.monotonic()
            if now >= next_progress:
                progress(records, start, now - started)
                next_progress = now + progress_interval_s
    else:
        status = problem = None
    return start, records, entries, status, problem


def scan(path: str | os.PathLike, on_entries: OnEntries | None = None,
         progress: Progress | None = None, progress_interval_s: float = 1.0,
         nofollow: bool = False) -> ScanResult:
    """Validate the whole file and reach the verdict; call ``on_entries(entries)`` for each good
    record, in order, as it is read (before the verdict on the tail is known).

    ``progress(records, bytes_done, seconds)`` is called at most every ``progress_interval_s``.
    Exceptions from the callbacks propagate. The module docstring has the rules. With
    ``nofollow`` (the node's own AOF) a symbolic link is refused (ELOOP), never read.
    """
    with (open(fileops.open_in_dir(os.fspath(path), os.O_RDONLY), "rb") if nofollow
          else open(path, "rb")) as f:
        file_size = os.fstat(f.fileno()).st_size
        bad = _check_header(f, file_size)
        if bad is not None:
            return ScanResult(0, 0, 0, file_size, bad[0], bad[1], 0)
        f.seek(HEADER_SIZE)
        start, records, entries, status, problem = _walk(
            f, file_size, on_entries, progress, progress_interval_s)
        if status is None:
            return ScanResult(start, records, entries, file_size, "ok", None, None)
        if status == "bad":
            status, problem = _judge_tail(f, start, file_size, problem)
    return ScanResult(start, records, entries, file_size, status, problem, start)


# -- node start -----------------------------------------------------------------------------------

def truncate_durably(path: str | os.PathLike, size: int, nofollow: bool = False) -> None:
    """Cut ``path`` to ``size`` bytes and fsync, so the cut survives a power loss (``nofollow``:
    never through a symbolic link)."""
    fd = (fileops.open_in_dir(os.fspath(path), os.O_RDWR) if nofollow
          else os.open(path, os.O_RDWR | os.O_CLOEXEC))
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)  # the new size is inode metadata: fsync (not fdatasync) makes it durable
    finally:
        os.close(fd)


def load(path: str | os.PathLike, apply: OnEntries, log, entry_delay_us: int = 0) -> ScanResult:
    """Replay the AOF into ``apply(entries)`` at node start.

    - ``entry_delay_us``: Redis's key-load-delay (``slowed``), 0 for none.
    - A missing file is an empty, ok AOF (the writer creates it).
    - A torn tail is cut off (ftruncate + fsync) and logged once as ``aof_truncated``.
    - Anything else that is not ok raises ``CorruptAOF`` (the log actor exits 3). ``apply`` has
      already been called for every record before the bad one: the caller discards its state.
    """
    started = time.monotonic()
    if not os.path.lexists(path):
        return ScanResult(0, 0, 0, 0, "ok", None, None)

    def on_progress(records: int, bytes_done: int, seconds: float) -> None:
        log.info("aof_load_progress", records=records, bytes=bytes_done, seconds=round(seconds, 3))

    if entry_delay_us:
        apply = slowed(apply, entry_delay_us)
    result = scan(path, on_entries=apply, progress=on_progress, progress_interval_s=1.0, nofollow=True)
    if result.status == "corrupt":
        raise CorruptAOF(os.fspath(path), result.bad_offset or 0, result.problem or "corrupt")
    if result.status == "torn_tail":
        truncate_durably(path, result.ok_up_to, nofollow=True)
        log.warning("aof_truncated", offset=result.ok_up_to,
                    bytes_cut=result.file_size - result.ok_up_to, reason=result.problem)
    log.info("aof_loaded", records=result.records, entries=result.entries, bytes=result.ok_up_to,
             seconds=round(time.monotonic() - started, 3))
    return result


def slowed(apply: OnEntries, usec: int) -> OnEntries:
    """``apply`` that sleeps ``usec`` microseconds per entry after each record (Redis's
    debugDelay for key-load-delay, a debug aid). Negative: 1 us every ``-usec`` entries, as
    Redis sleeps 1 us with probability 1/-usec (even the shortest sleep is a system call and a
    context switch); here every ``-usec``-th entry, so a test gets the same delay each run."""
    every = -usec if usec < 0 else 0
    seen = 0

    def apply_slowly(entries: list) -> None:
        nonlocal seen
        apply(entries)
        if every:
            before, seen = seen, seen + len(entries)
            naps = seen // every - before // every
        else:
            naps = len(entries) * usec
        if naps > 0:
            time.sleep(naps / 1e6)
    return apply_slowly
