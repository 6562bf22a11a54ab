"""SORT and SORT_RO: sort a list, set or sorted set, by itself or by other keys, as Redis 7.0.

Same mixin contract as ``strings.py``.

- ``SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
  [STORE dst]``. A pattern's first ``*`` is replaced by the element; ``pattern->field`` reads a
  hash field; ``GET #`` is the element itself; a pattern without ``*`` names no key (BY such a
  pattern means "do not sort": the value's own order, which a set with STORE, or read by a
  script, replaces by an ALPHA sort, as Redis does so that the result does not depend on a
  set's layout).
- Numeric order is by the double each weight reads as with strtod (a missing weight is 0; one
  that is not a number is the error ``One or more scores can't be converted into double``),
  ties by the elements' bytes; ALPHA compares bytes (Redis's strcoll in the C locale), a
  missing BY weight first. DESC reverses either.
- Propagation: ``SORT ... STORE dst`` is logged as what it made, ``DEL dst`` (when dst
  existed) then ``RPUSH dst`` of the result in entries of ~1 MiB, never as SORT: a replay
  then depends neither on the BY and GET keys nor on the order of equal weights. An empty
  result deletes dst (``DEL dst``), as Redis.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store import listcore
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, WRONGTYPE_ERR, parse_ll
from aofnode.store.typed import LIST, SET, ZSET, type_name
from aofnode.store.zsetcore import _strtod
from aofnode.store.zsetindex import zi_flat

__all__ = ["SortCommands"]

_NOT_DOUBLE = Error(ERR, "One or more scores can't be converted into double")
_SPACES = b" \t\n\v\f\r"


def _weight(raw: bytes | None) -> float | None:
    """A numeric weight as Redis's strtod reads it: leading spaces skipped, the rest all of
    a number; "" is 0 (strtod stops at once, at the end). None if it is not a number."""
    if raw is None or raw == b"":
        return 0.0
    value = _strtod(raw.lstrip(_SPACES))
    return None if value is None or value != value else value


class SortCommands:
    COMMANDS = {"SORT": "_cmd_sort", "SORT_RO": "_cmd_sort_ro"}

    def _cmd_sort(self, db, args):
        return self._sort(db, args, readonly=False)

    def _cmd_sort_ro(self, db, args):
        return self._sort(db, args, readonly=True)

    def _by_pattern(self, db, pattern, element):
        """The value a BY or GET pattern names for ``element``, or None."""
        if pattern == b"#":
            return element
        star = pattern.find(b"*")
        if star < 0:
            return None
        arrow = pattern.find(b"->", star + 1)
        field = None
        if arrow >= 0 and arrow + 2 < len(pattern):
            field, pattern = pattern[arrow + 2:], pattern[:arrow]
        value = self.keyspace.lookup(db, pattern[:star] + element + pattern[star + 1:])
        if value is None:
            return None
        if field is None:
            return value if value.__class__ is bytes else None
        return value.get(field) if type_name(value) == "hash" else None

    def _sort_options(self, args, readonly):
        """(desc, alpha, (start, count), store, by, gets), or the error to reply."""
        desc = alpha = False
        limit, store, by, gets = (0, -1), None, None, []
        i = 1
        while i < len(args):
            word, left = args[i].upper(), len(args) - i - 1
            if word == b"ASC":
                desc = False
            elif word == b"DESC":
                desc = True
            elif word == b"ALPHA":
                alpha = True
            elif word == b"LIMIT" and left >= 2:
                start, count = parse_ll(args[i + 1]), parse_ll(args[i + 2])
                if start is None or count is None:
                    return NOT_INT_ERR
                limit = (start, count)
                i += 2
            elif word == b"STORE" and left >= 1 and not readonly:
                store = args[i + 1]
                i += 1
            elif word == b"BY" and left >= 1:
                by = args[i + 1]
                i += 1
            elif word == b"GET" and left >= 1:
                gets.append(args[i + 1])
                i += 1
            else:
                return SYNTAX_ERR
            i += 1
        return desc, alpha, limit, store, by, gets

    def _sort(self, db, args, readonly):
        options = self._sort_options(args, readonly)
        if options.__class__ is Error:
            return options
        desc, alpha, (limit_start, limit_count), store, by, gets = options
        value = self.keyspace.lookup(db, args[0])
        kind = None if value is None else type_name(value)
        if kind not in (None, LIST, SET, ZSET):
            return WRONGTYPE_ERR
        dont_sort = by is not None and b"*" not in by
        if dont_sort and kind == SET and (store is not None or self.in_script):
            dont_sort, alpha, by = False, True, None  # a set's own order is no order
        if kind == LIST:
            elements = listcore.items(value)
        elif kind == SET:
            elements = list(value[0])
        elif kind == ZSET:
            elements = [member for _score, member in zi_flat(value[1])]
        else:
            elements = []
        n = len(elements)
        # Redis's LIMIT rule: an inclusive [start, end], empty when start passes the end.
        start = min(max(limit_start, 0), n)
        count = min(max(limit_count, -1), n)
        end = n - 1 if count < 0 else start + count - 1
        if start >= n:
            start, end = n - 1, n - 2
        end = min(end, n - 1)
        if dont_sort:
            if desc and kind != SET:
                elements.reverse()
        else:
            err = self._sort_elements(db, elements, by, alpha, desc)
            if err is not None:
                return err
        chosen = elements[start:end + 1] if end >= start else []
        if gets:
            out = [self._by_pattern(db, pattern, e) for e in chosen for pattern in gets]
        else:
            out = chosen
        if store is None:
            return out
        result = [b"" if v is None else v for v in out]
        return self._store_rebuilt(db, store, listcore.new_list(result), len(result))

    def _sort_elements(self, db, elements, by, alpha, desc):
        """Sort ``elements`` in place by Redis's order, or return the conversion error."""
        if alpha:
            if by is None:
                elements.sort(reverse=desc)
                return None
            weights = {e: self._by_pattern(db, by, e) for e in elements}
            elements.sort(key=lambda e: (weights[e] is not None, weights[e] or b""), reverse=desc)
            return None
        scores = {}
        for e in elements:
            score = _weight(self._by_pattern(db, by, e) if by is not None else e)
            if score is None:
                return _NOT_DOUBLE
            scores[e] = score
        elements.sort(key=lambda e: (scores[e], e), reverse=desc)
        return None

