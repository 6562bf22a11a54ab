"""COMMAND on the RESP front: COUNT, LIST [FILTERBY], INFO, DOCS, GETKEYS[ANDFLAGS], HELP.

Design:
- Every answer comes from one table, protocol/keyspecs.py (Redis 7.0's arity, flags, key
  positions and ACL categories, subcommands included), with protocol/commands.py's summaries
  for DOCS; GETKEYS and GETKEYSANDFLAGS read the key specs of protocol/keyflags.py. A
  command of protocol/commands.py without a row yet is still listed, from its
  ``CommandSpec`` (no key positions): tests/integration/test_command_info.py says which row is missing.
- Entries have Redis 7's ten fields: name, arity, flags, first key, last key, step, ACL
  categories, tips, key specs (left empty: redis-py and redis-cli read first/last/step) and
  subcommands (entries of their own).
- Never: touch the keyspace, a socket, or the log actor.
"""
from __future__ import annotations

from aofnode import protocol as resp
from aofnode.protocol.commands import COMMANDS
from aofnode.protocol.keyflags import KEY_SPECS, keys_and_flags
from aofnode.protocol.keyspecs import SPECS, subcommands
from aofnode.store.pattern import compile_glob

__all__ = ["command_reply", "LOCAL_SUMMARIES"]

# The connection commands answered by the RESP front, with a usage line for COMMAND DOCS.
LOCAL_SUMMARIES = {
    "AUTH": "AUTH [username] password: authenticate this connection",
    "CLIENT": "CLIENT ID|GETNAME|SETNAME|SETINFO|INFO|LIST|KILL|REPLY|PAUSE|UNPAUSE|NO-EVICT|HELP",
    "COMMAND": "COMMAND [COUNT|LIST [FILTERBY ...]|INFO name ...|DOCS [name ...]|GETKEYS[ANDFLAGS] cmd ...]",
    "QUIT": "QUIT: close the connection",
    "RESET": "RESET: back to a fresh connection's state",
    "MULTI": "MULTI: start a transaction", "EXEC": "EXEC: run the transaction",
    "DISCARD": "DISCARD: drop the transaction", "WATCH": "WATCH key [key ...]",
    "UNWATCH": "UNWATCH: forget the watched keys",
}
_GROUPS = {"string": "string", "bitmap": "bitmap", "hash": "hash", "list": "list", "set": "set",
           "sortedset": "sorted-set", "geo": "geo", "keyspace": "generic", "scripting": "scripting",
           "transaction": "transactions", "connection": "connection"}
_HELP = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)", "    Return details about all Redis commands.",
    "COUNT", "    Return the total number of commands in this Redis server.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]", "    Return details about the given commands.",
    "DOCS [<command-name> ...]", "    Return documentation details about the given commands.",
    "GETKEYS <full-command>", "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>", "    Return the keys and the access flags from a full Redis command.",
    "HELP", "    Print this help.",
]


def _row(name: str) -> tuple[int, str, int, int, int, str] | None:
    """The table's row for a full name (lower case), or one made from protocol/commands.py."""
    row = SPECS.get(name)
    if row is None and "|" not in name:
        spec = COMMANDS.get(name.upper())
        if spec is not None:
            return (spec.arity, "write denyoom" if spec.denyoom else "write" if spec.write else "readonly",
                    0, 0, 0, "")
    return row


def _names() -> list[str]:
    """Every top-level command, lower case: the table's and the command table's."""
    names = [n for n in SPECS if "|" not in n]
    known = set(names)
    return names + [n.lower() for n in COMMANDS if n.lower() not in known]


def _entry(name: str) -> list | None:
    row = _row(name)
    if row is None:
        return None
    arity, flags, first, last, step, acl = row
    subs = [_entry(sub) for sub in subcommands(name)] if "|" not in name else []
    # Flags and categories are status replies (str), as Redis sends them.
    return [name.encode(), arity, flags.split(), first, last, step, ["@" + c for c in acl.split()],
            [], [], subs]


