"""Node configuration shared by the supervisor and every actor.

The supervisor parses the command line once and hands each actor the same frozen ``Config``
as JSON on its command line, so an actor restarted by the supervisor sees exactly what the first
one saw.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import stat
from dataclasses import dataclass

__all__ = ["Config", "DEBUG_COMMAND_MODES", "DEBUG_COMMAND_ENV", "FSYNC_POLICIES", "AOF_NAME", "LOCK_NAME",
           "REQUIREPASS_ENV", "USUAL_RESP_BIND",
           "parse_host_port", "is_loopback_host", "read_password_file", "resp_config_error"]

FSYNC_POLICIES = ("always", "everysec", "no")
DEBUG_COMMAND_MODES = ("no", "yes", "local")
# The default of --enable-debug-command when set: a harness that starts ``aofnode serve`` with a
# fixed command line (Redis's own test suite, whose DEBUG tests need it) can still turn it on.
DEBUG_COMMAND_ENV = "AOFNODE_ENABLE_DEBUG_COMMAND"
AOF_NAME = "appendonly.aof"
LOCK_NAME = "aofnode.lock"
DEFAULT_BIND = "tcp://127.0.0.1:7700"
# The usual --resp-bind (Redis's port plus one, so that a redis-server on 6379 can run beside).
USUAL_RESP_BIND = "127.0.0.1:6380"
# The supervisor hands a --requirepass password to the two fronts in this environment variable:
# /proc/PID/environ is readable by the owner only, /proc/PID/cmdline (where Config travels) by
# everyone.
REQUIREPASS_ENV = "AOFNODE_REQUIREPASS"


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
    # Output limits: a client whose unsent replies pass
    # ``client_output_limit`` bytes is cut off (node/fronts/outbox.py, Redis's
    # client-output-buffer-limit); past ``channel_output_limit`` unsent bytes the log actor takes
    # no new batches and the front takes no new replies until the other side drains.
    client_output_limit: int = 64 * 1024 * 1024
    channel_output_limit: int = 16 * 1024 * 1024
    # WATCH state in the log actor (node/store/watch.py, docs/limits.md): keys one client may
    # watch, and keys watched in all (past it the oldest clients' watches are dropped, and
    # their transactions abort).
    max_watched_keys_per_client: int = 10_000
    max_watched_keys: int = 100_000
    # Client-side caching: keys remembered for CLIENT TRACKING's default mode (Redis's
    # tracking-table-max-keys); past it the oldest are forgotten, their clients told. 0: none.
    tracking_table_max_keys: int = 1_000_000
    # Fair cycles: one log-actor cycle runs at most this many requests or this many
    # milliseconds, then fsyncs and replies; the rest of the queued work (even the rest of one
    # big message) continues in the next cycle, other clients' requests in between. 4096
    # covers two full front batches of single requests (one group commit at 50 clients x 32).
    cycle_max_commands: int = 4096
    cycle_max_ms: float = 5.0
    # Watchdog: the supervisor reports a log actor whose loop has not turned for
    # this many seconds (``actor_hung``), and kills it (so that it restarts) if asked to.
    # 10 s: a healthy turn is bounded by the cycle budget (ms); only a stuck disk or a stopped
    # process gets near it.
    watchdog_timeout_s: float = 10.0
    watchdog_kill: bool = False
    # Redis's busy-reply-threshold (alias lua-time-limit): a script running longer makes every
    # other client get BUSY until it ends, SCRIPT KILL ends it or SHUTDOWN NOSAVE stops the node
    # (node/log/busy.py). 0: never busy (nor killable), as in Redis. Nothing ends a script by
    # itself: Redis does not either.
    busy_reply_threshold_ms: int = 5000
    # Redis's hidden key-load-delay, a debug aid: microseconds of sleep per AOF entry replayed
    # at start (and by DEBUG RELOAD), so that tests can see LOADING for as long as they need;
    # negative N: 1 us every N entries. 0 (default): none.
    key_load_delay: int = 0
    # maxmemory: bytes of keyspace (``used_memory``) past which writes that may grow
    # memory get OOM (``noeviction``) or keys are evicted (``allkeys-lru``); 0: no limit. ``serve``
    # fills in its default, a share of the machine's memory (node/sysmem.py says why).
    maxmemory: int = 0
    maxmemory_policy: str = "noeviction"
    # Redis's defaults: candidates per eviction (node/store/eviction.py), and the LFU counter's
    # growth and decay (node/store/access.py).
    maxmemory_samples: int = 5
    lfu_log_factor: int = 10
    lfu_decay_time: int = 1
    crash_loop_count: int = 5
    crash_loop_window_s: float = 60.0
    # The longest wait before an actor that keeps dying soon after its start is started again
    # (node/supervisor.py: 0.1 s doubling up to this). Lower it where actors are killed on purpose
    # again and again (the kill -9 tests): past a few kills each restart would wait the cap.
    restart_backoff_max_s: float = 5.0
    # CURVE (node/fronts/curve.py): the server's secret certificate and a directory of
    # allowed clients' public certificates (reread on SIGHUP). Without them only a loopback,
    # ipc or inproc endpoint is bound, unless ``insecure_bind`` says otherwise.
    curve_secret_key: str | None = None
    curve_allow: str | None = None
    insecure_bind: bool = False
    # The RESP front: Redis's protocol on TCP at ``host:port``; None: off. A
    # non-loopback address needs a password (like Redis's protected mode): ``--requirepass``
    # (handed over in REQUIREPASS_ENV, never here) or ``requirepass_file``, a file of ours
    # (no group/other access) that each front reads again at each start. A password protects
    # both fronts.
    resp_bind: str | None = None
    requirepass_file: str | None = None
    # The ZeroMQ front's PUB socket for PUBLISH (node/fronts/zmq_pub.py); None: off.
    pub_bind: str | None = None
    # DEBUG (Redis's enable-debug-command): "no" (Redis 7's default: DEBUG can block the log
    # actor and rewrite the keyspace), "yes", or "local" (only when every endpoint the node
    # listens on is loopback or ipc, so every client is local: the log actor cannot tell one
    # client's address from another's).
    enable_debug_command: str = "no"

    @property
    def aof_path(self) -> str:
        return os.path.join(self.dir, AOF_NAME)

    @property
    def lock_path(self) -> str:
        return os.path.join(self.dir, LOCK_NAME)

    @property
    def run_dir(self) -> str:
        """Where the internal sockets live: a 0700 directory (node/runtime/private_sockets.py)."""
        return os.path.join(self.dir, "run")

    @property
    def backend_path(self) -> str:
        return os.path.join(self.run_dir, "backend.sock")

    @property
    def resp_backend_path(self) -> str:
        """The RESP front's private socket: the log actor connects to it as to the front's."""
        return os.path.join(self.run_dir, "resp.sock")

    @property
    def front_paths(self) -> tuple[str, ...]:
        """Every front's private socket, in link order (the log actor connects to each)."""
        if self.resp_bind:
            return (self.backend_path, self.resp_backend_path)
        return (self.backend_path,)

    @property
    def closer_path(self) -> str:
        return os.path.join(self.run_dir, "closer.sock")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Config":
        return cls(**json.loads(text))


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as (host, port); ValueError says what is wrong.
    The host is an IP address or ``localhost``: a name that resolves differently later would
    make the loopback check below meaningless."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT with a port in 1-65535 (e.g. {USUAL_RESP_BIND}), got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # ::1:6380 reads two ways
        raise ValueError(f"write an IPv6 address in brackets, e.g. [::1]:6380, got {text!r}")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"expected an IP address or localhost before the port, got {host!r} "
                             f"in {text!r}") from None
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def read_password_file(path: str) -> str:
    """The password in ``path`` (its first line, without the line end). ValueError if the file
    cannot be read, is empty, or can be read or written by group or others (as ssh refuses an
    unprotected key: anyone who could read it could act as any client)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot read the password file {path}: {exc.strerror or exc}") from None
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            raise ValueError(f"the password file {path} has mode {mode:04o}: it must not be accessible "
                             f"by group or others (chmod 600 {path})")
        data = os.read(fd, 64 * 1024)
    finally:
        os.close(fd)
    password = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "surrogateescape")
    if not password:
        raise ValueError(f"the password file {path} is empty")
    return password


def resp_config_error(config: Config, requirepass: str | None) -> str | None:
    """Why ``serve`` must not start with these RESP and password settings (one line), or None."""
    host = None
    if config.resp_bind:
        try:
            host, _ = parse_host_port(config.resp_bind)
        except ValueError as exc:
            return f"--resp-bind: {exc}"
    if requirepass is not None and config.requirepass_file:
        return "--requirepass and --requirepass-file: give one of them"
    if requirepass == "":
        return "--requirepass: the password is empty"
    if config.requirepass_file:
        try:
            read_password_file(config.requirepass_file)
        except ValueError as exc:
            return f"--requirepass-file: {exc}"
    elif requirepass is None and host is not None and not is_loopback_host(host):
        return (f"refusing to serve RESP on {config.resp_bind} without a password: anyone who reaches "
                "it could read and write everything; use --requirepass-file (or a loopback address)")
    return None


def resp_bind_address(config: Config, password: bytes | None) -> tuple[str, int]:
    """The address the RESP front binds; ValueError if it is malformed or reachable without a
    password (the supervisor refuses that at start already: this is the same rule, in the
    actor that binds)."""
    try:
        host, port = parse_host_port(config.resp_bind or "")
    except ValueError as exc:
        raise ValueError(f"--resp-bind: {exc}") from None
    if password is None and not is_loopback_host(host):
        raise ValueError(f"refusing to serve RESP on {config.resp_bind} without a password")
    return ("127.0.0.1" if host == "localhost" else host), port


def read_requirepass(config: Config) -> bytes | None:
    """--requirepass (from the supervisor, in the environment) or --requirepass-file, as the
    bytes given, UTF-8 or not (AUTH compares bytes): each is encoded back the way it was decoded
    (os.environ with the file-system encoding, read_password_file as UTF-8), surrogateescape
    keeping every other byte (a plain .encode() raises on a 0xff)."""
    secret = os.environ.pop(REQUIREPASS_ENV, None)
    if secret:
        return os.fsencode(secret)
    if config.requirepass_file:
        return read_password_file(config.requirepass_file).encode("utf-8", "surrogateescape")
    return None
