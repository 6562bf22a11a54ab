"""Keyspace and keyevent notifications (``notify-keyspace-events``), published through pub/sub.

Design:
- Off by default (""), and then free: ``Notifier._execute`` wraps the log actor's execute, and
  the expiry hook is installed, only while ``active`` (K or E with some class).
- The executor already says what changed: the AOF entries a command propagated (node/store/
  executor.py). ``after`` reads a command's new entries and names Redis 7.0's events for them:
  the command decides the event (INCR's is ``incrby``, as in Redis), the entries decide the keys
  and whether anything changed at all (a write that changed nothing propagates nothing, and
  Redis notifies nothing then either). A collection emptied by the command gets ``del`` after
  its own event, as Redis does.
- Events covered: ``set`` (SET, SETNX, SETEX, PSETEX, MSET, MSETNX, GETSET), ``expire`` (EXPIRE
  family, and SET/GETEX with a TTL), ``persist``, ``del`` (DEL, UNLINK, GETDEL, emptied
  collections), ``rename_from``/``rename_to``, ``incrby``, ``incrbyfloat``, ``append``,
  ``setrange``, ``lpush``/``rpush``/``lpop``/``rpop``, ``sadd``/``srem``, ``zadd``/``zincr``/
  ``zrem``, ``hset``/``hdel``/``hincrby``/``hincrbyfloat``, ``expired``, ``evicted``, and ``new``
  (flag ``n``) for a key a write created (its first key; each key of MSET).
  Other commands notify nothing yet (docs/resp.md lists them).
- Published as Redis does: ``__keyspace@<db>__:<key>`` with the event as the message and
  ``__keyevent@<db>__:<event>`` with the key as the message, in that order.
"""
from __future__ import annotations

from aofnode.protocol.commands import COMMANDS

__all__ = ["Notifier", "parse_flags", "flags_text", "Invalid"]

# Redis's classes (notify.c): the order flags_text writes them in.
_CLASSES = "g$lshzxetd"
_ALL = frozenset(_CLASSES)


class Invalid(ValueError):
    pass


def parse_flags(raw: bytes) -> frozenset[str]:
    out: set[str] = set()
    for ch in raw.decode("latin-1"):
        if ch == "A":
            out |= _ALL
        elif ch in _CLASSES or ch in "KEmn":
            out.add(ch)
        else:
            raise Invalid("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")
    return frozenset(out)


def flags_text(flags: frozenset[str]) -> str:
    """Redis 7.0's spelling: ``n`` is not in ``A`` but is shown only without it (notify.c)."""
    text = "A" if _ALL <= flags else "".join(c for c in _CLASSES + "n" if c in flags)
    return text + "".join(c for c in "KEm" if c in flags)


# command -> (class, event) of the command's own change; the key is its first argument.
_TYPED = {
    "LPUSH": ("l", "lpush"), "LPUSHX": ("l", "lpush"), "RPUSH": ("l", "rpush"), "RPUSHX": ("l", "rpush"),
    "LPOP": ("l", "lpop"), "RPOP": ("l", "rpop"),
    "SADD": ("s", "sadd"), "SREM": ("s", "srem"),
    "ZADD": ("z", "zadd"), "ZINCRBY": ("z", "zincr"), "ZREM": ("z", "zrem"),
    "HSET": ("h", "hset"), "HMSET": ("h", "hset"), "HSETNX": ("h", "hset"), "HDEL": ("h", "hdel"),
    "HINCRBY": ("h", "hincrby"), "HINCRBYFLOAT": ("h", "hincrbyfloat"),
    "INCR": ("$", "incrby"), "DECR": ("$", "incrby"), "INCRBY": ("$", "incrby"),
    "DECRBY": ("$", "incrby"), "INCRBYFLOAT": ("$", "incrbyfloat"), "APPEND": ("$", "append"),
    "SETRANGE": ("$", "setrange"),
}
_SETS = frozenset(("SET", "SETNX", "SETEX", "PSETEX", "MSET", "MSETNX", "GETSET"))
_EMPTIES = frozenset(("LPOP", "RPOP", "SREM", "ZREM", "HDEL"))
_RENAMES = frozenset(("RENAME", "RENAMENX"))
_WRITES = frozenset(name for name, spec in COMMANDS.items() if spec.write)


