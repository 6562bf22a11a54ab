"""The front core: what the ZeroMQ front and the RESP front share, so each is a thin adapter.

Design (docs/design.md, "Fronts"):
- Owns per-client reply order (a FIFO of slots per client: a reply leaves once every earlier
  one has), the count and bytes of messages waiting for the log actor (per client and over all
  clients, with the pause and resume rule), the choice of whom to cut off for unsent replies,
  the loss of the log actor (ABORTED for what was in flight, LOADING for what was not sent),
  the graceful stop, bind errors and the rate-limited logs. Every shared limit is here, once.
- An adapter owns its transport: how it reads and writes clients, how it pauses one
  (``_pause``/``_resume``), how a log actor's reply or an error becomes its wire format
  (``_reply_from_log``, ``_error_reply``) and how its clients' replies are written
  (``_deliver``). It hands each message to ``_forward_body``, which is the only place waiting
  grows.
- It never blocks and never touches the keyspace or the AOF.
"""
from __future__ import annotations

import collections
import os
import resource
import sys
import time
from typing import Callable, Iterable, TypeVar

from aofnode import exitcodes
from aofnode.config import Config
from aofnode.fronts.log_link import LogLink, aborted_message
from aofnode import protocol as codec
from aofnode.runtime.actor import Actor, Runtime

__all__ = ["FrontCore", "Client", "Slot", "BindError", "Throttle", "pick_cut_off", "run"]

# Descriptors kept back from clients for the rest of the process (the channel, the listener,
# ZeroMQ's own pipes and signalers): at most RLIMIT_NOFILE minus this many clients.
FD_RESERVE = 64
# On SIGTERM, how long a front waits for what is in flight before it exits anyway.
SHUTDOWN_GRACE_S = 10.0
# Waiting for the log actor (queued in the link or in flight, unanswered): past any of these a
# client is paused (not read) until it and all together are down to half, so clients that send
# without reading are pushed back by TCP and ZeroMQ's pipes instead of this process growing.
# Per client: 10,000 (a full message of codec.MAX_BATCH_LENGTH commands) or 2 x
# MAX_MESSAGE_BYTES (128 MiB: one biggest message in flight and the next one read).
MAX_CLIENT_WAITING = codec.MAX_BATCH_LENGTH
MAX_CLIENT_WAITING_BYTES = 2 * codec.MAX_MESSAGE_BYTES
# All clients: 50,000 (50 clients with 32-deep pipelines stay far below) or 256 MiB (two clients
# at their own bound). The log actor drains them, so a pause cannot deadlock.
MAX_WAITING = 50_000
MAX_WAITING_BYTES = 2 * MAX_CLIENT_WAITING_BYTES
# Unsent replies of all clients together are bounded by this many --client-output-limit; past it
# the client holding most is cut off. 4: a few slow readers near their limit at once.
TOTAL_LIMIT_FACTOR = 4
# At most one line a second for a repeated event (cut-offs, accept failures); the line counts
# the ones it stands for.
LOG_INTERVAL_S = 1.0

H = TypeVar("H")


class BindError(Exception):
    """A front's endpoint cannot (or must not) be bound: fatal, restarting cannot fix it."""


class Throttle:
    """At most one log line per ``LOG_INTERVAL_S``; ``due()`` is None when this one is skipped,
    else how many were skipped since the last line."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last = -LOG_INTERVAL_S
        self._skipped = 0

    def due(self) -> int | None:
        now = self.clock()
        if now - self._last < LOG_INTERVAL_S:
            self._skipped += 1
            return None
        skipped, self._last, self._skipped = self._skipped, now, 0
        return skipped


def pick_cut_off(holder: H, held: int, total: int, limit: int, total_limit: int,
                 holders: Iterable[H], size: Callable[[H], int]) -> H | None:
    """Whom to cut off after ``holder`` grew to ``held`` unsent bytes (``total`` over all): itself
    past ``limit``, else the one holding most past ``total_limit`` (never stop serving the others:
    a front that stopped taking replies instead stalled every client behind one), else None."""
    if held > limit:
        return holder
    if total > total_limit:
        return max(holders, key=size)
    return None


class Client:
    """One client's place in the core: its reply FIFO and what it has waiting."""

    __slots__ = ("key", "slots", "waiting", "waiting_bytes", "closed")

    def __init__(self, key: int) -> None:
        self.key = key  # its number in Batch, unique for the life of the process
        self.slots: collections.deque = collections.deque()
        self.waiting = 0  # commands (RESP) or messages (ZeroMQ) not answered yet
        self.waiting_bytes = 0
        self.closed = False


