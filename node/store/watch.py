"""WATCH: which clients watch which keys, and whether a change has touched them since.

Design:
- A key is dirtied by what changed it, and what changed the keyspace is exactly what the
  executor propagated (``Executor.propagated``: writes, lazy and active expiry, eviction,
  FLUSHDB/FLUSHALL, SWAPDB, MOVE, COPY, RENAME's two keys), the same entries that make the AOF
  replay correct. So no write path is hooked: ``sync`` reads the entries propagated since its
  last call, and is called before every WATCH, UNWATCH and transaction check and before the log
  actor takes the entries (``take_propagated``). While nobody watches, ``sync`` is one test.
- State per client (the log actor's client key), bounded: at most ``max_per_client`` keys per
  client (WATCH past it is refused) and ``max_total`` overall; past that the oldest clients'
  states are dropped (``evicted_clients``), and a transaction sent with ``watched`` whose state
  is gone is aborted, never run unguarded. A client's state goes with EXEC, UNWATCH, a Forget
  and the loss of its front.
- Redis's rules for keys that do not exist: FLUSHDB, FLUSHALL and SWAPDB dirty only watched
  keys that exist (in either db, for SWAPDB). A key that existed when watched and was not
  changed since still exists, and one created since was dirtied by its creation, so "existed at
  WATCH" answers the question for FLUSH*. WATCH looks the key up first, so a key whose TTL has
  passed is deleted (its DEL propagated) before the watch starts: a stale key never fails EXEC.
"""
from __future__ import annotations

from aofnode.store.keyspace import SHARD_MASK

__all__ = ["WatchTable", "MAX_WATCHED_PER_CLIENT", "MAX_WATCHED_TOTAL", "written_keys"]

# Redis has no limit; these bound the log actor's memory (~250 bytes a watched key): 10,000
# keys for one client is far past any optimistic-locking use, 100,000 in all is ~25 MB.
MAX_WATCHED_PER_CLIENT = 10_000
MAX_WATCHED_TOTAL = 100_000

# Where the keys a propagated entry changes are, by NAME (the rest: the first argument).
_ALL_ARGS = frozenset({"DEL", "UNLINK"})
_PAIRS = frozenset({"MSET", "MSETNX"})
_FIRST_TWO = frozenset({"RENAME", "RENAMENX", "LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH", "SMOVE"})
_SECOND = frozenset({"BITOP"})
_WHOLE_DB = frozenset({"FLUSHDB", "FLUSHALL", "SWAPDB"})
_SPECIAL = _ALL_ARGS | _PAIRS | _FIRST_TWO | _SECOND | _WHOLE_DB | {"MOVE", "COPY"}


def written_keys(entry: list) -> list[tuple[int, bytes]]:
    """The (db, key) pairs a propagated entry ``[db, NAME, *args]`` changed (not FLUSH*/SWAPDB)."""
    db, name, args = entry[0], entry[1], entry[2:]
    if not args:
        return []
    if name in _ALL_ARGS:
        return [(db, k) for k in args]
    if name in _PAIRS:
        return [(db, k) for k in args[0::2]]
    if name in _FIRST_TWO:
        return [(db, args[0]), (db, args[1])]
    if name in _SECOND:
        return [(db, args[1])] if len(args) > 1 else []
    if name == "MOVE":
        return [(db, args[0]), (int(args[1]), args[0])]
    if name == "COPY":
        dst_db = int(args[3]) if len(args) > 3 and args[2].upper() == b"DB" else db
        return [(dst_db, args[1])]
    return [(db, args[0])]


class _ClientWatch:
    __slots__ = ("keys", "dirty")

    def __init__(self) -> None:
        self.keys: dict[tuple[int, bytes], bool] = {}  # (db, key) -> it existed when watched
        self.dirty = False


