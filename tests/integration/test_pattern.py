"""node/store/pattern.py: Redis 7 glob semantics (a table, and differential tests against a
direct transcription of Redis's recursive ``stringmatchlen`` and, when it is installed, against
redis-server's KEYS), and the bounded worst case."""

from __future__ import annotations

import random
import re
import shutil
import sys
import time

import pytest

from aofnode.bench.resp import RespClient
from aofnode.store.pattern import MAX_STAR_NESTING, compile_glob, glob_match
from tests.nodeproc import RedisServer


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


# The shapes that cost most against redis-server (bench/glob_bomb.py has the measurements):
# many star runs up to the nesting limit, star runs over class segments, segments that start
# with a class or with "?", a long class run found nowhere, a class tail behind one star.
BOMBS = [
    b"*a" * 999 + b"*b*",  # 1000 star runs before the last token: the limit itself
    b"*a" * 1000 + b"*b*",  # one more: matches nothing
    b"*a" * 999 + b"*b",
    b"*a?[a-c]" * 60 + b"*b*",
    b"*[ab]a" * 100 + b"*c*",
    b"*" + b"[ab]" * 30 + b"c*",
    b"*" + b"a" * 30 + b"c*",
    b"key:*" + b"[ab]" * 30 + b"c",
    b"key:*" + b"[ab]" * 30 + b"a",
    b"?" * 100 + b"*b",
    b"*?c*", b"*??*a", b"*?[ab]c*", b"*[ab]c*", b"*[ab][ab]c*d", b"*[^a]*b", b"*[]*a",
    b"*[^]*a", b"k*?*?*a", b"*a*a*a*a*b", b"*a*a*a*a*b*", b"ab*[b-a]?*a?", b"*\\**",
]


def _bench_key(size: int, last: bytes) -> bytes:
    """A key shaped as bench/glob_bomb.py loads them: ``key:NNNNNN:``, then ``a`` up to size."""
    return (b"key:000001:" + b"a" * size)[:max(0, size - 1)] + last


BOMB_KEYS = [b""] + [_bench_key(size, last) for size in (1, 2, 12, 40, 200, 1024)
                     for last in (b"a", b"b", b"c", b"d")] + [
    b"a" * 500 + b"c" + b"a" * 30, b"ab" * 300 + b"c", b"a" * 1200 + b"b", b"*" * 40 + b"ba",
]


@pytest.fixture
def deep_recursion():
    """The oracle recurses once per star run: 1000 levels, past Python's default limit."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 4 * MAX_STAR_NESTING + 1000))
    yield
    sys.setrecursionlimit(old)


@pytest.mark.parametrize("pattern", BOMBS)
def test_bombs_agree_with_redis(pattern: bytes, deep_recursion) -> None:
    rng = random.Random(pattern)
    keys = BOMB_KEYS + [_key_like(rng, pattern[:200]) for _ in range(20)]
    for key in keys:
        assert glob_match(pattern, key) is keys_command_matches(pattern, key), (pattern, key)


_SEGMENT_TOKENS = [b"a", b"b", b"c", b"?", b"[ab]", b"[^a]", b"[a-c]", b"[b-a]", b"\\*", b"[]",
                   b"[^]", b"[\\]]"]


def _structured_pattern(rng: random.Random) -> bytes:
    """Segments of 0-3 tokens between star runs of 1-2 stars: the shapes the compiler
    distinguishes (head, tail, one-token and longer middles, "?" first, empty classes)."""
    segments = [b"".join(rng.choice(_SEGMENT_TOKENS) for _ in range(rng.randrange(4)))
                for _ in range(rng.randrange(1, 7))]
    return b"".join(seg + b"*" * rng.randrange(1, 3) for seg in segments[:-1]) + segments[-1]


@pytest.mark.parametrize("seed", range(4))
def test_agrees_with_redis_on_structured_patterns(seed: int) -> None:
    rng = random.Random(100 + seed)
    for _ in range(1500):
        pattern = _structured_pattern(rng)
        if rng.random() < 0.6:
            key = _key_like(rng, pattern)
        else:
            key = bytes(rng.choice(b"abc*]") for _ in range(rng.randrange(12)))
        assert glob_match(pattern, key) is keys_command_matches(pattern, key), (pattern, key)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_keys_agrees_with_redis_server(tmp_path) -> None:
    rng = random.Random(21)
    keys = set(BOMB_KEYS)
    keys.update(bytes(rng.choice(_KEY_BYTES) for _ in range(rng.randrange(8))) for _ in range(300))
    keys.update(bytes(rng.choice(b"abc*]") for _ in range(rng.randrange(16))) for _ in range(300))
    patterns = BOMBS + [b"*", b"", b"**"]
    patterns += [bytes(rng.choice(_PATTERN_BYTES) for _ in range(rng.randrange(9)))
                 for _ in range(300)]
    patterns += [_structured_pattern(rng) for _ in range(300)]
    server = RedisServer(tmp_path / "redis")
    try:
        with RespClient("127.0.0.1", server.port, timeout=30) as client:
            assert client.pipeline([("SET", k, b"v") for k in keys]) == ["OK"] * len(keys)
            replies = client.pipeline([("KEYS", p) for p in patterns])
    finally:
        server.stop()
    for pattern, got in zip(patterns, replies):
        want = sorted(k for k in keys if (pattern == b"*" or glob_match(pattern, k)))
        assert sorted(got) == want, pattern


def _best_time(match, key: bytes, repeat: int = 7, number: int = 200) -> float:
    """Best of ``repeat`` runs of ``number`` calls: the least noisy estimate of one call."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            match(key)
        best = min(best, time.perf_counter() - t0)
    return best / number


