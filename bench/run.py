"""Run one measurement against one target: start the workers, watch them, merge what they send.

Design
------
Steps of ``measure`` (the worker's own steps are in workers.py):

1. split the clients over ``procs`` workers (client ``i`` goes to worker ``i % procs``) and the
   ``--requests`` quota in proportion, and start the workers (multiprocessing "spawn": a clean
   interpreter, no inherited sockets or zmq context);
2. wait until every worker has opened its connections, then publish ``t0`` (a moment just ahead)
   and set the go event, so that every worker starts on the same clock;
3. while they run: start the BGREWRITEAOF watcher if asked, and draw the progress line once a
   second (only on a tty) from the workers' shared counters;
4. collect each worker's result, bounded in time: a worker that does not report in time is
   terminated and the run fails; Ctrl-C sets the stop event, waits for the workers to drain
   and re-raises;
5. merge: decode and add the histograms (total and per second), sum the counts.

Every worker process is joined (or terminated) before ``measure`` returns or raises.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import sys
import time

from aofnode.bench import hist
from aofnode.bench.rewrite import RewriteWatcher
from aofnode.bench.targets import TargetSpec
from aofnode.bench.workers import COUNTER_FIELDS, WorkerSpec, run_worker
from aofnode.bench.workload import LoadShape

__all__ = ["measure"]

READY_TIMEOUT_S = 60.0
# Slack beyond the expected end before a silent worker is declared stuck: the drain of step 4 in
# workers.py takes at most --timeout, plus encoding and queue transfer.
STUCK_SLACK_S = 30.0


def _expected_runtime(shape: LoadShape) -> float:
    if shape.duration_s is not None:
        return shape.warmup_s + shape.duration_s
    if shape.rate:
        return shape.warmup_s + shape.requests / shape.rate
    return float("inf")  # --requests closed loop: as long as the target takes


def measure(target: TargetSpec, shape: LoadShape, bgrewrite_at: float | None = None,
            seed: int = 1) -> dict:
    ctx = mp.get_context("spawn")
    procs = max(1, min(shape.procs, shape.clients))
    counters = ctx.RawArray("q", procs * len(COUNTER_FIELDS))
    go, stop = ctx.Event(), ctx.Event()
    t0_box = ctx.RawValue("d", 0.0)
    results = ctx.Queue()
    shares = [tuple(i for i in range(shape.clients) if i % procs == w) for w in range(procs)]
    quotas: list[int | None] = [None] * procs
    if shape.requests is not None:  # in proportion to the clients; the rounding goes to worker 0
        quotas = [shape.requests * len(mine) // shape.clients for mine in shares]
        quotas[0] += shape.requests - sum(quotas)
    specs = [WorkerSpec(w, target, shape, shares[w], quotas[w], seed * 1000 + w)
             for w in range(procs)]  # step 1
    workers = [ctx.Process(target=run_worker, args=(s, counters, go, t0_box, stop, results),
                           name=f"bench-worker-{s.index}", daemon=True) for s in specs]
    for p in workers:
        p.start()
    watcher = None
    try:
        _wait_ready(results, workers)  # step 2
        t0 = time.monotonic() + 0.05
        t0_box.value = t0
        go.set()
        if bgrewrite_at is not None:  # step 3
            watcher = RewriteWatcher(target, bgrewrite_at, t0)
            watcher.start()
        outs = _collect(results, workers, counters, shape, t0, target)  # step 4
        wall = time.monotonic() - t0
    except BaseException:
        stop.set()
        _reap(workers, grace=shape.timeout_s + 5)
        if watcher is not None:
            watcher.finish(timeout=1)
        raise
    _reap(workers, grace=10)
    rewrite = watcher.finish() if watcher is not None else None
    return _merge(outs, shape, wall, rewrite)  # step 5


def _wait_ready(results, workers) -> None:
    ready = 0
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ready < len(workers):
        try:
            kind, index, payload = results.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError(f"workers not ready within {READY_TIMEOUT_S}s") from None
        if kind == "failed":
            raise RuntimeError(f"worker {index} failed while starting:\n{payload}")
        ready += kind == "ready"


def _collect(results, workers, counters, shape: LoadShape, t0: float, target: TargetSpec):
    outs: dict[int, dict] = {}
    deadline = t0 + _expected_runtime(shape) + shape.timeout_s + STUCK_SLACK_S
    tty = sys.stderr.isatty()
    next_line = time.monotonic() + 1.0
    last_replied = 0
    while len(outs) < len(workers):
        now = time.monotonic()
        if now > deadline:
            raise RuntimeError("workers did not finish in time")
        try:
            kind, index, payload = results.get(timeout=max(0.05, min(next_line, deadline) - now))
        except queue.Empty:
            kind = None
        if kind == "failed":
            raise RuntimeError(f"worker {index} failed:\n{payload}")
        if kind == "done":
            outs[index] = payload
        if tty and time.monotonic() >= next_line:
            next_line += 1.0
            last_replied = _progress(counters, len(workers), target, t0, last_replied)
    if tty:
        sys.stderr.write("\r\x1b[K")
        sys.stderr.flush()
    return [outs[i] for i in range(len(workers))]


def _progress(counters, nworkers: int, target: TargetSpec, t0: float, last_replied: int) -> int:
    n = len(COUNTER_FIELDS)
    totals = [sum(counters[w * n + i] for w in range(nworkers)) for i in range(n)]
    sent, replied, errors, timeouts = totals
    sys.stderr.write(f"\r\x1b[K[{target.kind}] {time.monotonic() - t0:5.1f}s  "
                     f"{replied} replies  {replied - last_replied} req/s  "
                     f"in flight {sent - replied - timeouts}  errors {errors}  "
                     f"timeouts {timeouts}")
    sys.stderr.flush()
    return replied


def _reap(workers, grace: float) -> None:
    deadline = time.monotonic() + grace
    for p in workers:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in workers:
        if p.is_alive():
            p.terminate()
            p.join(5)
        if p.is_alive():
            p.kill()
            p.join(5)


def _phases(outs: list[dict], seconds: list, shape: LoadShape, rewrite: dict | None) -> dict | None:
    """Latency before / during / after the rewrite window, from the per-second histograms.

    A second belongs to "during" if it overlaps the window at all (so "during" is never
    flattered by quiet seconds cut off it); warmup and tail seconds are left out."""
    if not rewrite or rewrite.get("start_s") is None:
        return None
    start, end = rewrite["start_s"], rewrite.get("end_s") or rewrite["start_s"]
    groups: dict[str, list] = {"before": [], "during": [], "after": []}
    for s in seconds:
        if s < shape.warmup_s or (shape.duration_s is not None and s >= shape.warmup_s + shape.duration_s):
            continue
        phase = "before" if s + 1 <= start else "after" if s > end else "during"
        groups[phase].extend(o["seconds"][s]["hist"] for o in outs if s in o["seconds"])
    out = {}
    for phase, hists in groups.items():
        if hists:
            h = hist.merge_encoded(hists)
            out[phase] = {"requests": h.get_total_count(), "latency_ms": hist.summary_ms(h)}
    return out


def _merge(outs: list[dict], shape: LoadShape, wall: float, rewrite: dict | None) -> dict:
    total = hist.merge_encoded(o["hist"] for o in outs)
    requests = sum(o["measured_replied"] for o in outs)
    if shape.duration_s is not None:
        duration = shape.duration_s
    else:
        duration = max(o["last_measured_done"] for o in outs) - shape.warmup_s
    errors_by_code: dict[str, int] = {}
    for o in outs:
        for code, n in o["errors_by_code"].items():
            errors_by_code[code] = errors_by_code.get(code, 0) + n
    timeline = []
    seconds = sorted({s for o in outs for s in o["seconds"]})
    for s in seconds:
        parts = [o["seconds"][s] for o in outs if s in o["seconds"]]
        h = hist.merge_encoded(p["hist"] for p in parts)
        timeline.append({
            "second": s,
            "warmup": s < shape.warmup_s,
            # Replies to batches sent before the end but received after it: a partial second.
            "tail": shape.duration_s is not None and s >= shape.warmup_s + shape.duration_s,
            "requests": sum(p["count"] for p in parts),
            "errors": sum(p["errors"] for p in parts),
            "timeouts": sum(p["timeouts"] for p in parts),
            "latency_ms": hist.summary_ms(h),
        })
    return {
        "phases": _phases(outs, seconds, shape, rewrite),
        "requests": requests,
        "errors": sum(errors_by_code.values()),
        "errors_by_code": errors_by_code,
        "timeouts": sum(o["measured_timeouts"] for o in outs),
        "sent": sum(o["sent"] for o in outs),
        "replied": sum(o["replied"] for o in outs),
        "timeouts_all": sum(o["timeouts"] for o in outs),
        "duration_s": round(duration, 3),
        "throughput": round(requests / duration, 1) if duration > 0 else None,
        "offered_rate": shape.rate,
        "latency_ms": hist.summary_ms(total),
        "timeline": timeline,
        "rewrite": rewrite,
        "generator_cpu_pct": round(100.0 * sum(o["cpu_s"] for o in outs) / wall, 1),
        # The generator's CPU over the whole run (warmup and tail included), like ``replied``.
        "generator_cpu_s": round(sum(o["cpu_s"] for o in outs), 4),
        "generator_cpu_us_per_request": round(sum(o["cpu_s"] for o in outs) * 1e6
                                              / max(1, sum(o["replied"] for o in outs)), 2),
        "generator_procs": len(outs),
        "wall_s": round(wall, 3),
    }
