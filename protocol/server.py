"""The server's side of the ZeroMQ wire: client frames to typed requests, replies to bytes.

Two kinds of failure, kept apart (as in h11):

* the peer sent something bad: ``decode_message`` returns an ``Error`` value (or ``Error`` items
  inside a ``Message``); it never raises for any input, so the front actor answers with an error
  reply and keeps serving;
* we have a bug (a reply value msgpack cannot encode): ``encode_reply`` raises, loudly.

Validation is per request: an invalid request inside a batch becomes an ``Error`` item in its
place and the other requests of the batch still run. Only a body that is not a well-formed
message as a whole (not msgpack, wrong shape, too big) is rejected as one ``Error``. The limits
(wire.py) bound what one frame can cost before any command runs; the object counts are what keep
decoding linear in the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from .commands import COMMANDS, FRONT_COMMANDS, NUM_DBS
from .errors import ARGTYPE, ARITY, ERR, EXECABORT, NOPROTO, PROTO, TOOBIG, UNKNOWNCMD, Error
from .wire import (
    MAX_ARGS,
    MAX_BATCH_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CONTAINERS,
    MAX_MESSAGE_OBJECTS,
    REPLY_ERROR as _ERROR,
    REPLY_VALUE as _OK,
)

__all__ = [
    "Request",
    "Message",
    "AtomicMessage",
    "decode_message",
    "wire_reply",
    "encode_reply",
    "encode_batch_reply",
]

# Every msgpack object takes at least one byte, so a body of at most _UNCOUNTED_BYTES cannot pass
# either object count: it is decoded without the counting hooks (~50 ns per array), and ordinary
# messages pay nothing for these limits.
_UNCOUNTED_BYTES = min(MAX_MESSAGE_OBJECTS, MAX_MESSAGE_CONTAINERS)

# Explicit msgpack limits, checked by the unpacker against the *declared* length before it
# allocates, so a 5-byte header claiming a 4 GiB string costs nothing. Strings and binaries cannot
# be longer than the frame; the array limit is the larger of a request (name + args) and a batch.
# Maps are never valid in a request, but a map argument is reported as ARGTYPE (the request is
# well-formed msgpack, only the argument is wrong), so maps get the same bound as arrays.
# strict_map_key=True (str/bin keys only, as msgpack's default): keys with attacker-chosen hashes
# (ints) could otherwise flood a dict's buckets; such a map is a PROTO error.
# Nesting depth is bounded by msgpack's own parser stack (1024 levels -> StackError -> PROTO), and
# the total by the counts above.
# Ext values are never valid in a request (ARGTYPE), yet building one costs a Python-level call:
# msgpack.ExtType ~0.5 us, msgpack.Timestamp ~0.3 us, against ~0.03 us for a bytes, so a frame of
# 3-byte exts held the front ~2.7 s even within MAX_MESSAGE_OBJECTS. So in a counted frame
# (_COUNTED_OPTIONS) every ext but a timestamp becomes one shared placeholder (~0.08 us, nothing
# allocated), and a timestamp a float (timestamp=1, built in C): its ARGTYPE message then says
# "got float". Small frames keep msgpack's defaults: 64 KiB of exts costs at most ~10 ms, and the
# timestamp option alone costs ~15 ns per call, 2% of decoding a SET.


class _ExtPlaceholder:
    """Stands for any ext value in a decoded request: only its type is ever reported."""

    __slots__ = ()


_EXT = _ExtPlaceholder()


def _ext_placeholder(code: int, data: bytes) -> _ExtPlaceholder:
    return _EXT


_UNPACK_OPTIONS: dict[str, Any] = {
    "raw": False,  # msgpack str -> Python str (strict UTF-8), bin -> bytes
    "use_list": True,  # lists are allocated zeroed lazily (calloc), tuples are touched at once
    "strict_map_key": True,
    "max_str_len": MAX_MESSAGE_BYTES,
    "max_bin_len": MAX_MESSAGE_BYTES,
    "max_ext_len": MAX_MESSAGE_BYTES,
    "max_array_len": max(MAX_ARGS + 1, MAX_BATCH_LENGTH),
    "max_map_len": MAX_ARGS,
}
_COUNTED_OPTIONS: dict[str, Any] = {**_UNPACK_OPTIONS, "ext_hook": _ext_placeholder, "timestamp": 1}
# Longest command name echoed back in an UNKNOWNCMD message (Redis truncates at 128).
_MAX_NAME_IN_MESSAGE = 64


# --- Values ----------------------------------------------------------------------------------
class Request(NamedTuple):
    """A validated request: ``name`` is upper-case and in COMMANDS, every arg is bytes."""

    name: str
    args: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded client frame: a single request, or a batch (pipeline) of them, and the db
    its header names (protocol 2: the db travels with every message; the node keeps none).

    ``items`` are in the client's order; an invalid request is an ``Error`` in its place. A single
    request gives ``is_batch=False`` and exactly one item.
    """

    is_batch: bool
    items: tuple[Request | Error, ...]
    db: int = 0
    # The RESP front's field: 2 or 3 asks for the replies as RESP2 or RESP3 bytes, made once
    # in the log actor (node/log/replies.py); 0 (absent) for protocol 2's msgpack replies.
    resp: int = 0


