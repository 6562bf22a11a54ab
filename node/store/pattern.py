"""Redis glob patterns on bytes (KEYS, SCAN MATCH), compiled to a regex and cached.

Design
------
The semantics are those of Redis ``stringmatchlen`` (util.c), case-sensitive:

* ``*`` any run of bytes (also empty), ``?`` exactly one byte;
* ``[abc]`` one of, ``[^abc]`` none of, ``[a-z]`` a range (ends may be given in either order),
  ``\\x`` inside a class is the literal ``x``;
* ``\\x`` outside a class is the literal ``x``; a trailing lone backslash is a literal backslash;
* the quirks are kept on purpose so that a pattern means what it means in Redis: an unterminated
  class ``[abc`` is the class of the rest of the pattern, ``[`` alone matches nothing, ``[a-]``
  is the range from ``]`` to ``a`` (Redis reads ``-`` followed by any byte as a range).

Each class is expanded to its exact set of bytes and emitted as a regex class, so the regex
cannot disagree with the rules above. Compiling costs ~10-50 us; the last 512 patterns are
cached because clients repeat the same MATCH pattern on every SCAN call.

Not promised: Python's backtracking engine is polynomial in the number of ``*`` for adversarial
patterns such as ``a*a*a*a*b`` against long runs of ``a`` (Redis has the same worst case).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable

__all__ = ["compile_glob", "glob_match"]

_STAR, _QMARK, _LBRACKET, _RBRACKET = ord("*"), ord("?"), ord("["), ord("]")
_CARET, _DASH, _BACKSLASH = ord("^"), ord("-"), ord("\\")
_ALL_BYTES = frozenset(range(256))


def _always(_key: bytes) -> bool:
    return True


def _byte_class(members: set[int], negate: bool) -> bytes:
    """Regex for exactly one byte of ``members`` (or of its complement)."""
    chosen = sorted(_ALL_BYTES - members if negate else members)
    if not chosen:
        return b"(?!)"  # an empty class: can never match
    parts = []
    start = prev = chosen[0]
    for b in chosen[1:] + [-1]:
        if b == prev + 1:
            prev = b
            continue
        lo = re.escape(bytes((start,)))
        parts.append(lo if start == prev else lo + b"-" + re.escape(bytes((prev,))))
        start = prev = b
    return b"[" + b"".join(parts) + b"]"


def _translate(pat: bytes) -> bytes:
    """The regex source for a Redis glob pattern (see the module docstring)."""
    out: list[bytes] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        if c == _STAR:
            while i + 1 < n and pat[i + 1] == _STAR:
                i += 1
            out.append(b".*")
        elif c == _QMARK:
            out.append(b".")
        elif c == _LBRACKET:
            i += 1
            negate = i < n and pat[i] == _CARET
            if negate:
                i += 1
            members: set[int] = set()
            while True:
                if i < n and pat[i] == _BACKSLASH and n - i >= 2:
                    i += 1
                    members.add(pat[i])
                elif i < n and pat[i] == _RBRACKET:
                    break
                elif i >= n:
                    i -= 1  # as Redis: the class swallowed the rest of the pattern
                    break
                elif n - i >= 3 and pat[i + 1] == _DASH:
                    lo, hi = sorted((pat[i], pat[i + 2]))
                    members.update(range(lo, hi + 1))
                    i += 2
                else:
                    members.add(pat[i])
                i += 1
            out.append(_byte_class(members, negate))
        else:
            if c == _BACKSLASH and n - i >= 2:
                i += 1
            out.append(re.escape(pat[i : i + 1]))
        i += 1
    return b"".join(out)


@lru_cache(maxsize=512)
def compile_glob(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate ``key -> bool`` for a Redis glob ``pattern`` (cached)."""
    if pattern == b"*":
        return _always
    regex = re.compile(_translate(pattern), re.DOTALL)
    fullmatch = regex.fullmatch
    return lambda key: fullmatch(key) is not None


def glob_match(pattern: bytes, key: bytes) -> bool:
    """True if ``key`` matches the Redis glob ``pattern``."""
    return compile_glob(pattern)(key)