class Slot:
    """One place in a client's reply order: a message to the log actor (``count`` commands of
    ``size`` bytes), or a reply made here (``reply`` set at once)."""

    __slots__ = ("client", "reply", "count", "size")

    def __init__(self, client: Client, reply: bytes | None = None, count: int = 1, size: int = 0) -> None:
        self.client = client
        self.reply = reply
        self.count = count
        self.size = size


class FrontCore(Actor):
    tick_interval = 1.0  # Stats to the log actor
    # A paused client is resumed once it (and all together) are down to 1/this of the bounds.
    # 2 where a pause holds back only that client (fewer pause flips); an adapter whose pause
    # holds back every client sets 1 to resume as soon as it can.
    resume_divisor = 2

    def __init__(self, config: Config, log, path: str, name: str, stats: collections.Counter) -> None:
        self.config = config
        self.log = log
        self.runtime: Runtime | None = None
        self.stats = stats
        self.waiting = 0  # over all clients, as Client.waiting
        self.waiting_bytes = 0
        self.paused: set = set()  # clients past a waiting bound
        self.stopping = False
        self.stop_deadline = 0.0
        self.max_clients = 0
        self._accept_log = Throttle()
        # The log actor's end: a message's token is its Slot.
        self.link = LogLink(path, name, log, stats, self._on_replies, self._on_log_lost)

    # -- hooks of an adapter ----------------------------------------------------------------------

    def _pause(self, client) -> None:
        """Stop reading this client (a waiting bound passed)."""

    def _resume(self, client) -> None:
        """Read this client again."""

    def _deliver(self, client, slots: list) -> None:
        """Write these slots' replies, in order, to the client."""

    # The log actor's reply to a slot's message, in the client's wire format: a method
    # (slot, reply) -> bytes, or None where it is that already (one call less per message).
    _reply_from_log = None

    def _error_reply(self, slot, code: str, message: str) -> bytes:
        """An error answering all of ``slot``'s message, in the client's wire format."""
        raise NotImplementedError

    def _stop_reading(self) -> None:
        """Stop taking new clients and reading the others (a stop was asked for)."""

    def _output_pending(self) -> bool:
        return False

    def _close_transport(self) -> int:
        """Close every client socket; the exit code."""
        return 0

    # -- the actor --------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A log actor said Hello and is serving."""
        return self.link.ready

    def counters(self) -> dict:
        return dict(self.stats)

    def on_tick(self, now: float) -> None:
        self.link.send_stats(self.counters)

    def on_stop_requested(self) -> None:
        self.stopping = True
        self.stop_deadline = time.monotonic() + SHUTDOWN_GRACE_S
        self._stop_reading()
        self.log.info("front_stopping", in_flight=len(self.link.in_flight), waiting=self.waiting)

    def finished(self) -> bool:
        if time.monotonic() > self.stop_deadline:
            return True
        return self.link.idle and not self._output_pending()

    def on_stop(self) -> int:
        self.log.info("actor_stopped", unanswered=self.waiting)
        code = self._close_transport()
        self.link.close()
        return code

    # -- waiting for the log actor ----------------------------------------------------------------

    def _forward_body(self, client, slot, body: bytes) -> None:
        """Queue ``slot``'s message for the log actor; pause its client past a bound."""
        self.link.queue(slot, client.key, body)
        count, size = slot.count, slot.size
        client.waiting += count
        client.waiting_bytes += size
        self.waiting += count
        self.waiting_bytes += size
        if (client.waiting >= MAX_CLIENT_WAITING or client.waiting_bytes > MAX_CLIENT_WAITING_BYTES
                or self._over_total()):
            self.paused.add(client)
            self._pause(client)

    def _over_total(self) -> bool:
        return self.waiting >= MAX_WAITING or self.waiting_bytes > MAX_WAITING_BYTES

    def _resume_paused(self) -> None:
        """Once a turn: resume the paused clients back under their bounds (``resume_divisor``),
        if all together are."""
        d = self.resume_divisor
        if (self.paused and not self.stopping and self.waiting < MAX_WAITING
                and self.waiting_bytes <= MAX_WAITING_BYTES // d):
            for client in list(self.paused):
                if client.closed or (client.waiting < MAX_CLIENT_WAITING // d
                                     and client.waiting_bytes <= MAX_CLIENT_WAITING_BYTES // d):
                    self.paused.discard(client)
                    if not client.closed:
                        self._resume(client)

    def _drop_work(self, client, in_flight: bool = False) -> None:
        """The client is gone: its messages not sent yet need not go, and with ``in_flight`` the
        replies of those sent are ignored too; the counts follow."""
        if not client.waiting:
            return
        client.waiting = client.waiting_bytes = 0  # what stays in flight is counted again below
        belongs = lambda slot: slot.client is client  # noqa: E731
        dropped = self.link.drop_unsent(belongs)
        if in_flight:
            dropped += self.link.drop_in_flight(belongs)
        if dropped:
            self._recount()

    def _recount(self) -> None:
        """Waiting counts from what is really waiting (after a drop: rare, so a walk is fine)."""
        self.waiting = self.waiting_bytes = 0
        slots = [*self.link.unsent, *self.link.in_flight.values()]
        for slot in slots:
            slot.client.waiting = slot.client.waiting_bytes = 0
        for slot in slots:
            slot.client.waiting += slot.count
            slot.client.waiting_bytes += slot.size
            self.waiting += slot.count
            self.waiting_bytes += slot.size

    # -- replies, in each client's order ----------------------------------------------------------

    def _send_ready(self, client) -> None:
        """Deliver this client's replies that are ready, in order, up to the first one that is not."""
        slots = client.slots
        if slots and slots[0].reply is not None:
            ready = []
            while slots and slots[0].reply is not None:
                ready.append(slots.popleft())
            self._deliver(client, ready)

    def _on_replies(self, slots: list, replies: list[bytes]) -> None:
        touched = set()
        reply_from_log = self._reply_from_log
        for slot, reply in zip(slots, replies):
            if slot is None:
                continue  # a message dropped with its client, or aborted
            client = slot.client
            self.waiting -= slot.count
            self.waiting_bytes -= slot.size
            if client.closed:
                self.stats["dropped_replies_client_gone"] += 1
                continue
            client.waiting -= slot.count
            client.waiting_bytes -= slot.size
            slot.reply = reply if reply_from_log is None else reply_from_log(slot, reply)
            touched.add(client)
        for client in touched:
            self._send_ready(client)

    def _on_log_lost(self, reason: str, in_flight: list, unsent: list) -> None:
        """Answer everything the dead log actor held; LOADING until a new one says Hello."""
        touched = set()
        aborted = aborted_message(reason)
        for slot in in_flight:
            slot.reply = self._error_reply(slot, codec.ABORTED, aborted)
            touched.add(slot.client)
        for slot in unsent:
            slot.reply = self._error_reply(slot, codec.LOADING, codec.LOADING_MESSAGE)
            touched.add(slot.client)
        for client in touched:
            client.waiting = client.waiting_bytes = 0
        self.waiting = self.waiting_bytes = 0
        for client in touched:
            if not client.closed:
                self._send_ready(client)

    # -- clients coming and going -----------------------------------------------------------------

    def _set_max_clients(self) -> None:
        self.max_clients = max(0, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - FD_RESERVE)

    def _accept_failed(self, err: int, connected: int) -> None:
        """Past the descriptor limit a client would hang with nothing said: count, and log at
        most once a second with how many failed since the last line."""
        self.stats["accept_failures"] += 1
        if self._accept_log.due() is not None:
            self.log.error("client_accept_failed", errno=err, error=os.strerror(err),
                           connected_clients=connected, max_clients=self.max_clients,
                           accept_failures=self.stats["accept_failures"])


def refuse_bind(log, bind: str, error: str) -> int:
    """One line on stderr, ``bind_failed`` in the log, and the exit code that says: do not
    restart (restarting cannot free a port)."""
    log.error("bind_failed", bind=bind, error=error)
    print(f"aofnode: {error}", file=sys.stderr)
    return exitcodes.BIND


def run(front: FrontCore, log, bind: str) -> int:
    """A front's process: start it (a BindError exits ``exitcodes.BIND``), then run it."""
    runtime = Runtime(front)
    try:
        runtime.start()
    except BindError as exc:
        return refuse_bind(log, bind, str(exc))
    return runtime.run()