@dataclass(frozen=True, slots=True)
class AtomicMessage(Message):
    """A transaction (header ``"multi": true``): a batch the log actor runs in one go, or not at
    all if the client's watched keys changed. ``watched``: the client WATCHed keys for it, so a
    watch state the node no longer holds (evicted, forgotten) aborts it instead of running
    unguarded. Its items are all valid requests: the decoder refuses the whole message
    (EXECABORT) otherwise, as Redis discards a transaction with a queueing error."""

    watched: bool = False


# --- Decoding requests -----------------------------------------------------------------------
_unpackb = msgpack.unpackb
# A request is built on every call of the hot path: tuple.__new__ skips the Python-level
# NamedTuple.__new__ (~3x faster) and is safe because we always pass exactly two fields.
_tuple_new = tuple.__new__
# Name lookup: exact upper-case and lower-case spellings hit the dict directly; mixed case falls
# back to .upper() (ASCII names only: "ſet".upper() == "SET", which Redis would not accept).
_LOOKUP = {**COMMANDS, **{name.lower(): spec for name, spec in COMMANDS.items()}}
_object_new = object.__new__
# (mypy sees the fields as instance attributes, not the slot descriptors they are on the class.)
_set_is_batch = Message.is_batch.__set__  # type: ignore[attr-defined, misc]
_set_items = Message.items.__set__  # type: ignore[attr-defined, misc]
_set_db = Message.db.__set__  # type: ignore[attr-defined, misc]
_set_resp = Message.resp.__set__  # type: ignore[attr-defined, misc]


def _new_message(is_batch: bool, items: tuple[Request | Error, ...], db: int, resp: int = 0) -> Message:
    """``Message(is_batch, items)`` at ~60% of the cost, for the hot path.

    A frozen dataclass's generated __init__ goes through object.__setattr__ per field; the slot
    descriptors set the same fields directly. Same object, same immutability afterwards.
    """
    message = _object_new(Message)
    _set_is_batch(message, is_batch)
    _set_items(message, items)
    _set_db(message, db)
    _set_resp(message, resp)
    return message


# msgpack names of the Python types the unpacker produces, for ARGTYPE messages.
_WIRE_TYPE_NAMES = {
    type(None): "nil",
    bool: "bool",
    float: "float",
    list: "array",
    dict: "map",
    msgpack.ExtType: "ext",
    msgpack.Timestamp: "ext",
    _ExtPlaceholder: "ext",
}


