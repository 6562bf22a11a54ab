"""A RESP connection (``Conn``) and its commands: each forwarded to the log actor or answered here.

Design:
- A read's commands are taken in order: consecutive forwarded commands become one protocol-2
  message (the connection's db in its header, at most ``MAX_BATCH_LENGTH`` commands and about
  ``MESSAGE_BYTES``); connection commands (node/fronts/resp_session.py) and errors found here
  (unknown command, arity, NOAUTH) are answered in place. Each message or answer is a slot in
  the connection's reply order (node/fronts/core.py).
- Each forwarded command goes with its name as the command table's key (``"SET"``): its name
  and arity are checked here, so the log actor only looks the name up
  (protocol/server.py, ``decode_message``'s ``checked``), never checks them again.
- The header also names the connection's protocol (``"resp": 2`` or ``3``): the log actor then
  makes the replies as RESP (node/log/replies.py), once, and they go to the socket as they come.
  Only a subscriber's messages (the front reads its subscription count from the replies) and a
  RESET's in subscriber mode ask for protocol 2 and are made into RESP here
  (node/fronts/resp_gateway.py), as are transactions (node/fronts/resp_multi.py).
- A mixin of ``RespFront`` (node/fronts/resp_front.py): ``_take`` is its per-read hot path.
"""
from __future__ import annotations

import select
import socket
import time

import msgpack

from aofnode.fronts import core
from aofnode.runtime import latency
from aofnode.fronts.resp_session import LOCAL, Session, check_forwarded, forwarded_local
from aofnode import protocol as codec
from aofnode import protocol as resp
from aofnode.protocol.commands import COMMANDS
from aofnode.protocol.keyspecs import SPECS
from aofnode.fronts.resp_gateway import encode_message_reply
from aofnode.fronts.resp_pubsub import PUBSUB_NAMES, subscriber_gate

__all__ = ["CommandRouting", "Conn", "Slot", "SilencedSlot", "TRACKING_SUBCOMMANDS", "MESSAGE_BYTES", "out_bytes"]

# Messages to the log actor: a connection's run of forwarded commands is cut into messages of at
# most MAX_BATCH_LENGTH commands and MESSAGE_BYTES, counting each argument's msgpack size at most
# (its bytes + resp.ARG_OVERHEAD): the codec refuses a message over MAX_MESSAGE_BYTES, and the
# parser already refused any single command bigger than resp.MAX_COMMAND_BYTES (<= this).
MESSAGE_BYTES = resp.MAX_COMMAND_BYTES

_LOADING = resp.error_line(codec.LOADING, codec.LOADING_MESSAGE)
_SHAPED = resp.SHAPED  # replies whose Redis shape differs from aofnode's value
_ARG_OVERHEAD = resp.ARG_OVERHEAD
# Command name as sent (upper or lower case) -> (NAME, arity), for the commands forwarded as
# they are; anything else takes check_forwarded's path (mixed case, errors, connection commands,
# pub/sub, whose subscriber state the front keeps). Transaction commands, and every command while
# in MULTI, take node/fronts/resp_multi.py's path.
_TX = frozenset({"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"})
_FORWARD = {spelling: (name, spec.arity) for name, spec in COMMANDS.items()
            if name not in LOCAL and name not in PUBSUB_NAMES and name != "MONITOR"
            for spelling in (name.encode(), name.lower().encode())}


# CLIENT's subcommands the log actor answers (node/fronts/resp_tracking.py).
TRACKING_SUBCOMMANDS = frozenset((b"tracking", b"caching", b"getredir", b"trackinginfo"))

# Commands whose subcommand names their commandstats entry (``client|id``).
_WITH_SUBCOMMANDS = frozenset(name.partition("|")[0] for name in SPECS if "|" in name)

