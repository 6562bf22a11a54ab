"""A smoke run of bench/glob_bomb.py (a few seconds, small keys): it starts redis-server and a
node, loads both, and finds the same keys on both for each pattern. Figures are not checked:
benchmarks are programs, not timed tests. Skipped without redis-server."""
from __future__ import annotations

import shutil
import sys

import pytest

from aofnode.bench.glob_bomb import PATTERNS, make_key
from tests.runjson import run_json

RUN_TIMEOUT_S = 120  # two servers started and loaded with 300 keys: ~5 s here


def test_make_key_has_the_size_and_the_ending() -> None:
    assert len(make_key(0, 1024)) == 1024 and make_key(0, 1024).endswith(b"b")
    assert make_key(1, 64).startswith(b"key:000001:") and make_key(1, 64).endswith(b"a")


@pytest.mark.xdist_group("heavy")  # a load generator against two servers: one heavy test at a time
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_glob_bomb_runs_and_agrees_with_redis(tmp_path) -> None:
    out = tmp_path / "glob.json"
    cmd = [sys.executable, "-m", "aofnode.bench.glob_bomb", "--keys", "300", "--key-bytes", "64",
           "--repeats", "1", "--patterns", "stars-999,class-pair,stars-4-tail", "--json", str(out)]
    stdout, doc = run_json(cmd, out, tmp_path, RUN_TIMEOUT_S, "glob_bomb")
    assert "aofnode/redis" in stdout
    rows = doc["rows"]
    assert [(r["pattern"], r["command"]) for r in rows] == [
        (name, command) for name in ("stars-999", "class-pair", "stars-4-tail")
        for command in ("KEYS", "SCAN")]
    assert all(r["same_keys"] for r in rows)
    assert rows[0]["redis_found"] == [0]  # 64-byte keys hold too few "a" for 999 star runs
    assert rows[-1]["redis_found"] == rows[-1]["aofnode_found"] == [6]  # 1 key in 50 ends in b
    assert set(doc["patterns"]) <= set(PATTERNS)
