"""The command table: every command aofnode accepts, with its arity and flags.

This module owns the *shape* of each command and nothing else: it never executes anything
(``node/store/executor.py`` does) and never touches a socket. The server's decoder (server.py)
validates every decoded request against this table (``CommandSpec.accepts`` is the one arity
rule), so a request that reaches the log actor has a known name and the right number of
arguments. Arities and flags are Redis 7's, so a Redis client library's expectations hold;
``CommandSpec`` says what each flag decides. The databases are here too: ``NUM_DBS``, and
``parse_select`` for SELECT's argument, which both fronts and the log actor check by one rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ERR, Error

__all__ = ["CommandSpec", "COMMANDS", "FRONT_COMMANDS", "NUM_DBS", "parse_select"]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the command table.

    * ``arity`` follows Redis: it counts the command name itself, and a negative value ``-N``
      means "at least N".
    * ``write``: the log actor refuses such a command with MISCONF while the AOF is not
      writable, and turns the replies of a cycle's writes into MISCONF when that cycle's append
      fails. It does not decide AOF propagation: the executor logs what actually changed, and a
      write that changed nothing logs nothing. (Before the log actor is ready the front answers
      LOADING to every command, reads included, except SELECT and HELLO, which it answers.)
    * ``denyoom`` (Redis's flag): past ``maxmemory`` the command gets an OOM error unless
      eviction makes room, while reads, deletes and TTL changes go on working. SET, SETNX,
      MSET, APPEND, the INCR family, HSET and HINCRBY have it; GETDEL, DEL, RENAME, the EXPIRE
      family, PERSIST, HDEL and FLUSH* do not.
    * ``retry_safe``: sending the command again after a timeout yields the same state and the
      same reply. Only read-only and connection commands qualify; no write does (``SET k v`` is
      idempotent for the state but not for ``SET k v GET`` / ``NX``, ``INCR`` is neither,
      ``DEL`` changes its reply), so writes are not classified case by case.
    """

    name: str  # upper-case, as used as the key of COMMANDS
    arity: int  # Redis convention: includes the name; -N means at least N
    write: bool  # may change the keyspace
    retry_safe: bool  # may be re-sent after a timeout without changing the outcome
    summary: str
    denyoom: bool = False  # may grow memory: refused past maxmemory (Redis's denyoom)

    def accepts(self, argc: int) -> bool:
        """True if a request of ``argc`` elements (name included) has a valid arity."""
        arity = self.arity
        return argc == arity if arity > 0 else argc >= -arity


# Flags (write, retry_safe, denyoom), as short tuples so each row of the table fits on one line.
_READ = (False, True, False)  # read-only or connection command: retry-safe
_WRITE = (True, False, False)  # changes the keyspace: never retry-safe
_GROW = (True, False, True)  # a write that may grow memory: denyoom
_ADMIN = (False, False, False)  # neither: e.g. BGREWRITEAOF starts a job, a retry gets BUSY
_RANDOM = (False, False, False)  # a read with a random reply: a retry gets another reply

