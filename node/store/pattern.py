"""Redis glob patterns on bytes (KEYS, SCAN MATCH), with a worst case of O(pattern x key).

The semantics are those of Redis 7 ``stringmatchlen`` (util.c), case-sensitive, its quirks kept
on purpose so that a pattern means what it means in Redis (an unterminated class, signed range
ends, the empty key, no match past 1000 nested stars): docs/design.md, "Glob patterns".

The pattern is cut at its star runs into fixed-width segments. Taking each middle segment's
leftmost occurrence is optimal, so one forward pass decides; that pass is one regular
expression that never gives back a byte: one C call per key, O(pattern x key) at worst. Literal
shapes (``lit*``, ``*lit``, ``*lit*``) need no regex. A compiled matcher's result is truthy when
the key matches; ``glob_match`` returns a ``bool``. Compiling costs ~4 us per pattern byte, and
the last 512 patterns are cached because clients repeat the same MATCH on every SCAN call.
"""

from __future__ import annotations

import operator
import re
from functools import lru_cache
from typing import Callable

__all__ = ["MAX_STAR_NESTING", "compile_glob", "glob_match"]

# Redis's stringmatchlen_impl returns "no match" past this nesting depth (one level per star
# run): kept for exact agreement with Redis, not because our matcher recurses.
MAX_STAR_NESTING = 1000

_STAR, _QMARK, _LBRACKET, _RBRACKET = ord("*"), ord("?"), ord("["), ord("]")
_CARET, _DASH, _BACKSLASH = ord("^"), ord("-"), ord("\\")
_ANY_BYTE = b"."  # every regex here is compiled with re.DOTALL
_NEVER = rb"(?!)"

# A token is STAR (a run of '*') or one byte: (literal byte or None, class items, negated).
# A class is ``[items]`` / ``[^items]`` with every byte hex-escaped; no items and negated is
# ``?`` (any byte), no items and not negated can match nothing (Redis's ``[]``).
STAR = None
ByteToken = tuple[int | None, bytes, bool]
Token = ByteToken | None
_QMARK_TOKEN: ByteToken = (None, b"", True)
Matcher = Callable[[bytes], object]  # truthy if the key matches


def _always(_key: bytes) -> bool:
    return True


def _never(_key: bytes) -> bool:
    return False


def _hex(b: int) -> bytes:
    return b"\\x%02x" % b


def _signed(b: int) -> int:
    """The value of byte ``b`` as a signed C char."""
    return b - 256 if b >= 128 else b


def _range_items(a: int, b: int) -> list[bytes]:
    """Regex class items for the Redis range ``a-b``, compared as signed chars."""
    lo, hi = sorted((_signed(a), _signed(b)))
    if lo >= 0 or hi < 0:  # one side of zero: one unsigned interval
        return [_hex(lo & 0xFF) + b"-" + _hex(hi & 0xFF)]
    return [_hex(0) + b"-" + _hex(hi), _hex(lo & 0xFF) + b"-" + _hex(0xFF)]


def _class_token(pat: bytes, i: int) -> tuple[Token, int]:
    """The token of the class whose ``[`` is at ``i``, and the index after it."""
    n = len(pat)
    i += 1
    negate = i < n and pat[i] == _CARET
    if negate:
        i += 1
    items: list[bytes] = []
    while True:
        if i < n and pat[i] == _BACKSLASH and n - i >= 2:
            i += 1
            items.append(_hex(pat[i]))
        elif i < n and pat[i] == _RBRACKET:
            break
        elif i >= n:
            i -= 1  # as Redis: the class swallowed the rest of the pattern
            break
        elif n - i >= 3 and pat[i + 1] == _DASH:
            items.extend(_range_items(pat[i], pat[i + 2]))
            i += 2
        else:
            items.append(_hex(pat[i]))
        i += 1
    return (None, b"".join(items), negate), i + 1


def _tokenize(pat: bytes) -> list[Token]:
    """The tokens of a Redis glob pattern (see the module docstring)."""
    tokens: list[Token] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == _STAR:
            if not tokens or tokens[-1] is not STAR:
                tokens.append(STAR)
            i += 1
        elif c == _QMARK:
            tokens.append(_QMARK_TOKEN)
            i += 1
        elif c == _LBRACKET:
            token, i = _class_token(pat, i)
            tokens.append(token)
        else:
            if c == _BACKSLASH and n - i >= 2:
                i += 1
            tokens.append((pat[i], _hex(pat[i]), False))
            i += 1
    return tokens


