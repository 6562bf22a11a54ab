"""Sorted set range commands: ZRANGE (BYSCORE, BYLEX, REV, LIMIT, WITHSCORES), ZRANGEBYSCORE,
ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX, ZREVRANGE, ZRANGESTORE, and the range parsing and
selection that ZREMRANGEBY* (``zsets.py``) shares.

Same mixin contract as ``strings.py``; values as ``zsetcore.py``. The older commands are ZRANGE
with BY and REV preset, so that their keyword is then a syntax error, as Redis parses them.
ZRANGESTORE logs itself (its result depends only on the state it replays on), or ``DEL`` of
its destination when the result is empty and it existed.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, parse_ll
from aofnode.store.typed import ZSET, CollectionBase, index_range
from aofnode.store.zsetindex import zi_slice
from aofnode.store.zsetcore import (
    LEX_RANGE_ERR, RANGE_NOT_FLOAT_ERR, format_score, lex_span, parse_lex_bound,
    parse_score_bound, score_span, z_from_scores,
)

__all__ = ["RANK", "SCORE", "LEX", "ZSetRangeCommands", "pairs_flat", "parse_range", "span"]

RANK, SCORE, LEX = "rank", "score", "lex"
_LIMIT_ONLY = Error(ERR, "syntax error, LIMIT is only supported in combination with either "
                         "BYSCORE or BYLEX")
_WITHSCORES_LEX = Error(ERR, "syntax error, WITHSCORES not supported in combination with BYLEX")


def pairs_flat(items) -> list:
    """``[(score, member), ...]`` as the flat WITHSCORES reply ``[member, score, ...]``."""
    out = []
    for score, member in items:
        out.append(member)
        out.append(format_score(score))
    return out


class ZSetRangeCommands(CollectionBase):
    COMMANDS = {
        "ZRANGE": "_cmd_zrange", "ZRANGEBYSCORE": "_cmd_zrangebyscore",
        "ZREVRANGEBYSCORE": "_cmd_zrevrangebyscore", "ZRANGEBYLEX": "_cmd_zrangebylex",
        "ZREVRANGEBYLEX": "_cmd_zrevrangebylex", "ZREVRANGE": "_cmd_zrevrange",
        "ZRANGESTORE": "_cmd_zrangestore",
    }

    def _cmd_zrange(self, db, args):
        return self._zrange(db, args, None, None, False)

    def _cmd_zrangebyscore(self, db, args):
        return self._zrange(db, args, SCORE, False, False)

    def _cmd_zrevrangebyscore(self, db, args):
        return self._zrange(db, args, SCORE, True, False)

    def _cmd_zrangebylex(self, db, args):
        return self._zrange(db, args, LEX, False, False)

    def _cmd_zrevrangebylex(self, db, args):
        return self._zrange(db, args, LEX, True, False)

    def _cmd_zrevrange(self, db, args):
        return self._zrange(db, args, RANK, True, False)

    def _cmd_zrangestore(self, db, args):
        result = self._zrange(db, args[1:], None, None, True)
        if result.__class__ is Error:
            return result
        value = z_from_scores({m: s for s, m in result})
        return self._store_at(db, "ZRANGESTORE", args, value, len(result))

    def _zrange(self, db, args, by, rev, store):
        """The range commands: reply list, or for ZRANGESTORE (``store``) the (score, member)
        items; ``by``/``rev`` preset by the older commands (their keyword is then an error)."""
        opts = _range_options(args, by, rev, store)
        if opts.__class__ is Error:
            return opts
        by, rev, limit, withscores = opts
        low_raw, high_raw = (args[2], args[1]) if rev and by != RANK else (args[1], args[2])
        bounds = parse_range(by, low_raw, high_raw)
        if bounds.__class__ is Error:
            return bounds
        z, err = self._read_as(db, args[0], ZSET)
        if z is None:
            return err or []
        items = _select(z, by, rev, bounds, limit)
        if store:
            return items
        return pairs_flat(items) if withscores else [m for _, m in items]


def _range_options(args, by, rev, store):
    """(by, rev, limit, withscores) from the options after ``key min max``, or the error."""
    limit, withscores = None, False
    by_preset = by is not None
    i, n = 3, len(args)
    while i < n:
        opt = args[i].upper()
        if opt == b"WITHSCORES" and not store:
            withscores = True
        elif opt == b"LIMIT" and n - i - 1 >= 2:
            offset, count = parse_ll(args[i + 1]), parse_ll(args[i + 2])
            if offset is None or count is None:
                return NOT_INT_ERR
            limit = (offset, count)
            i += 2
        elif opt == b"REV" and rev is None:
            rev = True
        elif opt == b"BYSCORE" and not by_preset and by is None:
            by = SCORE
        elif opt == b"BYLEX" and not by_preset and by is None:
            by = LEX
        else:
            return SYNTAX_ERR
        i += 1
    by = by or RANK
    if limit is not None and by == RANK:
        return _LIMIT_ONLY
    if withscores and by == LEX:
        return _WITHSCORES_LEX
    return by, bool(rev), limit, withscores


def parse_range(by, low_raw, high_raw):
    """The bounds of a rank, score or lex range, or its error."""
    if by == RANK:
        low, high = parse_ll(low_raw), parse_ll(high_raw)
        return NOT_INT_ERR if low is None or high is None else (low, high)
    if by == SCORE:
        low, high = parse_score_bound(low_raw), parse_score_bound(high_raw)
        return RANGE_NOT_FLOAT_ERR if low is None or high is None else (low, high)
    low, high = parse_lex_bound(low_raw), parse_lex_bound(high_raw)
    return LEX_RANGE_ERR if low is None or high is None else (low, high)


def span(z, by, bounds, rev=False) -> tuple[int, int]:
    """[start, end) of the positions of sorted set ``z``'s index in the range (rank bounds from
    the low end)."""
    if by == RANK:
        ranks = index_range(bounds[0], bounds[1], len(z[0]))
        return (0, 0) if ranks is None else (ranks[0], ranks[1] + 1)
    if by == SCORE:
        return score_span(z, *bounds)
    return lex_span(z, bounds[0], bounds[1], rev)


def _select(z, by, rev, bounds, limit) -> list:
    """The (score, member) items of a range of sorted set ``z``, in reply order, LIMIT
    applied."""
    index, n = z[1], len(z[0])
    if by == RANK and rev:
        ranks = index_range(bounds[0], bounds[1], n)
        if ranks is None:
            return []
        return zi_slice(index, n - 1 - ranks[1], n - ranks[0], n)[::-1]
    start, end = span(z, by, bounds, rev)
    items = zi_slice(index, start, end, n)
    if rev:
        items.reverse()
    if limit is not None:
        offset, count = limit
        if offset < 0:
            return []
        items = items[offset:] if count < 0 else items[offset:offset + count]
    return items
