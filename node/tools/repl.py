"""What ``aofnode cli`` shows and reads: redis-cli's argument splitting, reply rendering, help,
and the interactive prompt.

Design
------
- ``split_args`` is redis-cli's ``sdssplitargs``, the RESP front's inline splitter, so a line
  typed here means the same bytes as in redis-cli; an unbalanced quote is an error, never a guess.
- ``format_reply`` renders a reply as redis-cli does on a terminal (quoted bulk strings,
  ``(integer)``, numbered arrays) or, with ``raw``, as it does into a pipe. ``INFO`` is printed
  as redis-cli prints it, ``# Section`` headers and ``field:value`` lines; the node sends it as
  a map of maps, so ``format_command_reply`` chooses that form by the command's name, not by
  the reply's shape.
- ``help_text`` prints the command table (protocol/commands.py): nothing here needs a node.
- The prompt (``interactive``) never ends on a bad line or an error reply; only EOF, ``quit``
  or ``exit`` end it.

Nothing here opens a socket: the caller (node/tools/cli.py) hands ``interactive`` a connected
``Client``.
"""
from __future__ import annotations

import os

from aofnode.client import CommandError, NodeTimeout
from aofnode.protocol.commands import COMMANDS
from aofnode.protocol.resp_request import split_inline

__all__ = ["InvalidArguments", "UnknownHelpTopic", "split_args", "format_reply", "format_info",
           "format_command_reply", "help_text", "interactive"]


class InvalidArguments(ValueError):
    """A line with an unbalanced quote, or a closing quote followed by more text."""

    def __init__(self) -> None:
        super().__init__("Invalid argument(s)")


class UnknownHelpTopic(LookupError):
    """``help NAME`` for a name that is not in the command table."""


# -- reading: sdssplitargs (protocol/resp_request.py, as the RESP front splits inline commands) --

def split_args(line: str | bytes) -> list[bytes]:
    """Split one line into arguments as redis-cli does (``sdssplitargs``, Redis src/sds.c, which
    is also ``aofnode.protocol.resp_request.split_inline``): in double quotes ``\\xHH`` is one
    byte and ``\\n \\r \\t \\b \\a`` are control characters (any other escaped character is
    itself); in single quotes only ``\\'`` is an escape; outside quotes a backslash is literal. A
    closing quote must be followed by a blank or the end of the line. An unbalanced quote raises
    ``InvalidArguments`` ("Invalid argument(s)", redis-cli's words)."""
    args = split_inline(line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line))
    if args is None:
        raise InvalidArguments()
    return args


# -- writing: redis-cli's reply formats -----------------------------------------------------------

def format_command_reply(words, value, raw: bool = False) -> str:
    """Render the reply to the command ``words`` (its name first, str or bytes)."""
    name = words[0].decode("utf-8", "replace") if isinstance(words[0], bytes) else str(words[0])
    if name.upper() == "INFO" and isinstance(value, dict):
        return format_info(value)  # redis-cli prints INFO raw on a terminal too
    return format_reply(value, raw)


def format_reply(value, raw: bool = False, indent: str = "") -> str:
    """Render a reply the way redis-cli does (``raw``: as redis-cli prints to a pipe).

    A map (RESP3's ``%``) is shown as the flat array of keys and values a RESP2 client sees.
    """
    if isinstance(value, CommandError):
        return f"{value.code} {value.message}" if raw else f"(error) {value.code} {value.message}"
    if value is None:
        return "" if raw else "(nil)"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value) if raw else f"(integer) {value}"
    if isinstance(value, float):
        return repr(value) if raw else f"(double) {value!r}"
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        if raw:
            return value.decode("utf-8", "replace")
        return '"' + "".join(_escape(b) for b in value) + '"'
    if isinstance(value, dict):
        value = [x for kv in value.items() for x in kv]
    if isinstance(value, list):
        if not value:
            return "" if raw else "(empty array)"
        if raw:
            return "\n".join(format_reply(v, True) for v in value)
        width = len(str(len(value)))
        out = []
        for i, v in enumerate(value, 1):
            prefix = f"{i:>{width}}) "
            text = format_reply(v, False, indent + " " * len(prefix))
            out.append((indent if i > 1 else "") + prefix + text)
        return "\n".join(out)
    return repr(value)


def format_info(sections: dict) -> str:
    """INFO as redis-cli prints it: ``# Section``, ``field:value``, a blank line between sections.

    A field whose value is a map is one line of ``k=v`` pairs, as Redis writes its keyspace
    (``db0:keys=3,expires=0,avg_ttl=0``).
    """
    blocks = []
    for section, fields in sections.items():
        lines = [f"# {_text(section).capitalize()}"]
        if isinstance(fields, dict):
            lines.extend(f"{_text(k)}:{_info_value(v)}" for k, v in fields.items())
        else:
            lines.append(_info_value(fields))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _info_value(value) -> str:
    if isinstance(value, dict):
        return ",".join(f"{_text(k)}={_info_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(_info_value(v) for v in value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return _text(value)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _escape(b: int) -> str:
    """One byte of a quoted bulk string, as Redis's sdscatrepr writes it."""
    if b in (0x22, 0x5C):
        return "\\" + chr(b)
    if 0x20 <= b < 0x7F:
        return chr(b)
    return _REPR_ESCAPES.get(b, f"\\x{b:02x}")


_REPR_ESCAPES = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x07: "\\a", 0x08: "\\b"}


