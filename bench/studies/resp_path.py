"""The Python work of one pipelined RESP request on its way through the node, step by step,
the route before the RESP replies were made in the log actor against the route now.

Usage
-----
::

    python -m aofnode.bench.studies.resp_path [--pipeline 16] [--number 4000] [--repeat 9]

Design
------
CPU per request read from /proc around redis-benchmark (aofnode-bench-matrix) swings by 2x on a
machine other people load: it counts the waits for the cache and the other hyperthread. Here
each step of the route runs alone in one process, on the same in-memory message, and the
minimum over ``--repeat`` timings is kept (the least disturbed run), so two routes measured in
one run can be compared even under load. Syscalls, wake-ups and the keyspace are not in it
(they did not change): only the translations.

1. Build one read of ``--pipeline`` SETs (GETs, INCRs) as redis-benchmark sends them (100-byte
   values) and the replies the executor gives them.
2. Time each step of both routes, per request (microseconds):
   - the RESP front's parse (``RequestParser.feed``): the split fast path (before), hiredis's
     reader with its check (now, if installed; else the same code twice, and its difference is
     the noise of the run);
   - the message to the log actor: ``encode_batch`` (before) or one packed list with the
     ``resp`` header (now);
   - its decode in the log actor: ``decode_message`` checking every request (before) or taking
     the names the front checked (``checked``, now);
   - the replies: protocol 2 msgpack in the log actor, then unpacked and made RESP in the front
     (before: ``Protocol2Replies`` + ``encode_message_reply``), or RESP made once in the log
     actor (now: ``RespReplies``).
3. Print one table: per step and command, before, now and the difference. Timings of the two
   routes alternate, so both see the same load.
"""
from __future__ import annotations

import argparse
import sys
import timeit

import msgpack

from aofnode import protocol as codec
from aofnode.fronts.resp_gateway import encode_message_reply
from aofnode.log.replies import Protocol2Replies, RespReplies
from aofnode.log.work import Pending
from aofnode.protocol.resp_request import PARSER, RequestParser

__all__ = ["main"]

_VALUE = b"x" * 100


def _command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _shapes(pipeline: int) -> dict[str, tuple[bytes, object]]:
    """Step 1: per command, one read of ``pipeline`` commands and the result of each."""
    keys = [b"key:%012d" % i for i in range(pipeline)]
    return {"SET": (b"".join(_command(b"SET", k, _VALUE) for k in keys), "OK"),
            "GET": (b"".join(_command(b"GET", k) for k in keys), _VALUE),
            "INCR": (b"".join(_command(b"INCR", k) for k in keys), 12345)}


def _pending(name: str, group: list[list[bytes]], result, resp: int) -> Pending:
    p = Pending(1, b"")
    p.items = tuple(codec.Request(name, tuple(argv[1:])) for argv in group)
    p.results, p.is_batch, p.count, p.resp = [result] * len(group), True, len(group), resp
    return p


def _steps(name: str, data: bytes, result) -> dict[str, tuple]:
    """Step 2's callables: step -> (before, now)."""
    group = RequestParser().feed(data)
    n = len(group)
    checked = [[name, *argv[1:]] for argv in group]
    old_body = codec.encode_batch(group)
    new_body = msgpack.packb([{"resp": 2}, checked])
    packb = msgpack.Packer(use_bin_type=True).pack
    old_done = [_pending(name, group, result, 0)]
    new_done = [_pending(name, group, result, 2)]
    p2, rr = Protocol2Replies(), RespReplies()

    def old_replies() -> bytes:
        [wire] = p2.encode(old_done)
        return encode_message_reply(wire, n, None, False)

    assert old_replies() == rr.encode(new_done)[0]
    assert codec.decode_message(old_body).items == codec.decode_message(new_body, True).items
    split, fast = RequestParser(hiredis=False), RequestParser()  # one per connection
    assert split.feed(data) == fast.feed(data) == group
    return {f"parse (front): split, {PARSER}": (lambda: split.feed(data), lambda: fast.feed(data)),
            "message to the log actor (front)": (lambda: codec.encode_batch(group),
                                                 lambda: packb([{"resp": 2}, checked])),
            "decode and check (log actor)": (lambda: codec.decode_message(old_body),
                                             lambda: codec.decode_message(new_body, True)),
            "replies (log actor + front)": (old_replies, lambda: rr.encode(new_done))}


def _time(before, now, pipeline: int, number: int, repeat: int) -> tuple[float, float]:
    """The least of ``repeat`` timings of each, taken in turns so that both see the same load."""
    b = a = float("inf")
    for _ in range(repeat):
        b = min(b, timeit.timeit(before, number=number))
        a = min(a, timeit.timeit(now, number=number))
    scale = 1e6 / number / pipeline
    return b * scale, a * scale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--number", type=int, default=4000, help="calls per timing")
    ap.add_argument("--repeat", type=int, default=9, help="timings per step; the least is kept")
    args = ap.parse_args(argv)
    rows = []
    totals: dict[str, list[float]] = {}
    for name, (data, result) in _shapes(args.pipeline).items():
        for step, (before, now) in _steps(name, data, result).items():
            b, a = _time(before, now, args.pipeline, args.number, args.repeat)
            t = totals.setdefault(name, [0.0, 0.0])
            t[0] += b
            t[1] += a
            rows.append(f"| {name} | {step} | {b:.3f} | {a:.3f} | {a - b:+.3f} |")
        rows.append(f"| {name} | **total** | {totals[name][0]:.3f} | {totals[name][1]:.3f} | "
                    f"{totals[name][1] - totals[name][0]:+.3f} |")
    print(f"-P {args.pipeline}: microseconds per request, least of {args.repeat} timings of "
          f"{args.number} calls\n")
    print("| command | step | before | now | difference |\n|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
