"""Geo searches: GEORADIUS, GEORADIUS_RO, GEORADIUSBYMEMBER, GEORADIUSBYMEMBER_RO, GEOSEARCH,
GEOSEARCHSTORE, as Redis 7.0's ``georadiusGeneric``.

Same mixin contract as ``strings.py``; the area searched and the order are ``geoarea.py``'s.

- Arguments are read in Redis's order, so the first error Redis meets is the one replied: the
  source key's type, then GEORADIUS's centre and radius (GEORADIUSBYMEMBER's member, then its
  radius, both skipped when the key is missing), then the options left to right (FROMMEMBER,
  FROMLONLAT, BYRADIUS and BYBOX are checked where they stand), then the combinations (STORE
  with WITHDIST/WITHHASH/WITHCOORD, a missing FROM or BY, ANY without COUNT).
- Replies: the members; with any of WITHDIST (bulk, 4 decimals), WITHHASH (the integer score)
  or WITHCOORD ([longitude, latitude]), one array per member, in that order. COUNT without ANY
  means the nearest COUNT (ASC unless DESC); COUNT ANY stops at the first COUNT found.
- STORE / STOREDIST / GEOSEARCHSTORE store a sorted set of the members with their geohash, or
  with their distance in the unit asked, and reply its size; an empty result deletes the
  destination. Propagation: what was made, ``DEL dst`` (when dst existed) then ``ZADD dst score
  member ...`` in entries of ~1 MiB, never the search: a replay depends neither on the source
  key nor on float arithmetic (the scores are ``%.17g``, exact).
- Bounds: the work is the members of at most nine score ranges of the source (``geoarea.py``),
  O(N) at worst as ZRANGEBYSCORE over the same members; the reply is bounded as any reply
  (``--client-output-limit``), a stored result by ``maxmemory`` (the STORE forms are denyoom).
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.geo import distance_text, geo_decode, human_double, parse_unit, position, UNIT_ERR
from aofnode.store.geoarea import Shape, candidates, order
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, parse_ll
from aofnode.store.typed import ZSET
from aofnode.store.zsetcore import parse_score, z_from_scores

__all__ = ["GeoSearchCommands"]

_COORDS, _MEMBER, _NOSTORE, _SEARCH, _SEARCHSTORE = 1, 2, 4, 8, 16
_NO_MEMBER = Error(ERR, "could not decode requested zset member")
_COUNT_ERR = Error(ERR, "COUNT must be > 0")
_ANY_ERR = Error(ERR, "the ANY argument requires COUNT argument")
_NEGATIVE_RADIUS = Error(ERR, "radius cannot be negative")
_NEGATIVE_BOX = Error(ERR, "height or width cannot be negative")
_STORE_WITH = "%s is not compatible with WITHDIST, WITHHASH and WITHCOORD options"


def _number(raw: bytes, what: str):
    value = parse_score(raw)
    return Error(ERR, "need numeric " + what) if value is None else value


def _radius(args, i: int):
    """(radius, metres per unit) from ``radius unit`` at ``args[i]``, or the error."""
    radius = _number(args[i], "radius")
    if radius.__class__ is Error:
        return radius
    if radius < 0:
        return _NEGATIVE_RADIUS
    to_metre = parse_unit(args[i + 1])
    return UNIT_ERR if to_metre is None else (radius, to_metre)


def _box(args, i: int):
    """(width, height, metres per unit) from ``width height unit`` at ``args[i]``."""
    width = _number(args[i], "width")
    if width.__class__ is Error:
        return width
    height = _number(args[i + 1], "height")
    if height.__class__ is Error:
        return height
    if height < 0 or width < 0:
        return _NEGATIVE_BOX
    to_metre = parse_unit(args[i + 2])
    return UNIT_ERR if to_metre is None else (width, height, to_metre)


def _member_position(z, member: bytes):
    score = z[0].get(member)
    return _NO_MEMBER if score is None else geo_decode(score)


class _Query:
    """What the arguments asked for."""

    __slots__ = ("centre", "radius", "box", "to_metre", "dist", "hash", "coord", "desc", "sort",
                 "count", "any", "store", "storedist", "has_from", "has_by")

    def __init__(self) -> None:
        self.centre: tuple[float, float] | None = None
        self.radius: float | None = None
        self.box: tuple[float, float] | None = None
        self.to_metre = 1.0
        self.dist = self.hash = self.coord = self.desc = self.sort = self.any = False
        self.storedist = False
        self.has_from = self.has_by = ""  # "member" / "lonlat", "radius" / "box" once given
        self.count = 0
        self.store: bytes | None = None

    def shape(self) -> Shape:
        lon, lat = self.centre or (0.0, 0.0)
        if self.box is not None:
            return Shape(lon, lat, self.to_metre, width=self.box[0], height=self.box[1], box=True)
        return Shape(lon, lat, self.to_metre, radius=self.radius or 0.0)


def _options(q: _Query, z, args, i: int, flags: int):
    """Read the options from ``args[i]`` into ``q``; the first error, or None."""
    search = bool(flags & _SEARCH)
    n = len(args)
    while i < n:
        word, left = args[i].upper(), n - i - 1
        if word == b"WITHDIST":
            q.dist = True
        elif word == b"WITHHASH":
            q.hash = True
        elif word == b"WITHCOORD":
            q.coord = True
        elif word == b"ANY":
            q.any = True
        elif word == b"ASC" or word == b"DESC":
            q.sort, q.desc = True, word == b"DESC"
        elif word == b"COUNT" and left >= 1:
            count = parse_ll(args[i + 1])
            if count is None:
                return NOT_INT_ERR
            if count <= 0:
                return _COUNT_ERR
            q.count = count
            i += 1
        elif word in (b"STORE", b"STOREDIST") and left >= 1 and not flags & (_NOSTORE | _SEARCH):
            q.store, q.storedist = args[i + 1], word == b"STOREDIST"
            i += 1
        elif word == b"STOREDIST" and flags & _SEARCHSTORE:
            q.storedist = True
        elif word == b"FROMMEMBER" and left >= 1 and search and q.has_from != "lonlat":
            if z is not None:  # a missing key reads on, to answer by STORE or not
                centre = _member_position(z, args[i + 1])
                if centre.__class__ is Error:
                    return centre
                q.centre = centre
            q.has_from = "member"
            i += 1
        elif word == b"FROMLONLAT" and left >= 2 and search and q.has_from != "member":
            centre = position(args[i + 1], args[i + 2])
            if centre.__class__ is Error:
                return centre
            q.centre, q.has_from = centre, "lonlat"
            i += 2
        elif word == b"BYRADIUS" and left >= 2 and search and q.has_by != "box":
            got = _radius(args, i + 1)
            if got.__class__ is Error:
                return got
            q.radius, q.to_metre = got
            q.has_by = "radius"
            i += 2
        elif word == b"BYBOX" and left >= 3 and search and q.has_by != "radius":
            got = _box(args, i + 1)
            if got.__class__ is Error:
                return got
            q.box, q.to_metre = got[:2], got[2]
            q.has_by = "box"
            i += 3
        else:
            return SYNTAX_ERR
        i += 1
    return None


class GeoSearchCommands:
    COMMANDS = {
        "GEORADIUS": "_cmd_georadius", "GEORADIUS_RO": "_cmd_georadius_ro",
        "GEORADIUSBYMEMBER": "_cmd_georadiusbymember",
        "GEORADIUSBYMEMBER_RO": "_cmd_georadiusbymember_ro",
        "GEOSEARCH": "_cmd_geosearch", "GEOSEARCHSTORE": "_cmd_geosearchstore",
    }

    def _cmd_georadius(self, db, args):
        return self._geo_search(db, args, _COORDS, "GEORADIUS")

    def _cmd_georadius_ro(self, db, args):
        return self._geo_search(db, args, _COORDS | _NOSTORE, "GEORADIUS_RO")

    def _cmd_georadiusbymember(self, db, args):
        return self._geo_search(db, args, _MEMBER, "GEORADIUSBYMEMBER")

    def _cmd_georadiusbymember_ro(self, db, args):
        return self._geo_search(db, args, _MEMBER | _NOSTORE, "GEORADIUSBYMEMBER_RO")

    def _cmd_geosearch(self, db, args):
        return self._geo_search(db, args, _SEARCH, "GEOSEARCH")

    def _cmd_geosearchstore(self, db, args):
        return self._geo_search(db, args, _SEARCH | _SEARCHSTORE, "GEOSEARCHSTORE")

    def _geo_search(self, db, args, flags, name):
        z, err = self._read_as(db, args[1] if flags & _SEARCHSTORE else args[0], ZSET)
        if err is not None:
            return err
        q = _Query()
        if flags & _COORDS:
            first = 5
            q.centre = position(args[1], args[2])
            if q.centre.__class__ is Error:
                return q.centre
            got = _radius(args, 3)
            if got.__class__ is Error:
                return got
            q.radius, q.to_metre = got
        elif flags & _MEMBER:
            first = 4
            if z is not None:  # a missing key reads on, to answer by STORE or not
                q.centre = _member_position(z, args[1])
                if q.centre.__class__ is Error:
                    return q.centre
                got = _radius(args, 2)
                if got.__class__ is Error:
                    return got
                q.radius, q.to_metre = got
        else:
            first = 1
            if flags & _SEARCHSTORE:
                first, q.store = 2, args[0]
        err = _options(q, z, args, first, flags) or _combination_error(q, flags, name)
        if err is not None:
            return err
        if z is None:
            return [] if q.store is None else self._geo_store(db, q.store, [], q)
        if q.count and not q.sort and not q.any:
            q.sort = True  # the nearest COUNT, not any COUNT
        points = candidates(z, q.shape(), q.count if q.any else 0)
        if q.sort:
            order(points, q.desc, q.count)
        if q.count:
            del points[q.count:]
        if q.store is not None:
            return self._geo_store(db, q.store, points, q)
        return _reply(points, q)

    def _geo_store(self, db, dst, points, q):
        to_metre = q.to_metre
        scores = {p[2]: p[0] / to_metre if q.storedist else p[1] for p in points}
        return self._store_rebuilt(db, dst, z_from_scores(scores), len(scores))


def _combination_error(q: _Query, flags: int, name: str):
    if q.store is not None and (q.dist or q.hash or q.coord):
        return Error(ERR, _STORE_WITH % ("GEOSEARCHSTORE" if flags & _SEARCHSTORE
                                         else "STORE option in GEORADIUS"))
    if flags & _SEARCH and not q.has_from:
        return Error(ERR, "exactly one of FROMMEMBER or FROMLONLAT can be specified for "
                          + name.lower())
    if flags & _SEARCH and not q.has_by:
        return Error(ERR, "exactly one of BYRADIUS and BYBOX can be specified for " + name.lower())
    if q.any and not q.count:
        return _ANY_ERR
    return None


def _reply(points, q: _Query) -> list:
    """The members, or per member [member, distance?, hash?, [lon, lat]?] with options."""
    if not (q.dist or q.hash or q.coord):
        return [p[2] for p in points]
    out = []
    to_metre = q.to_metre
    for d, score, member, lon, lat in points:
        item: list = [member]
        if q.dist:
            item.append(distance_text(d / to_metre))
        if q.hash:
            item.append(int(score))
        if q.coord:
            item.append([human_double(lon), human_double(lat)])
        out.append(item)
    return out
