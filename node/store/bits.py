"""Bit commands on strings: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO.

Same mixin contract as ``strings.py``. Bit 0 is the most significant bit of byte 0, as in
Redis. A string is immutable ``bytes``, so a write rebuilds the value: O(length) per SETBIT or
BITFIELD write, as APPEND. Reads work on slices as Python integers (C-speed popcount and
shifts). Propagation: SETBIT, BITOP and BITFIELD log themselves, and only when the value
changed (a SETBIT to the bit's current value, or a BITFIELD whose every write failed or wrote
what was there, logs nothing); the result is a function of the state the AOF already rebuilt.
"""

from __future__ import annotations

from aofnode.protocol.errors import ERR, Error

from aofnode.store.bitmath import (
    combine, count_bits, find_bit, popcount, read_field, write_field,
)
from aofnode.store.stringops import MAX_STRING_BYTES
from aofnode.store.strings import NOT_INT_ERR, SYNTAX_ERR, WRONGTYPE_ERR, parse_ll

_OFFSET_ERR = Error(ERR, "bit offset is not an integer or out of range")
_BIT_ERR = Error(ERR, "bit is not an integer or out of range")
_BITPOS_BIT_ERR = Error(ERR, "The bit argument must be 1 or 0.")
_NOT_ONE_KEY_ERR = Error(ERR, "BITOP NOT must be called with a single source key.")
_TYPE_ERR = Error(ERR, "Invalid bitfield type. Use something like i16 u8. Note that u64 is not "
                       "supported but i64 is.")
_OVERFLOW_TYPE_ERR = Error(ERR, "Invalid OVERFLOW type specified")
_RO_ERR = Error(ERR, "BITFIELD_RO only supports the GET subcommand")
_BITOPS = (b"AND", b"OR", b"XOR", b"NOT")
_WRAP, _SAT, _FAIL = b"WRAP", b"SAT", b"FAIL"
_GET, _SET, _INCRBY = b"GET", b"SET", b"INCRBY"


def bit_offset(raw: bytes, bits: int = 0) -> int | None:
    """A bit offset as Redis's getBitOffsetFromArgument reads it (``#n`` means n * ``bits``
    when ``bits`` is given), or None when it is not an integer, negative or past 512 MiB."""
    scale = 1
    if bits and raw[:1] == b"#":
        raw, scale = raw[1:], bits
    offset = parse_ll(raw)
    if offset is None:
        return None
    offset *= scale
    if offset < 0 or offset >> 3 >= MAX_STRING_BYTES:
        return None
    return offset


def _range(size: int, start: int, end: int) -> tuple[int, int]:
    """Redis's index rules: negative from the end, clamped to 0 .. size - 1."""
    if start < 0:
        start += size
    if end < 0:
        end += size
    return max(start, 0), min(max(end, 0), size - 1)


def _fit(value: int, signed: bool, bits: int, mode: bytes) -> int | None:
    """``value`` (exact) stored in a field: itself if it fits, else wrapped or saturated per
    ``mode``; None under FAIL (Redis's checkSignedBitfieldOverflow and unsigned twin)."""
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if lo <= value <= hi:
        return value
    if mode == _FAIL:
        return None
    if mode == _SAT:
        return hi if value > hi else lo
    value &= (1 << bits) - 1
    if signed and value > hi:
        value -= 1 << bits
    return value


