"""Front actor: the ZeroMQ ROUTER that faces clients.

Design:
- Owns the client socket, the ROUTER envelopes, per-client reply order and per-client SELECT
  state. It never touches the keyspace or the AOF.
- Envelopes are stripped and re-wrapped in one place (``_read_client``/``_send_ready``).
  A DEALER client sends ``["", body]`` (or just ``[body]``), a REQ socket adds the delimiter
  itself; the reply goes back with the same envelope.
- Bad input (bad msgpack, wrong shape, unknown command, wrong arity, wrong argument type,
  oversized message) is answered here with an error reply carrying a code; it never reaches the
  log actor and never raises out of the loop.
- Batching: each turn it drains what is waiting on the client socket (up to ``MAX_DRAIN``
  messages) and forwards it to the log actor as one BATCH, with at most ``MAX_IN_FLIGHT``
  batches outstanding. While the log actor works (e.g. on an fdatasync under ``always``), new
  requests accumulate into the next batch: that is the group commit.
- Order: each client identity has a FIFO of reply slots. A reply made here (an error, SELECT)
  waits behind that client's earlier requests still in the log actor, so replies go back in
  the order of the requests.
- While the log actor is loading or restarting, requests get ``LOADING``; batches that were
  in flight when it died get ``ABORTED`` (they may or may not have been applied).
- On SIGTERM it stops reading clients, waits (bounded) for the batches in flight, sends their
  replies, and exits 0.
"""
from __future__ import annotations

import collections
import os
import signal
import time

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from node import messages as m
from node.config import Config
from node.logs import configure
from protocol import codec
from protocol.codec import Error

__all__ = ["run"]

# Messages read from clients per turn. Large enough that 50 clients with 32-deep pipelines fit
# in one batch; small enough that one turn stays well under a millisecond of decoding.
MAX_DRAIN = 2048
# Two batches in flight keeps the log actor busy while the front prepares the next one; more
# would only make batches smaller (worse group commit).
MAX_IN_FLIGHT = 2
# Stop reading clients while this many client messages wait for the log actor: ZeroMQ's
# high-water marks then push back on the clients instead of this process growing.
MAX_WAITING = 50_000
# Per-identity SELECT state is kept for at most this many identities (ZeroMQ tells a ROUTER
# nothing when a peer goes away); the oldest is forgotten first.
MAX_DB_STATES = 100_000
# A frame larger than this is cut by ZeroMQ itself (the peer is disconnected); between
# codec.MAX_MESSAGE_BYTES and this the client gets TOOBIG.
HARD_MAX_FRAME = 4 * codec.MAX_MESSAGE_BYTES
SHUTDOWN_GRACE_S = 10.0

_HELLO_REPLY_OK = {"server": "aofnode", "version": "0.1.0", "proto": codec.PROTOCOL_VERSION}


class _Slot:
    __slots__ = ("envelope", "reply")

    def __init__(self, envelope: list[bytes]) -> None:
        self.envelope = envelope
        self.reply: bytes | None = None


