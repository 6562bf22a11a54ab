"""A front's end of its link to the log actor: one module for the ZeroMQ front and the RESP front.

Design:
- Owns the front's private socket (``SiblingListener``: only a sibling actor gets in), the
  connections accepted there, the log actor's channel once it said ``Hello``, and the message
  bookkeeping: messages queued and not sent, the message numbers, the messages in flight, and
  how many batches the log actor has not taken yet. A front owns its clients, their reply order
  and the answers it makes itself; it hands each message here with a *token* (anything: a slot,
  a tuple) that comes back with the message's reply.
- Steps, as both fronts run them:
  1. the log actor connects (from its 100 ms tick) to ``path``; the connection's first message
     must be ``Hello(pid)``, or it is closed: it is then the channel, and ``ready`` is True (a
     second ``Hello`` on a new connection replaces the first: what the old one held is lost);
  2. ``queue(token, key, body)`` adds a client message; ``flush()`` (once a turn) sends all of
     them as one ``Batch`` (big bodies apart: ``_take_batch``) unless ``MAX_IN_FLIGHT`` batches
     are still untaken or the channel holds over ``MAX_CHANNEL_PENDING`` bytes, numbering them
     ``next_seq``, ``next_seq + 1``...;
  3. each ``Replies`` lowers ``untaken`` by what that log turn took and hands the front
     ``on_replies(tokens, replies)``: the tokens of the numbered messages, ``None`` for a number
     no longer in flight (dropped by the front, or aborted);
  4. on the channel's EOF or a failed send (or a replacing ``Hello``), everything is forgotten
     first and ``ready`` is False, then ``on_lost(reason, in_flight, unsent)`` gives the front the
     tokens to answer: ABORTED for those in flight (they may or may not have been applied),
     LOADING for those never sent. Until a new ``Hello``, the front answers LOADING itself.
- ``send_stats`` and ``send_forget`` send only while a channel is up (nothing is queued for a
  log actor that is not there). It never blocks: what the kernel does not take waits in the
  channel, flushed when the socket is writable.
"""
from __future__ import annotations

import socket
from typing import Any, Callable

from aofnode.runtime import channel
from aofnode.runtime import messages as m
from aofnode.runtime import private_sockets
from aofnode.runtime.actor import Runtime

__all__ = ["LogLink", "MAX_IN_FLIGHT", "aborted_message"]

# Two batches not yet taken by the log actor keep it busy while the front prepares the next
# one; more would only make batches smaller (worse group commit). A batch counts until a log
# turn has taken it, not until it is answered: one huge message must not hold the gate.
MAX_IN_FLIGHT = 2
# Bodies per Batch, in bytes (one body always goes, however big): the channel copies a batch
# about three times while it packs and queues it, so a batch of every waiting 60 MiB SET put
# ~0.7 GiB in the front at once; small messages never come near it.
MAX_BATCH_BYTES = 64 << 20
# No new Batch while the channel holds more than this the kernel has not taken: a batch queued
# behind it would wait anyway, and meanwhile other clients' messages can still join the next
# one instead of queueing behind a second big one (a PING behind a client's pipelined 60 MiB
# SETs waited for three or four of them). Batches of small messages never come near it.
MAX_CHANNEL_PENDING = 1 << 20


def aborted_message(reason: str) -> str:
    """The text of the ABORTED reply to a message that was in flight when the link was lost."""
    return f"{reason} with this request in flight: it may or may not have been applied"


