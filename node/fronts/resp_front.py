"""RESP front actor: Redis's protocol on TCP, feeding the same log actor as the ZeroMQ front.

Design:
- Owns the TCP listener (``--resp-bind``), one non-blocking socket, ``RequestParser``
  (protocol/resp.py) and ``Session`` (node/fronts/resp_session.py) per connection. The log
  actor connects to its private Unix socket (``<dir>/run/resp.sock``) through the same
  ``LogLink`` as the ZeroMQ front's (node/fronts/log_link.py: ``Hello``, ``Batch`` gated by
  ``MAX_IN_FLIGHT``, ``Replies`` routed by message number, ``Forget`` on a cut-off); here,
  LOADING while no log actor, ABORTED for what was in flight when it died. It never touches
  the keyspace or the AOF.
- I/O model, chosen by measurement (docs/resp.md): plain non-blocking sockets in one epoll set,
  the epoll descriptor watched by the actor runtime like any other source. A prototype
  answering SET locally cost 7.3 us of CPU per request for this, 7.2 us for asyncio + uvloop
  (redis-benchmark, 50 clients, no pipelining; redis-server: 5.8 us), so the actor model, its
  in-process tests and its clean stop come at no cost.
- Per connection, each read is parsed into commands; consecutive forwarded commands become one
  protocol-2 message (``codec.encode_batch`` with the connection's db, at most
  ``MAX_BATCH_LENGTH`` commands and about ``MAX_MESSAGE_BYTES``); connection commands (HELLO,
  AUTH, SELECT, CLIENT, COMMAND, CONFIG, QUIT, RESET) and errors found here (unknown command,
  arity, NOAUTH) are answered locally, in place. Each message or local answer is a slot in the
  connection's FIFO: replies leave in the order the commands came (pipelining keeps order).
- Bounds: a connection is not read while it has ``MAX_CONN_WAITING`` commands or
  ``MAX_CONN_WAITING_BYTES`` bytes waiting for the log actor (nor any while all of them together
  have ``MAX_WAITING``); a connection whose unsent replies pass ``--client-output-limit`` is
  closed (Redis's client-output-buffer-limit), as is the one holding most once all together
  pass ``TOTAL_LIMIT_FACTOR`` limits; at most ``max_clients`` connections (the descriptor limit
  minus ``FD_RESERVE``), past which a new one gets Redis's "max number of clients reached".
- Bad input is an error reply, never a crash: a protocol error is answered ``-ERR Protocol
  error: ...`` after the replies to the commands before it, then the connection is closed.
- On SIGTERM: stop accepting and reading, wait (bounded) for what is in flight, send it, exit 0.
  A ``--resp-bind`` that cannot be bound exits ``exitcodes.BIND`` at once with one line.
"""
from __future__ import annotations

import collections
import os
import resource
import select
import socket
import sys
import time

from aofnode import exitcodes
from aofnode.fronts.log_link import LogLink, aborted_message
from aofnode.fronts.resp_session import LOCAL, Session, check_forwarded, config_settings
from aofnode.runtime.actor import Actor, Runtime
from aofnode.config import REQUIREPASS_ENV, Config, is_loopback_host, parse_host_port, read_password_file
from aofnode import protocol as codec
from aofnode import protocol as resp
from aofnode.fronts.resp_gateway import encode_message_reply
from aofnode.protocol.commands import COMMANDS

__all__ = ["RespFront", "main", "BindError"]

