"""RESP requests, sans-I/O: bytes from a Redis client to argv lists, for the RESP front.

* ``RequestParser.feed(data)`` returns the commands that are complete, each an argv list of
  bytes, in both forms Redis accepts: multibulk (what client libraries send) and inline (one line
  split like Redis's ``sdssplitargs``, ``split_inline``: telnet, ``redis-cli --pipe``).
* Limits are checked on the *declared* lengths, before anything is buffered (the constants below
  give each one's reason); before AUTH Redis's tighter limits hold, so a client without the
  password cannot make the node buffer much.
* The peer's garbage is a value: the first protocol error sets ``error`` to Redis's message, the
  commands complete before it are still returned, and the parser takes nothing more; the caller
  replies ``-ERR <error>`` and closes the connection, as Redis does. Stricter than Redis in one
  place: the two bytes after a bulk must be CRLF (Redis skips them unread).
* Whole multibulks go through a fast path: hiredis's C reader where it is installed
  (``PARSER``), else a split of the read at every CRLF. Both only ever take commands that are
  complete in one read and proven canonical (each one's bytes are exactly the RESP a client
  library makes of its arguments), so they agree with the general parser byte for byte;
  anything else (an incomplete tail, an inline command, an error) is the general parser's, which
  checks every declared length before it buffers anything. So hiredis never holds a byte past
  the read it was given: what it would buffer for a header is never given to it.
  docs/resp.md has the figures.
"""
from __future__ import annotations

import re
from typing import Any

from .wire import MAX_ARGS, MAX_MESSAGE_BYTES

_Reader: Any
_pack_command: Any
try:  # the C reader (pyproject.toml's dependency); pure Python where it is missing
    from hiredis import Reader as _Reader, pack_command as _pack_command
except ImportError:  # pragma: no cover - depends on the environment
    _Reader = _pack_command = None

PARSER = "hiredis" if _Reader is not None else "python"

__all__ = ["PARSER", "MAX_INLINE_BYTES", "MAX_BULK_BYTES", "MAX_MULTIBULK", "MAX_COMMAND_BYTES", "ARG_OVERHEAD",
           "UNAUTH_MAX_MULTIBULK", "UNAUTH_MAX_BULK", "RequestParser", "split_inline"]

# Longest inline command or length header: Redis's PROTO_INLINE_MAX_SIZE.
MAX_INLINE_BYTES = 64 * 1024
# Longest bulk string: what one msgpack message to the log actor may hold (Redis: 512 MiB).
MAX_BULK_BYTES = MAX_MESSAGE_BYTES
# Elements of one multibulk: the name and MAX_ARGS arguments (Redis: 2^31 - 1).
MAX_MULTIBULK = MAX_ARGS + 1
# One command as msgpack: it travels to the log actor as one message, which may not pass
# MAX_MESSAGE_BYTES. Each bulk counts its bytes plus ``ARG_OVERHEAD`` (msgpack's bin
# header is at most 5 bytes); 1 KiB is left for the message's own header and arrays.
ARG_OVERHEAD = 5
MAX_COMMAND_BYTES = MAX_MESSAGE_BYTES - 1024
# Before AUTH, when a password is set: Redis 7's limits for unauthenticated clients.
UNAUTH_MAX_MULTIBULK = 10
UNAUTH_MAX_BULK = 16 * 1024
# Before AUTH the caps above are checked first, as Redis does, so a client over them hears it
# is unauthenticated; only a length Redis itself finds invalid (not a number, negative, past
# INT_MAX elements or its default 512 MiB proto-max-bulk-len) is "invalid" then.
_REDIS_MAX_MULTIBULK = 2**31 - 1
_REDIS_MAX_BULK = 512 * 1024 * 1024

_CRLF = b"\r\n"


