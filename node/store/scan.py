"""SCAN cursors without server state: a cursor is a place in hash space, as in Redis.

A scan visits the keyspace's ``SHARDS`` shards in order; a shard too big for one call is cut
into ``2**b`` slices by the next ``b`` bits of the hash, one slice per call. The node keeps
nothing per scan, and a call costs O(COUNT + one shard).

    cursor = shard << 8 | b << 4 | j        shard 0..255, b 0..4, j 0..2**b - 1

The guarantee is Redis's: a key present from the call with cursor 0 to the call that returns
cursor 0 is returned at least once; a key added or deleted meanwhile may or may not be. Not
promised across a restart of the log actor (the string hash seed is per process). The encoding
and the proof, step by step: docs/design.md, "SCAN cursors".
"""

from __future__ import annotations

from aofnode.protocol.errors import Error

from aofnode.store.keyspace import SHARDS, Keyspace
from aofnode.store.pattern import Matcher, compile_glob
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, parse_ll

__all__ = ["MAX_SLICE_BITS", "parse_cursor", "parse_scan_options", "scan_fields", "scan_keys"]

# At most 16 slices per shard: a full scan filters each shard 16 times at most, so it costs at
# most ~16 passes over the keys (~50 ns per key per pass here) instead of one, and a reply is
# at least 1/16 of a shard (~290 keys of a 1.2M-key db). More slices would make COUNT tighter
# on huge dbs at the price of more passes.
MAX_SLICE_BITS = 4
_FIELD_BITS = 4  # the width of b and of j in the cursor: j < 2**MAX_SLICE_BITS <= 2**4
_FIELD_MASK = (1 << _FIELD_BITS) - 1
_SHARD_SHIFT = 2 * _FIELD_BITS
_ULONG_MAX = 2**64 - 1  # Redis parses the cursor with strtoul (64-bit unsigned long)
_C_SPACE = b" \t\n\v\f\r"  # isspace() in the C locale


def parse_cursor(raw: bytes) -> int | None:
    """The cursor as Redis's ``parseScanCursorOrReply`` reads it, or None if it is invalid.

    Redis calls ``strtoul(s, &end, 10)`` on the C string and rejects a leading space, anything
    left after the digits, and overflow. So a sign is accepted (``+0`` is 0, ``-1`` wraps to
    2**64-1), leading zeros are too, the empty string is 0, and a NUL ends the string.
    """
    if raw[:1] and raw[0] in _C_SPACE:
        return None
    text = raw.split(b"\0", 1)[0]
    digits = text[1:] if text[:1] in (b"+", b"-") else text
    if not digits:
        return 0 if not text else None  # strtoul converted nothing: valid only if empty
    if not digits.isdigit():  # bytes.isdigit: ASCII 0-9 only
        return None
    value = int(digits)
    if value > _ULONG_MAX:
        return None  # ERANGE
    return (-value) & _ULONG_MAX if text[:1] == b"-" else value


def parse_scan_options(
    args: list[bytes], start: int, with_type: bool = False,
) -> tuple[int, Matcher | None, bytes | None] | Error:
    """``[MATCH pattern] [COUNT count]`` (and ``[TYPE type]`` if ``with_type``) from
    ``args[start:]``, read as Redis's ``scanGenericCommand`` reads them, shared by SCAN, HSCAN,
    SSCAN and ZSCAN so they refuse the same arguments with the same errors.

    Returns ``(count, match, type)``: ``match`` is None for no pattern or ``*`` (every name
    matches), ``type`` the raw TYPE argument or None; or the error to reply.
    """
    count = 10  # COUNT when not given, as Redis
    match: Matcher | None = None
    want_type: bytes | None = None
    i, n = start, len(args)
    while i < n:
        opt = args[i].upper()
        if i + 1 >= n:
            return SYNTAX_ERR
        if opt == b"COUNT":
            parsed = parse_ll(args[i + 1])
            if parsed is None:
                return NOT_INT_ERR
            if parsed < 1:
                return SYNTAX_ERR
            count = parsed
        elif opt == b"MATCH":
            match = None if args[i + 1] == b"*" else compile_glob(args[i + 1])
        elif with_type and opt == b"TYPE":
            want_type = args[i + 1]
        else:
            return SYNTAX_ERR
        i += 2
    return count, match, want_type


