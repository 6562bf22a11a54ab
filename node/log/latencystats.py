"""INFO latencystats: per-command latency percentiles, as Redis 7.0's ``latency-tracking``.

Design:
- One histogram per command name (``set``, ``config|set``: the commandstats key), fed with each
  call's time in nanoseconds by ``Introspection.execute`` while ``latency-tracking`` is on.
  Off by default (Redis's default is on): recording costs ~0.2 us a command on this machine,
  which a node that does not read the percentiles should not pay.
- A bucket keeps the top 7 significant bits of a time (the bucket is at most 1/64 wide, under
  2% of its value, as HdrHistogram's two significant figures give Redis; node/runtime/latency.py,
  the rule the RESP front shares), so a command has at most ~64 x 64 buckets whatever it is
  sent, and there are as many histograms as commandstats entries, which are bounded by the
  command table. CONFIG RESETSTAT clears them.
- The commands the RESP front answers itself (CLIENT, COMMAND, HELLO, MULTI/EXEC...) are timed
  there while the log actor says tracking is on, and their histograms come with the front's
  counters; ``section`` adds them in (``extra``).
- A percentile is the highest time in the bucket holding the sample of that rank, printed as
  Redis prints it: ``p<percentile>=<microseconds, 3 decimals>``.
"""
from __future__ import annotations

import math

from aofnode.runtime import latency

__all__ = ["LatencyStats", "parse_percentiles", "percentile_text"]

_KEPT_BITS = latency.KEPT_BITS
DEFAULT_PERCENTILES = (50.0, 99.0, 99.9)


def percentile_text(p: float) -> str:
    """``%f`` without trailing zeros and dot, as Redis's trimDoubleString: 50, 99.9, 0."""
    text = f"{p:f}".rstrip("0").rstrip(".")
    return text or "0"


def parse_percentiles(raw: bytes) -> tuple[float, ...]:
    """CONFIG SET latency-tracking-info-percentiles's value: doubles 0..100 separated by
    spaces (none is allowed). ValueError with Redis's reason otherwise."""
    out = []
    for word in raw.split():
        try:
            p = float(word)
        except ValueError:
            raise ValueError("Invalid latency-tracking-info-percentiles parameters") from None
        if not 0.0 <= p <= 100.0 or math.isnan(p):
            raise ValueError("latency-tracking-info-percentiles parameter should be between "
                             "0.0 and 100.0")
        out.append(p)
    return tuple(out)


class LatencyStats:
    def __init__(self) -> None:
        self.enabled = False
        self.percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
        self.histograms: dict[str, dict[int, int]] = {}

    def record(self, key: str, ns: int) -> None:
        hist = self.histograms.get(key)
        if hist is None:
            hist = self.histograms[key] = {}
        latency.record(hist, ns)

    def reset(self) -> None:
        self.histograms.clear()

    def section(self, extra: dict[str, dict[int, int]] | None = None) -> dict[str, dict[str, str]]:
        """INFO latencystats: ``latency_percentiles_usec_<name>`` per command called; ``extra``:
        more histograms by lower-case name (the fronts'), added to the log actor's."""
        merged = {key.lower(): hist for key, hist in self.histograms.items()}
        for key, hist in (extra or {}).items():
            mine = merged.get(key)
            if mine is not None:
                hist = {b: mine.get(b, 0) + hist.get(b, 0) for b in mine.keys() | hist.keys()}
            merged[key] = hist
        out = {}
        for key, hist in sorted(merged.items()):
            if not hist:
                continue
            buckets = sorted(hist.items())
            total = sum(hist.values())
            fields = {}
            for p in self.percentiles:
                wanted = max(1, math.ceil(p / 100.0 * total))
                seen = 0
                top = buckets[-1][0]
                for bucket, count in buckets:
                    seen += count
                    if seen >= wanted:
                        top = bucket
                        break
                width = 1 << max(0, top.bit_length() - _KEPT_BITS)
                fields["p" + percentile_text(p)] = f"{(top + width - 1) / 1000.0:.3f}"
            out[f"latency_percentiles_usec_{key}"] = fields
        return out
