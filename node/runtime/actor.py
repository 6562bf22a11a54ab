"""The actor runtime: one process, one long-lived poller, timers, signals and a clean stop.

Design (in the spirit of Pykka, with a process instead of a thread per actor):
- An actor is a plain object with hooks (``Actor``): ``on_start``, one handler per readable
  source, ``on_tick`` at a fixed interval, ``on_turn`` after every turn, ``on_stop_requested``
  and ``on_stop``. It never owns a loop, so a test builds it in process, drives it with
  ``Runtime.run_once`` and checks what it sent: no subprocess, no sleeps.
- The runtime owns the only poller of the process, one ``select.epoll`` built once. Actors
  ``watch`` a ZeroMQ socket or a file descriptor with a callback and ``unwatch`` it when it goes
  away; asking for POLLOUT is a ``want_write`` call, not a rebuilt poller. Not ``zmq.Poller``:
  zmq_poll makes two poll(2) calls per wait (a first pass with no timeout, then the real wait)
  and pyzmq rebuilds its item list each call; with one request in flight every wait counts
  (docs/benchmarks.md, "Wake-ups per request").
- A ZeroMQ socket is watched through its ``ZMQ_FD``, which only signals that the socket's state
  may have changed: any send or receive on it may consume that signal while messages stay
  queued. So before each wait the runtime reads ``ZMQ_EVENTS`` of every watched ZeroMQ socket
  (a socket with events makes the wait 0), and after a wait it reads it again for each one
  whose descriptor fired; a handler runs only for events the socket really has.
- Timers: ``on_tick`` runs every ``tick_interval`` seconds, measured on the monotonic clock,
  between turns. A turn never waits past the next tick, nor at all while the actor says it has
  work (``busy``): that is how the log actor's catch-up slices run back to back.
- Signals (``run`` only, never in a test): the actor's stop signals call ``on_stop_requested``;
  the loop then ends once ``finished()`` says so, and ``on_stop`` gives the exit code. Signal
  handlers only set a flag; the work happens between turns.
- Failure policy: an exception from a handler is a bug, not bad input (bad input is an error
  reply in the handler): it propagates, the process exits non-zero and the supervisor restarts
  the actor.
"""
from __future__ import annotations

import math
import os
import select
import signal
import time
from typing import Callable, cast

import zmq

__all__ = ["Actor", "Runtime"]

class Actor:
    """Base of every actor. Override what you need; every hook has a harmless default."""

    tick_interval: float | None = None
    # Signals that ask for a clean stop, and signals to ignore: the supervisor handles Ctrl-C
    # for the whole node, and a hangup of the terminal (SIGHUP to the process group) must not
    # kill an actor (the front installs its own SIGHUP handler when it uses CURVE).
    stop_signals: tuple[int, ...] = (signal.SIGTERM,)
    ignored_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGHUP)

    def on_start(self, runtime: "Runtime") -> None:
        """Register sources with ``runtime.watch``; runs once, before the first turn."""

    def on_tick(self, now: float) -> None:
        """Periodic work, every ``tick_interval`` seconds (monotonic ``now``)."""

    def on_turn_start(self) -> None:
        """Right after the poll returned, before any handler (metering)."""

    def on_turn(self) -> None:
        """After every turn, whatever woke it (metering, one slice of background work)."""

    @property
    def busy(self) -> bool:
        """True while the actor has work of its own: the next poll does not wait."""
        return False

    @property
    def max_wait(self) -> float | None:
        """The longest the next poll may wait (None: no limit of the actor's own)."""
        return None

    def on_stop_requested(self) -> None:
        """A stop signal arrived (or ``Runtime.request_stop``): start stopping."""

    def finished(self) -> bool:
        """Polled after each turn once a stop was requested: True ends the loop."""
        return True

    def on_stop(self) -> int:
        """Release resources; the return value is the process's exit code."""
        return 0


