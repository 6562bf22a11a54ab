"""Client-side caching (CLIENT TRACKING) in the log actor: who may cache which keys, and the
invalidations when they change.

Design (after Redis 7.0's tracking.c):
- The state is here, beside the keyspace: the RESP front forwards ``CLIENT TRACKING``,
  ``CACHING``, ``GETREDIR`` and ``TRACKINGINFO`` in the client's order with its other commands
  (node/fronts/resp_clients.py), so a read after ``CLIENT TRACKING on`` is remembered and the
  reply to a write comes before the invalidation it causes to its own client, as in Redis.
- Default mode: the keys of every read-only command a tracking client runs are remembered in
  ``table`` (key name -> client keys; the database is not part of it, as in Redis). A change
  to a key sends one invalidation per remembered client and forgets the key. OPTIN / OPTOUT
  with CLIENT CACHING choose which reads are remembered; NOLOOP skips a client's own changes.
- BCAST mode: nothing is remembered per key; a changed key that starts with a client's
  prefix is noted per prefix, and each prefix's keys go out once per cycle in one push.
- What changed is what the executor propagated (writes, expiry, eviction, FLUSH*, SWAPDB),
  read as node/store/watch.py reads it: no write path is hooked. FLUSHDB, FLUSHALL and SWAPDB
  invalidate everything (a null push to every tracking client) and empty the table.
- Delivery: one ``Invalidate`` per target client per cycle, before the cycle's replies, on the
  front connection of the tracking client; the front writes it behind the replies that client
  is still owed, so no reply read before a change can arrive after its invalidation. One
  exception, as Redis: a key evicted before a RESP3 client's own command runs is invalidated
  right before that command's reply (``Pushed``, node/log/replies.py). The front makes an
  ``Invalidate`` a RESP3 ``invalidate`` push, or, for a redirect target in RESP2 subscribed
  to ``__redis__:invalidate``, a pub/sub message (node/fronts/resp_tracking.py). A redirect
  target that is gone gets the tracking client a ``tracking-redir-broken`` push instead.
- Cost while nobody tracks: one test per cycle (``clients``) and one before the cycle's entries
  are taken. While anyone tracks, the cycle's requests run through ``wrap``'s function.
- Bound: ``max_keys`` (``tracking-table-max-keys``, default 1,000,000 as Redis; 0: none) keys
  in the table; past it, the oldest remembered keys are forgotten after the cycle, with an
  invalidation to their clients, as Redis evicts (it picks them at random).
- A client's state goes with ``CLIENT TRACKING off``, RESET (the front sends off), a Forget
  (closed) and the loss of its front; its keys stay in the table until they change (as in
  Redis), or until the last tracking client goes: the table is emptied then.
- A script that runs a read-only command has its declared keys remembered, as Redis 7.0 does
  (the executor's ``track_script`` hook, set only while anyone tracks).
"""
from __future__ import annotations

from aofnode.log.replies import Pushed
from aofnode.log.work import CLIENT_BITS, CLIENT_MASK
from aofnode.protocol.errors import ERR, Error
from aofnode.protocol.keyflags import keys_and_flags
from aofnode.protocol.keyspecs import SPECS
from aofnode.protocol.resp_reply import invalidate_message
from aofnode.runtime import messages as m
from aofnode.store.blocking import WouldBlock
from aofnode.store.watch import written_keys

__all__ = ["Tracking", "MAX_KEYS", "READONLY"]

# Redis's tracking-table-max-keys default: ~100 bytes a remembered (key, client) here.
MAX_KEYS = 1_000_000
# The commands whose keys a tracking client may cache: Redis's CMD_READONLY ones.
READONLY = frozenset(name.upper() for name, row in SPECS.items()
                     if "|" not in name and "readonly" in row[1].split())
_FLUSHES = frozenset(("FLUSHDB", "FLUSHALL", "SWAPDB"))
# Scripts: their declared keys are remembered when the script ran a read-only command (Redis
# 7.0 remembers the caller's keys from the inner read's call); not for their own flag.
_SCRIPTS = frozenset(("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"))
_SYNTAX = Error(ERR, "syntax error")
_NOT_RESP = Error(ERR, "CLIENT needs a RESP connection (--resp-bind): ZeroMQ clients have no "
                       "client-side caching (docs/protocol.md)")


class _Client:
    __slots__ = ("redirect", "bcast", "optin", "optout", "noloop", "caching", "broken", "prefixes")

    def __init__(self) -> None:
        self.redirect = 0  # the client id invalidations go to (0: this client)
        self.bcast = self.optin = self.optout = self.noloop = self.caching = self.broken = False
        self.prefixes: list[bytes] = []  # BCAST, in the order given


