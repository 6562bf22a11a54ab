"""Front actor: the ZeroMQ ROUTER that faces clients, an adapter over the front core.

Design:
- Owns the client socket, the ROUTER envelopes (stripped and re-wrapped in one place:
  ``_read_client``/``_deliver``), the ``Outbox`` (node/fronts/outbox.py) and CURVE
  (node/fronts/curve.py). Reply order, waiting bounds, the log link and the stop are the core's
  (node/fronts/core.py). It keeps no session: every message carries its db (protocol 2).
- Decode once: bodies go to the log actor as they came. The front refuses only a frame count
  that is not one body, a body over ``MAX_MESSAGE_BYTES`` (unread), and, while no log actor is
  ready, everything but HELLO, SELECT and bad input (answered here) gets LOADING.
- Batching: each turn drains up to ``MAX_DRAIN`` messages into one ``Batch`` (group commit).
- Push-back: a ROUTER cannot stop reading one peer, so a client past a waiting bound stops the
  reading of all until it is back to half; ``PEER_RCVHWM`` keeps what ZeroMQ reads ahead per
  peer meanwhile to a few messages. Docs: docs/design.md, docs/limits.md.
- With a password, ``PasswordGate`` (node/fronts/zmq_password.py) answers every message of a
  connection until it sends AUTH.
"""
from __future__ import annotations

import collections

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

from aofnode import exitcodes
from aofnode.config import Config, read_requirepass
from aofnode.fronts import curve as auth, listen
from aofnode.fronts.zmq_pub import PubSocket
from aofnode.fronts.core import BindError, Client, FrontCore, Slot, refuse_bind, run
from aofnode.fronts.outbox import PEER_SNDHWM, RETRY_INTERVAL_S, Outbox
from aofnode.fronts.zmq_password import PasswordGate
from aofnode.hello import hello_reply
from aofnode import protocol as codec
from aofnode.protocol.errors import Error
from aofnode.runtime.actor import Runtime

__all__ = ["Front", "main", "BindError"]

# Messages read from clients per turn. Large enough that 50 clients with 32-deep pipelines fit
# in one batch; small enough that one turn stays well under a millisecond of decoding.
MAX_DRAIN = 2048
# A frame larger than this is cut by ZeroMQ itself (the peer is disconnected); between
# codec.MAX_MESSAGE_BYTES and this the client gets TOOBIG.
HARD_MAX_FRAME = 4 * codec.MAX_MESSAGE_BYTES
# Messages ZeroMQ reads ahead per peer while the front does not take them; it counts messages,
# not bytes, so this bounds the bytes a paused peer holds here to PEER_RCVHWM of its messages
# (with 100,000, 20 pipelined 60 MiB SETs all sat in this process: 1.2 GiB). 2: one DEALER
# pipelining 1,000 small SETs got 13-19k messages/s through the node, 11-35k at 100,000 (a
# loaded 2-core machine: within noise); clients that wait for each reply never fill it.
PEER_RCVHWM = 2

_LOADING = Error(codec.LOADING, codec.LOADING_MESSAGE)
# An idle peer keeps its place (its client key) for this many ticks (seconds) before it is
# forgotten: the log actor keeps a WATCH under that key, so a transaction sent within ~5 s of
# its WATCH finds it (later, it aborts: docs/protocol.md).
IDLE_GENERATIONS = 5


class _Peer(Client):
    __slots__ = ("identity", "parked")

    def __init__(self, key: int, identity: bytes) -> None:  # Client's fields, set here: hot path
        self.key = key
        self.slots: collections.deque[_Slot] = collections.deque()
        self.waiting = self.waiting_bytes = 0
        self.closed = False
        self.identity = identity
        self.parked: tuple[_Slot, bytes] | None = None  # read while it was paused


