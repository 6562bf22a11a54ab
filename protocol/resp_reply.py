"""RESP replies, sans-I/O: aofnode's reply values as RESP2 or RESP3 bytes, for the RESP front.

``encode_value`` writes a value (str status, bytes bulk, int, None, list, dict, float, bool);
``encode_command_reply`` adds the per-command shapes Redis has (INFO is a text, HGETALL a map in
RESP3); ``error_line`` maps aofnode's error codes to the prefixes Redis clients know. What turns
the log actor's msgpack replies into these lives with the RESP front (node/fronts), which alone
knows that format's use; a client's reply parser lives in bench/resp.py.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ERR

__all__ = ["error_line", "encode_value", "encode_command_reply", "info_text", "invalidate_message", "SHAPED",
           "reply_shape"]

_CRLF = b"\r\n"

# aofnode's own error codes that Redis lacks: they become ERR (see error_line). Every other
# code is kept, so a Lua script's own codes ({err = "MYERR ..."}) reach the client as in Redis.
_ERR_CODES = frozenset(("UNKNOWNCMD", "ARITY", "ARGTYPE", "PROTO", "TOOBIG"))


def error_line(code: str, message: str) -> bytes:
    """``-CODE message\\r\\n``. aofnode's own codes that Redis lacks (UNKNOWNCMD, ARITY, ARGTYPE,
    PROTO, TOOBIG) become ERR, whose messages already read as Redis's ("wrong number of
    arguments for 'get' command"). ABORTED is kept: it says what no Redis code says (the command
    may or may not have run). Line breaks in the message become spaces (Redis does the same)."""
    if code in _ERR_CODES:
        code = ERR
    text = f"{code} {message}" if message else code
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return b"-" + text.encode("utf-8", "replace") + _CRLF


_INVALIDATE3 = b">2\r\n$10\r\ninvalidate\r\n"
_INVALIDATE2 = b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n"


def invalidate_message(keys: list[bytes] | None, resp3: bool) -> bytes:
    """CLIENT TRACKING's invalidation of ``keys`` (None: every key): a RESP3 ``invalidate``
    push, or in RESP2 a ``message`` on ``__redis__:invalidate`` (for a subscribed redirect
    target). Made by the RESP front, and by the log actor for a push that must come before the
    reply it precedes (an eviction)."""
    head = _INVALIDATE3 if resp3 else _INVALIDATE2
    if keys is None:
        return head + (b"_\r\n" if resp3 else b"$-1\r\n")
    return head + b"*%d\r\n" % len(keys) + b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)


def encode_value(value: Any, resp3: bool) -> bytes:
    """One reply value as RESP. str is a status (``+``), bytes a bulk, None the null bulk (RESP2)
    or ``_`` (RESP3), list an array, dict a map (RESP3) or a flat array (RESP2), float a double
    (RESP3) or a bulk (RESP2), bool a boolean (RESP3) or 1/0 (RESP2)."""
    t = type(value)
    if t is bytes:
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if t is int:
        return b":%d\r\n" % value
    if t is str:
        if "\r" in value or "\n" in value:
            value = value.replace("\r", " ").replace("\n", " ")
        return b"+" + value.encode("utf-8", "replace") + _CRLF
    if value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if t is list or t is tuple:
        return b"*%d\r\n" % len(value) + b"".join([encode_value(v, resp3) for v in value])
    if t is dict:
        parts = []
        for k, v in value.items():
            parts.append(encode_value(k.encode() if type(k) is str else k, resp3))
            parts.append(encode_value(v, resp3))
        head = b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value))
        return head + b"".join(parts)
    if t is bool:
        return (b"#t\r\n" if value else b"#f\r\n") if resp3 else (b":1\r\n" if value else b":0\r\n")
    if t is float:
        text = repr(value).encode() if value == value and abs(value) != float("inf") else (
            b"nan" if value != value else (b"inf" if value > 0 else b"-inf"))
        return b",%s\r\n" % text if resp3 else b"$%d\r\n%s\r\n" % (len(text), text)
    raise TypeError(f"no RESP form for {t.__name__}")


def info_text(sections: dict[Any, Any]) -> bytes:
    """INFO's map of sections as Redis's text: ``# Section`` then ``field:value`` lines."""
    lines: list[str] = []
    for name, fields in sections.items():
        if lines:
            lines.append("")
        lines.append("# " + str(name).capitalize())
        if type(fields) is dict:
            lines.extend(f"{k}:{_info_value(v)}" for k, v in fields.items())
        else:
            lines.append(_info_value(fields))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


