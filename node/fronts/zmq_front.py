"""Front actor: the ZeroMQ ROUTER that faces clients.

Design:
- Owns the client socket, the ROUTER envelopes and per-client reply order. It keeps no state per
  client between messages (protocol 2: every message carries its db; a SELECT inside a message
  holds for the rest of that message), so a restart or identity churn cannot move a write to
  another db. It never touches the keyspace or the AOF.
- Envelopes are stripped and re-wrapped in one place (``_read_client``/``_send_ready``).
  A DEALER client sends ``["", body]`` (or just ``[body]``), a REQ socket adds the delimiter
  itself; the reply goes back with the same envelope.
- Decode once: the front forwards each message body as it came; the log actor decodes and
  validates it (node/log/actor.py) with the same codec and the same error replies. The front
  itself refuses only what it must: a frame count that is not one body, a body over
  ``MAX_MESSAGE_BYTES`` (unread), and, while no log actor is ready, everything but HELLO,
  SELECT and bad input (answered here with the codec) gets LOADING. Nothing raises out of the
  loop.
- Batching: each turn it drains what is waiting on the client socket (up to ``MAX_DRAIN``
  messages) and forwards it to the log actor as one ``Batch`` through its ``LogLink``
  (node/fronts/log_link.py: at most ``MAX_IN_FLIGHT`` batches the log actor has not taken yet).
  Each message carries a number and its client's key; replies come back per message number, in
  whatever order the log actor finishes them (its per-client FIFOs keep each client's order).
  While the log actor works (e.g. on an fdatasync under ``always``), new requests accumulate
  into the next batch: that is the group commit.
- Order: each client identity has a FIFO of reply slots. A reply made here (an error, SELECT)
  waits behind that client's earlier requests still in the log actor, so replies go back in
  the order of the requests.
- The log actor connects to the front over a Unix socket (node/fronts/log_link.py; only a
  sibling actor gets in) and says ``Hello`` once its AOF is loaded. Until then, and from its
  death (an EOF on that socket) until a new one says HELLO, requests get ``LOADING``; batches
  that were in flight when it died get ``ABORTED`` (they may or may not have been applied).
- On SIGTERM it stops reading clients, waits (bounded) for the batches in flight, sends their
  replies, and exits 0. If it cannot bind its endpoint it exits ``EXIT_BIND`` at once with a
  one-line reason: restarting cannot free a port.
- It runs on the actor runtime (node/runtime/actor.py): one poller, a 1 s tick for STATS.
"""
from __future__ import annotations

import collections
import os
import resource
import sys
import time

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from aofnode import exitcodes
from aofnode.fronts import curve as auth
from aofnode.fronts.log_link import LogLink, aborted_message
from aofnode.hello import hello_reply
from aofnode.fronts.outbox import PEER_SNDHWM, RETRY_INTERVAL_S, Outbox
from aofnode.runtime.actor import Actor, Runtime
from aofnode.config import Config
from aofnode import protocol as codec
from aofnode.protocol.errors import Error

__all__ = ["Front", "main", "BindError"]

# Messages read from clients per turn. Large enough that 50 clients with 32-deep pipelines fit
# in one batch; small enough that one turn stays well under a millisecond of decoding.
MAX_DRAIN = 2048
# Stop reading clients while this many client messages wait for the log actor: ZeroMQ's
# high-water marks then push back on the clients instead of this process growing.
MAX_WAITING = 50_000
# A frame larger than this is cut by ZeroMQ itself (the peer is disconnected); between
# codec.MAX_MESSAGE_BYTES and this the client gets TOOBIG.
HARD_MAX_FRAME = 4 * codec.MAX_MESSAGE_BYTES
SHUTDOWN_GRACE_S = 10.0
# Descriptors kept back from clients (see ``max_clients``).
FD_RESERVE = 64

_LOADING = Error(codec.LOADING, codec.LOADING_MESSAGE)


class BindError(Exception):
    """The client endpoint cannot be bound (in use, bad address): fatal, not restartable."""


class _Slot:
    __slots__ = ("envelope", "reply")

    def __init__(self, envelope: list[bytes]) -> None:
        self.envelope = envelope
        self.reply: bytes | None = None