# A forwarded message's header: its db, and the protocol its replies are wanted in (the log
# actor then makes them as RESP, node/log/replies.py), or none (protocol 2: made into RESP here).
_HEADERS = {(db, resp): {**({"db": db} if db else {}), **({"resp": resp} if resp else {})}
            for db in range(codec.NUM_DBS) for resp in (0, 2, 3)}
_packb = msgpack.Packer(use_bin_type=True).pack


class Slot(core.Slot):
    """``names`` only when a command of the message has a shaped reply; ``raw``: the log actor
    was asked for its replies as RESP."""

    __slots__ = ("names", "resp3", "raw")
    silenced = False

    def __init__(self, conn, reply: bytes | None, count: int = 1, size: int = 0,
                 names: list[str] | None = None, resp3: bool = False, raw: bool = False) -> None:
        self.client = conn
        self.reply = reply
        self.count = count
        self.size = size
        self.names = names
        self.resp3 = resp3
        self.raw = raw


class SilencedSlot(Slot):
    """A command sent under CLIENT REPLY OFF|SKIP: its reply is dropped when it comes."""

    __slots__ = ()
    silenced = True


class Conn(core.Client):
    """A connection: its socket, parser and session, output buffer and read state."""

    __slots__ = ("sock", "fd", "session", "parser", "out", "mask", "reading", "closing", "pubsub")

    def __init__(self, sock: socket.socket, session: Session, parser: resp.RequestParser) -> None:
        super().__init__(session.id)  # the client key in Batch
        self.sock = sock
        self.fd = sock.fileno()
        self.session = session
        self.parser = parser
        self.out = bytearray()  # replies the kernel has not taken yet
        self.mask = select.EPOLLIN
        self.reading = True  # not paused by a bound
        self.closing = False  # QUIT or a protocol error: close once the replies are out
        self.pubsub = None  # its subscriptions (node/fronts/resp_pubsub.py), once it subscribed


def out_bytes(conn: Conn) -> int:
    return len(conn.out)



_NO_FAST_PATH: dict = {}


def _fast_table(conn) -> dict:
    """The hot path's table, or an empty one while the connection is not plain: before AUTH,
    inside MULTI, with CLIENT REPLY OFF|SKIP, or in subscriber mode (each takes the slow path's
    checks)."""
    session = conn.session
    if session.authenticated and session.multi is None and not session.reply_mode and conn.pubsub is None:
        return _FORWARD
    return _NO_FAST_PATH


