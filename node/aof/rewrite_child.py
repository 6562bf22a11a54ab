"""Rewrite step 2: the forked child that writes the compact AOF (see node/aof/rewrite.py).

Design:
- Runs only in the child that ``Rewriter.start`` forks, on the memory image of the last cycle.
  It reads the keyspace one shard at a time through ``Keyspace.snapshot_shard`` (marshal
  copies: the parent's pages stay shared) and writes ``temp-rewriteaof-bg-<pid>.aof``: the
  header, one entry per live string key and one or more per collection (``CHILD_ENTRY_BYTES``
  each) with TTLs as absolute times, records of ~1 MiB, an fdatasync
  every ``CHILD_FSYNC_BYTES`` and one at the end.
- It reports keys, bytes, seconds and its copy-on-write cost (Private_Dirty) as one msgpack map
  on the result pipe, and exits 0 only if every write and fdatasync succeeded (1 otherwise):
  the parent opens the temp file afresh, so a write-back error seen here would be invisible
  to it.
- It never logs, never touches an inherited ZeroMQ socket or thread, never returns (``os._exit``)
  and dies with its parent (PR_SET_PDEATHSIG, SIGKILL).
"""
from __future__ import annotations

import gc
import os
import signal
import time

import msgpack

from aofnode.aof import format as aof_format
from aofnode.aof.fileops import die_with_parent, open_private, write_all
from aofnode.store.keyspace import NUM_DBS, SHARDS, Keyspace
from aofnode.store.zsetcore import format_score

__all__ = ["child_main", "CHILD_RECORD_BYTES"]

# fdatasync every 8 MiB so the kernel never holds a huge dirty backlog (Redis issue #1019 saw
# 7-14 s stalls when a rewrite's whole file was flushed at once).
CHILD_FSYNC_BYTES = 8 << 20
# Records of ~1 MiB of entries (CRC and framing amortised, far below the format's 256 MiB limit).
CHILD_RECORD_BYTES = 1 << 20
# A string value larger than this goes out as SET + APPENDs, one record each.
HUGE_VALUE_BYTES = 16 << 20
# A hash, list, set or sorted set goes out as entries of about this many bytes of elements
# (HSET / RPUSH / SADD / ZADD of a part each): one entry per collection would exceed the
# format's 256 MiB record limit for a big one, and would need all of it in memory at once.
CHILD_ENTRY_BYTES = 1 << 20


def child_main(keyspace: Keyspace, path: str, result_fd: int, nice: int, pause,
               sched: str = "normal", dir_fd: int | None = None) -> None:
    """Step 2, in the forked child. Never returns."""
    code = 1
    try:
        gc.disable()  # a collection would walk (and dirty) every shared container
        # Below the actors that serve clients: with 2 cores, a child at the same priority took
        # half the machine from them during the whole rewrite (docs/benchmarks.md).
        if nice:
            os.nice(nice)
        if sched == "idle":
            # SCHED_IDLE: the child runs only when no actor wants a core (docs/benchmarks.md has
            # the trade-off: client latency during the rewrite against the child's time and
            # copy-on-write).
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        die_with_parent(signal.SIGKILL)
        started = time.monotonic()
        keys, nbytes = _child_write(keyspace, path, keyspace.clock_ms(), dir_fd)
        result = {"keys": keys, "bytes": nbytes, "seconds": time.monotonic() - started,
                  "cow_bytes": _private_dirty_bytes()}
        pause("child_done")
        os.write(result_fd, msgpack.packb(result))
        code = 0
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _private_dirty_bytes() -> int:
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("Private_Dirty:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _child_write(keyspace: Keyspace, path: str, now_ms: int, dir_fd: int | None = None) -> tuple[int, int]:
    """Write the compact AOF of ``keyspace`` to ``path`` (mode 0600, opened relative to the
    data directory's ``dir_fd``: a planted link is never followed); return (keys, bytes).

    One entry per live string key, ``SET k v`` (+ ``PXAT ms``); a hash, list, set or sorted
    set as ``HSET`` / ``RPUSH`` / ``SADD`` / ``ZADD`` entries of ~``CHILD_ENTRY_BYTES`` each
    (+ a ``PEXPIREAT``). The common shard (strings, no TTLs) is built by one list comprehension: the
    per-key cost is what bounds the child's keys/s.
    """
    fd, _ = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, dir_fd=dir_fd)
    encode = aof_format.encode_entries
    written = unsynced = keys = 0

    def emit(entries: list) -> None:
        nonlocal written, unsynced
        data = encode(entries)
        write_all(fd, data)
        written += len(data)
        unsynced += len(data)
        if unsynced >= CHILD_FSYNC_BYTES:
            os.fdatasync(fd)
            unsynced = 0

    header = aof_format.encode_header()
    write_all(fd, header)
    written = len(header)
    if keyspace.functions:  # function libraries are data (node/store/functions.py)
        emit([[0, "FUNCTION", b"LOAD", b"REPLACE", body] for body in keyspace.functions.values()])
    for db in range(NUM_DBS):
        if not keyspace.dbsize(db):
            continue
        for i in range(SHARDS):
            data, expires = keyspace.snapshot_shard(db, i)
            if not data:
                continue
            entries, live = _shard_entries(db, data, expires, now_ms)
            if not entries:
                continue  # every key of the shard has expired
            keys += live
            for part in _record_parts(data, entries):
                emit(part)
    os.fdatasync(fd)
    os.close(fd)
    return keys, written