class Tracking:
    def __init__(self, actor, max_keys: int = MAX_KEYS) -> None:
        self.actor = actor
        self.max_keys = max_keys
        self.clients: dict[int, _Client] = {}
        self.table: dict[bytes, set[int]] = {}  # key -> clients that may cache it (oldest first)
        self.items = 0  # (key, client) pairs in the table
        self.prefixes: dict[bytes, tuple[set[int], dict[bytes, int]]] = {}  # -> (clients, changed)
        self.targets: set[int] = set()  # redirect targets still connected
        self.pushes: dict[int, list] = {}  # target key -> this cycle's pushes
        self.out: list[tuple[int, m.Invalidate]] = []
        self._list: list = actor.executor.propagated
        self._seen = 0
        self.subscribable = lambda key: True
        self.started = False  # the first tracking client appeared in this cycle
        self.script_read = False  # the running script called a read-only command
        self.stats = {"tracking_invalidations": 0, "tracking_evicted_keys": 0}

    def handlers(self) -> dict:
        return {"CLIENT": self._client_command}

    # -- the commands -----------------------------------------------------------------------------

    def _client_command(self, _db: int, args: list):
        key = self.actor._client
        sub = args[0].upper()
        if not self.subscribable(key):
            return _NOT_RESP
        state = self.clients.get(key)
        if sub == b"TRACKING" and len(args) >= 3:
            return self._tracking(key, state, args[1] == b"1", args[2:])
        if sub == b"CACHING" and len(args) == 2:
            return self._caching(state, args[1].upper())
        if sub == b"GETREDIR" and len(args) == 1:
            return -1 if state is None else state.redirect
        if sub == b"TRACKINGINFO" and len(args) == 1:
            return self._info_of(state)
        shown = args[0][:128].decode("utf-8", "replace")
        return Error(ERR, f"unknown subcommand or wrong number of arguments for '{shown}'. "
                          "Try CLIENT HELP.")

    def _tracking(self, key: int, state: _Client | None, target_exists: bool, args: list):
        redirect, options, prefixes = 0, set(), []
        j = 1
        while j < len(args):
            opt, more = args[j].lower(), j + 1 < len(args)
            if opt == b"redirect" and more:
                j += 1
                if redirect:
                    return Error(ERR, "A client can only redirect to a single other client")
                try:
                    redirect = int(args[j])
                except ValueError:
                    return Error(ERR, "value is not an integer or out of range")
                if not target_exists:
                    return Error(ERR, "The client ID you want redirect to does not exist")
            elif opt in (b"bcast", b"optin", b"optout", b"noloop"):
                options.add(opt)
            elif opt == b"prefix" and more:
                j += 1
                prefixes.append(args[j])
            else:
                return _SYNTAX
            j += 1
        onoff = args[0].lower()
        if onoff == b"off":
            self.disable(key)
            return "OK"
        if onoff != b"on":
            return _SYNTAX
        error = _check(state, options, prefixes)
        if error is not None:
            return error
        self._enable(key, state, redirect, options, prefixes)
        return "OK"

    def _enable(self, key: int, state: _Client | None, redirect: int, options: set, prefixes: list) -> None:
        if state is None:
            # The cycle runs the plain requests until the first client tracks: the log actor
            # ends this turn and wraps the rest of the cycle's (node/log/actor.py).
            self.started = self.started or not self.clients
            state = self.clients[key] = _Client()
            self.actor.executor.track_script = self._script_command
        state.redirect = redirect
        state.broken = False
        state.bcast, state.optin = b"bcast" in options, b"optin" in options
        state.optout, state.noloop = b"optout" in options, b"noloop" in options
        if redirect:
            self.targets.add((key & ~CLIENT_MASK) | redirect)
        if state.bcast:
            for prefix in prefixes or [b""]:
                clients, _ = self.prefixes.setdefault(prefix, (set(), {}))
                if key not in clients:
                    clients.add(key)
                    state.prefixes.append(prefix)

    def _caching(self, state: _Client | None, opt: bytes):
        if state is None:
            return Error(ERR, "CLIENT CACHING can be called only when the client is in tracking "
                              "mode with OPTIN or OPTOUT mode enabled")
        if opt == b"YES":
            if not state.optin:
                return Error(ERR, "CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
        elif opt == b"NO":
            if not state.optout:
                return Error(ERR, "CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
        else:
            return _SYNTAX
        state.caching = True
        return "OK"

    def _info_of(self, state: _Client | None) -> dict:
        if state is None:
            return {"flags": [b"off"], "redirect": -1, "prefixes": []}
        flags = [b"on"]
        for name, on in ((b"bcast", state.bcast), (b"optin", state.optin)):
            if on:
                flags.append(name)
        if state.optin and state.caching:
            flags.append(b"caching-yes")
        if state.optout:
            flags.append(b"optout")
            if state.caching:
                flags.append(b"caching-no")
        if state.noloop:
            flags.append(b"noloop")
        if state.broken:
            flags.append(b"broken_redirect")
        return {"flags": flags, "redirect": state.redirect, "prefixes": sorted(state.prefixes)}

    def _script_command(self, name: str) -> None:
        if name in READONLY:
            self.script_read = True

    def disable(self, key: int) -> None:
        """CLIENT TRACKING off (and RESET): the table's entries of the client go lazily, when
        their keys change or are evicted, as in Redis."""
        state = self.clients.pop(key, None)
        if state is None:
            return
        if not self.clients:
            # Nobody left to tell: the table goes now (changes are not read while nobody
            # tracks, so it could only go stale), and nothing runs per script command again.
            self.actor.executor.track_script = None
            self.table.clear()
            self.items = 0
        for prefix in state.prefixes:
            clients, _ = self.prefixes[prefix]
            clients.discard(key)
            if not clients:
                del self.prefixes[prefix]

    def forget(self, key: int) -> None:
        """The client is gone: its tracking, and its place as a redirect target."""
        self.disable(key)
        self.targets.discard(key)

    def forget_owner(self, base: int) -> None:
        for key in [k for k in self.clients if k & ~CLIENT_MASK == base]:
            self.disable(key)
        self.targets = {k for k in self.targets if k & ~CLIENT_MASK != base}

    # -- reads and changes --------------------------------------------------------------------------

    def wrap(self, run_one):
        """``run_one`` that notes what each request read and changed (while anyone tracks)."""
        if not self.clients:
            return run_one
        actor, executor, clients, sync = self.actor, self.actor.executor, self.clients, self.sync

        def run(pending, item, writes):
            if type(item) is Error:
                return run_one(pending, item, writes)
            client = actor._client
            self.script_read = False
            evicted = executor.evicted_keys
            try:
                reply = run_one(pending, item, writes)
            except WouldBlock:
                sync(client)
                raise
            entries = executor.propagated
            if entries is not self._list or len(entries) > self._seen:  # it changed keys
                evicted = executor.evicted_keys - evicted
                if evicted and pending.resp == 3 and not actor.tx_running:
                    reply = self._evicted_first(client, evicted, reply)
                sync(client)
            state = clients.get(client)
            if state is not None:
                name = item[0]
                if not state.bcast and type(reply) is not Error and (
                        name in READONLY if name not in _SCRIPTS else self.script_read):
                    self._remember(client, state, name, item[1])
                if state.caching and name != "CLIENT" and not actor.tx_running:
                    state.caching = False  # CLIENT CACHING is for the next command only
            return reply
        return run

    def _evicted_first(self, client: int, evicted: int, reply):
        """Invalidate the ``evicted`` keys the request's eviction propagated (the first of its
        new entries: eviction runs before the command); those for the requesting RESP3 client
        itself go before its reply, as Redis writes them, since the reply already reflects the
        keyspace without them. Everyone else's go with the cycle's invalidations."""
        entries = self.actor.executor.propagated
        if entries is not self._list:
            self._list, self._seen = entries, 0
        state = self.clients.get(client)
        own = None
        if state is not None and not state.redirect:
            own = self.pushes.pop(client, None)  # earlier ones stay behind the replies owed
        end = self._seen + evicted
        for entry in entries[self._seen:end]:
            for _db, key in written_keys(entry):
                self.invalidate(key, None)  # an eviction is nobody's write (NOLOOP aside)
        self._seen = end
        if own is None and (state is None or state.redirect):
            return reply
        mine = self.pushes.pop(client, None)
        if own is not None:
            self.pushes[client] = own
        if not mine:
            return reply
        return Pushed(b"".join(invalidate_message(keys, True) for keys in mine), reply)

    def _remember(self, client: int, state: _Client, name: str, args) -> None:
        if (state.optin and not state.caching) or (state.optout and state.caching):
            return
        keys = keys_and_flags(name.lower(), [name.encode(), *args])
        if not keys:
            return
        table = self.table
        for key, _flags in keys:
            holders = table.get(key)
            if holders is None:
                holders = table[key] = set()
            if client not in holders:
                holders.add(client)
                self.items += 1

    def sync(self, writer: int | None = None) -> None:
        """Invalidate the keys changed since the last call; ``writer``: the client whose request
        changed them (NOLOOP), None for the tick's expiry and served blocked clients."""
        entries = self.actor.executor.propagated
        if entries is not self._list:
            self._list, self._seen = entries, 0
        if self._seen >= len(entries):
            return
        for entry in entries[self._seen:]:
            if entry[1] in _FLUSHES:
                self._flush()
            else:
                for _db, key in written_keys(entry):
                    self.invalidate(key, writer)
        self._seen = len(entries)

    def taken(self) -> None:
        """The executor's entries were taken: the next are read from the new list's start."""
        self._list, self._seen = self.actor.executor.propagated, 0

    def invalidate(self, key: bytes, writer: int | None, bcast: bool = True) -> None:
        if bcast and self.prefixes:
            for prefix, (_clients, changed) in self.prefixes.items():
                if key.startswith(prefix):
                    changed[key] = writer if writer is not None else -1
        holders = self.table.pop(key, None)
        if holders is None:
            return
        self.items -= len(holders)
        for client in holders:
            state = self.clients.get(client)
            if state is None or state.bcast or (state.noloop and client == writer):
                continue
            self._push(client, state, [key])

    def _flush(self) -> None:
        for client, state in self.clients.items():
            self._push(client, state, None)
        self.table.clear()
        self.items = 0

    def _push(self, client: int, state: _Client, push: list | None) -> None:
        if state.redirect:
            target = (client & ~CLIENT_MASK) | state.redirect
            if target not in self.targets:
                state.broken = True
                self.out.append((client >> CLIENT_BITS, m.Invalidate(client & CLIENT_MASK, [], False,
                                                                      state.redirect)))
                return
            client = -target  # negative: a redirect target
        pushes = self.pushes.get(client)
        if pushes is None:
            pushes = self.pushes[client] = []
        pushes.append(push)
        self.stats["tracking_invalidations"] += 1

    def take(self) -> list[tuple[int, m.Invalidate]]:
        """This cycle's invalidations (BCAST's made now), one message per target client."""
        self.sync(None)
        if self.prefixes:
            self._broadcast()
        if self.max_keys and len(self.table) > self.max_keys:
            self._evict()
        out, self.out = self.out, []
        for client, pushes in self.pushes.items():
            target = -client if client < 0 else client
            out.append((target >> CLIENT_BITS, m.Invalidate(target & CLIENT_MASK, pushes, client < 0)))
        self.pushes = {}
        return out

    def _broadcast(self) -> None:
        for clients, changed in self.prefixes.values():
            if not changed:
                continue
            everyone = list(changed)
            for client in clients:
                state = self.clients[client]
                keys = [k for k, w in changed.items() if w != client] if state.noloop else everyone
                if keys:
                    self._push(client, state, keys)
            changed.clear()

    def _evict(self) -> None:
        """Forget the oldest keys past ``max_keys``, telling their clients (Redis: at random)."""
        table = self.table
        over = len(table) - self.max_keys
        for key in list(_first(table, over)):
            self.invalidate(key, None, bcast=False)
        self.stats["tracking_evicted_keys"] += over

    @property
    def active(self) -> bool:
        return bool(self.clients or self.out)

    def info(self) -> dict:
        return {"tracking_clients": len(self.clients), "tracking_total_keys": len(self.table),
                "tracking_total_items": self.items, "tracking_total_prefixes": len(self.prefixes),
                "tracking_table_max_keys": self.max_keys, **self.stats}


def _first(table: dict, n: int):
    for i, key in enumerate(table):
        if i >= n:
            return
        yield key


def _check(state: _Client | None, options: set, prefixes: list) -> Error | None:
    """CLIENT TRACKING on's checks, in Redis's order (networking.c)."""
    bcast = b"bcast" in options
    if not bcast and prefixes:
        return Error(ERR, "PREFIX option requires BCAST mode to be enabled")
    if state is not None and state.bcast != bcast:
        return Error(ERR, "You can't switch BCAST mode on/off before disabling tracking for this "
                          "client, and then re-enabling it with a different mode.")
    if bcast and (b"optin" in options or b"optout" in options):
        return Error(ERR, "OPTIN and OPTOUT are not compatible with BCAST")
    if b"optin" in options and b"optout" in options:
        return Error(ERR, "You can't specify both OPTIN mode and OPTOUT mode")
    if state is not None and ((b"optin" in options and state.optout)
                              or (b"optout" in options and state.optin)):
        return Error(ERR, "You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
                          "client, and then re-enabling it with a different mode.")
    if bcast:
        mine = state.prefixes if state is not None else []
        for i, prefix in enumerate(prefixes):
            for old in mine:
                if prefix.startswith(old) or old.startswith(prefix):
                    return Error(ERR, f"Prefix '{_text(prefix)}' overlaps with an existing prefix "
                                      f"'{_text(old)}'. Prefixes for a single client must not overlap.")
            for other in prefixes[i + 1:]:
                if prefix.startswith(other) or other.startswith(prefix):
                    return Error(ERR, f"Prefix '{_text(prefix)}' overlaps with another provided "
                                      f"prefix '{_text(other)}'. Prefixes for a single client must "
                                      "not overlap.")
    return None


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")
