"""CLIENT on the RESP front, and what it changes in the routing: REPLY modes and PAUSE.

Design:
- ``ClientCommands`` is a mixin of ``RespFront`` (node/fronts/resp_front.py): CLIENT needs
  every connection (LIST, KILL) and the front's pause, so the front answers it, not the
  session. Fields of CLIENT LIST/INFO are Redis 7.0's, in its order (checked against
  redis-server 7.0.15 and redis-py's ``client_info()``), with lib-name and lib-ver (Redis 7.2,
  set by CLIENT SETINFO) last. What aofnode has no counterpart for gets the value Redis shows
  for a client without it: sub/psub/ssub 0 until pub/sub exists, multi -1 until MULTI does
  (hooks: ``_subscriptions``, ``_multi``), user default, redir -1.
- CLIENT REPLY OFF|SKIP: the session's ``reply_mode`` is read by ``_take``
  (node/fronts/resp_route.py), which then sends each command apart, in a slot whose reply is
  dropped (``_take_silenced``).
- CLIENT PAUSE ms [WRITE|ALL]: commands read while the pause lasts wait here, in order, from
  the first one that must wait (ALL: any command but CLIENT; WRITE: a write), and their
  connection is not read meanwhile, so what waits is at most one read (``RECV_BYTES``) per
  connection and TCP pushes back on the rest. The pause ends at its deadline
  (``max_wait`` wakes the loop), on CLIENT UNPAUSE, or when the front stops. A pause starts
  with the next read: commands read together with CLIENT PAUSE are not held.
- Never: touch the keyspace or the log actor.
"""
from __future__ import annotations

import re
import time

from aofnode import protocol as codec
from aofnode import protocol as resp
from aofnode.fronts.resp_route import SilencedSlot, Slot
from aofnode.fronts.resp_session import BAD_NAME, LOCAL, forwarded_local, valid_name
from aofnode.protocol.commands import COMMANDS
from aofnode.protocol.keyspecs import SPECS, subcommands

__all__ = ["ClientCommands", "REPLY_ON", "REPLY_OFF", "REPLY_SKIP"]

REPLY_ON, REPLY_OFF, REPLY_SKIP = 0, 1, 2
_SUBSCRIPTIONS = frozenset(("SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE"))
_OK = b"+OK\r\n"
_INTEGER = re.compile(r"-?[0-9]+")
_SYNTAX = b"-ERR syntax error\r\n"
_TYPES = {b"normal": "normal", b"pubsub": "pubsub", b"master": "master", b"replica": "replica",
          b"slave": "replica"}
_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME", "    Return the name of the current connection.",
    "ID", "    Return the ID of the current connection.",
    "INFO", "    Return information about the current client connection.",
    "KILL <ip:port>", "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <client-id>, TYPE (normal|pubsub), USER default,",
    "    ADDR <ip:port>, LADDR <ip:port>, SKIPME (YES|NO).",
    "LIST [options ...]", "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|PUBSUB)", "    * ID <client-id> [<client-id> ...]",
    "UNPAUSE", "    Stop the current client pause, resuming traffic.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]] [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "CACHING (YES|NO)", "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
    "TRACKINGINFO", "    Report tracking status for the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.",
    "PAUSE <timeout> [WRITE|ALL]", "    Hold commands at the front for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
    "SETNAME <name>", "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>", "    Set the client's library name or version.",
    "NO-EVICT (ON|OFF)", "    Accepted; aofnode evicts keys, never clients.",
    "HELP", "    Print this help.",
]


def _resp_len(argv: list[bytes]) -> int:
    """The bytes of ``argv`` as a RESP request (what Redis's qbuf counts for it)."""
    return len(b"*%d\r\n" % len(argv)) + sum(len(b"$%d\r\n" % len(a)) + len(a) + 2 for a in argv)


def _full_name(head: tuple[bytes, bytes]) -> str:
    """A command's full name as CLIENT LIST shows it (``client|list``)."""
    name = head[0].decode("utf-8", "replace").lower()
    if head[1] and subcommands(name):
        sub = f"{name}|{head[1].decode('utf-8', 'replace').lower()}"
        if sub in SPECS:
            return sub
    return name


def _id_arg(raw: bytes) -> int | None:
    text = raw.decode("ascii", "replace")
    return int(text) if text.isdigit() and 0 < int(text) < 1 << 63 else None


