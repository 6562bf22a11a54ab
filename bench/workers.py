"""One load-generating worker process: many client connections driven from one poll loop.

Design
------
The parent starts ``--procs`` workers (multiprocessing, "spawn") and gives each a share of the
clients. A worker owns its connections, its histograms and its counters; it shares nothing with
the others while the load runs, so the generator scales with processes, not threads.

Steps of one worker, matching ``run_worker``:

1. open its connections, then report ``("ready", index)`` on the results queue;
2. wait for the parent's go event and read the common start time ``t0`` (CLOCK_MONOTONIC is
   system-wide on Linux, so every process compares against the same clock);
3. loop: send a batch on every idle client that is due (closed loop: always due), check the
   timeouts, poll the sockets until the next due time, and account for the replies;
4. at the end (duration over, quota sent, or the parent's stop event) send nothing more and wait
   for the batches in flight, each at most ``--timeout``;
5. put ``("done", index, result)``: counts, errors by code, encoded histograms (total and per
   second) and its own CPU time.

Guarantee: every request sent is either replied or counted as a timeout, never both, so
``sent == replied + timeouts`` (the smoke test checks it). A timed-out client reconnects
(Lazy Pirate) and goes on. Latency: see hist.py; the measured window starts after the warmup
and a batch belongs to it by its (intended) send time.
"""
from __future__ import annotations

import signal
import time
import traceback
from dataclasses import dataclass

import zmq

from aofnode.bench import hist
from aofnode.bench.targets import TargetSpec, new_mux, open_connection
from aofnode.bench.workload import LoadShape, OpGenerator

__all__ = ["WorkerSpec", "run_worker", "COUNTER_FIELDS"]

# Live counters a worker publishes (for the progress line), in this order, per worker.
COUNTER_FIELDS = ("sent", "replied", "errors", "timeouts")
# How often a worker publishes its counters and looks at the stop event: often enough for a
# once-a-second progress line, rare enough to cost nothing.
_HOUSEKEEPING_S = 0.2
# Longest poll when nothing is due: bounds the delay of noticing the end of the run.
_MAX_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    target: TargetSpec
    shape: LoadShape
    client_indexes: tuple[int, ...]
    quota: int | None  # measured requests to send (--requests), None for --duration
    seed: int


class _Client:
    __slots__ = ("index", "conn", "inflight", "sent_at", "intended", "measured", "next_due")

    def __init__(self, index: int, conn) -> None:
        self.index = index
        self.conn = conn
        self.inflight = 0  # requests of the batch in flight, 0 when idle
        self.sent_at = 0.0
        self.intended = 0.0
        self.measured = False
        self.next_due = 0.0


class _Second:
    __slots__ = ("count", "errors", "timeouts", "hist")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.timeouts = 0
        self.hist = hist.new_histogram()


def run_worker(spec: WorkerSpec, counters, go, t0_box, stop, results) -> None:
    """Process entry point. Never raises: a failure is reported on ``results``."""
    # Ctrl-C reaches the whole process group; the parent decides and sets ``stop``.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        worker = _Worker(spec, counters)
        results.put(("ready", spec.index, None))  # step 1
        if not go.wait(60):  # step 2
            return
        results.put(("done", spec.index, worker.run(t0_box.value, stop)))
    except Exception:
        results.put(("failed", spec.index, traceback.format_exc()))


