"""The RESP front's side of client-side caching: CLIENT TRACKING's forwarding, the invalidation
pushes, RESET and closed connections.

Design:
- The tracking state is the log actor's (node/log/tracking.py). CLIENT TRACKING, CACHING,
  GETREDIR and TRACKINGINFO go to it as one message each, in the connection's order; the log
  actor's reply is the client's. The front adds one thing only it knows: whether the client
  id named by REDIRECT is connected now (``CLIENT TRACKING <1|0> on|off ...``, the flag in
  the place of the first argument, so a client cannot send it itself).
- Each ``Invalidate`` becomes, on its target connection: a RESP3 push ``invalidate`` with the
  keys (or null: everything), or, for a redirect target in RESP2 that is subscribed (to
  anything, as Redis checks), a ``message`` on ``__redis__:invalidate``; a RESP2 target that
  is not subscribed gets nothing, as in Redis. ``broken`` becomes ``tracking-redir-broken``
  on a RESP3 tracking client. They join the reply order as pub/sub messages do, under the same
  output limits (node/fronts/resp_pubsub.py ``_push_out``).
- RESET sends ``CLIENT TRACKING off`` (its reply dropped) before RESET's own reply; a closed
  connection that tracked, or that was named as a redirect target, says ``Forget``, so the log
  actor drops its state and knows a redirect to it is broken.
- When the log actor dies its tracking table dies with it: every tracking connection is closed
  then (its cache could not be told of later changes).
"""
from __future__ import annotations

import msgpack

from aofnode import protocol as resp
from aofnode.fronts.resp_route import TRACKING_SUBCOMMANDS, SilencedSlot, Slot
from aofnode.protocol.keyspecs import SPECS
from aofnode.protocol.resp_reply import invalidate_message

__all__ = ["TrackingFront", "TRACKING_SUBCOMMANDS"]

_BROKEN = b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n"


class TrackingFront:
    """Mixin of ``RespFront``: forwards the tracking subcommands, delivers invalidations."""

    def _tracking_init(self) -> None:
        self.tracked: dict[int, object] = {}  # client key -> Conn: tracking or a redirect target
        self.stats["tracking_pushes"] = 0
        self.link.on_invalidate = self._on_invalidate

    def _tracking_command(self, conn, argv: list[bytes]) -> None:
        """CLIENT TRACKING|CACHING|GETREDIR|TRACKINGINFO: arity checked here, then forwarded."""
        sub = argv[1].lower()
        arity = SPECS["client|" + sub.decode()][0]
        n = len(argv)
        if (arity > 0 and n != arity) or n < -arity:
            error = resp.error_line("ERR", f"wrong number of arguments for 'client|{sub.decode()}' command")
            conn.slots.append(Slot(conn, self._answer_here(conn, "CLIENT", argv, None, error)))
            return
        forwarded: list = ["CLIENT", *argv[1:]]  # the name as a str: the command table's key
        if sub == b"tracking":
            target = self._redirect_target(argv[3:])
            forwarded.insert(2, b"1" if target is not None else b"0")
            if target is not None:
                target.session.tracking |= 2
                self.tracked[target.key] = target
            if argv[2].lower() == b"on":
                conn.session.tracking |= 1
                self.tracked[conn.key] = conn
            elif argv[2].lower() == b"off":
                conn.session.tracking &= ~1
        self._forward(conn, [forwarded], None, sum(map(len, argv)) + 16 * len(argv))

    def _redirect_target(self, opts: list[bytes]):
        """The connection REDIRECT names, if connected (the first REDIRECT: a second is an
        error in the log actor). Options are read as Redis reads them: PREFIX takes a value."""
        j = 0
        while j < len(opts):
            opt = opts[j].lower()
            if opt in (b"redirect", b"prefix") and j + 1 < len(opts):
                if opt == b"redirect":
                    try:
                        wanted = int(opts[j + 1])
                    except ValueError:
                        return None
                    for other in self.conns.values():
                        if other.session.id == wanted and not other.closed:
                            return other
                    return None
                j += 1
            j += 1
        return None

    def _tracking_reset(self, conn) -> None:
        """RESET of a tracking connection: tracking off in the log actor, in the reply order,
        its reply dropped (RESET's own follows)."""
        conn.session.tracking &= ~1
        self._forward_silenced(conn, [["CLIENT", b"TRACKING", b"0", b"off"]])

    def _forward_silenced(self, conn, group: list[list]) -> None:
        if not self.link.ready:
            return  # no log actor: no state there either
        slot = SilencedSlot(conn, None, len(group), 0, None, conn.session.resp3, False)
        conn.slots.append(slot)
        header = {"db": conn.session.db} if conn.session.db else {}
        self._forward_body(conn, slot, msgpack.packb([header, group], use_bin_type=True))

    def _on_invalidate(self, msg) -> None:
        conn = self.tracked.get(msg.client)
        if conn is None or conn.closed:
            return
        resp3 = conn.session.resp3
        if msg.broken:
            if resp3:
                self._push_out(conn, _BROKEN % msg.broken)
            return
        if resp3:
            data = b"".join(invalidate_message(keys, True) for keys in msg.pushes)
        elif msg.redirected and conn.pubsub is not None:
            data = b"".join(invalidate_message(keys, False) for keys in msg.pushes)
        else:
            return  # RESP2 without a subscribed redirect target: nowhere to say it (Redis)
        self.stats["tracking_pushes"] += len(msg.pushes)
        self._push_out(conn, data)

    def _tracking_log_lost(self, reason: str, in_flight: list, unsent: list) -> None:
        self._monitor_log_lost(reason, in_flight, unsent)
        for conn in list(self.tracked.values()):
            if conn.session.tracking & 1:
                self._close(conn)
        self.tracked.clear()
