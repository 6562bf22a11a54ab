"""Geo commands on sorted sets: GEOADD GEOPOS GEODIST GEOHASH.

Same mixin contract as ``strings.py``. A geo index is a plain sorted set, as in Redis: each
member's score is its position as a 52-bit interleaved geohash (26 bits of latitude in the even
bits, 26 of longitude in the odd ones, latitude over Redis's -85.05112878..85.05112878 so that
the cells are those of Web Mercator). The score is an integer below 2^53, so it is exact as a
double and survives ``%.17g`` in the AOF unchanged.

Propagation: GEOADD is a ZADD with the computed scores (Redis itself rewrites it into ZADD), so
it is logged by ``ZSetCommands._zadd`` as ``ZADD key score member``; replay and the rewrite need
nothing of their own. Command statistics count it as GEOADD, as Redis does.

The radius and box searches (GEORADIUS*, GEOSEARCH*) are in ``geosearch.py``, their area in
``geoarea.py``.
"""

from __future__ import annotations

import math

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import SYNTAX_ERR
from aofnode.store.typed import ZSET
from aofnode.store.zsetcore import NOT_FLOAT_ERR, parse_score

__all__ = ["GeoCommands", "geo_encode", "geo_decode", "geo_distance", "distance_text", "human_double",
           "parse_unit", "position", "spread", "squash", "UNIT_ERR"]

_LAT_MIN, _LAT_MAX = -85.05112878, 85.05112878
_LONG_MIN, _LONG_MAX = -180.0, 180.0
_STEP = 26  # bits per coordinate: 52 in all, the precision of a double's mantissa
_EARTH_RADIUS_M = 6372797.560856  # Redis's (geohash_helper.c), so distances agree to the digit
_DEG_RAD = math.pi / 180.0
_BASE32 = b"0123456789bcdefghjkmnpqrstuvwxyz"
_UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
UNIT_ERR = Error(ERR, "unsupported unit provided. please use M, KM, FT, MI")
_GEOADD_FLAGS = (b"NX", b"XX", b"CH")
_TWO63 = 1 << 63
_TWO63_F, _TWO64 = float(_TWO63), 1 << 64


def spread(v: int) -> int:
    """The 32 bits of ``v`` moved to the even bit positions of a 64-bit integer."""
    v &= 0xFFFFFFFF
    v = (v | (v << 16)) & 0x0000FFFF0000FFFF
    v = (v | (v << 8)) & 0x00FF00FF00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v << 2)) & 0x3333333333333333
    return (v | (v << 1)) & 0x5555555555555555


def squash(v: int) -> int:
    """The even bits of ``v`` packed into the low 32 bits (the inverse of ``spread``)."""
    v &= 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    return (v | (v >> 16)) & 0x00000000FFFFFFFF


def _encode(lon: float, lat: float, lat_min: float, lat_max: float) -> int:
    scale = float(1 << _STEP)
    lat_cell = int((lat - lat_min) / (lat_max - lat_min) * scale)  # truncates, as C's cast
    lon_cell = int((lon - _LONG_MIN) / (_LONG_MAX - _LONG_MIN) * scale)
    return spread(lat_cell) | (spread(lon_cell) << 1)


def geo_encode(lon: float, lat: float) -> int:
    """The 52-bit score of a position already checked to be in range."""
    return _encode(lon, lat, _LAT_MIN, _LAT_MAX)


def score_bits(score: float) -> int:
    """The 64 bits Redis reads from a score by its cast to uint64_t, as x86-64 computes it:
    truncation modulo 2^64 below 2^63, and from 2^63 up the value less 2^63 with the top bit
    flipped; what the CPU cannot convert (infinities, 2^64 and more) gives its "indefinite"
    0x8000000000000000 before the flip. ZADD can store any of these scores."""
    if score < _TWO63_F:
        return (int(score) if score >= -_TWO63_F else _TWO63) % _TWO64
    rest = score - _TWO63_F
    return (int(rest) if rest < _TWO63_F else _TWO63) ^ _TWO63


def geo_decode(score: float) -> tuple[float, float]:
    """The (longitude, latitude) at the centre of the cell a score names, clamped to range. Any
    score decodes (ZADD can store scores no GEOADD made), by the bits ``score_bits`` reads."""
    bits = score_bits(score)
    lat_cell, lon_cell = squash(bits), squash(bits >> 1)
    scale = float(1 << _STEP)
    lat_lo = _LAT_MIN + (lat_cell / scale) * (_LAT_MAX - _LAT_MIN)
    lat_hi = _LAT_MIN + ((lat_cell + 1) / scale) * (_LAT_MAX - _LAT_MIN)
    lon_lo = _LONG_MIN + (lon_cell / scale) * (_LONG_MAX - _LONG_MIN)
    lon_hi = _LONG_MIN + ((lon_cell + 1) / scale) * (_LONG_MAX - _LONG_MIN)
    lon = min(max((lon_lo + lon_hi) / 2, _LONG_MIN), _LONG_MAX)
    lat = min(max((lat_lo + lat_hi) / 2, _LAT_MIN), _LAT_MAX)
    return lon, lat


