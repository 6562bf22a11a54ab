"""The RESP front's connection commands: one ``Session`` per TCP connection.

Design:
- A session holds what Redis keeps per connection and aofnode's log actor never sees: the
  protocol (RESP2, or RESP3 after ``HELLO 3``), the selected db (SELECT is per connection, as
  TCP makes it natural; every message to the log actor carries it), AUTH, the client name and
  library. The front (node/fronts/resp_front.py) calls ``Session.run`` for the commands in
  ``LOCAL`` in their place in the pipeline, and forwards every other command.
- Answers are RESP bytes, shaped as Redis 7 shapes them (checked against redis-server 7.0):
  HELLO's map, COMMAND's 10-element entries (a flat array in RESP2),
  CLIENT INFO's text. ``check_forwarded`` gives Redis's own error for an unknown command or a
  wrong arity, so those never travel to the log actor.
- AUTH: with a password set, every command but AUTH, HELLO, QUIT and RESET gets NOAUTH until
  AUTH succeeds; passwords are compared with ``hmac.compare_digest`` (no timing oracle), and
  a failure is counted, never logged with what was sent.
- Never: touch the keyspace, a socket, or the log actor.
"""
from __future__ import annotations

import hmac
import time

from aofnode.version import VERSION
from aofnode import protocol as codec
from aofnode import protocol as resp
from aofnode.protocol.commands import COMMANDS

__all__ = ["Session", "LOCAL", "NO_AUTH_NEEDED", "check_forwarded", "config_settings"]

# Commands the front answers itself, in order with the forwarded ones.
LOCAL = frozenset({"HELLO", "AUTH", "CLIENT", "SELECT", "COMMAND", "QUIT", "RESET",
                   "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"})
# What a client may send before AUTH when a password is set (Redis's no-auth commands).
NO_AUTH_NEEDED = frozenset({"AUTH", "HELLO", "QUIT", "RESET"})

_NOAUTH = b"-NOAUTH Authentication required.\r\n"
_WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
_NO_PASSWORD = (b"-ERR AUTH <password> called without any password configured for the default "
                b"user. Are you sure your configuration is correct?\r\n")
_HELLO_NOAUTH = (b"-NOAUTH HELLO must be called with the client already authenticated, otherwise "
                 b"the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the "
                 b"client and select the RESP protocol version at the same time\r\n")
_OK = b"+OK\r\n"
_SYNTAX = b"-ERR syntax error\r\n"
_NO_TRANSACTIONS = b"-ERR transaction commands are answered by the RESP front's router\r\n"

# (arity, flags, first key, last key, key step, group) of the commands aofnode runs, for COMMAND.
# Arity and flags come from protocol/commands.py; key positions and groups are Redis 7's.
_KEYS = {  # name -> (first, last, step); absent: no keys
    "MSET": (1, -1, 2), "MGET": (1, -1, 1), "DEL": (1, -1, 1), "EXISTS": (1, -1, 1),
    "RENAME": (1, 2, 1),
}
_NO_KEYS = frozenset({"PING", "ECHO", "HELLO", "SELECT", "INFO", "DBSIZE", "BGREWRITEAOF", "KEYS",
                      "SCAN", "FLUSHDB", "FLUSHALL"})
_GROUPS = {"PING": "connection", "ECHO": "connection", "HELLO": "connection", "SELECT": "connection",
           "INFO": "server", "DBSIZE": "server", "BGREWRITEAOF": "server", "FLUSHDB": "server",
           "FLUSHALL": "server"}
# The connection commands answered here, with Redis 7's arity and a usage line.
_LOCAL_SPECS = {
    "AUTH": (-2, "AUTH [username] password: authenticate this connection"),
    "CLIENT": (-2, "CLIENT ID|GETNAME|SETNAME name|SETINFO attr value|INFO: this connection"),
    "COMMAND": (-1, "COMMAND [COUNT|LIST|INFO name ...|DOCS [name ...]]: the command table"),
    "QUIT": (-1, "QUIT: close the connection"),
    "RESET": (1, "RESET: back to a fresh connection's state"),
}