class Runtime:
    def __init__(self, actor: Actor, clock: Callable[[], float] = time.monotonic) -> None:
        self.actor = actor
        self.clock = clock
        self._epoll = select.epoll()
        self._handlers: dict[object, tuple[Callable[[], None] | None, Callable[[], None] | None]] = {}
        self._fds: dict[int, object] = {}  # registered descriptor -> its source's key
        # A ZeroMQ source's key -> [socket, ZMQ_FD, mask, skip the check before a wait, drains]: a
        # draining socket is checked once, after it was watched, then left to its descriptor.
        self._zmq: dict[object, list] = {}
        self._next_tick: float | None = None
        self.stop_requested = False
        self.turns = 0
        self._started = False
        self._stop_signalled = False
        self.stop_signal = ""  # the name of the signal that asked for the stop, if one did

    # -- sources --------------------------------------------------------------------------------

    def watch(self, source, on_readable: Callable[[], None] | None,
              on_writable: Callable[[], None] | None = None, write: bool = False,
              drains: bool = False) -> None:
        """Call ``on_readable`` when ``source`` (a zmq socket or an fd) is readable, and
        ``on_writable`` when it is writable while ``want_write(source, True)`` is on.

        ``drains`` (a ZeroMQ socket only): ``on_readable`` reads until EAGAIN and nothing else
        sends or receives on it, so its descriptor alone says when to look, and the check of
        ``ZMQ_EVENTS`` before each wait is left out (the socket monitor's)."""
        key = _key(source)
        mask = self._mask(on_readable, write)
        if isinstance(source, zmq.Socket):
            entry = self._zmq.get(key)
            if entry is None:
                fd = cast(int, source.getsockopt(zmq.FD))  # ZMQ_FD is an int option
                self._zmq[key] = [source, fd, mask, False, drains]
                self._register(fd, select.EPOLLIN, key)
            else:
                entry[2] = mask
        else:
            self._register(_fd(source), _epoll_mask(mask), key)
        self._handlers[key] = (on_readable, on_writable)

    def want_write(self, source, on: bool) -> None:
        key = _key(source)
        on_readable, _ = self._handlers[key]
        mask = self._mask(on_readable, on)
        entry = self._zmq.get(key)
        if entry is not None:
            entry[2] = mask
        else:
            self._register(_fd(source), _epoll_mask(mask), key)

    def unwatch(self, source) -> None:
        """Stop watching ``source``; before closing it: epoll forgets a descriptor only when
        its last copy closes, and a forked rewrite child holds copies of the log actor's."""
        key = _key(source)
        if self._handlers.pop(key, None) is None:
            return
        entry = self._zmq.pop(key, None)
        fd = entry[1] if entry is not None else _fd(source)
        if self._fds.get(fd) == key:
            del self._fds[fd]
            try:
                self._epoll.unregister(fd)
            except OSError:  # closed already: the kernel dropped the registration with it
                pass

    def watching(self, source) -> bool:
        return _key(source) in self._handlers

    def _register(self, fd: int, events: int, key: object) -> None:
        try:
            if fd in self._fds:
                self._epoll.modify(fd, events)
            else:
                self._epoll.register(fd, events)
        except FileNotFoundError:  # closed and its number reused since: a new registration
            self._epoll.register(fd, events)
        except FileExistsError:
            self._epoll.modify(fd, events)
        self._fds[fd] = key

    @staticmethod
    def _mask(on_readable, write: bool) -> int:
        return (zmq.POLLIN if on_readable is not None else 0) | (zmq.POLLOUT if write else 0)

    # -- the loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.actor.on_start(self)
            if self.actor.tick_interval is not None:
                self._next_tick = self.clock() + self.actor.tick_interval

    def request_stop(self) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self.actor.on_stop_requested()

    def run_once(self, timeout: float | None = None) -> None:
        """One turn: wait (at most ``timeout`` s, the next tick, or not at all if the actor is
        busy), run the handlers of what is ready, the tick if due, then ``on_turn``."""
        self.start()
        wait = self._wait_s(timeout)
        zmq_sources = self._zmq
        zmq_ready: list = []
        for key, entry in zmq_sources.items():  # what a send or receive left queued
            sock, _, mask, skip, drains = entry
            if mask and not skip:
                entry[3] = drains
                events = sock.getsockopt(zmq.EVENTS) & mask
                if events:
                    zmq_ready.append((key, events))
        if zmq_ready:
            wait = 0.0
        # Whole milliseconds, rounded up (epoll's unit): a wait under 1 ms must not become 0,
        # a spin through the last millisecond before every tick.
        ready = self._epoll.poll(-1 if wait is None else math.ceil(wait * 1000.0) / 1000.0)
        self.actor.on_turn_start()
        handlers = self._handlers
        fds = self._fds
        for fd, events in ready:
            key = fds.get(fd)
            if key in zmq_sources:  # the socket's signal: what it holds is in ZMQ_EVENTS
                if all(key != k for k, _ in zmq_ready):
                    sock, _, mask, _, _ = zmq_sources[key]
                    events = sock.getsockopt(zmq.EVENTS) & mask
                    if events:
                        zmq_ready.append((key, events))
                continue
            handler = handlers.get(key)
            if handler is None:
                continue  # unwatched by an earlier handler of this turn
            on_readable, on_writable = handler
            if events & select.EPOLLOUT and on_writable is not None:
                on_writable()
            if events & _READABLE and key in handlers:
                if on_readable is not None:
                    on_readable()  # a hang-up or an error too: the read sees the EOF or the errno
                elif events & _BROKEN and on_writable is not None:
                    on_writable()  # not reading: the write sees it, rather than a spin on it
        for key, events in zmq_ready:
            handler = handlers.get(key)
            if handler is None:
                continue
            on_readable, on_writable = handler
            if events & zmq.POLLOUT and on_writable is not None:
                on_writable()
            if events & zmq.POLLIN and on_readable is not None and key in handlers:
                on_readable()
        if self._next_tick is not None:
            now = self.clock()
            if now >= self._next_tick:
                self.actor.on_tick(now)
                self._next_tick = self.clock() + self.actor.tick_interval
        self.actor.on_turn()
        self.turns += 1

    def _wait_s(self, timeout: float | None) -> float | None:
        if self.actor.busy:
            return 0.0
        wait = timeout
        own = self.actor.max_wait
        if own is not None:
            wait = own if wait is None else min(wait, own)
        if self.stop_requested:  # look at ``finished()`` at least every 100 ms
            wait = 0.1 if wait is None else min(wait, 0.1)
        if self._next_tick is not None:
            until_tick = max(0.0, self._next_tick - self.clock())
            wait = until_tick if wait is None else min(wait, until_tick)
        return wait

    def run(self) -> int:
        """The process's main loop: install signal handlers, turn until finished, stop."""
        # pyzmq retries a poll that a signal interrupted, so a flag alone could wait for the
        # next tick (or forever): the wakeup pipe makes the poll return at once.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        self.watch(wake_r, lambda: _drain(wake_r))
        for sig in self.actor.stop_signals:
            signal.signal(sig, lambda signum, _f: self._on_stop_signal(signum))
        for sig in self.actor.ignored_signals:
            # A handler the actor installed itself (an actor started before ``run``, as the
            # front whose CURVE handler rereads its allow-list on SIGHUP) is kept.
            if signal.getsignal(sig) in (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler, None):
                signal.signal(sig, signal.SIG_IGN)
        self.start()
        while True:
            if self._stop_signalled:
                self.request_stop()
            if self.stop_requested and self.actor.finished():
                break
            self.run_once()
        return self.actor.on_stop()

    def _on_stop_signal(self, signum: int) -> None:
        # Only a flag: a handler runs between two bytecodes of whatever the actor was doing.
        self._stop_signalled = True
        self.stop_signal = signal.Signals(signum).name


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _key(source) -> object:
    return source if isinstance(source, int) else id(source)


def _fd(source) -> int:
    return source if isinstance(source, int) else source.fileno()


_BROKEN = select.EPOLLHUP | select.EPOLLERR
_READABLE = select.EPOLLIN | _BROKEN


def _epoll_mask(mask: int) -> int:
    """zmq.POLLIN/POLLOUT as epoll's bits (epoll reports hang-ups and errors unasked)."""
    return (select.EPOLLIN if mask & zmq.POLLIN else 0) | (select.EPOLLOUT if mask & zmq.POLLOUT else 0)