def decode_message(body: bytes, checked: bool = False) -> Message | Error:
    """Decode and validate one client frame. Never raises for any ``body``.

    Returns an ``Error`` if the frame as a whole is rejected (size, object counts, msgpack, shape,
    batch length), otherwise a ``Message`` whose invalid requests are ``Error`` items in place.
    ``checked``: the frame comes from a sender that checked each request's name and arity
    against the same table and sends the name as its key (the RESP front): a request named so is
    only looked up (``_decode_checked``); any other gets the full check.
    """
    size = len(body)
    try:
        if size <= _UNCOUNTED_BYTES:  # one comparison on the hot path
            obj = _unpackb(body, **_UNPACK_OPTIONS)
        elif size > MAX_MESSAGE_BYTES:
            return Error(TOOBIG, f"message of {size} bytes exceeds the limit of "
                                 f"{MAX_MESSAGE_BYTES} bytes")
        else:
            obj = _unpack_counted(body)
    except _TooManyObjects as too_many:  # each clause its own name: one type per name
        return Error(TOOBIG, str(too_many))
    except msgpack.ExtraData:
        return Error(PROTO, "trailing bytes after the message")
    except ValueError as exc:  # also FormatError, StackError, UnicodeDecodeError (subclasses)
        # msgpack checks a declared array length before reading the elements; it reports it only
        # in the message text. If that wording ever changes this degrades to PROTO (tested).
        if "max_array_len" in str(exc):
            return Error(TOOBIG, f"array too long: {exc}")
        return Error(PROTO, f"malformed msgpack: {type(exc).__name__}: {exc}"[:200])
    except Exception as other:  # "other exceptions can be raised during unpacking" (msgpack docs)
        return Error(PROTO, f"malformed msgpack: {type(other).__name__}")

    if type(obj) is not list:
        return Error(PROTO, f"a message must be an array, got {_wire_type(obj)}")
    if len(obj) != 2 or type(obj[0]) is not dict:
        if obj and type(obj[0]) in (str, bytes, list):
            return _NOT_PROTOCOL_2
        return Error(PROTO, "a message is an array [header, request or batch]")
    header, obj = obj
    db = _header_db(header) if header else 0
    if type(db) is Error:
        return db
    resp = header.get("resp", 0) if header else 0
    if resp != 0 and (type(resp) is not int or resp not in (2, 3)):
        return Error(PROTO, "header field resp must be 2 or 3")
    if header and (len(header) > 1 or "db" not in header) and ("multi" in header or "watched" in header):
        return _decode_atomic(header, obj, db, checked)
    if type(obj) is not list:
        return Error(PROTO, f"a request must be an array, got {_wire_type(obj)}")
    if not obj:
        return Error(PROTO, "empty request")
    decode = _decode_checked if checked else _decode_request
    if type(obj[0]) is not list:
        return _new_message(False, (decode(obj, False),), db, resp)

    # A batch: an array of requests.
    if len(obj) > MAX_BATCH_LENGTH:
        return Error(TOOBIG, f"batch of {len(obj)} requests exceeds the limit of "
                             f"{MAX_BATCH_LENGTH}")
    for item in obj:
        if type(item) is not list:
            return Error(PROTO, f"a batch must be an array of requests, got {_wire_type(item)} "
                                f"in it")
    if checked:
        return _new_message(True, _decode_checked_batch(obj), db, resp)
    return _new_message(True, tuple([decode(item, True) for item in obj]), db, resp)


_NOT_PROTOCOL_2 = Error(NOPROTO, "this node speaks protocol 2: a message is an array [header, "
                                 "request or batch], the header a map such as {\"db\": 0} (see "
                                 "docs/protocol.md); protocol 1 messages are not accepted")
# The header's fields. A field it does not know is refused, not ignored: a misspelt "DB" must not
# run a write in db 0 (the very bug protocol 2 exists to remove).
HEADER_FIELDS = frozenset({"db", "multi", "watched", "resp"})
# Inside a transaction these are refused (EXECABORT): WATCH must come before it (Redis: "WATCH
# inside MULTI is not allowed"), and the header, not a command, marks the block.
_NOT_IN_MULTI = frozenset({"WATCH"})


def _header_db(header: dict[Any, Any]) -> int | Error:
    if not header.keys() <= HEADER_FIELDS:  # one C call: every message of the RESP front has one
        unknown = [k for k in header if k not in HEADER_FIELDS]
        shown = ", ".join(repr(k) for k in unknown[:3])
        return Error(PROTO, f"unknown header field(s) {shown}; known: db, multi, watched, resp")
    db = header.get("db", 0)
    if type(db) is not int:
        return Error(PROTO, f"header field db must be an integer, got {_wire_type(db)}")
    if not 0 <= db < NUM_DBS:
        return Error(ERR, "DB index is out of range")
    return db