# The first pattern against one 400-byte key held a backtracking matcher for 60 s of CPU; this
# one is linear in the key for a given pattern. The others defeat the shortcuts (no tail to
# reject early, class segments, star runs up to the nesting limit).
@pytest.mark.parametrize("pattern", [
    b"*a*a*a*a*b", b"*a*a*a*a*b*", b"*a?a*[ab]a*a?a*b*", b"a*a*a*a*a*a*a*a*a*a*a*a*a*ab",
    b"*" + b"a*" * 100 + b"b", b"*a" * 999 + b"*b*", b"*[ab]a" * 500 + b"*c*", b"*?c*",
])
def test_adversarial_pattern_is_bounded(pattern: bytes) -> None:
    key = b"a" * 400
    hostile = compile_glob(pattern)
    assert not hostile(key)
    trivial = _best_time(compile_glob(b"a*"), key)
    # Generous: a linear scan of 400 bytes by a few C calls costs ~10-100x a startswith; the
    # old matcher was ~10^8 x. A ratio, not an absolute time, so a slow machine passes too.
    assert _best_time(hostile, key, number=50) < 500 * max(trivial, 1e-7)


@pytest.mark.solo  # a timing ratio: no other test of the run beside it (tests/conftest.py)
@pytest.mark.parametrize("pattern", [
    b"*a?a*[ab]a*a?a*b*", b"*" + b"[ab]" * 30 + b"c*", b"*[ab]a" * 50 + b"*c*", b"*?[ab]c*",
])
def test_cost_grows_linearly_with_the_key(pattern: bytes) -> None:
    match = compile_glob(pattern)
    short, long = b"a" * 400, b"a" * 4000
    # 10x the key: ~10x the time if linear (100x if quadratic); 40x leaves room for noise.
    assert _best_time(match, long, number=20) < 40 * _best_time(match, short, number=20)


@pytest.mark.solo  # a timing ratio: no other test of the run beside it (tests/conftest.py)
def test_tail_behind_a_star_costs_nothing_per_key_byte() -> None:
    # The tail is checked at the end through a look-behind, after a jump to the end that does
    # not read the key: 100x the key, ~1x the time (the old ``.*tail`` was O(key x tail)).
    match = compile_glob(b"key:*" + b"[ab]" * 30 + b"c")
    short, long = b"key:" + b"a" * 400, b"key:" + b"a" * 40_000
    assert not match(long)
    assert _best_time(match, long, number=20) < 10 * _best_time(match, short, number=20)


def _best_compile_time(pattern: bytes, repeat: int) -> float:
    """Best of ``repeat`` compiles, each from cold caches (ours and the re module's)."""
    best = float("inf")
    for _ in range(repeat):
        compile_glob.cache_clear()
        re.purge()
        t0 = time.perf_counter()
        compile_glob(pattern)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.solo  # a timing ratio: no other test of the run beside it (tests/conftest.py)
def test_compile_cost_is_linear_in_the_pattern() -> None:
    # A class is compiled item by item, never as a 256-byte set: 20k classes compile quickly.
    # The same class both times (a signed range across 0 costs ~3.5x ``[a-c]`` to compile) and
    # best-of timings: sizes under ~2000 classes compile relatively faster (~2x, caches), and
    # one cold compile varies 3x on a busy machine.
    small = _best_compile_time(b"[\x00-\xff]" * 20_000, repeat=2)
    tiny = _best_compile_time(b"[\x00-\xff]" * 2_000, repeat=3)
    assert small < 40 * max(tiny, 1e-5)  # 10x the classes: ~10x if linear, 100x if quadratic