class BitCommands:
    COMMANDS = {
        "SETBIT": "_cmd_setbit", "GETBIT": "_cmd_getbit", "BITCOUNT": "_cmd_bitcount",
        "BITPOS": "_cmd_bitpos", "BITOP": "_cmd_bitop", "BITFIELD": "_cmd_bitfield",
        "BITFIELD_RO": "_cmd_bitfield_ro",
    }

    def _cmd_setbit(self, db, args):
        key = args[0]
        offset = bit_offset(args[1])
        if offset is None:
            return _OFFSET_ERR
        on = parse_ll(args[2])
        if on is None or on not in (0, 1):
            return _BIT_ERR
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is not None and old.__class__ is not bytes:
            return WRONGTYPE_ERR
        byte, mask = offset >> 3, 0x80 >> (offset & 7)
        was = 1 if old is not None and byte < len(old) and old[byte] & mask else 0
        if old is not None and byte < len(old) and was == on:
            return was
        buf = bytearray(old or b"")
        if byte >= len(buf):
            buf.extend(bytes(byte + 1 - len(buf)))
        buf[byte] = (buf[byte] | mask) if on else (buf[byte] & ~mask)
        ks.set(db, key, bytes(buf), keep_ttl=True)
        if not self._loading:
            self.propagated.append([db, "SETBIT", key, args[1], args[2]])
        return was

    def _cmd_getbit(self, db, args):
        offset = bit_offset(args[1])
        if offset is None:
            return _OFFSET_ERR
        value, err = self._read_string(db, args[0])
        if value is None:
            return 0 if err is None else err
        byte = offset >> 3
        return 1 if byte < len(value) and value[byte] & (0x80 >> (offset & 7)) else 0

    def _cmd_bitcount(self, db, args):
        value, err = self._read_string(db, args[0])
        if value is None:
            return 0 if err is None else err
        n = len(args)
        if n == 1:
            return popcount(value, 0, len(value))
        if n not in (3, 4):
            return SYNTAX_ERR
        start, end = parse_ll(args[1]), parse_ll(args[2])
        if start is None or end is None:
            return NOT_INT_ERR
        if start < 0 and end < 0 and start > end:
            return 0
        isbit = False
        if n == 4:
            unit = args[3].upper()
            if unit not in (b"BIT", b"BYTE"):
                return SYNTAX_ERR
            isbit = unit == b"BIT"
        start, end = _range(len(value) * 8 if isbit else len(value), start, end)
        if start > end:
            return 0
        if not isbit:
            return popcount(value, start, end + 1)
        return count_bits(value, start, end)

    def _cmd_bitpos(self, db, args):
        bit = parse_ll(args[1])
        if bit is None:
            return NOT_INT_ERR
        if bit not in (0, 1):
            return _BITPOS_BIT_ERR
        value, err = self._read_string(db, args[0])
        if value is None:
            return -1 if err is None and bit else (0 if err is None else err)
        n = len(args)
        size = len(value)
        isbit = end_given = False
        if n == 2:
            start, end = 0, size - 1
        elif n <= 5:
            start = parse_ll(args[2])
            if start is None:
                return NOT_INT_ERR
            if n == 5:
                unit = args[4].upper()
                if unit not in (b"BIT", b"BYTE"):
                    return SYNTAX_ERR
                isbit = unit == b"BIT"
            if n >= 4:
                end = parse_ll(args[3])
                if end is None:
                    return NOT_INT_ERR
                end_given = True
            else:
                end = size - 1
            start, end = _range(size * 8 if isbit else size, start, end)
        else:
            return SYNTAX_ERR
        if start > end:
            return -1
        first, last = (start, end) if isbit else (start * 8, end * 8 + 7)
        found = find_bit(value, first, last, bit)
        if found is not None:
            return found
        if bit == 1 or end_given:
            return -1
        return last + 1  # no end given: the string reads as padded with zeros on the right

    def _cmd_bitop(self, db, args):
        op = args[0].upper()
        if op not in _BITOPS:
            return SYNTAX_ERR
        if op == b"NOT" and len(args) != 3:
            return _NOT_ONE_KEY_ERR
        sources = []
        for key in args[2:]:
            value, err = self._read_string(db, key)
            if err is not None:
                return err
            sources.append(value or b"")
        size = max(len(s) for s in sources)
        dest = args[1]
        ks = self.keyspace
        if not size:
            if ks.lookup(db, dest) is not None:
                ks.delete(db, dest)
                if not self._loading:
                    self.propagated.append([db, "BITOP", *args])
            return 0
        ks.set(db, dest, combine(op, sources, size))
        if not self._loading:
            self.propagated.append([db, "BITOP", *args])
        return size

    def _cmd_bitfield(self, db, args):
        return self._bitfield(db, args, False)

    def _cmd_bitfield_ro(self, db, args):
        return self._bitfield(db, args, True)

    def _bitfield_ops(self, args):
        """[(op, signed, bits, offset, value, overflow mode)] or an error, as Redis parses."""
        ops = []
        mode = _WRAP
        i, n = 1, len(args)
        while i < n:
            sub, rest = args[i].upper(), n - i - 1
            if sub == b"OVERFLOW" and rest >= 1:
                mode = args[i + 1].upper()
                if mode not in (_WRAP, _SAT, _FAIL):
                    return _OVERFLOW_TYPE_ERR
                i += 2
                continue
            if not ((sub == _GET and rest >= 2) or (sub in (_SET, _INCRBY) and rest >= 3)):
                return SYNTAX_ERR
            kind = args[i + 1]
            bits = parse_ll(kind[1:]) if kind[:1] in (b"i", b"u") else None
            signed = kind[:1] == b"i"
            if bits is None or bits < 1 or bits > (64 if signed else 63):
                return _TYPE_ERR
            offset = bit_offset(args[i + 2], bits)
            if offset is None:
                return _OFFSET_ERR
            value = 0
            if sub != _GET:
                value = parse_ll(args[i + 3])
                if value is None:
                    return NOT_INT_ERR
            ops.append((sub, signed, bits, offset, value, mode))
            i += 3 if sub == _GET else 4
        return ops

    def _bitfield(self, db, args, read_only):
        ops = self._bitfield_ops(args)
        if ops.__class__ is Error:
            return ops
        key = args[0]
        writes = [op for op in ops if op[0] != _GET]
        if not writes:
            value, err = self._read_string(db, key)
            if err is not None:
                return err
            return [_signed(read_field(value or b"", off, bits), bits) if signed
                    else read_field(value or b"", off, bits)
                    for _, signed, bits, off, _, _ in ops]
        if read_only:
            return _RO_ERR
        ks = self.keyspace
        old = ks.lookup(db, key)
        if old is not None and old.__class__ is not bytes:
            return WRONGTYPE_ERR
        buf = bytearray(old or b"")
        need = (max(op[3] + op[2] - 1 for op in writes) >> 3) + 1
        if len(buf) < need:
            buf.extend(bytes(need - len(buf)))
        replies = [_bitfield_op(buf, op) for op in ops]
        new = bytes(buf)
        if new != old:
            ks.set(db, key, new, keep_ttl=True)
            if not self._loading:
                self.propagated.append([db, "BITFIELD", *args])
        return replies


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw >> (bits - 1) else raw


def _bitfield_op(buf: bytearray, op) -> int | None:
    """Run one BITFIELD operation on ``buf``; its reply."""
    sub, signed, bits, offset, value, mode = op
    raw = read_field(buf, offset, bits)
    current = _signed(raw, bits) if signed else raw
    if sub == _GET:
        return current
    if sub == _INCRBY:
        new = _fit(current + value, signed, bits, mode)
    elif signed:
        new = _fit(value, signed, bits, mode)
    else:
        # Redis takes the SET value as a uint64: a negative one is huge, so SAT gives the max.
        new = _fit(value & (2**64 - 1), signed, bits, mode)
    if new is None:
        return None
    write_field(buf, offset, bits, new)
    return new if sub == _INCRBY else current