class Front(Actor):
    tick_interval = 1.0  # STATS to the log actor

    def __init__(self, config: Config, log, ctx: zmq.Context | None = None) -> None:
        self.config = config
        self.log = log
        self.ctx = ctx or zmq.Context()
        self.runtime: Runtime | None = None
        self.clients: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.queues: dict[bytes, collections.deque[_Slot]] = {}
        self.client_keys: dict[bytes, int] = {}  # identity -> key, while it has slots queued
        self.next_client_key = 1
        self.waiting = 0  # client messages queued in the link or in flight
        self.reading = False
        self.stopping = False
        self.stop_deadline = 0.0
        self.stats = collections.Counter()
        # The log actor's end: a message's token is its _Slot.
        self.link = LogLink(config.backend_path, "backend", log, self.stats, self._on_replies, self._on_log_lost)
        self.connected_clients = 0
        self.outbox: Outbox | None = None
        self.auth: auth.Auth | None = None  # CURVE, when configured (node/fronts/curve.py)
        self.max_clients = 0
        self.accept_failures = 0
        self._accept_failed_logged = -1.0

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        clients = self.clients = self.ctx.socket(zmq.ROUTER)
        clients.setsockopt(zmq.LINGER, 1000)
        clients.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_FRAME)
        clients.setsockopt(zmq.RCVHWM, 100_000)
        clients.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
        clients.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full pipe says EAGAIN: see outbox.py
        self.outbox = Outbox(clients, self.config.client_output_limit, self.log, on_cut=self._forget)
        self.monitor = clients.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
                                                  | zmq.EVENT_ACCEPT_FAILED
                                                  | (auth.MONITOR_EVENTS if auth.curve_enabled(self.config) else 0))
        # A client holds one descriptor; keep a reserve for the AOF-free rest of this process
        # (the channel, the monitor, ZeroMQ's own pipes and signalers).
        self.max_clients = max(0, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE)
        # CURVE (node/fronts/curve.py): the ZAP handler is bound and watched on this loop, and
        # libzmq told to refuse any handshake no handler answers, before the bind (fail closed).
        try:
            self.auth = auth.setup(self.config, self.ctx, clients, runtime, self.log)  # None: off
        except auth.CurveConfigError as exc:
            raise BindError(str(exc)) from exc
        try:
            clients.bind(self.config.bind)
        except zmq.ZMQError as exc:
            raise BindError(f"cannot bind {self.config.bind}: {exc}") from exc
        runtime.watch(self.monitor, self._read_monitor)
        self.link.start(runtime, self.config.dir)
        self._set_reading(True)
        self.log.info("actor_started", bind=self.config.bind)

    def on_tick(self, now: float) -> None:
        if self.auth is not None and not self.auth.on_tick(now) and not self.runtime.stop_requested:
            self.runtime.request_stop()  # ZAP handler gone, endpoint unbound: restart, handler first
        self.link.send_stats(self.counters)

    def counters(self) -> dict:
        o = self.outbox
        return dict(self.stats, connected_clients=self.connected_clients, waiting=self.waiting,
                    rejected_internal_peers=self.link.rejected,
                    client_output_limit_disconnections=o.disconnections,
                    dropped_replies_client_gone=o.dropped_gone,
                    dropped_after_cut_off=o.dropped_cut,
                    clients_blocked_on_output=len(o.waiting),
                    output_waiting_bytes=o.total_bytes,
                    max_clients=self.max_clients,
                    accept_failures=self.accept_failures,
                    **(self.auth.counters() if self.auth is not None else {"auth_enabled": 0}))

    @property
    def ready(self) -> bool:
        """A log actor said Hello and is serving."""
        return self.link.ready

    @property
    def max_wait(self) -> float | None:
        return RETRY_INTERVAL_S if self.outbox is not None and self.outbox.blocked else None

    def on_turn(self) -> None:
        outbox = self.outbox
        if outbox.blocked:
            outbox.flush()
        self.link.flush()
        if not self.stopping:
            self._set_reading(self.waiting < MAX_WAITING)

    def on_stop_requested(self) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + SHUTDOWN_GRACE_S
        self._set_reading(False)
        self.log.info("front_stopping", in_flight=len(self.link.in_flight), waiting=self.waiting)

    def finished(self) -> bool:
        return self.link.idle or time.monotonic() > self.stop_deadline

    def on_stop(self) -> int:
        self.log.info("actor_stopped", unanswered=self.waiting)
        if self.clients is not None:
            self.clients.close(linger=1000)
            self.monitor.close(linger=0)
        self.link.close()
        if self.auth is not None:
            self.auth.close()  # before term(): an open ZAP socket would hold it forever
        self.ctx.term()
        return exitcodes.ERROR if self.auth is not None and self.auth.lost else 0

    def _set_reading(self, on: bool) -> None:
        if on != self.reading:
            self.reading = on
            if on:
                self.runtime.watch(self.clients, self._read_client)
            else:
                self.runtime.unwatch(self.clients)

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
            if self.outbox.cut and self.outbox.is_cut(identity):
                self.stats["dropped_messages_cut_off"] += 1
                continue
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
        """Forward the body as it came: the log actor decodes and validates it, once (decoding
        here as well cost the front ~40% of its CPU per request, and a 60 MB message held every
        client for ~90 ms in the front before the log actor's fair cycles could even start)."""
        link = self.link
        if not link.ready:
            self._answer_while_loading(identity, slot, body)
            return
        if len(body) > codec.MAX_MESSAGE_BYTES:  # refused unread, as the codec would
            self.stats["rejected_messages"] += 1
            self._resolve_local(identity, slot, Error(codec.TOOBIG, (
                f"message of {len(body)} bytes exceeds the limit of {codec.MAX_MESSAGE_BYTES} bytes")))
            return
        key = self.client_keys.get(identity)
        if key is None:
            key = self.client_keys[identity] = self.next_client_key
            self.next_client_key += 1
        link.queue(slot, key, body)
        self.waiting += 1

    def _answer_while_loading(self, identity: bytes, slot: _Slot, body: bytes) -> None:
        """No log actor yet: bad input, HELLO and SELECT are still answered here; a message with
        any other command gets LOADING as a whole (it was not executed)."""
        decoded = codec.decode_message(body)
        if type(decoded) is Error:
            self.stats["rejected_messages"] += 1
            self._resolve_local(identity, slot, decoded)
            return
        wires = []
        for req in decoded.items:
            if type(req) is Error:
                self.stats["rejected_requests"] += 1
                wires.append(codec.wire_reply(req))
            elif req[0] == "SELECT":
                selected = codec.parse_select(req[1][0])
                wires.append(codec.wire_reply(selected) if type(selected) is Error else [0, "OK"])
            elif req[0] == "HELLO":
                wires.append(codec.wire_reply(hello_reply(req[1])))
            else:
                self._resolve_local(identity, slot, _LOADING)
                return
        slot.reply = msgpack.packb(wires if decoded.is_batch else wires[0])
        self._send_ready(identity)

    def _forget(self, identity: bytes) -> None:
        """The outbox cut this client off: drop what it has waiting here and in the log actor
        (its replies would only be dropped), so it costs nothing more."""
        self.queues.pop(identity, None)
        key = self.client_keys.pop(identity, None)
        link = self.link
        self.waiting -= link.drop_unsent(lambda slot: slot.envelope[0] == identity)
        self.waiting -= link.drop_in_flight(lambda slot: slot.envelope[0] == identity)
        if key is not None:
            link.send_forget(key)

    def _resolve_local(self, identity: bytes, slot: _Slot, error: Error) -> None:
        slot.reply = codec.encode_reply(error)
        self._send_ready(identity)

    def _send_ready(self, identity: bytes) -> None:
        """Send this client's replies that are ready, in order, up to the first one that is not."""
        queue = self.queues.get(identity)
        send = self.outbox.send
        while queue and queue[0].reply is not None:
            slot = queue.popleft()
            send(identity, [*slot.envelope, slot.reply])
        if not queue:
            self.queues.pop(identity, None)
            self.client_keys.pop(identity, None)  # nothing of it in flight: the key may go

    # -- the log actor's replies (node/fronts/log_link.py) -------------------------------------

    def _on_replies(self, slots: list[_Slot | None], replies: list[bytes]) -> None:
        touched = set()
        answered = 0
        for slot, reply in zip(slots, replies):
            if slot is None:
                continue  # a message we already aborted, or a cut-off client's
            slot.reply = reply
            touched.add(slot.envelope[0])
            answered += 1
        self.waiting -= answered
        for identity in touched:
            self._send_ready(identity)

    def _on_log_lost(self, reason: str, in_flight: list[_Slot], unsent: list[_Slot]) -> None:
        """Answer everything the dead log actor held; LOADING until a new one says HELLO."""
        aborted = Error(codec.ABORTED, aborted_message(reason))
        for slot in in_flight:
            self._resolve_local(slot.envelope[0], slot, aborted)
        for slot in unsent:
            self._resolve_local(slot.envelope[0], slot, _LOADING)
        self.waiting = 0

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
            elif event["event"] == zmq.EVENT_ACCEPT_FAILED:
                self._accept_failed(event["value"])
            elif self.auth is not None:
                self.auth.on_monitor_event(event)  # handshake failures ZAP never sees

    def _accept_failed(self, err: int) -> None:
        """Finding 9: past the descriptor limit, clients used to hang with nothing logged.
        Logged at most once a second, with how many failed since the last line."""
        self.accept_failures += 1
        now = time.monotonic()
        if now - self._accept_failed_logged >= 1.0:
            self._accept_failed_logged = now
            self.log.error("client_accept_failed", errno=err, error=os.strerror(err),
                           connected_clients=self.connected_clients, max_clients=self.max_clients,
                           accept_failures=self.accept_failures)

def main(config: Config, log) -> int:
    runtime = Runtime(Front(config, log))
    try:
        runtime.start()
    except BindError as exc:
        log.error("bind_failed", bind=config.bind, error=str(exc))
        print(f"aofnode: {exc}", file=sys.stderr)
        return exitcodes.BIND
    return runtime.run()
