"""The sorted set value, its ranges, and Redis's parsing and formatting of scores.

Design
------
A sorted set is the tuple ``(scores, index)``: ``scores`` a dict member -> float, ``index`` its
``(score, member)`` tuples in Redis's order (score, then the member's bytes) as a list of
sorted chunks (``zsetindex.py``: an insert or delete moves at most one chunk of 2048 pointers,
where one flat list moved half the set). Both are built-in containers, so marshal copies the
value for the rewrite child like any other (the child writes the dict only: ZADD order does
not matter). A tuple is the one value class no other type uses, so the type test stays one
``__class__`` check. Rank, count and range queries are bisections of the index.

Scores are C doubles: parsed as Redis's ``strtod`` does (``inf``, hex floats, no spaces, no
overflow, never NaN), replied with ``%.17g`` as Redis 7.0 does (``1``, ``1.5``,
``0.10000000000000001``, ``inf``). ``-0`` is stored as ``0``.
"""

from __future__ import annotations

import math
import re
from operator import itemgetter

from aofnode.protocol.errors import ERR, Error

from aofnode.store.zsetindex import (
    zi_build, zi_delete, zi_first, zi_flat, zi_insert, zi_last, zi_pos,
)

__all__ = [
    "NOT_FLOAT_ERR", "RANGE_NOT_FLOAT_ERR", "LEX_RANGE_ERR", "format_score", "parse_score",
    "parse_score_bound", "parse_lex_bound", "Z_ADDED", "Z_CHANGED", "Z_SAME", "z_new", "z_set",
    "z_remove", "z_rank", "score_span", "lex_span", "z_from_scores",
]

NOT_FLOAT_ERR = Error(ERR, "value is not a valid float")
RANGE_NOT_FLOAT_ERR = Error(ERR, "min or max is not a float")
LEX_RANGE_ERR = Error(ERR, "min or max not valid string range item")

# What C's strtod reads in full: decimal (with exponent), inf/infinity, nan, hex floats.
_DECIMAL = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_HEX = re.compile(rb"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?\d+)?")
_SPECIAL = {b"inf": math.inf, b"infinity": math.inf, b"nan": math.nan}
_SCORE = itemgetter(0)
_MEMBER = itemgetter(1)


def _strtod(raw: bytes) -> float | None:
    """The double that strtod reads from all of ``raw``, else None (ERANGE included)."""
    if _DECIMAL.fullmatch(raw):
        value = float(raw)
        if math.isinf(value):
            return None  # overflow: strtod sets ERANGE
        if value == 0.0 and any(c in b"123456789" for c in raw.split(b"e")[0].split(b"E")[0]):
            return None  # underflow to zero: ERANGE
        return value
    if _HEX.fullmatch(raw):
        sign = -1.0 if raw[:1] == b"-" else 1.0
        body = raw.lstrip(b"+-")
        if b"p" not in body.lower():
            body += b"p0"
        try:
            return sign * float.fromhex(body.decode())
        except OverflowError:
            return None
    sign = -1.0 if raw[:1] == b"-" else 1.0
    special = _SPECIAL.get((raw[1:] if raw[:1] in (b"+", b"-") else raw).lower())
    return None if special is None else sign * special


def parse_score(raw: bytes) -> float | None:
    """A score or increment as Redis reads it (getDoubleFromObject), else None: no NaN."""
    value = _strtod(raw) if raw else None
    if value is None or value != value:
        return None
    return value + 0.0  # -0.0 becomes 0.0


def format_score(score: float) -> bytes:
    """Redis 7.0's text of a double: ``%.17g``, ``inf``, ``-inf``."""
    return b"%.17g" % score


def parse_score_bound(raw: bytes) -> tuple[float, bool] | None:
    """``min``/``max`` of a score range: (value, exclusive), or None if not a float."""
    exclusive = raw[:1] == b"("
    value = _strtod(raw[1:] if exclusive else raw) if raw else None
    if value is None or value != value:
        return None
    return value, exclusive


def parse_lex_bound(raw: bytes):
    """``min``/``max`` of a lex range: ``-``, ``+``, or (member, exclusive); None if invalid."""
    if raw == b"-" or raw == b"+":
        return raw
    if raw[:1] == b"[":
        return raw[1:], False
    if raw[:1] == b"(":
        return raw[1:], True
    return None


