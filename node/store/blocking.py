"""Blocking pops, the keyspace's half: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN BZPOPMAX
BZMPOP.

Design
------
* A blocking pop is parsed once into a ``BlockSpec`` (what to pop, from which keys, how long to
  wait), with Redis 7.0's checks in Redis's order: BLMPOP/BZMPOP read numkeys, the side and
  COUNT before the timeout, the others the timeout first.
* If one of its keys holds something to pop now, it is served at once by the non-blocking
  commands' own code, so it is logged exactly as they are: ``LPOP``/``RPOP key <count>``,
  ``LMOVE``, ``ZPOPMIN``/``ZPOPMAX key <count>`` (docs/commands.md). A key of the wrong type
  is ``WRONGTYPE`` at once, as in Redis.
* Otherwise the executor's ``block_mode`` decides: ``None`` (replay, a bare executor, later
  MULTI) answers as a timeout would, nil; ``True`` raises ``WouldBlock`` with the spec, which
  the log actor catches to park the client (node/log/blocking.py); an ``Error`` (the
  blocked-client limit is reached) is the reply.
* ``serve_blocked`` pops for a waiting client from the one key that became ready, as Redis
  7.0's ``serveClientsBlockedOn*Key`` do: ``EMPTY`` if the key holds nothing (no later waiter
  can be served either), ``OTHER_KIND`` if it holds the other kind (a list for a BZPOPMIN
  waiter: that waiter keeps waiting, the next one may be served).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import SYNTAX_ERR, parse_ll
from aofnode.store.typed import COUNT_POSITIVE_ERR, LIST, ZSET, CollectionBase, type_name
from aofnode.store.zsetcore import format_score

__all__ = ["BlockSpec", "BlockingCommands", "WouldBlock", "EMPTY", "OTHER_KIND", "parse_timeout"]

NOT_FLOAT_TIMEOUT = Error(ERR, "timeout is not a float or out of range")
NEGATIVE_TIMEOUT = Error(ERR, "timeout is negative")
_SIDES = {b"LEFT": True, b"RIGHT": False}
_ENDS = {b"MIN": True, b"MAX": False}
# What strtold reads (Redis's string2ld): a decimal or hex float, or inf/infinity; nan and
# anything with spaces or trailing bytes is not a float.
_DECIMAL = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?")
_INF = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_LLONG_MAX = (1 << 63) - 1
# A long double's decimal exponent range: past it strtold fails with ERANGE (not a float).
_MAX_EXP, _MIN_EXP = 4932, -4950

EMPTY = object()  # serve_blocked: the key holds nothing to pop
OTHER_KIND = object()  # serve_blocked: the key holds the other kind (list / sorted set)


class WouldBlock(Exception):
    """Nothing to pop now and the caller may block: ``spec`` says what the client waits for."""

    def __init__(self, spec: "BlockSpec") -> None:
        super().__init__(spec.name)
        self.spec = spec


class BlockSpec:
    """One parsed blocking pop. ``left``: the list side or, for a sorted set, the lowest end;
    ``count``: None for the single-element forms; ``dst``/``left_to``: BLMOVE's target."""

    __slots__ = ("name", "kind", "keys", "timeout_ms", "left", "count", "dst", "left_to")

    def __init__(self, name, kind, keys, timeout_ms, left, count=None, dst=None, left_to=True):
        self.name = name
        self.kind = kind
        self.keys = tuple(dict.fromkeys(keys))  # a key named twice waits once, as Redis
        self.timeout_ms = timeout_ms  # 0: no timeout
        self.left = left
        self.count = count
        self.dst = dst
        self.left_to = left_to


def parse_timeout(raw: bytes) -> int | Error:
    """A timeout in seconds as Redis 7.0 reads it: milliseconds, rounded up (0.0001 is 1 ms,
    -0.0001 is 0: forever); an overflow is Redis's 'negative' (its cast gives LLONG_MIN)."""
    if _DECIMAL.fullmatch(raw):
        try:
            value = Decimal(raw.decode())
        except InvalidOperation:
            return NOT_FLOAT_TIMEOUT
        if value and not _MIN_EXP <= value.adjusted() <= _MAX_EXP:
            return NOT_FLOAT_TIMEOUT
        ms = math.ceil(value * 1000)
    elif _HEX.fullmatch(raw):
        try:
            ms = math.ceil(float.fromhex(raw.decode()) * 1000)
        except (ValueError, OverflowError):
            return NOT_FLOAT_TIMEOUT
    elif _INF.fullmatch(raw):
        return NEGATIVE_TIMEOUT
    else:
        return NOT_FLOAT_TIMEOUT
    if ms < 0 or ms > _LLONG_MAX:
        return NEGATIVE_TIMEOUT
    return ms