def _slice_bits(size: int, count: int) -> int:
    bits = 0
    while bits < MAX_SLICE_BITS and size >> bits > count:
        bits += 1
    return bits


def _encode(shard: int, bits: int, part: int) -> int:
    return shard << _SHARD_SHIFT | bits << _FIELD_BITS | part


def scan_keys(keyspace: Keyspace, db: int, cursor: int, count: int) -> tuple[int, list[bytes]]:
    """The next cursor (0 at the end) and the keys of the slices read by this call.

    Reads whole small shards, and slices of at most one big shard (one pass over it), until it
    has ``count`` keys. The keys are candidates: expired ones are included (the caller looks
    each one up, which reclaims it); MATCH and TYPE are the caller's too.
    """
    shard = cursor >> _SHARD_SHIFT
    bits, part = (cursor >> _FIELD_BITS) & _FIELD_MASK, cursor & _FIELD_MASK
    if bits > MAX_SLICE_BITS or part >> bits:
        part = 0  # not a cursor of ours: restart this shard
    found: list[bytes] = []
    big_shard_read = False
    while shard < SHARDS and len(found) < count:
        if part == 0:
            bits = _slice_bits(keyspace.shard_size(db, shard), count)
        if bits and big_shard_read:
            break  # one pass over a big shard per call
        slices = keyspace.shard_slices(db, shard, bits)
        big_shard_read = bits > 0
        while part < len(slices) and len(found) < count:
            found.extend(slices[part])
            part += 1
        if part < len(slices):
            break  # COUNT reached inside this shard: the next call goes on from its next slice
        shard, part = shard + 1, 0
    if shard >= SHARDS:
        return 0, found
    return _encode(shard, bits if part else 0, part), found


# --- HSCAN -----------------------------------------------------------------------------------
# A hash Redis would keep as a listpack (at most 128 fields, none and no value over 64 bytes,
# its defaults) is returned whole by one call with cursor 0, whatever COUNT says, as Redis
# does; clients and its test suite expect that of small hashes.
SMALL_HASH_FIELDS = 128
SMALL_HASH_BYTES = 64
# A bigger hash is cut into 2**b slices by the low b bits of each field's hash (b chosen at
# cursor 0 from the size and COUNT, at most this), one pass over the hash per call.
MAX_FIELD_SLICE_BITS = 12
_FIELD_B_BITS = 5  # cursor = j << 5 | b, j the next slice (>= 1): never 0 before the end


def _small_hash(h: dict) -> bool:
    return len(h) <= SMALL_HASH_FIELDS and all(
        len(f) <= SMALL_HASH_BYTES and len(v) <= SMALL_HASH_BYTES for f, v in h.items())


def scan_fields(h: dict, cursor: int, count: int) -> tuple[int, list[bytes]]:
    """HSCAN's next cursor (0 at the end) and the fields of the slices read by this call.

    The guarantee is SCAN's (see the module docstring): a field's slice is fixed by its hash
    and ``b``, ``b`` is carried in the cursor, and each slice is read by exactly one call, so a
    field present for the whole iteration is returned. A cursor we never handed out ends the
    iteration. Each call costs one pass over the hash: O(fields), not O(COUNT).
    """
    if cursor == 0:
        if _small_hash(h):
            return 0, list(h)
        bits, part = 0, 0
        while bits < MAX_FIELD_SLICE_BITS and len(h) >> bits > count:
            bits += 1
    else:
        bits, part = cursor & ((1 << _FIELD_B_BITS) - 1), cursor >> _FIELD_B_BITS
        if bits > MAX_FIELD_SLICE_BITS or part == 0 or part >= 1 << bits:
            return 0, []
    mask = (1 << bits) - 1
    slices: dict[int, list[bytes]] = {}
    for field in h:
        j = hash(field) & mask
        if j >= part:
            slices.setdefault(j, []).append(field)
    found: list[bytes] = []
    while part <= mask and len(found) < count:
        found.extend(slices.get(part, ()))
        part += 1
    if part > mask:
        return 0, found
    return part << _FIELD_B_BITS | bits, found