def _docs(name: str) -> dict:
    """COMMAND DOCS for one command: its summary, group, and its usage as one argument whose
    name is the usage line (redis-cli shows argument names as its hints)."""
    upper = name.upper()
    summary = LOCAL_SUMMARIES.get(upper) or COMMANDS[upper].summary
    usage, _, text = summary.partition(": ")
    tail = usage[len(upper):].strip() if usage.upper().startswith(upper) else ""
    acl = (_row(name) or (0, "", 0, 0, 0, ""))[5].split()
    group = next((_GROUPS[c] for c in acl if c in _GROUPS), "server")
    doc: dict = {"summary": (text or summary).encode(), "since": b"1.0.0", "group": group.encode()}
    if tail:
        doc["arguments"] = [{"name": tail.encode(), "type": b"string"}]
    return doc


def _list(session, args: list[bytes]) -> bytes:
    """COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]."""
    names = [full for name in _names() for full in (name, *subcommands(name))]
    if not args:
        return session.value([n.encode() for n in names])
    if len(args) != 3 or args[0].upper() != b"FILTERBY":
        return b"-ERR syntax error\r\n"
    kind, value = args[1].upper(), args[2]
    if kind == b"MODULE":
        names = []
    elif kind == b"ACLCAT":
        category = value.decode("utf-8", "replace").lower()
        names = [n for n in names if category in (_row(n) or (0, "", 0, 0, 0, ""))[5].split()]
    elif kind == b"PATTERN":
        match = compile_glob(value.lower())
        names = [n for n in names if match(n.encode())]
    else:
        return b"-ERR syntax error\r\n"
    return session.value([n.encode() for n in names])


def _getkeys(session, argv: list[bytes], with_flags: bool) -> bytes:
    """COMMAND GETKEYS|GETKEYSANDFLAGS command [arg ...]: the keys (with their flags), found
    by the command's key specs as Redis finds them."""
    name = argv[0].decode("utf-8", "replace").lower()
    if len(argv) > 1 and subcommands(name):
        sub = f"{name}|{argv[1].decode('utf-8', 'replace').lower()}"
        name = sub if sub in SPECS else name
    row = _row(name)
    if row is None:
        return b"-ERR Invalid command specified\r\n"
    arity, flags = row[0], row[1].split()
    if name not in KEY_SPECS:
        return b"-ERR The command has no key arguments\r\n"
    if (arity > 0 and arity != len(argv)) or len(argv) < -arity:
        return b"-ERR Invalid number of arguments specified for command\r\n"
    found = keys_and_flags(name, argv)
    if not found:
        if "no_mandatory_keys" in flags:
            return session.value([])
        return b"-ERR Invalid arguments specified for command\r\n"
    if with_flags:  # flags are status replies in a set (RESP3) or array, as Redis sends them
        kind = b"~" if session.resp3 else b"*"
        return b"*%d\r\n" % len(found) + b"".join(
            b"*2\r\n" + session.value(key) + kind + b"%d\r\n" % len(key_flags)
            + b"".join(b"+%s\r\n" % f.encode() for f in key_flags) for key, key_flags in found)
    return session.value([key for key, _ in found])


def command_reply(session, args: list[bytes]) -> bytes:
    """The reply to COMMAND with these arguments (after the name), in the session's protocol."""
    if not args:
        return session.value([_entry(n) for n in _names()])
    sub, n = args[0].upper(), len(args)
    if sub == b"COUNT" and n == 1:
        return b":%d\r\n" % len(_names())
    if sub == b"LIST":
        return _list(session, args[1:])
    if sub == b"INFO":
        names = [a.decode("utf-8", "replace").lower() for a in args[1:]] or _names()
        return session.value([_entry(name) for name in names])
    if sub == b"DOCS":
        names = [a.decode("utf-8", "replace").lower() for a in args[1:]] or _names()
        return session.value({name: _docs(name) for name in names
                              if "|" not in name and _row(name) is not None
                              and (name.upper() in COMMANDS or name.upper() in LOCAL_SUMMARIES)})
    if sub in (b"GETKEYS", b"GETKEYSANDFLAGS") and n >= 2:
        return _getkeys(session, args[1:], sub == b"GETKEYSANDFLAGS")
    if sub == b"HELP" and n == 1:
        return session.value([line.encode() for line in _HELP])
    shown = args[0][:128].decode("utf-8", "replace")
    return resp.error_line("ERR", f"unknown subcommand or wrong number of arguments for '{shown}'. "
                                  "Try COMMAND HELP.")
