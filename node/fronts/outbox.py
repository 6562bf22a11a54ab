"""Replies the client ROUTER has not taken yet: per client, in order, bounded in bytes.

Design (Redis's client-output-buffer-limit, for a ZeroMQ ROUTER):
- The ROUTER runs with ZMQ_ROUTER_MANDATORY and a small per-peer SNDHWM (``PEER_SNDHWM``
  messages). A send to a client whose pipe is full fails with EAGAIN instead of being dropped
  silently (with a 100,000-message HWM and no EAGAIN, 150,000 of 400,000 replies vanished), and
  a send to a client that is gone fails with EHOSTUNREACH.
- What the pipe refuses waits here, per client, in order; ``flush`` retries the blocked
  clients every turn (the front polls at most ``RETRY_INTERVAL_S`` apart while any is blocked:
  a ROUTER signals no per-peer writability).
- A client whose waiting replies pass ``limit`` bytes is cut off: its waiting replies are
  dropped, it is logged, ``disconnections`` counts it, and for ``CUT_OFF_S`` its new messages
  and late replies are dropped too. ZeroMQ gives a ROUTER no way to close one peer's
  connection, so "cut off" is this silence: a Lazy Pirate client times out and reconnects with
  a new socket (a new identity), as a Redis client would after its connection was closed.
- Bytes held per client are at most ``limit`` here plus ``PEER_SNDHWM`` replies in the pipe;
  all clients together at most ``total_limit`` (``TOTAL_LIMIT_FACTOR`` x ``limit``), past which
  the client holding most is cut off. The front never stops taking replies from the log actor
  because of its clients: that once let one slow reader stall every client.
- Replies to a client that is gone are dropped and counted (``dropped_gone``).
"""
from __future__ import annotations

import collections
import time
from typing import Callable

import zmq

from aofnode.fronts.core import TOTAL_LIMIT_FACTOR, Throttle, pick_cut_off

__all__ = ["Outbox", "PEER_SNDHWM", "CUT_OFF_S"]

# Replies ZeroMQ may hold per client before a send fails with EAGAIN. Its bytes are part of the
# per-client bound (32 x the reply size: 32 MiB for 1 MiB values, so with the default 64 MiB
# limit a client holds at most ~1.5x the limit); a reading client empties the pipe far faster
# than that fills it, so the outbox only holds replies of clients that do not read.
PEER_SNDHWM = 32
# How long a cut-off client's messages and late replies are dropped.
CUT_OFF_S = 10.0
# While a client is blocked, retry at least this often (a ROUTER signals no per-peer POLLOUT).
RETRY_INTERVAL_S = 0.005
_SENT, _FULL, _GONE = object(), object(), object()


class Outbox:
    def __init__(self, sock: zmq.Socket, limit: int, log, clock: Callable[[], float] = time.monotonic,
                 on_cut: Callable[[bytes], None] = lambda _identity: None,
                 total_limit: int | None = None) -> None:
        self.sock = sock
        self.total_limit = total_limit if total_limit is not None else TOTAL_LIMIT_FACTOR * limit
        self.on_cut = on_cut
        self.limit = limit
        self.log = log
        self.clock = clock
        self.waiting: dict[bytes, collections.deque[list[bytes]]] = {}
        self.waiting_bytes: dict[bytes, int] = {}
        self.total_bytes = 0
        self.cut: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self.disconnections = 0
        self.dropped_gone = 0
        self.dropped_cut = 0
        self._cut_log = Throttle(clock)  # one cut-off line a second, counting the rest

    @property
    def blocked(self) -> bool:
        return bool(self.waiting)

    def is_cut(self, identity: bytes) -> bool:
        until = self.cut.get(identity)
        if until is None:
            return False
        if self.clock() < until:
            return True
        del self.cut[identity]
        return False

    def send(self, identity: bytes, frames: list[bytes]) -> None:
        """Send one reply (``frames`` includes the envelope), or keep it until the pipe takes it."""
        if self.cut and self.is_cut(identity):
            self.dropped_cut += 1
            return
        if identity not in self.waiting:  # nothing ahead of it: straight to the pipe
            outcome = self._try_send(frames)
            if outcome is not _FULL:
                return
        self._keep(identity, frames)

    def _try_send(self, frames: list[bytes]) -> object:
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
            return _SENT
        except zmq.Again:
            return _FULL
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.dropped_gone += 1
            return _GONE

    def _keep(self, identity: bytes, frames: list[bytes]) -> None:
        size = sum(map(len, frames))
        queue = self.waiting.setdefault(identity, collections.deque())
        queue.append(frames)
        held = self.waiting_bytes.get(identity, 0) + size
        self.waiting_bytes[identity] = held
        self.total_bytes += size
        held_by = self.waiting_bytes.__getitem__
        victim = pick_cut_off(identity, held, self.total_bytes, self.limit, self.total_limit,
                              self.waiting_bytes, held_by)
        if victim is not None:
            self._cut_off(victim, held_by(victim))

    def _cut_off(self, identity: bytes, held: int) -> None:
        replies = len(self.waiting.pop(identity))
        self.total_bytes -= self.waiting_bytes.pop(identity)
        self.cut[identity] = self.clock() + CUT_OFF_S
        self.disconnections += 1
        skipped = self._cut_log.due()
        if skipped is not None:
            self.log.warning("client_output_limit_reached", identity=identity.hex(), held_bytes=held,
                             limit=self.limit, dropped_replies=replies, cut_off_s=CUT_OFF_S,
                             also_cut_since_last_line=skipped)
        self.on_cut(identity)

    def flush(self) -> None:
        """Retry every blocked client, in order, until its pipe refuses again."""
        for identity in list(self.waiting):
            queue = self.waiting[identity]
            while queue:
                outcome = self._try_send(queue[0])
                if outcome is _FULL:
                    break
                frames = queue.popleft()
                if outcome is _GONE:  # the client is gone: drop all it was owed
                    self.dropped_gone += len(queue)
                    queue.clear()
                    break
                size = sum(map(len, frames))
                self.waiting_bytes[identity] -= size
                self.total_bytes -= size
            if not queue:
                del self.waiting[identity]
                self.total_bytes -= self.waiting_bytes.pop(identity)
