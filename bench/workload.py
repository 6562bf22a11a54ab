"""The load shape: what each client sends, and when.

Design
------
``LoadShape`` is the whole description of a run's load (immutable, picklable: it crosses into the
worker processes). ``OpGenerator`` makes the requests of one batch: SET or GET by the write:read
ratio, on ``key:<n>`` with ``n`` uniform in [0, keyspace), values of ``value_size`` bytes.

Schedule (open loop, ``rate`` set): ``clients`` clients share ``rate`` requests/s, so each client
sends one batch of ``pipeline`` requests every ``pipeline * clients / rate`` seconds. Client ``i``
is shifted by ``i / clients`` of an interval so that the clients do not all fire at once. A batch
is sent at its intended time, or as soon as the previous reply is in if that is later (one batch
in flight per client); its latency still counts from the intended time (see hist.py).
Closed loop (``rate`` None): a client sends its next batch as soon as the previous reply is in.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

__all__ = ["LoadShape", "OpGenerator", "parse_ratio", "SET", "GET"]

SET = "SET"
GET = "GET"


@dataclass(frozen=True, slots=True)
class LoadShape:
    clients: int = 50
    procs: int = 2
    pipeline: int = 1
    value_size: int = 100
    keyspace: int = 100_000
    writes: int = 1  # --ratio W:R
    reads: int = 0
    duration_s: float | None = 10.0  # None when --requests is used
    requests: int | None = None
    warmup_s: float = 0.0
    rate: float | None = None  # total requests/s across clients; None = closed loop
    expected_interval_us: int = 0  # closed-loop HdrHistogram correction; 0 = off
    timeout_s: float = 10.0

    def batch_interval_s(self) -> float | None:
        """Seconds between two intended sends of one client (open loop), else None."""
        if not self.rate:
            return None
        return self.pipeline * self.clients / self.rate

    def client_phase_s(self, index: int) -> float:
        interval = self.batch_interval_s()
        return 0.0 if interval is None else interval * index / self.clients


def parse_ratio(text: str) -> tuple[int, int]:
    """``"W:R"`` -> (W, R), e.g. ``"1:0"`` all SET, ``"1:9"`` 10% SET."""
    try:
        w, r = (int(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"ratio must be W:R with integers, got {text!r}") from None
    if w < 0 or r < 0 or w + r == 0:
        raise ValueError(f"ratio needs non-negative parts, not both 0: {text!r}")
    return w, r


class OpGenerator:
    """Makes batches of ``(name, key)`` / ``(name, key, value)`` commands for one worker."""

    def __init__(self, shape: LoadShape, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._keyspace = shape.keyspace
        self._write_share = shape.writes / (shape.writes + shape.reads)
        # One value for every SET: its bytes do not matter to either server, only its size.
        self.value = os.urandom(shape.value_size // 2 + 1).hex()[: shape.value_size].encode()
        # Key names are cached: formatting is a measurable part of the generator's CPU. Above
        # ~1M keys the cache would cost more memory (~100 B a key) than it saves time.
        self._keys: dict[int, bytes] | None = {} if shape.keyspace <= 1_000_000 else None

    def key(self, n: int) -> bytes:
        if self._keys is None:
            return b"key:%d" % n
        k = self._keys.get(n)
        if k is None:
            k = self._keys[n] = b"key:%d" % n
        return k

    def batch(self, size: int) -> list[tuple]:
        rnd = self._rng.random
        below = self._rng.randrange
        out = []
        for _ in range(size):
            key = self.key(below(self._keyspace))
            if rnd() < self._write_share:
                out.append((SET, key, self.value))
            else:
                out.append((GET, key))
        return out