class Notifier:
    def __init__(self, executor, publish, intro) -> None:
        self.executor = executor
        self.intro = intro  # node/log/introspect.py: its execute is the log actor's for a command
        self._plain = intro.execute  # the method itself, before any hook over it
        self.publish = publish  # PubSub.publish
        self.flags: frozenset[str] = frozenset()
        self.active = False
        self._expire_hook = executor.keyspace.on_expire
        self._new: set[bytes] = set()  # keys this command created, not yet announced

    def configure(self, flags: frozenset[str]) -> None:
        self.flags = flags
        self.active = bool(flags & {"K", "E"}) and bool(flags & (_ALL | {"n"}))
        ks = self.executor.keyspace
        ks.on_expire = self._on_expired if self.active else self._expire_hook
        # The hook: an instance attribute over Introspection.execute while on, none while off,
        # so that commands run exactly as without notifications then.
        if self.active:
            self.intro.execute = self._execute
        else:
            self.intro.__dict__.pop("execute", None)

    def _execute(self, db: int, name: str, args):
        ex = self.executor
        before, evicted = len(ex.propagated), ex.evicted_keys
        absent = self.absent(db, name, args)
        reply = self._plain(db, name, args)
        if len(ex.propagated) != before:
            self.after(db, name, args, ex.propagated[before:], ex.evicted_keys - evicted, absent)
        return reply

    def _on_expired(self, db: int, key: bytes) -> None:
        self._expire_hook(db, key)
        self.notify("x", "expired", db, key)

    def notify(self, cls: str, event: str, db: int, key: bytes) -> None:
        if self._new and key in self._new:  # Redis says "new" as the key is added: just before
            self._new.discard(key)
            self.notify("n", "new", db, key)
        flags = self.flags
        if cls not in flags:
            return
        if "K" in flags:
            self.publish(b"__keyspace@%d__:%s" % (db, key), event.encode())
        if "E" in flags:
            self.publish(b"__keyevent@%d__:%s" % (db, event.encode()), key)

    def absent(self, db: int, name: str, args: list) -> list[bytes]:
        """With ``n`` on, the keys a write may create that do not exist yet (for ``new``)."""
        if "n" not in self.flags or name not in _WRITES or not args:
            return []
        keys = args[0::2] if name in ("MSET", "MSETNX") else args[1:2] if name in _RENAMES else args[:1]
        peek = self.executor.keyspace.peek
        return [key for key in keys if type(key) is bytes and peek(db, key) is None]

    def after(self, db: int, name: str, args: list, entries: list, evicted: int,
              absent: list[bytes] | tuple = ()) -> None:
        """Notify for one command that propagated ``entries`` (``evicted`` of them, first, are
        evictions made before it ran; ``absent``: keys missing before it, from ``absent``)."""
        for entry in entries[:evicted]:
            self.notify("e", "evicted", entry[0], entry[2])
        peek = self.executor.keyspace.peek
        self._new = {key for key in absent if peek(db, key) is not None}
        own = [e for e in entries[evicted:] if not (e[1] == "DEL" and name not in ("DEL", "UNLINK", "GETDEL"))]
        if own:
            self._events(db, name, args, own)
        for key in self._new:  # created, but no event of its own named it
            self.notify("n", "new", db, key)
        self._new = set()

    def _events(self, db: int, name: str, args: list, own: list) -> None:
        typed = _TYPED.get(name)
        if typed is not None:
            key = args[0]
            self.notify(typed[0], typed[1], db, key)
            if name in _EMPTIES and self.executor.keyspace.peek(db, key) is None:
                self.notify("g", "del", db, key)
            return
        for entry in own:
            self._entry(name, entry)

    def _entry(self, name: str, entry: list) -> None:
        db, kind = entry[0], entry[1]
        if kind == "SET" and name in _SETS or name == "GETEX" and kind == "SET":
            self.notify("$", "set", db, entry[2])
            if b"PXAT" in entry[4:]:
                self.notify("g", "expire", db, entry[2])
        elif kind == "MSET":
            for key in entry[2::2]:
                self.notify("$", "set", db, key)
        elif kind == "DEL":
            for key in entry[2:]:
                self.notify("g", "del", db, key)
        elif kind == "PEXPIREAT":
            self.notify("g", "expire", db, entry[2])
        elif kind == "PERSIST":
            self.notify("g", "persist", db, entry[2])
        elif kind == "RENAME":
            if entry[3] in self._new:  # Redis adds the new name before it notifies the old
                self._new.discard(entry[3])
                self.notify("n", "new", db, entry[3])
            self.notify("g", "rename_from", db, entry[2])
            self.notify("g", "rename_to", db, entry[3])