def _byte(token: ByteToken, negate: bool = False) -> bytes:
    """A regex for one byte that matches ``token`` (or, with ``negate``, does not)."""
    literal, items, negated = token
    negated ^= negate
    if literal is not None and not negated:
        return items  # one hex escape
    if not items:
        return _ANY_BYTE if negated else _NEVER
    return b"[" + (b"^" if negated else b"") + items + b"]"


class _Segment:
    """A star-free run of tokens: fixed width, a literal (``bytes``) or not."""

    __slots__ = ("size", "literal", "source", "_tokens")

    def __init__(self, tokens: list[ByteToken]) -> None:
        self.size = len(tokens)
        literal = [c for c, _, _ in tokens if c is not None]
        self.literal = bytes(literal) if len(literal) == len(tokens) else None
        self.source = b"".join(_byte(t) for t in tokens)
        self._tokens = tokens

    def find(self) -> bytes:
        """A regex that consumes bytes up to and including the leftmost occurrence of this
        segment, and cannot be made to give any back (the module docstring says why)."""
        tokens = self._tokens
        skip = 0
        while skip < len(tokens) and tokens[skip] == _QMARK_TOKEN:
            skip += 1
        # Leading "?"s: the leftmost "??R" from here is the leftmost R from 2 bytes on, and R
        # alone may be one token (no choice point) where "?R" needed the lazy loop (~2x).
        prefix = b".{%d}" % skip if skip else b""
        rest = tokens[skip:]
        if not rest:
            return prefix
        if len(rest) > 1:
            return prefix + b"(?>.*?" + b"".join(_byte(t) for t in rest) + b")"
        return prefix + _byte(rest[0], negate=True) + b"*+" + _byte(rest[0])


def _split(tokens: list[Token]) -> list[_Segment]:
    """The segments between star runs: one more than the number of star runs."""
    segments: list[_Segment] = []
    current: list[ByteToken] = []
    for token in tokens:
        if token is None:  # STAR
            segments.append(_Segment(current))
            current = []
        else:
            current.append(token)
    segments.append(_Segment(current))
    return segments


def _literal_shape(head: _Segment, middles: list[_Segment], tail: _Segment) -> Matcher | None:
    """A predicate for ``lit*``, ``*lit`` and ``*lit*``; None for any other shape. Lambdas:
    ``in`` and ``startswith`` through one are ~1.3-1.5x faster per key than through
    ``operator.methodcaller``, which looks the method up on every call."""
    infix, prefix, suffix = middles[0].literal if middles else None, head.literal, tail.literal
    if infix and not (head.size or tail.size) and len(middles) == 1:
        return lambda key: infix in key
    if middles or (head.size and tail.size):
        return None
    if prefix is not None and not tail.size:
        return lambda key: key.startswith(prefix)
    if suffix is not None and not head.size:
        return lambda key: key.endswith(suffix)
    return None


def _stars_regex(head: _Segment, middles: list[_Segment], tail: _Segment) -> Matcher:
    """``head * m1 * ... * mk * tail`` as one regex (see the module docstring)."""
    parts = [head.source]
    if tail.size:
        parts.append(b"(?=.*+(?<=" + tail.source + b"))")
    parts.extend(m.find() for m in middles)
    if tail.size:
        parts.append(b"(?=.{%d})" % tail.size)
    return re.compile(b"".join(parts), re.DOTALL).match


@lru_cache(maxsize=512)
def compile_glob(pattern: bytes) -> Matcher:
    """A predicate ``key -> truthy`` for a Redis glob ``pattern`` (cached)."""
    if pattern == b"*":
        return _always
    tokens = _tokenize(pattern)
    if not tokens:
        return operator.not_  # the empty pattern matches the empty key only
    stars = tokens.count(STAR)
    if stars - (tokens[-1] is STAR) > MAX_STAR_NESTING:
        return _never
    if stars == len(tokens):
        return bool  # "**": every key but the empty one
    segments = _split(tokens)
    if stars == 0:
        (only,) = segments
        if only.literal is not None:
            return only.literal.__eq__
        return re.compile(only.source, re.DOTALL).fullmatch  # fixed width: O(pattern)
    head, middles, tail = segments[0], segments[1:-1], segments[-1]
    return _literal_shape(head, middles, tail) or _stars_regex(head, middles, tail)


def glob_match(pattern: bytes, key: bytes) -> bool:
    """True if ``key`` matches the Redis glob ``pattern``."""
    return bool(compile_glob(pattern)(key))
