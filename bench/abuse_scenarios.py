"""The abuse scenarios of issue 9, one function each, at a ``scale`` (1.0: the issue's figures).

Design
------
A scenario is ``fn(target, scale, measure) -> outcome``. It prepares the server outside the
measurement (preload), then runs the abuse inside ``with measure():`` (the victim and the RSS
sampler of bench/abuse_probe.py run for exactly that block, plus a short tail), and returns what
the abuse itself saw: ``{"summary": one line for the table, ...details for the JSON}``.
Every wait is bounded (``LIMIT_S``), so a server that never answers costs a scenario 20 s, not
the run. ``SCENARIOS`` lists them in the issue's order with the servers each applies to and the
node options it needs; redis gets the ones where the same abuse means the same thing.
"""
from __future__ import annotations

import datetime
import os
import resource
import signal
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from aofnode.bench.abuse_node import MIB, Target
from aofnode.bench.abuse_wire import NonReader, encode_pipeline, load, one_message
from aofnode import protocol

__all__ = ["Scenario", "SCENARIOS"]

LIMIT_S = 20.0


@dataclass(frozen=True)
class Scenario:
    name: str
    finding: str
    run: Callable
    servers: tuple[str, ...] = ("aofnode",)
    # Options of the node started for this scenario, given the scale.
    node_options: Callable[[float], tuple[str, ...]] = lambda scale: ()
    node_nofile: int | None = None
    title: str = ""


def _n(count: int, scale: float, least: int = 1) -> int:
    return max(least, int(count * scale))


def _event_age(event: dict, since_wall: float) -> float | None:
    try:
        ts = datetime.datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return None
    return round(ts - since_wall, 2)


# --- 1, 2: a client that never reads ----------------------------------------------------------

def _non_reader(t: Target, measure, value_size: int, count: int) -> dict:
    load(t, [(b"big", b"x" * value_size)], per_mset=1)
    before = t.info()
    t.mark_log()
    abuser = NonReader(t)
    cut_after = None
    try:
        with measure():
            start, wall = time.monotonic(), time.time()
            abuser.send(("GET", b"big"), count)
            # Until the server cuts the client off, or has run every GET without doing so.
            while time.monotonic() - start < LIMIT_S - 5:
                if t.kind == "aofnode":
                    events = t.events("client_output_limit_reached")
                    if events:
                        cut_after = _event_age(events[0], wall)
                        break
                elif "output buffer limits" in t.redis_log() or abuser.closed_by_server():
                    cut_after = round(time.monotonic() - start, 2)
                    break
                if _processed(t) - _processed(t, before) >= count + 1:  # + 1: the INFO itself
                    break
                time.sleep(0.05)
            time.sleep(1.0)  # the server goes on answering (or dropping) what was sent
    finally:
        abuser.close()
    time.sleep(1.2)  # aofnode's front sends its counters to INFO once a second
    after = t.info()
    out = {"requests": count, "value_bytes": value_size, "cut_off_after_s": cut_after,
           "offered_mib": round(count * value_size / MIB)}
    if t.kind == "aofnode":
        ev = t.events("client_output_limit_reached")
        out.update(
            disconnections=after["client_output_limit_disconnections"] - before["client_output_limit_disconnections"],
            held_mib_at_cut=round(ev[0]["held_bytes"] / MIB, 1) if ev else None,
            # Replies held when it was cut off (the log line), and later ones (INFO).
            dropped_replies=sum(e["dropped_replies"] for e in ev)
            + after["dropped_replies_cut_off"] - before["dropped_replies_cut_off"],
            dropped_messages=after["dropped_messages_cut_off"] - before["dropped_messages_cut_off"],
            forgotten_messages=after["forgotten_messages"] - before["forgotten_messages"],
            executed=_processed(t, after) - _processed(t, before) - 2,  # the two INFOs
            channel_backpressure_pauses=after["channel_backpressure_pauses"])
        if cut_after is None:
            out["summary"] = f"not cut off ({out['offered_mib']} MiB of replies asked)"
        else:
            out["summary"] = (f"cut off after {cut_after:.1f} s holding {out['held_mib_at_cut']} MiB; "
                              f"{out['executed']} of {count} GETs ran, {out['dropped_replies']} replies dropped")
    else:
        key = "client_output_buffer_limit_disconnections"
        if key in after:
            out["disconnections"] = int(after[key]) - int(before.get(key, 0))
        out["summary"] = ("not cut off" if cut_after is None
                          else f"connection closed after {cut_after:.1f} s (output buffer limit)")
    return out


