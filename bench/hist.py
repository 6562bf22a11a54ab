"""Latency histograms: recording (with coordinated-omission correction), encoding and merging.

Design
------
Every latency is recorded in microseconds into an HdrHistogram covering 1 µs .. 60 s with three
significant digits (a value is known to within 0.1%: 1234 µs and 1235 µs stay apart, 1 234 567 µs
is reported as 1 234 943 µs, the top of its bucket). Workers record, encode their histograms
(``encode()``: compressed, base64) and send them to the parent, which decodes and adds them: the
sum of encoded histograms equals the histogram of all the values, because adding is bucket-wise.

Two ways to keep a stall from hiding (coordinated omission):

* open loop (``--rate``): a request has an *intended* send time on a fixed schedule, and its
  latency is ``done - intended``. A client stuck behind a 1 s stall sends its next requests late,
  and each of them carries the wait since its intended time (as wrk2 does).
* closed loop with an expected interval: ``record_corrected_value(v, interval)`` records ``v``
  and then ``v - interval``, ``v - 2*interval``, ... while above ``interval``: the samples that a
  client sending every ``interval`` would have seen during the stall (HdrHistogram's correction).

Nothing here touches a socket or a clock: callers pass the times in.
"""
from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

__all__ = [
    "LOWEST_US",
    "HIGHEST_US",
    "SIGNIFICANT_DIGITS",
    "new_histogram",
    "record_latency",
    "latency_us",
    "merge_encoded",
    "summary_ms",
    "PERCENTILES",
]

LOWEST_US = 1
# 60 s: a reply later than that is a timeout anyway (--timeout defaults to 10 s); values above are
# clamped to it rather than dropped, so the count stays right and max shows ">= 60 s".
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3

# Names in the report -> percentile. "max" is the histogram's max (top of its bucket).
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def latency_us(done: float, sent: float, intended: float | None = None) -> int:
    """Latency in µs of a reply received at ``done`` (seconds, any monotonic clock).

    Open loop passes ``intended`` (the scheduled send time): the latency runs from there, so a
    late send caused by a stall counts fully. Closed loop passes only ``sent``.
    """
    start = sent if intended is None else intended
    return int((done - start) * 1_000_000)


def record_latency(hist: HdrHistogram, value_us: int, count: int = 1,
                   expected_interval_us: int = 0) -> None:
    """Record ``count`` requests of latency ``value_us``, corrected if an interval is given.

    Values are clamped into [0, HIGHEST_US] so that no request silently goes uncounted.
    """
    value = min(max(int(value_us), 0), HIGHEST_US)
    if expected_interval_us > 0:
        hist.record_corrected_value(value, int(expected_interval_us), count)
    else:
        hist.record_value(value, count)


def merge_encoded(encoded: Iterable[bytes | str]) -> HdrHistogram:
    """One histogram holding every value of the encoded histograms (as made by ``encode()``)."""
    total = new_histogram()
    for blob in encoded:
        other = HdrHistogram.decode(blob)
        if other.get_total_count():  # an empty one has min 0 / max 0 and adds nothing
            total.add(other)
    return total


def summary_ms(hist: HdrHistogram) -> dict[str, float | None]:
    """p50/p99/p99.9/max in milliseconds (None for an empty histogram)."""
    if not hist.get_total_count():
        return {**{name: None for name in PERCENTILES}, "max": None}
    out: dict[str, float | None] = {
        name: hist.get_value_at_percentile(p) / 1000.0 for name, p in PERCENTILES.items()}
    out["max"] = hist.get_max_value() / 1000.0
    return out