def z_new() -> tuple[dict, list]:
    return {}, []


def z_from_scores(scores: dict) -> tuple[dict, list]:
    """A sorted set value made from a member -> score dict (taken over, not copied)."""
    return scores, zi_build(sorted([(s, m) for m, s in scores.items()]))


Z_SAME, Z_CHANGED, Z_ADDED = 0, 1, 2


def z_set(z: tuple, member: bytes, score: float) -> int:
    """Give ``member`` ``score``: Z_ADDED (new member), Z_CHANGED or Z_SAME (already had it)."""
    scores, index = z
    old = scores.get(member)
    if old is not None:
        if old == score:
            return Z_SAME
        zi_delete(index, (old, member))
    scores[member] = score
    zi_insert(index, (score, member))
    return Z_ADDED if old is None else Z_CHANGED


def z_remove(z: tuple, member: bytes) -> bool:
    scores, index = z
    old = scores.pop(member, None)
    if old is None:
        return False
    zi_delete(index, (old, member))
    return True


def z_rank(z: tuple, member: bytes) -> int | None:
    score = z[0].get(member)
    return None if score is None else zi_pos(z[1], (score, member), len(z[0]))


def score_span(z: tuple, low: tuple[float, bool], high: tuple[float, bool]) -> tuple[int, int]:
    """[start, end) of the index positions whose score is within the bounds."""
    index, n = z[1], len(z[0])
    value, exclusive = low
    start = zi_pos(index, value, n, exclusive, _SCORE)
    value, exclusive = high
    end = zi_pos(index, value, n, not exclusive, _SCORE)
    return start, max(start, end)


def _gte_min(member: bytes, low) -> bool:
    if low == b"-":
        return True
    if low == b"+":
        return False
    return member > low[0] if low[1] else member >= low[0]


def _lte_max(member: bytes, high) -> bool:
    if high == b"+":
        return True
    if high == b"-":
        return False
    return member < high[0] if high[1] else member <= high[0]


def _lex_empty(low, high) -> bool:
    """Ranges that are empty whatever the members (Redis's zslIsInLexRange's first test)."""
    if low == b"+" or high == b"-":
        return True
    if low == b"-" or high == b"+":
        return False
    return low[0] > high[0] or (low[0] == high[0] and (low[1] or high[1]))


def lex_span(z: tuple, low, high, rev: bool = False) -> tuple[int, int]:
    """[start, end) of the index positions whose member is within lex bounds.

    BYLEX assumes every score is equal; then the members are in order and this bisects. When
    they are not, the result is Redis's for its small encoding (listpack), which walks from
    the head (or the tail for ``rev``) to the first member inside the bound it meets first,
    then takes members while they are inside the other bound.
    """
    index, n = z[1], len(z[0])
    if not index or _lex_empty(low, high):
        return 0, 0
    first, last = zi_first(index), zi_last(index)
    if first[0] == last[0]:  # sorted by score: the first and last equal, all equal
        start = 0 if low == b"-" else zi_pos(index, low[0], n, low[1], _MEMBER)
        end = n if high == b"+" else zi_pos(index, high[0], n, not high[1], _MEMBER)
        return start, max(start, end)
    if not _gte_min(last[1], low) or not _lte_max(first[1], high):
        return 0, 0  # Redis tests the tail against min and the head against max first
    return _lex_walk(zi_flat(index), low, high, rev)


def _lex_walk(index: list, low, high, rev: bool) -> tuple[int, int]:
    """``lex_span`` over mixed scores, on the flat items: Redis's listpack walk, O(n)."""
    n = len(index)
    if not rev:
        start = next((i for i in range(n) if _gte_min(index[i][1], low)), n)
        end = start
        while end < n and _lte_max(index[end][1], high):
            end += 1
        return start, end
    last = next((i for i in range(n - 1, -1, -1) if _lte_max(index[i][1], high)), -1)
    start = last + 1
    while start > 0 and _gte_min(index[start - 1][1], low):
        start -= 1
    return start, last + 1
