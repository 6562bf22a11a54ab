"""What the list, set and sorted set commands share: type names, typed lookups, count parsing.

Design
------
A key's type follows from its value (``keyspace.py``): ``bytes`` string, ``dict`` hash,
``list`` list (``listcore.py``), a 1-tuple ``(dict,)`` set, a 2-tuple ``(dict, list)`` sorted set (``kind_of``).
Built-in containers only, so that marshal copies every value for the rewrite child; a set is
the keys of a dict (member -> None), not a Python ``set``, because marshal sorts a set's
elements (CPython 3.11: reproducible output), which writes the reference count of each
member: a set-heavy keyspace measured 33% of RSS of copy-on-write in the rewrite child, the
dict form 2-3%. ``CollectionBase`` is the mixin that
``lists.py``, ``sets.py`` and ``zsets.py`` build on; it relies on the executor's attributes
(``keyspace``, ``propagated``, ``_loading``, the hit and miss counters), as every mixin does.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

import random

from aofnode.store.scan import parse_cursor, parse_scan_options
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, WRONGTYPE_ERR, parse_ll

__all__ = [
    "LIST", "SET", "ZSET", "TYPE_NAMES", "SCAN_TYPES", "CollectionBase", "NOT_POSITIVE_ERR",
    "NUMKEYS_ERR", "COUNT_POSITIVE_ERR", "index_range", "parse_count", "parse_limit",
    "scan_collection", "scan_members", "type_name",
]

LIST, SET, ZSET = "list", "set", "zset"
_CLASS_NAMES = {bytes: "string", dict: "hash", list: LIST}
TYPE_NAMES = ("string", "hash", LIST, SET, ZSET)
SCAN_TYPES = {name.encode(): name for name in TYPE_NAMES}

NOT_POSITIVE_ERR = Error(ERR, "value is out of range, must be positive")
NUMKEYS_ERR = Error(ERR, "numkeys should be greater than 0")
COUNT_POSITIVE_ERR = Error(ERR, "count should be greater than 0")
_INVALID_CURSOR = Error(ERR, "invalid cursor")
_LIMIT_NEGATIVE = Error(ERR, "LIMIT can't be negative")

# SSCAN/ZSCAN of a collection this small returns it whole with cursor 0, as Redis does for its
# small encodings (listpack, intset: up to 128 entries by default).
SMALL_COLLECTION = 128
# At most 256 slices: each call is one pass over the collection (~60 ns per member), so a full
# scan costs at most 256 passes; replies are then at least 1/256 of it.
_MAX_SLICE_BITS = 8
_BITS_FIELD = 4  # cursor = slice << 4 | bits


def type_name(value) -> str:
    """TYPE's reply for a stored value: string, hash, list, set or zset."""
    if value.__class__ is tuple:
        return ZSET if len(value) == 2 else SET
    return _CLASS_NAMES[value.__class__]


def index_range(start: int, end: int, n: int) -> tuple[int, int] | None:
    """Redis's index rule for LRANGE, LTRIM and the ZRANGE family by rank (negative counts
    from the tail, then clamped): the inclusive (start, end) of ``n`` items, or None for an
    empty range."""
    if start < 0:
        start += n
    if end < 0:
        end += n
    if start < 0:
        start = 0
    if start > end or start >= n:
        return None
    return start, min(end, n - 1)


def parse_count(raw: bytes) -> int | Error:
    """A count that must be >= 0 (LPOP, SPOP, ZPOPMIN...): the int or Redis's error."""
    n = parse_ll(raw)
    if n is None:
        return NOT_INT_ERR
    if n < 0:
        return NOT_POSITIVE_ERR
    return n


def parse_limit(rest) -> int | Error:
    """SINTERCARD's and ZINTERCARD's ``[LIMIT n]`` (0: none; repeated, the last one counts)."""
    limit, i = 0, 0
    while i < len(rest):
        if rest[i].upper() != b"LIMIT" or i + 1 >= len(rest):
            return SYNTAX_ERR
        n = parse_ll(rest[i + 1])
        if n is None or n < 0:  # one error for both, as Redis
            return _LIMIT_NEGATIVE
        limit = n
        i += 2
    return limit


