"""The log actor's end of its links to the fronts: the mirror of node/fronts/log_link.py.

Design:
- One ``FrontLink`` per front (``Config.front_paths``: the ZeroMQ front, and the RESP front
  with ``--resp-bind``). The log actor connects to the front's socket from its tick, says
  ``Hello`` first, and reconnects when the front restarts. Each connection gets a number (a
  generation): its clients' keys in the shared ``WorkQueue`` carry it (node/log/work.py), so two
  fronts' client 1 never share a FIFO and each reply goes only to the connection its message
  came from.
- When a connection ends (EOF, a failed send) its queued messages are dropped, unrun and
  unanswered (``dropped_messages_front_gone``): its successor numbers messages from 1 again, so
  a reply made for them later could reach the wrong client.
- Back-pressure: past ``channel_output_limit`` unsent bytes to a front, its clients are parked
  until it drains; the other fronts are served meanwhile.
- Each link holds the reply encoder of its front's wire (node/log/replies.py).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import os

from aofnode.log.replies import Protocol2Replies, RespReplies
from aofnode.log.work import CLIENT_BITS, CLIENT_MASK, CheckedPending, Pending, WorkQueue, owner_base
from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.runtime.actor import Runtime

__all__ = ["FrontLink", "FrontLinks", "ROLES"]

# Config.front_paths order, and each front's reply encoder: protocol 2 for the ZeroMQ front,
# RESP made here for the RESP front's messages that ask for it (node/log/replies.py). The
# ZeroMQ front forwards its clients' bodies unchecked; the RESP front checked each request's
# name and arity (node/fronts/resp_route.py), so its messages are not checked twice.
ROLES = ("front", "resp")
_ENCODERS = {"front": Protocol2Replies, "resp": RespReplies}
_PENDING = {"front": Pending, "resp": CheckedPending}


class FrontLink:
    """One front's socket path and the log actor's current connection to it."""

    __slots__ = ("role", "path", "replies", "pending", "ch", "conn", "base", "reading", "taken",
                 "counters", "on_read", "on_flush")

    def __init__(self, role: str, path: str) -> None:
        self.role = role  # "front" or "resp": for the log and INFO
        self.path = path
        self.replies = _ENCODERS[role]()  # every reply to this front is made there
        self.pending = _PENDING[role]  # its messages in the work queue
        self.ch: channel.Channel | None = None
        self.conn = -1  # the connection's number (its generation); -1: none yet
        self.base = 0  # the WorkQueue key of its client 0 (work.owner_base)
        self.reading = True  # False under back-pressure
        self.taken = 0  # batches added since the last Replies on this connection
        self.counters: dict = {}  # the front's latest Stats, for INFO
        self.on_read = self.on_flush = None

    @property
    def up(self) -> bool:
        return self.ch is not None and not self.ch.closed


class FrontLinks:
    """Every front link of the log actor: connect, read, send, back-pressure, loss."""

    def __init__(self, paths: Sequence[str], work: WorkQueue, stats: dict, output_limit: int, log) -> None:
        self.links = [FrontLink(ROLES[i], path) for i, path in enumerate(paths)]
        self.conns: dict[int, FrontLink] = {}  # live connection number -> its link
        self.work = work
        self.stats = stats  # the log actor's: batches, forgotten and dropped messages
        self.output_limit = output_limit  # Config.channel_output_limit
        self.log = log
        self.backpressure_pauses = 0
        self.runtime: Runtime | None = None
        # What else the log actor keeps per client (WATCH state): forgotten with the client.
        self.forget_client: Callable[[int], None] = lambda key: None
        self.forget_owner: Callable[[int], None] = lambda base: None
        self.pubsub = None  # node/log/pubsub.py: told of clients and fronts gone
        self.monitors = None
        self.dropped_deliveries = 0

    def attach_pubsub(self, pubsub, monitors) -> None:
        self.pubsub = pubsub
        self.monitors = monitors  # node/log/monitor.py: told of the same clients and fronts gone
        pubsub.subscribable = monitors.subscribable = lambda key: self._role(key) == "resp"
        self.stats["pubsub_dropped_deliveries"] = 0

    def _role(self, key: int) -> str:
        link = self.conns.get(key >> CLIENT_BITS)
        return link.role if link is not None else ""

    def conn_of(self, role: str) -> int | None:
        """The current connection number of the front of ``role``, None if it is not up."""
        for link in self.links:
            if link.role == role and link.up:
                return link.conn
        return None

    def deliver(self, notices: list) -> None:
        """Send PUBLISH's deliveries; a front past ``output_limit`` unsent bytes loses them
        (counted): the log actor never waits for a slow front."""
        for conn, notice in notices:
            link = self.conns.get(conn)
            if link is None or not link.up or link.ch.pending_bytes > self.output_limit:
                self.stats["pubsub_dropped_deliveries"] += len(getattr(notice, "clients", ())) or 1
                continue
            self._send(link, notice)

    def start(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.reconnect()

    def reconnect(self) -> None:
        """Connect every front not connected (from the tick: a restarted front comes back)."""
        for link in self.links:
            if not link.up:
                self._connect(link)

    def close(self) -> None:
        for link in self.links:
            if link.ch is not None:
                link.ch.flush()
                link.ch.close()

    def counters(self) -> list[dict]:
        """Each front's latest Stats ({} for a front not connected)."""
        return [link.counters for link in self.links]

    def pending_bytes(self) -> int:
        return sum(link.ch.pending_bytes for link in self.links if link.up)

    def reply(self, finished: dict[int, list[Pending]]) -> None:
        """Send each finished message's reply to the connection it came from, encoded for that
        front's wire; tell every front how many batches were taken."""
        for conn, done in finished.items():
            link = self.conns.get(conn)
            if link is None:  # cannot be: a lost connection's work is dropped with it (_lose)
                self.stats["dropped_messages_front_gone"] += len(done)
                continue
            if not done and not link.taken:
                continue
            taken, link.taken = link.taken, 0
            self._send(link, m.Replies(taken, [p.seq for p in done], link.replies.encode(done)))
        for link in self.links:
            if link.taken and link.up:  # batches taken, nothing of them finished yet
                taken, link.taken = link.taken, 0
                self._send(link, m.Replies(taken, [], []))

    def _connect(self, link: FrontLink) -> None:
        if link.ch is not None:
            self._lose(link)
        ch = channel.connect(link.path)
        if ch is None:
            return
        # Connection numbers: link i's connections are i, i + n, i + 2n... (n links), so they
        # never meet, and the ZeroMQ front's first connection is 0, whose keys are the front's
        # own numbers (the cheapest path in WorkQueue.add), whichever front connects first.
        n = len(self.links)
        conn = self.links.index(link) if link.conn < 0 else link.conn + n
        link.ch, link.conn, link.base = ch, conn, owner_base(conn)
        link.reading, link.taken = True, 0
        link.on_read = lambda: self._read(link)
        link.on_flush = lambda: self._flush(link)
        self.conns[conn] = link
        self.runtime.watch(ch.fileno(), link.on_read, link.on_flush)
        self.log.info("front_connected", front=link.role, conn=conn)
        self._send(link, m.Hello(os.getpid()))

    def forget(self, link, msg: m.Forget) -> None:
        """A client the front closed (``closing``: its queued work still runs) or cut off (its
        queued work, blocking, subscriptions and monitoring dropped)."""
        key = (msg.client & CLIENT_MASK) | link.base
        if msg.closing:
            self.work.close(key)
        else:
            self.stats["forgotten_messages"] += self.work.forget(key)
            self.forget_client(key)
            if self.pubsub is not None:
                self.pubsub.forget(key)
                self.monitors.forget(key)

    def _lose(self, link: FrontLink) -> None:
        """The connection ended: forget it, and drop (unrun, unanswered) what it queued."""
        ch, link.ch = link.ch, None
        if ch is None:
            return
        if self.runtime.watching(ch.fileno()):
            self.runtime.unwatch(ch.fileno())
        ch.close()
        self.conns.pop(link.conn, None)
        dropped = self.work.drop_owner(link.base)
        self.forget_owner(link.base)
        if self.pubsub is not None:
            self.pubsub.forget_owner(link.base)
            self.monitors.forget_owner(link.base)
        self.stats["dropped_messages_front_gone"] += dropped
        link.counters = {}
        link.reading, link.taken = True, 0
        self.log.info("front_lost", front=link.role, conn=link.conn, dropped_messages=dropped)

    def _send(self, link: FrontLink, msg) -> None:
        ch = link.ch
        if not ch.send(msg):
            self._lose(link)  # a dead front: the replies are lost with its clients
        elif ch.wants_write:
            self._watch(link, reading=ch.pending_bytes <= self.output_limit)

    def _flush(self, link: FrontLink) -> None:
        ch = link.ch
        if not ch.flush():
            self._lose(link)
            return
        # Take batches again once the front took half of what it owed: no flapping.
        self._watch(link, reading=link.reading or ch.pending_bytes <= self.output_limit // 2)

    def _watch(self, link: FrontLink, reading: bool) -> None:
        """Back-pressure: past ``output_limit`` unsent bytes to a front, take no new batches
        from it and run none of its clients' work until it drains (replies to 3,000 pipelined
        1 MiB GETs once took the log actor to 7 GB). Other fronts are served meanwhile."""
        ch = link.ch
        resumed = reading and not link.reading
        if reading != link.reading:
            link.reading = reading
            if reading:
                self.work.unpark(link.base)
            else:
                self.work.park(link.base)
                self.backpressure_pauses += 1
        self.runtime.watch(ch.fileno(), link.on_read if reading else None, link.on_flush, write=ch.wants_write)
        if resumed:
            # Read what the front sent meanwhile before this turn's cycle: a Forget of a client
            # it cut off waits in the channel, and a cycle run first makes that client's replies
            # again (up to 4 MiB), back-pressure again, never reading it. A victim's INFO once
            # waited 0.6-1.1 s behind ~170 MiB made that way for a client already cut.
            self._read(link)

    def _read(self, link: FrontLink) -> None:
        ch = link.ch
        for msg in ch.receive():
            kind = type(msg)
            if kind is m.Batch:
                self.work.add(msg, link.base, link.pending)  # run from the log actor's turn, a bounded amount per cycle
                link.taken += 1
                self.stats["total_batches"] += 1
            elif kind is m.Stats:
                link.counters = msg.counters
            elif kind is m.Forget:
                self.forget(link, msg)
        if ch.closed:
            self._lose(link)
