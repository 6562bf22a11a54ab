"""The building blocks of Redis's RDB value serialisation (``rdb.py`` puts them together): the
CRC-64 footer, lengths, strings (integer-encoded and LZF-compressed forms included), and the
listpack and ziplist blobs Redis 7 and 6 write for small collections.

Cost: the CRC is a Python loop, ~0.1 us per byte (about 10 MB/s): DUMP and RESTORE of big
values block the log actor for that long.
"""

from __future__ import annotations

__all__ = [
    "RDB_VERSION", "crc64", "verify_payload", "encode_length", "encode_string", "Reader",
    "lzf_decompress", "listpack_items", "ziplist_items",
]

RDB_VERSION = 10
_ENC_INT8, _ENC_INT16, _ENC_INT32, _ENC_LZF = 0, 1, 2, 3
_POLY = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9 bit-reversed: the reflected form


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc64(data: bytes, crc: int = 0) -> int:
    """Redis's crc64 (``crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca``)."""
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def verify_payload(payload: bytes) -> bool:
    """Redis's verifyDumpPayload: a footer, a version it can read, a matching CRC."""
    if len(payload) < 10:
        return False
    version = payload[-10] | payload[-9] << 8
    if version > RDB_VERSION:
        return False
    return crc64(payload[:-8]).to_bytes(8, "little") == payload[-8:]


# --- writing ---------------------------------------------------------------------------------
def encode_length(n: int) -> bytes:
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((0x40 | n >> 8, n & 0xFF))
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def encode_string(s: bytes) -> bytes:
    if len(s) <= 11 and s[:1] not in (b"", b"+") and s != b"-0":
        try:
            n = int(s)
        except ValueError:
            n = None
        # Only the canonical spelling round-trips (Redis's string2ll then ll2string check).
        if n is not None and b"%d" % n == s:
            if -(1 << 7) <= n < 1 << 7:
                return b"\xc0" + n.to_bytes(1, "little", signed=True)
            if -(1 << 15) <= n < 1 << 15:
                return b"\xc1" + n.to_bytes(2, "little", signed=True)
            if -(1 << 31) <= n < 1 << 31:
                return b"\xc2" + n.to_bytes(4, "little", signed=True)
    return encode_length(len(s)) + s


# --- reading ---------------------------------------------------------------------------------
class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def length(self) -> tuple[int, bool]:
        """(length or encoding number, True if it is an encoding) as rdbLoadLenByRef."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return (first & 0x3F) << 8 | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return int.from_bytes(self.take(4), "big"), False
        if first == 0x81:
            return int.from_bytes(self.take(8), "big"), False
        raise ValueError("bad length")

    def plain_length(self) -> int:
        n, encoded = self.length()
        if encoded:
            raise ValueError("encoded length")
        return n

    def string(self) -> bytes:
        n, encoded = self.length()
        if not encoded:
            return self.take(n)
        if n in (_ENC_INT8, _ENC_INT16, _ENC_INT32):
            return b"%d" % int.from_bytes(self.take(1 << n), "little", signed=True)
        if n == _ENC_LZF:
            compressed, size = self.plain_length(), self.plain_length()
            return lzf_decompress(self.take(compressed), size)
        raise ValueError("unknown string encoding")


def lzf_decompress(data: bytes, size: int) -> bytes:
    """LZF (liblzf's format, as Redis writes it); ValueError unless it gives ``size`` bytes."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            run = data[i:i + ctrl + 1]
            if len(run) != ctrl + 1:
                raise ValueError("lzf literal past the end")
            out += run
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= n:
                raise ValueError("lzf length past the end")
            length += data[i]
            i += 1
        if i >= n:
            raise ValueError("lzf offset past the end")
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise ValueError("lzf back reference before the start")
        for _ in range(length + 2):  # byte by byte: the source may overlap what it writes
            out.append(out[ref])
            ref += 1
    if len(out) != size:
        raise ValueError("lzf size mismatch")
    return bytes(out)


def listpack_items(blob: bytes) -> list[bytes]:
    if len(blob) < 7 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise ValueError("bad listpack header")
    items, i, end = [], 6, len(blob) - 1
    while i < end:
        b = blob[i]
        if b < 0x80:
            item, size = b"%d" % b, 1
        elif b < 0xC0:
            size = 1 + (b & 0x3F)
            item = blob[i + 1:i + size]
        elif b < 0xE0:
            raw = (b & 0x1F) << 8 | blob[i + 1]
            item, size = b"%d" % (raw - (1 << 13) if raw >= 1 << 12 else raw), 2
        elif b < 0xF0:
            n = (b & 0x0F) << 8 | blob[i + 1]
            item, size = blob[i + 2:i + 2 + n], 2 + n
        elif b == 0xF0:
            n = int.from_bytes(blob[i + 1:i + 5], "little")
            item, size = blob[i + 5:i + 5 + n], 5 + n
        elif 0xF1 <= b <= 0xF4:
            width = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}[b]
            item = b"%d" % int.from_bytes(blob[i + 1:i + 1 + width], "little", signed=True)
            size = 1 + width
        else:
            raise ValueError("bad listpack entry")
        back = 1 if size < 128 else 2 if size < 16384 else 3 if size < 1 << 21 else (
            4 if size < 1 << 28 else 5)
        i += size + back
        if i > end:
            raise ValueError("listpack entry past the end")
        items.append(item)
    return items


def ziplist_items(blob: bytes) -> list[bytes]:
    if len(blob) < 11 or int.from_bytes(blob[:4], "little") != len(blob) or blob[-1] != 0xFF:
        raise ValueError("bad ziplist header")
    items, i, end = [], 10, len(blob) - 1
    while i < end:
        i += 5 if blob[i] == 0xFE else 1  # the previous entry's length
        b = blob[i]
        top = b >> 6
        if top == 0:
            n, i = b & 0x3F, i + 1
        elif top == 1:
            n, i = (b & 0x3F) << 8 | blob[i + 1], i + 2
        elif top == 2:
            n, i = int.from_bytes(blob[i + 1:i + 5], "big"), i + 5
        else:
            widths = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}
            if b in widths:
                w = widths[b]
                items.append(b"%d" % int.from_bytes(blob[i + 1:i + 1 + w], "little", signed=True))
                i += 1 + w
            elif 0xF1 <= b <= 0xFD:
                items.append(b"%d" % ((b & 0x0F) - 1))
                i += 1
            else:
                raise ValueError("bad ziplist entry")
            continue
        items.append(blob[i:i + n])
        i += n
    if i != end:
        raise ValueError("ziplist entry past the end")
    return items
