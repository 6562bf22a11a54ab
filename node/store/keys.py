"""Keyspace commands: DEL UNLINK EXISTS TOUCH TYPE RENAME (P)EXPIRE(AT) TTL PTTL (P)EXPIRETIME
PERSIST KEYS SCAN DBSIZE FLUSH*.

Same mixin contract as ``strings.py``. SCAN keeps no state between calls: its cursor is a
place in hash space (``scan.py`` has the encoding and the proof of Redis's guarantee).
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import (
    LLONG_MAX, MAX_SECONDS, MIN_SECONDS, NOT_INT_ERR, SYNTAX_ERR, parse_ll,
)
from aofnode.store.pattern import compile_glob
from aofnode.store.scan import parse_cursor, parse_scan_options, scan_keys
from aofnode.store.typed import SCAN_TYPES, type_name

_NO_SUCH_KEY = Error(ERR, "no such key")
_INVALID_CURSOR = Error(ERR, "invalid cursor")
_NX_CONFLICT = Error(ERR, "NX and XX, GT or LT options at the same time are not compatible")
_GT_LT_CONFLICT = Error(ERR, "GT and LT options at the same time are not compatible")
_EXPIRE_FLAGS = {b"NX": 1, b"XX": 2, b"GT": 4, b"LT": 8}
_NX, _XX, _GT, _LT = 1, 2, 4, 8
_SCAN_TYPES = SCAN_TYPES
_FLUSH_MODES = (b"ASYNC", b"SYNC")


class _NoType:
    """SCAN TYPE with a type name we do not have: matches nothing (Redis 7 does the same)."""


class KeyCommands:
    COMMANDS = {
        "DEL": "_cmd_del", "EXISTS": "_cmd_exists", "TYPE": "_cmd_type",
        "RENAME": "_cmd_rename", "EXPIRE": "_cmd_expire", "PEXPIRE": "_cmd_pexpire",
        "EXPIREAT": "_cmd_expireat", "PEXPIREAT": "_cmd_pexpireat", "TTL": "_cmd_ttl",
        "PTTL": "_cmd_pttl", "PERSIST": "_cmd_persist", "KEYS": "_cmd_keys",
        "SCAN": "_cmd_scan", "DBSIZE": "_cmd_dbsize", "FLUSHDB": "_cmd_flushdb",
        "FLUSHALL": "_cmd_flushall", "UNLINK": "_cmd_del", "TOUCH": "_cmd_touch",
        "EXPIRETIME": "_cmd_expiretime", "PEXPIRETIME": "_cmd_pexpiretime",
    }

    def _read(self, db, key):
        """lookup for a read-only command: counts keyspace_hits / keyspace_misses."""
        value = self.keyspace.lookup(db, key)
        if value is None:
            self.keyspace_misses += 1
        else:
            self.keyspace_hits += 1
        return value

    def _cmd_del(self, db, args):
        ks = self.keyspace
        removed = [key for key in args if ks.lookup(db, key) is not None and ks.delete(db, key)]
        if removed and not self._loading:
            self.propagated.append([db, "DEL", *removed])
        return len(removed)

    def _read_notouch(self, db, key):
        """``_read`` without touching the key's access stamp (Redis's LOOKUP_NOTOUCH)."""
        value = self.keyspace.lookup_notouch(db, key)
        if value is None:
            self.keyspace_misses += 1
        else:
            self.keyspace_hits += 1
        return value

    def _cmd_exists(self, db, args):
        read = self._read_notouch
        return sum(1 for key in args if read(db, key) is not None)

    def _cmd_touch(self, db, args):
        read = self._read
        return sum(1 for key in args if read(db, key) is not None)

    def _cmd_type(self, db, args):
        value = self._read_notouch(db, args[0])
        if value is None:
            return "none"
        return type_name(value)

    def _cmd_rename(self, db, args):
        src, dst = args[0], args[1]
        ks = self.keyspace
        value = ks.lookup(db, src)
        if value is None:
            return _NO_SUCH_KEY
        if src == dst:
            return "OK"  # as Redis: nothing changes, nothing is propagated
        expire_ms = ks.get_expire(db, src)
        stamp = ks.access_stamp(db, src)
        ks.delete(db, src)
        ks.set(db, dst, value, expire_ms)  # expire_ms None: dst loses any TTL it had
        if stamp is not None:
            ks.set_access_stamp(db, dst, stamp)  # the same object in Redis: its LFU counter too
        if not self._loading:
            self.propagated.append([db, "RENAME", src, dst])
        return "OK"

    # --- TTLs --------------------------------------------------------------------------------
    def _cmd_expire(self, db, args):
        return self._expire_generic(db, args, "expire", True, True)

    def _cmd_pexpire(self, db, args):
        return self._expire_generic(db, args, "pexpire", False, True)

    def _cmd_expireat(self, db, args):
        return self._expire_generic(db, args, "expireat", True, False)

    def _cmd_pexpireat(self, db, args):
        return self._expire_generic(db, args, "pexpireat", False, False)

    def _expire_generic(self, db, args, name, seconds, relative):
        """Redis 7 expireGenericCommand: options, then the time, then the key."""
        key = args[0]
        flags = 0
        for opt in args[2:]:
            flag = _EXPIRE_FLAGS.get(opt.upper())
            if flag is None:
                return Error(ERR, f"Unsupported option {opt.decode('utf-8', 'replace')}")
            flags |= flag
        if flags & _NX and flags & (_XX | _GT | _LT):
            return _NX_CONFLICT
        if flags & _GT and flags & _LT:
            return _GT_LT_CONFLICT
        when = parse_ll(args[1])
        if when is None:
            return NOT_INT_ERR
        if seconds:
            if when > MAX_SECONDS or when < MIN_SECONDS:
                return Error(ERR, f"invalid expire time in '{name}' command")
            when *= 1000
        now = self.clock_ms()
        if relative:
            if when > LLONG_MAX - now:
                return Error(ERR, f"invalid expire time in '{name}' command")
            when += now
        ks = self.keyspace
        if ks.lookup(db, key) is None:
            return 0
        if flags:
            current = ks.get_expire(db, key)  # None: no TTL, i.e. an infinite one
            if flags & _NX and current is not None:
                return 0
            if flags & _XX and current is None:
                return 0
            if flags & _GT and (current is None or when <= current):
                return 0
            if flags & _LT and current is not None and when >= current:
                return 0
        if self._loading:
            ks.set_expire(db, key, when)  # replay: a passed time still only sets the TTL
            return 1
        if when <= now:
            ks.delete(db, key)
            self.propagated.append([db, "DEL", key])
            return 1
        ks.set_expire(db, key, when)
        self.propagated.append([db, "PEXPIREAT", key, b"%d" % when])
        return 1

    def _cmd_ttl(self, db, args):
        ttl = self._pttl(db, args[0])
        return ttl if ttl < 0 else (ttl + 500) // 1000

    def _cmd_pttl(self, db, args):
        return self._pttl(db, args[0])

    def _cmd_expiretime(self, db, args):
        when = self._expiretime(db, args[0])
        return when if when < 0 else (when + 500) // 1000

    def _cmd_pexpiretime(self, db, args):
        return self._expiretime(db, args[0])

    def _expiretime(self, db, key):
        """The absolute expire time in unix ms; -2 no key, -1 no TTL."""
        if self._read_notouch(db, key) is None:
            return -2
        when = self.keyspace.get_expire(db, key)
        return -1 if when is None else when

    def _pttl(self, db, key):
        if self._read_notouch(db, key) is None:
            return -2
        when = self.keyspace.get_expire(db, key)
        if when is None:
            return -1
        return max(0, when - self.clock_ms())

    def _cmd_persist(self, db, args):
        key = args[0]
        ks = self.keyspace
        if ks.lookup(db, key) is None or not ks.persist(db, key):
            return 0
        if not self._loading:
            self.propagated.append([db, "PERSIST", key])
        return 1

    # --- iteration ---------------------------------------------------------------------------
    def _cmd_keys(self, db, args):
        pattern = args[0]
        return self.keyspace.keys(db, None if pattern == b"*" else compile_glob(pattern))

    def _cmd_scan(self, db, args):
        cursor = parse_cursor(args[0])
        if cursor is None:
            return _INVALID_CURSOR
        options = parse_scan_options(args, 1, with_type=True)
        if isinstance(options, Error):
            return options
        count, match, type_arg = options
        want_type = None if type_arg is None else _SCAN_TYPES.get(type_arg.lower(), _NoType)

        cursor, keys = scan_keys(self.keyspace, db, cursor, count)
        found = []
        lookup = self.keyspace.lookup_notouch
        for key in keys:
            if match is not None and not match(key):
                continue
            value = lookup(db, key)  # skips keys deleted meanwhile, expires lazily
            if value is None or (want_type is not None and type_name(value) != want_type):
                continue
            found.append(key)
        return [b"%d" % cursor, found]

    # --- databases ---------------------------------------------------------------------------
    def _cmd_dbsize(self, db, args):
        return self.keyspace.dbsize(db)

    def _cmd_flushdb(self, db, args):
        if len(args) > 1 or (args and args[0].upper() not in _FLUSH_MODES):
            return SYNTAX_ERR
        self.keyspace.flush(db)
        if not self._loading:
            self.propagated.append([db, "FLUSHDB"])
        return "OK"

    def _cmd_flushall(self, db, args):
        if len(args) > 1 or (args and args[0].upper() not in _FLUSH_MODES):
            return SYNTAX_ERR
        self.keyspace.flush()
        if not self._loading:
            self.propagated.append([0, "FLUSHALL"])
        return "OK"
