"""INFO's Redis 7.0 fields, added to the Reporter's sections (node/log/report.py).

Design:
- Redis clients and tools read INFO by Redis's field names: redis-py's test set-up reads
  ``redis_version``, Sentinel-aware clients ``role``, monitoring ``connected_clients``,
  ``total_error_replies``, the ``aof_*`` fields. Each section gets Redis 7.0's fields first,
  in Redis's order, then aofnode's own fields (kept: docs/limits.md and tools read them). A
  field aofnode has no counterpart for gets Redis's value for a server without that feature
  (no RDB, no replicas, no Lua, no pub/sub): its name is there so a client that reads it finds
  it, and its value is true of aofnode.
- ``redis_version`` is the Redis whose semantics aofnode follows (7.0.15, the version the
  parity tests run against); ``aofnode_version`` is beside it.
- The sections come in Redis's order: server, clients, memory, persistence, stats,
  replication, cpu, modules, errorstats, cluster, then keyspace (the executor's), and
  commandstats (only when asked for, as Redis).
"""
from __future__ import annotations

import os
import platform
import resource
import sys
import time

from aofnode.config import parse_host_port
from aofnode.runtime import latency

__all__ = ["add_redis_fields", "front_counts", "front_errorstats", "front_histograms", "REDIS_VERSION"]

REDIS_VERSION = "7.0.15"
_UNAME = platform.uname()
_OS = f"{_UNAME.system} {_UNAME.release} {_UNAME.machine}"


def _tcp_port(config) -> int:
    try:
        return parse_host_port(config.resp_bind)[1] if config.resp_bind else 0
    except ValueError:
        return 0


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n:.2f}G"


def _server(intro, own: dict) -> dict:
    now = time.time()
    uptime = own.get("uptime_in_seconds", int(now - intro.started))
    return {
        "redis_version": REDIS_VERSION, "redis_git_sha1": "00000000", "redis_git_dirty": 0,
        "redis_build_id": "0", "redis_mode": "standalone", "os": _OS, "arch_bits": 64,
        "monotonic_clock": "POSIX clock_gettime", "multiplexing_api": "epoll",
        "atomicvar_api": "c11-builtin", "gcc_version": "0.0.0", "process_id": os.getpid(),
        "process_supervised": "no", "run_id": intro.run_id,
        "tcp_port": _tcp_port(intro.owner.config), "server_time_usec": int(now * 1e6),
        "uptime_in_seconds": uptime, "uptime_in_days": uptime // 86400, "hz": 10,
        "configured_hz": 10, "lru_clock": int(now) & ((1 << 24) - 1),
        "executable": sys.executable, "config_file": "", "io_threads_active": 0,
        **own,
    }


def _clients(intro, own: dict) -> dict:
    return {
        # The client asking is connected even before its front's next counters come in.
        "connected_clients": max(1, own.get("connected_clients", 0)),
        "cluster_connections": 0, "maxclients": own.get("maxclients", 0),
        "client_recent_max_input_buffer": 0, "client_recent_max_output_buffer": 0,
        "blocked_clients": own.get("blocked_clients", 0), "tracking_clients": 0,
        "clients_in_timeout_table": 0,
        **{k: v for k, v in own.items() if k != "connected_clients"},
    }


# Memory Redis spends on what aofnode has not (Lua, functions, replication, jemalloc's
# arenas, cluster links), and active defragmentation: none.
_NO_MEMORY = (
    "used_memory_lua", "used_memory_vm_eval", "used_memory_scripts_eval",
    "number_of_cached_scripts", "number_of_functions", "number_of_libraries",
    "used_memory_vm_functions", "used_memory_vm_total", "used_memory_functions",
    "used_memory_scripts", "allocator_allocated", "allocator_active", "allocator_resident",
    "allocator_frag_bytes", "allocator_rss_bytes", "rss_overhead_bytes",
    "mem_replication_backlog", "mem_total_replication_buffers", "mem_clients_slaves",
    "mem_clients_normal", "mem_cluster_links", "active_defrag_running")


