"""The search area of GEORADIUS and GEOSEARCH: which sorted set score ranges hold the candidates,
which candidates are inside the shape, and the order they are returned in.

Design
------
A geo index is a sorted set whose score is a 52-bit geohash (``geo.py``). Every position inside
one geohash cell of ``2 * step`` bits has a score in ``[cell << (52 - 2 * step), (cell + 1) <<
(52 - 2 * step))``, so a search reads score ranges, never the whole set:

1. ``search_boxes``: the step (cell size) is estimated from the radius (or the box's half
   diagonal) and the latitude, made one coarser when a neighbour cell does not reach the
   bounding box of the shape, then the cell of the centre and its 8 neighbours, those wholly
   outside the bounding box dropped. Nine ranges at most, as Redis's
   ``geohashCalculateAreasByShapeWGS84``.
2. ``candidates``: each range's members in score order, a range equal to the one just read
   skipped (at the largest radii neighbours coincide), stopping once ``limit`` are found (COUNT
   ANY).
3. ``Shape.distance``: the exact test of one candidate (haversine distance to the centre within
   the radius, or the latitude and longitude distances within half the box's sides), computed
   in Redis's order of operations so that the same points are in and the distances agree to the
   last bit.
4. ``order``: by distance. A full sort is stable (glibc's qsort, which Redis calls, is a merge
   sort); COUNT without ANY sorts only the first COUNT places with Redis's partial quicksort, so
   points at the same distance come in the same order as Redis's.

The work is the members of the nine ranges, each decoded once: a search costs what a
ZRANGEBYSCORE over the same members costs plus a haversine per member, and a radius that
covers the world reads the whole set, as Redis does. Nothing here touches the keyspace.
"""

from __future__ import annotations

import math

from aofnode.store.geo import geo_distance, spread, squash
from aofnode.store.zsetcore import score_span
from aofnode.store.zsetindex import zi_slice

__all__ = ["Shape", "search_boxes", "candidates", "order"]

_LAT_MIN, _LAT_MAX = -85.05112878, 85.05112878
_LONG_MIN, _LONG_MAX = -180.0, 180.0
_EARTH_RADIUS_M = 6372797.560856
_DEG_RAD = math.pi / 180.0
_MERCATOR_MAX = 20037726.37  # half the Web Mercator world's width in metres
_MAX_STEP = 26
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA
_U64 = (1 << 64) - 1


def _cos(x: float) -> float:
    """C's cos: NaN for an infinite angle (Python raises), which an infinite radius gives."""
    return math.cos(x) if math.isfinite(x) else math.nan


def _lat_distance(lat1: float, lat2: float) -> float:
    return _EARTH_RADIUS_M * abs(lat2 * _DEG_RAD - lat1 * _DEG_RAD)


class Shape:
    """A circle (``radius``) or an axis-aligned box (``width`` x ``height``) around
    (``lon``, ``lat``), its sizes in ``unit``s of ``to_metre`` metres each."""

    __slots__ = ("lon", "lat", "to_metre", "radius", "width", "height", "box")

    def __init__(self, lon: float, lat: float, to_metre: float, radius: float = 0.0,
                 width: float = 0.0, height: float = 0.0, box: bool = False) -> None:
        self.lon, self.lat, self.to_metre = lon, lat, to_metre
        self.radius, self.width, self.height, self.box = radius, width, height, box

    def bounds(self) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the shape: wider at the latitude farther
        from the equator, where a degree of longitude is shorter."""
        half_h = self.to_metre * (self.height / 2 if self.box else self.radius)
        half_w = self.to_metre * (self.width / 2 if self.box else self.radius)
        lat_delta = (half_h / _EARTH_RADIUS_M) / _DEG_RAD
        top = (half_w / _EARTH_RADIUS_M / _cos((self.lat + lat_delta) * _DEG_RAD)) / _DEG_RAD
        bottom = (half_w / _EARTH_RADIUS_M / _cos((self.lat - lat_delta) * _DEG_RAD)) / _DEG_RAD
        delta = bottom if self.lat < 0 else top
        return self.lon - delta, self.lat - lat_delta, self.lon + delta, self.lat + lat_delta

    def reach_m(self) -> float:
        """Metres from the centre to the farthest edge: the radius, or half the diagonal."""
        if not self.box:
            return self.radius * self.to_metre
        w, h = self.width / 2, self.height / 2
        return math.sqrt(w * w + h * h) * self.to_metre

    def distance(self, lon: float, lat: float) -> float | None:
        """Metres from the centre to a point inside the shape; None when it is outside."""
        clon, clat = self.lon, self.lat
        if not self.box:
            d = geo_distance(clon, clat, lon, lat)
            return None if d > self.radius * self.to_metre else d
        if _lat_distance(lat, clat) > self.height * self.to_metre / 2:
            return None
        if geo_distance(lon, lat, clon, lat) > self.width * self.to_metre / 2:
            return None
        return geo_distance(clon, clat, lon, lat)


def _steps(range_m: float, lat: float) -> int:
    """The cell size (bits per coordinate) for a search reaching ``range_m`` metres: about the
    largest cell still twice the reach, one or two coarser near the poles."""
    if range_m == 0:
        return _MAX_STEP
    step = 1
    while range_m < _MERCATOR_MAX:
        range_m *= 2
        step += 1
    step -= 2
    if lat > 66 or lat < -66:
        step -= 1
        if lat > 80 or lat < -80:
            step -= 1
    return min(max(step, 1), _MAX_STEP)


def _encode(lon: float, lat: float, step: int) -> int:
    scale = float(1 << step)
    lat_cell = int((lat - _LAT_MIN) / (_LAT_MAX - _LAT_MIN) * scale)
    lon_cell = int((lon - _LONG_MIN) / (_LONG_MAX - _LONG_MIN) * scale)
    return spread(lat_cell) | (spread(lon_cell) << 1)


def _area(bits: int, step: int) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a cell."""
    lat_cell, lon_cell = squash(bits), squash(bits >> 1)
    scale = float(1 << step)
    lat_span, lon_span = _LAT_MAX - _LAT_MIN, _LONG_MAX - _LONG_MIN
    return (_LONG_MIN + (lon_cell / scale) * lon_span, _LAT_MIN + (lat_cell / scale) * lat_span,
            _LONG_MIN + ((lon_cell + 1) / scale) * lon_span,
            _LAT_MIN + ((lat_cell + 1) / scale) * lat_span)


