"""RESP front actor: Redis's protocol on TCP, an adapter over the front core.

Design:
- Owns the TCP listener (``--resp-bind``), one non-blocking socket, ``RequestParser``
  (protocol/resp_request.py) and ``Session`` (node/fronts/resp_session.py) per connection, all in one
  epoll set watched by the actor runtime (chosen by measurement: docs/resp.md). Reply order,
  waiting bounds, the log link and the stop are the core's (node/fronts/core.py).
- Each read is parsed into commands; consecutive forwarded commands become one protocol-2
  message (at most ``MAX_BATCH_LENGTH`` commands and about ``MESSAGE_BYTES``); connection
  commands and errors found here (unknown command, arity, NOAUTH) are answered in place.
- Bounds beyond the core's: unsent replies (``--client-output-limit``, Redis's
  client-output-buffer-limit: the connection is closed), incomplete commands of all parsers
  (``TOTAL_INPUT_LIMIT``) and ``max_clients`` connections. Bad input is an error reply, never a
  crash: a protocol error is answered, then the connection is closed. Docs: docs/limits.md.
"""
from __future__ import annotations

import collections
import select
import socket
import time

from aofnode.config import Config, read_requirepass, resp_bind_address
from aofnode.fronts import listen
from aofnode.fronts.core import (BindError, FrontCore, TOTAL_LIMIT_FACTOR, Throttle, pick_cut_off,
                                 refuse_bind, run)
from aofnode.fronts.resp_clients import ClientCommands
from aofnode.fronts.resp_pubsub import PubSubFront
from aofnode.fronts.resp_monitor import MonitorFront
from aofnode.fronts.resp_tracking import TrackingFront
from aofnode.fronts.resp_route import CommandRouting, Conn, Slot, out_bytes
from aofnode.fronts.resp_multi import TransactionRouting
from aofnode.fronts.resp_session import Session, config_settings
from aofnode import protocol as codec
from aofnode import protocol as resp
from aofnode.runtime import latency
from aofnode.runtime.actor import Runtime

__all__ = ["RespFront", "main", "BindError"]

# One recv per ready connection per turn: 64 KiB holds ~1,500 pipelined SETs of small values
# (redis-benchmark -P 16 sends 16 per write), and one turn stays fair between connections.
RECV_BYTES = 64 * 1024
# Incomplete commands held by all connections' parsers together (each is at most one command,
# resp.MAX_COMMAND_BYTES): four of the biggest at once; past it the connection holding most is
# closed. Without it, clients each sending most of a 64 MiB command and stopping could hold
# 64 MiB apiece, as many as there are connections.
TOTAL_INPUT_LIMIT = 4 * codec.MAX_MESSAGE_BYTES
_MAX_CLIENTS = b"-ERR max number of clients reached\r\n"
_EPOLLIN, _EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
_GONE = select.EPOLLHUP | select.EPOLLERR


_CMDSTAT_FIELDS = ("calls", "rejected", "failed")


