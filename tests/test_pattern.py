"""node/store/pattern.py: Redis 7 glob semantics (a table, and a differential test against a
direct transcription of Redis's recursive ``stringmatchlen``), and the bounded worst case."""

from __future__ import annotations

import random
import time

import pytest

from aofnode.store.pattern import MAX_STAR_NESTING, compile_glob, glob_match


def redis_stringmatchlen(pattern: bytes, key: bytes) -> bool:
    """Redis 7 ``stringmatchlen(pattern, key, nocase=0)``, transcribed step by step.

    The oracle for the differential test: backtracking and recursive, as in Redis (so only for
    short inputs). Reading one byte past the pattern gives 0, as the sds terminator does in
    Redis; bytes compare as signed chars in ranges, as C ``char`` on x86 and ARM64 Linux.
    """
    skip_longer = [False]

    def pc(i: int) -> int:
        return pattern[i] if i < len(pattern) else 0

    def signed(b: int) -> int:
        return b - 256 if b >= 128 else b

    def impl(p: int, plen: int, s: int, slen: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        while plen and slen:
            c = pc(p)
            if c == ord("*"):
                while plen and pc(p + 1) == ord("*"):
                    p, plen = p + 1, plen - 1
                if plen == 1:
                    return True
                while slen:
                    if impl(p + 1, plen - 1, s, slen, nesting + 1):
                        return True
                    if skip_longer[0]:
                        return False
                    s, slen = s + 1, slen - 1
                skip_longer[0] = True
                return False
            if c == ord("?"):
                s, slen = s + 1, slen - 1
            elif c == ord("["):
                p, plen = p + 1, plen - 1
                negate = pc(p) == ord("^")
                if negate:
                    p, plen = p + 1, plen - 1
                match = False
                while True:
                    if pc(p) == ord("\\") and plen >= 2:
                        p, plen = p + 1, plen - 1
                        match |= pc(p) == key[s]
                    elif pc(p) == ord("]"):
                        break
                    elif plen == 0:
                        p, plen = p - 1, plen + 1
                        break
                    elif plen >= 3 and pc(p + 1) == ord("-"):
                        lo, hi = sorted((signed(pc(p)), signed(pc(p + 2))))
                        match |= lo <= signed(key[s]) <= hi
                        p, plen = p + 2, plen - 2
                    else:
                        match |= pc(p) == key[s]
                    p, plen = p + 1, plen - 1
                if negate:
                    match = not match
                if not match:
                    return False
                s, slen = s + 1, slen - 1
            else:
                if c == ord("\\") and plen >= 2:
                    p, plen = p + 1, plen - 1
                if pc(p) != key[s]:
                    return False
                s, slen = s + 1, slen - 1
            p, plen = p + 1, plen - 1
            if slen == 0:
                while pc(p) == ord("*"):
                    p, plen = p + 1, plen - 1
                break
        return plen == 0 and slen == 0

    return impl(0, len(pattern), 0, len(key), 0)


def keys_command_matches(pattern: bytes, key: bytes) -> bool:
    """What KEYS and SCAN MATCH return in Redis: ``*`` alone skips the matcher (allkeys)."""
    return pattern == b"*" or redis_stringmatchlen(pattern, key)


@pytest.mark.parametrize("pattern, key, matches", [
    (b"*", b"", True),  # KEYS * / SCAN MATCH * return every key, the empty one too
    (b"*", b"anything", True),
    (b"**", b"", False),  # Redis 7: the matcher's loop needs a byte of key; only "*" is special
    (b"**", b"x", True),
    (b"*?", b"", False),
    (b"", b"", True),
    (b"", b"a", False),
    (b"h?llo", b"hello", True),
    (b"h?llo", b"hllo", False),
    (b"h*llo", b"hllo", True),
    (b"h*llo", b"heeeello", True),
    (b"h[ae]llo", b"hallo", True),
    (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True),
    (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True),
    (b"h[b-a]llo", b"hbllo", True),  # reversed range
    (b"h[a-b]llo", b"hcllo", False),
    (b"\\*", b"*", True),
    (b"\\*", b"a", False),
    (b"a\\?", b"a?", True),
    (b"a\\?", b"ab", False),
    (b"[\\]]", b"]", True),
    (b"[\\-]", b"-", True),
    (b"[a-]", b"]", True),  # Redis quirk: '-' then any byte is a range, here ']'..'a'
    (b"[abc", b"b", True),  # unterminated class: the rest of the pattern
    (b"[abc", b"d", False),
    (b"[", b"[", False),
    (b"[^", b"x", True),  # Redis: an empty negated class, i.e. any one byte
    (b"[]", b"]", False),  # an empty class: matches nothing
    (b"[]a]", b"a]", False),
    (b"a\\", b"a\\", True),  # trailing backslash is literal
    (b"[\\", b"\\", True),
    (b".*", b"abc", False),  # regex metacharacters are literal
    (b".*", b".xyz", True),
    (b"a+", b"a+", True),
    (b"a+", b"aa", False),
    (b"(x)", b"(x)", True),
    (b"*\n*", b"a\nb", True),
    (b"?", b"\n", True),
    (b"\xff*", b"\xff\x00", True),
    # Redis compares range ends as signed chars: [\xff-b] is -1..98, i.e. \x00..b and \xff.
    (b"a[\xff-b]", b"a\x00", True),
    (b"a[\xff-b]", b"a\xff", True),
    (b"a[\xff-b]", b"ax", False),
    (b"[\x80-\xff]", b"\x90", True),  # both ends negative: -128..-1
    (b"[\x80-\xff]", b"\x00", False),
    (b"[a-\x80]", b"\x00", True),  # -128..97
    (b"[a-\x80]", b"b", False),
    (b"[^\xff-b]", b"x", True),
    (b"user:*:name", b"user:42:name", True),
    (b"user:*:name", b"user:42:email", False),
    (b"user:*", b"user:", True),
    (b"*:42", b":42", True),
    (b"a*a", b"a", False),  # the two a's cannot overlap
    (b"ab*ba", b"aba", False),
    (b"ab*ba", b"abba", True),
    (b"*ab*ab*", b"abab", True),
    (b"*ab*ab*", b"aba", False),
    (b"*a?c*x", b"zabcqx", True),
    (b"*[0-9]*[0-9]", b"a1b2", True),
    (b"*[0-9]*[0-9]", b"a12b", False),
    (b"**a", b"bba", True),
])
def test_glob(pattern, key, matches) -> None:
    assert glob_match(pattern, key) is matches
    assert keys_command_matches(pattern, key) is matches  # the table itself agrees with Redis


_PATTERN_BYTES = b"ab*?[]^-\\\x00\xff\x80"
_KEY_BYTES = b"ab-]\\*\x00\xff\x80"


def _key_like(rng: random.Random, pattern: bytes) -> bytes:
    """A key made from ``pattern`` by dropping bytes and inserting random runs: about one in
    five such keys matches, where a random key almost never does."""
    out = bytearray()
    for b in pattern:
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.3:
            out += bytes(rng.choice(_KEY_BYTES) for _ in range(rng.randrange(3)))
        else:
            out.append(b)
    return bytes(out)


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_redis_on_random_patterns(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(3000):
        pattern = bytes(rng.choice(_PATTERN_BYTES) for _ in range(rng.randrange(9)))
        if rng.random() < 0.5:
            key = _key_like(rng, pattern)
        else:
            key = bytes(rng.choice(_KEY_BYTES) for _ in range(rng.randrange(7)))
        assert glob_match(pattern, key) is keys_command_matches(pattern, key), (pattern, key)


def test_agrees_with_redis_on_star_heavy_patterns() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        pattern = bytes(rng.choice(b"ab*?*[*") for _ in range(rng.randrange(12)))
        key = bytes(rng.choice(b"ab") for _ in range(rng.randrange(10)))
        assert glob_match(pattern, key) is keys_command_matches(pattern, key), (pattern, key)


def test_star_nesting_limit_as_redis() -> None:
    # Redis 7 (CVE-2022-36021) stops at nesting > 1000: each star run before the last token is
    # one level, so 1001 of them match nothing, even a key that fits the pattern.
    key = b"a" * (MAX_STAR_NESTING + 1)
    assert glob_match(b"*a" * MAX_STAR_NESTING, key) is True
    assert glob_match(b"*a" * (MAX_STAR_NESTING + 1), key) is False
    assert glob_match(b"*a" * MAX_STAR_NESTING + b"*", key) is True  # a final star: no level


def _best_time(match, key: bytes, repeat: int = 7, number: int = 200) -> float:
    """Best of ``repeat`` runs of ``number`` calls: the least noisy estimate of one call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            match(key)
        best = min(best, time.perf_counter() - t0)
    return best / number


# Finding 5 of issue 9: this pattern against one 400-byte key held the old (backtracking)
# matcher for 60 s of CPU. The new one is linear in the key for a given pattern; the other
# patterns defeat the shortcuts (no tail to reject early, class segments found by regex).
@pytest.mark.parametrize("pattern", [
    b"*a*a*a*a*b", b"*a*a*a*a*b*", b"*a?a*[ab]a*a?a*b*", b"a*a*a*a*a*a*a*a*a*a*a*a*a*ab",
    b"*" + b"a*" * 100 + b"b",
])
def test_adversarial_pattern_is_bounded(pattern: bytes) -> None:
    key = b"a" * 400
    hostile = compile_glob(pattern)
    assert hostile(key) is False
    trivial = _best_time(compile_glob(b"a*"), key)
    # Generous: a linear scan of 400 bytes by a few C calls costs ~10-100x a startswith; the
    # old matcher was ~10^8 x. A ratio, not an absolute time, so a slow machine passes too.
    assert _best_time(hostile, key, number=50) < 500 * max(trivial, 1e-7)


def test_cost_grows_linearly_with_the_key() -> None:
    match = compile_glob(b"*a?a*[ab]a*a?a*b*")
    short, long = b"a" * 400, b"a" * 4000
    # 10x the key: ~10x the time if linear (100x if quadratic); 40x leaves room for noise.
    assert _best_time(match, long, number=20) < 40 * _best_time(match, short, number=20)


def test_compile_cost_is_linear_in_the_pattern() -> None:
    # A class is compiled item by item, never as a 256-byte set: 20k classes compile quickly.
    pattern = b"[\x00-\xff]" * 20_000
    t0 = time.perf_counter()
    compile_glob(pattern)
    small = time.perf_counter() - t0
    t0 = time.perf_counter()
    compile_glob(b"[a-c]" * 200)
    tiny = time.perf_counter() - t0
    assert small < 400 * max(tiny, 1e-5)  # 100x the classes; generous for noise
