"""Latency histograms as both actors that record them keep them: the log actor for INFO
latencystats (node/log/latencystats.py) and the RESP front for the commands it answers itself,
whose histograms travel to the log actor in its ``Stats``.

Design:
- A histogram is ``{bucket: count}``; a bucket keeps the top ``KEPT_BITS`` significant bits of
  a time in nanoseconds (each bucket under 1/64 of its value wide, as HdrHistogram's two
  significant figures give Redis), so one command has at most ~64 x 64 buckets whatever it is
  sent. Both sides must bucket alike, or the log actor's percentiles of a merged histogram
  would be off: this module is that one rule.
- In ``Stats`` a histogram is a flat list ``[bucket, count, ...]``: the channel's msgpack takes
  string keys only in a map (node/runtime/channel.py).
"""
from __future__ import annotations

__all__ = ["KEPT_BITS", "record", "flatten", "unflatten"]

KEPT_BITS = 7


def record(hist: dict[int, int], ns: int) -> None:
    """Count one time of ``ns`` nanoseconds in ``hist``."""
    shift = ns.bit_length() - KEPT_BITS
    bucket = ns if shift <= 0 else (ns >> shift) << shift
    hist[bucket] = hist.get(bucket, 0) + 1


def flatten(hist: dict[int, int]) -> list[int]:
    return [n for pair in hist.items() for n in pair]


def unflatten(values) -> dict[int, int]:
    """A histogram from a front's flat list; anything that is not pairs of non-negative
    integers (a peer's garbage) is left out."""
    out: dict[int, int] = {}
    if type(values) is not list:
        return out
    for i in range(0, len(values) - 1, 2):
        bucket, count = values[i], values[i + 1]
        if type(bucket) is int and type(count) is int and bucket >= 0 and count > 0:
            out[bucket] = out.get(bucket, 0) + count
    return out
