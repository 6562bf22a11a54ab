"""List commands: LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LLEN LINDEX LSET LRANGE LTRIM LREM LINSERT
LPOS LMOVE RPOPLPUSH LMPOP.

Same mixin contract as ``strings.py``. A list is the two-part deque of ``listcore.py``: O(1)
amortised pushes and pops at both ends, built-in lists that marshal copies for the rewrite
child. A list that loses its last item is deleted, TTL included, as Redis does.

Propagation (docs/commands.md): every change is logged in a form that depends only on the
state it replays on: pushes as ``LPUSH``/``RPUSH`` of what was pushed, pops (LMPOP too) as
``LPOP``/``RPOP key <count popped>``, LMOVE and RPOPLPUSH as ``LMOVE``, LTRIM with absolute
indexes (``DEL`` when it empties the list), the others as themselves. Nothing is logged when
nothing changed.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store import listcore
from aofnode.store.memory import ITEM_OVERHEAD
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, arity_error, parse_ll
from aofnode.store.typed import LIST, CollectionBase, index_range, parse_count

__all__ = ["ListCommands"]

_NO_SUCH_KEY = Error(ERR, "no such key")
_OUT_OF_RANGE = Error(ERR, "index out of range")
_RANK_ZERO = Error(ERR, "RANK can't be zero: use 1 to start from the first match, 2 from the "
                        "second ... or use negative to start from the end of the list")
_COUNT_NEGATIVE = Error(ERR, "COUNT can't be negative")
_MAXLEN_NEGATIVE = Error(ERR, "MAXLEN can't be negative")
_SIDES = {b"LEFT": True, b"RIGHT": False}


def _items_size(items) -> int:
    return sum(map(len, items)) + ITEM_OVERHEAD * len(items)


class ListCommands(CollectionBase):
    COMMANDS = {
        "LPUSH": "_cmd_lpush", "RPUSH": "_cmd_rpush", "LPUSHX": "_cmd_lpushx",
        "RPUSHX": "_cmd_rpushx", "LPOP": "_cmd_lpop", "RPOP": "_cmd_rpop", "LLEN": "_cmd_llen",
        "LINDEX": "_cmd_lindex", "LSET": "_cmd_lset", "LRANGE": "_cmd_lrange",
        "LTRIM": "_cmd_ltrim", "LREM": "_cmd_lrem", "LINSERT": "_cmd_linsert",
        "LPOS": "_cmd_lpos", "LMOVE": "_cmd_lmove", "RPOPLPUSH": "_cmd_rpoplpush",
        "LMPOP": "_cmd_lmpop",
    }

    # --- pushes ------------------------------------------------------------------------------
    def _cmd_lpush(self, db, args):
        return self._push(db, args, True, False)

    def _cmd_rpush(self, db, args):
        return self._push(db, args, False, False)

    def _cmd_lpushx(self, db, args):
        return self._push(db, args, True, True)

    def _cmd_rpushx(self, db, args):
        return self._push(db, args, False, True)

    def _push(self, db, args, left, only_existing):
        key, items = args[0], args[1:]
        lst, err = self._write_as(db, key, LIST)
        if err is not None:
            return err
        if lst is None:
            if only_existing:
                return 0
            lst = listcore.new_list(())
            listcore.push(lst, items, left)
            self.keyspace.set(db, key, lst)
        else:
            listcore.push(lst, items, left)
            self.keyspace.account(db, _items_size(items))
        n = listcore.length(lst)
        self._log(db, "LPUSH" if left else "RPUSH", key, *items)
        return n

    def _list_pop(self, db, key, lst, count, left):
        """Pop ``count`` (>= 1) items from a stored list: deletes the key when emptied, logs."""
        popped = listcore.pop(lst, count, left)
        self.keyspace.account(db, -_items_size(popped))
        if not listcore.length(lst):
            self.keyspace.delete(db, key)
        self._log(db, "LPOP" if left else "RPOP", key, b"%d" % len(popped))
        return popped

    # --- pops --------------------------------------------------------------------------------
    def _cmd_lpop(self, db, args):
        return self._pop(db, args, True)

    def _cmd_rpop(self, db, args):
        return self._pop(db, args, False)

    def _pop(self, db, args, left):
        if len(args) > 2:
            return arity_error("LPOP" if left else "RPOP")
        count = None
        if len(args) == 2:
            count = parse_count(args[1])
            if count.__class__ is Error:
                return count
        key = args[0]
        lst, err = self._write_as(db, key, LIST)
        if lst is None:
            return err
        if count is None:
            return self._list_pop(db, key, lst, 1, left)[0]
        if count == 0:
            return []
        return self._list_pop(db, key, lst, count, left)

    def _cmd_lmpop(self, db, args):
        parsed = self._mpop_args(args, _SIDES)
        if parsed.__class__ is Error:
            return parsed
        keys, left, count = parsed
        for key in keys:
            lst, err = self._write_as(db, key, LIST)
            if err is not None:
                return err
            if lst is not None:
                return [key, self._list_pop(db, key, lst, count, left)]
        return None

    def _cmd_lmove(self, db, args):
        left_from = _SIDES.get(args[2].upper())
        left_to = _SIDES.get(args[3].upper())
        if left_from is None or left_to is None:
            return SYNTAX_ERR
        return self._move(db, args[0], args[1], left_from, left_to)

    def _cmd_rpoplpush(self, db, args):
        return self._move(db, args[0], args[1], False, True)

    def _move(self, db, src, dst, left_from, left_to):
        lst, err = self._write_as(db, src, LIST)
        if lst is None:
            return err
        target, err = self._write_as(db, dst, LIST)
        if err is not None:
            return err
        ks = self.keyspace
        item = listcore.pop(lst, 1, left_from)[0]
        size = len(item) + ITEM_OVERHEAD
        if src == dst:
            listcore.push(lst, (item,), left_to)
        else:
            ks.account(db, -size)
            if not listcore.length(lst):
                ks.delete(db, src)
            if target is None:
                ks.set(db, dst, listcore.new_list((item,)))
            else:
                listcore.push(target, (item,), left_to)
                ks.account(db, size)
        self._log(db, "LMOVE", src, dst, b"LEFT" if left_from else b"RIGHT",
                  b"LEFT" if left_to else b"RIGHT")
        return item

    # --- reads -------------------------------------------------------------------------------
    def _cmd_llen(self, db, args):
        lst, err = self._read_as(db, args[0], LIST)
        if lst is None:
            return 0 if err is None else err
        return listcore.length(lst)

    def _cmd_lindex(self, db, args):
        lst, err = self._read_as(db, args[0], LIST)
        if lst is None:
            return err
        index = parse_ll(args[1])
        if index is None:
            return NOT_INT_ERR
        n = listcore.length(lst)
        if index < 0:
            index += n
        return listcore.get(lst, index) if 0 <= index < n else None

    def _cmd_lrange(self, db, args):
        start, end = parse_ll(args[1]), parse_ll(args[2])
        if start is None or end is None:
            return NOT_INT_ERR
        lst, err = self._read_as(db, args[0], LIST)
        if lst is None:
            return [] if err is None else err
        bounds = index_range(start, end, listcore.length(lst))
        return [] if bounds is None else listcore.range_of(lst, *bounds)

    def _cmd_lpos(self, db, args):
        opts = _lpos_options(args)
        if opts.__class__ is Error:
            return opts
        rank, count, maxlen = opts
        lst, err = self._read_as(db, args[0], LIST)
        if err is not None:
            return err
        wanted = 1 if count is None else count  # COUNT 0: every match
        found = [] if lst is None else _positions(listcore.items(lst), args[1], rank, wanted,
                                                  maxlen)
        if count is None:
            return found[0] if found else None
        return found

    # --- in-place changes --------------------------------------------------------------------
    def _cmd_lset(self, db, args):
        key = args[0]
        lst, err = self._write_as(db, key, LIST)
        if lst is None:
            return err or _NO_SUCH_KEY
        index = parse_ll(args[1])
        if index is None:
            return NOT_INT_ERR
        n = listcore.length(lst)
        if index < 0:
            index += n
        if not 0 <= index < n:
            return _OUT_OF_RANGE
        value = args[2]
        self.keyspace.account(db, len(value) - len(listcore.put(lst, index, value)))
        self._log(db, "LSET", key, b"%d" % index, value)
        return "OK"

    def _cmd_ltrim(self, db, args):
        start, end = parse_ll(args[1]), parse_ll(args[2])
        if start is None or end is None:
            return NOT_INT_ERR
        key = args[0]
        lst, err = self._write_as(db, key, LIST)
        if lst is None:
            return err or "OK"
        bounds = index_range(start, end, listcore.length(lst))
        ks = self.keyspace
        if bounds is None:
            ks.delete(db, key)
            self._log(db, "DEL", key)
            return "OK"
        start, end = bounds
        if start == 0 and end == listcore.length(lst) - 1:
            return "OK"
        lst = listcore.normalize(lst)
        ks.account(db, -_items_size(lst[end + 1:]) - _items_size(lst[:start]))
        del lst[end + 1:]
        del lst[:start]
        self._log(db, "LTRIM", key, b"%d" % start, b"%d" % end)
        return "OK"

    def _cmd_lrem(self, db, args):
        count = parse_ll(args[1])
        if count is None:
            return NOT_INT_ERR
        key, item = args[0], args[2]
        lst, err = self._write_as(db, key, LIST)
        if lst is None:
            return err or 0
        removed = _remove(listcore.normalize(lst), item, count)
        if removed:
            self.keyspace.account(db, -removed * (len(item) + ITEM_OVERHEAD))
            if not listcore.length(lst):
                self.keyspace.delete(db, key)
            self._log(db, "LREM", key, args[1], item)
        return removed

    def _cmd_linsert(self, db, args):
        where = args[1].upper()
        if where not in (b"BEFORE", b"AFTER"):
            return SYNTAX_ERR
        key, pivot, item = args[0], args[2], args[3]
        lst, err = self._write_as(db, key, LIST)
        if lst is None:
            return err or 0
        tail = listcore.normalize(lst)
        try:
            at = tail.index(pivot)
        except ValueError:
            return -1
        tail.insert(at if where == b"BEFORE" else at + 1, item)
        self.keyspace.account(db, len(item) + ITEM_OVERHEAD)
        self._log(db, "LINSERT", key, where, pivot, item)
        return len(tail)


def _remove(lst: list, item: bytes, count: int) -> int:
    """LREM on ``lst`` in place: up to ``count`` from the head (> 0), the tail (< 0) or all."""
    limit = abs(count) or len(lst)
    order = range(len(lst)) if count >= 0 else range(len(lst) - 1, -1, -1)
    doomed = []
    for i in order:
        if lst[i] == item:
            doomed.append(i)
            if len(doomed) == limit:
                break
    if not doomed:
        return 0
    drop = set(doomed)
    lst[:] = [x for i, x in enumerate(lst) if i not in drop]
    return len(doomed)


def _lpos_options(args):
    """(rank, count or None, maxlen) of LPOS, or the error."""
    rank, count, maxlen = 1, None, 0
    i, n = 2, len(args)
    while i < n:
        opt = args[i].upper()
        if i + 1 >= n:
            return SYNTAX_ERR
        value = parse_ll(args[i + 1])
        if opt not in (b"RANK", b"COUNT", b"MAXLEN"):
            return SYNTAX_ERR
        if value is None:
            return NOT_INT_ERR
        if opt == b"RANK":
            if value == 0:
                return _RANK_ZERO
            rank = value
        elif opt == b"COUNT":
            if value < 0:
                return _COUNT_NEGATIVE
            count = value
        else:
            if value < 0:
                return _MAXLEN_NEGATIVE
            maxlen = value
        i += 2
    return rank, count, maxlen


def _positions(lst: list, item: bytes, rank: int, count: int, maxlen: int) -> list[int]:
    """LPOS's matches: skip ``|rank| - 1`` matches from the head (rank > 0) or tail, then up to
    ``count`` (0: all), comparing at most ``maxlen`` items (0: all)."""
    n = len(lst)
    span = n if maxlen == 0 else min(maxlen, n)
    order = range(span) if rank > 0 else range(n - 1, n - 1 - span, -1)
    skip = abs(rank) - 1
    found = []
    for i in order:
        if lst[i] == item:
            if skip:
                skip -= 1
                continue
            found.append(i)
            if len(found) == count:
                break
    return found
