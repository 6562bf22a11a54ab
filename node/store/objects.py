"""OBJECT and MEMORY: what a value is made of, as Redis 7.0 would report it.

Same mixin contract as ``strings.py``. Nothing here changes the keyspace or is logged.

* OBJECT ENCODING is computed from the value, with Redis 7.0's built-in defaults, those of a
  redis-server started without a config file (``hash-max-listpack-entries 512`` / ``-value
  64``, ``set-max-intset-entries 512``, ``zset-max-listpack-entries 128`` / ``-value 64``; the
  redis.conf that Redis ships says 128 hash entries): aofnode stores one Python form per type,
  so there is no encoding to remember. Redis 7.0 never converts back (a hash that once held a
  long field stays ``hashtable`` after HDEL), which a value-only rule cannot know: docs/limits.md
  says so. Redis 7.0 stores every list as a ``quicklist`` and has no listpack sets (both came in
  7.2); strings are ``int`` when they read as a 64-bit integer by Redis's rule, ``embstr`` up
  to 44 bytes, else ``raw`` (Redis also makes APPEND/SETRANGE results ``raw``: not known here).
* OBJECT REFCOUNT: 2147483647 for the integers 0..9999, which Redis 7.0 shares
  (OBJ_SHARED_INTEGERS), 1 otherwise.
* OBJECT IDLETIME: seconds since the key's last access (its access stamp, keyspace.py); OBJECT
  FREQ: its decayed LFU counter. As Redis, IDLETIME errs under an LFU policy and FREQ under any
  other, and neither touches the key.
* MEMORY USAGE: the size model of ``memory.py`` (the key, its value, its TTL and access stamp),
  the figure ``used_memory`` adds up; SAMPLES is checked and ignored (the model is exact on the
  whole value at O(elements)). It does not touch the key (Redis reads the dict directly).
"""

from __future__ import annotations

import re

from aofnode.protocol.errors import ERR, Error
from aofnode.store.memory import ACCESS_OVERHEAD, TTL_OVERHEAD, entry_size
from aofnode.store.strings import SYNTAX_ERR, parse_ll
from aofnode.store.typed import type_name
from aofnode.store.keyspace import NUM_DBS

__all__ = ["ObjectCommands", "encoding_of", "help_lines"]

# Redis 7.0's built-in defaults (config.c), which redis-server uses without a config file.
HASH_MAX_LISTPACK_ENTRIES = 512
HASH_MAX_LISTPACK_VALUE = 64
SET_MAX_INTSET_ENTRIES = 512
ZSET_MAX_LISTPACK_ENTRIES = 128
ZSET_MAX_LISTPACK_VALUE = 64
EMBSTR_SIZE_LIMIT = 44  # OBJ_ENCODING_EMBSTR_SIZE_LIMIT
SHARED_INTEGERS = 10000  # OBJ_SHARED_INTEGERS
SHARED_REFCOUNT = 2147483647  # OBJ_SHARED_REFCOUNT

# Redis's string2ll: optional minus, no leading zeros, no plus, no spaces, fits in 64 bits.
_LL = re.compile(rb"0|-?[1-9][0-9]{0,19}")

_OBJECT_SUBS = (b"ENCODING", b"REFCOUNT", b"IDLETIME", b"FREQ")
_FREQ_ERR = Error(ERR, "An LFU maxmemory policy is not selected, access frequency not tracked. "
                       "Please note that when switching between policies at runtime LRU and LFU "
                       "data will take some time to adjust.")
_IDLE_ERR = Error(ERR, "An LFU maxmemory policy is selected, idle time not tracked. Please note "
                       "that when switching between policies at runtime LRU and LFU data will "
                       "take some time to adjust.")

_OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]
_MEMORY_HELP = [
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
]


def is_int_string(value: bytes) -> bool:
    """True if Redis would store ``value`` with the ``int`` encoding."""
    return len(value) <= 20 and _LL.fullmatch(value) is not None and \
        -(1 << 63) <= int(value) < (1 << 63)


