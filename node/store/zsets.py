"""Sorted set commands: ZADD ZINCRBY ZSCORE ZMSCORE ZCARD ZCOUNT ZLEXCOUNT ZRANK ZREVRANK ZREM
ZREMRANGEBYRANK/SCORE/LEX ZPOPMIN ZPOPMAX ZMPOP. The range commands are in ``zsetranges.py``;
the set algebra, ZRANDMEMBER and ZSCAN in ``zsetalgebra.py``.

Same mixin contract as ``strings.py``; the value and the score rules are ``zsetcore.py``'s. A
sorted set that loses its last member is deleted, TTL included.

Propagation (docs/commands.md): ZADD, ZINCRBY and ZADD INCR log ``ZADD key score member`` with
the resulting score of each member that was added or changed (``%.17g`` reads back as the same
double), so NX/XX/GT/LT/INCR are never evaluated again; ZREM logs the members removed; pops
(ZMPOP too) log ``ZPOPMIN``/``ZPOPMAX key <count popped>``; ZREMRANGEBY* log themselves
(their effect depends only on the state they replay on).
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.memory import ZMEMBER_OVERHEAD
from aofnode.store.strings import SYNTAX_ERR
from aofnode.store.typed import ZSET, CollectionBase, parse_count
from aofnode.store.zsetindex import zi_head, zi_slice, zi_tail
from aofnode.store.zsetcore import (
    LEX_RANGE_ERR, NOT_FLOAT_ERR, Z_CHANGED, Z_SAME, RANGE_NOT_FLOAT_ERR, format_score, lex_span,
    parse_lex_bound, parse_score, parse_score_bound, score_span, z_new, z_rank, z_remove, z_set,
)
from aofnode.store.zsetranges import LEX, RANK, SCORE, pairs_flat, parse_range, span

__all__ = ["ZSetCommands"]

_INCR_PAIR = Error(ERR, "INCR option supports a single increment-element pair")
_NX_XX = Error(ERR, "XX and NX options at the same time are not compatible")
_GT_LT_NX = Error(ERR, "GT, LT, and/or NX options at the same time are not compatible")
_NAN = Error(ERR, "resulting score is not a number (NaN)")
_ZADD_FLAGS = (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR")
_ENDS = {b"MIN": True, b"MAX": False}


def _zadd_score(old, score, flags):
    """The score ZADD gives a member whose score is ``old`` (None: absent), None if a flag
    skips it, or the NaN error of an increment."""
    if old is None:
        return None if b"XX" in flags else score
    if b"NX" in flags:
        return None
    if b"INCR" in flags:
        score += old
        if score != score:
            return _NAN
        score += 0.0
    if (b"GT" in flags and score <= old) or (b"LT" in flags and score >= old):
        return None
    return score


class ZSetCommands(CollectionBase):
    COMMANDS = {
        "ZADD": "_cmd_zadd", "ZINCRBY": "_cmd_zincrby", "ZSCORE": "_cmd_zscore",
        "ZMSCORE": "_cmd_zmscore", "ZCARD": "_cmd_zcard", "ZCOUNT": "_cmd_zcount",
        "ZLEXCOUNT": "_cmd_zlexcount", "ZRANK": "_cmd_zrank", "ZREVRANK": "_cmd_zrevrank",
        "ZREM": "_cmd_zrem", "ZREMRANGEBYRANK": "_cmd_zremrangebyrank",
        "ZREMRANGEBYSCORE": "_cmd_zremrangebyscore", "ZREMRANGEBYLEX": "_cmd_zremrangebylex",
        "ZPOPMIN": "_cmd_zpopmin", "ZPOPMAX": "_cmd_zpopmax", "ZMPOP": "_cmd_zmpop",
    }

    # --- ZADD --------------------------------------------------------------------------------
    def _cmd_zadd(self, db, args):
        flags, i = set(), 1
        while i < len(args) and args[i].upper() in _ZADD_FLAGS:
            flags.add(args[i].upper())
            i += 1
        rest = args[i:]
        if not rest or len(rest) % 2:
            return SYNTAX_ERR
        if b"INCR" in flags and len(rest) > 2:
            return _INCR_PAIR
        if b"NX" in flags and b"XX" in flags:
            return _NX_XX
        if len(flags & {b"NX", b"GT", b"LT"}) > 1:
            return _GT_LT_NX
        scores = [parse_score(raw) for raw in rest[::2]]
        if None in scores:
            return NOT_FLOAT_ERR
        return self._zadd(db, args[0], flags, list(zip(scores, rest[1::2])))

    def _cmd_zincrby(self, db, args):
        increment = parse_score(args[1])
        if increment is None:
            return NOT_FLOAT_ERR
        return self._zadd(db, args[0], {b"INCR"}, [(increment, args[2])])

    def _zadd(self, db, key, flags, pairs):
        z, err = self._write_as(db, key, ZSET)
        if err is not None:
            return err
        incr = b"INCR" in flags
        if z is None and b"XX" in flags:
            return None if incr else 0
        new_key = z is None
        if new_key:
            z = z_new()
        added = changed = grown = 0
        processed = None  # INCR's reply: the score of the member, unless a flag skipped it
        logged = []
        for score, member in pairs:
            score = _zadd_score(z[0].get(member), score, flags)
            if score is None:
                continue
            if score.__class__ is Error:
                return score
            processed = score
            outcome = z_set(z, member, score)
            if outcome == Z_SAME:
                continue
            if outcome == Z_CHANGED:
                changed += 1
            else:
                added += 1
                grown += len(member) + ZMEMBER_OVERHEAD
            logged += (format_score(score), member)
        if new_key and z[0]:
            self.keyspace.set(db, key, z)
        elif grown:
            self.keyspace.account(db, grown)
        if logged:
            self._log(db, "ZADD", key, *logged)
        if incr:
            return None if processed is None else format_score(processed)
        return added + changed if b"CH" in flags else added

    # --- reads -------------------------------------------------------------------------------
    def _cmd_zscore(self, db, args):
        z, err = self._read_as(db, args[0], ZSET)
        if z is None:
            return err
        score = z[0].get(args[1])
        return None if score is None else format_score(score)

    def _cmd_zmscore(self, db, args):
        z, err = self._read_as(db, args[0], ZSET)
        if err is not None:
            return err
        get = z[0].get if z is not None else {}.get
        out = []
        for member in args[1:]:
            score = get(member)
            out.append(None if score is None else format_score(score))
        return out

    def _cmd_zcard(self, db, args):
        z, err = self._read_as(db, args[0], ZSET)
        return len(z[0]) if z is not None else (err or 0)

    def _cmd_zcount(self, db, args):
        low, high = parse_score_bound(args[1]), parse_score_bound(args[2])
        if low is None or high is None:
            return RANGE_NOT_FLOAT_ERR
        z, err = self._read_as(db, args[0], ZSET)
        if z is None:
            return err or 0
        start, end = score_span(z, low, high)
        return end - start

    def _cmd_zlexcount(self, db, args):
        low, high = parse_lex_bound(args[1]), parse_lex_bound(args[2])
        if low is None or high is None:
            return LEX_RANGE_ERR
        z, err = self._read_as(db, args[0], ZSET)
        if z is None:
            return err or 0
        start, end = lex_span(z, low, high)
        return end - start

    def _cmd_zrank(self, db, args):
        z, err = self._read_as(db, args[0], ZSET)
        return err if z is None else z_rank(z, args[1])

    def _cmd_zrevrank(self, db, args):
        z, err = self._read_as(db, args[0], ZSET)
        if z is None:
            return err
        rank = z_rank(z, args[1])
        return None if rank is None else len(z[0]) - 1 - rank

    # --- removal -----------------------------------------------------------------------------
    def _zremove(self, db, key, z, members):
        """Remove ``members`` (all present) from a stored sorted set; deletes it when empty."""
        for member in members:
            z_remove(z, member)
        self.keyspace.account(db, -sum(len(m) + ZMEMBER_OVERHEAD for m in members))
        if not z[0]:
            self.keyspace.delete(db, key)

    def _cmd_zrem(self, db, args):
        key = args[0]
        z, err = self._write_as(db, key, ZSET)
        if z is None:
            return err or 0
        removed = [m for m in dict.fromkeys(args[1:]) if m in z[0]]
        if removed:
            self._zremove(db, key, z, removed)
            self._log(db, "ZREM", key, *removed)
        return len(removed)

    def _cmd_zremrangebyrank(self, db, args):
        return self._zremrange(db, "ZREMRANGEBYRANK", args, RANK)

    def _cmd_zremrangebyscore(self, db, args):
        return self._zremrange(db, "ZREMRANGEBYSCORE", args, SCORE)

    def _cmd_zremrangebylex(self, db, args):
        return self._zremrange(db, "ZREMRANGEBYLEX", args, LEX)

    def _zremrange(self, db, name, args, by):
        bounds = parse_range(by, args[1], args[2])
        if bounds.__class__ is Error:
            return bounds
        key = args[0]
        z, err = self._write_as(db, key, ZSET)
        if z is None:
            return err or 0
        start, end = span(z, by, bounds)
        if end <= start:
            return 0
        doomed = [member for _, member in zi_slice(z[1], start, end, len(z[0]))]
        self._zremove(db, key, z, doomed)
        self._log(db, name, *args)
        return len(doomed)

    # --- pops --------------------------------------------------------------------------------
    def _cmd_zpopmin(self, db, args):
        return self._zpop_command(db, args, True)

    def _cmd_zpopmax(self, db, args):
        return self._zpop_command(db, args, False)

    def _zpop_command(self, db, args, lowest):
        if len(args) > 2:
            return SYNTAX_ERR
        count = 1
        if len(args) == 2:
            count = parse_count(args[1])
            if count.__class__ is Error:
                return count
        z, err = self._write_as(db, args[0], ZSET)
        if z is None:
            return err or []
        if count == 0:
            return []
        return pairs_flat(self._zpop(db, args[0], z, count, lowest))

    def _zpop(self, db, key, z, count, lowest):
        """Pop up to ``count`` (>= 1) lowest or highest; logs; [(score, member)] in pop order."""
        popped = zi_head(z[1], count) if lowest else zi_tail(z[1], count)
        self._zremove(db, key, z, [m for _, m in popped])
        self._log(db, "ZPOPMIN" if lowest else "ZPOPMAX", key, b"%d" % len(popped))
        return popped

    def _cmd_zmpop(self, db, args):
        parsed = self._mpop_args(args, _ENDS)
        if parsed.__class__ is Error:
            return parsed
        keys, lowest, count = parsed
        for key in keys:
            z, err = self._write_as(db, key, ZSET)
            if err is not None:
                return err
            if z is not None:
                popped = self._zpop(db, key, z, count, lowest)
                return [key, [[m, format_score(s)] for s, m in popped]]
        return None
