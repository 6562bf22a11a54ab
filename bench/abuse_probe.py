"""The two observers of an abuse scenario: a victim client and an RSS sampler.

Design
------
Both run in their own processes (``spawn``), so that neither the abuser's Python work (building a
60 MB message holds the GIL for seconds) nor the other observer can delay what they measure.

* The **victim** is an ordinary client: one connection, one PING at a time, one every
  ``interval`` (2 ms: 500/s, a light load beside the abuse). Each latency is recorded with
  HdrHistogram's coordinated-omission correction for that interval (bench/hist.py), so a 1 s
  stall counts as the ~500 PINGs that a client on that schedule would have seen delayed, not as
  one sample. A PING unanswered after ``timeout`` is a **timeout**: the victim records the time
  it waited, drops the connection (linger 0) and opens a new one, as the project's Lazy Pirate
  client does. ``stall_max_s`` is the longest time without any reply, which shows the whole
  outage when it spans several timeouts.
* The **sampler** reads ``VmRSS`` of every process of the server every ``SAMPLE_S`` and keeps
  each role's peak. Roles come from the process tree: for aofnode the supervisor's children are
  ``python -m aofnode.roles ROLE ...``, and a child of the log actor is the rewrite child; for
  redis-server the server and its fork children. The tree is walked again every
  ``RESCAN_S``, so an actor that restarts during a scenario is followed. It also takes each
  role's CPU time (utime + stime) over the scenario: it says which actor a stall was spent in.

Both stop when the parent sets the stop event, and hand back one dict on a queue.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import socket
import time
from typing import Any

import zmq

from aofnode.bench import hist, resp
from aofnode.bench.targets import open_dealer
from aofnode import protocol

__all__ = ["Probes", "process_roles", "read_rss", "read_cpu_s"]

VICTIM_INTERVAL_S = 0.002
# 50 ms between RSS samples: the growth of finding 1 was ~800 MB/s, so a peak is missed by at
# most ~40 MB at that rate.
SAMPLE_S = 0.05
RESCAN_S = 0.5
_CTX = multiprocessing.get_context("spawn")


# --- process tree and RSS ------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    out = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            out = [int(p) for p in f.read().split()]
    except OSError:
        pass
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def process_roles(kind: str, root_pid: int) -> dict[int, str]:
    """pid -> role for every live process of the server whose top process is ``root_pid``."""
    roles = {root_pid: "supervisor" if kind == "aofnode" else "redis"}
    for child in _children(root_pid):
        args = _cmdline(child)
        entry = "aofnode.roles"
        if kind == "aofnode" and entry in args:
            role = args[args.index(entry) + 1] if args.index(entry) + 1 < len(args) else "actor"
        else:
            role = "child"
        roles[child] = role
        for grandchild in _children(child):  # the log actor's rewrite child (a fork)
            roles[grandchild] = f"{role}-child"
    return roles


def read_rss(pid: int) -> int | None:
    """VmRSS of ``pid`` in bytes, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return 0  # a zombie has no VmRSS line