_TABLE: tuple[tuple[str, int, tuple[bool, bool, bool], str], ...] = (
    # connection and server
    ("PING", -1, _READ, "PING [message]: PONG, or the message"),
    ("ECHO", 2, _READ, "ECHO message: the message"),
    ("HELLO", -1, _READ, "HELLO [protover]: server name, version and protocol version"),
    ("SELECT", 2, _READ, "SELECT index: change the database of this connection"),
    ("INFO", -1, _READ, "INFO [section ...]: server information as a map"),
    ("DBSIZE", 1, _READ, "DBSIZE: number of keys in the current database"),
    ("BGREWRITEAOF", 1, _ADMIN, "BGREWRITEAOF: start an AOF rewrite in the background"),
    ("TIME", 1, _READ, "TIME: unix time as [seconds, microseconds]"),
    ("SHUTDOWN", -1, _ADMIN, "SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: fsync the AOF, stop the node"),
    # pub/sub (node/log/pubsub.py): never in the AOF; PUBLISH's reply counts every front's receivers
    ("SUBSCRIBE", -2, _READ, "SUBSCRIBE channel [channel ...]: listen to channels (RESP)"),
    ("UNSUBSCRIBE", -1, _READ, "UNSUBSCRIBE [channel ...]: stop listening to channels"),
    ("PSUBSCRIBE", -2, _READ, "PSUBSCRIBE pattern [pattern ...]: listen to matching channels"),
    ("PUNSUBSCRIBE", -1, _READ, "PUNSUBSCRIBE [pattern ...]: stop listening to patterns"),
    ("PUBLISH", 3, _ADMIN, "PUBLISH channel message: the number of clients that received it"),
    ("MONITOR", 1, _ADMIN, "MONITOR: a line for every command the node runs (RESP)"),
    ("PUBSUB", -2, _READ, "PUBSUB CHANNELS [pattern]|NUMSUB [channel ...]|NUMPAT"),
    # introspection (node/log/introspect.py, node/store/objects.py); a subcommand's own arity
    # is checked where it runs, as Redis 7 checks ``config|get``'s
    ("CONFIG", -2, _ADMIN, "CONFIG GET pattern ...|SET name value ...|RESETSTAT|HELP"),
    ("OBJECT", -2, _READ, "OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key, OBJECT HELP"),
    ("MEMORY", -2, _READ, "MEMORY USAGE key [SAMPLES n]|STATS|DOCTOR|HELP"),
    ("SLOWLOG", -2, _ADMIN, "SLOWLOG GET [count]|LEN|RESET|HELP"),
    ("LATENCY", -2, _ADMIN, "LATENCY LATEST|HISTORY event|RESET [event ...]|HELP"),
    ("DEBUG", -2, _ADMIN, "DEBUG SLEEP|SET-ACTIVE-EXPIRE|RELOAD|DIGEST|DIGEST-VALUE|OBJECT|HELP"),
    # a write so that it is refused (MISCONF) while the AOF is not writable, and its OK turned
    # into MISCONF when its cycle's append fails: its OK says the AOF is durable
    ("SAVE", 1, _WRITE, "SAVE: OK once everything written so far is fdatasync'ed in the AOF"),
    # transactions: the block itself is a message with "multi": true (docs/protocol.md)
    ("WATCH", -2, _READ, "WATCH key [key ...]: abort this client's next transaction if a key changes"),
    ("UNWATCH", 1, _READ, "UNWATCH: forget this client's watched keys"),
    # strings
    ("SET", -3, _GROW, "SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]"),
    ("GET", 2, _READ, "GET key: the value, or nil"),
    ("GETDEL", 2, _WRITE, "GETDEL key: the value, and delete the key"),
    ("SETNX", 3, _GROW, "SETNX key value: set if absent, 1 if set"),
    ("MSET", -3, _GROW, "MSET key value [key value ...]"),
    ("MGET", -2, _READ, "MGET key [key ...]: the values, nil for missing"),
    ("APPEND", 3, _GROW, "APPEND key value: the new length"),
    ("STRLEN", 2, _READ, "STRLEN key: the length of the value"),
    ("INCR", 2, _GROW, "INCR key: add 1, the new value"),
    ("DECR", 2, _GROW, "DECR key: subtract 1, the new value"),
    ("INCRBY", 3, _GROW, "INCRBY key increment: the new value"),
    ("DECRBY", 3, _GROW, "DECRBY key decrement: the new value"),
    ("INCRBYFLOAT", 3, _GROW, "INCRBYFLOAT key increment: the new value (bulk)"),
    ("GETEX", -2, _WRITE, "GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: the value"),
    ("SETEX", 4, _GROW, "SETEX key seconds value"),
    ("PSETEX", 4, _GROW, "PSETEX key milliseconds value"),
    ("GETSET", 3, _GROW, "GETSET key value: the old value, or nil"),
    ("MSETNX", -3, _GROW, "MSETNX key value [key value ...]: 1 if every key was absent"),
    ("SETRANGE", 4, _GROW, "SETRANGE key offset value: the new length"),
    ("GETRANGE", 4, _READ, "GETRANGE key start end: the substring"),
    ("SUBSTR", 4, _READ, "SUBSTR key start end: the substring (GETRANGE)"),
    ("LCS", -3, _READ, "LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]"),
    ("SETBIT", 4, _GROW, "SETBIT key offset 0|1: the bit's old value"),
    ("GETBIT", 3, _READ, "GETBIT key offset: the bit"),
    ("BITCOUNT", -2, _READ, "BITCOUNT key [start end [BYTE|BIT]]: the number of set bits"),
    ("BITPOS", -3, _READ, "BITPOS key bit [start [end [BYTE|BIT]]]: the first such bit"),
    ("BITOP", -4, _GROW, "BITOP AND|OR|XOR|NOT destkey key [key ...]: the result's length"),
    ("BITFIELD", -2, _GROW, "BITFIELD key [GET|SET|INCRBY|OVERFLOW ...]: the values"),
    ("BITFIELD_RO", -2, _READ, "BITFIELD_RO key [GET type offset ...]: the values"),
    # keyspace
    ("DEL", -2, _WRITE, "DEL key [key ...]: number of keys deleted"),
    ("EXISTS", -2, _READ, "EXISTS key [key ...]: number of keys that exist"),
    ("TYPE", 2, _READ, "TYPE key: string, hash or none"),
    ("RENAME", 3, _WRITE, "RENAME key newkey"),
    ("EXPIRE", -3, _WRITE, "EXPIRE key seconds [NX|XX|GT|LT]"),
    ("PEXPIRE", -3, _WRITE, "PEXPIRE key milliseconds [NX|XX|GT|LT]"),
    ("EXPIREAT", -3, _WRITE, "EXPIREAT key unix-seconds [NX|XX|GT|LT]"),
    ("PEXPIREAT", -3, _WRITE, "PEXPIREAT key unix-milliseconds [NX|XX|GT|LT]"),
    ("TTL", 2, _READ, "TTL key: seconds to live, -1 no TTL, -2 no key"),
    ("PTTL", 2, _READ, "PTTL key: milliseconds to live, -1 no TTL, -2 no key"),
    ("PERSIST", 2, _WRITE, "PERSIST key: remove the TTL, 1 if removed"),
    ("KEYS", 2, _READ, "KEYS pattern: the keys matching a glob pattern"),
    ("SCAN", -2, _READ, "SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]"),
    ("FLUSHDB", -1, _WRITE, "FLUSHDB [ASYNC|SYNC]: delete every key of the current database"),
    ("FLUSHALL", -1, _WRITE, "FLUSHALL [ASYNC|SYNC]: delete every key of every database"),
    ("UNLINK", -2, _WRITE, "UNLINK key [key ...]: number of keys deleted (as DEL)"),
    ("TOUCH", -2, _READ, "TOUCH key [key ...]: number of keys that exist"),
    ("EXPIRETIME", 2, _READ, "EXPIRETIME key: unix seconds of expiry, -1 no TTL, -2 no key"),
    ("PEXPIRETIME", 2, _READ, "PEXPIRETIME key: unix ms of expiry, -1 no TTL, -2 no key"),
    ("RENAMENX", 3, _WRITE, "RENAMENX key newkey: 1 if renamed, 0 if newkey exists"),
    ("COPY", -3, _GROW, "COPY source destination [DB index] [REPLACE]: 1 if copied"),
    ("MOVE", 3, _WRITE, "MOVE key db: 1 if moved"),
    ("SWAPDB", 3, _WRITE, "SWAPDB index1 index2: exchange two databases"),
    ("RANDOMKEY", 1, _READ, "RANDOMKEY: a random key, or nil"),
    ("DUMP", 2, _READ, "DUMP key: the value in Redis's serialisation, or nil"),
    ("RESTORE", -4, _GROW, "RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ n]"),
    # hashes
    ("HSET", -4, _GROW, "HSET key field value [field value ...]: number of new fields"),
    ("HGET", 3, _READ, "HGET key field: the value, or nil"),
    ("HMGET", -3, _READ, "HMGET key field [field ...]: the values, nil for missing"),
    ("HDEL", -3, _WRITE, "HDEL key field [field ...]: number of fields deleted"),
    ("HGETALL", 2, _READ, "HGETALL key: fields and values"),
    ("HLEN", 2, _READ, "HLEN key: number of fields"),
    ("HEXISTS", 3, _READ, "HEXISTS key field: 1 or 0"),
    ("HINCRBY", 4, _GROW, "HINCRBY key field increment: the new value"),
    ("HKEYS", 2, _READ, "HKEYS key: the fields"),
    ("HVALS", 2, _READ, "HVALS key: the values"),
    # lists (node/store/lists.py)
    ("LPUSH", -3, _GROW, "LPUSH key element [element ...]: the new length"),
    ("RPUSH", -3, _GROW, "RPUSH key element [element ...]: the new length"),
    ("LPUSHX", -3, _GROW, "LPUSHX key element [element ...]: the new length, 0 if no list"),
    ("RPUSHX", -3, _GROW, "RPUSHX key element [element ...]: the new length, 0 if no list"),
    ("LPOP", -2, _WRITE, "LPOP key [count]: the first element(s), or nil"),
    ("RPOP", -2, _WRITE, "RPOP key [count]: the last element(s), or nil"),
    ("LLEN", 2, _READ, "LLEN key: the length of the list"),
    ("LINDEX", 3, _READ, "LINDEX key index: the element, or nil"),
    ("LSET", 4, _GROW, "LSET key index element"),
    ("LRANGE", 4, _READ, "LRANGE key start stop: the elements"),
    ("LTRIM", 4, _WRITE, "LTRIM key start stop: keep only that range"),
    ("LREM", 4, _WRITE, "LREM key count element: number removed"),
    ("LINSERT", 5, _GROW, "LINSERT key BEFORE|AFTER pivot element: the new length, -1, 0"),
    ("LPOS", -3, _READ, "LPOS key element [RANK r] [COUNT n] [MAXLEN len]: index(es)"),
    ("LMOVE", 5, _GROW, "LMOVE source destination LEFT|RIGHT LEFT|RIGHT: the element"),
    ("RPOPLPUSH", 3, _GROW, "RPOPLPUSH source destination: the element"),
    ("LMPOP", -4, _WRITE, "LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT n]: [key, elements]"),
    # blocking pops (node/store/blocking.py, node/log/blocking.py): timeout in seconds, 0 forever
    ("BLPOP", -3, _WRITE, "BLPOP key [key ...] timeout: [key, element], or nil on timeout"),
    ("BRPOP", -3, _WRITE, "BRPOP key [key ...] timeout: [key, element], or nil on timeout"),
    ("BLMOVE", 6, _GROW, "BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout: the element"),
    ("BRPOPLPUSH", 4, _GROW, "BRPOPLPUSH source destination timeout: the element, or nil"),
    ("BLMPOP", -5, _WRITE,
     "BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT n]: [key, elements], or nil"),
    ("BZPOPMIN", -3, _WRITE, "BZPOPMIN key [key ...] timeout: [key, member, score], or nil"),
    ("BZPOPMAX", -3, _WRITE, "BZPOPMAX key [key ...] timeout: [key, member, score], or nil"),
    ("BZMPOP", -5, _WRITE,
     "BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT n]: [key, [[m, s] ...]], or nil"),
    # sets (node/store/sets.py)
    ("SADD", -3, _GROW, "SADD key member [member ...]: number added"),
    ("SREM", -3, _WRITE, "SREM key member [member ...]: number removed"),
    ("SCARD", 2, _READ, "SCARD key: number of members"),
    ("SISMEMBER", 3, _READ, "SISMEMBER key member: 1 or 0"),
    ("SMISMEMBER", -3, _READ, "SMISMEMBER key member [member ...]: 1 or 0 each"),
    ("SMEMBERS", 2, _READ, "SMEMBERS key: the members"),
    ("SRANDMEMBER", -2, _RANDOM, "SRANDMEMBER key [count]: random member(s)"),
    ("SPOP", -2, _WRITE, "SPOP key [count]: remove and return random member(s)"),
    ("SMOVE", 4, _WRITE, "SMOVE source destination member: 1 if moved"),
    ("SINTER", -2, _READ, "SINTER key [key ...]: the intersection"),
    ("SUNION", -2, _READ, "SUNION key [key ...]: the union"),
    ("SDIFF", -2, _READ, "SDIFF key [key ...]: the first set minus the others"),
    ("SINTERSTORE", -3, _GROW, "SINTERSTORE destination key [key ...]: its cardinality"),
    ("SUNIONSTORE", -3, _GROW, "SUNIONSTORE destination key [key ...]: its cardinality"),
    ("SDIFFSTORE", -3, _GROW, "SDIFFSTORE destination key [key ...]: its cardinality"),
    ("SINTERCARD", -3, _READ, "SINTERCARD numkeys key [key ...] [LIMIT n]: the cardinality"),
    ("SSCAN", -3, _READ, "SSCAN key cursor [MATCH pattern] [COUNT n]: [cursor, members]"),
    # sorted sets (node/store/zsets.py, zsetalgebra.py)
    ("ZADD", -4, _GROW, "ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]"),
    ("ZINCRBY", 4, _GROW, "ZINCRBY key increment member: the new score"),
    ("ZSCORE", 3, _READ, "ZSCORE key member: the score, or nil"),
    ("ZMSCORE", -3, _READ, "ZMSCORE key member [member ...]: the scores, nil for missing"),
    ("ZCARD", 2, _READ, "ZCARD key: number of members"),
    ("ZCOUNT", 4, _READ, "ZCOUNT key min max: number of members in the score range"),
    ("ZLEXCOUNT", 4, _READ, "ZLEXCOUNT key min max: number of members in the lex range"),
    ("ZRANK", 3, _READ, "ZRANK key member: the rank, lowest score first, or nil"),
    ("ZREVRANK", 3, _READ, "ZREVRANK key member: the rank, highest score first, or nil"),
    ("ZRANGE", -4, _READ,
     "ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]"),
    ("ZRANGEBYSCORE", -4, _READ, "ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]"),
    ("ZREVRANGEBYSCORE", -4, _READ,
     "ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]"),
    ("ZRANGEBYLEX", -4, _READ, "ZRANGEBYLEX key min max [LIMIT offset count]"),
    ("ZREVRANGEBYLEX", -4, _READ, "ZREVRANGEBYLEX key max min [LIMIT offset count]"),
    ("ZREVRANGE", -4, _READ, "ZREVRANGE key start stop [WITHSCORES]"),
    ("ZRANGESTORE", -5, _GROW,
     "ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]: its size"),
    ("ZREM", -3, _WRITE, "ZREM key member [member ...]: number removed"),
    ("ZREMRANGEBYRANK", 4, _WRITE, "ZREMRANGEBYRANK key start stop: number removed"),
    ("ZREMRANGEBYSCORE", 4, _WRITE, "ZREMRANGEBYSCORE key min max: number removed"),
    ("ZREMRANGEBYLEX", 4, _WRITE, "ZREMRANGEBYLEX key min max: number removed"),
    ("ZPOPMIN", -2, _WRITE, "ZPOPMIN key [count]: the lowest members and scores"),
    ("ZPOPMAX", -2, _WRITE, "ZPOPMAX key [count]: the highest members and scores"),
    ("ZMPOP", -4, _WRITE, "ZMPOP numkeys key [key ...] MIN|MAX [COUNT n]: [key, [[m, s] ...]]"),
    ("ZRANDMEMBER", -2, _RANDOM, "ZRANDMEMBER key [count [WITHSCORES]]: random member(s)"),
    ("ZUNION", -3, _READ,
     "ZUNION numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]"),
    ("ZINTER", -3, _READ,
     "ZINTER numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]"),
    ("ZDIFF", -3, _READ, "ZDIFF numkeys key [key ...] [WITHSCORES]"),
    ("ZUNIONSTORE", -4, _GROW,
     "ZUNIONSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]"),
    ("ZINTERSTORE", -4, _GROW,
     "ZINTERSTORE dst numkeys key [key ...] [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]"),
    ("ZDIFFSTORE", -4, _GROW, "ZDIFFSTORE dst numkeys key [key ...]: its size"),
    ("ZINTERCARD", -3, _READ, "ZINTERCARD numkeys key [key ...] [LIMIT n]: the cardinality"),
    ("ZSCAN", -3, _READ, "ZSCAN key cursor [MATCH pattern] [COUNT n]: [cursor, [m, s ...]]"),
    ("HMSET", -4, _GROW, "HMSET key field value [field value ...]: OK"),
    ("HSETNX", 4, _GROW, "HSETNX key field value: 1 if the field was set"),
    ("HSTRLEN", 3, _READ, "HSTRLEN key field: the length of the value"),
    ("HINCRBYFLOAT", 4, _GROW, "HINCRBYFLOAT key field increment: the new value (bulk)"),
    ("HRANDFIELD", -2, _READ, "HRANDFIELD key [count [WITHVALUES]]: random fields"),
    ("HSCAN", -3, _READ, "HSCAN key cursor [MATCH pattern] [COUNT n]"),
    # SORT (node/store/sort.py): STORE is logged as the list it made
    ("SORT", -2, _GROW, "SORT key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA] [STORE dst]"),
    ("SORT_RO", -2, _READ, "SORT_RO key [BY p] [LIMIT o c] [GET p ...] [ASC|DESC] [ALPHA]"),
    # geo indexes: sorted sets whose scores are geohashes (node/store/geo.py)
    ("GEOADD", -5, _GROW, "GEOADD key [NX|XX] [CH] longitude latitude member [...]: number added"),
    ("GEOPOS", -2, _READ, "GEOPOS key [member ...]: [longitude, latitude] or nil each"),
    ("GEODIST", -4, _READ, "GEODIST key member1 member2 [M|KM|FT|MI]: the distance, or nil"),
    ("GEOHASH", -2, _READ, "GEOHASH key [member ...]: an 11-character geohash or nil each"),
    # the searches (node/store/geosearch.py): Redis flags GEORADIUS and GEORADIUSBYMEMBER write
    # and denyoom for their STORE option, so they are refused past maxmemory even without it
    ("GEORADIUS", -6, _GROW, "GEORADIUS key longitude latitude radius M|KM|FT|MI [WITHCOORD] "
     "[WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC|DESC] [STORE key] [STOREDIST key]: members "
     "within radius of the position"),
    ("GEORADIUS_RO", -6, _READ, "GEORADIUS_RO key longitude latitude radius M|KM|FT|MI "
     "[WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC|DESC]: read-only GEORADIUS"),
    ("GEORADIUSBYMEMBER", -5, _GROW, "GEORADIUSBYMEMBER key member radius M|KM|FT|MI [WITHCOORD] "
     "[WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC|DESC] [STORE key] [STOREDIST key]: members "
     "within radius of the member"),
    ("GEORADIUSBYMEMBER_RO", -5, _READ, "GEORADIUSBYMEMBER_RO key member radius M|KM|FT|MI "
     "[WITHCOORD] [WITHDIST] [WITHHASH] [COUNT count [ANY]] [ASC|DESC]: read-only GEORADIUSBYMEMBER"),
    ("GEOSEARCH", -7, _READ, "GEOSEARCH key FROMMEMBER member|FROMLONLAT longitude latitude "
     "BYRADIUS radius unit|BYBOX width height unit [ASC|DESC] [COUNT count [ANY]] [WITHCOORD] "
     "[WITHDIST] [WITHHASH]: members within a circle or a box"),
    ("GEOSEARCHSTORE", -8, _GROW, "GEOSEARCHSTORE destination source FROMMEMBER member|"
     "FROMLONLAT longitude latitude BYRADIUS radius unit|BYBOX width height unit [ASC|DESC] "
     "[COUNT count [ANY]] [STOREDIST]: GEOSEARCH stored as a sorted set, its size"),
    # scripting (node/store/scripting.py): EVAL may write, so it is a write (MISCONF-refused
    # while the AOF is not writable); the _RO forms refuse writes inside the script, and their
    # reply may change on a retry (math.random advances). SCRIPT LOAD/FLUSH are idempotent.
    ("EVAL", -3, _WRITE, "EVAL script numkeys [key ...] [arg ...]: the script's reply"),
    ("EVALSHA", -3, _WRITE, "EVALSHA sha1 numkeys [key ...] [arg ...]: a cached script's reply"),
    ("EVAL_RO", -3, _RANDOM, "EVAL_RO script numkeys [key ...] [arg ...]: read-only EVAL"),
    ("EVALSHA_RO", -3, _RANDOM, "EVALSHA_RO sha1 numkeys [key ...] [arg ...]: read-only"),
    ("SCRIPT", -2, _READ, "SCRIPT LOAD|EXISTS|FLUSH|KILL|HELP ...: the script cache"),
    # functions (node/store/functions.py): libraries are data, so FUNCTION LOAD/DELETE/FLUSH
    # are written to the AOF; FUNCTION is a write as a whole (MISCONF-refused, LIST included).
    ("FUNCTION", -2, _WRITE, "FUNCTION LOAD|DELETE|FLUSH|LIST|STATS|KILL ...: Lua libraries"),
    ("FCALL", -3, _WRITE, "FCALL function numkeys [key ...] [arg ...]: a function's reply"),
    ("FCALL_RO", -3, _RANDOM, "FCALL_RO function numkeys [key ...] [arg ...]: read-only"),
)

