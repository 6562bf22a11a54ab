"""RESP, the Redis wire protocol: a sans-I/O codec for both ends.

Design
------
No socket, no zmq, nothing from ``node``: bytes in, events out, so it is tested with tables.

Server side (the RESP front, node/fronts/resp_front.py):

* ``RequestParser.feed(data)`` returns the commands that are complete, each an argv list of
  bytes. Both forms Redis accepts: multibulk (``*N\\r\\n$len\\r\\n...``, what client libraries
  send) and inline (one line split like Redis's ``sdssplitargs``, what telnet and ``redis-cli
  --pipe`` of a text file send). Lines end at ``\\n``, an optional ``\\r`` before it dropped.
* Limits are checked on the *declared* lengths, before anything is buffered: a bulk over
  ``MAX_BULK_BYTES`` (wire.MAX_MESSAGE_BYTES, 64 MiB: a bigger argument could not travel to the
  log actor anyway), a multibulk count over ``MAX_MULTIBULK`` (wire.MAX_ARGS + the name), one
  command's declared bulks together over ``MAX_COMMAND_BYTES``, a line (inline command or
  length header) over ``MAX_INLINE_BYTES`` (64 KiB, Redis's PROTO_INLINE_MAX_SIZE). Before AUTH
  (``authenticated = False``) Redis's tighter limits hold: at most 10 multibulk elements and
  16 KiB per bulk, so a client without the password cannot make the node buffer much.
* The peer's garbage is a value, not an exception: the first protocol error sets ``error`` to
  Redis's message (``"Protocol error: invalid bulk length"``...). The commands complete before
  it are still returned (Redis runs them too), and the parser takes nothing more: the caller
  replies ``-ERR <error>`` and closes the connection, as Redis does.
* Stricter than Redis in one place: the two bytes after a bulk must be ``\\r\\n`` (Redis skips
  them unread); anything else is "Protocol error: expected CRLF after bulk string", not a
  silently shifted stream.
* The parser is pure Python, with a fast path: a read that starts with whole multibulks of
  short bulks is split at every CRLF once (in C) and each ``$len`` header checked against the
  length of the part after it; the general parser takes over at the first command that does
  not fit (``_parse_split``). Measured (bench/studies/resp_parser.py, pipelined SETs in 16 KiB reads):
  ~0.6-0.9 us per command, against ~2.4 us without the fast path and ~0.12 us for hiredis's C
  ``Reader``. hiredis is not used: it buffers whatever a header declares and cannot tell where a
  command starts in its buffer, so the limits above could not be checked before buffering, and
  it has no inline form. docs/resp.md has the figures.

Replies (server side): ``encode_value`` writes aofnode's reply values (str status, bytes bulk,
int, None, list, dict, float, bool) as RESP2 or RESP3; ``error_line`` maps aofnode's error
codes to the prefixes Redis clients know; ``encode_command_reply`` adds the per-command shapes
Redis has (INFO is a text, HGETALL a map in RESP3); ``encode_message_reply`` turns the log
actor's msgpack reply to one message into exactly as many RESP replies as it had requests.

Client side (bench/, tests): ``encode_command`` and ``ReplyParser`` (RESP2 and RESP3 replies).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from aofnode.protocol import errors, wire

__all__ = ["MAX_INLINE_BYTES", "MAX_BULK_BYTES", "MAX_MULTIBULK", "MAX_COMMAND_BYTES", "ARG_OVERHEAD",
           "UNAUTH_MAX_MULTIBULK", "UNAUTH_MAX_BULK", "RequestParser", "split_inline",
           "encode_value", "encode_command_reply", "encode_message_reply", "error_line",
           "info_text",
           "RespError", "encode_command", "ReplyParser"]

# Longest inline command or length header: Redis's PROTO_INLINE_MAX_SIZE.
MAX_INLINE_BYTES = 64 * 1024
# Longest bulk string: what one msgpack message to the log actor may hold (Redis: 512 MiB).
MAX_BULK_BYTES = wire.MAX_MESSAGE_BYTES
# Elements of one multibulk: the name and wire.MAX_ARGS arguments (Redis: 2^31 - 1).
MAX_MULTIBULK = wire.MAX_ARGS + 1
# One command as msgpack: it travels to the log actor as one message, which may not pass
# wire.MAX_MESSAGE_BYTES. Each bulk counts its bytes plus ``ARG_OVERHEAD`` (msgpack's bin
# header is at most 5 bytes); 1 KiB is left for the message's own header and arrays.
ARG_OVERHEAD = 5
MAX_COMMAND_BYTES = wire.MAX_MESSAGE_BYTES - 1024
# Before AUTH, when a password is set: Redis 7's limits for unauthenticated clients.
UNAUTH_MAX_MULTIBULK = 10
UNAUTH_MAX_BULK = 16 * 1024

_CRLF = b"\r\n"
_unpackb = msgpack.unpackb


class RequestParser:
    """Incremental request parser: ``feed`` bytes, get the complete argv lists back.

    After a protocol error ``error`` holds Redis's message and ``feed`` returns nothing more.
    State between calls: at most one incomplete command (its parsed arguments and the bytes
    of the rest, which the limits bound).
    """

    __slots__ = ("_buf", "_argv", "_left", "_bulk", "_scanned", "_declared", "_parsed", "error",
                 "authenticated", "max_bulk", "max_multibulk")

    def __init__(self, *, authenticated: bool = True, max_bulk: int = MAX_BULK_BYTES,
                 max_multibulk: int = MAX_MULTIBULK) -> None:
        self._buf = b""  # unparsed bytes (bytes, or a bytearray while a long part gathers)
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
            pos, incomplete = self._parse_split(buf, out)
            if incomplete and len(buf) - pos <= _SHORT_TAIL:
                tail = buf[pos:]
                # Only if what has come of it is valid so far (a header may already be wrong):
                # the general parser on a throwaway state says, at the cost of one short tail.
                probe = RequestParser(max_bulk=self.max_bulk, max_multibulk=self.max_multibulk)
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

    def _parse_split(self, buf: bytes, out: list) -> tuple[int, bool]:
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

    def _parse(self, buf, out: list) -> int:
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
                if count is None or count > self.max_multibulk:
                    self._fail("invalid multibulk length")
                    return pos
                pos = nl + 2
                if count <= 0:  # "*0" and "*-1" are nothing, as in Redis
                    continue
                if not self.authenticated and count > UNAUTH_MAX_MULTIBULK:
                    self._fail("unauthenticated multibulk length")
                    return pos
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


    def _bulks(self, buf, pos: int, end: int, argv: list, out: list) -> int:
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
                    bulk = _strict_int(digits)
                    if bulk is None:
                        bulk = -1
                if bulk < 0 or bulk > max_bulk:
                    self._fail("unauthenticated bulk length" if 0 <= bulk <= self.max_bulk
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
            argv.append(bytes(buf[pos:stop]) if copy else buf[pos:stop])
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


# A bytes object's memory beyond its data (CPython: 33 bytes, and the list's 8-byte slot).
_OBJECT_BYTES = 41
# The fast path's tables: the canonical header of every short bulk, and of small multibulks.
_SHORT = 4096
# An incomplete command this short is kept as bytes and copied once more with the next read
# (bytes keep the fast path); a longer one gathers in a bytearray (no copy per read).
_SHORT_TAIL = 16 * 1024
_HEADS = [b"$%d" % n for n in range(_SHORT)]
_COUNTS = {b"*%d" % n: n for n in range(1, 1025)}


def _strict_int(digits) -> int | None:
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
    s, n, i = line, len(line), 0
    args: list[bytes] = []
    while True:
        while i < n and s[i] in _BLANKS:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0
        while True:
            c = s[i] if i < n else 0
            if quote == 0x22:  # "
                if i >= n:
                    return None
                if c == 0x5C and i + 3 < n and s[i + 1] == 0x78 and s[i + 2] in _HEX and s[i + 3] in _HEX:
                    current.append(int(s[i + 2:i + 4], 16))
                    i += 4
                    continue
                if c == 0x5C and i + 1 < n:
                    i += 1
                    current.append(_ESCAPES.get(s[i], s[i]))
                elif c == 0x22:
                    if i + 1 < n and s[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            elif quote == 0x27:  # '
                if i >= n:
                    return None
                if c == 0x5C and i + 1 < n and s[i + 1] == 0x27:
                    i += 1
                    current.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and s[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            elif i >= n or c in _ENDS_WORD:
                break
            elif c == 0x22 or c == 0x27:
                quote = c
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


# -- replies --------------------------------------------------------------------------------------

# aofnode error codes Redis clients know by the same name; the rest become ERR (see error_line).
_KEPT_CODES = frozenset((errors.ERR, errors.WRONGTYPE, errors.LOADING, errors.BUSY, errors.MISCONF,
                         errors.OOM, errors.NOPROTO, errors.ABORTED, "NOAUTH", "WRONGPASS", "NOPERM"))


def error_line(code: str, message: str) -> bytes:
    """``-CODE message\\r\\n``. aofnode's own codes that Redis lacks (UNKNOWNCMD, ARITY, ARGTYPE,
    PROTO, TOOBIG) become ERR, whose messages already read as Redis's ("wrong number of
    arguments for 'get' command"). ABORTED is kept: it says what no Redis code says (the command
    may or may not have run). Line breaks in the message become spaces (Redis does the same)."""
    if code not in _KEPT_CODES:
        code = errors.ERR
    text = f"{code} {message}" if message else code
    if "\r" in text or "\n" in text:
        text = text.replace("\r", " ").replace("\n", " ")
    return b"-" + text.encode("utf-8", "replace") + _CRLF


def encode_value(value: Any, resp3: bool) -> bytes:
    """One reply value as RESP. str is a status (``+``), bytes a bulk, None the null bulk (RESP2)
    or ``_`` (RESP3), list an array, dict a map (RESP3) or a flat array (RESP2), float a double
    (RESP3) or a bulk (RESP2), bool a boolean (RESP3) or 1/0 (RESP2)."""
    t = type(value)
    if t is bytes:
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if t is int:
        return b":%d\r\n" % value
    if t is str:
        if "\r" in value or "\n" in value:
            value = value.replace("\r", " ").replace("\n", " ")
        return b"+" + value.encode("utf-8", "replace") + _CRLF
    if value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if t is list or t is tuple:
        return b"*%d\r\n" % len(value) + b"".join([encode_value(v, resp3) for v in value])
    if t is dict:
        parts = []
        for k, v in value.items():
            parts.append(encode_value(k.encode() if type(k) is str else k, resp3))
            parts.append(encode_value(v, resp3))
        head = b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value))
        return head + b"".join(parts)
    if t is bool:
        return (b"#t\r\n" if value else b"#f\r\n") if resp3 else (b":1\r\n" if value else b":0\r\n")
    if t is float:
        text = repr(value).encode() if value == value and abs(value) != float("inf") else (
            b"nan" if value != value else (b"inf" if value > 0 else b"-inf"))
        return b",%s\r\n" % text if resp3 else b"$%d\r\n%s\r\n" % (len(text), text)
    raise TypeError(f"no RESP form for {t.__name__}")


def info_text(sections: dict) -> bytes:
    """INFO's map of sections as Redis's text: ``# Section`` then ``field:value`` lines."""
    lines = []
    for name, fields in sections.items():
        if lines:
            lines.append("")
        lines.append("# " + str(name).capitalize())
        if type(fields) is dict:
            lines.extend(f"{k}:{_info_value(v)}" for k, v in fields.items())
        else:
            lines.append(_info_value(fields))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