# -- help ---------------------------------------------------------------------------------------

def help_text(words) -> str:
    """``help``: the command table; ``help NAME ...``: those commands. Raises ``UnknownHelpTopic``."""
    if not words:
        width = max(len(name) for name in COMMANDS)
        lines = ['aofnode commands ("help COMMAND" for one; arity counts the name, -N means at '
                 'least N):']
        for spec in COMMANDS.values():
            lines.append(f"{spec.name:<{width}}  {spec.arity:>3}  {_flags(spec):<14}  {spec.summary}")
        lines.append("At this prompt also: help [COMMAND], quit, exit.")
        return "\n".join(lines)
    out = []
    for word in words:
        name = _text(word).upper()
        spec = COMMANDS.get(name)
        if spec is None:
            raise UnknownHelpTopic(f"unknown command '{name}' (help lists the commands)")
        n = abs(spec.arity) - 1
        count = f"{n} argument{'' if n == 1 else 's'} after the name"
        out.append(f"  {spec.summary}\n"
                   f"  arity: {spec.arity} ({'exactly' if spec.arity > 0 else 'at least'} {count})\n"
                   f"  flags: {_flags(spec)}")
    return "\n\n".join(out)


def _flags(spec) -> str:
    """The table's flags by their field names; ``-`` for none (e.g. BGREWRITEAOF)."""
    names = [name for name, on in (("write", spec.write), ("denyoom", spec.denyoom),
                                   ("retry_safe", spec.retry_safe)) if on]
    return " ".join(names) or "-"


# -- the prompt ---------------------------------------------------------------------------------

def transaction_step(client, queue: list | None, words: list[bytes], name: str):
    """MULTI/EXEC/DISCARD/WATCH/UNWATCH at the prompt, as redis-cli shows them: the commands
    between MULTI and EXEC are queued here and sent as one transaction (``Client.transaction``).
    Returns (the new queue, the text to print), or None for a command to run as usual."""
    if queue is None and name not in ("multi", "watch", "unwatch", "exec", "discard"):
        return None
    if name == "multi":
        return (queue, "(error) ERR MULTI calls can not be nested") if queue is not None else ([], "OK")
    if name == "watch":
        if queue is not None:
            return queue, "(error) ERR WATCH inside MULTI is not allowed"
        client.watch(*words[1:])
        return None, "OK"
    if name == "unwatch" and queue is None:
        client.unwatch()
        return None, "OK"
    if name in ("exec", "discard") and queue is None:
        return None, f"(error) ERR {name.upper()} without MULTI"
    if name == "discard":
        client._watched = False
        client.execute("UNWATCH")
        return None, "OK"
    if name == "exec":
        if not queue:
            return None, "(empty array)"
        replies = client.transaction(queue)
        if replies is None:
            return None, "(nil)"
        return None, "\n".join(f"{i}) " + format_command_reply(cmd, reply)
                               for i, (cmd, reply) in enumerate(zip(queue, replies), 1))
    queue.append(words)
    return queue, "QUEUED"


def interactive(client, endpoint: str) -> int:
    """Read lines until EOF, ``quit`` or ``exit``; run each on ``client`` and print the reply."""
    try:
        import readline
        history = os.path.expanduser("~/.aofnode_history")
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    except ImportError:
        readline = None
    host = endpoint.split("://", 1)[-1]
    db = client.db  # cli -n
    queue: list | None = None  # the commands since MULTI
    try:
        while True:
            prompt = f"{host}[{db}]> " if db else f"{host}> "
            if queue is not None:
                prompt = prompt[:-2] + "(TX)> "
            try:
                line = input(prompt)
            except EOFError:
                print()
                break
            try:
                words = split_args(line)
            except InvalidArguments as exc:
                print(exc)
                continue
            if not words:
                continue
            name = words[0].decode("utf-8", "replace").lower()
            if name in ("quit", "exit"):
                break
            if name == "help":
                try:
                    print(help_text(words[1:]))
                except UnknownHelpTopic as exc:
                    print(exc)
                continue
            try:
                step = transaction_step(client, queue, words, name)
                if step is not None:
                    queue, text = step
                    print(text)
                    continue
                reply = client.execute(*words)
                if name == "select":
                    db = int(words[1])
                print(format_command_reply(words, reply))
            except CommandError as exc:
                print(format_reply(exc))
            except NodeTimeout as exc:
                print(f"Could not connect to aofnode at {endpoint}: {exc}")
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass
    return 0
