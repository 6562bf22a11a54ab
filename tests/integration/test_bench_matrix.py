"""aofnode-bench-matrix and its redis-benchmark driver.

A smoke run of the matrix (shape (c), two repeats, 0.5 s each: ~5 s alone) checks the table's columns,
one row per shape and server, and that the CPU figures are there and positive. The
redis-benchmark driver runs against a real redis-server (skipped without one); its output parser
and the median/spread cells are checked with tables.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from aofnode.bench import cbench, spread
from aofnode.bench.matrix import COLUMNS, NAMED, parse_shapes
from aofnode.bench.matrix_resp import requests_for
from tests.runjson import run_json

MATRIX = str(Path(sys.executable).parent / "aofnode-bench-matrix")

# The runs are load generators against two servers: one "heavy" test at a time (pyproject.toml,
# addopts). The parsers' and cells' tables load nothing and run anywhere.
heavy = pytest.mark.xdist_group("heavy")
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not on PATH")
needs_redis_benchmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None,
    reason="redis-server or redis-benchmark not on PATH")


def _table(stdout: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]

    def split(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]
    return split(lines[0]), [split(line) for line in lines[2:]]


@heavy
@needs_redis
def test_matrix_smoke_prints_cpu_per_request_beside_redis(tmp_path):
    out = tmp_path / "m.json"
    # 0.5 s: /proc counts CPU in 10 ms ticks, and redis-server's share of a one-client run is
    # ~13 µs per request: >= 3 ticks even at a loaded machine's ~5k requests/s.
    stdout, doc = run_json([MATRIX, "--shapes", "c", "--duration", "0.5", "--warmup", "0",
                            "--repeats", "2", "--json", str(out)], out, tmp_path, 90,
                           "aofnode-bench-matrix")
    header, rows = _table(stdout)
    assert header == COLUMNS
    assert [(r[0], r[1]) for r in rows] == [(NAMED["c"].label, "aofnode"), (NAMED["c"].label, "redis")]
    # Two repeats: every figure is "median (min-max)"; the ratio is in the aofnode rows only.
    for r in rows:
        assert "(" in r[2] and "-" in r[2], r
        assert (r[9] != "") == (r[1] == "aofnode"), r
        assert (r[10] != "") == (r[1] == "aofnode"), r
    # Both servers ran in both repeats, alternating: aofnode first in repeat 0, redis in 1.
    runs = doc["runs"]
    assert [(x["shape"], x["target"], x["repeat"]) for x in runs] == [
        ("c", "aofnode", 0), ("c", "redis", 0), ("c", "redis", 1), ("c", "aofnode", 1)]
    assert doc["config"]["shapes"] == [{"name": "c", "appendfsync": "everysec", "clients": 1,
                                        "pipeline": 1}]
    for shape in ("c",):
        s = doc["summary"][shape]
        for target in ("aofnode", "redis"):
            assert s[target]["server_cpu_us"]["min"] > 0
            assert s[target]["generator_cpu_us"]["min"] > 0
            assert s[target]["throughput"]["n"] == 2
        assert s["aofnode"]["by_process_us"]["front"]["min"] > 0
        assert s["aofnode"]["by_process_us"]["log"]["min"] > 0
        assert s["redis"]["by_process_us"]["redis-server"]["min"] > 0
        assert s["ratio"]["n"] == 2 and s["ratio"]["min"] > 0
        assert s["aofnode"]["cpu_ratio"]["n"] == 2 and s["aofnode"]["cpu_ratio"]["min"] > 0
    for x in runs:
        r = x["result"]
        assert r["errors"] == 0 and r["sent"] == r["replied"] > 0
        assert r["server_cpu_us_per_request"] > 0


def test_shapes_parse_named_and_custom():
    assert parse_shapes("a,b,c") == [NAMED["a"], NAMED["b"], NAMED["c"]]
    (s,) = parse_shapes("no:4x16")
    assert (s.appendfsync, s.clients, s.pipeline, s.label) == ("no", 4, 16, "no, 4 x 16")
    assert NAMED["b"].label == "(b) everysec, 50 x 32"
    for bad in ("d", "sometimes:1x1", "always:0x1", "always:1x"):
        with pytest.raises(ValueError):
            parse_shapes(bad)


@pytest.mark.parametrize("values, digits, expected", [
    ([57.25], None, "57.2"),
    ([3.5, 4.25], None, "3.88 (3.50-4.25)"),
    ([12000, 14000, 13000], 0, "13,000 (12,000-14,000)"),
    ([240, 300], None, "270 (240-300)"),
    ([0.27, 0.31], 2, "0.29 (0.27-0.31)"),
    ([None, 2.0], None, "2.00"),
    ([], None, "-"),
])
def test_spread_cell(values, digits, expected):
    assert spread.cell(spread.summarize(values), digits) == expected


# The shape of redis-benchmark 7.0's human output: a progress line rewritten with \r that the
# next section header follows on the same line, a percentile distribution, a summary.
_OUTPUT = (
    "SET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r                \r"
    "====== SET ======\n"
    "  20000 requests completed in 0.17 seconds\n  50 parallel clients\n\n"
    "Latency by percentile distribution:\n"
    "0.000% <= 0.087 milliseconds (cumulative count 3)\n"
    "50.000% <= 0.223 milliseconds (cumulative count 12233)\n"
    "99.805% <= 0.751 milliseconds (cumulative count 19961)\n"
    "99.902% <= 0.983 milliseconds (cumulative count 19981)\n"
    "99.951% <= 1.127 milliseconds (cumulative count 19991)\n"
    "100.000% <= 1.471 milliseconds (cumulative count 20000)\n\n"
    "Cumulative distribution of latencies:\n"
    "99.910% <= 1.007 milliseconds (cumulative count 19982)\n"
    "100.000% <= 1.503 milliseconds (cumulative count 20000)\n\n"
    "Summary:\n  throughput summary: 114942.53 requests per second\n"
    "  latency summary (msec):\n          avg       min       p50       p95       p99       max\n"
    "        0.229     0.080     0.223     0.263     0.439     1.471\n"
    "====== MSET (10 keys) ======\n  100 requests completed in 0.01 seconds\n"
    "Summary:\n  throughput summary: 10000.00 requests per second\n"
    "  latency summary (msec):\n          avg       min       p50       p95       p99       max\n"
    "        0.5     0.1     0.4     0.6     0.7     0.9\n"
)


def test_redis_benchmark_output_parsed():
    out = cbench.parse_output(_OUTPUT)
    assert list(out) == ["SET", "MSET (10 keys)"]
    s = out["SET"]
    assert (s["requests"], s["seconds"], s["rps"]) == (20000, 0.17, 114942.53)
    assert s["latency_ms"] == {"avg": 0.229, "min": 0.080, "p50": 0.223, "p95": 0.263,
                               "p99": 0.439, "max": 1.471, "p999": 0.983}
    # No percentile distribution: p99.9 falls back to the maximum (an upper bound).
    assert out["MSET (10 keys)"]["latency_ms"]["p999"] == 0.9


def test_redis_benchmark_output_without_summary_is_refused():
    with pytest.raises(ValueError, match="SET"):
        cbench.parse_output("====== SET ======\n  20000 requests completed in 0.17 seconds\n")


def test_requests_per_test():
    assert requests_for("set", 1, None) == 100_000
    assert requests_for("set", 16, None) == 500_000
    assert requests_for("mset", 16, None) == 100_000
    assert requests_for("get", 1, 7) == 7


@heavy
@needs_redis_benchmark
def test_redis_benchmark_driver_against_redis_server():
    from aofnode.bench.servers import start_redis
    with start_redis("everysec") as server:
        # CPU comes from /proc in 10 ms ticks: 60,000 requests at ~2 µs each are ~12 ticks.
        results = cbench.run_suite(server.spec.port, ("set", "get"), clients=4, pipeline=4,
                                   requests=60_000, pgid=server.proc.pid)
    assert [r["test"] for r in results] == ["SET", "GET"]
    for r in results:
        assert r["requests"] == 60_000 and r["rps"] > 0
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["p999"] <= lat["max"]
        assert "-P" in r["command"] and r["command"][r["command"].index("-P") + 1] == "4"
        assert r["server_cpu_us_per_request_by_process"]["redis-server"] > 0
        assert r["generator_cpu_us_per_request"] > 0


@heavy
@needs_redis_benchmark
def test_matrix_redis_benchmark_column_against_both_servers(tmp_path):
    out = tmp_path / "r.json"
    # 30,000 requests: redis-server's CPU for them (~1.5 µs each at -P 4) is several 10 ms ticks
    # of /proc accounting; 4,000 once read as 0.
    stdout, doc = run_json([MATRIX, "--shapes", "", "--with-redis-benchmark", "--repeats", "1",
                            "--cb-pipelines", "4", "--cb-tests", "set,get", "--cb-requests", "30000",
                            "--json", str(out)], out, tmp_path, 90, "aofnode-bench-matrix")
    header, rows = _table(stdout)
    from aofnode.bench.matrix_resp import COLUMNS as RESP_COLUMNS
    assert header == RESP_COLUMNS
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("4", "SET", "aofnode-resp"), ("4", "SET", "redis"),
        ("4", "GET", "aofnode-resp"), ("4", "GET", "redis")]
    assert doc["redis_benchmark"]["skipped"] == {}
    for run in doc["redis_benchmark"]["runs"]:
        r = run["result"]
        assert r["requests"] == 30000 and r["rps"] > 0
        assert r["server_cpu_us_per_request"] > 0
        if run["target"] == "aofnode-resp":  # the RESP front and the log actor did the work
            by = r["server_cpu_s"]
            assert by["resp"] > 0 and by["log"] > 0


@heavy
@needs_redis
def test_matrix_before_tree_runs_with_its_own_generator(tmp_path):
    """--before TREE (bench/oldtree.py): that tree's node and generator, in the same rounds. A
    copy of this tree stands in for an older one (same layout: node.tools.cli)."""
    root = Path(__file__).resolve().parents[2]
    tree = tmp_path / "tree"
    for pkg in ("node", "protocol", "bench"):
        shutil.copytree(root / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "b.json"
    stdout, doc = run_json([MATRIX, "--shapes", "c", "--duration", "0.5", "--warmup", "0",
                            "--repeats", "1", "--before", str(tree), "--json", str(out)],
                           out, tmp_path, 90, "aofnode-bench-matrix")
    _, rows = _table(stdout)
    assert [r[1] for r in rows] == ["aofnode", "before", "redis"]
    (before,) = [x for x in doc["runs"] if x["target"] == "before"]
    r = before["result"]
    assert r["tree"] == str(tree.resolve())
    assert r["errors"] == 0 and r["sent"] == r["replied"] > 0
    assert r["server_cpu_s"]["front"] > 0 and r["server_cpu_s"]["log"] > 0
    assert r["generator_cpu_us_per_request"] > 0