class RequestParser:
    """Incremental request parser: ``feed`` bytes, get the complete argv lists back.

    After a protocol error ``error`` holds Redis's message and ``feed`` returns nothing more.
    State between calls: at most one incomplete command (its parsed arguments and the bytes
    of the rest, which the limits bound).
    """

    __slots__ = ("_buf", "_argv", "_left", "_bulk", "_scanned", "_declared", "_parsed", "error",
                 "authenticated", "max_bulk", "max_multibulk", "_reader", "_fast")

    def __init__(self, *, authenticated: bool = True, max_bulk: int = MAX_BULK_BYTES,
                 max_multibulk: int = MAX_MULTIBULK, hiredis: bool | None = None) -> None:
        # Unparsed bytes: bytes, or a bytearray while a long part gathers.
        self._buf: bytes | bytearray = b""
        self._argv: list[bytes] | None = None  # the multibulk being read
        self._left = 0  # its elements still to read
        self._bulk = -1  # declared length of the bulk being read, -1: expecting its header
        self._scanned = 0  # bytes of _buf already searched for a line end
        self._declared = 0  # msgpack bytes declared so far by this command (ARG_OVERHEAD each)
        self._parsed = 0  # memory of the arguments of the incomplete command parsed so far
        self.error: str | None = None
        self.authenticated = authenticated
        self.max_bulk = max_bulk
        self.max_multibulk = max_multibulk
        # hiredis (None: if installed) for whole multibulks, else the split fast path. Limits
        # tighter than what one read of _HIREDIS_READ bytes can pass take the split path.
        use = _Reader is not None if hiredis is None else hiredis
        if use and _Reader is None:
            raise ValueError("hiredis is not installed")
        use = use and max_bulk >= _HIREDIS_READ and max_multibulk >= _HIREDIS_READ // 6
        self._reader = _Reader() if use else None
        self._fast = self._parse_hiredis if use else self._parse_split

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete command: its unparsed bytes and its arguments parsed so
        far, each counted with a Python object's overhead (the caller's input accounting)."""
        return len(self._buf) + self._parsed

    def feed(self, data: bytes) -> list[list[bytes]]:
        if self.error is not None:
            return []
        buf = self._buf
        if buf:
            if type(buf) is bytes and self._argv is None and len(buf) <= _SHORT_TAIL:
                buf = buf + data  # a short incomplete command: copy it once more, stay on bytes
            else:
                if type(buf) is bytes:
                    buf = bytearray(buf)  # gathering a long part: += is amortised O(1)
                buf += data
        else:
            buf = data
        out: list[list[bytes]] = []
        pos = 0
        if self._argv is None and self.authenticated and type(buf) is bytes and buf[:1] == b"*":
            pos, incomplete = self._fast(buf, out)
            if incomplete and len(buf) - pos <= _SHORT_TAIL:
                tail = buf[pos:]
                # Only if what has come of it is valid so far (a header may already be wrong):
                # the general parser on a throwaway state says, at the cost of one short tail.
                probe = RequestParser(max_bulk=self.max_bulk, max_multibulk=self.max_multibulk,
                                      hiredis=False)
                probe._parse(tail, [])  # an incomplete command: it cannot complete one
                if probe.error is None:
                    self._buf = tail  # the next read completes it, on the fast path again
                    return out
        if pos < len(buf):
            pos += self._parse(buf[pos:] if pos else buf, out)
        rest = len(buf) - pos
        if rest == 0 or self.error is not None:
            self._buf = b""
            if self.error is not None:
                self._parsed = 0
        elif pos == 0:
            self._buf = buf  # still gathering one part: keep the (growing) buffer as it is
        else:
            self._buf = buf[pos:]
        return out

    def _parse_hiredis(self, buf: bytes, out: list[list[bytes]]) -> tuple[int, bool]:
        """The fast path with hiredis's reader (``_parse_split``'s contract). It takes the
        complete replies of this read, then keeps them only if the read starts with exactly
        their canonical RESP (``pack_command``, in C): hiredis also reads simple strings,
        integers, nested arrays and what follows a bulk unchecked, which a request must not
        hold, and those never re-encode to the bytes they came from. Any doubt, and the whole
        read goes to the general parser, whose errors are Redis's. An incomplete tail is the
        general parser's too (the reader is replaced, so it holds nothing across reads); a read
        past ``_HIREDIS_READ`` takes the split path, so the limits hold for every command taken
        here (one read cannot declare past them; a parser with tighter limits never comes
        here). A read of fewer than ``_HIREDIS_COMMANDS`` commands takes the split path, which
        costs less for a few. hiredis allocates an array's list when it
        reads its header (a declared 4G elements: MemoryError), so a read where any ``*`` is
        followed by 7 digits (at most ~1M, Redis's limit is MAX_MULTIBULK) is not given to it:
        one C search per read (~1 us for a read of 16 pipelined SETs here, loaded)."""
        if (len(buf) > _HIREDIS_READ or buf.count(b"\r\n*") < _HIREDIS_COMMANDS - 1
                or _BIG_COUNT(buf)):
            return self._parse_split(buf, out)
        reader: Any = self._reader
        reader.feed(buf)
        try:
            got = list(iter(reader.gets, False))
            if not got:
                self._reader = _Reader()
                return 0, True
            canonical = b"".join(map(_pack_command, map(tuple, got)))
        except Exception:  # hiredis.ProtocolError, or pack_command's TypeError (nil, array...)
            self._reader = _Reader()
            return 0, False
        if not buf.startswith(canonical) or [] in got:  # "*0" is nothing (the general parser's)
            self._reader = _Reader()
            return 0, False
        pos = len(canonical)
        if pos < len(buf):
            self._reader = _Reader()  # it holds the tail: the general parser takes it
        out.extend(got)
        return pos, pos < len(buf)

    def _parse_split(self, buf: bytes, out: list[list[bytes]]) -> tuple[int, bool]:
        """The fast path for whole multibulks of short bulks: split the read at every CRLF once
        (in C), then check that each ``$len`` header is exactly the canonical header of the part
        after it. Where they all match the framing is proven (the bytes are ``*N CRLF $len CRLF
        bulk CRLF ...``); at the first command that does not (a bulk holding a CRLF, a long
        bulk, an incomplete command, anything odd), stop: the general parser takes over from
        that command's first byte. Returns the bytes consumed, and whether what stopped it is
        only a command not complete yet. Halves parsing a pipelined SET (bench/studies/resp_parser.py)."""
        parts = buf.split(_CRLF)
        last = len(parts) - 1  # parts[last] follows the last CRLF: never a whole part
        heads, counts, max_count = _HEADS, _COUNTS, min(self.max_multibulk, len(_COUNTS))
        k = 0
        incomplete = False
        while k < last:
            count = counts.get(parts[k], 0)
            stop = k + 1 + 2 * count
            if not count or count > max_count:
                break
            if stop > last:
                incomplete = True
                break
            argv = parts[k + 2:stop:2]
            for j in range(count):
                v = argv[j]
                if len(v) >= _SHORT or parts[k + 1 + 2 * j] != heads[len(v)]:
                    break
            else:
                out.append(argv)
                k = stop
                continue
            break
        if last == 0 and buf[:1] == b"*":  # not even the count's CRLF yet
            incomplete = True
        if k == 0:
            return 0, incomplete
        return sum(map(len, parts[:k])) + 2 * k, incomplete

    def _fail(self, message: str) -> None:
        self.error = "Protocol error: " + message
        self._argv = None
        self._parsed = 0

    def _parse(self, buf: bytes | bytearray, out: list[list[bytes]]) -> int:
        """Parse complete commands from ``buf``; return how many bytes were consumed."""
        pos, end = 0, len(buf)
        find = buf.find
        while pos < end:
            argv = self._argv
            if argv is None:
                if buf[pos] != 42:  # not '*': an inline command
                    nl = find(b"\n", max(pos, pos + self._scanned))
                    if nl < 0:
                        self._scanned = end - pos
                        if end - pos > MAX_INLINE_BYTES:
                            self._fail("too big inline request")
                        return pos
                    self._scanned = 0
                    if nl - pos > MAX_INLINE_BYTES:
                        self._fail("too big inline request")
                        return pos
                    line = bytes(buf[pos:nl - 1 if nl > pos and buf[nl - 1] == 13 else nl])
                    pos = nl + 1
                    args = split_inline(line)
                    if args is None:
                        self._fail("unbalanced quotes in request")
                        return pos
                    if args:  # an empty line is nothing (Redis ignores it too)
                        out.append(args)
                    continue
                nl = find(_CRLF, pos)
                if nl < 0:
                    if end - pos > MAX_INLINE_BYTES:
                        self._fail("too big mbulk count string")
                    return pos
                digits = buf[pos + 1:nl]
                count = _strict_int(digits)
                if (not self.authenticated and count is not None
                        and UNAUTH_MAX_MULTIBULK < count <= _REDIS_MAX_MULTIBULK):
                    self._fail("unauthenticated multibulk length")
                    return pos
                if count is None or count > self.max_multibulk:
                    self._fail("invalid multibulk length")
                    return pos
                pos = nl + 2
                if count <= 0:  # "*0" and "*-1" are nothing, as in Redis
                    continue
                # A list grows as its elements come: a declared 1M elements cost nothing yet.
                argv = self._argv = []
                self._left = count
                self._bulk = -1
                self._declared = 0
                self._parsed = 0
            # Inside a multibulk: the bulks. The hot loop, on locals: headers are checked
            # inline (a call per bulk cost ~0.25 us, a tenth of parsing a SET).
            pos = self._bulks(buf, pos, end, argv, out)
            if self._argv is not None or self.error is not None:
                return pos
        return pos


    def _bulks(self, buf: bytes | bytearray, pos: int, end: int, argv: list[bytes],
               out: list[list[bytes]]) -> int:
        """Read the bulks of the multibulk ``argv``; return the position reached. On return
        ``self._argv`` is None if the command completed (it is then in ``out``)."""
        find = buf.find
        copy = type(buf) is not bytes  # slices of a bytearray are bytearrays
        bulk, left, parsed = self._bulk, self._left, self._parsed
        max_bulk = self.max_bulk if self.authenticated else min(self.max_bulk, UNAUTH_MAX_BULK)
        while True:
            if bulk < 0:
                nl = find(_CRLF, pos)
                if nl < 0:
                    if end - pos > MAX_INLINE_BYTES:
                        self._fail("too big bulk count string")
                    break
                if buf[pos] != 36:  # '$'
                    self._fail(f"expected '$', got '{chr(buf[pos])}'")
                    break
                digits = buf[pos + 1:nl]
                if digits.isdigit() and nl - pos < 12 and (digits[0] != 48 or nl - pos == 2):
                    bulk = int(digits)  # at most 10 digits, no sign, no leading zero
                else:
                    n = _strict_int(digits)
                    bulk = -1 if n is None else n
                if bulk < 0 or bulk > max_bulk:
                    self._fail("unauthenticated bulk length"
                               if not self.authenticated and UNAUTH_MAX_BULK < bulk <= _REDIS_MAX_BULK
                               else "invalid bulk length")
                    break
                self._declared += bulk + ARG_OVERHEAD
                if self._declared > MAX_COMMAND_BYTES:
                    self._fail(f"command of more than {MAX_COMMAND_BYTES} bytes")
                    break
                pos = nl + 2
            stop = pos + bulk
            if end < stop + 2:
                break
            if buf[stop:stop + 2] != _CRLF:
                self._fail("expected CRLF after bulk string")
                break
            # Without copy, buf is bytes and so is its slice (a type checker cannot tell).
            argv.append(bytes(buf[pos:stop]) if copy else buf[pos:stop])  # type: ignore[arg-type]
            parsed += bulk + _OBJECT_BYTES
            pos = stop + 2
            bulk = -1
            left -= 1
            if not left:
                out.append(argv)
                self._argv = None
                parsed = 0
                break
            if pos >= end:
                break
        self._bulk, self._left, self._parsed = bulk, left, parsed
        return pos


# Longest read the hiredis path takes (the RESP front reads 64 KiB, plus a short tail kept from
# the read before): far below MAX_COMMAND_BYTES, so no command in it can pass a limit.
_HIREDIS_READ = 1024 * 1024
# The hiredis path costs more per read than the split (~1.5 us more here, loaded), and less per
# command: it pays from about 8 commands in a read (bench/studies/resp_path.py measured 1, 2,
# 4 and 8 pipelined SETs and GETs), counted as the "CRLF *" in it (a guess: either path is exact).
_HIREDIS_COMMANDS = 8
_BIG_COUNT = re.compile(rb"\*[0-9]{7}").search
# A bytes object's memory beyond its data (CPython: 33 bytes, and the list's 8-byte slot).
_OBJECT_BYTES = 41
# The fast path's tables: the canonical header of every short bulk, and of small multibulks.
_SHORT = 4096
# An incomplete command this short is kept as bytes and copied once more with the next read
# (bytes keep the fast path); a longer one gathers in a bytearray (no copy per read).
_SHORT_TAIL = 16 * 1024
_HEADS = [b"$%d" % n for n in range(_SHORT)]
_COUNTS = {b"*%d" % n: n for n in range(1, 1025)}


def _strict_int(digits: bytes | bytearray) -> int | None:
    """Redis's string2ll: an optional '-', digits, no leading zero, no '+' or blanks."""
    neg = digits[:1] == b"-"
    body = digits[1:] if neg else digits
    if not body or len(body) > 19 or not body.isdigit() or (body[0] == 48 and len(body) > 1):
        return None
    n = int(body)
    return -n if neg else n


# -- inline commands: sdssplitargs ----------------------------------------------------------------

_BLANKS = frozenset(b" \t\n\v\f\r")  # isspace(3) in the C locale
_ENDS_WORD = frozenset(b" \n\r\t")  # ends an unquoted argument (not \v or \f: sdssplitargs)
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 0x0A, ord("r"): 0x0D, ord("t"): 0x09, ord("b"): 0x08, ord("a"): 0x07}


