"""Set commands: SADD SREM SCARD SISMEMBER SMISMEMBER SMEMBERS SRANDMEMBER SPOP SMOVE SINTER
SUNION SDIFF (and their STORE forms) SINTERCARD SSCAN.

Same mixin contract as ``strings.py``. A set is stored as ``(members,)``, a 1-tuple of a dict
member -> None (``typed.py`` says why not a Python ``set``). A set that loses its last member
is deleted, TTL included. Intersections, unions and differences are computed as Python sets
and stored back as dicts.

Propagation (docs/commands.md): SADD and SREM log the members that were added or removed;
SPOP logs ``SREM`` of the members it popped (``DEL`` when it popped them all), so that the
random choice is never made again at replay; SMOVE and the STORE forms log themselves (their
result depends only on the state they replay on), a STORE with an empty result ``DEL``. The
random picks of SPOP and SRANDMEMBER come from ``self.random`` (a ``random.Random``; tests
may seed it), through ``randpool.py``: O(1) per pick once a big set has a pool, which every
in-place change of a set's members here keeps in step (SADD, SPOP) or drops (SREM, SMOVE).
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.memory import MEMBER_OVERHEAD
from aofnode.store.randpool import RandomPools
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, WRONGTYPE_ERR, parse_ll
from aofnode.store.typed import SET, CollectionBase, parse_count, parse_limit, scan_collection

__all__ = ["SetCommands", "MAX_RANDOM_REPLY"]

_KEYS_OVER_ARGS = Error(ERR, "Number of keys can't be greater than number of args")
_RANDOM_RANGE = Error(ERR, "value is out of range, value must between -9223372036854775807 and "
                           "9223372036854775807")
# SRANDMEMBER with a negative count repeats members: a reply of that many elements is built in
# the log actor's memory before anything is sent. Redis 7.0 has no bound; this one refuses
# counts past 10M elements (~1 GiB of reply) with the out-of-range error.
MAX_RANDOM_REPLY = 10_000_000


def _members_size(members) -> int:
    return sum(map(len, members)) + MEMBER_OVERHEAD * len(members)


class SetCommands(CollectionBase):
    COMMANDS = {
        "SADD": "_cmd_sadd", "SREM": "_cmd_srem", "SCARD": "_cmd_scard",
        "SISMEMBER": "_cmd_sismember", "SMISMEMBER": "_cmd_smismember",
        "SMEMBERS": "_cmd_smembers", "SRANDMEMBER": "_cmd_srandmember", "SPOP": "_cmd_spop",
        "SMOVE": "_cmd_smove", "SINTER": "_cmd_sinter", "SUNION": "_cmd_sunion",
        "SDIFF": "_cmd_sdiff", "SINTERSTORE": "_cmd_sinterstore",
        "SUNIONSTORE": "_cmd_sunionstore", "SDIFFSTORE": "_cmd_sdiffstore",
        "SINTERCARD": "_cmd_sintercard", "SSCAN": "_cmd_sscan",
    }
    # Shared by every executor of the process, as ``random`` is: a pool belongs to one dict
    # object, whoever holds it.
    pools = RandomPools()

    def _cmd_sadd(self, db, args):
        key = args[0]
        value, err = self._write_as(db, key, SET)
        if err is not None:
            return err
        if value is None:
            members = dict.fromkeys(args[1:])
            added = list(members)
            self.keyspace.set(db, key, (members,))
        else:
            s = value[0]
            added = [m for m in dict.fromkeys(args[1:]) if m not in s]
            s.update(dict.fromkeys(added))
            self.pools.added(s, added)
            self.keyspace.account(db, _members_size(added))
        if added:
            self._log(db, "SADD", key, *added)
        return len(added)

    def _cmd_srem(self, db, args):
        key = args[0]
        s, err = self._write_set(db, key)
        if s is None:
            return err or 0
        removed = [m for m in dict.fromkeys(args[1:]) if m in s]
        self._set_remove(db, key, s, removed)
        if removed:
            self._log(db, "SREM", key, *removed)
        return len(removed)

    def _read_set(self, db, key):
        """(members dict or None, error or None) for a read-only set command."""
        value, err = self._read_as(db, key, SET)
        return (None, err) if value is None else (value[0], None)

    def _write_set(self, db, key):
        """(members dict or None, error or None) for a set command that may change ``key``."""
        value, err = self._write_as(db, key, SET)
        return (None, err) if value is None else (value[0], None)

    def _set_remove(self, db, key, s, members, deleted=False):
        """Account for (and first delete, unless ``deleted``) ``members`` of ``s``."""
        if not deleted:
            self.pools.drop(s)
            for member in members:
                del s[member]
        self.keyspace.account(db, -_members_size(members))
        if not s:
            self.keyspace.delete(db, key)

    def _cmd_scard(self, db, args):
        s, err = self._read_set(db, args[0])
        return len(s) if s is not None else (err or 0)

    def _cmd_sismember(self, db, args):
        s, err = self._read_set(db, args[0])
        if s is None:
            return err or 0
        return 1 if args[1] in s else 0

    def _cmd_smismember(self, db, args):
        s, err = self._read_set(db, args[0])
        if err is not None:
            return err
        s = s or ()
        return [1 if m in s else 0 for m in args[1:]]

    def _cmd_smembers(self, db, args):
        s, err = self._read_set(db, args[0])
        return list(s) if s is not None else (err or [])

    def _cmd_srandmember(self, db, args):
        if len(args) > 2:
            return SYNTAX_ERR
        count = None
        if len(args) == 2:
            count = parse_ll(args[1])
            if count is None:
                return NOT_INT_ERR
            if count < -MAX_RANDOM_REPLY or count == -(2**63):
                return _RANDOM_RANGE
        s, err = self._read_set(db, args[0])
        if s is None:
            return err or ([] if count is not None else None)
        rng = self.random
        if count is None:
            return self.pools.sample(rng, s, 1)[0]
        if count < 0:
            return self.pools.repeats(rng, s, -count)
        if count >= len(s):
            return list(s)
        return self.pools.sample(rng, s, count)

    def _cmd_spop(self, db, args):
        if len(args) > 2:
            return SYNTAX_ERR
        count = None
        if len(args) == 2:
            count = parse_count(args[1])
            if count.__class__ is Error:
                return count
        key = args[0]
        s, err = self._write_set(db, key)
        if s is None:
            return err or ([] if count is not None else None)
        if count == 0:
            return []
        if count is not None and count >= len(s):
            popped = list(s)
            self.keyspace.delete(db, key)
            self._log(db, "DEL", key)
            return popped
        popped = self.pools.pop(self.random, s, count or 1)
        self._set_remove(db, key, s, popped, deleted=True)
        self._log(db, "SREM", key, *popped)
        return popped if count is not None else popped[0]

    def _cmd_smove(self, db, args):
        src, dst, member = args
        s, err = self._write_set(db, src)
        target, err2 = self._write_set(db, dst)
        if s is None and err is None:
            return 0
        if err is not None or err2 is not None:
            return WRONGTYPE_ERR
        if member not in s:
            return 0
        if src == dst:
            return 1
        self._set_remove(db, src, s, (member,))
        if target is None:
            self.keyspace.set(db, dst, ({member: None},))
        elif member not in target:
            target[member] = None
            self.pools.added(target, [member])
            self.keyspace.account(db, _members_size((member,)))
        self._log(db, "SMOVE", src, dst, member)
        return 1

    # --- algebra -----------------------------------------------------------------------------
    def _sets_of(self, db, keys):
        """The sets at ``keys`` (None for a missing key), or WRONGTYPE if any is not a set."""
        out = []
        for key in keys:
            s, err = self._read_set(db, key)
            if err is not None:
                return err
            out.append(s)
        return out

    def _algebra(self, db, keys, op):
        sets = self._sets_of(db, keys)
        if sets.__class__ is Error:
            return sets
        if op == "inter":
            if any(s is None for s in sets):
                return set()
            sets.sort(key=len)
            first, others = sets[0], sets[1:]
            return {m for m in first if all(m in o for o in others)}
        present = [s for s in sets if s is not None]
        if op == "union":
            return set().union(*present)
        if sets[0] is None:
            return set()
        others = present[1:]
        return {m for m in sets[0] if not any(m in o for o in others)}

    def _cmd_sinter(self, db, args):
        result = self._algebra(db, args, "inter")
        return result if result.__class__ is Error else list(result)

    def _cmd_sunion(self, db, args):
        result = self._algebra(db, args, "union")
        return result if result.__class__ is Error else list(result)

    def _cmd_sdiff(self, db, args):
        result = self._algebra(db, args, "diff")
        return result if result.__class__ is Error else list(result)

    def _cmd_sinterstore(self, db, args):
        return self._store(db, "SINTERSTORE", args, "inter")

    def _cmd_sunionstore(self, db, args):
        return self._store(db, "SUNIONSTORE", args, "union")

    def _cmd_sdiffstore(self, db, args):
        return self._store(db, "SDIFFSTORE", args, "diff")

    def _store(self, db, name, args, op):
        result = self._algebra(db, args[1:], op)
        if result.__class__ is Error:
            return result
        return self._store_at(db, name, args, (dict.fromkeys(result),), len(result))

    def _cmd_sintercard(self, db, args):
        numkeys, err = self._numkeys(args, 0)
        if err is not None:
            return err
        if numkeys > len(args) - 1:
            return _KEYS_OVER_ARGS
        limit = parse_limit(args[1 + numkeys:])
        if limit.__class__ is Error:
            return limit
        result = self._algebra(db, args[1:1 + numkeys], "inter")
        if result.__class__ is Error:
            return result
        return min(len(result), limit) if limit else len(result)

    def _cmd_sscan(self, db, args):
        return scan_collection(self, db, args, SET, lambda s, picked: picked)
