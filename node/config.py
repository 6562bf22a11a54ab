"""Node configuration shared by the supervisor and every actor.

The supervisor parses the command line once and hands each actor the same frozen ``Config``
as JSON on its command line, so an actor restarted by the supervisor sees exactly what the first
one saw.
"""
from __future__ import annotations

import dataclasses
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
    # Benchmark switch: the log actor hands old files to a stand-in closer that closes them
    # inline (to measure what the closer actor buys). Never useful in production.
    aof_close_inline: bool = False
    # Niceness of the rewrite child relative to the actors (see docs/benchmarks.md: 10 halved
    # the latency hit on 2 cores, but the child took twice as long and saw more copy-on-write).
    aof_rewrite_child_nice: int = 10
    # The rewrite child's scheduling class: "normal" (with the niceness above) or "idle"
    # (SCHED_IDLE: it runs only on otherwise idle cores; see docs/benchmarks.md for what that
    # buys the clients and what it costs the rewrite).
    aof_rewrite_child_sched: str = "normal"
    # The supervisor stops the node (exit 7) when one actor dies this many times within this
    # many seconds: a crash loop (an OOM on every reload, a disk that fails every write) is
    # better reported than hidden behind restarts.
    # Output limits (issue "limits", finding 1): a client whose unsent replies pass
    # ``client_output_limit`` bytes is cut off (node/actors/outbox.py, Redis's
    # client-output-buffer-limit); past ``channel_output_limit`` unsent bytes the log actor takes
    # no new batches and the front takes no new replies until the other side drains.
    client_output_limit: int = 64 * 1024 * 1024
    channel_output_limit: int = 16 * 1024 * 1024
    # Fair cycles (finding 7): one log-actor cycle runs at most this many requests or this many
    # milliseconds, then fsyncs and replies; the rest of the queued work (even the rest of one
    # big message) continues in the next cycle, other clients' requests in between. 4096
    # covers two full front batches of single requests (one group commit at 50 clients x 32).
    cycle_max_commands: int = 4096
    cycle_max_ms: float = 5.0
    # Watchdog (finding 8): the supervisor reports a log actor whose loop has not turned for
    # this many seconds (``actor_hung``), and kills it (so that it restarts) if asked to.
    # 10 s: a healthy turn is bounded by the cycle budget (ms); only a stuck disk or a stopped
    # process gets near it.
    watchdog_timeout_s: float = 10.0
    watchdog_kill: bool = False
    # maxmemory (finding 4): bytes of keyspace (``used_memory``) past which writes that may grow
    # memory get OOM (``noeviction``) or keys are evicted (``allkeys-lru``); 0: no limit. ``serve``
    # fills in its default, a share of the machine's memory (node/sysmem.py says why).
    maxmemory: int = 0
    maxmemory_policy: str = "noeviction"
    crash_loop_count: int = 5
    crash_loop_window_s: float = 60.0
    # CURVE (issue 10, node/actors/auth.py): the server's secret certificate and a directory of
    # allowed clients' public certificates (reread on SIGHUP). Without them only a loopback,
    # ipc or inproc endpoint is bound, unless ``insecure_bind`` says otherwise.
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    insecure_bind: bool = False

    @property
    def aof_path(self) -> str:
        return os.path.join(self.dir, AOF_NAME)

    @property
    def lock_path(self) -> str:
        return os.path.join(self.dir, LOCK_NAME)

    @property
    def run_dir(self) -> str:
        """Where the internal sockets live: a 0700 directory (node/actors/private_sockets.py)."""
        return os.path.join(self.dir, "run")

    @property
    def backend_path(self) -> str:
        return os.path.join(self.run_dir, "backend.sock")

    @property
    def closer_path(self) -> str:
        return os.path.join(self.run_dir, "closer.sock")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls(**json.loads(text))
