"""Sorted set algebra and sampling: ZUNION ZINTER ZDIFF (and their STORE forms, with WEIGHTS and
AGGREGATE), ZINTERCARD, ZRANDMEMBER, ZSCAN.

Same mixin contract as ``strings.py``; values as ``zsetcore.py``. The inputs of the algebra may
be sets (every member scores 1) as in Redis. Scores are combined as Redis does: a weighted score
that is NaN (``0 * inf``) is 0, a SUM that is NaN (``inf + -inf``) is 0; ZINTER visits its
inputs smallest first. The STORE forms log themselves (the result depends only on the state they
replay on), or ``DEL`` of the destination when the result is empty and it existed.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, WRONGTYPE_ERR, parse_ll
from aofnode.store.sets import MAX_RANDOM_REPLY
from aofnode.store.typed import ZSET, CollectionBase, parse_limit, scan_collection
from aofnode.store.zsetcore import format_score, parse_score, z_from_scores
from aofnode.store.zsetranges import pairs_flat

__all__ = ["ZSetAlgebraCommands"]

_WEIGHT_ERR = Error(ERR, "weight value is not a float")
_RANDOM_RANGE = Error(ERR, "value is out of range, value must between -9223372036854775807 and "
                           "9223372036854775807")
_OUT_OF_RANGE = Error(ERR, "value is out of range")
_AGGREGATES = {b"SUM": "sum", b"MIN": "min", b"MAX": "max"}


def _weighted(score: float, weight: float) -> float:
    value = score * weight
    return 0.0 if value != value else value + 0.0  # NaN and -0 both become 0


def _combine(a: float, b: float, how: str) -> float:
    if how == "sum":
        value = a + b
        return 0.0 if value != value else value
    return min(a, b) if how == "min" else max(a, b)


def _as_scores(value) -> dict:
    """member -> score of a sorted set, or of a set (every score 1, as Redis)."""
    return value[0] if len(value) == 2 else dict.fromkeys(value[0], 1.0)


class ZSetAlgebraCommands(CollectionBase):
    COMMANDS = {
        "ZUNION": "_cmd_zunion", "ZINTER": "_cmd_zinter", "ZDIFF": "_cmd_zdiff",
        "ZUNIONSTORE": "_cmd_zunionstore", "ZINTERSTORE": "_cmd_zinterstore",
        "ZDIFFSTORE": "_cmd_zdiffstore", "ZINTERCARD": "_cmd_zintercard",
        "ZRANDMEMBER": "_cmd_zrandmember", "ZSCAN": "_cmd_zscan",
    }

    def _cmd_zunion(self, db, args):
        return self._zalgebra(db, "zunion", args, "union")

    def _cmd_zinter(self, db, args):
        return self._zalgebra(db, "zinter", args, "inter")

    def _cmd_zdiff(self, db, args):
        return self._zalgebra(db, "zdiff", args, "diff")

    def _cmd_zunionstore(self, db, args):
        return self._zstore(db, "ZUNIONSTORE", args, "union")

    def _cmd_zinterstore(self, db, args):
        return self._zstore(db, "ZINTERSTORE", args, "inter")

    def _cmd_zdiffstore(self, db, args):
        return self._zstore(db, "ZDIFFSTORE", args, "diff")

    def _zalgebra(self, db, name, args, op):
        result = self._zcombine(db, name, args, op, False)
        if result.__class__ is Error:
            return result
        scores, withscores = result
        items = sorted([(s, m) for m, s in scores.items()])
        return pairs_flat(items) if withscores else [m for _, m in items]

    def _zstore(self, db, name, args, op):
        result = self._zcombine(db, name.lower(), args[1:], op, True)
        if result.__class__ is Error:
            return result
        scores = result[0]
        return self._store_at(db, name, args, z_from_scores(scores), len(scores))

    def _zinputs(self, db, keys, store):
        """member -> score of each input (None if missing), or WRONGTYPE."""
        out = []
        for key in keys:
            value = (self.keyspace.lookup_write(db, key) if store else self._read(db, key))
            if value is None:
                out.append(None)
            elif value.__class__ is tuple:  # a sorted set or a set
                out.append(_as_scores(value))
            else:
                return WRONGTYPE_ERR
        return out

    def _zcombine(self, db, name, args, op, store):
        """(member -> score of the result, withscores), or the error, for ``numkeys key ...
        [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]`` as Redis parses it."""
        numkeys = parse_ll(args[0])
        if numkeys is None:
            return NOT_INT_ERR
        if numkeys < 1:
            return Error(ERR, f"at least 1 input key is needed for '{name}' command")
        if numkeys > len(args) - 1:
            return SYNTAX_ERR
        inputs = self._zinputs(db, args[1:1 + numkeys], store)
        if inputs.__class__ is Error:
            return inputs
        opts = _algebra_options(args[1 + numkeys:], numkeys, op, store)
        if opts.__class__ is Error:
            return opts
        weights, how, withscores = opts
        if op == "diff":
            return _diff(inputs), withscores
        weighted = [(scores, w) for scores, w in zip(inputs, weights)]
        if op == "inter":
            return _inter(weighted, how), withscores
        return _union(weighted, how), withscores

    def _cmd_zintercard(self, db, args):
        numkeys = parse_ll(args[0])
        if numkeys is None:
            return NOT_INT_ERR
        if numkeys < 1:
            return Error(ERR, "at least 1 input key is needed for 'zintercard' command")
        if numkeys > len(args) - 1:
            return SYNTAX_ERR
        inputs = self._zinputs(db, args[1:1 + numkeys], False)
        if inputs.__class__ is Error:
            return inputs
        limit = parse_limit(args[1 + numkeys:])
        if limit.__class__ is Error:
            return limit
        n = len(_inter([(s, 1.0) for s in inputs], "sum"))
        return min(n, limit) if limit else n

    def _cmd_zrandmember(self, db, args):
        if len(args) > 3 or (len(args) == 3 and args[2].upper() != b"WITHSCORES"):
            return SYNTAX_ERR
        count = None
        if len(args) >= 2:
            count = parse_ll(args[1])
            if count is None:
                return NOT_INT_ERR
            if count == -(2**63):
                return _RANDOM_RANGE
            if count < -MAX_RANDOM_REPLY:
                return _OUT_OF_RANGE
        z, err = self._read_as(db, args[0], ZSET)
        if z is None:
            return err or ([] if count is not None else None)
        members = list(z[0])
        rng = self.random
        if count is None:
            return members[rng.randrange(len(members))]
        if count < 0:
            picked = [members[rng.randrange(len(members))] for _ in range(-count)]
        elif count >= len(members):
            picked = members
        else:
            picked = rng.sample(members, count)
        if len(args) == 3:
            scores = z[0]
            return pairs_flat([(scores[m], m) for m in picked])
        return picked

    def _cmd_zscan(self, db, args):
        return scan_collection(self, db, args, ZSET, _scan_pairs)


def _scan_pairs(z, members) -> list:
    scores = z[0]
    out = []
    for member in members:
        out.append(member)
        out.append(format_score(scores[member]))
    return out


def _algebra_options(rest, numkeys, op, store):
    """(weights, aggregate, withscores) from the options after the keys, or the error."""
    weights, how, withscores = [1.0] * numkeys, "sum", False
    i, n = 0, len(rest)
    while i < n:
        opt = rest[i].upper()
        left = n - i - 1
        if op != "diff" and opt == b"WEIGHTS" and left >= numkeys:
            for j in range(numkeys):
                weight = parse_score(rest[i + 1 + j])
                if weight is None:
                    return _WEIGHT_ERR
                weights[j] = weight
            i += numkeys
        elif op != "diff" and opt == b"AGGREGATE" and left >= 1:
            how = _AGGREGATES.get(rest[i + 1].upper())
            if how is None:
                return SYNTAX_ERR
            i += 1
        elif opt == b"WITHSCORES" and not store:
            withscores = True
        else:
            return SYNTAX_ERR
        i += 1
    return weights, how, withscores


def _union(weighted, how) -> dict:
    out: dict = {}
    for scores, weight in weighted:
        if scores is None:
            continue
        for member, score in scores.items():
            score = _weighted(score, weight)
            old = out.get(member)
            out[member] = score if old is None else _combine(old, score, how)
    return out


def _inter(weighted, how) -> dict:
    if any(scores is None for scores, _ in weighted):
        return {}
    weighted = sorted(weighted, key=lambda item: len(item[0]))
    (first, weight), others = weighted[0], weighted[1:]
    out = {}
    for member, score in first.items():
        score = _weighted(score, weight)
        for scores, w in others:
            other = scores.get(member)
            if other is None:
                break
            score = _combine(score, _weighted(other, w), how)
        else:
            out[member] = score
    return out


def _diff(inputs) -> dict:
    first = inputs[0]
    if first is None:
        return {}
    others = [s for s in inputs[1:] if s is not None]
    return {m: s for m, s in first.items() if not any(m in o for o in others)}