COMMANDS: dict[str, CommandSpec] = {
    name: CommandSpec(name, arity, write, retry_safe, summary, denyoom)
    for name, arity, (write, retry_safe, denyoom), summary in _TABLE
}


# --- Databases -------------------------------------------------------------------------------
# Commands a front answers, but for a part it forwards to the log actor: CLIENT UNBLOCK (the
# client it unblocks waits there) and CLIENT TRACKING's subcommands (the table is there). Not
# in COMMANDS, so the ZeroMQ wire refuses them
# (UNKNOWNCMD); only a checked sender (the RESP front, server.decode_message) may send them.
FRONT_COMMANDS = frozenset({"CLIENT"})

NUM_DBS = 16  # databases 0..15, as Redis's default


def parse_select(arg: bytes) -> int | Error:
    """SELECT's argument, by Redis's rules (string2ll, then the range): no sign but a leading
    minus, no leading zeros, no spaces; "01", "+1" and "-0" are refused as Redis refuses them."""
    text = arg.decode("ascii", "replace")
    if not _STRICT_INT.fullmatch(text) or len(text) > 20:
        return Error(ERR, "value is not an integer or out of range")
    n = int(text)
    if not -(1 << 63) <= n < (1 << 63):
        return Error(ERR, "value is not an integer or out of range")
    if not 0 <= n < NUM_DBS:
        return Error(ERR, "DB index is out of range")
    return n


_STRICT_INT = re.compile(r"0|-?[1-9][0-9]*")