def config_settings(config, max_clients: int) -> dict[str, str]:
    """CONFIG GET's view of the node, as Redis names the settings (requirepass is not there:
    it is never revealed)."""
    return {
        "appendonly": "yes",
        "appendfsync": config.appendfsync,
        "save": "",  # no RDB snapshots: the AOF is the only persistence
        "databases": str(codec.NUM_DBS),
        "maxmemory": str(config.maxmemory),
        "maxmemory-policy": config.maxmemory_policy,
        "maxclients": str(max_clients),
        "proto-max-bulk-len": str(resp.MAX_BULK_BYTES),
        "client-output-buffer-limit": f"normal {config.client_output_limit} {config.client_output_limit} 0",
        "auto-aof-rewrite-percentage": str(config.auto_aof_rewrite_percentage),
        "auto-aof-rewrite-min-size": str(config.auto_aof_rewrite_min_size),
        "bind": (config.resp_bind or "").rpartition(":")[0].strip("[]"),
        "port": (config.resp_bind or "").rpartition(":")[2],
    }


def _quote(arg: bytes, room: int) -> str:
    return "'" + arg[:max(0, room)].decode("utf-8", "replace") + "' "


def unknown_command(argv: list[bytes]) -> bytes:
    """Redis 7's message, args included (up to 128 characters of them)."""
    args = ""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        args += _quote(arg, 128 - len(args))
    name = argv[0][:128].decode("utf-8", "replace")
    return resp.error_line("ERR", f"unknown command '{name}', with args beginning with: {args}")


def _arity(name: str) -> bytes:
    return resp.error_line("ERR", f"wrong number of arguments for '{name.lower()}' command")


_SPECS = {name.encode(): spec for name, spec in COMMANDS.items()}


def check_forwarded(argv: list[bytes]) -> tuple[str, bytes | None]:
    """(NAME, None) for a command the log actor can run, or (NAME, Redis's error reply) for an
    unknown command or a wrong number of arguments."""
    raw = argv[0]
    spec = _SPECS.get(raw) or _SPECS.get(raw.upper())
    if spec is None:
        return raw.upper().decode("utf-8", "replace"), unknown_command(argv)
    if not spec.accepts(len(argv)):
        return spec.name, _arity(spec.name)
    return spec.name, None


def _command_entry(name: str) -> list:
    """One COMMAND INFO entry: name, arity, flags, first/last key, step, ACL categories, tips,
    key specs, subcommands (Redis 7's 10 fields; key specs left empty)."""
    if name in _LOCAL_SPECS:
        arity, flags, keys = _LOCAL_SPECS[name][0], ["noscript", "loading", "stale", "fast"], (0, 0, 0)
        if name in ("AUTH", "QUIT", "RESET"):
            flags.append("no_auth")
    else:
        spec = COMMANDS[name]
        arity = spec.arity
        flags = ["write"] if spec.write else ["readonly"]
        if spec.denyoom:
            flags.append("denyoom")
        if name in ("HELLO",):
            flags.append("no_auth")
        keys = (0, 0, 0) if name in _NO_KEYS else _KEYS.get(name, (1, 1, 1))
    return [name.lower().encode(), arity, flags, *keys, [], [], [], []]  # flags are status replies


def _all_names() -> list[str]:
    return [*COMMANDS, *_LOCAL_SPECS]


def _summary(name: str) -> str:
    return _LOCAL_SPECS[name][1] if name in _LOCAL_SPECS else COMMANDS[name].summary


def _command_docs(name: str) -> dict:
    """COMMAND DOCS for one command: the summary, and its usage as a single argument whose name
    is the whole usage line (redis-cli shows argument names as its hints)."""
    summary = _summary(name)
    usage, _, text = summary.partition(": ")
    tail = usage[len(name):].strip() if usage.upper().startswith(name) else ""
    group = _GROUPS.get(name, "connection" if name in _LOCAL_SPECS else
                        "hash" if name.startswith("H") else
                        "string" if name in ("SET", "GET", "GETDEL", "SETNX", "MSET", "MGET", "APPEND",
                                             "STRLEN", "INCR", "DECR", "INCRBY", "DECRBY") else "generic")
    doc: dict = {"summary": (text or summary).encode(), "since": b"1.0.0", "group": group.encode()}
    if tail:
        doc["arguments"] = [{"name": tail.encode(), "type": b"string"}]
    return doc


