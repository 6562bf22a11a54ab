"""Node configuration shared by the supervisor and every actor.

The supervisor parses the command line once and hands each actor the same frozen ``Config``
as JSON on its command line, so an actor restarted by the supervisor sees exactly what the first
one saw.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass

__all__ = ["Config", "FSYNC_POLICIES", "AOF_NAME", "LOCK_NAME"]

FSYNC_POLICIES = ("always", "everysec", "no")
AOF_NAME = "appendonly.aof"
LOCK_NAME = "aofnode.lock"
DEFAULT_BIND = "tcp://127.0.0.1:7700"


@dataclass(frozen=True, slots=True)
class Config:
    dir: str = "data"
    bind: str = DEFAULT_BIND
    appendfsync: str = "everysec"
    log_file: str | None = None
    log_format: str = "json"
    # Rewrite settings (used by the background rewrite).
    auto_aof_rewrite_percentage: int = 100
    auto_aof_rewrite_min_size: int = 64 * 1024 * 1024
    aof_rewrite_diff_limit: int = 256 * 1024 * 1024
    # Benchmark switch: the log actor closes the old AOF itself after a rewrite instead of the
    # closer (to measure what the closer buys). Never useful in production.
    aof_close_inline: bool = False
    # Niceness of the rewrite child relative to the actors (see docs/benchmarks.md: 10 halved
    # the latency hit on 2 cores, but the child took twice as long and saw more copy-on-write).
    aof_rewrite_child_nice: int = 10

    @property
    def aof_path(self) -> str:
        return os.path.join(self.dir, AOF_NAME)

    @property
    def lock_path(self) -> str:
        return os.path.join(self.dir, LOCK_NAME)

    def _tag(self) -> str:
        # Internal endpoints live in the Linux abstract socket namespace: no 108-byte path limit,
        # nothing left on disk after a kill -9. The tag ties them to this data directory.
        return hashlib.sha1(os.path.realpath(self.dir).encode()).hexdigest()[:16]

    @property
    def backend_address(self) -> str:
        return f"\0aofnode-{self._tag()}-backend"

    @property
    def closer_address(self) -> str:
        return f"\0aofnode-{self._tag()}-closer"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls(**json.loads(text))