class WatchTable:
    def __init__(self, executor, max_per_client: int = MAX_WATCHED_PER_CLIENT,
                 max_total: int = MAX_WATCHED_TOTAL) -> None:
        self.executor = executor
        self.max_per_client = max_per_client
        self.max_total = max_total
        self.clients: dict[int, _ClientWatch] = {}  # oldest first: eviction order
        self.by_key: dict[tuple[int, bytes], set[int]] = {}
        self.total = 0
        self._list: list = executor.propagated  # the list ``_seen`` counts in
        self._seen = 0  # entries of it already read
        self.stats = {"watch_evicted_clients": 0, "exec_aborted_watch": 0, "exec_ok": 0}

    # -- what changed -----------------------------------------------------------------------------

    def sync(self) -> None:
        """Dirty the watchers of every key changed since the last call. Whoever takes the
        executor's entries must take them through ``take_propagated`` (a new list is read from
        its start, but entries taken behind this table's back are never seen)."""
        entries = self.executor.propagated
        if entries is not self._list:
            self._list, self._seen = entries, 0
        if self._seen >= len(entries):
            return
        if self.by_key:
            for entry in entries[self._seen:]:
                self._note(entry)
        self._seen = len(entries)

    def take_propagated(self) -> list:
        """The executor's ``take_propagated``, with every entry read first."""
        if self.by_key:
            self.sync()
        taken = self.executor.take_propagated()
        self._list, self._seen = self.executor.propagated, 0
        return taken

    def _note(self, entry: list) -> None:
        name = entry[1]
        if name not in _SPECIAL:  # most entries: the first argument is the one key changed
            if len(entry) > 2:
                watchers = self.by_key.get((entry[0], entry[2]))
                if watchers:
                    self._dirty(watchers)
            return
        if name in _WHOLE_DB:
            self._note_db(entry)
            return
        by_key = self.by_key
        for pair in written_keys(entry):
            watchers = by_key.get(pair)
            if watchers:
                self._dirty(watchers)

    def _dirty(self, watchers: set[int]) -> None:
        for client in watchers:
            self.clients[client].dirty = True

    def _note_db(self, entry: list) -> None:
        name = entry[1]
        if name == "FLUSHALL":
            dbs = None
        elif name == "FLUSHDB":
            dbs = {entry[0]}
        else:
            dbs = {int(entry[2]), int(entry[3])}
        exists = self._exists
        for (db, key), watchers in self.by_key.items():
            if dbs is not None and db not in dbs:
                continue
            for client in watchers:
                watch = self.clients[client]
                if name == "SWAPDB":
                    hit = watch.keys[(db, key)] or any(exists(d, key) for d in (dbs or ()))
                else:
                    hit = watch.keys[(db, key)]
                if hit:
                    watch.dirty = True

    def _exists(self, db: int, key: bytes) -> bool:
        """Present in memory, without expiring it (SWAPDB's rule is about presence)."""
        ks = self.executor.keyspace
        return ks.get_expire(db, key) is not None or key in ks.dbs[db].data[hash(key) & SHARD_MASK]

    # -- the commands -----------------------------------------------------------------------------

    def watch(self, client: int, db: int, keys) -> str | tuple[str, str]:
        """WATCH: "OK", or (code, message) when the limit refuses it."""
        lookup = self.executor.keyspace.lookup
        existed = {key: lookup(db, key) is not None for key in keys}  # expires a stale key first
        self.sync()
        watch = self.clients.get(client)
        mine = len(watch.keys) if watch is not None else 0
        new = [k for k in existed if (db, k) not in (watch.keys if watch is not None else ())]
        if mine + len(new) > self.max_per_client:
            return ("ERR", f"WATCH would watch {mine + len(new)} keys for this client; the limit "
                           f"is {self.max_per_client} (max-watched-keys-per-client, docs/limits.md)")
        if watch is None:
            watch = self.clients[client] = _ClientWatch()
        for key in new:
            watch.keys[(db, key)] = existed[key]
            self.by_key.setdefault((db, key), set()).add(client)
        self.total += len(new)
        self._make_room(client)
        return "OK"

    def _make_room(self, keep: int) -> None:
        while self.total > self.max_total:
            oldest = next(iter(self.clients))
            if oldest == keep:
                break
            self.forget(oldest)
            self.stats["watch_evicted_clients"] += 1

    def forget(self, client: int) -> None:
        """UNWATCH, EXEC, a Forget: drop the client's state."""
        watch = self.clients.pop(client, None)
        if watch is None:
            return
        by_key = self.by_key
        for pair in watch.keys:
            watchers = by_key.get(pair)
            if watchers is not None:
                watchers.discard(client)
                if not watchers:
                    del by_key[pair]
        self.total -= len(watch.keys)

    def drop_owner(self, base: int, mask: int) -> None:
        """Every client of a front connection that is gone (keys ``base | n``)."""
        for client in [c for c in self.clients if c & ~mask == base]:
            self.forget(client)

    def exec_allowed(self, client: int, watched: bool) -> bool:
        """Check and end the client's watch (EXEC unwatches): False if the transaction must not
        run (a watched key changed, or its TTL passed, or the state is gone while ``watched``)."""
        self.sync()
        watch = self.clients.get(client)
        if watch is None:
            ok = not watched
        else:
            ok = not watch.dirty and not self._expired_since(watch)
            self.forget(client)
        self.stats["exec_ok" if ok else "exec_aborted_watch"] += 1
        return ok

    def _expired_since(self, watch: _ClientWatch) -> bool:
        """A key that existed when watched whose TTL has passed, not yet reclaimed (Redis 7.0:
        the key is logically gone, so it changed)."""
        ks = self.executor.keyspace
        now = None
        for (db, key), existed in watch.keys.items():
            if existed:
                when = ks.get_expire(db, key)
                if when is not None:
                    now = now if now is not None else ks.clock_ms()
                    if when <= now:
                        return True
        return False

    def info(self) -> dict:
        return {"watching_clients": len(self.clients), "watched_keys": self.total,
                "max_watched_keys_per_client": self.max_per_client,
                "max_watched_keys": self.max_total, **self.stats}