def _move(bits: int, step: int, axis: int, d: int) -> int:
    """The cell ``d`` (+1 or -1) away along ``axis`` (_ODD: longitude, _EVEN: latitude),
    wrapping at the edges. The other axis's bits are kept; the carry runs through them."""
    moved, kept = bits & axis, bits & (axis ^ _U64)
    fill = (axis ^ _U64) >> (64 - step * 2)  # ones in every position of the other axis
    if d > 0:
        moved = moved + (fill + 1)
    else:
        moved = ((moved | fill) - (fill + 1)) & _U64
    return (moved & (axis >> (64 - step * 2))) | kept


def _neighbours(bits: int, step: int) -> list[int]:
    """north, south, east, west, north-east, north-west, south-east, south-west."""
    n, s = _move(bits, step, _EVEN, 1), _move(bits, step, _EVEN, -1)
    return [n, s, _move(bits, step, _ODD, 1), _move(bits, step, _ODD, -1),
            _move(n, step, _ODD, 1), _move(n, step, _ODD, -1),
            _move(s, step, _ODD, 1), _move(s, step, _ODD, -1)]


def search_boxes(shape: Shape) -> list[tuple[int, int] | None]:
    """The nine cells to read, as (bits, step): the centre's, then north, south, east, west,
    north-east, north-west, south-east, south-west; None for one that cannot hold a match."""
    min_lon, min_lat, max_lon, max_lat = shape.bounds()
    step = _steps(shape.reach_m(), shape.lat)
    bits = _encode(shape.lon, shape.lat, step)
    near = _neighbours(bits, step)
    north, south, east, west = (_area(b, step) for b in near[:4])
    if (north[3] < max_lat or south[1] > min_lat or east[2] < max_lon or west[0] > min_lon) \
            and step > 1:
        step -= 1
        bits = _encode(shape.lon, shape.lat, step)
        near = _neighbours(bits, step)
    boxes: list[tuple[int, int] | None] = [(bits, step)]
    boxes += [(b, step) for b in near]
    if step >= 2:
        lo_lon, lo_lat, hi_lon, hi_lat = _area(bits, step)
        dropped: set[int] = set()
        if lo_lat < min_lat:
            dropped |= {2, 7, 8}  # south, south-east, south-west
        if hi_lat > max_lat:
            dropped |= {1, 5, 6}
        if lo_lon < min_lon:
            dropped |= {4, 8, 6}
        if hi_lon > max_lon:
            dropped |= {3, 7, 5}
        for i in dropped:
            boxes[i] = None
    return boxes


# The cells of a 52-bit score, 16 bits at a time: entry ``x`` holds the 8 even bits of ``x``
# (latitude) in bits 0-7 and its 8 odd bits (longitude) in bits 32-39, so four lookups, shifted
# into place and or-ed, give both cells at once (``_cells``). The bit-by-bit squash costs ~4x
# more per member, and decoding is most of a search's work.
_CELLS16 = [squash(x) | (squash(x >> 1) << 32) for x in range(1 << 16)]
_LAT_SPAN, _LON_SPAN = _LAT_MAX - _LAT_MIN, _LONG_MAX - _LONG_MIN
_SCALE = float(1 << _MAX_STEP)


