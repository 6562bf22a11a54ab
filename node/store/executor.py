"""The command executor: Redis 7 semantics on the keyspace, and AOF propagation.

Design
------
``Executor.execute(db, NAME, args)`` runs one command and returns its reply value (the types
are listed in docs/design.md). It does no I/O. The caller (the log actor) has already checked
the name and the arity against ``protocol/commands.py``; option syntax is checked here.

* Dispatch is one dict lookup of a bound method, built once in ``__init__``; the success path
  formats no strings. The log actor (node/log/introspect.py) reads the same table
  (``handlers``) and calls a handler itself when no maxmemory is set: one call less per
  command. The commands live in mixins (``_MIXINS``): ``strings.StringCommands``,
  ``stringops.StringOpCommands``, ``bits.BitCommands``, ``keys.KeyCommands``,
  ``dbops.DbCommands``, ``dump.DumpCommands``, ``hashes.HashCommands``, ``lists.ListCommands``,
  ``sets.SetCommands``, ``zsets.ZSetCommands``, ``zsetranges.ZSetRangeCommands``,
  ``zsetalgebra.ZSetAlgebraCommands``, ``geo.GeoCommands``, ``geosearch.GeoSearchCommands``,
  ``sort.SortCommands``,
  ``objects.ObjectCommands``, ``blocking.BlockingCommands`` (whose ``block_mode`` the log actor
  sets: a bare executor, a replay included, never blocks), ``scripting.ScriptCommands``,
  ``functions.FunctionCommands``. SELECT, HELLO and
  BGREWRITEAOF are not here: other actors own them.
* Propagation: every change appends one or more canonical AOF entries ``[db, "NAME", *bytes]``
  to ``propagated``, in the order the changes happened, including the ``DEL`` of a key that
  expired while a command looked it up. The caller drains them with ``take_propagated()`` after
  each batch, read-only commands included (a GET can expire a key). Canonical means: relative
  TTLs are absolute (``SET k v PXAT ms``, ``PEXPIREAT k ms``), expiries are ``DEL``, and a
  write that changed nothing logs nothing. docs/commands.md lists the form of every command.
* Replay: set ``loading = True`` and ``execute(entry[0], entry[1], entry[2:])`` every entry.
  While loading nothing expires and nothing is propagated, so replaying a node's entries into an
  empty keyspace rebuilds that node's keyspace exactly, TTLs included (tests/unit/test_commands.py
  checks it on random workloads).
* maxmemory (bytes, 0 = off) and ``maxmemory_policy`` (Redis 7.0's eight, ``eviction.py``), as
  Redis's ``processCommand``: before each command, while ``keyspace.used_memory > maxmemory``,
  every policy but noeviction evicts (``eviction.py``, ``maxmemory_samples`` candidates per
  eviction; each eviction is propagated as ``DEL`` and counted in ``evicted_keys``); if memory
  is still over the limit, a ``denyoom`` command (``protocol/commands.py``) gets the OOM error
  and does not run. Reads, deletes and TTL changes always run. Neither happens while loading: a
  replay must rebuild what was logged.
* Access stamps (keyspace.py): the policy says how a touch counts (LFU under allkeys-lfu and
  volatile-lfu, whatever the maxmemory); the owner reads the clock (``refresh_clock``), once
  per log cycle, not per command.
"""

from __future__ import annotations

from random import Random
from typing import Any, Callable

from aofnode.protocol.errors import OOM, UNKNOWNCMD, Error
from aofnode.protocol.commands import COMMANDS

from aofnode.store.bits import BitCommands
from aofnode.store.blocking import BlockingCommands
from aofnode.store.dbops import DbCommands
from aofnode.store.dump import DumpCommands
from aofnode.store.functions import FunctionCommands
from aofnode.store.geo import GeoCommands
from aofnode.store.geosearch import GeoSearchCommands
from aofnode.store.sort import SortCommands
from aofnode.store.eviction import (
    ALLKEYS_LRU, EVICTION_SAMPLES, LFU_POLICIES, NOEVICTION, POLICIES, evict,
)
from aofnode.store.hashes import HashCommands
from aofnode.store.keys import KeyCommands
from aofnode.store.lists import ListCommands
from aofnode.store.objects import ObjectCommands
from aofnode.store.scripting import ScriptCommands
from aofnode.store.sets import SetCommands
from aofnode.store.zsetalgebra import ZSetAlgebraCommands
from aofnode.store.zsetranges import ZSetRangeCommands
from aofnode.store.zsets import ZSetCommands
from aofnode.store.stringops import StringOpCommands
from aofnode.store.strings import StringCommands, arity_error
from aofnode.store.keyspace import NUM_DBS, Keyspace, wall_clock_ms

__all__ = ["OOM_ERR", "Executor"]