class Front:
    def __init__(self, config: Config, log) -> None:
        self.config = config
        self.log = log
        self.ctx = zmq.Context()
        self.clients = self.ctx.socket(zmq.ROUTER)
        self.clients.setsockopt(zmq.LINGER, 1000)
        self.clients.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_FRAME)
        self.clients.setsockopt(zmq.RCVHWM, 100_000)
        self.clients.setsockopt(zmq.SNDHWM, 100_000)
        self.monitor = self.clients.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self.clients.bind(config.bind)
        self.backend = self.ctx.socket(zmq.ROUTER)
        self.backend.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.backend.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.backend.setsockopt(zmq.LINGER, 0)
        self.backend.setsockopt(zmq.SNDHWM, 0)
        self.backend.setsockopt(zmq.RCVHWM, 0)
        self.backend.bind(config.backend_endpoint)

        self.ready = False
        self.log_pid: int | None = None
        self.queues: dict[bytes, collections.deque[_Slot]] = {}
        self.dbs: dict[bytes, int] = {}
        self.outgoing: list[tuple[_Slot, bytes]] = []
        self.in_flight: dict[int, list[_Slot]] = {}
        self.next_batch = 1
        self.waiting = 0
        self.stopping = False
        self.stats = collections.Counter()
        self.connected_clients = 0

    # -- client side --------------------------------------------------------------------------

    def _read_client(self) -> None:
        """Drain up to MAX_DRAIN client messages; answer bad ones, queue good ones."""
        recv = self.clients.recv_multipart
        for _ in range(MAX_DRAIN):
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.stats["messages"] += 1
            identity = frames[0]
            # The envelope ends at the last empty delimiter frame (REQ, or a DEALER that sends
            # one); a DEALER that sends no delimiter has just its identity as envelope.
            cut = 1
            for i in range(len(frames) - 1, 0, -1):
                if not frames[i]:
                    cut = i + 1
                    break
            envelope, body = frames[:cut], frames[cut:]
            slot = _Slot(envelope)
            queue = self.queues.get(identity)
            if queue is None:
                queue = self.queues[identity] = collections.deque()
            queue.append(slot)
            if len(body) != 1:
                self._resolve_local(identity, slot, Error(codec.PROTO, f"expected one body frame after the envelope, got {len(body)}"))
                continue
            self._accept(identity, slot, body[0])

    def _accept(self, identity: bytes, slot: _Slot, body: bytes) -> None:
        decoded = codec.decode_message(body)
        if type(decoded) is Error:
            self.stats["rejected_messages"] += 1
            self._resolve_local(identity, slot, decoded)
            return
        db = self.dbs.get(identity, 0)
        items = []
        forward = False
        for req in decoded.items:
            if type(req) is Error:
                self.stats["rejected_requests"] += 1
                items.append([None, codec.wire_reply(req)])
                continue
            name = req[0]
            if name == "SELECT":
                new_db = _parse_db(req[1][0])
                if new_db is None:
                    items.append([None, codec.wire_reply(Error(codec.ERR, "DB index is out of range"))])
                else:
                    db = new_db
                    items.append([None, [0, "OK"]])
                continue
            if name == "HELLO":
                items.append([None, codec.wire_reply(_hello(req[1]))])
                continue
            if not self.ready:
                self._resolve_local(identity, slot, Error(codec.LOADING, "aofnode is loading the dataset in memory"))
                return
            items.append([db, name, *req[1]])
            forward = True
        self._remember_db(identity, db)
        if forward:
            self.outgoing.append((slot, msgpack.packb([decoded.is_batch, items])))
            self.waiting += 1
        else:
            wires = [item[1] for item in items]
            slot.reply = msgpack.packb(wires if decoded.is_batch else wires[0])
            self._send_ready(identity)

    def _remember_db(self, identity: bytes, db: int) -> None:
        if db == 0:
            self.dbs.pop(identity, None)
            return
        if identity not in self.dbs and len(self.dbs) >= MAX_DB_STATES:
            del self.dbs[next(iter(self.dbs))]
        self.dbs[identity] = db

    def _resolve_local(self, identity: bytes, slot: _Slot, error: Error) -> None:
        slot.reply = codec.encode_reply(error)
        self._send_ready(identity)

    def _send_ready(self, identity: bytes) -> None:
        """Send this client's replies that are ready, in order, up to the first one that is not."""
        queue = self.queues.get(identity)
        send = self.clients.send_multipart
        while queue and queue[0].reply is not None:
            slot = queue.popleft()
            try:
                send([*slot.envelope, slot.reply], zmq.NOBLOCK)
            except zmq.ZMQError:
                self.stats["dropped_replies"] += 1  # the client is gone or not reading
        if not queue:
            self.queues.pop(identity, None)

    # -- log side -----------------------------------------------------------------------------

    def _flush_outgoing(self) -> None:
        if not self.outgoing or len(self.in_flight) >= MAX_IN_FLIGHT or not self.ready:
            return
        batch_id = self.next_batch
        self.next_batch += 1
        slots = [slot for slot, _ in self.outgoing]
        frames = [m.LOG_ID, m.BATCH, m.pack_batch_id(batch_id), *[frame for _, frame in self.outgoing]]
        self.outgoing = []
        try:
            self.backend.send_multipart(frames)
        except zmq.ZMQError:
            self.in_flight[batch_id] = slots
            self._log_lost("log actor unreachable")
            return
        self.in_flight[batch_id] = slots
        self.stats["batches"] += 1

    def _read_backend(self) -> None:
        while True:
            try:
                frames = self.backend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            sender, kind = frames[0], frames[1]
            if kind == m.REPLIES:
                slots = self.in_flight.pop(m.unpack_batch_id(frames[2]), None)
                if slots is None:
                    continue  # a batch of an earlier front, or one we already aborted
                touched = set()
                for slot, reply in zip(slots, frames[3:]):
                    slot.reply = reply
                    touched.add(slot.envelope[0])
                self.waiting -= len(slots)
                for identity in touched:
                    self._send_ready(identity)
            elif kind == m.HELLO:
                pid = int(frames[2])
                if not self.ready or pid != self.log_pid:
                    self.log.info("log_actor_ready", log_pid=pid)
                self.ready, self.log_pid = True, pid
            elif kind == m.LOG_DOWN and sender == m.SUPERVISOR_ID:
                if self.log_pid is None or int(frames[2]) == self.log_pid:
                    self._log_lost("log actor died")

    def _log_lost(self, reason: str) -> None:
        """Answer everything the dead log actor held, and LOADING until a new one says HELLO."""
        aborted = Error(codec.ABORTED, f"{reason} with this request in flight: it may or may not have been applied")
        loading = Error(codec.LOADING, "aofnode is loading the dataset in memory")
        count = 0
        for slots in self.in_flight.values():
            for slot in slots:
                self._resolve_local(slot.envelope[0], slot, aborted)
                count += 1
        for slot, _ in self.outgoing:
            self._resolve_local(slot.envelope[0], slot, loading)
            count += 1
        self.in_flight.clear()
        self.outgoing = []
        self.waiting = 0
        self.ready = False
        self.log_pid = None
        self.log.warning("log_actor_lost", reason=reason, aborted_messages=count)

    def _ping_log(self) -> None:
        try:
            self.backend.send_multipart([m.LOG_ID, m.PING], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # not connected yet

    def _send_stats(self) -> None:
        stats = dict(self.stats, connected_clients=self.connected_clients, waiting=self.waiting)
        try:
            self.backend.send_multipart([m.LOG_ID, m.STATS, msgpack.packb(stats)], zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _read_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self.connected_clients += 1
                self.stats["total_connections_received"] += 1
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.connected_clients = max(0, self.connected_clients - 1)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> int:
        poller = zmq.Poller()
        poller.register(self.backend, zmq.POLLIN)
        poller.register(self.monitor, zmq.POLLIN)
        reading = False
        last_tick = 0.0
        stop_deadline = None
        self.log.info("actor_started", bind=self.config.bind)
        while True:
            want = not self.stopping and self.waiting < MAX_WAITING
            if want != reading:
                if want:
                    poller.register(self.clients, zmq.POLLIN)
                else:
                    poller.unregister(self.clients)
                reading = want
            try:
                events = dict(poller.poll(100))
            except zmq.ZMQError:
                events = {}
            if self.backend in events:
                self._read_backend()
            if self.clients in events:
                self._read_client()
            self._flush_outgoing()
            if self.monitor in events:
                self._read_monitor()
            now = time.monotonic()
            if now - last_tick >= 1.0:
                last_tick = now
                self._send_stats()
                if not self.ready:
                    self._ping_log()
            elif not self.ready and now - last_tick >= 0.1:
                self._ping_log()
            if self.stopping:
                if stop_deadline is None:
                    stop_deadline = now + SHUTDOWN_GRACE_S
                    self.log.info("front_stopping", in_flight=len(self.in_flight), waiting=self.waiting)
                if not self.in_flight and not self.outgoing or now > stop_deadline:
                    break
        self.log.info("actor_stopped", unanswered=self.waiting)
        self.clients.close(linger=1000)
        self.backend.close(linger=0)
        self.monitor.close(linger=0)
        self.ctx.term()
        return 0


def _parse_db(arg: bytes) -> int | None:
    try:
        n = int(arg)
    except ValueError:
        return None
    return n if 0 <= n < 16 and arg.strip() == arg else None


def _hello(args: tuple[bytes, ...]):
    if args:
        try:
            version = int(args[0])
        except ValueError:
            return Error(codec.ERR, "Protocol version is not an integer or out of range")
        if version != codec.PROTOCOL_VERSION:
            return Error(codec.NOPROTO, f"unsupported protocol version {version}; this node speaks {codec.PROTOCOL_VERSION}")
    return _HELLO_REPLY_OK


def run(config: Config) -> int:
    log = configure("front", config.log_format, config.log_file)
    front = Front(config, log)

    def on_term(_sig, _frm):
        front.stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return front.run()
