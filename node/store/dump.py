"""DUMP and RESTORE: a value in Redis's own serialisation (``rdb.py``), so values move between
redis-server and aofnode both ways.

Same mixin contract as ``strings.py``. RESTORE is never logged as itself: the AOF gets what it
made, ``SET k v [PXAT ms]`` for a string, ``[DEL k] HSET k f v ... [PEXPIREAT k ms]`` for a hash
(the DEL when REPLACE replaced a key), ``RPUSH`` / ``SADD`` / ``ZADD`` for a list, set or sorted
set likewise (a big collection in entries of ~1 MiB each), or ``DEL k`` when REPLACE met a TTL
already passed. So the AOF stays readable by every tool that reads it, and replay needs no RDB
decoder. IDLETIME and FREQ set the key's access stamp as Redis's objectSetLRUOrLFU does: FREQ
under an LFU policy, IDLETIME under any other, the other one checked and ignored. Access stamps
are not logged (nor in Redis's AOF): after a restart the key's access time is its load.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store import listcore
from aofnode.store.rdb import dump_value, load_value, verify_payload
from aofnode.store.access import LRU_CLOCK_MAX
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, parse_ll
from aofnode.store.typed import LIST, SET, type_name
from aofnode.store.zsetcore import format_score

_BUSYKEY = Error("BUSYKEY", "Target key name already exists.")
_BAD_TTL = Error(ERR, "Invalid TTL value, must be >= 0")
_BAD_IDLE = Error(ERR, "Invalid IDLETIME value, must be >= 0")
_BAD_FREQ = Error(ERR, "Invalid FREQ value, must be >= 0 and <= 255")
_BAD_PAYLOAD = Error(ERR, "DUMP payload version or checksum are wrong")
_BAD_FORMAT = Error(ERR, "Bad data format")
# A restored collection is logged as entries of about this many bytes of elements, as the
# rewrite child writes them (CHILD_ENTRY_BYTES): far below the AOF's 256 MiB record limit.
AOF_ENTRY_BYTES = 1 << 20


def _restore_options(args):
    """(replace, absttl, idle, freq) or an error, with Redis's rules (IDLETIME and FREQ exclude
    each other; None: not given)."""
    replace = absttl = False
    idle = freq = None
    i, n = 3, len(args)
    while i < n:
        opt, more = args[i].upper(), n - i - 1
        if opt == b"REPLACE":
            replace = True
        elif opt == b"ABSTTL":
            absttl = True
        elif opt == b"IDLETIME" and more and freq is None:
            idle = parse_ll(args[i + 1])
            if idle is None:
                return NOT_INT_ERR
            if idle < 0:
                return _BAD_IDLE
            i += 1
        elif opt == b"FREQ" and more and idle is None:
            freq = parse_ll(args[i + 1])
            if freq is None:
                return NOT_INT_ERR
            if not 0 <= freq <= 255:
                return _BAD_FREQ
            i += 1
        else:
            return SYNTAX_ERR
        i += 1
    return replace, absttl, idle, freq


class DumpCommands:
    COMMANDS = {"DUMP": "_cmd_dump", "RESTORE": "_cmd_restore"}

    def _cmd_dump(self, db, args):
        value = self.keyspace.lookup(db, args[0])
        if value is None:
            self.keyspace_misses += 1
            return None
        self.keyspace_hits += 1
        return dump_value(value)

    def _cmd_restore(self, db, args):
        options = _restore_options(args)
        if options.__class__ is Error:
            return options
        replace, absttl, idle, freq = options
        key, payload = args[0], args[2]
        ks = self.keyspace
        existed = ks.lookup(db, key) is not None
        if existed and not replace:
            return _BUSYKEY
        ttl = parse_ll(args[1])
        if ttl is None:
            return NOT_INT_ERR
        if ttl < 0:
            return _BAD_TTL
        if not verify_payload(payload):
            return _BAD_PAYLOAD
        try:
            value = load_value(payload)
        except ValueError:
            return _BAD_FORMAT
        if ttl and not absttl:
            ttl += self.clock_ms()
        if existed:
            ks.delete(db, key)
        if ttl and ttl <= self.clock_ms():
            if existed:
                self.propagated.append([db, "DEL", key])
            return "OK"
        ks.set(db, key, value, ttl or None)
        if ks.lfu:
            if freq is not None:
                ks.set_access_stamp(db, key, ks.stamp_for_freq(freq))
        elif idle is not None:
            # Redis's clock holds 24 bits of seconds: no key reads older than that.
            ks.set_access_stamp(db, key, ks.stamp_for_idle(min(idle, LRU_CLOCK_MAX)))
        self._log_restored(db, key, value, ttl, existed)
        return "OK"

    def _store_rebuilt(self, db, dst, value, size):
        """How SORT ... STORE and the geo stores end: ``value`` (``size`` elements) stored at
        ``dst`` and logged as what rebuilds it (``DEL dst`` when it existed, then its write
        form, as RESTORE's), so a replay depends on no source key; an empty result deletes
        ``dst`` instead (logged as DEL), as Redis does. Replies ``size``."""
        ks = self.keyspace
        existed = ks.lookup_write(db, dst) is not None
        if not size:
            if existed:
                ks.delete(db, dst)
                self._log(db, "DEL", dst)
            return 0
        ks.set(db, dst, value)
        if not self._loading:
            self._log_restored(db, dst, value, 0, existed)
        return size

    def _log_restored(self, db, key, value, ttl, existed):
        if value.__class__ is bytes:
            entry = [db, "SET", key, value]
            if ttl:
                entry += [b"PXAT", b"%d" % ttl]
            self.propagated.append(entry)
            return
        if existed:
            self.propagated.append([db, "DEL", key])
        name, flat = _write_form(value)
        for part in _chunks(flat, 2 if name in ("HSET", "ZADD") else 1):
            self.propagated.append([db, name, key, *part])
        if ttl:
            self.propagated.append([db, "PEXPIREAT", key, b"%d" % ttl])


def _write_form(value):
    """The command, and its flat arguments, that rebuild a collection value."""
    kind = type_name(value)
    if kind == "hash":
        return "HSET", [x for pair in value.items() for x in pair]
    if kind == LIST:
        return "RPUSH", listcore.items(value)
    if kind == SET:
        return "SADD", list(value[0])
    return "ZADD", [x for m, s in value[0].items() for x in (format_score(s), m)]


def _chunks(flat, step):
    """``flat`` in parts of about AOF_ENTRY_BYTES of arguments (whole groups of ``step``), so a
    restored collection of any size fits the AOF's record limit, as the rewrite writes it."""
    start = size = 0
    for i in range(0, len(flat), step):
        size += sum(map(len, flat[i:i + step])) + 8 * step
        if size >= AOF_ENTRY_BYTES:
            yield flat[start:i + step]
            start, size = i + step, 0
    if start < len(flat):
        yield flat[start:]