# INFO arguments that select every section (Redis 7 also has "everything" = all + modules).
_ALL_SECTIONS = frozenset(("all", "everything"))
# Sections INFO gives only when named or with all/everything, as Redis's commandstats.
_NOT_DEFAULT = frozenset(("commandstats", "latencystats"))
_DENYOOM = frozenset(name for name, spec in COMMANDS.items() if spec.denyoom)
# Redis's text for the OOM refusal.
OOM_ERR = Error(OOM, "command not allowed when used memory > 'maxmemory'")


_MIXINS = (StringCommands, StringOpCommands, BitCommands, KeyCommands, DbCommands,
           DumpCommands, HashCommands, ListCommands, SetCommands, ZSetCommands, ZSetRangeCommands,
           ZSetAlgebraCommands, GeoCommands, GeoSearchCommands, SortCommands, ObjectCommands,
           BlockingCommands,
           ScriptCommands, FunctionCommands)


class Executor(*_MIXINS):
    """Executes commands against a ``Keyspace``; see the module docstring."""

    def __init__(self, keyspace: Keyspace | None = None,
                 clock_ms: Callable[[], int] = wall_clock_ms,
                 info_provider: Callable[[], dict[str, dict]] | None = None) -> None:
        self.keyspace = keyspace if keyspace is not None else Keyspace()
        # The executor owns the keyspace's clock and expiry hook: one clock for every decision.
        self.keyspace.clock_ms = clock_ms
        self.keyspace.on_expire = self._on_expired
        self.keyspace.refresh_clock()
        self.clock_ms = clock_ms
        self.info_provider = info_provider
        self.propagated: list[list] = []
        self._loading = False
        self.keyspace.loading = False
        self.expired_keys = 0
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self.evicted_keys = 0
        self.active_expire = True  # DEBUG SET-ACTIVE-EXPIRE 0 turns the active cycle off
        self._maxmemory = 0
        self._maxmemory_policy = NOEVICTION
        self.maxmemory_samples = EVICTION_SAMPLES  # CONFIG SET maxmemory-samples
        # Bytes counted against maxmemory besides the dataset (Redis's used_memory_startup): the
        # log actor sets the empty keyspace's (EMPTY_KEYSPACE_BYTES), so a maxmemory below it
        # refuses every denyoom command, as Redis's 1-byte maxmemory does; 0 in a bare executor.
        self.memory_baseline = 0
        # Eviction's sampling: seeded by the OS; tests set a seeded Random for repeatable runs.
        self.eviction_rng = Random()
        # HRANDFIELD's and RANDOMKEY's choices: read-only commands, so never replayed.
        self.command_rng = Random()
        handlers: dict[str, Callable[[int, Any], Any]] = {
            "PING": self._cmd_ping, "ECHO": self._cmd_echo, "INFO": self._cmd_info,
        }
        for mixin in _MIXINS:
            for name, method in mixin.COMMANDS.items():
                handlers[name] = getattr(self, method)
        self._handlers = handlers

    @property
    def loading(self) -> bool:
        """Replay mode: no expiry, nothing propagated."""
        return self._loading

    @loading.setter
    def loading(self, value: bool) -> None:
        self._loading = bool(value)
        self.keyspace.loading = bool(value)

    @property
    def maxmemory(self) -> int:
        """The memory limit in bytes, against ``keyspace.used_memory``; 0: no limit."""
        return self._maxmemory

    @maxmemory.setter
    def maxmemory(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"maxmemory must be >= 0, not {value}")
        self._maxmemory = int(value)
        self._track_if_needed()

    @property
    def maxmemory_policy(self) -> str:
        """``noeviction`` (writes that may grow memory get OOM) or an eviction policy."""
        return self._maxmemory_policy

    @maxmemory_policy.setter
    def maxmemory_policy(self, value: str) -> None:
        if value not in POLICIES:
            raise ValueError(f"maxmemory_policy must be one of {POLICIES}, not {value!r}")
        self._maxmemory_policy = value
        self._track_if_needed()

    def _track_if_needed(self) -> None:
        # The ordered access dicts cost ~40 ns more per touch and ACCESS_OVERHEAD bytes per
        # key: only while allkeys-lru can evict. Ordering them is O(keys log keys), once.
        self.keyspace.track_access(bool(self._maxmemory) and
                                   self._maxmemory_policy == ALLKEYS_LRU)
        self.keyspace.set_lfu(self._maxmemory_policy in LFU_POLICIES)

    def refresh_clock(self) -> None:
        """Read the clock the access stamps use (the owner: once per cycle and tick)."""
        self.keyspace.refresh_clock()

    def execute(self, db: int, name: str, args) -> Any:
        """Run command ``name`` (upper-case) with ``args`` (bytes) in database ``db``."""
        handler = self._handlers.get(name)
        if handler is None:
            return Error(UNKNOWNCMD, f"unknown command '{name[:64]}'")
        if self._maxmemory:
            if (self.keyspace.used_memory + self.memory_baseline > self._maxmemory
                    and not self._loading):
                refused = self._make_room(name)
                if refused is not None:
                    return refused
        try:
            return handler(db, args)
        except IndexError:
            # Defensive only: the caller checks arity against the command table first.
            return arity_error(name)

    @property
    def handlers(self) -> dict[str, Callable[[int, Any], Any]]:
        """The dispatch table ``execute`` uses, for a caller that inlines its fast path (no
        maxmemory: then only the lookup and the arity guard); updated in place, never replaced."""
        return self._handlers

    def add_handler(self, name: str, handler: Callable[[int, Any], Any]) -> None:
        """A command the owner runs with its own state (the log actor's WATCH and UNWATCH)."""
        self._handlers[name] = handler

    def take_propagated(self) -> list[list]:
        """The entries propagated since the last call, oldest first; empties the queue."""
        out = self.propagated
        self.propagated = []
        return out

    def active_expire_cycle(self, budget_ms: float = 1.0) -> int:
        """Delete keys whose TTL passed, soonest first, for about ``budget_ms`` of real time.

        Each deletion propagates ``DEL``. Returns how many keys were deleted (0 while loading).
        """
        if not self.active_expire:
            return 0
        return self.keyspace.active_expire(budget_ms)

    def evict_now(self) -> None:
        """Evict down to maxmemory at once, as Redis does when CONFIG SET lowers maxmemory
        (else nothing would go before the next command)."""
        if self._maxmemory and self.keyspace.used_memory + self.memory_baseline > self._maxmemory:
            self._make_room("")

    def _make_room(self, name: str) -> Error | None:
        """Evict by the policy; OOM_ERR if still over the limit and ``name`` is denyoom."""
        limit = self._maxmemory - self.memory_baseline
        if self._maxmemory_policy != NOEVICTION:
            self.keyspace.refresh_clock()  # idle times and decays as of now
            evicted = evict(self.keyspace, self.eviction_rng, limit,
                            policy=self._maxmemory_policy, samples=self.maxmemory_samples)
            self.evicted_keys += len(evicted)
            self.propagated.extend([db, "DEL", key] for db, key in evicted)
        if name in _DENYOOM and self.keyspace.used_memory > limit:
            return OOM_ERR
        return None

    def _on_expired(self, db: int, key: bytes) -> None:
        # Called by the keyspace (never while loading) after it deleted an expired key.
        self.expired_keys += 1
        self.propagated.append([db, "DEL", key])

    # --- connection and server commands ------------------------------------------------------
    def _cmd_ping(self, db, args):
        if not args:
            return "PONG"
        if len(args) > 1:
            return arity_error("PING")
        return args[0]

    def _cmd_echo(self, db, args):
        return args[0]

    def _cmd_info(self, db, args):
        """INFO [section ...]: a map of sections, each a map of fields."""
        provided = self.info_provider() if self.info_provider is not None else {}
        sections: dict[str, dict] = {name: dict(fields) for name, fields in provided.items()}
        stats = sections.setdefault("stats", {})
        stats["expired_keys"] = self.expired_keys
        stats["keyspace_hits"] = self.keyspace_hits
        stats["keyspace_misses"] = self.keyspace_misses
        stats["evicted_keys"] = self.evicted_keys
        memory = sections.setdefault("memory", {})  # the log actor adds used_memory_rss
        memory["used_memory"] = self.keyspace.used_memory + self.memory_baseline
        memory["maxmemory"] = self._maxmemory
        memory["maxmemory_policy"] = self._maxmemory_policy
        memory["maxmemory_samples"] = self.maxmemory_samples
        memory["lfu_log_factor"] = self.keyspace.lfu_log_factor
        memory["lfu_decay_time"] = self.keyspace.lfu_decay_time
        sections["keyspace"] = self._keyspace_section()
        wanted = {raw.decode("utf-8", "replace").lower() for raw in args}
        if wanted & _ALL_SECTIONS:
            return sections
        if not wanted or "default" in wanted:
            wanted |= sections.keys() - _NOT_DEFAULT
        return {name: fields for name, fields in sections.items() if name in wanted}

    def _keyspace_section(self) -> dict[str, dict[str, int]]:
        ks = self.keyspace
        out = {}
        for db in range(NUM_DBS):
            keys = ks.dbsize(db)
            if keys:
                out[f"db{db}"] = {"keys": keys, "expires": ks.expires_count(db),
                                  "avg_ttl": ks.avg_ttl(db)}
        return out