def _processed(t: Target, info: dict | None = None) -> int:
    """Commands the server has run (its own counter, current on both servers)."""
    return int((info or t.info())["total_commands_processed"])


def slow_reader_1m(t: Target, scale: float, measure) -> dict:
    return _non_reader(t, measure, MIB, _n(3000, scale))


def slow_reader_64k(t: Target, scale: float, measure) -> dict:
    return _non_reader(t, measure, 64 << 10, _n(40_000, scale))


# --- 3: decoding amplification ---------------------------------------------------------------

def frame_bomb(t: Target, scale: float, measure) -> dict:
    """Two ~66 MB frames of empty arrays: one flat array of them (the finding), and a batch of
    10,000 requests of 6,600 each, which no array-length limit catches: only the object count."""
    n = _n(66_000_000, scale, 100_000)
    flat = b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n
    outer, inner = 10_000, max(1, n // 10_000)
    request = b"\xdc" + inner.to_bytes(2, "big") + b"\x90" * inner
    nested = b"\xdc" + outer.to_bytes(2, "big") + request * outer
    with measure():
        got = [one_message(t, frame, 1, LIMIT_S) for frame in (flat, nested)]
    out = {"frame_bytes": [len(flat), len(nested)], "seconds": [g["seconds"] for g in got],
           "reply": [g["reply"] for g in got]}
    parts = []
    for what, g in zip(("flat", "nested"), got):
        secs = g["seconds"]
        parts.append(f"{what}: no reply in {LIMIT_S:.0f} s" if secs is None else
                     f"{what}: {(g['reply'] or 'no error').split(' ')[0]} in {secs * 1000:.0f} ms")
    out["summary"] = f"{len(flat) / 1e6:.0f} MB frames, " + "; ".join(parts)
    return out


# --- 4: maxmemory ------------------------------------------------------------------------------

def maxmemory(t: Target, scale: float, measure) -> dict:
    limit = t.info()["maxmemory"]
    value = b"v" * 1024
    batch, written, first_oom, oom = 1000, 0, None, 0
    with measure():
        start = time.monotonic()
        with t.client(timeout=30) as c:
            while time.monotonic() - start < LIMIT_S - 5 and oom < 10 * batch:
                replies = c.execute_many([("SET", b"mm:%d" % (written + i), value) for i in range(batch)])
                for i, r in enumerate(replies):
                    if r == "OK":
                        continue
                    if getattr(r, "code", None) != "OOM":
                        raise RuntimeError(f"SET got {r!r}")
                    oom += 1
                    if first_oom is None:
                        first_oom = written + i
                written += batch
            get_ok = c.execute("GET", b"mm:0") == value
            del_ok = c.execute("DEL", b"mm:0", b"mm:1") == 2
            set_after_del = c.execute_many([("SET", b"mm:0", b"v")])[0] == "OK"
    info = t.info()
    used, rss = info["used_memory"], info["used_memory_rss"]
    return {"maxmemory": limit, "policy": info["maxmemory_policy"], "sets": written, "oom_replies": oom,
            "first_oom_at": first_oom, "used_memory": used, "used_memory_rss": rss,
            "get_ok": get_ok, "del_ok": del_ok, "set_after_del_ok": set_after_del,
            "summary": (f"maxmemory {limit / MIB:.0f} MiB: OOM from SET #{first_oom}, "
                        f"used_memory {used / MIB:.0f} MiB vs log RSS {rss / MIB:.0f} MiB; "
                        f"GET {'ok' if get_ok else 'FAILED'}, DEL {'ok' if del_ok else 'FAILED'}")}


# --- 5: glob backtracking --------------------------------------------------------------------

def keys_glob(t: Target, scale: float, measure) -> dict:
    others = _n(10_000, scale, 10)
    load(t, [(b"a" * 400, b"x"), *((b"key:%d" % i, b"v") for i in range(others))])
    pattern = b"*a*a*a*a*b"
    with measure():
        with t.client(timeout=LIMIT_S * 3) as c:
            start = time.monotonic()
            reply = c.execute("KEYS", pattern)
            keys_s = time.monotonic() - start
            start, cursor, calls = time.monotonic(), b"0", 0
            while True:  # the same matcher through SCAN MATCH, a whole iteration
                cursor, _found = c.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                calls += 1
                if cursor in (b"0", "0", 0) or time.monotonic() - start > LIMIT_S:
                    break
            scan_s = time.monotonic() - start
    return {"keys": others + 1, "pattern": pattern.decode(), "keys_seconds": round(keys_s, 4),
            "matched": len(reply), "scan_match_seconds": round(scan_s, 4), "scan_calls": calls,
            "summary": f"KEYS {keys_s * 1000:.1f} ms, full SCAN MATCH {scan_s * 1000:.0f} ms ({calls} calls)"}


# --- 6: abandoned SCANs ----------------------------------------------------------------------

def abandoned_scans(t: Target, scale: float, measure) -> dict:
    keys = _n(1_200_000, scale, 1000)
    clients = 64
    started = time.monotonic()
    load(t, ((b"s:%08d" % i, b"v") for i in range(keys)), per_mset=1000, msets_per_batch=50)
    load_s = time.monotonic() - started
    ctx = zmq.Context()
    socks = []
    body = protocol.encode_request("SCAN", "0")
    waits: list[float] = []
    try:
        with measure():
            for _ in range(clients):
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(t.spec.endpoint)
                socks.append(s)
            start = time.monotonic()
            for s in socks:
                s.send_multipart([b"", body])
            poller = zmq.Poller()
            for s in socks:
                poller.register(s, zmq.POLLIN)
            pending = set(socks)
            while pending and time.monotonic() - start < LIMIT_S:
                for s, _ in poller.poll(100):
                    s.recv_multipart()
                    waits.append(time.monotonic() - start)
                    pending.discard(s)
                    poller.unregister(s)
            time.sleep(1.0)  # the scans stay abandoned: never continued, sockets still open
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.term()
    last = max(waits) if waits else None
    return {"keys": keys, "load_seconds": round(load_s, 1), "clients": clients, "answered": len(waits),
            "all_answered_s": round(last, 3) if last else None,
            "summary": (f"{len(waits)}/{clients} SCAN 0 answered, all within "
                        f"{last * 1000:.0f} ms" if last else "no SCAN answered")
            + f" ({keys / 1e6:.2f}M keys)"}


# --- 7: one big pipeline ---------------------------------------------------------------------

def _pipeline(t: Target, commands: list[tuple], measure, what: str) -> dict:
    body = encode_pipeline(t, commands)
    with measure():
        got = one_message(t, body, len(commands), LIMIT_S * 2)
    secs = got["seconds"]
    errors = sum(got["errors"].values())
    return {"commands": len(commands), "message_bytes": len(body), "seconds": secs, "errors": got["errors"],
            "reply": got["reply"],
            "summary": (f"{what}: " + (f"no whole reply ({got['reply']})" if secs is None else
                        f"answered in {secs * 1000:.0f} ms") + f", {len(body) / MIB:.1f} MiB"
                        + (f", {errors} errors {got['errors']}" if errors else ""))}


def pipeline_set(t: Target, scale: float, measure) -> dict:
    value = b"x" * (6 << 10)
    commands = [("SET", b"p:%d" % i, value) for i in range(_n(10_000, scale))]
    return _pipeline(t, commands, measure, f"{len(commands)} SET x 6 KiB")


# 10,000 MSETs of 100 pairs is 2.02M msgpack objects, within MAX_MESSAGE_OBJECTS (2,097,152);
# 16-byte values keep the message at ~26 MiB, within the 64 MiB message limit.
MSET_VALUE = b"v" * 16


def pipeline_mset(t: Target, scale: float, measure) -> dict:
    n = _n(10_000, scale)
    commands = [("MSET", *[x for j in range(100) for x in (b"m:%d:%d" % (i, j), MSET_VALUE)])
                for i in range(n)]
    return _pipeline(t, commands, measure, f"{n} MSET x 100 keys")


# --- 8: a hung log actor ---------------------------------------------------------------------

def hung_log(t: Target, scale: float, measure) -> dict:
    info = t.info()
    pid, watchdog = info["process_id"], info["watchdog_timeout"]
    if t.root_pid is None:
        return {"skipped": "the node is not on this machine", "summary": "skipped: node not local"}
    stop_s = max(1.0, 10.0 * scale)
    t.mark_log()
    with measure():
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(stop_s)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)
    hung = t.events("actor_hung")
    ev = hung[0] if hung else {}
    return {"stopped_s": stop_s, "watchdog_timeout": watchdog, "actor_hung": len(hung), "event": ev,
            "summary": (f"SIGSTOP {stop_s:.0f} s: actor_hung logged (stalled_s {ev.get('stalled_s')}, "
                        f"state {ev.get('process_state')})" if hung else
                        f"SIGSTOP {stop_s:.0f} s: NO actor_hung (watchdog {watchdog} s)")}


