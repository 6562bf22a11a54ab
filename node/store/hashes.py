"""Hash commands: HSET HGET HMGET HDEL HGETALL HLEN HEXISTS HINCRBY HKEYS HVALS.

Same mixin contract as ``strings.py``. A hash that loses its last field is deleted, TTL
included (Redis does the same). HINCRBY is logged as ``HSET k f <new>`` (idempotent). Fields of
a stored hash change only through ``Keyspace.hash_set_pairs`` / ``hash_delete``, which keep
``used_memory`` in step.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import (
    NOT_INT_ERR, add_checked, OVERFLOW_ERR, WRONGTYPE_ERR, arity_error, parse_ll,
)

_HASH_NOT_INT = Error(ERR, "hash value is not an integer")


class HashCommands:
    COMMANDS = {
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

    def _cmd_hset(self, db, args):
        n = len(args)
        if n < 3 or n % 2 == 0:
            return arity_error("HSET")
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
