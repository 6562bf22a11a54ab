"""A sorted set's index (zsetcore.py): its ``(score, member)`` items in order, as a list of
sorted chunks.

Design
------
One flat sorted list made every insert and delete a memmove of half the set (ZADD measured
35 µs server CPU per request at ~100k members under redis-benchmark, SET 20 µs). Chunks of
``CHUNK_MAX // 2`` to ``CHUNK_MAX`` items (``CHUNK_MIN`` at worst after deletes) bound the
memmove to one chunk: an insert or delete is a bisection over the chunks' last items (C-level
key), a bisection in the chunk and a memmove of at most 16 KiB; a chunk past ``CHUNK_MAX`` is
split in halves, one below ``CHUNK_MIN`` joins a neighbour. A list of lists of tuples is still
a built-in container, so marshal copies it for the rewrite child (which reads only the scores
dict anyway).

Positions (ranks) cost a sum of the chunk lengths from the nearer end (``n``, the member count,
comes from the scores dict): O(n / CHUNK_MAX) in C, at most ~250 chunks at 1M members. The
index never holds an empty chunk: an empty set's index is ``[]``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from itertools import accumulate, islice, takewhile
from operator import itemgetter

__all__ = ["CHUNK_MAX", "CHUNK_MIN", "zi_build", "zi_len", "zi_insert", "zi_delete", "zi_pos",
           "zi_slice", "zi_head", "zi_tail", "zi_first", "zi_last", "zi_flat"]

# 4096 pointers: at most a 32 KiB memmove per change (~1-2 µs), and 250-500 chunks at 1M
# members for the rank sums (2048 measured ZRANK 2x slower at 100k, 100 chunks, with no gain
# for ZADD).
CHUNK_MAX = 4096
CHUNK_MIN = CHUNK_MAX // 8
_LAST = itemgetter(-1)


def zi_build(items: list) -> list:
    """The index of ``items``, already sorted."""
    half = CHUNK_MAX // 2
    return [items[i:i + half] for i in range(0, len(items), half)]


def zi_len(index: list) -> int:
    return sum(map(len, index))


def zi_first(index: list):
    return index[0][0]


def zi_last(index: list):
    return index[-1][-1]


def zi_flat(index: list) -> list:
    return [item for chunk in index for item in chunk]


def zi_insert(index: list, item: tuple) -> None:
    if not index:
        index.append([item])
        return
    c = bisect_left(index, item, key=_LAST)
    if c == len(index):
        c -= 1
    chunk = index[c]
    insort(chunk, item)
    if len(chunk) > CHUNK_MAX:
        half = len(chunk) >> 1
        index.insert(c + 1, chunk[half:])
        del chunk[half:]


def zi_delete(index: list, item: tuple) -> None:
    """Remove ``item``, which the index holds."""
    c = bisect_left(index, item, key=_LAST)
    chunk = index[c]
    del chunk[bisect_left(chunk, item)]
    if len(chunk) >= CHUNK_MIN or len(index) == 1:
        if not chunk:
            del index[c]
        return
    if c + 1 == len(index):  # the last chunk joins the one before it
        c -= 1
    chunk = index[c]
    chunk += index[c + 1]
    del index[c + 1]
    if len(chunk) > CHUNK_MAX:
        half = len(chunk) >> 1
        index.insert(c + 1, chunk[half:])
        del chunk[half:]


def _before(index: list, c: int, n: int) -> int:
    """How many items the chunks before chunk ``c`` hold (``n`` items in all)."""
    if c <= len(index) >> 1:
        return sum(map(len, islice(index, c)))
    return n - sum(map(len, islice(index, c, None)))


def zi_pos(index: list, x, n: int, right: bool = False, key=None) -> int:
    """The position ``bisect_left`` (``bisect_right`` if ``right``) gives on the ``n`` flat
    items."""
    bisect = bisect_right if right else bisect_left
    c = bisect(index, x, key=_LAST if key is None else lambda chunk: key(chunk[-1]))
    if c == len(index):
        return n
    return _before(index, c, n) + bisect(index[c], x, key=key)


def _locate(index: list, pos: int, n: int) -> tuple[int, int]:
    """(c, start): chunk ``c`` holds flat position ``pos`` (0 <= pos < n) and begins at
    ``start``; the lengths are summed from the nearer end."""
    if pos < n >> 1:
        ends = list(takewhile(pos.__ge__, accumulate(map(len, index))))
        return len(ends), (ends[-1] if ends else 0)
    after = list(takewhile((n - 1 - pos).__ge__, accumulate(map(len, reversed(index)))))
    c = len(index) - 1 - len(after)
    return c, n - (after[-1] if after else 0) - len(index[c])


def zi_slice(index: list, start: int, end: int, n: int) -> list:
    """The flat items ``[start:end)`` of the ``n`` items (0 <= start; end may pass n)."""
    end = min(end, n)
    if end <= start:
        return []
    c, pos = _locate(index, start, n)
    out: list = []
    for chunk in islice(index, c, None):
        out += chunk[start - pos:end - pos] if start > pos else chunk[:end - pos]
        pos += len(chunk)
        if pos >= end:
            break
    return out


def zi_head(index: list, count: int) -> list:
    """The first ``count`` items, touching only the chunks they are in (ZPOPMIN)."""
    out: list = []
    for chunk in index:
        out += chunk[:count - len(out)]
        if len(out) >= count:
            break
    return out


def zi_tail(index: list, count: int) -> list:
    """The last ``count`` items, last first (ZPOPMAX)."""
    out: list = []
    for chunk in reversed(index):
        out += chunk[:-(count - len(out)) - 1:-1]
        if len(out) >= count:
            break
    return out