class Session:
    """One connection's state and its connection commands."""

    __slots__ = ("id", "db", "resp3", "authenticated", "name", "lib_name", "lib_ver", "addr",
                 "laddr", "fd", "created", "close_after", "password", "settings", "auth_failures",
                 "multi", "watching")

    def __init__(self, conn_id: int, password: bytes | None, settings: dict[str, str],
                 addr: str = "", laddr: str = "", fd: int = -1) -> None:
        self.id = conn_id
        self.password = password
        self.settings = settings
        self.addr, self.laddr, self.fd = addr, laddr, fd
        self.created = time.monotonic()
        self.auth_failures = 0
        self._reset()
        self.watching = False

    def _reset(self) -> None:
        self.db = 0
        self.resp3 = False
        self.authenticated = self.password is None
        self.name: bytes | None = None
        self.lib_name = self.lib_ver = b""
        self.close_after = False
        # Transactions (node/fronts/resp_multi.py): the MULTI queue, and whether this
        # connection has keys watched in the log actor (RESET ends both there).
        self.multi = None
        self.watching = False

    def value(self, v) -> bytes:
        return resp.encode_value(v, self.resp3)

    def gate(self, name: str) -> bytes | None:
        """NOAUTH for a command this connection may not send yet."""
        if self.authenticated or name in NO_AUTH_NEEDED:
            return None
        return _NOAUTH

    def run(self, name: str, argv: list[bytes]) -> bytes:
        """Answer one connection command (``name`` in LOCAL); never raises for any argv."""
        args = argv[1:]
        if name == "SELECT":
            if len(args) != 1:
                return _arity(name)
            db = codec.parse_select(args[0])
            if type(db) is codec.Error:
                return resp.error_line(db.code, db.message)
            self.db = db
            return _OK
        if name == "HELLO":
            return self._hello(args)
        if name == "AUTH":
            if not args:
                return _arity(name)
            if len(args) > 2:
                return _SYNTAX
            return self._auth(args[0] if len(args) == 2 else b"default", args[-1])
        if name == "CLIENT":
            return self._client(args)
        if name == "COMMAND":
            return self._command(args)
        if name == "QUIT":
            self.close_after = True
            return _OK
        if name == "RESET":
            if args:
                return _arity(name)
            self._reset()
            return b"+RESET\r\n"
        return _NO_TRANSACTIONS  # MULTI...UNWATCH take node/fronts/resp_multi.py's path

    # -- AUTH and HELLO ----------------------------------------------------------------------------

    def _check_password(self, user: bytes, password: bytes) -> bool:
        ok = user == b"default" and hmac.compare_digest(password, self.password)
        if ok:
            self.authenticated = True
        else:
            self.auth_failures += 1
        return ok

    def _auth(self, user: bytes, password: bytes) -> bytes:
        if self.password is None:
            return _NO_PASSWORD
        return _OK if self._check_password(user, password) else _WRONGPASS

    def _hello(self, args: list[bytes]) -> bytes:
        proto = 3 if self.resp3 else 2
        i = 0
        if args:
            text = args[0].decode("ascii", "replace")
            if not (text.isdigit() and len(text) < 10):
                return b"-ERR Protocol version is not an integer or out of range\r\n"
            proto = int(text)
            if proto not in (2, 3):
                return b"-NOPROTO unsupported protocol version\r\n"
            i = 1
        name = None
        while i < len(args):
            opt = args[i].upper()
            if opt == b"AUTH" and i + 2 < len(args):
                if self.password is None:
                    return _NO_PASSWORD
                if not self._check_password(args[i + 1], args[i + 2]):
                    return _WRONGPASS
                i += 3
            elif opt == b"SETNAME" and i + 1 < len(args):
                name = args[i + 1]
                if not _valid_name(name):
                    return _BAD_NAME
                i += 2
            else:
                shown = args[i][:64].decode("utf-8", "replace")
                return resp.error_line("ERR", f"Syntax error in HELLO option '{shown}'")
        if not self.authenticated:
            return _HELLO_NOAUTH
        if name is not None:
            self.name = name or None
        self.resp3 = proto == 3
        return self.value({"server": b"aofnode", "version": VERSION.encode(), "proto": proto,
                           "id": self.id, "mode": b"standalone", "role": b"master", "modules": []})

    # -- CLIENT ------------------------------------------------------------------------------------

    def _client(self, args: list[bytes]) -> bytes:
        if not args:
            return _arity("client")
        sub = args[0].upper()
        n = len(args)
        if sub == b"ID" and n == 1:
            return b":%d\r\n" % self.id
        if sub == b"GETNAME" and n == 1:
            return self.value(self.name)
        if sub == b"SETNAME" and n == 2:
            if not _valid_name(args[1]):
                return _BAD_NAME
            self.name = args[1] or None
            return _OK
        if sub == b"SETINFO" and n == 3:
            attr = args[1].upper()
            if not _valid_name(args[2]):
                return b"-ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.\r\n"
            if attr == b"LIB-NAME":
                self.lib_name = args[2]
            elif attr == b"LIB-VER":
                self.lib_ver = args[2]
            else:
                return resp.error_line("ERR", f"Unrecognized option '{args[1][:64].decode('utf-8', 'replace')}'")
            return _OK
        if sub == b"INFO" and n == 1:
            text = self.info_line().encode() + b"\n"
            if self.resp3:
                return b"=%d\r\ntxt:%s\r\n" % (len(text) + 4, text)
            return b"$%d\r\n%s\r\n" % (len(text), text)
        if sub in (b"ID", b"GETNAME", b"SETNAME", b"SETINFO", b"INFO"):
            return resp.error_line("ERR", f"wrong number of arguments for 'client|{sub.lower().decode()}' command")
        shown = args[0][:128].decode("utf-8", "replace")
        return resp.error_line("ERR", f"unknown subcommand '{shown}'. Try CLIENT HELP.")

    def info_line(self) -> str:
        name = (self.name or b"").decode("utf-8", "replace")
        return (f"id={self.id} addr={self.addr} laddr={self.laddr} fd={self.fd} name={name} "
                f"age={int(time.monotonic() - self.created)} db={self.db} resp={3 if self.resp3 else 2} "
                f"lib-name={self.lib_name.decode('utf-8', 'replace')} "
                f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}")

    # -- COMMAND ------------------------------------------------------------------------------------

    def _command(self, args: list[bytes]) -> bytes:
        if not args:
            return self.value([_command_entry(n) for n in _all_names()])
        sub = args[0].upper()
        if sub == b"COUNT" and len(args) == 1:
            return b":%d\r\n" % len(_all_names())
        if sub == b"LIST" and len(args) == 1:
            return self.value([n.lower().encode() for n in _all_names()])
        if sub == b"INFO":
            names = [a.decode("utf-8", "replace").upper() for a in args[1:]] or _all_names()
            return self.value([_command_entry(n) if n in COMMANDS or n in _LOCAL_SPECS else None
                               for n in names])
        if sub == b"DOCS":
            names = [a.decode("utf-8", "replace").upper() for a in args[1:]] or _all_names()
            return self.value({n.lower(): _command_docs(n) for n in names
                               if n in COMMANDS or n in _LOCAL_SPECS})
        shown = args[0][:128].decode("utf-8", "replace")
        return resp.error_line("ERR", f"unknown subcommand or wrong number of arguments for '{shown}'. "
                                      "Try COMMAND HELP.")


_BAD_NAME = b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"


def _valid_name(name: bytes) -> bool:
    """Redis's rule for client names: printable ASCII, no space."""
    return all(0x21 <= c <= 0x7E for c in name)