def _info_value(value: Any) -> str:
    if type(value) is dict:
        return ",".join(f"{k}={_info_value(v)}" for k, v in value.items())
    if type(value) is list:
        return ",".join(_info_value(v) for v in value)
    if type(value) is bytes:
        return value.decode("utf-8", "replace")
    return str(value)


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2]))


# Commands whose Redis reply shape is not the plain form of aofnode's value. ``reply_shape``
# names the shape from the command line (WITHSCORES, a count), once per command, off the hot path.
_DOUBLE = frozenset(("ZSCORE", "ZINCRBY", "ZADD"))  # a score: bulk in RESP2, double in RESP3
_WITHSCORES = frozenset(("ZRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZREVRANGE", "ZUNION",
                         "ZINTER", "ZDIFF", "ZRANDMEMBER"))
_SETS = frozenset(("SMEMBERS", "SINTER", "SUNION", "SDIFF"))
# Nothing to return is a null *array* (RESP2 ``*-1``) for these, not a null bulk.
_NULL_ARRAY = frozenset(("LMPOP", "BLPOP", "BRPOP", "BLMPOP", "BLMOVE", "BRPOPLPUSH", "EXEC"))
_MPOP = frozenset(("ZMPOP", "BZMPOP"))
_BZPOP = frozenset(("BZPOPMIN", "BZPOPMAX"))
# Geo searches: WITHCOORD's positions are doubles in RESP3, as GEOPOS's.
_GEOSEARCH = frozenset(("GEORADIUS", "GEORADIUS_RO", "GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO",
                        "GEOSEARCH"))
# One reply per channel or pattern, each a push in RESP3 (node/log/pubsub.py makes the triples).
_SUBSCRIPTIONS = frozenset(("SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE"))
SHAPED = frozenset(("INFO", "HGETALL", "ZMSCORE", "ZPOPMIN", "ZPOPMAX", "HRANDFIELD", "SPOP", "GEOPOS",
                    "LPOP", "RPOP")) | _SUBSCRIPTIONS | _DOUBLE | _WITHSCORES | _SETS | _NULL_ARRAY | _MPOP | _BZPOP \
    | _GEOSEARCH


def reply_shape(name: str, argv: Sequence[bytes]) -> str:
    """The shape token of command ``argv`` (named ``name``, one of ``SHAPED``) for
    ``encode_command_reply``: the name, or the name with the option that changes the shape."""
    if name in _WITHSCORES:
        return name + " WITHSCORES" if any(a.upper() == b"WITHSCORES" for a in argv[2:]) else name
    if name == "HRANDFIELD":
        return "HRANDFIELD WITHVALUES" if len(argv) == 4 else name
    if name in ("ZPOPMIN", "ZPOPMAX", "SPOP", "LPOP", "RPOP"):
        return name + " COUNT" if len(argv) > 2 else name
    return name


def _double(score: Any) -> bytes:
    """A score aofnode formats as text (``%.17g``, as Redis 7.0) as a RESP3 double."""
    if type(score) is bytes:
        return b",%s\r\n" % score
    return encode_value(score, True)


def _score_pairs(flat: list[Any]) -> bytes:
    return b"*%d\r\n" % (len(flat) // 2) + b"".join(
        [b"*2\r\n" + encode_value(m, True) + _double(sc) for m, sc in zip(flat[::2], flat[1::2])])