def encoding_of(value) -> str:
    """OBJECT ENCODING's reply for a stored value (see the module docstring)."""
    kind = type_name(value)
    if kind == "string":
        if is_int_string(value):
            return "int"
        return "embstr" if len(value) <= EMBSTR_SIZE_LIMIT else "raw"
    if kind == "list":
        return "quicklist"
    if kind == "hash":
        if len(value) > HASH_MAX_LISTPACK_ENTRIES:
            return "hashtable"
        small = all(len(f) <= HASH_MAX_LISTPACK_VALUE and len(v) <= HASH_MAX_LISTPACK_VALUE
                    for f, v in value.items())
        return "listpack" if small else "hashtable"
    if kind == "set":
        members = value[0]
        if len(members) <= SET_MAX_INTSET_ENTRIES and all(map(is_int_string, members)):
            return "intset"
        return "hashtable"
    members = value[0]  # a sorted set
    if len(members) <= ZSET_MAX_LISTPACK_ENTRIES and all(
            len(m) <= ZSET_MAX_LISTPACK_VALUE for m in members):
        return "listpack"
    return "skiplist"


def refcount_of(value) -> int:
    if value.__class__ is bytes and is_int_string(value) and 0 <= int(value) < SHARED_INTEGERS:
        return SHARED_REFCOUNT
    return 1


def help_lines(name: str) -> list[str]:
    return list(_OBJECT_HELP if name == "OBJECT" else _MEMORY_HELP)


def sub_error(name: str, sub: bytes, known: tuple = ()) -> Error:
    """Redis 7's error for an unknown subcommand, or a known one with the wrong arity."""
    if sub.upper() in known:
        return Error(ERR, f"wrong number of arguments for '{name.lower()}|"
                          f"{sub.decode('utf-8', 'replace').lower()}' command")
    shown = sub[:128].decode("utf-8", "replace")
    return Error(ERR, f"unknown subcommand '{shown}'. Try {name} HELP.")


class ObjectCommands:
    COMMANDS = {"OBJECT": "_cmd_object", "MEMORY": "_cmd_memory"}

    def _cmd_object(self, db, args):
        sub = args[0].upper()
        if sub == b"HELP" and len(args) == 1:
            return help_lines("OBJECT")
        if sub not in _OBJECT_SUBS or len(args) != 2:
            return sub_error("OBJECT", args[0], _OBJECT_SUBS + (b"HELP",))
        ks = self.keyspace
        value = ks.lookup_notouch(db, args[1])
        if value is None:
            return None
        if sub == b"ENCODING":
            return encoding_of(value).encode()
        if sub == b"REFCOUNT":
            return refcount_of(value)
        if sub == b"IDLETIME":
            return _IDLE_ERR if ks.lfu else ks.idle_seconds(db, args[1])
        return ks.lfu_freq(db, args[1]) if ks.lfu else _FREQ_ERR

    def _cmd_memory(self, db, args):
        sub = args[0].upper()
        if sub == b"HELP" and len(args) == 1:
            return help_lines("MEMORY")
        if sub == b"USAGE" and len(args) >= 2:
            return self._memory_usage(db, args)
        if sub == b"STATS" and len(args) == 1:
            return self._memory_stats()
        if sub == b"DOCTOR" and len(args) == 1:
            return (b"Hi Sam, I can't find any memory issue in your instance. "
                    b"I can only account for what occurs on this base.")
        return sub_error("MEMORY", args[0], (b"HELP", b"USAGE", b"STATS", b"DOCTOR"))

    def _memory_usage(self, db, args):
        if len(args) not in (2, 4):
            return SYNTAX_ERR
        if len(args) == 4:
            if args[2].upper() != b"SAMPLES":
                return SYNTAX_ERR
            samples = parse_ll(args[3])
            if samples is None or samples < 0:
                return Error(ERR, "value is out of range, must be positive" if samples is not None
                             else "value is not an integer or out of range")
        key = args[1]
        value = self.keyspace.lookup_notouch(db, key)
        if value is None:
            return None
        size = entry_size(key, value)
        if self.keyspace.get_expire(db, key) is not None:
            size += TTL_OVERHEAD
        if self.keyspace.tracking_access:
            size += ACCESS_OVERHEAD
        return size

    def _memory_stats(self):
        """Redis's field names for what the model knows: the keyspace's estimate per db."""
        ks = self.keyspace
        out: list = [b"peak.allocated", ks.used_memory, b"total.allocated", ks.used_memory,
                     b"dataset.bytes", ks.used_memory]
        total = 0
        for db in range(NUM_DBS):
            keys = ks.dbsize(db)
            if keys:
                total += keys
                out += [f"db.{db}".encode(), [b"overhead.hashtable.main", 0,
                                              b"overhead.hashtable.expires", 0]]
        out += [b"keys.count", total,
                b"keys.bytes-per-key", ks.used_memory // total if total else 0]
        return out