def _decode_atomic(header: dict[Any, Any], obj: Any, db: int, checked: bool) -> AtomicMessage | Error:
    """A transaction: ``obj`` one request or a batch (bounded as any batch). Any invalid
    request refuses the whole block with EXECABORT, naming the first error. ``checked``: as
    in ``decode_message``."""
    multi, watched = header.get("multi", False), header.get("watched", False)
    if type(multi) is not bool or type(watched) is not bool:
        return Error(PROTO, "header fields multi and watched must be booleans")
    if not multi:
        return Error(PROTO, "header field watched is only valid with multi: true")
    if type(obj) is not list or not obj:
        return Error(PROTO, "a transaction is a request or a batch of requests")
    if type(obj[0]) is not list:
        obj = [obj]
    if len(obj) > MAX_BATCH_LENGTH:
        return Error(TOOBIG, f"transaction of {len(obj)} requests exceeds the limit of "
                             f"{MAX_BATCH_LENGTH}")
    items = []
    decode = _decode_checked if checked else _decode_request
    for i, item in enumerate(obj, 1):
        req = (decode(item, True) if type(item) is list
               else Error(PROTO, f"a batch must be an array of requests, got {_wire_type(item)} in it"))
        if type(req) is not Error and req.name in _NOT_IN_MULTI:
            req = Error(ERR, f"{req.name} inside MULTI is not allowed")
        if type(req) is Error:
            return Error(EXECABORT, "Transaction discarded because of previous errors: "
                                    f"request {i}: {req.code} {req.message}"[:300])
        items.append(req)
    return AtomicMessage(True, tuple(items), db, watched=watched)


class _TooManyObjects(Exception):
    """Raised by the unpacker's hooks to stop decoding a frame that passed an object count."""


_TOO_MANY_CONTAINERS = (
    f"message has more than {MAX_MESSAGE_CONTAINERS} arrays and maps (a request is one array of "
    f"scalars, a batch one array of at most {MAX_BATCH_LENGTH} requests)")
_TOO_MANY_OBJECTS = f"message has more than {MAX_MESSAGE_OBJECTS} msgpack objects"


def _unpack_counted(body: bytes) -> Any:
    """``unpackb`` that stops as soon as the frame passes MAX_MESSAGE_CONTAINERS or
    MAX_MESSAGE_OBJECTS, by raising ``_TooManyObjects``.

    msgpack calls a hook as each array or map is complete (innermost first) and lets the hook's
    exception through, freeing what it built. A container's elements are counted when it is
    complete, so at most one container's worth (MAX_ARGS + 1) is built past the count.
    """
    containers = 0
    objects = 1  # the message itself; every container adds its elements

    def on_array(items: list[Any]) -> list[Any]:
        nonlocal containers, objects
        containers += 1
        objects += len(items)
        if containers > MAX_MESSAGE_CONTAINERS or objects > MAX_MESSAGE_OBJECTS:
            raise _TooManyObjects(_TOO_MANY_CONTAINERS if containers > MAX_MESSAGE_CONTAINERS
                                  else _TOO_MANY_OBJECTS)
        return items

    def on_map(items: dict[Any, Any]) -> dict[Any, Any]:
        nonlocal containers, objects
        containers += 1
        objects += 2 * len(items)
        if containers > MAX_MESSAGE_CONTAINERS or objects > MAX_MESSAGE_OBJECTS:
            raise _TooManyObjects(_TOO_MANY_CONTAINERS if containers > MAX_MESSAGE_CONTAINERS
                                  else _TOO_MANY_OBJECTS)
        return items

    return _unpackb(body, list_hook=on_array, object_hook=on_map, **_COUNTED_OPTIONS)


def _decode_request(req: list[Any], in_batch: bool) -> Request | Error:
    """Validate one request (a non-array or empty ``req`` never gets here unless in a batch)."""
    argc = len(req)
    if not argc:
        return Error(PROTO, "empty request")
    name = req[0]
    if type(name) is str:
        spec = _LOOKUP.get(name)
    elif type(name) is bytes:
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            name = name.decode("ascii", "backslashreplace")
        spec = _LOOKUP.get(name)
    elif in_batch and type(name) is list:
        return Error(PROTO, "nesting too deep: a batch item must be a request, not a batch")
    else:
        return Error(ARGTYPE, f"command name must be str or bin, got {_wire_type(name)}")
    if spec is None:
        spec = COMMANDS.get(name.upper()) if name.isascii() else None
        if spec is None:
            shown = name if len(name) <= _MAX_NAME_IN_MESSAGE else name[:_MAX_NAME_IN_MESSAGE] + "..."
            return Error(UNKNOWNCMD, f"unknown command '{shown}'")

    # The one arity rule (commands.py). The method call costs ~17 ns more than the rule inlined
    # here, ~1.5% of decoding a small SET: not worth a second copy of the rule.
    if not spec.accepts(argc):
        return Error(ARITY, f"wrong number of arguments for '{spec.name.lower()}' command")
    # No MAX_ARGS check here: the unpacker's max_array_len already refused longer arrays.

    args = req[1:]
    # Fast path: clients that send bin args (the common case) cost one type check per arg.
    for arg in args:
        if type(arg) is not bytes:
            normalised = _normalise_args(args)
            if type(normalised) is Error:
                return normalised
            args = normalised
            break
    return _tuple_new(Request, (spec.name, tuple(args)))