def _position(score: float) -> tuple[float, float]:
    """``geo_decode`` for a score in [0, 2^64) (every score a search range holds), by table."""
    b = int(score)
    t = _CELLS16
    v = t[b & 0xFFFF] | (t[(b >> 16) & 0xFFFF] << 8) | (t[(b >> 32) & 0xFFFF] << 16) | (t[b >> 48] << 24)
    lat_cell, lon_cell = v & 0xFFFFFFFF, v >> 32
    lon = ((_LONG_MIN + (lon_cell / _SCALE) * _LON_SPAN)
           + (_LONG_MIN + ((lon_cell + 1) / _SCALE) * _LON_SPAN)) / 2
    lat = ((_LAT_MIN + (lat_cell / _SCALE) * _LAT_SPAN)
           + (_LAT_MIN + ((lat_cell + 1) / _SCALE) * _LAT_SPAN)) / 2
    return min(lon, _LONG_MAX), min(lat, _LAT_MAX)


def candidates(z: tuple, shape: Shape, limit: int) -> list[tuple[float, float, bytes, float, float]]:
    """(metres, score, member, lon, lat) of each member inside ``shape``, in the order found;
    at most ``limit`` of them when ``limit`` > 0 (COUNT ANY)."""
    boxes = search_boxes(shape)
    index, n = z[1], len(z[0])
    found: list[tuple[float, float, bytes, float, float]] = []
    last = 0
    for i, box in enumerate(boxes):
        if box is None:
            continue
        if last and box == boxes[last]:
            continue  # a neighbour equal to the cell just read (only at the largest radii)
        if limit and len(found) >= limit:
            break
        bits, step = box
        shift = 52 - step * 2
        start, end = score_span(z, (float(bits << shift), False), (float((bits + 1) << shift), True))
        items = zi_slice(index, start, end, n)
        if shape.box:
            _within_box(items, shape, found, limit)
        else:
            _within_circle(items, shape, found, limit)
        last = i
    return found


# The two loops below are ``_position`` and ``Shape.distance`` written out, one pass per cell
# (tests/unit/test_geoarea.py checks them against those):
# a search of the whole map reads every member, and a call per member for each step cost ~2x.
# Every operation is Redis's, in its order (geohash_helper.c), so the results are the same bits.

def _within_circle(items: list, shape: Shape, found: list, limit: int) -> None:
    t, scale, lon_span, lat_span = _CELLS16, _SCALE, _LON_SPAN, _LAT_SPAN
    sin, cos, asin, sqrt, rad, earth = math.sin, math.cos, math.asin, math.sqrt, _DEG_RAD, _EARTH_RADIUS_M
    lon1r, lat1 = shape.lon * rad, shape.lat
    lat1r = lat1 * rad
    cos1 = cos(lat1r)
    radius = shape.radius * shape.to_metre
    append = found.append
    for score, member in items:
        b = int(score)
        v = t[b & 0xFFFF] | (t[(b >> 16) & 0xFFFF] << 8) | (t[(b >> 32) & 0xFFFF] << 16) | (t[b >> 48] << 24)
        cell = v >> 32
        lon = ((-180.0 + (cell / scale) * lon_span) + (-180.0 + ((cell + 1) / scale) * lon_span)) / 2
        cell = v & 0xFFFFFFFF
        lat = ((_LAT_MIN + (cell / scale) * lat_span) + (_LAT_MIN + ((cell + 1) / scale) * lat_span)) / 2
        if lon > 180.0:
            lon = 180.0
        if lat > _LAT_MAX:
            lat = _LAT_MAX
        w = sin((lon * rad - lon1r) / 2)
        if w == 0.0:
            d = earth * abs(lat * rad - lat1r)
        else:
            lat2r = lat * rad
            u = sin((lat2r - lat1r) / 2)
            d = 2.0 * earth * asin(sqrt(u * u + cos1 * cos(lat2r) * w * w))
        if d <= radius:
            append((d, score, member, lon, lat))
            if limit and len(found) >= limit:
                return