# As the ZeroMQ front (node/fronts/zmq_front.py says why).
MAX_WAITING = 50_000
FD_RESERVE = 64
SHUTDOWN_GRACE_S = 10.0
# One recv per ready connection per turn: 64 KiB holds ~1,500 pipelined SETs of small values
# (redis-benchmark -P 16 sends 16 per write), and one turn stays fair between connections.
RECV_BYTES = 64 * 1024
# A connection stops being read while this many of its commands, or this many of its bytes,
# wait for the log actor: a client that pipelines without reading makes TCP push back on it
# instead of this process growing. 10,000: a full message (codec.MAX_BATCH_LENGTH);
# 2 x MAX_MESSAGE_BYTES: one biggest command in flight and the next one read.
MAX_CONN_WAITING = codec.MAX_BATCH_LENGTH
MAX_CONN_WAITING_BYTES = 2 * codec.MAX_MESSAGE_BYTES
# All connections together: MAX_WAITING commands (as the ZeroMQ front), and this many bytes, two
# connections at their own bound; past either, no connection is read until they drop (the log
# actor drains them, so this cannot deadlock).
MAX_WAITING_BYTES = 2 * MAX_CONN_WAITING_BYTES
# Unsent replies of all connections together are bounded by this many client limits (as
# node/fronts/outbox.py); past it the connection holding most is closed.
TOTAL_LIMIT_FACTOR = 4
# Incomplete commands held by all connections' parsers together (each is at most one command,
# resp.MAX_COMMAND_BYTES): four of the biggest at once; past it the connection holding most is
# closed. Without it, clients each sending most of a 64 MiB command and stopping could hold
# 64 MiB apiece, as many as there are connections.
TOTAL_INPUT_LIMIT = 4 * codec.MAX_MESSAGE_BYTES
LOG_INTERVAL_S = 1.0
# Messages to the log actor: a connection's run of forwarded commands is cut into messages of at
# most MAX_BATCH_LENGTH commands and MESSAGE_BYTES, counting each argument's msgpack size at most
# (its bytes + resp.ARG_OVERHEAD): the codec refuses a message over MAX_MESSAGE_BYTES, and the
# parser already refused any single command bigger than resp.MAX_COMMAND_BYTES (<= this).
MESSAGE_BYTES = resp.MAX_COMMAND_BYTES

_LOADING = resp.error_line(codec.LOADING, codec.LOADING_MESSAGE)
_MAX_CLIENTS = b"-ERR max number of clients reached\r\n"
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
_GONE = select.EPOLLHUP | select.EPOLLERR
_SHAPED = frozenset({"INFO", "HGETALL"})  # replies whose Redis shape differs from aofnode's value
_ARG_OVERHEAD = resp.ARG_OVERHEAD
# Command name as sent (upper or lower case) -> (NAME, arity), for the commands forwarded as
# they are; anything else takes check_forwarded's path (mixed case, errors, connection commands).
_FORWARD = {spelling: (name, spec.arity) for name, spec in COMMANDS.items() if name not in LOCAL
            for spelling in (name.encode(), name.lower().encode())}


class BindError(Exception):
    """--resp-bind cannot be bound (in use, bad address) or must not be: fatal, not restartable."""


class _Slot:
    """One place in a connection's reply order: a message to the log actor (``count`` commands)
    or a reply made here. ``names`` only when a command of the message has a shaped reply."""

    __slots__ = ("reply", "count", "names", "resp3")

    def __init__(self, reply: bytes | None, count: int = 1, names: list[str] | None = None,
                 resp3: bool = False) -> None:
        self.reply = reply
        self.count = count
        self.names = names
        self.resp3 = resp3


class _Conn:
    __slots__ = ("sock", "fd", "session", "parser", "slots", "out", "mask", "reading", "closing",
                 "closed", "waiting", "waiting_bytes", "key")

    def __init__(self, sock: socket.socket, session: Session, parser: resp.RequestParser) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.session = session
        self.parser = parser
        self.slots: collections.deque[_Slot] = collections.deque()
        self.out = bytearray()  # replies the kernel has not taken yet
        self.mask = _EPOLLIN
        self.reading = True  # not paused by a bound
        self.closing = False  # QUIT or a protocol error: close once the replies are out
        self.closed = False
        self.waiting = 0  # commands in messages not answered yet
        self.waiting_bytes = 0
        self.key = session.id  # the client key in Batch (unique for the life of this process)