# --- 9: many connections ---------------------------------------------------------------------

def many_connections(t: Target, scale: float, measure) -> dict:
    n = _n(2000, scale, 10)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    body = protocol.encode_request("PING")
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, n + 64)  # a context option (default 1023), not a socket default
    socks: list[zmq.Socket] = []
    t.mark_log()
    answered = 0
    # INFO through a connection made before the flood: past the node's descriptor limit a new
    # connection is never accepted, so a new control client would hang too.
    control = t.client(timeout=10)
    control.execute("PING")
    try:
        with measure():
            start = time.monotonic()
            for _ in range(n):
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(t.spec.endpoint)
                s.send_multipart([b"", body])
                socks.append(s)
            poller = zmq.Poller()
            for s in socks:
                poller.register(s, zmq.POLLIN)
            while answered < n and time.monotonic() - start < 10.0:
                for s, _ in poller.poll(100):
                    s.recv_multipart()
                    poller.unregister(s)
                    answered += 1
            time.sleep(1.2)  # the front's counters reach INFO once a second
            info = control.execute("INFO", "clients")["clients"]
    finally:
        control.close()
        for s in socks:
            s.close(linger=0)
        ctx.term()
    failed = t.events("client_accept_failed")
    return {"connections": n, "answered": answered, "maxclients": info["maxclients"],
            "connected_clients": info["connected_clients"],
            "client_accept_failures": info["client_accept_failures"],
            "client_accept_failed_logged": len(failed), "bench_nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "summary": (f"{answered}/{n} answered in 10 s; maxclients {info['maxclients']}, "
                        f"connected_clients {info['connected_clients']}, accept failures "
                        f"{info['client_accept_failures']}, client_accept_failed logged "
                        f"{'yes (' + str(len(failed)) + ' lines)' if failed else 'no'}")}