def _memory(intro, own: dict) -> dict:
    executor = intro.owner.executor
    used = executor.keyspace.used_memory + executor.memory_baseline  # as the OOM check counts
    intro.used_memory_peak = peak = max(intro.used_memory_peak, used)
    rss = own.get("used_memory_rss", 0)
    system = own.get("total_system_memory", 0)
    return {
        "used_memory": used, "used_memory_human": _human(used),
        "used_memory_rss": rss, "used_memory_rss_human": _human(rss),
        "used_memory_peak": peak, "used_memory_peak_human": _human(peak),
        "used_memory_peak_perc": f"{100.0 * used / peak if peak else 100.0:.2f}%",
        "used_memory_overhead": executor.memory_baseline,
        "used_memory_startup": executor.memory_baseline,
        "used_memory_dataset": executor.keyspace.used_memory,
        "used_memory_dataset_perc": "100.00%",
        "total_system_memory": system, "total_system_memory_human": _human(system),
        **dict.fromkeys(_NO_MEMORY, 0),
        # used_memory_lua stays 0: lupa's heap holds the sandbox itself (~1 MB), which Redis's
        # empty Lua state has not, so its number would compare with nothing of Redis's.
        **{k: v for k, v in executor.script_info().items() if k != "used_memory_lua"},
        **executor.function_info(),
        "maxmemory": intro.owner.executor.maxmemory,
        "maxmemory_human": _human(intro.owner.executor.maxmemory),
        "maxmemory_policy": intro.owner.executor.maxmemory_policy,
        "used_memory_lua_human": "0B", "used_memory_vm_total_human": "0B",
        "used_memory_scripts_human": "0B", "allocator_frag_ratio": 1.0,
        "allocator_rss_ratio": 1.0, "rss_overhead_ratio": 1.0,
        "mem_fragmentation_ratio": round(rss / used, 2) if used else 0,
        "mem_fragmentation_bytes": rss - used, "mem_not_counted_for_evict": 0,
        "mem_aof_buffer": intro.owner.writer.pending_bytes, "mem_allocator": "pymalloc",
        "lazyfree_pending_objects": 0, "lazyfreed_objects": 0,
        **own,
    }


def _persistence(intro, own: dict) -> dict:
    return {
        "loading": 0, "async_loading": 0, "current_cow_peak": 0, "current_cow_size": 0,
        "current_cow_size_age": 0, "current_fork_perc": "0.00",
        "current_save_keys_processed": 0, "current_save_keys_total": 0,
        "rdb_changes_since_last_save": 0, "rdb_bgsave_in_progress": 0,
        "rdb_last_save_time": intro.last_save, "rdb_last_bgsave_status": "ok",
        "rdb_last_bgsave_time_sec": -1, "rdb_current_bgsave_time_sec": -1, "rdb_saves": 0,
        "rdb_last_cow_size": 0, "rdb_last_load_keys_expired": 0,
        "rdb_last_load_keys_loaded": 0, "aof_enabled": 1,
        **own,
        "aof_pending_rewrite": own.get("aof_rewrite_scheduled", 0),
        "module_fork_in_progress": 0, "module_fork_last_cow_size": 0,
    }


def _stats(intro, own: dict) -> dict:
    zero = ("total_net_input_bytes", "total_net_output_bytes", "total_net_repl_input_bytes",
            "total_net_repl_output_bytes", "instantaneous_input_kbps",
            "instantaneous_output_kbps", "instantaneous_input_repl_kbps",
            "instantaneous_output_repl_kbps", "sync_full", "sync_partial_ok", "sync_partial_err",
            "expired_stale_perc", "expired_time_cap_reached_count",
            "expire_cycle_cpu_milliseconds", "evicted_clients", "total_eviction_exceeded_time",
            "current_eviction_exceeded_time", "pubsub_channels", "pubsub_patterns",
            "pubsubshard_channels", "migrate_cached_sockets", "slave_expires_tracked_keys",
            "active_defrag_hits", "active_defrag_misses", "active_defrag_key_hits",
            "active_defrag_key_misses", "total_active_defrag_time",
            "current_active_defrag_time", "tracking_total_keys", "tracking_total_items",
            "tracking_total_prefixes", "unexpected_error_replies", "dump_payload_sanitizations",
            "io_threaded_reads_processed", "io_threaded_writes_processed",
            "reply_buffer_shrinks", "reply_buffer_expands")
    out = {"total_connections_received": own.get("total_connections_received", 0),
           "total_commands_processed": own.get("total_commands_processed", 0),
           "instantaneous_ops_per_sec": own.get("instantaneous_ops_per_sec", 0),
           "rejected_connections": intro.front_counter("accept_failures")}
    out.update(dict.fromkeys(zero, 0))
    out["total_reads_processed"] = out["total_writes_processed"] = own.get("total_batches", 0)
    out.update(own)
    out["total_error_replies"] = own.get("total_error_replies", 0) + sum(
        front_errorstats(intro).values())
    return out


def front_errorstats(intro, since_reset: bool = True) -> dict[str, int]:
    """The errors the fronts answered themselves (their ``errorstat_<PREFIX>`` counters, which
    only grow), since the last CONFIG RESETSTAT (``intro.front_error_base``) unless told."""
    return front_counts(intro, "errorstat_", intro.front_error_base if since_reset else None)


