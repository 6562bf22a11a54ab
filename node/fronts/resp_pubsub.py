"""The RESP front's side of pub/sub: subscriber mode, pushes, and the pubsub output limits.

Design:
- The registry is the log actor's (node/log/pubsub.py); this front forwards (P)SUBSCRIBE,
  (P)UNSUBSCRIBE, PUBLISH and PUBSUB to it and turns each ``Deliver`` into RESP: a
  ``message``/``pmessage`` array in RESP2, a push (``>``) in RESP3.
- Subscriber mode (RESP2): from the moment a (P)SUBSCRIBE is forwarded until a reply shows no
  subscription left with none in flight, only (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT and RESET
  are accepted, with Redis 7.0's error otherwise; PING answers ``["pong", message]`` here.
- A delivery joins the connection's reply order (behind replies still owed, as Redis writes
  them), and is bounded as Redis's pubsub client class (``client-output-buffer-limit pubsub
  32mb 8mb 60``): past ``PUBSUB_HARD_LIMIT`` unsent bytes, or past ``PUBSUB_SOFT_LIMIT`` for
  ``PUBSUB_SOFT_SECONDS``, the subscriber is cut off (``resp_pubsub_limit_disconnections``).
  Nobody else waits for it: the publisher's reply never depends on a subscriber reading.
- A connection that ever subscribed says ``Forget`` when it closes, so the log actor drops it.
  When the log actor dies its registry dies with it: every subscriber is closed then.
"""
from __future__ import annotations

import time

import msgpack

from aofnode import protocol as resp
from aofnode.fronts.core import Slot

__all__ = ["PubSubState", "PubSubFront", "PUBSUB_NAMES", "PUBSUB_HARD_LIMIT", "PUBSUB_SOFT_LIMIT",
           "PUBSUB_SOFT_SECONDS", "subscriber_gate"]

PUBSUB_HARD_LIMIT = 32 * 1024 * 1024
PUBSUB_SOFT_LIMIT = 8 * 1024 * 1024
PUBSUB_SOFT_SECONDS = 60
PUBSUB_NAMES = frozenset(("SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PUBLISH", "PUBSUB"))
_CHANGES = frozenset(("SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE"))
_ALLOWED = frozenset(("SUBSCRIBE", "UNSUBSCRIBE", "PSUBSCRIBE", "PUNSUBSCRIBE", "PING", "QUIT", "RESET"))


class PubSubState:
    """A connection's subscriptions as the front knows them."""

    __slots__ = ("count", "in_flight", "soft_since")

    def __init__(self) -> None:
        self.count = 0  # channels and patterns, per the latest reply
        self.in_flight = 0  # (P)SUBSCRIBEs forwarded, not answered yet
        self.soft_since = 0.0  # when its unsent bytes passed the soft limit (0: below it)

    @property
    def active(self) -> bool:
        return self.count > 0 or self.in_flight > 0


def subscriber_gate(state: PubSubState | None, resp3: bool, name: str, argv: list[bytes]) -> bytes | None:
    """The answer made here to a command in subscriber mode (RESP2), else None."""
    if state is None or resp3 or not state.active:
        return None
    if name == "PING":
        if len(argv) > 2:
            return resp.error_line("ERR", "wrong number of arguments for 'ping' command")
        return resp.encode_value([b"pong", argv[1] if len(argv) == 2 else b""], False)
    if name in _ALLOWED:
        return None
    return resp.error_line("ERR", f"Can't execute '{name.lower()}': only (P|S)SUBSCRIBE / "
                                  "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")


def _push(parts: list, resp3: bool) -> bytes:
    head = b">%d\r\n" % len(parts) if resp3 else b"*%d\r\n" % len(parts)
    return head + b"".join(resp.encode_value(p, resp3) for p in parts)