def _info_value(value) -> str:
    if type(value) is dict:
        return ",".join(f"{k}={_info_value(v)}" for k, v in value.items())
    if type(value) is list:
        return ",".join(_info_value(v) for v in value)
    if type(value) is bytes:
        return value.decode("utf-8", "replace")
    return str(value)


def _pairs(flat: list) -> dict:
    return dict(zip(flat[::2], flat[1::2]))


def encode_command_reply(name: str, value: Any, resp3: bool) -> bytes:
    """The reply to command ``name`` where Redis's shape differs from aofnode's value:
    INFO is a bulk text (a verbatim ``txt`` string in RESP3), HGETALL a map in RESP3."""
    if name == "INFO" and type(value) is dict:
        text = info_text(value)
        if resp3:
            return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)
        return b"$%d\r\n%s\r\n" % (len(text), text)
    if name == "HGETALL" and resp3 and type(value) is list:
        return encode_value(_pairs(value), True)
    return encode_value(value, resp3)


def encode_message_reply(reply: bytes, count: int, names: list[str] | None, resp3: bool) -> bytes:
    """The RESP replies of one aofnode message of ``count`` requests, from its msgpack reply: a
    list of wire replies (``[0, value]`` / ``[1, CODE, message]``), or one wire error for the
    message as a whole, then given to each request. ``names`` (the requests' command names)
    is needed only where a reply has a shape of its own (``encode_command_reply``). Always
    ``count`` replies, whatever the bytes: a RESP client counts replies to stay in step."""
    try:
        wires = _unpackb(reply, raw=False, strict_map_key=False)
    except Exception:  # the log actor's bytes: never expected, never a crash
        wires = None
    if type(wires) is list and wires and type(wires[0]) is int:
        return _wire_to_resp(wires, None, resp3) * count
    if type(wires) is not list or len(wires) != count:
        return error_line(errors.ERR, "malformed reply from the log actor") * count
    if names is None:
        out = []
        for w in wires:  # the common case inline: [0, value]
            out.append(encode_value(w[1], resp3) if type(w) is list and len(w) == 2 and w[0] == 0
                       else _wire_to_resp(w, None, resp3))
        return b"".join(out)
    return b"".join([_wire_to_resp(w, n, resp3) for w, n in zip(wires, names)])


