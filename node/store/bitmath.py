"""Bit arithmetic on strings for ``bits.py``: fields, counts, searches and BITOP's combination.

Bit 0 is the most significant bit of byte 0, as in Redis. Big values are read ``CHUNK`` bytes
at a time (through slices and memoryviews), never as one integer of their whole size.
"""

from __future__ import annotations

__all__ = ["CHUNK", "combine", "count_bits", "find_bit", "popcount", "read_field",
           "write_field"]

# Big bitmaps are read and combined this many bytes at a time, so a command on a 512 MiB value
# does not make integers of its whole size.
CHUNK = 1 << 20
# What a chunk holds when it has no 1 (looking for a 1) or no 0 (looking for a 0).
_FILLERS = {1: bytes(CHUNK), 0: b"\xff" * CHUNK}


def read_field(buf, offset: int, bits: int) -> int:
    """The unsigned ``bits``-bit field at bit ``offset`` of ``buf`` (zeros past its end)."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    chunk = bytes(buf[first:last + 1]).ljust(last - first + 1, b"\0")
    shift = (last + 1) * 8 - (offset + bits)
    return (int.from_bytes(chunk, "big") >> shift) & ((1 << bits) - 1)


def write_field(buf: bytearray, offset: int, bits: int, value: int) -> None:
    """Store the low ``bits`` bits of ``value`` at bit ``offset``; ``buf`` already covers it."""
    first, last = offset >> 3, (offset + bits - 1) >> 3
    width = (last - first + 1) * 8
    shift = width - (offset - first * 8) - bits
    mask = ((1 << bits) - 1) << shift
    x = int.from_bytes(buf[first:last + 1], "big")
    x = (x & ~mask) | ((value << shift) & mask)
    buf[first:last + 1] = x.to_bytes(width // 8, "big")


def popcount(value: bytes, start: int, end: int) -> int:
    """Set bits of ``value[start:end]``, a chunk at a time: no copy of a big bitmap."""
    view = memoryview(value)
    return sum(int.from_bytes(view[i:min(i + CHUNK, end)], "big").bit_count()
               for i in range(start, end, CHUNK))


def count_bits(value: bytes, first: int, last: int) -> int:
    """Set bits from bit ``first`` to bit ``last`` included."""
    fb, lb = first >> 3, last >> 3
    if fb == lb:
        return read_field(value, first, last - first + 1).bit_count()
    head = read_field(value, first, 8 - (first & 7)).bit_count()
    tail = read_field(value, lb * 8, (last & 7) + 1).bit_count()
    return head + popcount(value, fb + 1, lb) + tail


def find_bit(value: bytes, first: int, last: int, bit: int) -> int | None:
    """The first position from bit ``first`` to bit ``last`` whose bit is ``bit``, or None."""
    fb, lb = first >> 3, last >> 3
    parts = [(first, last)] if fb == lb else [(first, fb * 8 + 7), None, (lb * 8, last)]
    for part in parts:
        if part is None:
            found = _find_in_bytes(value, fb + 1, lb, bit)
            if found is not None:
                return found
            continue
        lo, hi = part
        width = hi - lo + 1
        field = read_field(value, lo, width)
        if bit == 0:
            field ^= (1 << width) - 1
        if field:
            return lo + width - field.bit_length()
    return None


def _find_in_bytes(value: bytes, start: int, end: int, bit: int) -> int | None:
    """The first bit equal to ``bit`` in ``value[start:end]``, as a bit position, or None. Each
    chunk is compared with one of all 0s (all 1s) at memcmp speed; only the chunk that differs
    is turned into an integer."""
    filler = _FILLERS[bit]
    for i in range(start, end, CHUNK):
        n = min(CHUNK, end - i)
        chunk = value[i:i + n]
        if chunk != filler[:n]:
            x = int.from_bytes(chunk, "big")
            if bit == 0:
                x ^= (1 << (8 * n)) - 1
            return i * 8 + 8 * n - x.bit_length()
    return None


def combine(op: bytes, sources: list[bytes], size: int) -> bytes:
    """BITOP's result: the sources zero-padded to ``size`` bytes, combined a chunk at a time."""
    out = bytearray()
    for i in range(0, size, CHUNK):
        n = min(CHUNK, size - i)
        ints = [int.from_bytes(s[i:i + n].ljust(n, b"\0"), "big") for s in sources]
        result = ints[0]
        if op == b"NOT":
            result ^= (1 << (8 * n)) - 1
        for x in ints[1:]:
            result = result & x if op == b"AND" else (result | x if op == b"OR" else result ^ x)
        out += result.to_bytes(n, "big")
    return bytes(out)
