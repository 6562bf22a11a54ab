"""Where each command's keys are and what it does to them: Redis 7.0's key specs, for COMMAND
GETKEYS and GETKEYSANDFLAGS (node/fronts/resp_command.py).

Design:
- One row per command of protocol/keyspecs.py that has keys, taken from redis-server 7.0.15's
  COMMAND INFO key specs (tests/integration/test_command_info.py checks them against a live one). Every
  spec of these commands begins at an argument index and finds its keys by a range or by a
  key count, so a spec is ``(begin, "range", lastkey, step, flags)`` (``lastkey`` relative to
  ``begin``, negative from the end) or ``(begin, "keynum", keynumidx, firstkey, flags)``
  (the count at ``begin + keynumidx``, the keys from ``begin + firstkey``), as Redis's
  ``getKeysUsingKeySpecs`` reads them. A spec that begins at a keyword (GEORADIUS's STORE and
  STOREDIST) is ``(startfrom, "keyword KW", lastkey, step, flags)``: its keys follow the first
  ``KW`` found from ``startfrom`` on (never the last argument, which can have no key after it),
  and it finds none when there is no such keyword. ``flags`` are Redis's key flags (RO, RW, OW,
  access, update, insert, delete).
- Never executes anything.
"""
from __future__ import annotations

__all__ = ["KEY_SPECS", "keys_and_flags"]

Spec = tuple[int, str, int, int, str]