class RespFront(Actor):
    tick_interval = 1.0  # Stats to the log actor

    def __init__(self, config: Config, log, password: bytes | None = None) -> None:
        self.config = config
        self.log = log
        self.password = password
        self.runtime: Runtime | None = None
        self.listener: socket.socket | None = None
        self.epoll: select.epoll | None = None
        self.conns: dict[int, _Conn] = {}  # fd -> connection
        self.next_conn_id = 1
        self.waiting = 0  # commands in messages queued in the link or in flight
        self.waiting_bytes = 0  # their bytes (MAX_WAITING_BYTES)
        self.dirty: set[_Conn] = set()  # connections with new replies to send this turn
        self.paused: set[_Conn] = set()
        self.total_out = 0
        self.input_bytes = 0  # incomplete commands held by all parsers (TOTAL_INPUT_LIMIT)
        self.accepting = True
        self.stopping = False
        self.stop_deadline = 0.0
        self.max_clients = 0
        self.settings: dict[str, str] = {}
        # Counters for INFO (sent prefixed ``resp_``); the documented ones exist from the start.
        self.stats = collections.Counter(dict.fromkeys((
            "total_connections_received", "rejected_connections", "accept_failures", "commands",
            "batches", "protocol_errors", "auth_failures", "noauth_replies", "rejected_commands",
            "output_limit_disconnections", "input_limit_disconnections", "dropped_replies_client_gone",
            "internal_errors"), 0))
        self._last_cut_log = -LOG_INTERVAL_S
        self._cut_unlogged = 0
        # The log actor's end: a message's token is (conn, slot, its bytes).
        self.link = LogLink(config.resp_backend_path, "resp", log, self.stats, self._on_replies,
                            self._on_log_lost)

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        host, port = _checked_bind(self.config, self.password)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(511)  # Redis's tcp-backlog
        except OSError as exc:
            sock.close()
            raise BindError(f"cannot bind --resp-bind {self.config.resp_bind}: {exc.strerror or exc}") from exc
        self.listener = sock
        self.max_clients = max(0, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE)
        self.settings = config_settings(self.config, self.max_clients)
        self.epoll = select.epoll()
        self.epoll.register(sock.fileno(), _EPOLLIN)
        runtime.watch(self.epoll.fileno(), self._on_epoll)
        self.link.start(runtime, self.config.dir)
        self.log.info("actor_started", bind=self.config.resp_bind, auth=self.password is not None)

    def on_tick(self, now: float) -> None:
        self.link.send_stats(self.counters)

    def counters(self) -> dict:
        return {"resp_connected_clients": len(self.conns), "resp_waiting": self.waiting,
                "resp_waiting_bytes": self.waiting_bytes,
                "resp_max_clients": self.max_clients, "resp_output_waiting_bytes": self.total_out,
                "resp_input_buffered_bytes": self.input_bytes,
                "resp_clients_paused": len(self.paused),
                "resp_rejected_internal_peers": self.link.rejected,
                "resp_requirepass": int(self.password is not None),  # never the password itself
                **{"resp_" + k: v for k, v in self.stats.items()}}

    @property
    def ready(self) -> bool:
        """A log actor said Hello and is serving."""
        return self.link.ready

    def on_turn(self) -> None:
        self.link.flush()
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for conn in dirty:
                if not conn.closed:
                    self._write(conn)
        if (self.paused and not self.stopping and self.waiting < MAX_WAITING
                and self.waiting_bytes <= MAX_WAITING_BYTES // 2):
            for conn in list(self.paused):
                if conn.closed or (conn.waiting < MAX_CONN_WAITING // 2
                                   and conn.waiting_bytes <= MAX_CONN_WAITING_BYTES // 2):
                    self.paused.discard(conn)
                    if not conn.closed:
                        conn.reading = True
                        self._set_mask(conn)

    def on_stop_requested(self) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + SHUTDOWN_GRACE_S
        if self.listener is not None and self.accepting:
            self.epoll.unregister(self.listener.fileno())
            self.accepting = False
        for conn in self.conns.values():
            conn.reading = False
            self._set_mask(conn)
        self.log.info("front_stopping", in_flight=len(self.link.in_flight), waiting=self.waiting)

    def finished(self) -> bool:
        if time.monotonic() > self.stop_deadline:
            return True
        return self.link.idle and not any(c.out for c in self.conns.values())

    def on_stop(self) -> int:
        self.log.info("actor_stopped", unanswered=self.waiting)
        for conn in list(self.conns.values()):
            self._close(conn)
        if self.listener is not None:
            self.listener.close()
        self.link.close()
        if self.epoll is not None:
            self.epoll.close()
        return 0

    # -- connections ----------------------------------------------------------------------------

    def _on_epoll(self) -> None:
        listener_fd = self.listener.fileno()
        conns = self.conns
        for fd, events in self.epoll.poll(0, 1024):
            if fd == listener_fd:
                self._accept()
                continue
            conn = conns.get(fd)
            if conn is None:
                continue
            if events & _EPOLLOUT:
                self._write(conn)
            if conn.closed:
                continue
            if conn.reading:
                if events & ~_EPOLLOUT:
                    self._read(conn)
            elif events & _GONE:  # paused and the peer is gone: reading on would pass the bound
                self._close(conn)

    def _accept(self) -> None:
        for _ in range(64):  # a bounded share of a turn: connection storms do not starve replies
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE/ENFILE: counted, the listener retried next turn
                self.stats["accept_failures"] += 1
                if self.stats["accept_failures"] == 1 or self.stats["accept_failures"] % 1000 == 0:
                    self.log.error("client_accept_failed", errno=exc.errno, error=os.strerror(exc.errno or 0),
                                   connected_clients=len(self.conns), max_clients=self.max_clients,
                                   accept_failures=self.stats["accept_failures"])
                return
            self.stats["total_connections_received"] += 1
            if len(self.conns) >= self.max_clients or self.stopping:
                self.stats["rejected_connections"] += 1
                try:
                    sock.send(_MAX_CLIENTS)
                except OSError:
                    pass
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn_id = self.next_conn_id
            self.next_conn_id += 1
            session = Session(conn_id, self.password, self.settings, addr=_addr(addr),
                              laddr=_addr(sock.getsockname()), fd=sock.fileno())
            conn = _Conn(sock, session, resp.RequestParser(authenticated=session.authenticated))
            self.conns[conn.fd] = conn
            self.epoll.register(conn.fd, _EPOLLIN)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        parser = conn.parser
        held = parser.buffered
        commands = parser.feed(data)
        if parser.buffered != held:
            self.input_bytes += parser.buffered - held
            if self.input_bytes > TOTAL_INPUT_LIMIT:
                self._cut_input()
                if conn.closed:
                    return
        if commands:
            self._take(conn, commands)
        if parser.error is not None and not conn.closing:
            self.stats["protocol_errors"] += 1
            conn.slots.append(_Slot(resp.error_line("ERR", parser.error)))
            self._closing(conn)
        if conn.slots and conn.slots[0].reply is not None:
            self._send_ready(conn)

    def _take(self, conn: _Conn, commands: list[list[bytes]]) -> None:
        """Group a read's commands into messages and local answers, in order."""
        session = conn.session
        group: list[list[bytes]] = []
        names: list[str] = []
        shaped = False
        size = 0
        fast = _FORWARD if session.authenticated else {}
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
                    group.append(argv)
                    names.append(name)
                    shaped = shaped or name in _SHAPED
                    size += cost
                    continue
            if conn.closing:
                break  # after QUIT nothing more runs (as Redis)
            name, error = check_forwarded(argv)
            if error is not None and name in LOCAL:
                error = None
            gate = session.gate(name)
            if gate is None and error is None and name not in LOCAL:
                # The hot path's grouping again: one shared exit for both paths cost the hot
                # path 5-10 ns per command (3-4% of this loop, measured), so it stays written twice.
                cost = sum(map(len, argv)) + _ARG_OVERHEAD * len(argv)
                if group and (size + cost > MESSAGE_BYTES or len(group) >= codec.MAX_BATCH_LENGTH):
                    self._forward(conn, group, names if shaped else None, size)
                    group, names, shaped, size = [], [], False, 0
                group.append(argv)
                names.append(name)
                shaped = shaped or name in _SHAPED
                size += cost
                continue
            if group:
                self._forward(conn, group, names if shaped else None, size)
                group, names, shaped, size = [], [], False, 0
            if gate is not None:
                reply = gate
                self.stats["noauth_replies"] += 1
            elif error is not None:
                reply = error
                self.stats["rejected_commands"] += 1
            else:
                failures = session.auth_failures
                try:
                    reply = session.run(name, argv)
                except Exception:  # a bug in a connection command must not end every connection
                    self.stats["internal_errors"] += 1
                    reply = b"-ERR internal error in " + name.encode() + b" (counted in resp_internal_errors)\r\n"
                if session.auth_failures != failures:
                    self.stats["auth_failures"] += 1
                conn.parser.authenticated = session.authenticated
                fast = _FORWARD if session.authenticated else {}
                if session.close_after:
                    conn.slots.append(_Slot(reply))
                    self._closing(conn)
                    break
            conn.slots.append(_Slot(reply))
        if group:
            self._forward(conn, group, names if shaped else None, size)

    def _forward(self, conn: _Conn, group: list[list[bytes]], names: list[str] | None, size: int) -> None:
        session = conn.session
        link = self.link
        if not link.ready:
            conn.slots.append(_Slot(_LOADING * len(group)))
            return
        slot = _Slot(None, len(group), names, session.resp3)
        conn.slots.append(slot)
        body = codec.encode_batch(group, db=session.db)
        link.queue((conn, slot, size), conn.key, body)
        self.stats["commands"] += len(group)
        conn.waiting += len(group)
        conn.waiting_bytes += size
        self.waiting += len(group)
        self.waiting_bytes += size
        if (conn.waiting >= MAX_CONN_WAITING or conn.waiting_bytes > MAX_CONN_WAITING_BYTES
                or self.waiting >= MAX_WAITING or self.waiting_bytes > MAX_WAITING_BYTES):
            conn.reading = False
            self.paused.add(conn)
            self._set_mask(conn)

    def _closing(self, conn: _Conn) -> None:
        conn.closing = True
        conn.reading = False
        self._set_mask(conn)

    def _send_ready(self, conn: _Conn) -> None:
        """Move this connection's ready replies, in order, to its output buffer."""
        slots = conn.slots
        out = conn.out
        before = len(out)
        while slots and slots[0].reply is not None:
            out += slots.popleft().reply
        added = len(out) - before
        if added:
            self.total_out += added
            self.dirty.add(conn)
            if len(out) > self.config.client_output_limit:
                self._cut_off(conn)
            elif self.total_out > TOTAL_LIMIT_FACTOR * self.config.client_output_limit:
                self._cut_off(max(self.conns.values(), key=lambda c: len(c.out)))

    def _write(self, conn: _Conn) -> None:
        out = conn.out
        if out:
            try:
                n = conn.sock.send(out)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                self._close(conn)
                return
            if n:
                del out[:n]
                self.total_out -= n
        if not out and conn.closing and not conn.slots:
            self._close(conn)
            return
        self._set_mask(conn)

    def _set_mask(self, conn: _Conn) -> None:
        if conn.closed:
            return
        mask = (_EPOLLIN if conn.reading and not conn.closing else 0) | (_EPOLLOUT if conn.out else 0)
        if mask != conn.mask:
            conn.mask = mask
            self.epoll.modify(conn.fd, mask)

    def _cut_off(self, conn: _Conn) -> None:
        """Past --client-output-limit: close it (Redis closes such a client too), drop its work
        here and in the log actor (its replies would only be dropped)."""
        held = len(conn.out)
        self.stats["output_limit_disconnections"] += 1
        now = time.monotonic()
        if now - self._last_cut_log >= LOG_INTERVAL_S:
            self.log.warning("client_output_limit_reached", identity=f"resp:{conn.session.addr}:{conn.key}",
                             held_bytes=held, limit=self.config.client_output_limit,
                             dropped_replies=len(conn.slots), cut_off_s=0.0,
                             also_cut_since_last_line=self._cut_unlogged)
            self._last_cut_log, self._cut_unlogged = now, 0
        else:
            self._cut_unlogged += 1
        forget = conn.waiting > 0
        self._close(conn)
        if forget:
            self.link.send_forget(conn.key)

    def _cut_input(self) -> None:
        """All connections' incomplete commands together passed TOTAL_INPUT_LIMIT: close the one
        holding most (as the output side does; pausing them instead could leave every one of
        them waiting for the rest of its command)."""
        conn = max(self.conns.values(), key=lambda c: c.parser.buffered)
        self.stats["input_limit_disconnections"] += 1
        self._close(conn)

    def _close(self, conn: _Conn) -> None:
        """Close now: replies still owed to it are dropped when they come."""
        if conn.closed:
            return
        conn.closed = True
        self.input_bytes -= conn.parser.buffered
        self.total_out -= len(conn.out)
        conn.out = bytearray()
        conn.slots.clear()
        self.paused.discard(conn)
        self.dirty.discard(conn)
        self.conns.pop(conn.fd, None)
        try:
            self.epoll.unregister(conn.fd)
        except (OSError, ValueError):
            pass
        conn.sock.close()
        if conn.waiting and self.link.drop_unsent(lambda token: token[0] is conn):
            self._recount()  # its messages not sent yet need not go

    def _recount(self) -> None:
        """Waiting counts from what is really waiting (after dropping a closed connection's
        unsent messages: rare, so a walk is fine)."""
        self.waiting = self.waiting_bytes = 0
        for conn in self.conns.values():
            conn.waiting = conn.waiting_bytes = 0
        for conn, slot, size in [*self.link.unsent, *self.link.in_flight.values()]:
            conn.waiting += slot.count
            conn.waiting_bytes += size
            self.waiting += slot.count
            self.waiting_bytes += size

    # -- the log actor's replies (node/fronts/log_link.py) -------------------------------------

    def _on_replies(self, entries: list, replies: list[bytes]) -> None:
        touched = set()
        for entry, reply in zip(entries, replies):
            if entry is None:
                continue
            conn, slot, size = entry
            self.waiting -= slot.count
            self.waiting_bytes -= size
            if conn.closed:
                self.stats["dropped_replies_client_gone"] += 1
                continue
            conn.waiting -= slot.count
            conn.waiting_bytes -= size
            slot.reply = encode_message_reply(reply, slot.count, slot.names, slot.resp3)
            touched.add(conn)
        for conn in touched:
            self._send_ready(conn)

    def _on_log_lost(self, reason: str, in_flight: list, unsent: list) -> None:
        """Answer everything the dead log actor held; LOADING until a new one says Hello."""
        aborted = resp.error_line(codec.ABORTED, aborted_message(reason))
        touched = set()
        for conn, slot, _ in in_flight:
            slot.reply = aborted * slot.count
            touched.add(conn)
        for conn, slot, _ in unsent:
            slot.reply = _LOADING * slot.count
            touched.add(conn)
        self.waiting = self.waiting_bytes = 0
        for conn in self.conns.values():
            conn.waiting = conn.waiting_bytes = 0
        for conn in touched:
            if not conn.closed:
                self._send_ready(conn)


def _addr(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _checked_bind(config: Config, password: bytes | None) -> tuple[str, int]:
    """The address to bind; BindError if it is malformed or reachable without a password (the
    supervisor refuses that at start already: this is the same rule, here too)."""
    try:
        host, port = parse_host_port(config.resp_bind or "")
    except ValueError as exc:
        raise BindError(f"--resp-bind: {exc}") from None
    if password is None and not is_loopback_host(host):
        raise BindError(f"refusing to serve RESP on {config.resp_bind} without a password")
    return ("127.0.0.1" if host == "localhost" else host), port


def read_password(config: Config) -> bytes | None:
    """--requirepass (from the supervisor, in the environment) or --requirepass-file, as the
    bytes given, UTF-8 or not (AUTH compares bytes): each is encoded back the way it was decoded
    (os.environ with the file-system encoding, read_password_file as UTF-8), surrogateescape
    keeping every other byte; a plain .encode() raised on a 0xff."""
    secret = os.environ.pop(REQUIREPASS_ENV, None)
    if secret:
        return os.fsencode(secret)
    if config.requirepass_file:
        return read_password_file(config.requirepass_file).encode("utf-8", "surrogateescape")
    return None


def main(config: Config, log) -> int:
    try:
        password = read_password(config)
    except ValueError as exc:
        log.error("bind_failed", bind=config.resp_bind or "", error=str(exc))
        print(f"aofnode: {exc}", file=sys.stderr)
        return exitcodes.BIND
    runtime = Runtime(RespFront(config, log, password))
    try:
        runtime.start()
    except BindError as exc:
        log.error("bind_failed", bind=config.resp_bind or "", error=str(exc))
        print(f"aofnode: {exc}", file=sys.stderr)
        return exitcodes.BIND
    return runtime.run()