def front_counts(intro, prefix: str, base: dict[str, int] | None) -> dict[str, int]:
    """The fronts' counters named ``<prefix><name>`` summed by name, less ``base`` (their
    values at the last CONFIG RESETSTAT) when given; zeros left out."""
    out: dict[str, int] = {}
    cut = len(prefix)
    for counters in intro.owner.fronts.counters():
        for key, value in counters.items():
            if key.startswith(prefix) and type(value) is int:
                out[key[cut:]] = out.get(key[cut:], 0) + value
    if base is not None:
        # A restarted front counts from 0 again: below the base, count from there.
        out = {k: v - base.get(k, 0) if v >= base.get(k, 0) else v for k, v in out.items()}
    return {k: v for k, v in out.items() if v}


def front_histograms(intro, since_reset: bool = True) -> dict[str, dict[int, int]]:
    """The latency histograms of the commands the fronts answered themselves (their
    ``lathist_<name>`` counters, which only grow, node/runtime/latency.py), summed by name,
    less their values at the last CONFIG RESETSTAT (``intro.front_latency_base``) unless told."""
    out: dict[str, dict[int, int]] = {}
    for counters in intro.owner.fronts.counters():
        for key, value in counters.items():
            if key.startswith("lathist_") and type(value) is list:
                hist = out.setdefault(key[8:], {})
                for bucket, n in latency.unflatten(value).items():
                    hist[bucket] = hist.get(bucket, 0) + n
    if since_reset:
        for name, base in intro.front_latency_base.items():
            hist = out.get(name)
            if hist is None:
                continue
            if any(n < base.get(b, 0) for b, n in hist.items()):
                continue  # a restarted front counts from 0 again: count from there
            out[name] = {b: n - base.get(b, 0) for b, n in hist.items() if n > base.get(b, 0)}
    return out


def _errorstats(intro) -> dict:
    counts = dict(intro.errorstats)
    for prefix, n in front_errorstats(intro).items():
        counts[prefix] = counts.get(prefix, 0) + n
    return {f"errorstat_{prefix}": {"count": n} for prefix, n in sorted(counts.items())}


def _cpu() -> dict:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"used_cpu_sys": round(me.ru_stime, 6), "used_cpu_user": round(me.ru_utime, 6),
            "used_cpu_sys_children": round(kids.ru_stime, 6),
            "used_cpu_user_children": round(kids.ru_utime, 6),
            "used_cpu_sys_main_thread": round(me.ru_stime, 6),
            "used_cpu_user_main_thread": round(me.ru_utime, 6)}


def _replication(intro) -> dict:
    return {"role": "master", "connected_slaves": 0, "master_failover_state": "no-failover",
            "master_replid": intro.run_id, "master_replid2": "0" * 40,
            "master_repl_offset": 0, "second_repl_offset": -1, "repl_backlog_active": 0,
            "repl_backlog_size": 1048576, "repl_backlog_first_byte_offset": 0,
            "repl_backlog_histlen": 0}


_FRONT_FIELDS = {"calls": 0, "rejected": 2, "failed": 3}


def _commandstats(intro) -> dict:
    """The log actor's counts, and the fronts' for the commands they answer themselves
    (``cmdstat_<name>_calls|rejected|failed``: AUTH, CLIENT, MULTI, an arity refusal...)."""
    stats = {name.lower(): list(counts) for name, counts in intro.cmdstats.items()}
    for key, n in front_counts(intro, "cmdstat_", intro.front_cmd_base).items():
        name, _, field = key.rpartition("_")
        counts = stats.setdefault(name, [0, 0, 0, 0])
        counts[_FRONT_FIELDS[field]] += n
    out = {}
    for name, (calls, usec, rejected, failed) in sorted(stats.items()):
        out[f"cmdstat_{name.lower()}"] = {"calls": calls, "usec": usec,
                                  "usec_per_call": f"{usec / calls if calls else 0:.2f}",
                                  "rejected_calls": rejected, "failed_calls": failed}
    return out


def add_redis_fields(intro, sections: dict[str, dict]) -> dict[str, dict]:
    """Redis's sections and fields around the Reporter's ``sections`` (see the docstring)."""
    return {
        "server": _server(intro, sections.get("server", {})),
        "clients": _clients(intro, sections.get("clients", {})),
        "memory": _memory(intro, sections.get("memory", {})),
        "persistence": _persistence(intro, sections.get("persistence", {})),
        "stats": _stats(intro, sections.get("stats", {})),
        "replication": _replication(intro),
        "cpu": _cpu(),
        "modules": {},
        "errorstats": _errorstats(intro),
        "cluster": {"cluster_enabled": 0},
        "commandstats": _commandstats(intro),
        "latencystats": intro.latencystats.section(front_histograms(intro)),
        **{k: v for k, v in sections.items() if k not in (
            "server", "clients", "memory", "persistence", "stats")},
    }