KEY_SPECS: dict[str, tuple[Spec, ...]] = {
    "append": ((1, "range", 0, 1, "RW insert"),),
    "bitcount": ((1, "range", 0, 1, "RO access"),),
    "bitfield": ((1, "range", 0, 1, "RW access update variable_flags"),),
    "bitfield_ro": ((1, "range", 0, 1, "RO access"),),
    "bitop": ((2, "range", 0, 1, "OW update"), (3, "range", -1, 1, "RO access"),),
    "bitpos": ((1, "range", 0, 1, "RO access"),),
    "blmove": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "RW insert"),),
    "blmpop": ((2, "keynum", 0, 1, "RW access delete"),),
    "blpop": ((1, "range", -2, 1, "RW access delete"),),
    "brpop": ((1, "range", -2, 1, "RW access delete"),),
    "brpoplpush": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "RW insert"),),
    "bzmpop": ((2, "keynum", 0, 1, "RW access delete"),),
    "bzpopmax": ((1, "range", -2, 1, "RW access delete"),),
    "bzpopmin": ((1, "range", -2, 1, "RW access delete"),),
    "copy": ((1, "range", 0, 1, "RO access"), (2, "range", 0, 1, "OW update"),),
    "decr": ((1, "range", 0, 1, "RW access update"),),
    "decrby": ((1, "range", 0, 1, "RW access update"),),
    "del": ((1, "range", -1, 1, "RM delete"),),
    "dump": ((1, "range", 0, 1, "RO access"),),
    "eval": ((2, "keynum", 0, 1, "RW access update"),),
    "eval_ro": ((2, "keynum", 0, 1, "RO access"),),
    "evalsha": ((2, "keynum", 0, 1, "RW access update"),),
    "evalsha_ro": ((2, "keynum", 0, 1, "RO access"),),
    "fcall": ((2, "keynum", 0, 1, "RW access update"),),
    "fcall_ro": ((2, "keynum", 0, 1, "RO access"),),
    "exists": ((1, "range", -1, 1, "RO"),),
    "expire": ((1, "range", 0, 1, "RW update"),),
    "expireat": ((1, "range", 0, 1, "RW update"),),
    "expiretime": ((1, "range", 0, 1, "RO access"),),
    "geoadd": ((1, "range", 0, 1, "RW update"),),
    "geodist": ((1, "range", 0, 1, "RO access"),),
    "geohash": ((1, "range", 0, 1, "RO access"),),
    "geopos": ((1, "range", 0, 1, "RO access"),),
    "georadius": ((1, "range", 0, 1, "RO access"), (6, "keyword STORE", 0, 1, "OW update"),
                  (6, "keyword STOREDIST", 0, 1, "OW update"),),
    "georadius_ro": ((1, "range", 0, 1, "RO access"),),
    "georadiusbymember": ((1, "range", 0, 1, "RO access"), (5, "keyword STORE", 0, 1, "OW update"),
                          (5, "keyword STOREDIST", 0, 1, "OW update"),),
    "georadiusbymember_ro": ((1, "range", 0, 1, "RO access"),),
    "geosearch": ((1, "range", 0, 1, "RO access"),),
    "geosearchstore": ((1, "range", 0, 1, "OW update"), (2, "range", 0, 1, "RO access"),),
    "get": ((1, "range", 0, 1, "RO access"),),
    "getbit": ((1, "range", 0, 1, "RO access"),),
    "getdel": ((1, "range", 0, 1, "RW access delete"),),
    "getex": ((1, "range", 0, 1, "RW access update"),),
    "getrange": ((1, "range", 0, 1, "RO access"),),
    "getset": ((1, "range", 0, 1, "RW access update"),),
    "hdel": ((1, "range", 0, 1, "RW delete"),),
    "hexists": ((1, "range", 0, 1, "RO"),),
    "hget": ((1, "range", 0, 1, "RO access"),),
    "hgetall": ((1, "range", 0, 1, "RO access"),),
    "hincrby": ((1, "range", 0, 1, "RW access update"),),
    "hincrbyfloat": ((1, "range", 0, 1, "RW access update"),),
    "hkeys": ((1, "range", 0, 1, "RO access"),),
    "hlen": ((1, "range", 0, 1, "RO"),),
    "hmget": ((1, "range", 0, 1, "RO access"),),
    "hmset": ((1, "range", 0, 1, "RW update"),),
    "hrandfield": ((1, "range", 0, 1, "RO access"),),
    "hscan": ((1, "range", 0, 1, "RO access"),),
    "hset": ((1, "range", 0, 1, "RW update"),),
    "hsetnx": ((1, "range", 0, 1, "RW insert"),),
    "hstrlen": ((1, "range", 0, 1, "RO"),),
    "hvals": ((1, "range", 0, 1, "RO access"),),
    "incr": ((1, "range", 0, 1, "RW access update"),),
    "incrby": ((1, "range", 0, 1, "RW access update"),),
    "incrbyfloat": ((1, "range", 0, 1, "RW access update"),),
    "lcs": ((1, "range", 1, 1, "RO access"),),
    "lindex": ((1, "range", 0, 1, "RO access"),),
    "linsert": ((1, "range", 0, 1, "RW insert"),),
    "llen": ((1, "range", 0, 1, "RO"),),
    "lmove": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "RW insert"),),
    "lmpop": ((1, "keynum", 0, 1, "RW access delete"),),
    "lpop": ((1, "range", 0, 1, "RW access delete"),),
    "lpos": ((1, "range", 0, 1, "RO access"),),
    "lpush": ((1, "range", 0, 1, "RW insert"),),
    "lpushx": ((1, "range", 0, 1, "RW insert"),),
    "lrange": ((1, "range", 0, 1, "RO access"),),
    "lrem": ((1, "range", 0, 1, "RW delete"),),
    "lset": ((1, "range", 0, 1, "RW update"),),
    "ltrim": ((1, "range", 0, 1, "RW delete"),),
    "memory|usage": ((2, "range", 0, 1, "RO"),),
    "mget": ((1, "range", -1, 1, "RO access"),),
    "move": ((1, "range", 0, 1, "RW access update"),),
    "mset": ((1, "range", -1, 2, "OW update"),),
    "msetnx": ((1, "range", -1, 2, "OW insert"),),
    "object|encoding": ((2, "range", 0, 1, "RO"),),
    "object|freq": ((2, "range", 0, 1, "RO"),),
    "object|idletime": ((2, "range", 0, 1, "RO"),),
    "object|refcount": ((2, "range", 0, 1, "RO"),),
    "persist": ((1, "range", 0, 1, "RW update"),),
    "pexpire": ((1, "range", 0, 1, "RW update"),),
    "pexpireat": ((1, "range", 0, 1, "RW update"),),
    "pexpiretime": ((1, "range", 0, 1, "RO access"),),
    "psetex": ((1, "range", 0, 1, "OW update"),),
    "pttl": ((1, "range", 0, 1, "RO access"),),
    "rename": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "OW update"),),
    "renamenx": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "OW insert"),),
    "restore": ((1, "range", 0, 1, "OW update"),),
    "rpop": ((1, "range", 0, 1, "RW access delete"),),
    "rpoplpush": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "RW insert"),),
    "rpush": ((1, "range", 0, 1, "RW insert"),),
    "rpushx": ((1, "range", 0, 1, "RW insert"),),
    "sadd": ((1, "range", 0, 1, "RW insert"),),
    "scard": ((1, "range", 0, 1, "RO"),),
    "sdiff": ((1, "range", -1, 1, "RO access"),),
    "sdiffstore": ((1, "range", 0, 1, "OW update"), (2, "range", -1, 1, "RO access"),),
    "set": ((1, "range", 0, 1, "RW access update variable_flags"),),
    "setbit": ((1, "range", 0, 1, "RW access update"),),
    "setex": ((1, "range", 0, 1, "OW update"),),
    "setnx": ((1, "range", 0, 1, "OW insert"),),
    "setrange": ((1, "range", 0, 1, "RW update"),),
    "sinter": ((1, "range", -1, 1, "RO access"),),
    "sintercard": ((1, "keynum", 0, 1, "RO access"),),
    "sinterstore": ((1, "range", 0, 1, "RW update"), (2, "range", -1, 1, "RO access"),),
    "sismember": ((1, "range", 0, 1, "RO"),),
    "smembers": ((1, "range", 0, 1, "RO access"),),
    "smismember": ((1, "range", 0, 1, "RO access"),),
    "smove": ((1, "range", 0, 1, "RW access delete"), (2, "range", 0, 1, "RW insert"),),
    "sort": ((1, "range", 0, 1, "RO access"),),
    "sort_ro": ((1, "range", 0, 1, "RO access"),),
    "spop": ((1, "range", 0, 1, "RW access delete"),),
    "srandmember": ((1, "range", 0, 1, "RO access"),),
    "srem": ((1, "range", 0, 1, "RW delete"),),
    "sscan": ((1, "range", 0, 1, "RO access"),),
    "strlen": ((1, "range", 0, 1, "RO"),),
    "substr": ((1, "range", 0, 1, "RO access"),),
    "sunion": ((1, "range", -1, 1, "RO access"),),
    "sunionstore": ((1, "range", 0, 1, "OW update"), (2, "range", -1, 1, "RO access"),),
    "touch": ((1, "range", -1, 1, "RO"),),
    "ttl": ((1, "range", 0, 1, "RO access"),),
    "type": ((1, "range", 0, 1, "RO"),),
    "unlink": ((1, "range", -1, 1, "RM delete"),),
    "watch": ((1, "range", -1, 1, "RO"),),
    "zadd": ((1, "range", 0, 1, "RW update"),),
    "zcard": ((1, "range", 0, 1, "RO"),),
    "zcount": ((1, "range", 0, 1, "RO access"),),
    "zdiff": ((1, "keynum", 0, 1, "RO access"),),
    "zdiffstore": ((1, "range", 0, 1, "OW update"), (2, "keynum", 0, 1, "RO access"),),
    "zincrby": ((1, "range", 0, 1, "RW access update"),),
    "zinter": ((1, "keynum", 0, 1, "RO access"),),
    "zintercard": ((1, "keynum", 0, 1, "RO access"),),
    "zinterstore": ((1, "range", 0, 1, "OW update"), (2, "keynum", 0, 1, "RO access"),),
    "zlexcount": ((1, "range", 0, 1, "RO access"),),
    "zmpop": ((1, "keynum", 0, 1, "RW access delete"),),
    "zmscore": ((1, "range", 0, 1, "RO access"),),
    "zpopmax": ((1, "range", 0, 1, "RW access delete"),),
    "zpopmin": ((1, "range", 0, 1, "RW access delete"),),
    "zrandmember": ((1, "range", 0, 1, "RO access"),),
    "zrange": ((1, "range", 0, 1, "RO access"),),
    "zrangebylex": ((1, "range", 0, 1, "RO access"),),
    "zrangebyscore": ((1, "range", 0, 1, "RO access"),),
    "zrangestore": ((1, "range", 0, 1, "OW update"), (2, "range", 0, 1, "RO access"),),
    "zrank": ((1, "range", 0, 1, "RO access"),),
    "zrem": ((1, "range", 0, 1, "RW delete"),),
    "zremrangebylex": ((1, "range", 0, 1, "RW delete"),),
    "zremrangebyrank": ((1, "range", 0, 1, "RW delete"),),
    "zremrangebyscore": ((1, "range", 0, 1, "RW delete"),),
    "zrevrange": ((1, "range", 0, 1, "RO access"),),
    "zrevrangebylex": ((1, "range", 0, 1, "RO access"),),
    "zrevrangebyscore": ((1, "range", 0, 1, "RO access"),),
    "zrevrank": ((1, "range", 0, 1, "RO access"),),
    "zscan": ((1, "range", 0, 1, "RO access"),),
    "zscore": ((1, "range", 0, 1, "RO access"),),
    "zunion": ((1, "keynum", 0, 1, "RO access"),),
    "zunionstore": ((1, "range", 0, 1, "OW update"), (2, "keynum", 0, 1, "RO access"),),
}


