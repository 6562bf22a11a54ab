"""Access stamps: Redis 7.0's LRU clock and LFU counter (evict.c), as plain functions on ints.

Design
------
A key's stamp (keyspace.py, "Access stamps") is one int, so that a key costs one dict entry:

* ``>= 0``: LRU, the unix second of the last access. Redis keeps 24 bits of seconds
  (LRU_CLOCK_MAX, ~194 days, then wraps); a full second needs no wrap rule.
* ``< 0``: LFU, ``-1 - (minute << 8 | counter)``: the unix minute the counter was last
  decremented, and the 8-bit logarithmic counter. Redis keeps 16 bits of minutes (wrapping
  every ~45 days); a full minute needs no wrap rule either.

The counter (Redis's LFULogIncr, LFUDecrAndReturn): a new key starts at LFU_INIT_VAL (5), so it
is not evicted before it had a chance to be used; an access increments it with probability
``1 / ((counter - 5) * lfu_log_factor + 1)`` (always below 6, saturating at 255), and it loses
one per ``lfu_decay_time`` minutes since its minute (0: never), when read. With the default
factor 10 the counter reads 18 after 1k accesses, 142 after 100k and 255 after 1M (the table
in Redis's redis.conf).
"""

from __future__ import annotations

__all__ = ["LFU_INIT_VAL", "LRU_CLOCK_MAX", "lfu_counter", "lfu_stamp", "stamp_seconds"]

LFU_INIT_VAL = 5
# Redis's LRU clock is 24 bits of seconds: RESTORE's IDLETIME is capped at it, so a key never
# reads older than a Redis key can.
LRU_CLOCK_MAX = (1 << 24) - 1


def lfu_stamp(minute: int, counter: int) -> int:
    """The LFU stamp of ``counter`` (0-255) as of unix minute ``minute``."""
    return -1 - (minute << 8 | counter)


def stamp_seconds(stamp: int) -> int:
    """The unix second a stamp was written (an LFU stamp: the start of its minute)."""
    return stamp if stamp >= 0 else ((-1 - stamp) >> 8) * 60


def lfu_counter(stamp: int, now_minute: int, decay_time: int) -> int:
    """The counter of ``stamp`` decayed to ``now_minute`` (Redis's LFUDecrAndReturn). An LRU
    stamp reads as a new key's counter from its minute, as after a switch to an LFU policy."""
    if stamp >= 0:
        minute, counter = stamp // 60, LFU_INIT_VAL
    else:
        packed = -1 - stamp
        minute, counter = packed >> 8, packed & 255
    if decay_time:
        periods = (now_minute - minute) // decay_time
        if periods > 0:
            counter = counter - periods if periods < counter else 0
    return counter