class LogLink:
    def __init__(self, path: str, name: str, log, stats: dict,
                 on_replies: Callable[[list, list[bytes]], None],
                 on_lost: Callable[[str, list, list], None]) -> None:
        """``name`` is the listener's name in its logs; ``stats`` the front's counters
        (``batches`` is counted there)."""
        self.path = path
        self.name = name
        self.log = log
        self.stats = stats
        self.on_replies = on_replies
        self.on_lost = on_lost
        self.on_deliver: Callable[[m.Deliver], None] | None = None  # the RESP front's, for pub/sub
        self.on_monitor: Callable[[m.Monitor], None] | None = None  # ... and for MONITOR
        self.on_invalidate: Callable[[m.Invalidate], None] | None = None  # ... CLIENT TRACKING
        # The log actor's state a front acts on, as ``Stats`` from it (``{"oom": 0|1}``: the
        # RESP front answers OOM to a denyoom command queued in MULTI); None: ignored.
        self.on_state: Callable[[dict], None] | None = None
        self.runtime: Runtime | None = None
        self.listener: private_sockets.SiblingListener | None = None
        self.ch: channel.Channel | None = None  # the log actor, once it said Hello
        self.pending: list[channel.Channel] = []  # accepted, not yet said Hello
        self.ready = False
        self.log_pid: int | None = None
        # Messages queued and not sent, as three parallel lists: a Batch takes the keys and the
        # bodies as they are, and the tokens become in_flight in one dict.update.
        self.unsent: list = []
        self._keys: list[int] = []
        self._bodies: list[bytes] = []
        self._unsent_bytes = 0
        self.in_flight: dict[int, Any] = {}  # message number -> its token
        self.untaken = 0  # batches sent that no log turn has taken yet (see MAX_IN_FLIGHT)
        self.next_seq = 1

    def start(self, runtime: Runtime, data_dir: str) -> None:
        self.runtime = runtime
        private_sockets.prepare_run_dir(data_dir)
        self.listener = private_sockets.SiblingListener(self.path, socket.SOCK_STREAM, self.log, self.name)
        runtime.watch(self.listener.fileno(), self._accept)

    @property
    def rejected(self) -> int:
        """Connections refused on the private socket: not a sibling actor (for INFO)."""
        return self.listener.rejected if self.listener is not None else 0

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing waiting to be sent."""
        return not self.in_flight and not self.unsent

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        for ch in [self.ch, *self.pending]:
            if ch is not None:
                ch.close()

    # -- what the front sends ------------------------------------------------------------------

    def queue(self, token, key: int, body: bytes) -> None:
        """One client message for the next Batch (step 2); ``key`` is its client's number."""
        self.unsent.append(token)
        self._keys.append(key)
        self._bodies.append(body)
        self._unsent_bytes += len(body)

    def flush(self) -> None:
        """Send what is queued as Batches, while the gate is open and a log actor is ready."""
        while (self.unsent and self.untaken < MAX_IN_FLIGHT and self.ready
               and self.ch.pending_bytes <= MAX_CHANNEL_PENDING):
            tokens, keys, bodies = self._take_batch()
            first_seq = self.next_seq
            self.next_seq = first_seq + len(tokens)
            self.in_flight.update(zip(range(first_seq, self.next_seq), tokens))
            self.untaken += 1
            self.stats["batches"] += 1
            self._send(m.Batch(first_seq, keys, bodies))

    def _take_batch(self) -> tuple[list, list[int], list[bytes]]:
        """The next Batch: all that is queued, as queued, unless big bodies are among it. Then
        the messages of clients with none go first, in a batch of their own (the log actor
        decodes a batch once all of it arrived: a PING behind a 60 MiB body waited for it), and
        the rest go in batches of at most MAX_BATCH_BYTES (or one body). Each client's messages
        keep their order."""
        tokens, keys, bodies = self.unsent, self._keys, self._bodies
        if self._unsent_bytes <= MAX_CHANNEL_PENDING:
            self.unsent, self._keys, self._bodies, self._unsent_bytes = [], [], [], 0
            return tokens, keys, bodies
        heavy = {key for key, body in zip(keys, bodies) if len(body) > MAX_CHANNEL_PENDING}
        take = [i for i, key in enumerate(keys) if key not in heavy]
        if not take:
            size = 0
            while len(take) < len(bodies) and (not take or size + len(bodies[len(take)]) <= MAX_BATCH_BYTES):
                size += len(bodies[len(take)])
                take.append(len(take))
        chosen = set(take)
        rest = [i for i in range(len(tokens)) if i not in chosen]
        self.unsent, self._keys, self._bodies = ([tokens[i] for i in rest], [keys[i] for i in rest],
                                                 [bodies[i] for i in rest])
        self._unsent_bytes = sum(map(len, self._bodies))
        return [tokens[i] for i in take], [keys[i] for i in take], [bodies[i] for i in take]

    def send_stats(self, counters: Callable[[], dict]) -> None:
        """The front's counters for INFO (made only if a log actor is there to take them)."""
        if self.ch is not None:
            self._send(m.Stats(counters()))

    def send_forget(self, key: int, closing: bool = False) -> None:
        """That client was cut off: the log actor drops its queued messages. ``closing``: it
        only sent EOF, so its messages still run, but none of them may wait in a blocking pop."""
        if self.ch is not None:
            self._send(m.Forget(key, closing))

    def drop_unsent(self, belongs: Callable[[Any], bool]) -> int:
        """Forget the queued messages whose token ``belongs`` (a client gone); how many."""
        tokens = self.unsent
        keep = [i for i, token in enumerate(tokens) if not belongs(token)]
        if len(keep) == len(tokens):
            return 0
        keys, bodies = self._keys, self._bodies
        self.unsent = [tokens[i] for i in keep]
        self._keys = [keys[i] for i in keep]
        self._bodies = [bodies[i] for i in keep]
        self._unsent_bytes = sum(map(len, self._bodies))
        return len(tokens) - len(keep)

    def drop_in_flight(self, belongs: Callable[[Any], bool]) -> int:
        """Forget the messages in flight whose token ``belongs``: their replies will be ignored.
        O(messages in flight): for a cut-off only."""
        mine = [seq for seq, token in self.in_flight.items() if belongs(token)]
        for seq in mine:
            del self.in_flight[seq]
        return len(mine)

    def _send(self, msg) -> None:
        ch = self.ch
        if not ch.send(msg):
            self._lost("log actor unreachable")
        elif ch.wants_write:
            self.runtime.want_write(ch.fileno(), True)

    # -- the channel ---------------------------------------------------------------------------

    def _flush_channel(self) -> None:
        ch = self.ch
        if not ch.flush():
            self._lost("log actor died")
        elif not ch.wants_write:
            self.runtime.want_write(ch.fileno(), False)

    def _accept(self) -> None:
        for sock in self.listener.accept():
            ch = channel.Channel(sock)
            self.pending.append(ch)
            self.runtime.watch(ch.fileno(), lambda c=ch: self._read_pending(c))

    def _read_pending(self, ch: channel.Channel) -> None:
        """A connection's first message must be Hello: it is then the log actor's channel (step 1)."""
        msgs = ch.receive()
        if msgs and type(msgs[0]) is m.Hello:
            self.pending.remove(ch)
            self.runtime.unwatch(ch.fileno())
            if self.ch is not None:
                self._drop_channel()
                self._lost("log actor replaced")
            self.ch, self.ready, self.log_pid = ch, True, msgs[0].pid
            self.runtime.watch(ch.fileno(), self._read, self._flush_channel, write=ch.wants_write)
            self.log.info("log_actor_ready", log_pid=self.log_pid)
            self._on_messages(msgs[1:])
        elif ch.closed or msgs:
            self.pending.remove(ch)
            self.runtime.unwatch(ch.fileno())
            ch.close()

    def _drop_channel(self) -> None:
        ch, self.ch = self.ch, None
        if ch is not None:
            if self.runtime.watching(ch.fileno()):
                self.runtime.unwatch(ch.fileno())
            ch.close()

    def _read(self) -> None:
        ch = self.ch
        self._on_messages(ch.receive())
        if ch.closed and ch is self.ch:
            self._lost("log actor died")

    def _on_messages(self, msgs: list) -> None:
        for msg in msgs:
            if type(msg) is not m.Replies:
                if type(msg) is m.Deliver and self.on_deliver is not None:
                    self.on_deliver(msg)  # a PUBLISH for this front's subscribers
                elif type(msg) is m.Monitor and self.on_monitor is not None:
                    self.on_monitor(msg)  # MONITOR lines for this front's monitors
                elif type(msg) is m.Invalidate and self.on_invalidate is not None:
                    self.on_invalidate(msg)  # CLIENT TRACKING's invalidations
                elif type(msg) is m.Stats and self.on_state is not None:
                    self.on_state(msg.counters)
                continue
            self.untaken = max(0, self.untaken - msg.taken)
            pop = self.in_flight.pop
            self.on_replies([pop(seq, None) for seq in msg.seqs], msg.replies)  # step 3

    def _lost(self, reason: str) -> None:
        """Forget everything the dead log actor held, then let the front answer it (step 4)."""
        self._drop_channel()
        in_flight, unsent = list(self.in_flight.values()), self.unsent
        self.in_flight.clear()
        self.unsent, self._keys, self._bodies, self._unsent_bytes = [], [], [], 0
        self.untaken = 0
        self.ready = False
        self.log_pid = None
        self.on_lost(reason, in_flight, unsent)
        self.log.warning("log_actor_lost", reason=reason, aborted_messages=len(in_flight) + len(unsent))