SCENARIOS = [
    Scenario("slow-reader-1m", "1", slow_reader_1m, ("aofnode", "redis"),
             title="3,000 GET of 1 MiB, never read"),
    Scenario("slow-reader-64k", "1", slow_reader_64k, ("aofnode", "redis"),
             title="40,000 GET of 64 KiB, never read"),
    Scenario("frame-bomb", "3", frame_bomb, title="66 MB frame of empty arrays"),
    Scenario("maxmemory", "4", maxmemory, node_options=lambda s: ("--maxmemory", f"{max(16, int(256 * s))}mb"),
             title="SET 1 KiB values past --maxmemory 256mb"),
    Scenario("keys-glob", "5", keys_glob, ("aofnode", "redis"), title="KEYS *a*a*a*a*b, 400-byte key"),
    Scenario("scan-abandoned", "6", abandoned_scans, title="64 x SCAN 0 on 1.2M keys, never continued"),
    Scenario("pipeline-set", "7", pipeline_set, ("aofnode", "redis"), title="one message: 10,000 SET x 6 KiB"),
    Scenario("pipeline-mset", "7", pipeline_mset, ("aofnode", "redis"),
             title="one message: 10,000 MSET x 100 keys"),
    Scenario("hung-log", "8", hung_log, node_options=lambda s: ("--watchdog-timeout", f"{max(0.5, 5 * s):g}"),
             title="SIGSTOP log actor 10 s, --watchdog-timeout 5"),
    Scenario("connections", "9", many_connections, title="2,000 connections"),
    Scenario("connections-1024", "9", many_connections, node_nofile=1024,
             title="2,000 connections, node under ulimit -n 1024"),
]
