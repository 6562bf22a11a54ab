"""The RESP front's connection commands: one ``Session`` per TCP connection.

Design:
- A session holds what Redis keeps per connection and aofnode's log actor never sees: the
  protocol (RESP2, or RESP3 after ``HELLO 3``), the selected db (SELECT is per connection, as
  TCP makes it natural; every message to the log actor carries it), AUTH, the client name and
  library, the CLIENT REPLY mode. The front (node/fronts/resp_front.py) calls ``Session.run``
  for the commands in ``LOCAL`` in their place in the pipeline (CLIENT, which needs every
  connection, is node/fronts/resp_clients.py's; COMMAND is node/fronts/resp_command.py's), and
  forwards every other command.
- Answers are RESP bytes, shaped as Redis 7 shapes them (checked against redis-server 7.0):
  HELLO's map. ``check_forwarded`` gives Redis's own error for an unknown command or a
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
from aofnode.fronts.resp_command import command_reply

__all__ = ["Session", "LOCAL", "NO_AUTH_NEEDED", "BAD_NAME", "check_forwarded", "config_settings",
           "forwarded_local", "valid_name"]

# Commands the front answers itself, in order with the forwarded ones.
LOCAL = frozenset({"HELLO", "AUTH", "CLIENT", "SELECT", "COMMAND", "QUIT", "RESET",
                   "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"})


def forwarded_local(name: str, argv: list[bytes]) -> bool:
    """A connection command forwarded all the same: CLIENT UNBLOCK with an id (the client it
    unblocks waits in the log actor, node/log/blocking.py; protocol FRONT_COMMANDS)."""
    return name == "CLIENT" and len(argv) > 2 and argv[1].lower() == b"unblock"


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


class Session:
    """One connection's state and its connection commands."""

    __slots__ = ("id", "db", "resp3", "authenticated", "name", "lib_name", "lib_ver", "addr",
                 "laddr", "fd", "created", "close_after", "password", "settings", "auth_failures",
                 "multi", "watching", "last", "cmd", "reply_mode", "no_evict", "tracking")

    def __init__(self, conn_id: int, password: bytes | None, settings: dict[str, str],
                 addr: str = "", laddr: str = "", fd: int = -1) -> None:
        self.id = conn_id
        self.password = password
        self.settings = settings
        self.addr, self.laddr, self.fd = addr, laddr, fd
        self.created = self.last = time.monotonic()  # last: its latest read (CLIENT LIST idle)
        self.cmd = (b"", b"")  # its latest read's last command, name and subcommand (CLIENT LIST)
        self.auth_failures = 0
        self._reset()
        self.watching = False
        # CLIENT TRACKING (node/fronts/resp_tracking.py): 1 this connection tracks (as far as
        # the front knows), 2 another connection redirects to it; its state is the log actor's.
        self.tracking = 0

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
        self.reply_mode = 0  # CLIENT REPLY: node/fronts/resp_clients.py's REPLY_ON/OFF/SKIP
        self.no_evict = False

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
        if name == "COMMAND":
            return command_reply(self, args)
        if name == "QUIT":
            self.close_after = True
            return _OK
        if name == "RESET":
            if args:
                return _arity(name)
            self._reset()
            return b"+RESET\r\n"
        if name == "CLIENT":  # the front answers it (node/fronts/resp_clients.py)
            return b"-ERR CLIENT is answered by the RESP front\r\n"
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
                if not valid_name(name):
                    return BAD_NAME
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


BAD_NAME = b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"


def valid_name(name: bytes) -> bool:
    """Redis's rule for client names: printable ASCII, no space."""
    return all(0x21 <= c <= 0x7E for c in name)