def _spec_keys(spec: Spec, argv: list[bytes]) -> list[bytes] | None:
    """The keys one spec finds in ``argv`` (the command name at 0), or None when the arguments
    do not hold them (a key count that is not a number or runs past the end)."""
    begin, kind, a, b, _ = spec
    if kind.startswith("keyword "):
        word = kind[8:].encode()
        at = next((i for i in range(begin, len(argv) - 1) if argv[i].upper() == word), None)
        if at is None:
            return []
        begin, kind = at + 1, "range"
    if begin >= len(argv):
        return None
    if kind == "range":
        last = begin + a if a >= 0 else len(argv) + a
        return argv[begin:last + 1:b] if last < len(argv) else None
    try:
        count = int(argv[begin + a])
    except (IndexError, ValueError):
        return None
    first = begin + b
    if count < 0 or first + count > len(argv):
        return None
    return argv[first:first + count]


def _set_flags(argv: list[bytes]) -> str:
    """SET's key flags depend on GET (Redis's setGetKeys)."""
    return "RW access update" if any(a.upper() == b"GET" for a in argv[3:]) else "OW update"


def _bitfield_flags(argv: list[bytes]) -> str:
    """BITFIELD reads only when every operation is a GET (Redis's bitfieldGetKeys)."""
    i = 2
    while i < len(argv):
        op, left = argv[i].upper(), len(argv) - i - 1
        if op == b"GET" and left >= 2:
            i += 3
        elif op == b"OVERFLOW" and left >= 1:
            i += 2
        else:  # SET, INCRBY or a syntax error: not read-only
            return "RW access update"
    return "RO access"


