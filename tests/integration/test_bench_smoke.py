"""Smoke runs of ``aofnode-bench`` as a subprocess (~2 s of load each) against servers it starts.

The bench starts and stops its own server (``--start-node`` / ``--start-redis``); if a run
overruns, the test sends SIGTERM (the bench stops its workers and server) and, failing that,
SIGKILL, so no process outlives the test.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.runjson import run_json

BENCH = str(Path(sys.executable).parent / "aofnode-bench")
RUN_TIMEOUT_S = 60

# Load generators, and an offered rate to reach: one "heavy" test at a time (pyproject.toml).
pytestmark = pytest.mark.xdist_group("heavy")


def run_bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "out.json"
    _, doc = run_json([BENCH, *args, "--json", str(out)], out, tmp_path, RUN_TIMEOUT_S, "aofnode-bench")
    return doc


def check_target(result: dict) -> None:
    for field in ("requests", "errors", "timeouts", "duration_s", "throughput", "offered_rate",
                  "latency_ms", "timeline", "rewrite", "generator_cpu_pct", "sent", "replied"):
        assert field in result, field
    assert set(result["latency_ms"]) == {"p50", "p99", "p999", "max"}
    assert result["requests"] > 0
    assert result["errors"] == 0, result["errors_by_code"]
    assert result["timeouts"] == 0
    # No request lost: every request sent got exactly one reply (workers count both).
    assert result["sent"] == result["replied"] > 0
    assert result["timeouts_all"] == 0
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    assert result["timeline"], "no per-second rows"
    for row in result["timeline"]:
        assert {"second", "requests", "errors", "timeouts", "latency_ms", "warmup", "tail"} <= set(row)
    assert sum(r["requests"] for r in result["timeline"]) == result["replied"]
    assert result["generator_cpu_pct"] > 0
    assert result["generator_cpu_us_per_request"] > 0


def test_closed_loop_pipelined_against_a_started_node(tmp_path):
    doc = run_bench(tmp_path, "--start-node", "--clients", "4", "--pipeline", "4", "--procs", "2",
                    "--duration", "2", "--ratio", "1:1", "--keyspace", "100")
    assert doc["config"]["pipeline"] == 4 and doc["config"]["clients"] == 4
    assert doc["servers"]["aofnode"]["appendfsync"] == "everysec"
    assert doc["ratio"] is None
    result = doc["targets"]["aofnode"]
    check_target(result)
    assert result["offered_rate"] is None
    assert result["requests"] % 4 == 0  # whole batches only
    # Server CPU per request, per actor (issue 11): the actors of the node it started.
    by_process = result["server_cpu_us_per_request_by_process"]
    assert {"front", "log", "closer", "supervisor"} <= set(by_process)
    assert by_process["front"] > 0 and by_process["log"] > 0
    assert result["server_cpu_us_per_request"] == pytest.approx(sum(by_process.values()), abs=0.1)


def test_a_request_quota_is_sent_exactly_whatever_the_batches(tmp_path):
    """--requests N: the last batches are cut to what is left of N, and a client whose turn
    comes after the quota is reached sends nothing (not an empty batch)."""
    doc = run_bench(tmp_path, "--start-node", "--clients", "4", "--pipeline", "3", "--procs", "1",
                    "--requests", "1001", "--warmup", "0", "--keyspace", "100")
    result = doc["targets"]["aofnode"]
    check_target(result)
    assert result["requests"] == 1001


@pytest.mark.solo  # the offered rate is reached on a machine it has to itself (tests/conftest.py)
def test_open_loop_achieves_the_offered_rate(tmp_path):
    doc = run_bench(tmp_path, "--start-node", "--clients", "4", "--procs", "2", "--rate", "2000",
                    "--duration", "2", "--warmup", "0.5")
    result = doc["targets"]["aofnode"]
    check_target(result)
    assert result["offered_rate"] == 2000
    assert result["throughput"] == pytest.approx(2000, rel=0.2)
    assert any(row["warmup"] for row in result["timeline"])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH")
def test_redis_target_with_a_started_redis(tmp_path):
    doc = run_bench(tmp_path, "--target", "redis", "--start-redis", "--clients", "4",
                    "--pipeline", "4", "--procs", "2", "--duration", "2", "--preload", "100",
                    "--keyspace", "100", "--bgrewrite-at", "0.5")
    assert "--appendonly" in doc["servers"]["redis"]["command"]
    result = doc["targets"]["redis"]
    check_target(result)
    assert result["server_cpu_us_per_request_by_process"]["redis-server"] > 0
    rewrite = result["rewrite"]
    assert rewrite["status"] == "ok" and rewrite["start_s"] <= rewrite["end_s"]
