"""Commands that move keys between names and databases: RENAMENX COPY MOVE SWAPDB RANDOMKEY TIME.

Same mixin contract as ``strings.py``. Every AOF entry carries its own db, so a command that
touches two databases logs itself in the db it ran in, with the other db as its argument:
``MOVE k <dst>``, ``COPY a b DB <dst> [REPLACE]``, ``SWAPDB a b`` (logged with db 0, like
FLUSHALL: it names both). Replay runs them on the rebuilt state with nothing left to chance, so
they need no rewriting into other commands. RENAMENX logs ``RENAME``.
"""

from __future__ import annotations

import marshal
import time

from aofnode.protocol.errors import ERR, Error

from aofnode.store.keyspace import NUM_DBS
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, parse_ll

_INT_MAX = 2**31 - 1
_NO_SUCH_KEY = Error(ERR, "no such key")
_DB_RANGE = Error(ERR, "DB index is out of range")
_SAME_OBJECT = Error(ERR, "source and destination objects are the same")
_FIRST_DB = Error(ERR, "invalid first DB index")
_SECOND_DB = Error(ERR, "invalid second DB index")


_INT_RANGE = Error(ERR, f"value is out of range, value must between {-_INT_MAX - 1} and "
                        f"{_INT_MAX}")


def _parse_int(raw: bytes, err: Error | None = None) -> int | Error:
    """Redis's getIntFromObjectOrReply: a canonical integer that fits a C int, else its error
    (``err`` when given, as SWAPDB gives its own)."""
    n = parse_ll(raw)
    if n is None:
        return NOT_INT_ERR if err is None else err
    if not -_INT_MAX - 1 <= n <= _INT_MAX:
        return _INT_RANGE if err is None else err
    return n


def _copy_value(value):
    # A hash, list, set or sorted set is changed in place by later commands: the copy must not
    # share any of its containers (a sorted set holds a dict and lists of chunks). Bytes are
    # immutable and can be shared. marshal copies built-in containers in C, in one pass.
    return value if value.__class__ is bytes else marshal.loads(marshal.dumps(value))


class DbCommands:
    COMMANDS = {
        "RENAMENX": "_cmd_renamenx", "COPY": "_cmd_copy", "MOVE": "_cmd_move",
        "SWAPDB": "_cmd_swapdb", "RANDOMKEY": "_cmd_randomkey", "TIME": "_cmd_time",
    }

    def _cmd_renamenx(self, db, args):
        src, dst = args[0], args[1]
        ks = self.keyspace
        value = ks.lookup(db, src)
        if value is None:
            return _NO_SUCH_KEY
        if src == dst or ks.lookup(db, dst) is not None:
            return 0
        expire_ms = ks.get_expire(db, src)
        stamp = ks.access_stamp(db, src)
        ks.delete(db, src)
        ks.set(db, dst, value, expire_ms)
        if stamp is not None:
            ks.set_access_stamp(db, dst, stamp)  # the same object in Redis: its LFU counter too
        if not self._loading:
            self.propagated.append([db, "RENAME", src, dst])
        return 1

    def _cmd_move(self, db, args):
        key = args[0]
        dst = _parse_int(args[1])
        if dst.__class__ is Error:
            return dst
        if not 0 <= dst < NUM_DBS:
            return _DB_RANGE
        if dst == db:
            return _SAME_OBJECT
        ks = self.keyspace
        value = ks.lookup(db, key)
        if value is None or ks.lookup(dst, key) is not None:
            return 0
        expire_ms = ks.get_expire(db, key)
        stamp = ks.access_stamp(db, key)
        ks.delete(db, key)
        ks.set(dst, key, value, expire_ms)
        if stamp is not None:
            ks.set_access_stamp(dst, key, stamp)
        if not self._loading:
            self.propagated.append([db, "MOVE", key, b"%d" % dst])
        return 1

    def _cmd_copy(self, db, args):
        src, dst = args[0], args[1]
        dst_db, replace = db, False
        i, n = 2, len(args)
        while i < n:
            opt = args[i].upper()
            if opt == b"REPLACE":
                replace = True
            elif opt == b"DB" and i + 1 < n:
                dst_db = _parse_int(args[i + 1])
                if dst_db.__class__ is Error:
                    return dst_db
                if not 0 <= dst_db < NUM_DBS:
                    return _DB_RANGE
                i += 1
            else:
                return SYNTAX_ERR
            i += 1
        if dst_db == db and src == dst:
            return _SAME_OBJECT
        ks = self.keyspace
        value = ks.lookup(db, src)
        if value is None:
            self.keyspace_misses += 1
            return 0
        self.keyspace_hits += 1
        expire_ms = ks.get_expire(db, src)
        replaced = ks.lookup(dst_db, dst) is not None
        if replaced:
            if not replace:
                return 0
            ks.delete(dst_db, dst)
        ks.set(dst_db, dst, _copy_value(value), expire_ms)
        if not self._loading:
            entry = [db, "COPY", src, dst, b"DB", b"%d" % dst_db]
            if replaced:
                entry.append(b"REPLACE")
            self.propagated.append(entry)
        return 1

    def _cmd_swapdb(self, db, args):
        a = _parse_int(args[0], _FIRST_DB)
        if a.__class__ is Error:
            return a
        b = _parse_int(args[1], _SECOND_DB)
        if b.__class__ is Error:
            return b
        if not (0 <= a < NUM_DBS and 0 <= b < NUM_DBS):
            return _DB_RANGE
        if a != b:
            self.keyspace.swap(a, b)
            if not self._loading:
                self.propagated.append([0, "SWAPDB", b"%d" % a, b"%d" % b])
        return "OK"

    def _cmd_randomkey(self, db, args):
        """A random key, or nil. A pick whose TTL passed is deleted (and logged), then another
        is drawn, as Redis: the loop ends because each miss removes a key."""
        ks = self.keyspace
        while True:
            key = ks.random_key(db, self.command_rng)
            if key is None:
                return None
            if ks.lookup_notouch(db, key) is not None:  # Redis's dbRandomKey touches nothing
                return key

    def _cmd_time(self, db, args):
        """TIME: unix seconds and microseconds, as two bulk strings (Redis's reply)."""
        micros = time.time_ns() // 1000
        return [b"%d" % (micros // 1_000_000), b"%d" % (micros % 1_000_000)]