def _geo_items(items: list[Any]) -> bytes:
    """A geo search's RESP3 reply: an item with WITHCOORD ends with its [lon, lat] pair, the
    only list an item holds (its distance is a bulk and its hash an integer in either
    protocol)."""
    out = [b"*%d\r\n" % len(items)]
    for item in items:
        if type(item) is list and item and type(item[-1]) is list:
            lon, lat = item[-1]
            out.append(b"*%d\r\n" % len(item) + b"".join([encode_value(v, True) for v in item[:-1]])
                       + b"*2\r\n" + _double(lon) + _double(lat))
        else:
            out.append(encode_value(item, True))
    return b"".join(out)


def encode_command_reply(name: str, value: Any, resp3: bool) -> bytes:
    """The reply to a command of shape ``name`` (``reply_shape``) where Redis's shape differs
    from aofnode's value: INFO is a bulk text (a verbatim ``txt`` string in RESP3), HGETALL a map
    in RESP3, scores are doubles and WITHSCORES pairs in RESP3, set replies are sets in RESP3,
    and an empty pop of several elements is a null array (``*-1``) in RESP2. Checked byte for
    byte against redis-server 7.0 (tests/integration/test_resp_differential.py)."""
    if name in _SUBSCRIPTIONS and type(value) is list:
        head = b">3\r\n" if resp3 else b"*3\r\n"
        return b"".join(head + b"".join(encode_value(v, resp3) for v in triple) for triple in value)
    if name == "INFO" and type(value) is dict:
        text = info_text(value)
        if resp3:
            return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)
        return b"$%d\r\n%s\r\n" % (len(text), text)
    if name == "GEOPOS" and type(value) is list:
        # Each position is a pair of doubles (bulk strings in RESP2), a missing one a null array.
        null = encode_value(None, True) if resp3 else b"*-1\r\n"
        return b"*%d\r\n" % len(value) + b"".join(
            [null if p is None else b"*2\r\n" + (_double(p[0]) + _double(p[1]) if resp3 else
                                                 encode_value(p[0], False) + encode_value(p[1], False))
             for p in value])
    if value is None:
        if not resp3 and (name in _NULL_ARRAY or name in _MPOP or name in _BZPOP
                          or name in ("LPOP COUNT", "RPOP COUNT")):
            return b"*-1\r\n"
        return encode_value(None, resp3)
    if not resp3 or type(value) not in (list, bytes):
        return encode_value(value, resp3)
    if name == "HGETALL":
        return encode_value(_pairs(value), True)
    if name in _DOUBLE and type(value) is bytes:
        return _double(value)
    if type(value) is not list:
        return encode_value(value, True)
    if name in _GEOSEARCH:
        return _geo_items(value)
    if name == "ZMSCORE":
        return b"*%d\r\n" % len(value) + b"".join([_double(v) for v in value])
    if name.endswith(" WITHSCORES") or name in ("ZPOPMIN COUNT", "ZPOPMAX COUNT"):
        return _score_pairs(value)
    if name in ("ZPOPMIN", "ZPOPMAX") and len(value) == 2:
        return b"*2\r\n" + encode_value(value[0], True) + _double(value[1])
    if name in _BZPOP and len(value) == 3:
        return b"*3\r\n" + encode_value(value[0], True) + encode_value(value[1], True) + _double(value[2])
    if name in _MPOP and len(value) == 2 and type(value[1]) is list:
        pairs = value[1]
        return (b"*2\r\n" + encode_value(value[0], True) + b"*%d\r\n" % len(pairs)
                + b"".join([b"*2\r\n" + encode_value(p[0], True) + _double(p[1]) for p in pairs]))
    if name == "HRANDFIELD WITHVALUES":
        return b"*%d\r\n" % (len(value) // 2) + b"".join(
            [b"*2\r\n" + encode_value(f, True) + encode_value(v, True)
             for f, v in zip(value[::2], value[1::2])])
    if name in _SETS or name == "SPOP COUNT":
        return b"~%d\r\n" % len(value) + b"".join([encode_value(v, True) for v in value])
    return encode_value(value, True)