class _Worker:
    def __init__(self, spec: WorkerSpec, counters) -> None:
        self.spec = spec
        self.shape = spec.shape
        self.counters = counters
        self.ctx = zmq.Context()
        self.mux = new_mux(spec.target)
        self.ops = OpGenerator(spec.shape, seed=spec.seed)
        self.clients = []
        for i in spec.client_indexes:
            c = _Client(i, open_connection(spec.target, self.ctx))
            self.mux.register(c.conn)
            self.clients.append(c)
        self.by_conn = {c.conn: c for c in self.clients}
        self.sent = self.replied = self.errors = self.timeouts = 0
        self.measured_sent = self.measured_replied = self.measured_timeouts = 0
        self.errors_by_code: dict[str, int] = {}
        self.total = hist.new_histogram()
        self.seconds: dict[int, _Second] = {}
        self.last_measured_done = 0.0

    # -- step 3 and 4 ---------------------------------------------------------------------------

    def run(self, t0: float, stop) -> dict:
        shape = self.shape
        # t0 is a moment just ahead (run.py step 2): start on it, not on the go event.
        time.sleep(min(1.0, max(0.0, t0 - time.monotonic())))
        cpu0 = time.process_time()
        self.t0 = t0
        self.warm_end = t0 + shape.warmup_s
        end = self.warm_end + shape.duration_s if shape.duration_s is not None else float("inf")
        interval = shape.batch_interval_s()
        for c in self.clients:
            c.next_due = t0 + shape.client_phase_s(c.index)
        timeout = shape.timeout_s
        next_house = 0.0
        stopping = False
        while True:
            now = time.monotonic()
            if now >= next_house:
                next_house = now + _HOUSEKEEPING_S
                self._publish()
                stopping = stopping or stop.is_set()
            sending = (not stopping and now < end
                       and (self.spec.quota is None or self.measured_sent < self.spec.quota))
            wait = _MAX_POLL_S
            busy = False
            for c in self.clients:
                if c.inflight:
                    busy = True
                    if now - c.sent_at > timeout:
                        self._time_out(c, now, reopen=sending)
                    else:
                        wait = min(wait, c.sent_at + timeout - now)
                elif sending:
                    if interval is None or c.next_due <= now:
                        self._send(c, now, interval)
                        busy = True
                    else:
                        wait = min(wait, c.next_due - now)
            if not sending and not busy:
                break
            if sending:
                wait = min(wait, end - now)
            for conn in self.mux.poll(wait):
                c = self.by_conn[conn]
                done = time.monotonic()
                for errs in conn.read():
                    self._complete(c, errs, done)
        self._publish()
        for c in self.clients:
            c.conn.close()
        self.ctx.term()
        return self._result(time.process_time() - cpu0)

    def _send(self, c: _Client, now: float, interval: float | None) -> None:
        if interval is None:
            c.intended = now
        else:
            c.intended = c.next_due
            c.next_due += interval
        c.measured = c.intended >= self.warm_end
        size = self.shape.pipeline
        if c.measured and self.spec.quota is not None:
            size = min(size, self.spec.quota - self.measured_sent)
            if size <= 0:
                return  # an earlier client of this turn sent the last of the quota
        body = self.ops.batch(size)
        c.sent_at = time.monotonic()  # before the send: its syscall is part of the latency
        c.conn.send(body)
        c.inflight = size
        self.sent += size
        if c.measured:
            self.measured_sent += size

    def _complete(self, c: _Client, errs: list, done: float) -> None:
        n = len(errs)
        if n != c.inflight:  # a reply we did not ask for: a bug on one side or the other
            raise RuntimeError(f"client {c.index}: {n} replies for a batch of {c.inflight}")
        c.inflight = 0
        self.replied += n
        shape = self.shape
        lat = hist.latency_us(done, c.sent_at, c.intended if shape.rate else None)
        nerr = 0
        for code in errs:
            if code is not None:
                nerr += 1
                if c.measured:
                    self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
        self.errors += nerr
        sec = self._second(done)
        sec.count += n
        sec.errors += nerr
        hist.record_latency(sec.hist, lat, n, shape.expected_interval_us)
        if c.measured:
            self.measured_replied += n
            self.last_measured_done = max(self.last_measured_done, done)
            hist.record_latency(self.total, lat, n, shape.expected_interval_us)

    def _time_out(self, c: _Client, now: float, reopen: bool) -> None:
        """Lazy Pirate: give the batch up, and use a fresh connection for the next one."""
        self.timeouts += c.inflight
        self._second(now).timeouts += c.inflight
        if c.measured:
            self.measured_timeouts += c.inflight
        c.inflight = 0
        if reopen:
            c.conn.reopen(self.mux)
            self.by_conn = {x.conn: x for x in self.clients}

    def _second(self, t: float) -> _Second:
        key = int(t - self.t0)
        sec = self.seconds.get(key)
        if sec is None:
            sec = self.seconds[key] = _Second()
        return sec

    def _publish(self) -> None:
        base = self.spec.index * len(COUNTER_FIELDS)
        for i, value in enumerate((self.sent, self.replied, self.errors, self.timeouts)):
            self.counters[base + i] = value

    # -- step 5 -------------------------------------------------------------------------------

    def _result(self, cpu_s: float) -> dict:
        return {
            "sent": self.sent,
            "replied": self.replied,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "measured_sent": self.measured_sent,
            "measured_replied": self.measured_replied,
            "measured_timeouts": self.measured_timeouts,
            "errors_by_code": self.errors_by_code,
            "hist": self.total.encode(),
            "seconds": {k: {"count": s.count, "errors": s.errors, "timeouts": s.timeouts,
                            "hist": s.hist.encode()} for k, s in self.seconds.items()},
            "last_measured_done": self.last_measured_done - self.t0,
            "cpu_s": cpu_s,
        }