class CollectionBase:
    """Typed lookups shared by the collection mixins."""

    # SPOP, SRANDMEMBER, ZRANDMEMBER draw from this; tests may set a seeded one on an executor.
    random = random.Random()

    def _read_as(self, db, key, kind):
        """(value or None, error or None) for a read-only command on a ``kind`` (LIST, SET,
        ZSET) key; counts hits and misses."""
        value = self.keyspace.lookup(db, key)
        if value is None:
            self.keyspace_misses += 1
            return None, None
        self.keyspace_hits += 1
        if type_name(value) != kind:
            return None, WRONGTYPE_ERR
        return value, None

    def _write_as(self, db, key, kind):
        """(value or None, error or None) for a command that may change a ``kind`` key."""
        value = self.keyspace.lookup_write(db, key)
        if value is not None and type_name(value) != kind:
            return None, WRONGTYPE_ERR
        return value, None

    def _log(self, db, name, *args):
        if not self._loading:
            self.propagated.append([db, name, *args])

    def _numkeys(self, args, first):
        """(numkeys, error) for the ``numkeys key ...`` commands, read at ``args[first]``: not an
        integer is the same error as not positive, as Redis."""
        n = parse_ll(args[first])
        if n is None or n <= 0:
            return 0, NUMKEYS_ERR
        return n, None

    def _store_at(self, db, name, args, value, size):
        """How the *STORE commands end: ``value`` (``size`` elements) stored at the destination
        ``args[0]`` and the command logged as given; an empty result deletes the destination
        instead (logged as DEL), as Redis does. Replies ``size``."""
        dst = args[0]
        ks = self.keyspace
        if not size:
            if ks.lookup_write(db, dst) is not None:
                ks.delete(db, dst)
                self._log(db, "DEL", dst)
            return 0
        ks.set(db, dst, value)
        self._log(db, name, *args)
        return size

    def _mpop_args(self, args, ends):
        """LMPOP / ZMPOP ``numkeys key [key ...] <end> [COUNT count]``: ``(keys, end, count)``
        with ``end`` the flag ``ends`` gives the end word (LEFT/RIGHT, MIN/MAX), or the error
        to reply. One parser so both commands refuse the same arguments the same way."""
        numkeys, err = self._numkeys(args, 0)
        if err is not None:
            return err
        if numkeys > len(args) - 2:
            return SYNTAX_ERR
        keys, rest = args[1:1 + numkeys], args[1 + numkeys:]
        end = ends.get(rest[0].upper())
        if end is None:
            return SYNTAX_ERR
        count = 1
        if len(rest) == 3 and rest[1].upper() == b"COUNT":
            count = parse_ll(rest[2])
            if count is None or count <= 0:
                return COUNT_POSITIVE_ERR
        elif len(rest) != 1:
            return SYNTAX_ERR
        return keys, end, count


def scan_members(members, cursor: int, count: int) -> tuple[int, list]:
    """SSCAN/ZSCAN without server state, as ``scan.py`` does for keys: a cursor names a slice
    of hash space, ``slice << 4 | bits``, where a member falls in slice ``hash(m) & (2**bits -
    1)``; ``bits`` is chosen at cursor 0 from the size and COUNT and carried unchanged, so each
    slice is read by exactly one call and a member present for the whole scan is returned (a
    member's hash is fixed for the life of the process). One pass over ``members`` per call.
    """
    n = len(members)
    if n <= SMALL_COLLECTION:
        return 0, list(members)
    bits, part = cursor & ((1 << _BITS_FIELD) - 1), cursor >> _BITS_FIELD
    if part == 0 or bits > _MAX_SLICE_BITS or part >> bits:
        part, bits = 0, 0
        while bits < _MAX_SLICE_BITS and n >> bits > count:
            bits += 1
    mask = (1 << bits) - 1
    end = min(mask + 1, part + max(1, (count << bits) // n))
    if part == 0 and end == mask + 1:
        return 0, list(members)
    picked = [m for m in members if part <= hash(m) & mask < end]
    return (0 if end > mask else end << _BITS_FIELD | bits), picked


def scan_collection(ex, db, args, kind, expand):
    """SSCAN / ZSCAN ``key cursor [MATCH pattern] [COUNT count]`` on a ``kind`` value:
    ``expand(value, members)`` gives the reply's elements for the members picked."""
    cursor = parse_cursor(args[1])
    if cursor is None:
        return _INVALID_CURSOR
    options = parse_scan_options(args, 2)
    if isinstance(options, Error):
        return options
    count, match, _ = options
    value, err = ex._read_as(db, args[0], kind)
    if value is None:
        return err or [b"0", []]
    cursor, picked = scan_members(value[0], cursor, count)
    if match is not None:
        picked = [m for m in picked if match(m)]
    return [b"%d" % cursor, expand(value, picked)]