# Commands whose key flags depend on their arguments (Redis's "variable_flags").
_VARIABLE = {"set": _set_flags, "bitfield": _bitfield_flags}
_SORT_SKIP = {b"LIMIT": 2, b"GET": 1, b"BY": 1}


def sort_store_key(argv: list[bytes]) -> bytes | None:
    """SORT's STORE key (the last one given): its key spec is "unknown", since STORE may come
    anywhere; the options are skipped with their arguments, as Redis's sortGetKeys does."""
    found, i = None, 2
    while i < len(argv):
        word = argv[i].upper()
        if word == b"STORE" and i + 1 < len(argv):
            found = argv[i + 1]
            i += 1
        else:
            i += _SORT_SKIP.get(word, 0)
        i += 1
    return found


def keys_and_flags(name: str, argv: list[bytes]) -> list[tuple[bytes, list[str]]] | None:
    """Each key of ``argv`` for the command whose full name is ``name``, with its flags, in
    the order of the command's specs; [] for a command without keys; None when the arguments
    do not say where its keys are."""
    out: list[tuple[bytes, list[str]]] = []
    for spec in KEY_SPECS.get(name, ()):
        keys = _spec_keys(spec, argv)
        if keys is None:
            return None
        variable = _VARIABLE.get(name)
        flags = (variable(argv) if variable is not None else spec[4]).split()
        out.extend((key, flags) for key in keys)
    if name == "sort":
        store = sort_store_key(argv)
        if store is not None:
            out.append((store, ["OW", "update"]))
    return out