class PubSubFront:
    """Mixin of ``RespFront``: deliveries, subscriber state from replies, the pubsub limits."""

    def _pubsub_init(self) -> None:
        self.subscribers: dict[int, object] = {}  # client key -> Conn, while subscribed
        self.stats["pubsub_limit_disconnections"] = 0
        # The limits themselves, for INFO (resp_pubsub_hard_limit...): Redis shows its class's
        # in CONFIG GET client-output-buffer-limit.
        self.stats.update(pubsub_hard_limit=PUBSUB_HARD_LIMIT, pubsub_soft_limit=PUBSUB_SOFT_LIMIT,
                          pubsub_soft_seconds=PUBSUB_SOFT_SECONDS)
        self.stats["pubsub_messages_delivered"] = 0

    def _pubsub_forwarded(self, conn, name: str) -> None:
        """A pub/sub command leaves for the log actor (in order with the others)."""
        if name in ("SUBSCRIBE", "PSUBSCRIBE"):
            if conn.pubsub is None:
                conn.pubsub = PubSubState()
            conn.pubsub.in_flight += 1
            self.subscribers[conn.key] = conn

    def _pubsub_replied(self, conn, names: list[str], reply: bytes) -> None:
        """Note the subscription count a (P)(UN)SUBSCRIBE reply carries."""
        state = conn.pubsub
        if state is None:
            return
        try:
            wires = msgpack.unpackb(reply, raw=False, strict_map_key=False)
        except Exception:
            return
        if type(wires) is not list or len(wires) != len(names):
            return
        for name, wire in zip(names, wires):
            if name not in _CHANGES:
                continue
            if name in ("SUBSCRIBE", "PSUBSCRIBE"):
                state.in_flight = max(0, state.in_flight - 1)
            value = wire[1] if type(wire) is list and len(wire) == 2 and wire[0] == 0 else None
            if type(value) is list and value and type(value[-1]) is list and len(value[-1]) == 3:
                state.count = value[-1][2]
        if not state.active:  # nothing left in the registry: the hot path again
            self.subscribers.pop(conn.key, None)
            conn.pubsub = None

    def _on_deliver(self, msg) -> None:
        if msg.pattern is None:
            parts = [b"message", msg.channel, msg.message]
        else:
            parts = [b"pmessage", msg.pattern, msg.channel, msg.message]
        made: dict[bool, bytes] = {}
        for client in msg.clients:
            conn = self.subscribers.get(client)
            if conn is None or conn.closed:
                continue
            resp3 = conn.session.resp3
            data = made.get(resp3)
            if data is None:
                data = made[resp3] = _push(parts, resp3)
            self.stats["pubsub_messages_delivered"] += 1
            self._push_out(conn, data)

    def _push_out(self, conn, data: bytes) -> None:
        """A message no request asked for (pub/sub, MONITOR): behind the replies still owed,
        in the reply order, else straight out, under the subscriber's output limits."""
        if conn.slots:
            conn.slots.append(Slot(conn, data, 0))
            return
        conn.out += data
        self.total_out += len(data)
        self.dirty.add(conn)
        self._pubsub_limits(conn)

    def _pubsub_limits(self, conn) -> None:
        held = len(conn.out)
        state = conn.pubsub
        if held <= PUBSUB_SOFT_LIMIT:
            if state is not None:
                state.soft_since = 0.0
            return
        now = time.monotonic()
        if state is not None and not state.soft_since:
            state.soft_since = now
        if held > PUBSUB_HARD_LIMIT or (state is not None and now - state.soft_since >= PUBSUB_SOFT_SECONDS):
            self.stats["pubsub_limit_disconnections"] += 1
            self.log.warning("pubsub_output_limit_reached", client=conn.key, held_bytes=held)
            self._close(conn)

    def _pubsub_reset(self, conn) -> None:
        """RESET in subscriber mode: the session's reset here, and one message of UNSUBSCRIBE and
        PUNSUBSCRIBE whose reply becomes RESET's (node/fronts/resp_route.py). Messages still on
        their way to it are dropped: the client asked to hear no more."""
        self._answer_here(conn, "RESET", [b"RESET"], None, None)
        conn.pubsub = None
        self.subscribers.pop(conn.key, None)
        self._forward(conn, [[b"UNSUBSCRIBE"], [b"PUNSUBSCRIBE"]], ["RESET", "RESET"], 0)

    def _pubsub_log_lost(self, reason: str, in_flight: list, unsent: list) -> None:
        """The log actor died with the registry: close every subscriber (redis-py and most
        clients reconnect and subscribe again) rather than leave it listening to nothing."""
        self._on_log_lost(reason, in_flight, unsent)
        for conn in list(self.subscribers.values()):
            self._close(conn)

    def _pubsub_closed(self, conn) -> None:
        if conn.pubsub is not None:
            self.subscribers.pop(conn.key, None)
            self.link.send_forget(conn.key)
