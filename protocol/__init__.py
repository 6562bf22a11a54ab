"""aofnode's sans-I/O protocol layer: no networking code at all.

Bytes in, values out, and back; only the fronts and the client touch sockets. The modules:

* ``errors``: the error codes and ``Error`` values both protocols answer with;
* ``commands``: the command table, the databases and SELECT's argument;
* the ZeroMQ wire (msgpack bodies): ``wire`` (version, limits, encoding a message), ``server``
  (decoding messages, encoding replies) and ``client`` (decoding replies);
* RESP, Redis's protocol, server side: ``resp_request`` (the request parser) and
  ``resp_reply`` (the reply encoder).

Every public name is re-exported here.
"""

# Relative imports, here and in every module: the package never spells its installed name
# (`aofnode.protocol`, mapped from protocol/ in pyproject.toml), so it reads the same anywhere.
from .client import decode_batch_reply, decode_reply
from .commands import COMMANDS, FRONT_COMMANDS, NUM_DBS, CommandSpec, parse_select
from .errors import (
    ABORTED,
    ARGTYPE,
    ARITY,
    BUSY,
    BUSY_REWRITE_MESSAGE,
    BUSY_SCRIPT_MESSAGE,
    ERR,
    ERROR_CODES,
    EXECABORT,
    LOADING,
    LOADING_MESSAGE,
    MISCONF,
    NOAUTH,
    NOPROTO,
    OOM,
    PROTO,
    TOOBIG,
    UNKNOWNCMD,
    WRONGPASS,
    WRONGTYPE,
    Error,
    ProtocolError,
)
from .keyflags import KEY_SPECS, keys_and_flags
from .keyspecs import SPECS, subcommands
from .resp_reply import (SHAPED, encode_command_reply, encode_value, error_line, info_text, invalidate_message,
                         reply_shape)
from .resp_request import (
    PARSER,
    ARG_OVERHEAD,
    MAX_BULK_BYTES,
    MAX_COMMAND_BYTES,
    MAX_INLINE_BYTES,
    MAX_MULTIBULK,
    UNAUTH_MAX_BULK,
    UNAUTH_MAX_MULTIBULK,
    RequestParser,
    split_inline,
)
from .server import (
    AtomicMessage,
    Message,
    Request,
    decode_message,
    encode_batch_reply,
    encode_reply,
    wire_reply,
)
from .wire import (
    MAX_ARGS,
    MAX_BATCH_LENGTH,
    MAX_MESSAGE_BYTES,
    MAX_MESSAGE_CONTAINERS,
    MAX_MESSAGE_OBJECTS,
    PROTOCOL_VERSION,
    REPLY_ERROR,
    REPLY_VALUE,
    encode_batch,
    encode_request,
)

__all__ = [
    # command table and databases
    "COMMANDS",
    "FRONT_COMMANDS",
    "CommandSpec",
    "NUM_DBS",
    "parse_select",
    # error codes and values, and the texts several actors send with two of them
    "Error",
    "ProtocolError",
    "ERROR_CODES",
    "ABORTED",
    "ARGTYPE",
    "ARITY",
    "BUSY",
    "ERR",
    "LOADING",
    "MISCONF",
    "NOAUTH",
    "NOPROTO",
    "OOM",
    "PROTO",
    "TOOBIG",
    "UNKNOWNCMD",
    "WRONGPASS",
    "WRONGTYPE",
    "LOADING_MESSAGE",
    "BUSY_REWRITE_MESSAGE",
    "BUSY_SCRIPT_MESSAGE",
    # ZeroMQ wire: version, limits, reply tags, encoding a message (any sender)
    "PROTOCOL_VERSION",
    "MAX_ARGS",
    "MAX_BATCH_LENGTH",
    "MAX_MESSAGE_BYTES",
    "MAX_MESSAGE_OBJECTS",
    "MAX_MESSAGE_CONTAINERS",
    "REPLY_VALUE",
    "REPLY_ERROR",
    "encode_batch",
    "encode_request",
    # ZeroMQ wire, server side
    "Message",
    "AtomicMessage",
    "EXECABORT",
    "Request",
    "decode_message",
    "encode_batch_reply",
    "encode_reply",
    "wire_reply",
    # ZeroMQ wire, client side
    "decode_batch_reply",
    "decode_reply",
    # RESP requests
    "RequestParser",
    "split_inline",
    "MAX_INLINE_BYTES",
    "MAX_BULK_BYTES",
    "MAX_MULTIBULK",
    "MAX_COMMAND_BYTES",
    "PARSER",
    "ARG_OVERHEAD",
    "UNAUTH_MAX_MULTIBULK",
    "UNAUTH_MAX_BULK",
    # RESP replies
    "encode_value",
    "encode_command_reply",
    "invalidate_message",
    "reply_shape",
    "SHAPED",
    "error_line",
    "info_text",
    # Redis 7.0's COMMAND INFO rows and key specs (keyspecs.py, keyflags.py)
    "SPECS",
    "subcommands",
    "KEY_SPECS",
    "keys_and_flags",
]
