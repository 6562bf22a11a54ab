"""Error codes and error values, shared by both protocols and both ends of each.

An error reply is a value, ``Error(code, message)``, never an exception: the peer's garbage and
a command's failure are answered and the connection goes on serving (as in h11). ``code`` is the
first word of the reply, as in Redis ("-WRONGTYPE ..."); docs/protocol.md has the table, and the
RESP reply encoder maps the codes Redis lacks to ERR. ``ProtocolError`` is the one exception: a
client raises it when the server's reply is not a well-formed aofnode reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

__all__ = [
    "ERR",
    "WRONGTYPE",
    "PROTO",
    "TOOBIG",
    "UNKNOWNCMD",
    "ARITY",
    "ARGTYPE",
    "LOADING",
    "BUSY",
    "MISCONF",
    "NOPROTO",
    "ABORTED",
    "OOM",
    "NOAUTH",
    "WRONGPASS",
    "EXECABORT",
    "ERROR_CODES",
    "LOADING_MESSAGE",
    "BUSY_REWRITE_MESSAGE",
    "BUSY_SCRIPT_MESSAGE",
    "Error",
    "ProtocolError",
]

ERR = "ERR"  # generic, Redis semantics: syntax error, "value is not an integer or out of range"
WRONGTYPE = "WRONGTYPE"  # operation against a key holding the wrong kind of value
PROTO = "PROTO"  # malformed msgpack or wrong message shape
TOOBIG = "TOOBIG"  # over MAX_MESSAGE_BYTES, MAX_BATCH_LENGTH, MAX_ARGS or the object counts
UNKNOWNCMD = "UNKNOWNCMD"  # command name not in the command table
ARITY = "ARITY"  # wrong number of arguments for the command
ARGTYPE = "ARGTYPE"  # an argument (or the name) is not bin/str/int
LOADING = "LOADING"  # the node is loading its AOF, or the log actor is restarting
BUSY = "BUSY"  # an AOF rewrite is already running
MISCONF = "MISCONF"  # the AOF is not writable: writes are refused
NOPROTO = "NOPROTO"  # HELLO asked for a protocol version this node does not speak
ABORTED = "ABORTED"  # in flight when the log actor died: may or may not have been applied
EXECABORT = "EXECABORT"  # a transaction refused as a whole: one of its requests was invalid
OOM = "OOM"  # used_memory is over --maxmemory: writes that may grow memory are refused
NOAUTH = "NOAUTH"  # the node has a password and this client has not sent AUTH yet
WRONGPASS = "WRONGPASS"  # AUTH with a wrong password

ERROR_CODES: frozenset[str] = frozenset(
    (ERR, WRONGTYPE, PROTO, TOOBIG, UNKNOWNCMD, ARITY, ARGTYPE, LOADING, BUSY, MISCONF, NOPROTO,
     ABORTED, OOM, NOAUTH, WRONGPASS, EXECABORT)
)

# The messages that go with LOADING and BUSY, written here once because several actors send
# them (the front and the log actor; the rewrite). They are Redis's wording, so that people and
# tools that know Redis recognise them; "aofnode" stands where Redis says "Redis".
LOADING_MESSAGE = "aofnode is loading the dataset in memory"
BUSY_REWRITE_MESSAGE = "Background append only file rewriting already in progress"
# Redis's exact words here: the reply tells a client what it may send meanwhile.
BUSY_SCRIPT_MESSAGE = ("Redis is busy running a script. You can only call SCRIPT KILL or "
                       "SHUTDOWN NOSAVE.")


# Final: every reader tells an error from a value with ``type(x) is Error`` (faster than
# isinstance on the hot path), which a subclass would slip past.
@final
@dataclass(frozen=True, slots=True)
class Error:
    """An error reply: ``code`` is one of the codes above, ``message`` is for humans."""

    code: str
    message: str


class ProtocolError(Exception):
    """Client side: the server's reply is not a well-formed aofnode reply (or we have a bug)."""