class RespFront(ClientCommands, TransactionRouting, CommandRouting, PubSubFront, MonitorFront,
                TrackingFront, FrontCore):
    def __init__(self, config: Config, log, password: bytes | None = None,
                 listen_fd: int | None = None) -> None:
        # Counters for INFO (sent prefixed ``resp_``); the documented ones exist from the start.
        stats = collections.Counter(dict.fromkeys((
            "total_connections_received", "rejected_connections", "accept_failures", "commands",
            "batches", "protocol_errors", "auth_failures", "noauth_replies", "rejected_commands",
            "output_limit_disconnections", "input_limit_disconnections", "dropped_replies_client_gone",
            "internal_errors"), 0))
        super().__init__(config, log, config.resp_backend_path, "resp", stats)
        self.password = password
        self.listen_fd = listen_fd
        self.listener: socket.socket | None = None
        self.epoll: select.epoll | None = None
        self.conns: dict[int, Conn] = {}  # fd -> connection
        self.next_conn_id = 1
        self.dirty: set[Conn] = set()  # connections with new replies to send this turn
        self.total_out = 0
        self.input_bytes = 0  # incomplete commands held by all parsers (TOTAL_INPUT_LIMIT)
        self.accepting = True
        self.settings: dict[str, str] = {}
        self._cut_log = Throttle()
        # Error replies made here, by prefix (INFO errorstats; node/log/redis_info.py reads
        # them as ``errorstat_<PREFIX>``): they only grow, the log actor subtracts RESETSTAT's.
        self.errorstats: collections.Counter = collections.Counter()
        # Commands answered here (name -> [calls, rejected, failed]), for INFO commandstats
        # (``cmdstat_<name>_<field>``), growing like the errorstats; bounded by Redis's names.
        self.cmdstats: dict[str, list[int]] = {}
        # Their latency histograms (INFO latencystats, node/runtime/latency.py), by the same
        # names, recorded only while the log actor says latency-tracking is on
        # (``_on_log_state``); as bounded as ``cmdstats``.
        self.latency: dict[str, dict[int, int]] = {}
        # A connection came or went, or an error was answered here, this turn: the counters go
        # before the requests read (on_turn), so an INFO among them counts it.
        self.stats_due = False
        self.held: dict[Conn, list[list[bytes]]] = {}  # commands waiting for CLIENT PAUSE's end
        self._pubsub_init()
        self._monitor_init()
        self.link.on_deliver = self._on_deliver
        self.link.on_state = self._on_log_state  # node/fronts/resp_multi.py
        self.link.on_lost = self._tracking_log_lost  # closes subscribers, monitors, trackers
        self._tracking_init()

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        try:
            host, port = resp_bind_address(self.config, self.password)
        except ValueError as exc:
            raise BindError(str(exc)) from None
        if self.listen_fd is not None:  # the supervisor's, held across restarts (listen.py)
            sock = socket.socket(fileno=self.listen_fd)
            sock.setblocking(False)
        else:
            try:
                sock = listen.tcp_listener(host, port, listen.RESP_BACKLOG)
            except OSError as exc:
                raise BindError(f"cannot bind --resp-bind {self.config.resp_bind}: {exc.strerror or exc}") from exc
        self.listener = sock
        self._set_max_clients()
        self.settings = config_settings(self.config, self.max_clients)
        self.epoll = select.epoll()
        self.epoll.register(sock.fileno(), _EPOLLIN)
        runtime.watch(self.epoll.fileno(), self._on_epoll)
        self.link.start(runtime, self.config.dir)
        # The request parser's fast path: hiredis's C reader, or (not installed) pure Python.
        parser = resp.PARSER if resp.PARSER == "hiredis" else "python (hiredis not installed)"
        self.log.info("actor_started", bind=self.config.resp_bind, auth=self.password is not None,
                      parser=parser)

    def counters(self) -> dict:
        return {"resp_connected_clients": len(self.conns), "resp_waiting": self.waiting,
                "resp_waiting_bytes": self.waiting_bytes,
                "resp_max_clients": self.max_clients, "resp_output_waiting_bytes": self.total_out,
                "resp_input_buffered_bytes": self.input_bytes,
                "resp_clients_paused": len(self.paused),
                "resp_rejected_internal_peers": self.link.rejected,
                "resp_requirepass": int(self.password is not None),  # never the password itself
                **{"resp_" + k: v for k, v in self.stats.items()},
                **{"errorstat_" + k: v for k, v in self.errorstats.items()},
                **{f"cmdstat_{k}_{field}": n for k, counts in self.cmdstats.items()
                   for field, n in zip(_CMDSTAT_FIELDS, counts)},
                **{"lathist_" + k: latency.flatten(hist) for k, hist in self.latency.items()}}

    def on_turn(self) -> None:
        if self.stats_due:
            self.stats_due = False
            self.link.send_stats(self.counters)
        if self.pause_until and time.monotonic() >= self.pause_until:
            self._unpause()
        self.link.flush()
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for conn in dirty:
                if not conn.closed:
                    self._write(conn)
        self._resume_paused()

    def _stop_reading(self) -> None:
        if self.pause_until:
            self._unpause()  # what waits for the pause runs before the stop
        if self.listener is not None and self.accepting:
            self.epoll.unregister(self.listener.fileno())
            self.accepting = False
        for conn in self.conns.values():
            conn.reading = False
            self._set_mask(conn)

    def _output_pending(self) -> bool:
        return any(c.out for c in self.conns.values())

    def _close_transport(self) -> int:
        for conn in list(self.conns.values()):
            self._close(conn)
        if self.listener is not None:
            self.listener.close()
        if self.epoll is not None:
            self.epoll.close()
        return 0

    def _pause(self, conn: Conn) -> None:
        conn.reading = False
        self._set_mask(conn)

    def _resume(self, conn: Conn) -> None:
        conn.reading = True
        self._set_mask(conn)

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
                self._accept_failed(exc.errno or 0, len(self.conns))
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
            conn = Conn(sock, session, resp.RequestParser(authenticated=session.authenticated))
            self.conns[conn.fd] = conn
            self.epoll.register(conn.fd, _EPOLLIN)
            self.stats_due = True

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset: nothing can reach the client any more
            self._close(conn)
            return
        if not data:
            # EOF: the client may have only half-closed (nc -N, shell pipes) and still read, as
            # Redis assumes: answer every command read before it, flush, then close.
            self._closing(conn)
            if not conn.slots and not conn.out:
                self._close(conn)
            elif conn.waiting > 0:
                # Redis frees a client at EOF, unblocking it: a blocking pop must not hold this
                # connection open, nor be served later for a client that is gone.
                self.link.send_forget(conn.key, closing=True)
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
            session = conn.session
            session.last = time.monotonic()
            last = commands[-1]
            session.cmd = (last[0][:64], last[1][:64] if len(last) > 1 else b"")
            if self.pause_until or self.held:
                commands = self._hold_paused(conn, commands)
            self._take(conn, commands)
        if parser.error is not None and not conn.closing:
            self.stats["protocol_errors"] += 1
            self.count_error(b"-ERR\r\n")
            conn.slots.append(Slot(conn, resp.error_line("ERR", parser.error)))
            self._closing(conn)
        self._send_ready(conn)

    def _closing(self, conn: Conn) -> None:
        conn.closing = True
        conn.reading = False
        self._set_mask(conn)

    def _deliver(self, conn: Conn, slots: list[Slot]) -> None:
        """Move these replies to the connection's output buffer; past the output limits, cut
        off this connection or the one holding most."""
        out = conn.out
        before = len(out)
        for slot in slots:
            out += slot.reply
        added = len(out) - before
        if added:
            self.total_out += added
            self.dirty.add(conn)
            limit = self.config.client_output_limit
            if len(out) > limit or self.total_out > TOTAL_LIMIT_FACTOR * limit:  # rare: then choose
                self._cut_off(pick_cut_off(conn, len(out), self.total_out, limit,
                                           TOTAL_LIMIT_FACTOR * limit, self.conns.values(), out_bytes))

    def _write(self, conn: Conn) -> None:
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

    def _set_mask(self, conn: Conn) -> None:
        if conn.closed:
            return
        mask = (_EPOLLIN if conn.reading and not conn.closing else 0) | (_EPOLLOUT if conn.out else 0)
        if mask != conn.mask:
            conn.mask = mask
            self.epoll.modify(conn.fd, mask)

    def _cut_off(self, conn: Conn) -> None:
        """Past --client-output-limit: close it (Redis closes such a client too), drop its work
        here and in the log actor (its replies would only be dropped)."""
        self.stats["output_limit_disconnections"] += 1
        skipped = self._cut_log.due()
        if skipped is not None:
            self.log.warning("client_output_limit_reached", identity=f"resp:{conn.session.addr}:{conn.key}",
                             held_bytes=len(conn.out), limit=self.config.client_output_limit,
                             dropped_replies=len(conn.slots), cut_off_s=0.0,
                             also_cut_since_last_line=skipped)
        self._close(conn)

    def _cut_input(self) -> None:
        """All connections' incomplete commands together passed TOTAL_INPUT_LIMIT: close the one
        holding most (as the output side does; pausing them instead could leave every one of
        them waiting for the rest of its command)."""
        conn = max(self.conns.values(), key=lambda c: c.parser.buffered)
        self.stats["input_limit_disconnections"] += 1
        self._close(conn)

    def _close(self, conn: Conn) -> None:
        """Close now: replies still owed to it are dropped when they come, and the log actor
        forgets its queued work and any blocking pop it waits in (whose element would be lost
        with the dropped reply), as Redis unblocks a closed client."""
        if conn.closed:
            return
        forget = conn.waiting > 0
        conn.closed = True
        self.input_bytes -= conn.parser.buffered
        self.total_out -= len(conn.out)
        conn.out = bytearray()
        conn.slots.clear()
        self.paused.discard(conn)
        self.dirty.discard(conn)
        self.held.pop(conn, None)
        self.conns.pop(conn.fd, None)
        self.stats_due = True
        try:
            self.epoll.unregister(conn.fd)
        except (OSError, ValueError):
            pass
        conn.sock.close()
        self._drop_work(conn)  # its messages not sent yet need not go
        # Its WATCH and CLIENT TRACKING state in the log actor go with it.
        if forget or conn.session.watching or conn.session.tracking:
            self.link.send_forget(conn.key)
        self.tracked.pop(conn.key, None)
        self._pubsub_closed(conn)
        if self.monitoring or self.monitor_reset:
            self._monitor_closed(conn)


def _addr(addr) -> str:
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def main(config: Config, log) -> int:
    try:
        password = read_requirepass(config)
    except ValueError as exc:
        return refuse_bind(log, config.resp_bind or "", str(exc))
    return run(RespFront(config, log, password, listen.inherited_fd()), log, config.resp_bind or "")
