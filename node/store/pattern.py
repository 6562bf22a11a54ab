"""Redis glob patterns on bytes (KEYS, SCAN MATCH), with a worst case of O(pattern x key).

Design
------
The semantics are those of Redis 7 ``stringmatchlen`` (util.c), case-sensitive:

* ``*`` any run of bytes, ``?`` exactly one byte;
* ``[abc]`` one of, ``[^abc]`` none of, ``[a-z]`` a range (ends may be given in either order),
  ``\\x`` inside a class is the literal ``x``;
* ``\\x`` outside a class is the literal ``x``; a trailing lone backslash is a literal backslash;
* the quirks are kept on purpose so that a pattern means what it means in Redis: an unterminated
  class ``[abc`` is the class of the rest of the pattern, ``[`` alone matches nothing, ``[a-]``
  is the range from ``]`` to ``a`` (Redis reads ``-`` followed by any byte as a range);
* range ends compare as C ``char``, which is *signed* on the platforms Redis runs on: a byte
  >= 0x80 is below ``\\x00``, so ``[\\xff-b]`` is -1..98 (``\\x00``..``b`` and ``\\xff``), not
  98..255;
* Redis's loop runs only while the key has bytes left, so the empty key matches only the empty
  pattern (``**`` does not match it). ``*`` alone is the exception: KEYS and SCAN never call
  the matcher for it and return every key, the empty one included; ``compile_glob(b"*")`` does
  the same;
* Redis gives up past 1000 nested ``*`` (CVE-2022-36021): a pattern with more than
  ``MAX_STAR_NESTING`` star runs before its last token matches no key; kept so that the
  differential tests agree with redis-server.

How it matches without backtracking: the pattern is cut at its star runs into fixed-width
segments ``S0 * S1 * ... * Sn`` (S0 or Sn may be empty). S0 must match at the start, Sn at the
end, and S1..Sn-1 in order, without overlap, in between. Taking the leftmost occurrence of each
middle segment is optimal (any match can slide its segments left onto the leftmost ones and
leave at least as much room for the rest), so one forward pass decides: each segment is found
with ``bytes.find`` (literal) or the ``search`` of a regex that has no quantifier (a class
segment: O(segment) per start position). Total O(pattern x key), in C. With no star the
pattern is one fixed-width segment (``==`` or a regex ``fullmatch``). With one star run, S0 at
the start and S1 at the end decide (``startswith``/``endswith``, or, with a class, one regex
``S0.*S1`` whose only choice point is the length of ``.*``: O(key x |S1|)). ``*`` alone is
always true and ``*infix*`` is ``in``. Measured over 100k keys (issue 9), these shapes cost
0.5-1.2x the old regex matcher (docs/commands.md has the table).

Compiling is O(pattern) (a class becomes a regex class item by item, never a 256-byte set);
the last 512 patterns are cached because clients repeat the same MATCH on every SCAN call.
"""

from __future__ import annotations

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

# A token is either STAR (a run of '*') or (literal byte or None, regex for exactly one byte).
STAR = None
Token = tuple[int | None, bytes] | None


def _always(_key: bytes) -> bool:
    return True


def _never(_key: bytes) -> bool:
    return False


def _is_empty(key: bytes) -> bool:
    return not key


def _non_empty(key: bytes) -> bool:
    return bool(key)


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
    if not items:
        return (None, _ANY_BYTE if negate else _NEVER), i + 1
    return (None, b"[" + (b"^" if negate else b"") + b"".join(items) + b"]"), i + 1


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
            tokens.append((None, _ANY_BYTE))
            i += 1
        elif c == _LBRACKET:
            token, i = _class_token(pat, i)
            tokens.append(token)
        else:
            if c == _BACKSLASH and n - i >= 2:
                i += 1
            tokens.append((pat[i], _hex(pat[i])))
            i += 1
    return tokens