def _wire_to_resp(wire, name: str | None, resp3: bool) -> bytes:
    if type(wire) is list and wire:
        if wire[0] == 0 and len(wire) == 2:
            if name is not None:
                return encode_command_reply(name, wire[1], resp3)
            return encode_value(wire[1], resp3)
        if wire[0] == 1 and len(wire) == 3:
            return error_line(str(wire[1]), str(wire[2]))
    return error_line(errors.ERR, "malformed reply from the log actor")


# -- client side ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RespError:
    """An error reply; ``code`` is the first word of the message (ERR, WRONGTYPE...)."""

    code: str
    message: str


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, int):
        return b"%d" % a
    raise TypeError(f"RESP argument must be bytes, str or int, got {type(a).__name__}")


def encode_command(*args: Any) -> bytes:
    """One command as a multibulk."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class _Incomplete(Exception):
    pass


class ReplyParser:
    """Incremental reply parser (RESP2 and RESP3): ``feed(data)``, then ``replies()``.

    Status replies are str, bulks bytes, errors ``RespError``, nulls None, maps dict, sets
    lists, doubles float, booleans bool, verbatim strings bytes (without their ``txt:``).
    A client-side tool for trusted servers: no limits.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        self._buf += data

    def replies(self) -> list[Any]:
        out = []
        while True:
            start = self._pos
            try:
                value = self._parse()
            except _Incomplete:
                self._pos = start
                break
            out.append(value)
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        return out

    def _line(self) -> bytes:
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            raise _Incomplete
        line = bytes(self._buf[self._pos:end])
        self._pos = end + 2
        return line

    def _blob(self, n: int) -> bytes:
        if len(self._buf) < self._pos + n + 2:
            raise _Incomplete
        value = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n + 2
        return value

    def _parse(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            text = rest.decode(errors="replace")
            return RespError(text.split(" ", 1)[0], text)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._blob(n)
        if kind in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self._parse() for _ in range(n)]
        if kind == b"%":
            n = int(rest)
            out = {}
            for _ in range(n):
                k = self._parse()
                out[k] = self._parse()
            return out
        if kind == b"_":
            return None
        if kind == b",":
            return float(rest)
        if kind == b"#":
            return rest == b"t"
        if kind == b"(":
            return int(rest)
        if kind == b"=":
            return self._blob(int(rest))[4:]
        if kind == b"!":
            text = self._blob(int(rest)).decode(errors="replace")
            return RespError(text.split(" ", 1)[0], text)
        raise ValueError(f"not a RESP reply: {line[:40]!r}")