def split_inline(line: bytes) -> list[bytes] | None:
    """Split one inline command line as Redis does (sdssplitargs); None for unbalanced quotes.

    In double quotes ``\\xHH`` is a byte, ``\\n \\r \\t \\b \\a`` control characters and any
    other escaped character itself; in single quotes only ``\\'`` is an escape. A closing quote
    must be followed by a blank or the end. The C code stops at a NUL byte: so does this.
    """
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    if b'"' not in line and b"'" not in line and b"\v" not in line and b"\f" not in line:
        # The common case: bytes.split() splits on the same six blanks. \v and \f take the
        # long way: between arguments they are blanks, inside one they are not (sdssplitargs
        # ends a word only at space, \t, \n, \r), so "a\vb" is one argument (redis-server).
        return line.split()
    n, i = len(line), 0
    args: list[bytes] = []
    while True:
        while i < n and line[i] in _BLANKS:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        i = _read_arg(line, i, current)
        if i < 0:
            return None
        args.append(bytes(current))


def _read_arg(s: bytes, i: int, current: bytearray) -> int:
    """Read the argument that starts at ``s[i]`` into ``current``; return the index after it,
    or -1 for an unbalanced quote (split_inline's rules)."""
    n = len(s)
    quote = 0
    while True:
        c = s[i] if i < n else 0
        if quote == 0x22:  # "
            if i >= n:
                return -1
            if c == 0x5C and i + 3 < n and s[i + 1] == 0x78 and s[i + 2] in _HEX and s[i + 3] in _HEX:
                current.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
            if c == 0x5C and i + 1 < n:
                i += 1
                current.append(_ESCAPES.get(s[i], s[i]))
            elif c == 0x22:
                if i + 1 < n and s[i + 1] not in _BLANKS:
                    return -1
                return i + 1
            else:
                current.append(c)
        elif quote == 0x27:  # '
            if i >= n:
                return -1
            if c == 0x5C and i + 1 < n and s[i + 1] == 0x27:
                i += 1
                current.append(0x27)
            elif c == 0x27:
                if i + 1 < n and s[i + 1] not in _BLANKS:
                    return -1
                return i + 1
            else:
                current.append(c)
        elif i >= n or c in _ENDS_WORD:
            return i
        elif c == 0x22 or c == 0x27:
            quote = c
        else:
            current.append(c)
        i += 1

