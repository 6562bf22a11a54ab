"""Hash commands: HSET HMSET HSETNX HGET HMGET HDEL HGETALL HLEN HEXISTS HSTRLEN HINCRBY
HINCRBYFLOAT HKEYS HVALS HRANDFIELD HSCAN.

Same mixin contract as ``strings.py``. A hash that loses its last field is deleted, TTL
included (Redis does the same). HMSET and HSETNX are logged as ``HSET``; HINCRBY and
HINCRBYFLOAT as ``HSET k f <new>`` (the result, never the increment). Fields of a stored hash
change only through ``Keyspace.hash_set_pairs`` / ``hash_delete``, which keep ``used_memory``
in step.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.floats import INF, add_long_double, format_human, parse_long_double
from aofnode.store.scan import parse_cursor, parse_scan_options, scan_fields
from aofnode.store.strings import (
    NOT_INT_ERR, add_checked, OVERFLOW_ERR, SYNTAX_ERR, WRONGTYPE_ERR, arity_error, parse_ll,
)

_HASH_NOT_INT = Error(ERR, "hash value is not an integer")
_HASH_NOT_FLOAT = Error(ERR, "hash value is not a float")
_NOT_FLOAT = Error(ERR, "value is not a valid float")
_INCR_NAN = Error(ERR, "value is NaN or Infinity")
_RESULT_NAN = Error(ERR, "increment would produce NaN or Infinity")
_OUT_OF_RANGE = Error(ERR, "value is out of range")
_INVALID_CURSOR = Error(ERR, "invalid cursor")
_LONG_MAX = 2**63 - 1
_COUNT_RANGE = Error(ERR, f"value is out of range, value must between {-_LONG_MAX} and "
                          f"{_LONG_MAX}")
# HRANDFIELD with a negative count replies that many picks, as Redis; past this many the reply
# would exhaust the log actor's memory before any output limit could cut it, so it is refused.
MAX_RANDOM_PICKS = 1 << 24
_TOO_MANY = Error(ERR, f"count is too large: at most {MAX_RANDOM_PICKS} random fields")


class HashCommands:
    COMMANDS = {
        "HMSET": "_cmd_hmset", "HSETNX": "_cmd_hsetnx", "HSTRLEN": "_cmd_hstrlen",
        "HINCRBYFLOAT": "_cmd_hincrbyfloat", "HRANDFIELD": "_cmd_hrandfield",
        "HSCAN": "_cmd_hscan",
        "HSET": "_cmd_hset", "HGET": "_cmd_hget", "HMGET": "_cmd_hmget", "HDEL": "_cmd_hdel",
        "HGETALL": "_cmd_hgetall", "HLEN": "_cmd_hlen", "HEXISTS": "_cmd_hexists",
        "HINCRBY": "_cmd_hincrby", "HKEYS": "_cmd_hkeys", "HVALS": "_cmd_hvals",
    }

    def _read_hash(self, db, key):
        """(hash or None, error or None) for a read-only hash command; counts hits/misses."""
        value = self.keyspace.lookup(db, key)
        if value is None:
            self.keyspace_misses += 1
            return None, None
        self.keyspace_hits += 1
        if value.__class__ is not dict:
            return None, WRONGTYPE_ERR
        return value, None

    def _cmd_hmset(self, db, args):
        reply = self._cmd_hset(db, args, "HMSET")
        return reply if reply.__class__ is Error else "OK"

    def _cmd_hset(self, db, args, name="HSET"):
        n = len(args)
        if n < 3 or n % 2 == 0:
            return arity_error(name)
        key = args[0]
        ks = self.keyspace
        h = ks.lookup_write(db, key)
        if h is None:
            h = {}
            ks.set(db, key, h)
        elif h.__class__ is not dict:
            return WRONGTYPE_ERR
        created = ks.hash_set_pairs(db, h, args)
        if not self._loading:
            self.propagated.append([db, "HSET", *args])
        return created

    def _cmd_hget(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return err
        return h.get(args[1])

    def _cmd_hmget(self, db, args):
        h, err = self._read_hash(db, args[0])
        if err is not None:
            return err
        if h is None:
            return [None] * (len(args) - 1)
        get = h.get
        return [get(field) for field in args[1:]]

    def _cmd_hdel(self, db, args):
        key = args[0]
        ks = self.keyspace
        h = ks.lookup_write(db, key)
        if h is None:
            return 0
        if h.__class__ is not dict:
            return WRONGTYPE_ERR
        hash_delete = ks.hash_delete
        removed = [f for f in args[1:] if hash_delete(db, h, f)]
        if not h:
            ks.delete(db, key)
        if removed and not self._loading:
            self.propagated.append([db, "HDEL", key, *removed])
        return len(removed)

    def _cmd_hgetall(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return [] if err is None else err
        out = []
        for item in h.items():
            out.extend(item)
        return out

    def _cmd_hlen(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return 0 if err is None else err
        return len(h)

    def _cmd_hexists(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return 0 if err is None else err
        return 1 if args[1] in h else 0

    def _cmd_hkeys(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return [] if err is None else err
        return list(h)

    def _cmd_hvals(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return [] if err is None else err
        return list(h.values())

    def _cmd_hincrby(self, db, args):
        key, field = args[0], args[1]
        delta = parse_ll(args[2])
        if delta is None:
            return NOT_INT_ERR
        ks = self.keyspace
        h = ks.lookup_write(db, key)
        if h is not None and h.__class__ is not dict:
            return WRONGTYPE_ERR
        current = 0
        if h is not None:
            raw = h.get(field)
            if raw is not None:
                current = parse_ll(raw)
                if current is None:
                    return _HASH_NOT_INT
        raw = add_checked(current, delta)
        if raw is OVERFLOW_ERR:
            return raw
        if h is None:
            ks.set(db, key, {field: raw})
        else:
            ks.hash_set_pairs(db, h, (key, field, raw))
        if not self._loading:
            self.propagated.append([db, "HSET", key, field, raw])
        return current + delta

    def _cmd_hsetnx(self, db, args):
        key, field, value = args
        ks = self.keyspace
        h = ks.lookup_write(db, key)
        if h is None:
            ks.set(db, key, {field: value})
        elif h.__class__ is not dict:
            return WRONGTYPE_ERR
        elif field in h:
            return 0
        else:
            ks.hash_set_pairs(db, h, args)
        if not self._loading:
            self.propagated.append([db, "HSET", key, field, value])
        return 1

    def _cmd_hstrlen(self, db, args):
        h, err = self._read_hash(db, args[0])
        if h is None:
            return 0 if err is None else err
        value = h.get(args[1])
        return 0 if value is None else len(value)

    def _cmd_hincrbyfloat(self, db, args):
        key, field = args[0], args[1]
        incr = parse_long_double(args[2])
        if incr is None:
            return _NOT_FLOAT
        if incr in (INF, -INF):
            return _INCR_NAN
        ks = self.keyspace
        h = ks.lookup_write(db, key)
        if h is not None and h.__class__ is not dict:
            return WRONGTYPE_ERR
        current = 0
        raw = h.get(field) if h is not None else None
        if raw is not None:
            current = parse_long_double(raw)
            if current is None:
                return _HASH_NOT_FLOAT
        total = add_long_double(current, incr)
        if total is None:
            return _RESULT_NAN
        new = format_human(total)
        if h is None:
            ks.set(db, key, {field: new})
        else:
            ks.hash_set_pairs(db, h, (key, field, new))
        if not self._loading:
            self.propagated.append([db, "HSET", key, field, new])
        return new

    # --- sampling and iteration --------------------------------------------------------------
    def _cmd_hrandfield(self, db, args):
        """HRANDFIELD key [count [WITHVALUES]]: Redis 7's four cases (none, 0, negative with
        repeats, positive without). Read-only: its random choices never reach the AOF."""
        if len(args) == 1:
            h, err = self._read_hash(db, args[0])
            if h is None:
                return err
            return self.command_rng.choice(list(h))
        count = parse_ll(args[1])
        if count is None:
            return NOT_INT_ERR
        if count < -_LONG_MAX:
            return _COUNT_RANGE
        if len(args) > 3 or (len(args) == 3 and args[2].upper() != b"WITHVALUES"):
            return SYNTAX_ERR
        withvalues = len(args) == 3
        if withvalues and not -(_LONG_MAX // 2) <= count <= _LONG_MAX // 2:
            return _OUT_OF_RANGE
        h, err = self._read_hash(db, args[0])
        if h is None:
            return [] if err is None else err
        if count == 0:
            return []
        if count < 0 or count == 1:
            if -count > MAX_RANDOM_PICKS:
                return _TOO_MANY
            fields = self.command_rng.choices(list(h), k=abs(count))
        elif count >= len(h):
            fields = list(h)
        else:
            fields = self.command_rng.sample(list(h), count)
        if not withvalues:
            return fields
        out = []
        for field in fields:
            out.append(field)
            out.append(h[field])
        return out

    def _cmd_hscan(self, db, args):
        """HSCAN key cursor [MATCH pattern] [COUNT n]: ``[cursor, [field, value, ...]]``."""
        cursor = parse_cursor(args[1])
        if cursor is None:
            return _INVALID_CURSOR
        h, err = self._read_hash(db, args[0])
        if h is None:
            return [b"0", []] if err is None else err
        options = parse_scan_options(args, 2)
        if isinstance(options, Error):
            return options
        count, match, _ = options
        cursor, fields = scan_fields(h, cursor, count)
        out = []
        for field in fields:
            if match is None or match(field):
                out.append(field)
                out.append(h[field])
        return [b"%d" % cursor, out]