def _within_box(items: list, shape: Shape, found: list, limit: int) -> None:
    t, scale, lon_span, lat_span = _CELLS16, _SCALE, _LON_SPAN, _LAT_SPAN
    sin, cos, asin, sqrt, rad, earth = math.sin, math.cos, math.asin, math.sqrt, _DEG_RAD, _EARTH_RADIUS_M
    clon_r, clat_r = shape.lon * rad, shape.lat * rad
    cos1 = cos(clat_r)
    half_h, half_w = shape.height * shape.to_metre / 2, shape.width * shape.to_metre / 2
    append = found.append
    for score, member in items:
        b = int(score)
        v = t[b & 0xFFFF] | (t[(b >> 16) & 0xFFFF] << 8) | (t[(b >> 32) & 0xFFFF] << 16) | (t[b >> 48] << 24)
        cell = v >> 32
        lon = ((-180.0 + (cell / scale) * lon_span) + (-180.0 + ((cell + 1) / scale) * lon_span)) / 2
        cell = v & 0xFFFFFFFF
        lat = ((_LAT_MIN + (cell / scale) * lat_span) + (_LAT_MIN + ((cell + 1) / scale) * lat_span)) / 2
        if lon > 180.0:
            lon = 180.0
        if lat > _LAT_MAX:
            lat = _LAT_MAX
        lat_r, lon_r = lat * rad, lon * rad
        if earth * abs(clat_r - lat_r) > half_h:  # north-south: along the meridian
            continue
        w = sin((clon_r - lon_r) / 2)  # east-west: along the point's parallel
        if w != 0.0:
            c = cos(lat_r)
            if 2.0 * earth * asin(sqrt(0.0 + c * c * w * w)) > half_w:
                continue
        w = sin((lon_r - clon_r) / 2)
        if w == 0.0:
            d = earth * abs(lat_r - clat_r)
        else:
            u = sin((lat_r - clat_r) / 2)
            d = 2.0 * earth * asin(sqrt(u * u + cos1 * cos(lat_r) * w * w))
        append((d, score, member, lon, lat))
        if limit and len(found) >= limit:
            return


def _key(point) -> float:
    return point[0]


def order(points: list, desc: bool, count: int) -> None:
    """Sort ``points`` by distance in place: all of them, stably, or (``0 < count <
    len(points)``) only enough that the first ``count`` places hold what Redis puts there."""
    if count <= 0 or count >= len(points):
        points.sort(key=_key, reverse=desc)
        return
    sign = -1.0 if desc else 1.0

    def cmp(i: int, j: int) -> int:
        a, b = points[i][0] * sign, points[j][0] * sign
        return 1 if a > b else (0 if a == b else -1)

    _partial_quicksort(points, cmp, 0, len(points), count - 1)


def _med3(a: int, b: int, c: int, cmp) -> int:
    if cmp(a, b) < 0:
        return b if cmp(b, c) < 0 else (c if cmp(a, c) < 0 else a)
    return b if cmp(b, c) > 0 else (a if cmp(a, c) < 0 else c)


def _swap_runs(p: list, a: int, b: int, n: int) -> None:
    for k in range(n):
        p[a + k], p[b + k] = p[b + k], p[a + k]


def _partial_quicksort(p: list, cmp, lo: int, n: int, last: int) -> None:
    """Bentley and McIlroy's three-way quicksort ("Engineering a Sort Function", 1993) of
    ``p[lo:lo + n]``, as Redis's pqsort runs it: a part that lies wholly after position
    ``last`` is left unsorted. Equal elements end where its partitioning puts them, so the
    same steps are needed to give ties Redis's order."""
    while True:
        if n < 7:
            for m in range(lo + 1, lo + n):
                k = m
                while k > lo and cmp(k - 1, k) > 0:
                    p[k], p[k - 1] = p[k - 1], p[k]
                    k -= 1
            return
        m = lo + n // 2
        if n > 7:
            left, right = lo, lo + n - 1
            if n > 40:
                d = n // 8
                left = _med3(left, left + d, left + 2 * d, cmp)
                m = _med3(m - d, m, m + d, cmp)
                right = _med3(right - 2 * d, right - d, right, cmp)
            m = _med3(left, m, right, cmp)
        p[lo], p[m] = p[m], p[lo]
        pa = pb = lo + 1
        pc = pd = lo + n - 1
        while True:
            while pb <= pc:
                c = cmp(pb, lo)
                if c > 0:
                    break
                if c == 0:
                    p[pa], p[pb] = p[pb], p[pa]
                    pa += 1
                pb += 1
            while pb <= pc:
                c = cmp(pc, lo)
                if c < 0:
                    break
                if c == 0:
                    p[pc], p[pd] = p[pd], p[pc]
                    pd -= 1
                pc -= 1
            if pb > pc:
                break
            p[pb], p[pc] = p[pc], p[pb]
            pb += 1
            pc -= 1
        end = lo + n
        r = min(pa - lo, pb - pa)
        _swap_runs(p, lo, pb - r, r)
        r = min(pd - pc, end - pd - 1)
        _swap_runs(p, pb, end - r, r)
        r = pb - pa
        if r > 1 and lo <= last:
            _partial_quicksort(p, cmp, lo, r, last)
        r = pd - pc
        if r <= 1:
            return
        lo, n = end - r, r
        if lo > last:
            return