def _subscriptions(conn) -> tuple[int, int, int]:
    """Hook for pub/sub: (channels, patterns, shard channels) of this connection."""
    return 0, 0, 0


def _multi(conn) -> int:
    """Commands queued in its transaction (node/fronts/resp_multi.py), -1 outside one."""
    queue = conn.session.multi
    return -1 if queue is None else len(queue.commands) + len(queue.local)


def _set_name(session, args: list[bytes]) -> bytes:
    """CLIENT SETNAME name, or CLIENT SETINFO LIB-NAME|LIB-VER value."""
    if len(args) == 1:
        if not valid_name(args[0]):
            return BAD_NAME
        session.name = args[0] or None
        return _OK
    attr = args[0].upper()
    if not valid_name(args[1]):
        return b"-ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.\r\n"
    if attr == b"LIB-NAME":
        session.lib_name = args[1]
    elif attr == b"LIB-VER":
        session.lib_ver = args[1]
    else:
        return resp.error_line("ERR", f"Unrecognized option '{args[0][:64].decode('utf-8', 'replace')}'")
    return _OK


def _kind(conn) -> str:
    return "pubsub" if any(_subscriptions(conn)) else "normal"


class ClientCommands:
    """CLIENT, REPLY modes and PAUSE for ``RespFront``."""

    pause_until = 0.0  # time.monotonic() when the pause ends; 0: none
    pause_all = False

    # -- CLIENT -----------------------------------------------------------------------------------

    def _client_command(self, conn, argv: list[bytes]) -> bytes:
        """The reply to one CLIENT command of ``conn`` (argv[0] is CLIENT)."""
        if len(argv) < 2:
            return resp.error_line("ERR", "wrong number of arguments for 'client' command")
        sub = argv[1].decode("utf-8", "replace").lower()
        row = SPECS.get("client|" + sub)
        if row is None:
            shown = argv[1][:128].decode("utf-8", "replace")
            return resp.error_line("ERR", f"unknown subcommand '{shown}'. Try CLIENT HELP.")
        arity, n = row[0], len(argv)
        if (arity > 0 and n != arity) or n < -arity:
            return resp.error_line("ERR", f"wrong number of arguments for 'client|{sub}' command")
        session, args = conn.session, argv[2:]
        if sub == "id":
            return b":%d\r\n" % session.id
        if sub == "getname":
            return session.value(session.name)
        if sub in ("setname", "setinfo"):
            return _set_name(session, args)
        if sub == "info":
            return self._verbatim(session, self._info_line(conn, argv) + "\n")
        if sub == "list":
            return self._client_list(conn, argv, args)
        if sub == "kill":
            return self._client_kill(conn, args)
        if sub == "reply":
            return self._client_reply(session, args[0].upper())
        if sub == "pause":
            return self._client_pause(args)
        if sub == "unpause":
            self._unpause()
            return _OK
        if sub == "no-evict":  # aofnode evicts keys, never clients: the flag is only shown
            if args[0].upper() not in (b"ON", b"OFF"):
                return _SYNTAX
            session.no_evict = args[0].upper() == b"ON"
            return _OK
        if sub == "unblock":  # with an id it is forwarded (forwarded_local): a bug if here
            return b"-ERR internal: CLIENT UNBLOCK is run by the log actor\r\n"
        if sub in ("tracking", "caching", "getredir", "trackinginfo"):  # inside MULTI only
            return resp.error_line("ERR", f"CLIENT {sub.upper()} is not served inside MULTI by "
                                          "aofnode (send it before MULTI)")
        return session.value([line.encode() for line in _HELP])  # HELP: the last in SPECS

    @staticmethod
    def _verbatim(session, text: str) -> bytes:
        data = text.encode()
        if session.resp3:
            return b"=%d\r\ntxt:%s\r\n" % (len(data) + 4, data)
        return b"$%d\r\n%s\r\n" % (len(data), data)

    def _info_line(self, conn, current: list[bytes] | None = None) -> str:
        """One client's CLIENT LIST line; ``current``: the command it is running now."""
        s = conn.session
        now = time.monotonic()
        qbuf = conn.parser.buffered + (_resp_len(current) if current is not None else 0)
        head = (current[0], current[1] if len(current) > 1 else b"") if current is not None else s.cmd
        sub, psub, ssub = _subscriptions(conn)
        omem = len(conn.out)
        events = ("r" if conn.reading and not conn.closing else "") + ("w" if omem else "")
        name = (s.name or b"").decode("utf-8", "replace")
        return (f"id={s.id} addr={s.addr} laddr={s.laddr} fd={s.fd} name={name} "
                f"age={int(now - s.created)} idle={int(now - s.last)} flags={'e' if s.no_evict else 'N'} "
                f"db={s.db} sub={sub} psub={psub} ssub={ssub} multi={_multi(conn)} qbuf={qbuf} "
                f"qbuf-free=0 argv-mem={sum(map(len, current)) if current else 0} multi-mem=0 "
                f"rbs=0 rbp=0 obl=0 oll=0 omem={omem} tot-mem={qbuf + omem} events={events} "
                f"cmd={_full_name(head) if head[0] else 'NULL'} user=default redir=-1 "
                f"resp={3 if s.resp3 else 2} lib-name={s.lib_name.decode('utf-8', 'replace')} "
                f"lib-ver={s.lib_ver.decode('utf-8', 'replace')}")

    def _client_list(self, conn, argv: list[bytes], args: list[bytes]) -> bytes:
        conns = sorted(self.conns.values(), key=lambda c: c.session.id)
        if len(args) == 2 and args[0].upper() == b"TYPE":
            kind = _TYPES.get(args[1].lower())
            if kind is None:
                return resp.error_line("ERR", f"Unknown client type '{args[1][:64].decode('utf-8', 'replace')}'")
            conns = [c for c in conns if _kind(c) == kind]
        elif len(args) >= 2 and args[0].upper() == b"ID":
            ids = [_id_arg(a) for a in args[1:]]
            if None in ids:
                return b"-ERR Invalid client ID\r\n"
            wanted = set(ids)
            conns = [c for c in conns if c.session.id in wanted]
        elif args:
            return _SYNTAX
        text = "".join(self._info_line(c, argv if c is conn else None) + "\n" for c in conns)
        return self._verbatim(conn.session, text)

    def _client_kill(self, conn, args: list[bytes]) -> bytes:
        """CLIENT KILL addr (old form: OK or an error) or CLIENT KILL filter value ... (a count)."""
        if len(args) == 1:
            victims = [c for c in self.conns.values() if c.session.addr.encode() == args[0]]
            if not victims:
                return b"-ERR No such client\r\n"
            self._kill(conn, victims)
            return _OK
        if len(args) % 2:
            return _SYNTAX
        tests, skipme = [], True
        for i in range(0, len(args), 2):
            opt, value = args[i].upper(), args[i + 1]
            if opt == b"ID":
                cid = _id_arg(value)
                if cid is None:
                    return b"-ERR client-id should be greater than 0\r\n"
                tests.append(lambda c, cid=cid: c.session.id == cid)
            elif opt == b"TYPE":
                kind = _TYPES.get(value.lower())
                if kind is None:
                    return resp.error_line("ERR", f"Unknown client type '{value[:64].decode('utf-8', 'replace')}'")
                tests.append(lambda c, kind=kind: _kind(c) == kind)
            elif opt == b"USER":
                if value != b"default":
                    return resp.error_line("ERR", f"No such user '{value[:64].decode('utf-8', 'replace')}'")
            elif opt == b"ADDR":
                tests.append(lambda c, v=value: c.session.addr.encode() == v)
            elif opt == b"LADDR":
                tests.append(lambda c, v=value: c.session.laddr.encode() == v)
            elif opt == b"SKIPME" and value.upper() in (b"YES", b"NO"):
                skipme = value.upper() == b"YES"
            else:
                return _SYNTAX
        victims = [c for c in self.conns.values()
                   if all(t(c) for t in tests) and not (skipme and c is conn)]
        self._kill(conn, victims)
        return b":%d\r\n" % len(victims)

    def _kill(self, conn, victims: list) -> None:
        """Close them; the asking connection itself once this reply is out, as Redis does."""
        for victim in victims:
            if victim is conn:
                conn.session.close_after = True
            else:
                self._close(victim)

    def _client_reply(self, session, mode: bytes) -> bytes:
        if mode == b"ON":
            session.reply_mode = REPLY_ON
            return _OK
        if mode == b"OFF":
            session.reply_mode = REPLY_OFF
            return b""
        if mode == b"SKIP":
            if session.reply_mode != REPLY_OFF:
                session.reply_mode = REPLY_SKIP
            return b""
        return _SYNTAX

    def _silenced(self, session, name: str, gate: bytes | None, error: bytes | None) -> bool:
        """Whether CLIENT REPLY OFF|SKIP silences this command. (P)(UN)SUBSCRIBE's confirmations
        are pushes, which Redis 7.0 sends whatever the mode (its CLIENT_PUSHING): they take the
        usual path, and a SKIP is spent on them."""
        if name not in _SUBSCRIPTIONS or gate is not None or error is not None:
            return True
        if session.reply_mode == REPLY_SKIP:
            session.reply_mode = REPLY_ON
        return False

    def _take_silenced(self, conn, name: str, argv: list[bytes], gate: bytes | None,
                       error: bytes | None) -> None:
        """One command under CLIENT REPLY OFF|SKIP: run as usual, its reply dropped (but for
        CLIENT REPLY ON and RESET, which end the mode and answer)."""
        session = conn.session
        before = session.reply_mode
        if gate is None and error is None and (name not in LOCAL or forwarded_local(name, argv)):
            if not self.link.ready:
                conn.slots.append(Slot(conn, b""))
            else:
                if name == "CLIENT":  # forwarded_local: the log actor takes it by this name only
                    argv[0] = name
                size = sum(map(len, argv))
                slot = SilencedSlot(conn, None, 1, size, None, session.resp3)
                conn.slots.append(slot)
                self.stats["commands"] += 1
                self._forward_body(conn, slot, codec.encode_batch([argv], db=session.db))
        else:
            reply = self._answer_here(conn, name, argv, gate, error)
            conn.slots.append(Slot(conn, reply if session.reply_mode == REPLY_ON else b""))
        is_reply = name == "CLIENT" and len(argv) > 1 and argv[1].upper() == b"REPLY"
        if before == REPLY_SKIP and session.reply_mode == REPLY_SKIP and not is_reply:
            session.reply_mode = REPLY_ON

    # -- PAUSE ------------------------------------------------------------------------------------

    def _client_pause(self, args: list[bytes]) -> bytes:
        text = args[0].decode("ascii", "replace")
        if not _INTEGER.fullmatch(text) or len(text) > 19:
            return b"-ERR timeout is not an integer or out of range\r\n"
        ms = int(text)
        if ms < 0:
            return b"-ERR timeout is negative\r\n"
        mode = args[1].upper() if len(args) > 1 else b"ALL"
        if len(args) > 2 or mode not in (b"WRITE", b"ALL"):
            return b"-ERR CLIENT PAUSE mode must be WRITE or ALL\r\n"
        now = time.monotonic()
        active = self.pause_until > now
        # A second pause extends the first and never weakens it (Redis: ALL wins over WRITE).
        self.pause_all = mode == b"ALL" or (active and self.pause_all)
        self.pause_until = max(self.pause_until if active else 0.0, now + ms / 1000)
        return _OK

    def _must_wait(self, argv: list[bytes]) -> bool:
        name = argv[0].upper().decode("utf-8", "replace")
        if name == "CLIENT":
            return False  # so that CLIENT UNPAUSE and CLIENT LIST still work
        if self.pause_all:
            return True
        spec = COMMANDS.get(name)
        return spec is not None and spec.write

    def _hold_paused(self, conn, commands: list[list[bytes]]) -> list[list[bytes]]:
        """The commands of a read that may run now; the rest wait for the pause's end."""
        held = self.held.get(conn)
        if held is not None:
            held.extend(commands)
            self._pause(conn)
            return []
        if time.monotonic() >= self.pause_until:
            self._unpause()
            return commands
        for i, argv in enumerate(commands):
            if self._must_wait(argv):
                self.held[conn] = commands[i:]
                self._pause(conn)
                return commands[:i]
        return commands

    def _unpause(self) -> None:
        """End the pause: run what waited, in each connection's order, and read again."""
        self.pause_until, self.pause_all = 0.0, False
        held, self.held = self.held, {}
        for conn, commands in held.items():
            if conn.closed:
                continue
            if conn not in self.paused and not self.stopping:
                self._resume(conn)
            self._take(conn, commands)
            self._send_ready(conn)

    @property
    def max_wait(self) -> float | None:
        """Wake the loop when the pause ends."""
        return max(0.0, self.pause_until - time.monotonic()) if self.pause_until else None
