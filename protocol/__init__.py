"""aofnode's sans-I/O protocol layer: the wire codec and the command table.

No networking code here: ``aofnode.protocol.codec`` turns message bodies into typed values and back,
``aofnode.protocol.commands`` lists the commands. Only the front actor and the client touch sockets.
"""

from aofnode.protocol.codec import (
    ABORTED,
    ARGTYPE,
    ARITY,
    BUSY,
    ERR,
    ERROR_CODES,
    BUSY_REWRITE_MESSAGE,
    LOADING,
    LOADING_MESSAGE,
    MAX_ARGS,
    MAX_BATCH_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CONTAINERS,
    MAX_MESSAGE_OBJECTS,
    MISCONF,
    NOPROTO,
    OOM,
    PROTO,
    PROTOCOL_VERSION,
    TOOBIG,
    UNKNOWNCMD,
    WRONGTYPE,
    Error,
    Message,
    ProtocolError,
    Request,
    decode_batch_reply,
    decode_message,
    decode_reply,
    encode_batch,
    encode_batch_reply,
    encode_reply,
    encode_request,
    wire_reply,
)
from aofnode.protocol.commands import COMMANDS, CommandSpec

__all__ = [
    # command table
    "COMMANDS",
    "CommandSpec",
    # values
    "Error",
    "Message",
    "ProtocolError",
    "Request",
    # server side
    "decode_message",
    "encode_batch_reply",
    "encode_reply",
    "wire_reply",
    # client side
    "decode_batch_reply",
    "decode_reply",
    "encode_batch",
    "encode_request",
    # version and limits
    "PROTOCOL_VERSION",
    "MAX_ARGS",
    "MAX_BATCH_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_OBJECTS",
    "MAX_MESSAGE_CONTAINERS",
    # error codes, and the texts several actors send with two of them
    "LOADING_MESSAGE",
    "BUSY_REWRITE_MESSAGE",
    "ERROR_CODES",
    "ABORTED",
    "ARGTYPE",
    "ARITY",
    "BUSY",
    "ERR",
    "LOADING",
    "MISCONF",
    "NOPROTO",
    "OOM",
    "PROTO",
    "TOOBIG",
    "UNKNOWNCMD",
    "WRONGTYPE",
]