class _Segment:
    """A star-free run of tokens: fixed width; a literal (``bytes``) or a regex without any
    quantifier, so matching it at one place costs O(size) and finding it O(size x key)."""

    __slots__ = ("size", "literal", "regex")

    def __init__(self, tokens: list[Token]) -> None:
        self.size = len(tokens)
        if all(t[0] is not None for t in tokens):
            self.literal: bytes | None = bytes(t[0] for t in tokens)
            self.regex = None
        else:
            self.literal = None
            self.regex = re.compile(b"".join(t[1] for t in tokens), re.DOTALL)

    def at_start(self) -> Callable[[bytes], bool]:
        """A predicate: the key starts with a match of this segment."""
        if self.literal is not None:
            return lambda key, lit=self.literal: key.startswith(lit)
        match = self.regex.match
        return lambda key: match(key) is not None

    def at_end(self) -> Callable[[bytes], bool]:
        """A predicate: the key ends with a match of this segment (fixed width)."""
        if self.literal is not None:
            return lambda key, lit=self.literal: key.endswith(lit)
        match, size = self.regex.match, self.size
        return lambda key: len(key) >= size and match(key, len(key) - size) is not None


def _split(tokens: list[Token]) -> list[_Segment]:
    """The segments between star runs: one more than the number of star runs."""
    segments, current = [], []
    for token in tokens:
        if token is STAR:
            segments.append(_Segment(current))
            current = []
        else:
            current.append(token)
    segments.append(_Segment(current))
    return segments


def _one_star(head: _Segment, tail: _Segment) -> Callable[[bytes], bool]:
    """``head * tail``, one of them not empty: head at the start, tail at the end, no overlap."""
    if not tail.size:
        return head.at_start()
    if not head.size:
        return tail.at_end()
    if head.literal is not None and tail.literal is not None:
        p, s, size = head.literal, tail.literal, head.size + tail.size
        return lambda key: len(key) >= size and key.startswith(p) and key.endswith(s)
    # One C call: the only choice point of ``.*`` is its length, so O(key x tail) at worst.
    source = head.regex.pattern if head.regex is not None else re.escape(head.literal)
    source += b".*" + (tail.regex.pattern if tail.regex is not None else re.escape(tail.literal))
    fullmatch = re.compile(source, re.DOTALL).fullmatch
    return lambda key: fullmatch(key) is not None


def _many_stars(head: _Segment, middles: list[_Segment],
                tail: _Segment) -> Callable[[bytes], bool]:
    """``head * m1 * ... * mk * tail`` with k >= 1 middle segments (none empty)."""
    if not head.size and not tail.size and len(middles) == 1 and middles[0].literal:
        return lambda key, infix=middles[0].literal: infix in key
    min_size = head.size + tail.size + sum(m.size for m in middles)
    starts = head.at_start() if head.size else _always
    ends = tail.at_end() if tail.size else _always
    head_size, tail_size = head.size, tail.size
    finders = [(m.literal, None if m.regex is None else m.regex.search, m.size) for m in middles]

    def match(key: bytes) -> bool:
        n = len(key)
        if n < min_size or not ends(key) or not starts(key):
            return False
        start, end = head_size, n - tail_size
        for literal, search, size in finders:  # leftmost occurrence of each, in order
            if literal is not None:
                pos = key.find(literal, start, end)
                if pos < 0:
                    return False
            else:
                found = search(key, start, end)
                if found is None:
                    return False
                pos = found.start()
            start = pos + size
        return True

    return match


@lru_cache(maxsize=512)
def compile_glob(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate ``key -> bool`` for a Redis glob ``pattern`` (cached)."""
    if pattern == b"*":
        return _always
    tokens = _tokenize(pattern)
    if not tokens:
        return _is_empty
    stars = tokens.count(STAR)
    if stars - (tokens[-1] is STAR) > MAX_STAR_NESTING:
        return _never
    segments = _split(tokens)
    if stars == 0:
        (only,) = segments
        if only.literal is not None:
            return only.literal.__eq__
        fullmatch = only.regex.fullmatch
        return lambda key: fullmatch(key) is not None  # fixed width: O(pattern)
    if len(tokens) == 1:
        return _non_empty  # "**": every key but the empty one
    if stars == 1:
        return _one_star(segments[0], segments[1])
    return _many_stars(segments[0], segments[1:-1], segments[-1])


def glob_match(pattern: bytes, key: bytes) -> bool:
    """True if ``key`` matches the Redis glob ``pattern``."""
    return compile_glob(pattern)(key)
