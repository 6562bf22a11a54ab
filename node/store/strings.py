"""String commands, plus the reply values and the integer parser every command module shares.

Each ``_cmd_*`` method takes ``(db, args)`` and returns a reply value (see docs/design.md). The
mixin relies on the attributes that ``Executor.__init__`` sets: ``keyspace``, ``clock_ms``,
``propagated``, ``_loading``, ``keyspace_hits``, ``keyspace_misses``.

Propagation choices (docs/commands.md has the full table):
* INCR/DECR/INCRBY/DECRBY log the result, ``SET k <new> KEEPTTL``: idempotent, same size.
* APPEND logs itself: logging the result would write the whole value on every append.
"""

from __future__ import annotations

from aofnode.protocol.errors import ARITY, ERR, WRONGTYPE, Error

LLONG_MAX = 2**63 - 1
LLONG_MIN = -(2**63)
# C's LLONG_MIN / 1000 truncates toward zero; Python's // would floor.
MAX_SECONDS = LLONG_MAX // 1000
MIN_SECONDS = -(2**63 // 1000)

WRONGTYPE_ERR = Error(WRONGTYPE, "Operation against a key holding the wrong kind of value")
NOT_INT_ERR = Error(ERR, "value is not an integer or out of range")
OVERFLOW_ERR = Error(ERR, "increment or decrement would overflow")
SYNTAX_ERR = Error(ERR, "syntax error")
_DECR_OVERFLOW_ERR = Error(ERR, "decrement would overflow")

# SET's and GETEX's expire options: name -> (multiplier to ms, relative to now)
EXPIRE_OPTIONS = {b"EX": (1000, True), b"PX": (1, True), b"EXAT": (1000, False), b"PXAT": (1, False)}


def add_checked(current: int, delta: int) -> bytes | Error:
    """``current + delta`` as the stored decimal bytes, or OVERFLOW_ERR outside 64 bits."""
    new = current + delta
    if new > LLONG_MAX or new < LLONG_MIN:
        return OVERFLOW_ERR
    return b"%d" % new


def parse_ll(raw: bytes) -> int | None:
    """The signed 64-bit integer spelled canonically by ``raw``, else None (Redis string2ll).

    Canonical: optional '-', no '+', no spaces, no leading zeros, "-0" rejected, at most 20 bytes.
    """
    if not raw or len(raw) > 20:
        return None
    try:
        n = int(raw)
    except ValueError:
        return None
    # int() also accepts " 1", "+1", "01", "1_0" and "-0": the round trip rejects all of them.
    if LLONG_MIN <= n <= LLONG_MAX and b"%d" % n == raw:
        return n
    return None


def expire_time_error(name: str) -> Error:
    """Redis's addReplyErrorExpireTime, which names the command."""
    return Error(ERR, f"invalid expire time in '{name}' command")


def arity_error(name: str) -> Error:
    return Error(ARITY, f"wrong number of arguments for '{name.lower()}' command")


def _parse_set_options(args: list) -> tuple[bool, bool, bool, bool, tuple[bytes, bytes] | None] | Error:
    """SET's options after key and value: ``(nx, xx, get, keep_ttl, expire)``, ``expire`` being
    ``(EX|PX|EXAT|PXAT, its argument)`` or None; SYNTAX_ERR for what Redis refuses (NX with XX,
    KEEPTTL with an expire, two kinds of expire, an expire without its argument, an unknown
    option)."""
    nx = xx = get = keep_ttl = False
    expire: tuple[bytes, bytes] | None = None
    i, n = 2, len(args)
    while i < n:
        opt = args[i].upper()
        if opt == b"NX" and not xx:
            nx = True
        elif opt == b"XX" and not nx:
            xx = True
        elif opt == b"GET":
            get = True
        elif opt == b"KEEPTTL" and expire is None:
            keep_ttl = True
        elif (opt in EXPIRE_OPTIONS and not keep_ttl and (expire is None or expire[0] == opt)
              and i + 1 < n):
            expire = (opt, args[i + 1])  # as Redis: "EX 1 EX 2" takes the last
            i += 1
        else:
            return SYNTAX_ERR
        i += 1
    return nx, xx, get, keep_ttl, expire


def expire_at_ms(raw: bytes, scale: int, relative: bool, now: int, name: str) -> int | Error:
    """An EX/PX/EXAT/PXAT argument as an absolute unix ms time, checked as Redis does."""
    when = parse_ll(raw)
    if when is None:
        return NOT_INT_ERR
    if when <= 0 or when > LLONG_MAX // scale:
        return expire_time_error(name)
    when *= scale
    if relative:
        when += now
        if when > LLONG_MAX:
            return expire_time_error(name)
    return when


def _set_expire_ms(expire: tuple[bytes, bytes] | None, now: int, name: str) -> int | None | Error:
    """The absolute expire time in ms that SET's ``expire`` option asks for, None without one,
    or the error Redis gives (``name`` is the command: SETEX and PSETEX come through SET)."""
    if expire is None:
        return None
    kind, arg = expire
    scale, relative = EXPIRE_OPTIONS[kind]
    return expire_at_ms(arg, scale, relative, now, name)


class StringCommands:
    """SET GET GETDEL SETNX MSET MGET APPEND STRLEN INCR DECR INCRBY DECRBY."""

    COMMANDS = {
        "SET": "_cmd_set", "GET": "_cmd_get", "GETDEL": "_cmd_getdel", "SETNX": "_cmd_setnx",
        "MSET": "_cmd_mset", "MGET": "_cmd_mget", "APPEND": "_cmd_append",
        "STRLEN": "_cmd_strlen", "INCR": "_cmd_incr", "DECR": "_cmd_decr",
        "INCRBY": "_cmd_incrby", "DECRBY": "_cmd_decrby",
    }

    def _read_string(self, db, key):
        """(value or None, error or None) for a read: counts hits and misses."""
        value = self.keyspace.lookup(db, key)
        if value is None:
            self.keyspace_misses += 1
            return None, None
        self.keyspace_hits += 1
        return (value, None) if value.__class__ is bytes else (None, WRONGTYPE_ERR)

    def _cmd_get(self, db, args):
        value = self.keyspace.lookup(db, args[0])
        if value is None:
            self.keyspace_misses += 1
            return None
        self.keyspace_hits += 1
        return value if value.__class__ is bytes else WRONGTYPE_ERR

    def _cmd_set(self, db, args):
        if len(args) != 2:
            return self._set_with_options(db, args)
        key, value = args
        self.keyspace.set(db, key, value)
        if not self._loading:
            self.propagated.append([db, "SET", key, value])
        return "OK"

    def _set_with_options(self, db, args, name="set"):
        """SET with options; SETEX and PSETEX come here too, with their ``name`` for errors."""
        options = _parse_set_options(args)
        if options.__class__ is Error:
            return options
        nx, xx, get, keep_ttl, expire = options
        now = self.clock_ms()
        expire_ms = _set_expire_ms(expire, now, name)
        if expire_ms.__class__ is Error:
            return expire_ms

        key, value = args[0], args[1]
        ks = self.keyspace
        old = ks.lookup(db, key)
        if get:
            if old is None:
                self.keyspace_misses += 1
            else:
                self.keyspace_hits += 1
                if old.__class__ is not bytes:
                    return WRONGTYPE_ERR
        if (nx and old is not None) or (xx and old is None):
            return old if get else None
        loading = self._loading
        if expire_ms is not None and expire_ms <= now and not loading:
            # EXAT/PXAT in the past: the key is born expired. Delete it now and log the DEL
            # (the AOF never holds an already-passed TTL written by a live node).
            if old is not None:
                ks.delete(db, key)
                self.propagated.append([db, "DEL", key])
            return old if get else "OK"
        ks.set(db, key, value, expire_ms, keep_ttl)
        if not loading:
            if expire_ms is not None:
                self.propagated.append([db, "SET", key, value, b"PXAT", b"%d" % expire_ms])
            elif keep_ttl and ks.get_expire(db, key) is not None:
                self.propagated.append([db, "SET", key, value, b"KEEPTTL"])
            else:
                self.propagated.append([db, "SET", key, value])
        return old if get else "OK"

    def _cmd_getdel(self, db, args):
        key = args[0]
        value, err = self._read_string(db, key)
        if value is None:
            return err
        self.keyspace.delete(db, key)
        if not self._loading:
            self.propagated.append([db, "DEL", key])
        return value

    def _cmd_setnx(self, db, args):
        key, value = args[0], args[1]
        ks = self.keyspace
        if ks.lookup(db, key) is not None:
            return 0
        ks.set(db, key, value)
        if not self._loading:
            self.propagated.append([db, "SET", key, value])
        return 1

    def _cmd_mset(self, db, args):
        n = len(args)
        if n == 0 or n % 2:
            return arity_error("MSET")
        set_ = self.keyspace.set
        for i in range(0, n, 2):
            set_(db, args[i], args[i + 1])
        if not self._loading:
            self.propagated.append([db, "MSET", *args])
        return "OK"

    def _cmd_mget(self, db, args):
        lookup = self.keyspace.lookup
        out = []
        hits = 0
        for key in args:
            value = lookup(db, key)
            if value is not None:
                hits += 1
                if value.__class__ is not bytes:
                    value = None
            out.append(value)
        self.keyspace_hits += hits
        self.keyspace_misses += len(args) - hits
        return out

    def _cmd_append(self, db, args):
        key, tail = args[0], args[1]
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is None:
            new = tail
            ks.set(db, key, new)
        elif old.__class__ is not bytes:
            return WRONGTYPE_ERR
        else:
            new = old + tail  # O(len): bytes are immutable (Redis grows an sds in place)
            ks.set(db, key, new, keep_ttl=True)
        if not self._loading:
            self.propagated.append([db, "APPEND", key, tail])
        return len(new)

    def _cmd_strlen(self, db, args):
        value = self.keyspace.lookup(db, args[0])
        if value is None:
            self.keyspace_misses += 1
            return 0
        self.keyspace_hits += 1
        return len(value) if value.__class__ is bytes else WRONGTYPE_ERR

    def _cmd_incr(self, db, args):
        return self._incr_by(db, args[0], 1)

    def _cmd_decr(self, db, args):
        return self._incr_by(db, args[0], -1)

    def _cmd_incrby(self, db, args):
        delta = parse_ll(args[1])
        if delta is None:
            return NOT_INT_ERR
        return self._incr_by(db, args[0], delta)

    def _cmd_decrby(self, db, args):
        delta = parse_ll(args[1])
        if delta is None:
            return NOT_INT_ERR
        if delta == LLONG_MIN:
            return _DECR_OVERFLOW_ERR
        return self._incr_by(db, args[0], -delta)

    def _incr_by(self, db, key, delta):
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is None:
            current = 0
        elif old.__class__ is not bytes:
            return WRONGTYPE_ERR
        else:
            current = parse_ll(old)
            if current is None:
                return NOT_INT_ERR
        # add_checked inline, and ``set``'s arguments by position: INCR is a hot command, and
        # each saves a few per cent of its time in the log actor.
        new = current + delta
        if new > LLONG_MAX or new < LLONG_MIN:
            return OVERFLOW_ERR
        raw = b"%d" % new
        ks.set(db, key, raw, None, True)  # keep_ttl
        if not self._loading:
            self.propagated.append([db, "SET", key, raw, b"KEEPTTL"])
        return new
