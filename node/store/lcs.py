"""LCS: the longest common subsequence of two strings, with Redis 7's replies and ranges.

Redis fills the (len(a)+1) x (len(b)+1) table of LCS lengths and walks it back from the end;
its reply (the string, and with IDX the matched ranges, last first) depends on the way the walk
takes at each tie. A Python loop over that table costs ~0.1 us per cell, seconds for two 3 KB
strings, so the table is kept in bit-parallel form instead (Hyyro's bit-vector LCS): row ``i``
is one integer whose bit ``j`` is 0 where LCS(i, j+1) = LCS(i, j) + 1, so
LCS(i, j) = j - popcount(row_i & (2**j - 1)). Building the rows is ``len(a)`` big-integer
operations on ``len(b)``-bit numbers; the walk takes exactly Redis's steps (a run of steps along
b in one jump), so it gives Redis's reply: 10 KB x 10 KB in ~50 ms here.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, parse_ll

__all__ = ["lcs_reply", "lcs_rows"]

# Redis refuses a table of more than proto-max-bulk-len bytes (4 bytes per cell); keeping the
# same limit keeps the same replies, and bounds this work (the rows take 1/32 of that).
_MAX_TABLE_BYTES = 512 * 1024 * 1024
_BOTH_ERR = Error(ERR, "If you want both the length and indexes, please just use IDX.")
_TOO_BIG_ERR = Error(ERR, "Insufficient memory, transient memory for LCS exceeds "
                          "proto-max-bulk-len")


def lcs_rows(a: bytes, b: bytes) -> list[int]:
    """Row ``i`` (0..len(a)) of the LCS table in bit-vector form (see the module docstring)."""
    full = (1 << len(b)) - 1
    masks: dict[int, int] = {}
    for ch in set(a):
        # Bit j set where b[j] == ch, built in C: b as "1"/"0" digits, read as a base-2 number
        # (one linear pass; OR-ing 1 << j per byte would be quadratic in len(b)).
        digits = b.translate(bytes(49 if x == ch else 48 for x in range(256)))
        masks[ch] = int(digits[::-1], 2) if digits else 0
    v = full
    rows = [v]
    for ch in a:
        u = v & masks.get(ch, 0)
        v = ((v + u) | (v - u)) & full
        rows.append(v)
    return rows


def _parse_options(options):
    """(getlen, getidx, withmatchlen, minmatchlen) or an error, as Redis reads them."""
    getlen = getidx = withmatchlen = False
    minmatchlen = 0
    i, n = 0, len(options)
    while i < n:
        opt = options[i].upper()
        if opt == b"IDX":
            getidx = True
        elif opt == b"LEN":
            getlen = True
        elif opt == b"WITHMATCHLEN":
            withmatchlen = True
        elif opt == b"MINMATCHLEN" and i + 1 < n:
            minmatchlen = parse_ll(options[i + 1])
            if minmatchlen is None:
                return NOT_INT_ERR
            minmatchlen = max(0, minmatchlen)
            i += 1
        else:
            return SYNTAX_ERR
        i += 1
    if getlen and getidx:
        return _BOTH_ERR
    return getlen, getidx, withmatchlen, minmatchlen


def lcs_reply(a: bytes, b: bytes, options) -> object:
    """LCS's reply for the strings ``a`` and ``b`` (a missing key is ``b""``) and the options
    after the two keys: the LCS (bulk), its length (LEN), or with IDX a map of the matched
    ranges, last first, and the length."""
    parsed = _parse_options(options)
    if parsed.__class__ is Error:
        return parsed
    getlen, getidx, withmatchlen, minmatchlen = parsed
    if (len(a) + 1) * (len(b) + 1) * 4 > _MAX_TABLE_BYTES:
        return _TOO_BIG_ERR
    rows = lcs_rows(a, b)
    total = len(b) - rows[len(a)].bit_count()
    if getlen:
        return total
    result, ranges = _walk(a, b, rows, total)
    if not getidx:
        return result
    matches = []
    for a_start, a_end, b_start, b_end in ranges:
        match_len = a_end - a_start + 1
        if minmatchlen == 0 or match_len >= minmatchlen:
            match = [[a_start, a_end], [b_start, b_end]]
            if withmatchlen:
                match.append(match_len)
            matches.append(match)
    return {"matches": matches, "len": total}


def _walk(a: bytes, b: bytes, rows: list[int], total: int):
    """Redis's walk back through the table: the LCS, and the matched ranges
    ``(a_start, a_end, b_start, b_end)`` in the order Redis emits them (last first)."""
    result = bytearray(total)
    ranges = []
    idx = total
    i, j = len(a), len(b)
    unset = len(a)  # Redis's marker for "no range open"
    a_start, a_end, b_start, b_end = unset, 0, 0, 0
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[idx - 1] = a[i - 1]
            if a_start == unset:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            # Redis steps up (i - 1) when LCS(i-1, j) > LCS(i, j-1), else left. On a mismatch
            # LCS(i, j) is the larger of the two, so that is: up exactly when the row grows
            # between j-1 and j (bit j-1 of row i is 0). A run of left steps ends at the first
            # such bit or at the next byte of b equal to a[i-1]: jump there in one go, so the
            # walk costs O(len(a)) big-integer operations, not O(len(b)).
            row = rows[i]
            if not (row >> (j - 1)) & 1:
                i -= 1
            else:
                grows = (~row & ((1 << (j - 1)) - 1)).bit_length() - 1
                same = b.rfind(a[i - 1:i], 0, j - 1)
                j = max(grows, same) + 1
            if a_start != unset:
                emit = True
        if emit:
            ranges.append((a_start, a_end, b_start, b_end))
            a_start = unset
    return bytes(result), ranges
