"""Smoke run of ``aofnode-bench-abuse`` as a subprocess: three scenarios at 1% scale, no redis.

The program starts (and stops) a node per scenario; the figures are not checked, only that each
scenario produced a full row: the victim's latencies, the actors' peak RSS, the abuse's outcome.
If a run overruns, the test sends SIGTERM (the program stops its node) and, failing that, SIGKILL.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.runjson import run_json

BENCH = str(Path(sys.executable).parent / "aofnode-bench-abuse")
RUN_TIMEOUT_S = 90
SCENARIOS = ("frame-bomb", "keys-glob", "pipeline-set")

# Hostile loads against two servers: one "heavy" test at a time (pyproject.toml, addopts).
pytestmark = pytest.mark.xdist_group("heavy")


def run_abuse(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "abuse.json"
    cmd = [BENCH, *args, "--json", str(out)]
    if not Path(BENCH).exists():  # a venv made before the console script existed
        cmd = [sys.executable, "-m", "aofnode.bench.abuse", *args, "--json", str(out)]
    stdout, doc = run_json(cmd, out, tmp_path, RUN_TIMEOUT_S, "aofnode-bench-abuse")
    assert "| # | scenario |" in stdout  # the table
    return doc


def test_three_scenarios_at_a_tiny_scale_give_full_rows(tmp_path):
    doc = run_abuse(tmp_path, "--scale", "0.01", "--no-redis", "--only", ",".join(SCENARIOS))
    rows = doc["rows"]
    assert [r["scenario"] for r in rows] == list(SCENARIOS)
    for row in rows:
        assert row["server"] == "aofnode"
        assert "error" not in row, row.get("traceback")
        victim = row["victim"]
        assert victim["pings"] > 0 and victim["timeouts"] == 0
        lat = victim["latency_ms"]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
        assert {"front", "log", "closer", "supervisor"} <= set(row["peak_rss_mib"])
        assert all(v > 0 for v in row["peak_rss_mib"].values())
        assert row["outcome"]["summary"]
    bomb, keys, pipeline = rows
    assert all(r.startswith("TOOBIG") for r in bomb["outcome"]["reply"])
    assert keys["outcome"]["matched"] == 0
    assert pipeline["outcome"]["errors"] == {} and pipeline["outcome"]["seconds"] > 0