class _Slot(Slot):
    __slots__ = ("envelope",)

    def __init__(self, client: _Peer, envelope: list[bytes], size: int) -> None:
        self.client = client
        self.reply = None
        self.count = 1
        self.size = size
        self.envelope = envelope


class Front(FrontCore):
    resume_divisor = 1  # a ROUTER's pause holds back every peer (see FrontCore)
    def __init__(self, config: Config, log, ctx: zmq.Context | None = None,
                 password: bytes | None = None, listen_fd: int | None = None) -> None:
        super().__init__(config, log, config.backend_path, "backend", collections.Counter())
        self.ctx = ctx or zmq.Context()
        self.clients: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.peers: dict[bytes, _Peer] = {}  # identity -> its place (idle ones go at the tick)
        self.idle_peers: list[dict[bytes, _Peer]] = []  # ... to these, newest first, then away
        self.next_client_key = 1
        self.reading = False
        self.connected_clients = 0
        self.outbox: Outbox | None = None
        self.auth: auth.Auth | None = None  # CURVE, when configured (node/fronts/curve.py)
        self.pub: PubSocket | None = None  # --pub-bind
        self.gate = PasswordGate(password) if password is not None else None
        self.listen_fd = listen_fd  # the supervisor's listening socket (node/fronts/listen.py)

    # -- hooks ----------------------------------------------------------------------------------

    def on_start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        clients = self.clients = self.ctx.socket(zmq.ROUTER)
        clients.setsockopt(zmq.LINGER, 1000)
        clients.setsockopt(zmq.MAXMSGSIZE, HARD_MAX_FRAME)
        clients.setsockopt(zmq.RCVHWM, PEER_RCVHWM)
        clients.setsockopt(zmq.SNDHWM, PEER_SNDHWM)
        clients.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full pipe says EAGAIN: see outbox.py
        self.outbox = Outbox(clients, self.config.client_output_limit, self.log, on_cut=self._forget)
        self.monitor = clients.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
                                                  | zmq.EVENT_ACCEPT_FAILED
                                                  | (auth.MONITOR_EVENTS if auth.curve_enabled(self.config) else 0))
        self._set_max_clients()
        # CURVE (node/fronts/curve.py): the ZAP handler is bound and watched on this loop, and
        # libzmq told to refuse any handshake no handler answers, before the bind (fail closed).
        try:
            self.auth = auth.setup(self.config, self.ctx, clients, runtime, self.log)  # None: off
        except auth.CurveConfigError as exc:
            raise BindError(str(exc)) from exc
        if self.listen_fd is not None:  # adopted: libzmq binds nothing, the port stays held
            clients.setsockopt(zmq.USE_FD, self.listen_fd)
        try:
            clients.bind(self.config.bind)
        except zmq.ZMQError as exc:
            raise BindError(f"cannot bind {self.config.bind}: {exc}") from exc
        runtime.watch(self.monitor, self._read_monitor, drains=True)  # read until EAGAIN, only there
        if self.config.pub_bind:  # PUBLISH for native SUB sockets (node/fronts/zmq_pub.py)
            try:
                self.pub = PubSocket(self.ctx, self.config, self.log)
            except zmq.ZMQError as exc:
                raise BindError(f"cannot bind --pub-bind {self.config.pub_bind}: {exc}") from exc
            self.link.on_deliver = self.pub.send
        self.link.start(runtime, self.config.dir)
        self._set_reading(True)
        self.log.info("actor_started", bind=self.config.bind, password=self.gate is not None)

    def on_tick(self, now: float) -> None:
        if self.auth is not None and not self.auth.on_tick(now) and not self.runtime.stop_requested:
            self.runtime.request_stop()  # ZAP handler gone, endpoint unbound: restart, handler first
        super().on_tick(now)
        # Forget idle clients once a second, not after each reply: one that waits for each reply
        # would get a new place (and key) per message, ~0.5 us of the front's ~3 us.
        busy, idle = {}, {}
        for i, p in self.peers.items():
            (busy if p.slots or p.waiting else idle)[i] = p
        self.peers = busy
        self.idle_peers = [idle, *self.idle_peers[:IDLE_GENERATIONS - 1]]

    def counters(self) -> dict:
        o = self.outbox
        return dict(self.stats, connected_clients=self.connected_clients, waiting=self.waiting,
                    waiting_bytes=self.waiting_bytes, clients_paused=len(self.paused),
                    rejected_internal_peers=self.link.rejected,
                    client_output_limit_disconnections=o.disconnections,
                    dropped_replies_client_gone=o.dropped_gone,
                    dropped_after_cut_off=o.dropped_cut,
                    clients_blocked_on_output=len(o.waiting),
                    output_waiting_bytes=o.total_bytes,
                    max_clients=self.max_clients,
                    accept_failures=self.stats["accept_failures"],
                    **(self.gate.counters() if self.gate is not None else {}),
                    **(self.auth.counters() if self.auth is not None else {"auth_enabled": 0}))

    @property
    def max_wait(self) -> float | None:
        return RETRY_INTERVAL_S if self.outbox is not None and self.outbox.blocked else None

    def on_turn(self) -> None:
        outbox = self.outbox
        if outbox.blocked:
            outbox.flush()
        self.link.flush()
        self._resume_paused()
        if (not self.reading and not self.stopping and not self._over_total()
                and all(peer.parked is None for peer in self.paused)):
            self._set_reading(True)

    def _stop_reading(self) -> None:
        self._set_reading(False)

    def _close_transport(self) -> int:
        if self.pub is not None:
            self.pub.close()
        if self.clients is not None:
            self.clients.close(linger=1000)
            self.monitor.close(linger=0)
        if self.auth is not None:
            self.auth.close()  # before term(): an open ZAP socket would hold it forever
        self.ctx.term()
        return exitcodes.ERROR if self.auth is not None and self.auth.lost else 0

    def _pause(self, client: _Peer) -> None:
        """A ROUTER reads all peers or none: reading goes on until this client's next message
        (parked, see _read_client), unless all clients together are past their bounds."""
        if self._over_total():
            self._set_reading(False)

    def _resume(self, peer: _Peer) -> None:
        if peer.parked is not None:
            (slot, body), peer.parked = peer.parked, None
            self._accept(peer, slot, body)

    def _set_reading(self, on: bool) -> None:
        if on != self.reading:
            self.reading = on
            if on:
                self.runtime.watch(self.clients, self._read_client)
            else:
                self.runtime.unwatch(self.clients)

    # -- client side --------------------------------------------------------------------------

    def _read_client(self) -> None:
        """Drain up to MAX_DRAIN client messages; answer bad ones, queue good ones. A paused
        client's next message is parked until it resumes, and reading stops there: others'
        messages read until then, and after each of its replies, reach the log actor at once
        (stopping at the pause instead, a victim's PING waited for 3-4 of a pipelining client's
        60 MiB SETs, about 4.5 s on a loaded machine)."""
        recv = self.clients.recv_multipart
        events = self.clients.getsockopt
        paused = self.paused
        gate = self.gate
        for i in range(MAX_DRAIN):
            if not self.reading:
                return
            # The runtime saw a message queued; after it, ask rather than end on zmq.Again: an
            # exception per turn cost ~4 us against ~1.5 us for ZMQ_EVENTS (docs/benchmarks.md).
            if i and not events(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                if gate is None:
                    frames = recv(zmq.NOBLOCK)
                else:  # the connection's descriptor tells a reused identity from its first owner
                    parts = recv(zmq.NOBLOCK, copy=False)
                    fd = parts[-1].get(zmq.SRCFD)
                    frames = [part.bytes for part in parts]
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
            peer = self.peers.get(identity)
            if peer is None:
                peer = self.peers[identity] = self._idle_peer(identity) or _Peer(self.next_client_key, identity)
                if peer.key == self.next_client_key:
                    self.next_client_key += 1
            if len(frames) - cut != 1:
                slot = _Slot(peer, frames[:cut], 0)
                peer.slots.append(slot)
                got = len(frames) - cut
                self._resolve_local(slot, Error(codec.PROTO, f"expected one body frame after the envelope, got {got}"))
                continue
            body = frames[cut]
            slot = _Slot(peer, frames[:cut], len(body))
            peer.slots.append(slot)
            if gate is not None:
                reply = gate.answer(identity, fd, body)
                if reply is not None:
                    slot.reply = reply
                    self._send_ready(peer)
                    continue
            if paused and peer in paused:
                peer.parked = (slot, body)
                self._set_reading(False)
                return
            self._accept(peer, slot, body)

    def _accept(self, peer: _Peer, slot: _Slot, body: bytes) -> None:
        """Forward the body as it came: the log actor decodes and validates it, once (decoding
        here as well cost the front ~40% of its CPU per request, and a 60 MB message held every
        client for ~90 ms in the front before the log actor's fair cycles could even start)."""
        if not self.link.ready:
            self._answer_while_loading(slot, body)
        elif len(body) > codec.MAX_MESSAGE_BYTES:  # refused unread, as the codec would
            self.stats["rejected_messages"] += 1
            self._resolve_local(slot, Error(codec.TOOBIG, (
                f"message of {len(body)} bytes exceeds the limit of {codec.MAX_MESSAGE_BYTES} bytes")))
        else:
            self._forward_body(peer, slot, body)

    def _answer_while_loading(self, slot: _Slot, body: bytes) -> None:
        """No log actor yet: bad input, HELLO and SELECT are still answered here; a message with
        any other command gets LOADING as a whole (it was not executed)."""
        decoded = codec.decode_message(body)
        if type(decoded) is Error:
            self.stats["rejected_messages"] += 1
            self._resolve_local(slot, decoded)
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
                self._resolve_local(slot, _LOADING)
                return
        slot.reply = msgpack.packb(wires if decoded.is_batch else wires[0])
        self._send_ready(slot.client)

    def _idle_peer(self, identity: bytes) -> _Peer | None:
        for generation in self.idle_peers:
            peer = generation.pop(identity, None)
            if peer is not None:
                return peer
        return None

    def _forget(self, identity: bytes) -> None:
        """The outbox cut this client off: drop what it has waiting here and in the log actor
        (its replies would only be dropped), so it costs nothing more."""
        peer = self.peers.pop(identity, None) or self._idle_peer(identity)
        if peer is None:
            return
        peer.closed = True
        peer.slots.clear()
        peer.parked = None
        self._drop_work(peer, in_flight=True)
        self.link.send_forget(peer.key)

    def _resolve_local(self, slot: _Slot, error: Error) -> None:
        slot.reply = codec.encode_reply(error)
        self._send_ready(slot.client)

    def _error_reply(self, slot: _Slot, code: str, message: str) -> bytes:
        return codec.encode_reply(Error(code, message))

    def _deliver(self, peer: _Peer, slots: list[_Slot]) -> None:
        send = self.outbox.send
        identity = peer.identity
        for slot in slots:
            send(identity, [*slot.envelope, slot.reply])

    # -- the client socket's monitor ------------------------------------------------------------

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
                if self.gate is not None:
                    self.gate.disconnected(event["value"])
            elif event["event"] == zmq.EVENT_ACCEPT_FAILED:
                self._accept_failed(event["value"], self.connected_clients)
            elif self.auth is not None:
                self.auth.on_monitor_event(event)  # handshake failures ZAP never sees


def main(config: Config, log) -> int:
    try:
        password = read_requirepass(config)
    except ValueError as exc:
        return refuse_bind(log, config.bind, str(exc))
    return run(Front(config, log, password=password, listen_fd=listen.inherited_fd()), log, config.bind)
