"""More string commands: GETEX SETEX PSETEX GETSET MSETNX SETRANGE GETRANGE SUBSTR INCRBYFLOAT LCS.

Same mixin contract as ``strings.py``. Propagation (docs/commands.md has the table):
* GETEX is never logged as itself: ``PEXPIREAT k <abs ms>``, ``PERSIST k`` or ``DEL k`` (an
  EXAT/PXAT in the past), as Redis propagates it.
* SETEX/PSETEX log ``SET k v PXAT <abs ms>``; GETSET ``SET k v``; MSETNX ``MSET ...``.
* SETRANGE logs itself, as APPEND does: the result can be a large value.
* INCRBYFLOAT logs the result, ``SET k <new> KEEPTTL``, never the increment: a replay must not
  depend on how a float is added or printed.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.floats import add_long_double, format_human, parse_long_double
from aofnode.store.lcs import lcs_reply
from aofnode.store.strings import (
    EXPIRE_OPTIONS, NOT_INT_ERR, SYNTAX_ERR, WRONGTYPE_ERR, arity_error,
    expire_at_ms, parse_ll,
)

# Redis's proto-max-bulk-len default: the largest string SETRANGE (and SETBIT) may make.
MAX_STRING_BYTES = 512 * 1024 * 1024

_OFFSET_RANGE_ERR = Error(ERR, "offset is out of range")
_TOO_BIG_ERR = Error(ERR, "string exceeds maximum allowed size (proto-max-bulk-len)")
_NOT_FLOAT_ERR = Error(ERR, "value is not a valid float")
_NAN_ERR = Error(ERR, "increment would produce NaN or Infinity")
class StringOpCommands:
    COMMANDS = {
        "GETEX": "_cmd_getex", "SETEX": "_cmd_setex", "PSETEX": "_cmd_psetex",
        "GETSET": "_cmd_getset", "MSETNX": "_cmd_msetnx", "SETRANGE": "_cmd_setrange",
        "GETRANGE": "_cmd_getrange", "SUBSTR": "_cmd_getrange",
        "INCRBYFLOAT": "_cmd_incrbyfloat", "LCS": "_cmd_lcs",
    }

    def _cmd_setex(self, db, args):
        return self._set_with_options(db, [args[0], args[2], b"EX", args[1]], "setex")

    def _cmd_psetex(self, db, args):
        return self._set_with_options(db, [args[0], args[2], b"PX", args[1]], "psetex")

    def _getex_options(self, args):
        """(expire kind or None, its argument, persist) or SYNTAX_ERR (Redis's rules: one kind
        of expire, repeated kinds take the last, PERSIST excludes them all)."""
        kind = raw = None
        persist = False
        i, n = 1, len(args)
        while i < n:
            opt = args[i].upper()
            if opt == b"PERSIST" and kind is None:
                persist = True
            elif opt in EXPIRE_OPTIONS and not persist and kind in (None, opt) and i + 1 < n:
                kind, raw = opt, args[i + 1]
                i += 1
            else:
                return SYNTAX_ERR
            i += 1
        return kind, raw, persist

    def _cmd_getex(self, db, args):
        parsed = self._getex_options(args)
        if parsed is SYNTAX_ERR:
            return parsed
        kind, raw, persist = parsed
        key = args[0]
        value, err = self._read_string(db, key)
        if value is None:
            return err
        ks = self.keyspace
        if kind is not None:
            now = self.clock_ms()
            scale, relative = EXPIRE_OPTIONS[kind]
            when = expire_at_ms(raw, scale, relative, now, "getex")
            if when.__class__ is Error:
                return when
            if not relative and when <= now and not self._loading:
                ks.delete(db, key)
                self.propagated.append([db, "DEL", key])
            else:
                ks.set_expire(db, key, when)
                if not self._loading:
                    self.propagated.append([db, "PEXPIREAT", key, b"%d" % when])
        elif persist and ks.persist(db, key) and not self._loading:
            self.propagated.append([db, "PERSIST", key])
        return value

    def _cmd_getset(self, db, args):
        key, value = args[0], args[1]
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is None:
            self.keyspace_misses += 1
        else:
            self.keyspace_hits += 1
            if old.__class__ is not bytes:
                return WRONGTYPE_ERR
        ks.set(db, key, value)
        if not self._loading:
            self.propagated.append([db, "SET", key, value])
        return old

    def _cmd_msetnx(self, db, args):
        n = len(args)
        if n % 2:
            return arity_error("MSETNX")
        ks = self.keyspace
        if any(ks.lookup(db, args[i]) is not None for i in range(0, n, 2)):
            return 0
        for i in range(0, n, 2):
            ks.set(db, args[i], args[i + 1])
        if not self._loading:
            self.propagated.append([db, "MSET", *args])
        return 1

    def _cmd_setrange(self, db, args):
        key, piece = args[0], args[2]
        offset = parse_ll(args[1])
        if offset is None:
            return NOT_INT_ERR
        if offset < 0:
            return _OFFSET_RANGE_ERR
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is not None and old.__class__ is not bytes:
            return WRONGTYPE_ERR
        if not piece:
            return 0 if old is None else len(old)  # nothing to write: nothing changes
        if offset + len(piece) > MAX_STRING_BYTES:
            return _TOO_BIG_ERR
        old = old or b""
        if len(old) < offset:
            new = old + bytes(offset - len(old)) + piece
        else:
            new = old[:offset] + piece + old[offset + len(piece):]
        ks.set(db, key, new, keep_ttl=True)
        if not self._loading:
            self.propagated.append([db, "SETRANGE", key, args[1], piece])
        return len(new)

    def _cmd_getrange(self, db, args):
        start, end = parse_ll(args[1]), parse_ll(args[2])
        if start is None or end is None:
            return NOT_INT_ERR
        value, err = self._read_string(db, args[0])
        if value is None:
            return b"" if err is None else err
        size = len(value)
        if start < 0 and end < 0 and start > end:
            return b""
        if start < 0:
            start = max(0, size + start)
        if end < 0:
            end = max(0, size + end)
        end = min(end, size - 1)
        if start > end or size == 0:
            return b""
        return value[start:end + 1]

    def _cmd_incrbyfloat(self, db, args):
        key = args[0]
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is not None and old.__class__ is not bytes:
            return WRONGTYPE_ERR
        current = parse_long_double(old) if old is not None else 0
        if current is None:
            return _NOT_FLOAT_ERR
        incr = parse_long_double(args[1])
        if incr is None:
            return _NOT_FLOAT_ERR
        total = add_long_double(current, incr)
        if total is None:
            return _NAN_ERR
        new = format_human(total)
        ks.set(db, key, new, keep_ttl=True)
        if not self._loading:
            self.propagated.append([db, "SET", key, new, b"KEEPTTL"])
        return new

    def _cmd_lcs(self, db, args):
        lookup = self.keyspace.lookup
        a, b = lookup(db, args[0]), lookup(db, args[1])
        if (a is not None and a.__class__ is not bytes) or (
                b is not None and b.__class__ is not bytes):
            return Error(ERR, "The specified keys must contain string values")
        return lcs_reply(a or b"", b or b"", args[2:])