_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def read_cpu_s(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # fields 14 and 15 of proc(5)


def _sample(kind: str, root_pid: int, stop, out) -> None:
    peaks: dict[str, int] = {}
    first: dict[str, int] = {}
    cpu_first: dict[int, float] = {}
    cpu_last: dict[int, tuple[str, float]] = {}
    roles: dict[int, str] = {}
    next_scan = 0.0
    samples = 0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_scan:
            roles = process_roles(kind, root_pid)
            next_scan = now + RESCAN_S
        for pid, role in roles.items():
            rss = read_rss(pid)
            if rss is None:
                continue
            first.setdefault(role, rss)
            if rss > peaks.get(role, -1):
                peaks[role] = rss
            cpu = read_cpu_s(pid)
            if cpu is not None:
                cpu_first.setdefault(pid, cpu)
                cpu_last[pid] = (role, cpu)
        samples += 1
        stop.wait(SAMPLE_S)
    # CPU each role used while the abuse ran (a process that started meanwhile counts from its
    # first sample).
    cpu_s: dict[str, float] = {}
    for pid, (role, cpu) in cpu_last.items():
        cpu_s[role] = round(cpu_s.get(role, 0.0) + cpu - cpu_first[pid], 2)
    out.put({"peak_rss": peaks, "start_rss": first, "cpu_s": cpu_s, "samples": samples})


# --- the victim ----------------------------------------------------------------------------

class _ZmqPing:
    def __init__(self, endpoint: str) -> None:
        self._ctx = zmq.Context()
        self._endpoint = endpoint
        self._body = protocol.encode_request("PING")
        self.sock = self._open()

    def _open(self) -> zmq.Socket:
        return open_dealer(self._ctx, self._endpoint)

    def ping(self, timeout: float) -> bool:
        self.sock.send_multipart([b"", self._body])
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            return False
        reply = protocol.decode_reply(self.sock.recv_multipart()[-1])
        if reply != "PONG":
            raise RuntimeError(f"victim PING got {reply!r}")
        return True

    def reopen(self) -> None:
        self.sock.close(linger=0)
        self.sock = self._open()

    def close(self) -> None:
        self.sock.close(linger=0)
        self._ctx.term()


class _RespPing:
    def __init__(self, host: str, port: int) -> None:
        self._addr = (host, port)
        self.sock = self._open()
        self._parser = resp.ReplyParser()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self._addr, timeout=5.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def ping(self, timeout: float) -> bool:
        self.sock.sendall(resp.encode_command("PING"))
        deadline = time.monotonic() + timeout
        while True:
            replies = self._parser.replies()
            if replies:
                if replies[0] != "PONG":
                    raise RuntimeError(f"victim PING got {replies[0]!r}")
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except (socket.timeout, TimeoutError):
                return False
            if not data:
                raise ConnectionError("redis closed the victim's connection")
            self._parser.feed(data)

    def reopen(self) -> None:
        self.sock.close()
        self.sock = self._open()
        self._parser = resp.ReplyParser()

    def close(self) -> None:
        self.sock.close()


def _victim(spec: dict, timeout: float, stop, ready, out) -> None:
    try:
        out.put(_victim_loop(spec, timeout, stop, ready))
    except Exception as exc:  # the parent reports it in the row instead of waiting for it
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def _victim_loop(spec: dict, timeout: float, stop, ready) -> dict:
    conn = _ZmqPing(spec["endpoint"]) if spec["kind"] == "aofnode" else _RespPing(spec["host"], spec["port"])
    h = hist.new_histogram()
    raw_max_us = 0
    interval_us = int(VICTIM_INTERVAL_S * 1e6)
    pings = timeouts = errors = 0
    last_reply = time.monotonic()
    stall_max = 0.0
    next_send = time.monotonic()
    try:
        while not stop.is_set():
            sent = time.monotonic()
            failed = False
            try:
                ok = conn.ping(timeout)
            except (OSError, RuntimeError, zmq.ZMQError):  # an error reply or a closed connection
                ok, failed = False, True
            done = time.monotonic()
            value = hist.latency_us(done, sent)
            hist.record_latency(h, value, expected_interval_us=interval_us)
            raw_max_us = max(raw_max_us, value)
            pings += 1
            if ok:
                stall_max = max(stall_max, done - last_reply)
                last_reply = done
                ready.set()
            else:
                if failed:
                    errors += 1
                else:
                    timeouts += 1
                try:
                    conn.reopen()
                except OSError:
                    time.sleep(0.05)
            next_send = max(next_send + VICTIM_INTERVAL_S, done)
            pause = next_send - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        stall_max = max(stall_max, time.monotonic() - last_reply)
    finally:
        conn.close()
    return {"pings": pings, "timeouts": timeouts, "errors": errors, "stall_max_s": round(stall_max, 3),
            "latency_ms": hist.summary_ms(h), "raw_max_ms": raw_max_us / 1000.0,
            "histogram": h.encode().decode() if pings else ""}


class Probes:
    """Start the victim and the sampler (``with Probes(...) as p:``); ``p.results`` after exit.

    ``spec``: ``{"kind": "aofnode", "endpoint": ...}`` or ``{"kind": "redis", "host", "port"}``;
    ``root_pid``: the supervisor's (or redis-server's) pid, None when the server is elsewhere.
    """

    def __init__(self, spec: dict, root_pid: int | None, victim_timeout: float = 1.0) -> None:
        self.spec = spec
        self.root_pid = root_pid
        self.victim_timeout = victim_timeout
        self.results: dict[str, Any] = {}

    def __enter__(self) -> "Probes":
        self._stop = _CTX.Event()
        self._ready = _CTX.Event()
        self._victim_q, self._sampler_q = _CTX.Queue(), _CTX.Queue()
        self._victim = _CTX.Process(target=_victim, daemon=True, args=(
            self.spec, self.victim_timeout, self._stop, self._ready, self._victim_q))
        self._victim.start()
        self._sampler = None
        if self.root_pid is not None:
            self._sampler = _CTX.Process(target=_sample, daemon=True, args=(
                self.spec["kind"], self.root_pid, self._stop, self._sampler_q))
            self._sampler.start()
        # The victim's first reply: the measurement starts with a client that is being served.
        deadline = time.monotonic() + 30
        while not self._ready.wait(0.1):
            if time.monotonic() > deadline or not self._victim.is_alive():
                self._stop.set()
                self._join()
                raise RuntimeError("the victim got no reply within 30 s")
        return self

    def _join(self) -> None:
        for proc in (self._victim, self._sampler):
            if proc is not None:
                proc.join(5)
                if proc.is_alive():
                    proc.kill()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        try:
            self.results["victim"] = self._victim_q.get(timeout=self.victim_timeout + 10)
        except queue.Empty:
            self.results["victim"] = {"error": "the victim process gave no result"}
        self.results.update({"peak_rss": {}, "start_rss": {}, "cpu_s": {}, "samples": 0})
        if self._sampler is not None:
            try:
                self.results.update(self._sampler_q.get(timeout=10))
            except queue.Empty:
                pass
        self._join()