def geo_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Metres between two positions by the haversine formula, computed in Redis's order (a
    shortcut when the longitudes agree) so that the last digit agrees too."""
    v = math.sin((lon2 * _DEG_RAD - lon1 * _DEG_RAD) / 2)
    if v == 0.0:
        return _EARTH_RADIUS_M * abs(lat2 * _DEG_RAD - lat1 * _DEG_RAD)
    lat1r, lat2r = lat1 * _DEG_RAD, lat2 * _DEG_RAD
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * _EARTH_RADIUS_M * math.asin(math.sqrt(a))


def distance_text(d: float) -> bytes:
    """A distance as Redis replies it (GEODIST, WITHDIST): rounded to 4 decimals by
    ``llrint(d * 10000)`` (half to even, on the product), not by printf's ``%.4f``, which rounds
    the exact value and differs at the halves (0.00005 is "0.0000" here, "0.0001" by %.4f)."""
    if d == 0:
        return b"0.0000"
    v = round(d * 10000.0)
    sign = b"-" if v < 0 else b""
    v = abs(v)
    return b"%s%d.%04d" % (sign, v // 10000, v % 10000)


def human_double(x: float) -> bytes:
    """Redis's "human" long double text (``%.17Lf``, trailing zeros and dot removed), which
    GEOPOS answers with."""
    text = b"%.17f" % x
    if b"." in text:
        text = text.rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text


def parse_unit(raw: bytes) -> float | None:
    """Metres per unit (M, KM, FT, MI, any case), or None."""
    return _UNITS.get(raw.lower())


def position(lon_raw: bytes, lat_raw: bytes):
    """(longitude, latitude), or the error Redis gives for the pair."""
    lon, lat = parse_score(lon_raw), parse_score(lat_raw)
    if lon is None or lat is None:
        return NOT_FLOAT_ERR
    if not (_LONG_MIN <= lon <= _LONG_MAX and _LAT_MIN <= lat <= _LAT_MAX):
        return Error(ERR, "invalid longitude,latitude pair %f,%f" % (lon, lat))
    return lon, lat


class GeoCommands:
    COMMANDS = {"GEOADD": "_cmd_geoadd", "GEOPOS": "_cmd_geopos", "GEODIST": "_cmd_geodist",
                "GEOHASH": "_cmd_geohash"}

    def _cmd_geoadd(self, db, args):
        flags, i = set(), 1
        while i < len(args) and args[i].upper() in _GEOADD_FLAGS:
            flags.add(args[i].upper())
            i += 1
        rest = args[i:]
        if not rest or len(rest) % 3 or (b"NX" in flags and b"XX" in flags):
            return SYNTAX_ERR
        pairs = []
        for j in range(0, len(rest), 3):
            pos = position(rest[j], rest[j + 1])
            if pos.__class__ is Error:
                return pos
            pairs.append((float(geo_encode(*pos)), rest[j + 2]))
        return self._zadd(db, args[0], flags, pairs)

    def _scores(self, db, key, members):
        """The score of each member (None if absent), or an error for the key."""
        z, err = self._read_as(db, key, ZSET)
        if err is not None:
            return err
        if z is None:
            return [None] * len(members)
        scores = z[0]
        return [scores.get(m) for m in members]

    def _cmd_geopos(self, db, args):
        scores = self._scores(db, args[0], args[1:])
        if scores.__class__ is Error:
            return scores
        out = []
        for score in scores:
            if score is None:
                out.append(None)
            else:
                lon, lat = geo_decode(score)
                out.append([human_double(lon), human_double(lat)])
        return out

    def _cmd_geodist(self, db, args):
        to_metre = 1.0
        if len(args) == 4:
            to_metre = parse_unit(args[3])
            if to_metre is None:
                return UNIT_ERR
        elif len(args) > 4:
            return SYNTAX_ERR
        scores = self._scores(db, args[0], args[1:3])
        if scores.__class__ is Error:
            return scores
        if None in scores:
            return None
        lon1, lat1 = geo_decode(scores[0])
        lon2, lat2 = geo_decode(scores[1])
        return distance_text(geo_distance(lon1, lat1, lon2, lat2) / to_metre)

    def _cmd_geohash(self, db, args):
        scores = self._scores(db, args[0], args[1:])
        if scores.__class__ is Error:
            return scores
        out = []
        for score in scores:
            if score is None:
                out.append(None)
                continue
            # The index uses latitudes within +-85.05; a standard geohash string uses +-90, so
            # the position is decoded and encoded again over the standard ranges.
            lon, lat = geo_decode(score)
            bits = _encode(lon, lat, -90.0, 90.0)
            # 52 bits make ten characters; the eleventh is '0', as Redis gives it.
            out.append(bytes(_BASE32[(bits >> (52 - (k + 1) * 5)) & 0x1F] for k in range(10))
                       + b"0")
        return out