def _multi_pop_options(args, ends):
    """(keys, side, count) of BLMPOP/BZMPOP after the timeout (``args[1:]``), or the error."""
    numkeys = parse_ll(args[1])
    if numkeys is None or numkeys <= 0:
        return Error(ERR, "numkeys should be greater than 0")
    where_at = 2 + numkeys
    if where_at >= len(args):
        return SYNTAX_ERR
    side = ends.get(args[where_at].upper())
    if side is None:
        return SYNTAX_ERR
    count, rest = 1, args[where_at + 1:]
    if len(rest) >= 2 and rest[0].upper() == b"COUNT":  # Redis reads COUNT, then what follows
        count = parse_ll(rest[1])
        if count is None or count <= 0:
            return COUNT_POSITIVE_ERR
        if len(rest) > 2:
            return SYNTAX_ERR
    elif rest:
        return SYNTAX_ERR
    return args[2:where_at], side, count


class BlockingCommands(CollectionBase):
    COMMANDS = {
        "BLPOP": "_cmd_blpop", "BRPOP": "_cmd_brpop", "BLMOVE": "_cmd_blmove",
        "BRPOPLPUSH": "_cmd_brpoplpush", "BLMPOP": "_cmd_blmpop", "BZPOPMIN": "_cmd_bzpopmin",
        "BZPOPMAX": "_cmd_bzpopmax", "BZMPOP": "_cmd_bzmpop",
    }

    # See the module docstring: None (never block), True (raise WouldBlock) or an Error.
    block_mode = None

    def _cmd_blpop(self, db, args):
        return self._bpop_simple(db, args, "BLPOP", LIST, True)

    def _cmd_brpop(self, db, args):
        return self._bpop_simple(db, args, "BRPOP", LIST, False)

    def _cmd_bzpopmin(self, db, args):
        return self._bpop_simple(db, args, "BZPOPMIN", ZSET, True)

    def _cmd_bzpopmax(self, db, args):
        return self._bpop_simple(db, args, "BZPOPMAX", ZSET, False)

    def _bpop_simple(self, db, args, name, kind, left):
        timeout = parse_timeout(args[-1])
        if timeout.__class__ is Error:
            return timeout
        return self._bpop(db, BlockSpec(name, kind, args[:-1], timeout, left))

    def _cmd_blmove(self, db, args):
        left_from, left_to = _SIDES.get(args[2].upper()), _SIDES.get(args[3].upper())
        if left_from is None or left_to is None:
            return SYNTAX_ERR
        return self._blmove(db, args, "BLMOVE", args[4], left_from, left_to)

    def _cmd_brpoplpush(self, db, args):
        return self._blmove(db, args, "BRPOPLPUSH", args[2], False, True)

    def _blmove(self, db, args, name, raw_timeout, left_from, left_to):
        timeout = parse_timeout(raw_timeout)
        if timeout.__class__ is Error:
            return timeout
        return self._bpop(db, BlockSpec(name, LIST, args[:1], timeout, left_from, None, args[1],
                                        left_to))

    def _cmd_blmpop(self, db, args):
        return self._bpop_multi(db, args, "BLMPOP", LIST, _SIDES)

    def _cmd_bzmpop(self, db, args):
        return self._bpop_multi(db, args, "BZMPOP", ZSET, _ENDS)

    def _bpop_multi(self, db, args, name, kind, ends):
        opts = _multi_pop_options(args, ends)
        if opts.__class__ is Error:
            return opts
        timeout = parse_timeout(args[0])
        if timeout.__class__ is Error:
            return timeout
        keys, side, count = opts
        return self._bpop(db, BlockSpec(name, kind, keys, timeout, side, count))

    def _bpop(self, db, spec):
        """Serve ``spec`` from its first key that holds something, else block (or not)."""
        for key in spec.keys:
            value, err = self._write_as(db, key, spec.kind)
            if err is not None:
                return err
            if value is not None:
                return self._pop_for(db, spec, key, value)
        mode = self.block_mode
        if mode is True:
            raise WouldBlock(spec)
        return mode  # None: answered as a timeout; or the limit's error

    def serve_blocked(self, db, spec, key):
        """A waiting client's pop from ``key``, which a write may have made ready: its reply,
        or EMPTY / OTHER_KIND (module docstring)."""
        value = self.keyspace.lookup_write(db, key)
        if value is None:
            return EMPTY
        if type_name(value) != spec.kind:
            return OTHER_KIND
        return self._pop_for(db, spec, key, value)

    def _pop_for(self, db, spec, key, value):
        """Pop from ``key`` (a non-empty ``spec.kind``) as ``spec`` asks; logged as the
        non-blocking command would be."""
        if spec.dst is not None:
            return self._move(db, key, spec.dst, spec.left, spec.left_to)
        if spec.kind is LIST:
            popped = self._list_pop(db, key, value, spec.count or 1, spec.left)
            return [key, popped[0]] if spec.count is None else [key, popped]
        popped = self._zpop(db, key, value, spec.count or 1, spec.left)
        if spec.count is None:
            score, member = popped[0]
            return [key, member, format_score(score)]
        return [key, [[m, format_score(s)] for s, m in popped]]