def _decode_checked(req: list[Any], in_batch: bool) -> Request | Error:
    """A request its sender checked (``decode_message``'s ``checked``): a name that is a key of
    COMMANDS (or of FRONT_COMMANDS, which only such a sender sends), as the sender sends it, is
    taken with the arguments as they are (bytes from the
    RESP front's parser); the name and arity checks are the sender's. Halves the decoding of a
    pipelined SET (~1.0 to ~0.5 us here, loaded). Anything else gets ``_decode_request``."""
    name = req[0] if req else None
    if name.__class__ is str and (name in COMMANDS or name in FRONT_COMMANDS):
        args = req[1:]
        try:
            _join(args)  # every argument bytes (one C call; a str or an int takes the long way)
        except TypeError:
            return _decode_request(req, in_batch)
        return _tuple_new(Request, (name, tuple(args)))
    return _decode_request(req, in_batch)


def _decode_checked_batch(obj: list[list[Any]]) -> tuple[Request | Error, ...]:
    """``_decode_checked`` of every request of a batch, its fast path inline: one Python call
    per request less, ~10% of decoding a pipelined SET here. Same rule, same results."""
    items: list[Request | Error] = []
    append = items.append
    commands, join, new, request = COMMANDS, _join, _tuple_new, Request
    for req in obj:
        name = req[0] if req else None
        if name.__class__ is str and name in commands:
            args = req[1:]
            try:
                join(args)
            except TypeError:
                append(_decode_request(req, True))
                continue
            append(new(request, (name, tuple(args))))
        else:
            append(_decode_checked(req, True))  # a FRONT_COMMANDS name, or the full check
    return tuple(items)


_join = b"".join


def _normalise_args(args: list[Any]) -> list[bytes] | Error:
    """Slow path: str -> UTF-8 bytes, int -> ASCII decimal; anything else is ARGTYPE."""
    out: list[bytes] = []
    append = out.append
    for arg in args:
        t = type(arg)
        if t is bytes:
            append(arg)
        elif t is str:
            append(arg.encode())  # always valid: the unpacker decoded it as strict UTF-8
        elif t is int:  # bool is a subclass of int but `type(True) is bool`, so it is refused
            append(b"%d" % arg)
        else:
            return Error(ARGTYPE, f"argument {len(out) + 1} must be str, bin or int, "
                                  f"got {_wire_type(arg)}")
    return out


def _wire_type(value: object) -> str:
    """The msgpack type name of a decoded value, for error messages."""
    t = type(value)
    if t is str:
        return "str"
    if t is bytes:
        return "bin"
    if t is int:
        return "int"
    return _WIRE_TYPE_NAMES.get(t, t.__name__)


# --- Encoding replies ------------------------------------------------------------------------
def wire_reply(value: Any) -> list[Any]:
    """The msgpack-ready form of one reply: ``[0, value]`` or ``[1, code, message]``.

    ``value`` is None, int, bytes, str, float, bool, list, dict (nested) or an ``Error``. An
    ``Error`` is only meaningful at the top of a reply; nested inside a list it cannot be encoded.
    """
    if type(value) is Error:
        return [_ERROR, value.code, value.message]
    return [_OK, value]


def encode_reply(value: Any) -> bytes:
    """Encode one reply. Raises TypeError for a value msgpack cannot encode (a server bug)."""
    if type(value) is Error:
        return msgpack.packb([_ERROR, value.code, value.message])
    return msgpack.packb([_OK, value])


def encode_batch_reply(values: Sequence[Any]) -> bytes:
    """Encode the replies to a batch, in request order, as one array of wire replies."""
    return msgpack.packb([wire_reply(v) for v in values])