class CommandRouting:
    """``_take``, and what it calls, for ``RespFront``."""

    # Whether the log actor's latency-tracking is on (it says so in a Stats, before the reply
    # to the CONFIG SET that changed it); off, a command answered here costs one test more.
    latency_tracking = False
    local_start = 0  # perf_counter_ns() when the command being answered here was taken

    def _take(self, conn, commands: list[list[bytes]]) -> None:
        """Group a read's commands into messages and local answers, in order."""
        session = conn.session
        group: list[list[bytes]] = []
        names: list[str] = []
        shaped = False
        size = 0
        fast = _fast_table(conn)
        for argv in commands:
            entry = fast.get(argv[0])
            if entry is not None:  # the hot path: a known data command, right arity, authenticated
                name, arity = entry
                n = len(argv)
                if n == arity or (arity < 0 and n >= -arity):
                    cost = sum(map(len, argv)) + _ARG_OVERHEAD * n
                    if group and (size + cost > MESSAGE_BYTES or len(group) >= codec.MAX_BATCH_LENGTH):
                        self._forward(conn, group, names if shaped else None, size)
                        group, names, shaped, size = [], [], False, 0
                    argv[0] = name  # checked here: the log actor only looks the name up
                    group.append(argv)
                    if name in _SHAPED:
                        shaped = True
                        name = resp.reply_shape(name, argv)
                    names.append(name)
                    size += cost
                    continue
            if conn.closing:
                break  # after QUIT nothing more runs (as Redis)
            if self.latency_tracking:  # the start of a command ``count_command`` may time
                self.local_start = time.perf_counter_ns()
            name, error = check_forwarded(argv)
            if error is not None and name in LOCAL:
                error = None
            gate = session.gate(name)
            if gate is None and error is None and conn.pubsub is not None:
                error = subscriber_gate(conn.pubsub, session.resp3, name, argv)
            if name == "RESET" and session.tracking & 1 and gate is None and error is None:
                if group:
                    self._forward(conn, group, names if shaped else None, size)
                    group, names, shaped, size = [], [], False, 0
                self._tracking_reset(conn)  # CLIENT TRACKING off first (node/fronts/resp_tracking.py)
            # Two rare states take a command off this path: a transaction (MULTI...EXEC,
            # node/fronts/resp_multi.py) and CLIENT REPLY OFF|SKIP (node/fronts/resp_clients.py).
            if conn.pubsub is None and (session.multi is not None or name in _TX
                                        or (name == "RESET" and session.watching)):
                divert = self._transaction
            elif session.reply_mode and self._silenced(session, name, gate, error):
                divert = self._take_silenced
            else:
                divert = None
            if divert is not None:
                if group:
                    self._forward(conn, group, names if shaped else None, size)
                    group, names, shaped, size = [], [], False, 0
                divert(conn, name, argv, gate, error)
                if session.close_after:
                    self._closing(conn)
                    break
                fast = _fast_table(conn)
                continue
            if gate is None and error is None and (name not in LOCAL or forwarded_local(name, argv)):
                if name in PUBSUB_NAMES:
                    self._pubsub_forwarded(conn, name)
                elif name == "MONITOR":
                    self._monitor_forwarded(conn)
                # The hot path's grouping again: one shared exit for both paths cost the hot
                # path 5-10 ns per command (3-4% of this loop, measured), so it stays written twice.
                cost = sum(map(len, argv)) + _ARG_OVERHEAD * len(argv)
                if group and (size + cost > MESSAGE_BYTES or len(group) >= codec.MAX_BATCH_LENGTH):
                    self._forward(conn, group, names if shaped else None, size)
                    group, names, shaped, size = [], [], False, 0
                argv[0] = name
                group.append(argv)
                if name in _SHAPED:
                    shaped = True
                    name = resp.reply_shape(name, argv)
                names.append(name)
                size += cost
                continue
            if group:
                self._forward(conn, group, names if shaped else None, size)
                group, names, shaped, size = [], [], False, 0
            if (name == "CLIENT" and gate is None and error is None and len(argv) > 1
                    and argv[1].lower() in TRACKING_SUBCOMMANDS):
                self._tracking_command(conn, argv)  # the log actor's (node/log/tracking.py)
                fast = _fast_table(conn)
                continue
            if name == "RESET" and conn.pubsub is not None and gate is None and error is None:
                self._pubsub_reset(conn)  # unsubscribes in the log actor, in the reply order
                fast = _FORWARD if session.authenticated else {}
                continue
            reply = self._answer_here(conn, name, argv, gate, error)
            conn.slots.append(Slot(conn, reply))
            if self.monitoring:  # MONITOR: commands answered here (node/fronts/resp_monitor.py)
                self._monitor_here(conn, name, argv, gate, error)
            if session.close_after:
                self._closing(conn)
                break
            fast = _fast_table(conn)
        if group:
            self._forward(conn, group, names if shaped else None, size)

    def _answer_here(self, conn, name: str, argv: list[bytes], gate: bytes | None,
                     error: bytes | None) -> bytes:
        """The reply to a command answered here: NOAUTH, an error found here, or a connection
        command run by the session."""
        if gate is not None:
            self.stats["noauth_replies"] += 1
            self.count_error(gate)
            self.count_command(name, argv, rejected=True)
            return gate
        if error is not None:
            self.stats["rejected_commands"] += 1
            self.count_error(error)
            self.count_command(name, argv, rejected=True)
            return error
        session = conn.session
        failures = session.auth_failures
        try:
            if name == "CLIENT":  # it needs every connection: the front answers it
                reply = self._client_command(conn, argv)
            else:
                reply = session.run(name, argv)
        except Exception:  # a bug in a connection command must not end every connection
            self.stats["internal_errors"] += 1
            reply = b"-ERR internal error in " + name.encode() + b" (counted in resp_internal_errors)\r\n"
        if session.auth_failures != failures:
            self.stats["auth_failures"] += 1
        conn.parser.authenticated = session.authenticated
        if reply[:1] == b"-":
            self.count_error(reply)
        self.count_command(name, argv, failed=reply[:1] == b"-")
        return reply

    def count_command(self, name: str, argv: list[bytes], rejected: bool = False,
                      failed: bool = False) -> None:
        """A command answered here, for INFO commandstats: refused before it ran (``rejected``),
        or run, and ``failed`` if its reply is an error. Only the names Redis has (its
        ``client|id`` for a subcommand), so that no client can grow the table."""
        key = name.lower()
        if len(argv) > 1 and key in _WITH_SUBCOMMANDS:
            # An unknown subcommand counts nowhere, as in Redis (it finds no command to count).
            key = f"{key}|{argv[1][:32].decode('utf-8', 'replace').lower()}"
        if key not in SPECS:
            return
        counts = self.cmdstats.get(key)
        if counts is None:
            counts = self.cmdstats[key] = [0, 0, 0]  # calls, rejected, failed
        if rejected:
            counts[1] += 1
        else:
            counts[0] += 1
            counts[2] += failed
            if self.latency_tracking:  # its time here, from its take (Redis: its call())
                hist = self.latency.get(key)
                if hist is None:
                    hist = self.latency[key] = {}
                latency.record(hist, time.perf_counter_ns() - self.local_start)
        self.stats_due = True

    def count_error(self, reply: bytes, count: int = 1) -> None:
        """An error reply made here, for INFO errorstats (by its prefix, as Redis counts)."""
        end = reply.find(b" ")
        prefix = reply[1:end if end > 0 else len(reply) - 2].decode("utf-8", "replace")
        self.errorstats[prefix] += count
        self.stats_due = True  # an INFO right after it counts it (Redis's tests ask at once)

    def _forward(self, conn, group: list[list[bytes]], names: list[str] | None, size: int) -> None:
        session = conn.session
        if not self.link.ready:
            conn.slots.append(Slot(conn, _LOADING * len(group)))
            self.count_error(_LOADING, len(group))
            return
        # The replies are made as RESP in the log actor, but while the front must read them:
        # a subscriber's (its subscription count) and a RESET's in subscriber mode.
        raw = conn.pubsub is None and (names is None or names[0] != "RESET")
        resp3 = session.resp3
        slot = Slot(conn, None, len(group), size, names, resp3, raw)
        conn.slots.append(slot)
        self.stats["commands"] += len(group)
        # The parser's arguments are bytes, the names known commands: packed as they are,
        # without encode_batch's checks per argument.
        header = _HEADERS[session.db, (3 if resp3 else 2) if raw else 0]
        self._forward_body(conn, slot, _packb([header, group]))

    def _reply_from_log(self, slot: Slot, reply: bytes) -> bytes:
        if slot.raw and reply[:1] < b"\x80":  # RESP, made in the log actor (else protocol 2)
            return reply
        if slot.silenced:
            return b""
        if slot.__class__ is not Slot:  # a transaction's (node/fronts/resp_multi.py)
            return slot.from_log(reply)
        if slot.names is not None:
            if slot.names[0] == "RESET":
                return b"+RESET\r\n"  # the unsubscribes of a RESET in subscriber mode
            if slot.client.pubsub is not None:
                self._pubsub_replied(slot.client, slot.names, reply)
        return encode_message_reply(reply, slot.count, slot.names, slot.resp3)

    def _error_reply(self, slot: Slot, code: str, message: str) -> bytes:
        if slot.silenced:
            return b""
        return resp.error_line(code, message) * slot.count