def _record_parts(data: dict, entries: list):
    """The entries of one shard in groups of ~CHILD_RECORD_BYTES (a shard of large values is
    split); a lone SET of a huge value becomes several single-entry groups."""
    if len(entries) > len(data) or any(type(v) is not bytes for v in data.values()):
        yield from _grouped(entries)
        return
    approx = sum(map(len, data.values())) + 16 * len(data)
    parts = approx // CHILD_RECORD_BYTES + 1
    step = -(-len(entries) // parts)
    for start in range(0, len(entries), step):
        part = entries[start:start + step]
        if len(part) == 1 and len(part[0]) >= 4 and part[0][1] == "SET" and len(part[0][3]) > HUGE_VALUE_BYTES:
            for piece in _split_huge_set(part[0]):
                yield [piece]
        else:
            yield part


def _grouped(entries: list):
    """Entries (collections' chunks, TTLs, strings) in groups of ~CHILD_RECORD_BYTES; a SET of
    a huge value becomes several single-entry groups."""
    group: list = []
    size = 0
    for entry in entries:
        if entry[1] == "SET" and len(entry[3]) > HUGE_VALUE_BYTES:
            if group:
                yield group
                group, size = [], 0
            for piece in _split_huge_set(entry):
                yield [piece]
            continue
        group.append(entry)
        size += sum(map(len, entry[2:])) + 8 * len(entry)
        if size >= CHILD_RECORD_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def _shard_entries(db: int, data: dict, expires: dict, now_ms: int) -> tuple[list, int]:
    """The entries of one shard and the number of live keys they write."""
    if not expires:
        entries = [[db, "SET", k, v] for k, v in data.items() if type(v) is bytes]
        if len(entries) == len(data):
            return entries, len(data)
        for key, value in data.items():
            if type(value) is not bytes:
                entries.extend(_collection_entries(db, key, value))
        return entries, len(data)
    entries = []
    keys = 0
    for key, value in data.items():
        when = expires.get(key)
        if when is not None and when <= now_ms:
            continue  # expired: the parent logs its DEL (in the diff, or later)
        keys += 1
        if type(value) is bytes:
            entries.append([db, "SET", key, value] if when is None
                           else [db, "SET", key, value, b"PXAT", b"%d" % when])
        else:
            entries.extend(_collection_entries(db, key, value))
            if when is not None:
                entries.append([db, "PEXPIREAT", key, b"%d" % when])
    return entries, keys


def _split_huge_set(entry: list) -> list[list]:
    """``SET k v ...`` with a value too large for one record (APPEND can grow one past the
    256 MiB record limit) as ``SET k <first piece> ...`` then ``APPEND k <piece>``s."""
    db, _, key, value, *rest = entry
    pieces = [value[i:i + HUGE_VALUE_BYTES] for i in range(0, len(value), HUGE_VALUE_BYTES)]
    return [[db, "SET", key, pieces[0], *rest]] + [[db, "APPEND", key, p] for p in pieces[1:]]


def _collection_entries(db: int, key: bytes, value) -> list[list]:
    """A hash, list, set or sorted set as HSET / RPUSH / SADD / ZADD entries of at most
    ~CHILD_ENTRY_BYTES of arguments each: a collection of any size fits the record limit."""
    kind = type(value)
    if kind is dict:
        name, flat = "HSET", [x for pair in value.items() for x in pair]
        step = 2
    elif kind is list:  # [head reversed, tail] (listcore.py)
        name, flat, step = "RPUSH", value[0][::-1] + value[1], 1
    elif len(value) == 1:  # a set: (member -> None dict,)
        name, flat, step = "SADD", list(value[0]), 1
    else:  # a sorted set: the scores are enough, the order is rebuilt at load
        name, step = "ZADD", 2
        flat = [x for member, score in value[0].items() for x in (format_score(score), member)]
    out = []
    start, size = 0, 0
    for i in range(0, len(flat), step):
        size += sum(map(len, flat[i:i + step])) + 8 * step
        if size >= CHILD_ENTRY_BYTES:
            out.append([db, name, key, *flat[start:i + step]])
            start, size = i + step, 0
    if start < len(flat):
        out.append([db, name, key, *flat[start:]])
    return out
