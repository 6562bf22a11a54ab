"""``aofnode logs summarize|plot``: a real node's log, a log full of junk, stdin, and the vocabulary."""
import io
import json
import random
import re
import subprocess
from pathlib import Path

import pytest

from aofnode.tools.logevents import EVENTS, read_lines
from aofnode.tools.logreport import render_text
from aofnode.tools.logtools import Summarizer, summarize
from tests.nodeproc import AOFNODE, wait_for

ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_logs(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([AOFNODE, "logs", *map(str, args)], input=stdin, capture_output=True, timeout=60)


def summary_json(*args, stdin: bytes | None = None) -> dict:
    proc = run_logs("summarize", *args, "--json", stdin=stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


# -- a real node's log ------------------------------------------------------------------------

def test_summary_of_a_real_run_with_rewrite_and_reload(make_node, tmp_path):
    node = make_node("always").start()
    with node.client() as c:
        for i in range(50):
            c.execute("SET", f"k{i}", f"v{i}")
        assert c.execute("BGREWRITEAOF") == "Background append only file rewriting started"
        wait_for(lambda: node.info()["aof_rewrites"] >= 1 and not node.info()["aof_rewrite_in_progress"],
                 15, what="rewrite done")
        c.execute("SET", "after", "rewrite")  # a record after the rewritten snapshot
    assert node.stop() == 0
    node.start()  # loads the rewritten AOF: one aof_loaded with records
    with node.client() as c:
        assert c.execute("GET", "after") == b"rewrite"
    assert node.stop() == 0

    r = summary_json(node.log_file)
    assert len(r["rewrites"]) == 1
    rw = r["rewrites"][0]
    assert rw["status"] == "ok" and rw["reason"] is None
    assert rw["trigger"] == "manual"
    assert rw["fork_ms"] > 0 and rw["total_s"] > 0 and rw["child_s"] is not None
    assert rw["cow_mb"] is not None and rw["slices"] >= 1
    assert len(r["aof_loads"]) == 1
    load = r["aof_loads"][0]
    assert load["status"] == "ok" and load["records"] >= 2 and load["entries"] >= 51
    assert load["truncations"] == []
    t = r["totals"]
    assert t["non_json_lines"] == 0 and t["blank_lines"] == 0 and t["not_objects"] == 0
    assert t["lines"] == t["json_lines"] == t["events"] > 20
    assert t["malformed_events"] == 0, t["malformed_event_names"]  # EVENTS matches what the node writes
    assert t["span_s"] > 0
    assert r["actors"]["node_starts"] == 2
    assert all(role["died"] == 0 and role["restarts"] == 0 for role in r["actors"]["roles"])
    assert r["warnings_errors"] == []

    text = run_logs("summarize", node.log_file)
    assert text.returncode == 0, text.stderr.decode()
    out = text.stdout.decode()
    assert "Rewrites (1)" in out and "AOF loads (1)" in out
    row = out.splitlines()[out.splitlines().index("Rewrites (1)") + 2]
    assert "manual" in row and row.rstrip().endswith("ok")
    assert re.search(r"^\s+non_json_lines\s+0$", out, re.M)

    png = tmp_path / "real.png"
    proc = run_logs("plot", node.log_file, "-o", png)
    assert proc.returncode == 0, proc.stderr.decode()
    assert_png(png)


# -- a log full of junk -----------------------------------------------------------------------

def ev(name, t, pid=100, actor="log", level="info", **fields) -> bytes:
    obj = {"actor": actor, "pid": pid, **fields, "event": name, "level": level,
           "ts": f"2026-01-01T00:00:{t:06.3f}Z"}
    return json.dumps(obj).encode()


def junk_log() -> bytes:
    lines = [
        ev("node_starting", 0, pid=1, actor="supervisor", dir="/d", bind="tcp://x", appendfsync="always"),
        *[ev("actor_spawned", 0.1, pid=1, actor="supervisor", role="log", child_pid=p) for p in (100, 200, 300)],
        b"\x00\xff\xfe\x80 binary junk \xc3\x28",
        b'{"event": "rewrite_started", "ts": ',            # truncated JSON
        b"[1, 2, 3]", b"42", b'"a string"', b"null",        # JSON, not objects
        b'{"level": "info", "pid": 7}', b'{"event": 5}',     # objects without an event name
        b"", b"   ",                                        # blank
        b"[" * 100_000,                                     # nested too deep for the parser
        ev("mystery_event", 1, level="warning", x=1),       # unknown, and a warning
        ev("another_unknown", 1.5),
        # pid 100: one good rewrite, then one that fails
        ev("rewrite_started", 2, trigger="manual", fork_usec=1500, child_pid=999, aof_size=10),
        ev("rewrite_child_done", 3, keys=5, bytes=100, seconds=0.5, cow_bytes=3 << 20, diff_bytes=10),
        ev("rewrite_diff_flushed", 3.1, bytes=10, slices=2, longest_slice_ms=0.7),
        ev("rewrite_switched", 3.2, old_size=10, new_size=5, seconds=1.2, switch_ms=0.4),
        ev("rewrite_pause_summary", 3.3, longest_pause_ms=2.5, longest_pause_cpu_ms=1.0,
           longest_pause_turn="cycle", status="ok"),
        ev("rewrite_started", 4, trigger="auto", fork_usec="fast", child_pid=998, aof_size=10),  # wrong type
        ev("rewrite_failed", 6, level="warning", reason="child exited 1", consecutive_failures=1,
           auto_retry_in_s=60, child_exit=1),
        # pid 200: its log actor dies mid-rewrite
        ev("rewrite_started", 7, pid=200, trigger="manual", fork_usec=900, child_pid=997, aof_size=10),
        ev("actor_died", 8, pid=1, actor="supervisor", level="warning", role="log", child_pid=200, returncode=-9),
        ev("actor_restart_scheduled", 8, pid=1, actor="supervisor", role="log", in_s=0.5),
        # pid 300: a load with a torn tail, then a rewrite still running at the end of the log
        ev("aof_truncated", 9, pid=300, level="warning", offset=1000, bytes_cut=8, reason="partial payload"),
        ev("aof_loaded", 9.5, pid=300, records=12, entries=40, bytes=1000, seconds=0.01),
        ev("log_summary", 10, pid=300, interval_s=10.0, aof_size=1, aof_write_status="ok", keys=1,
           commands=100, cycles=90, fsyncs=10, fsync_seconds=0.5, slow_fsyncs=1, delayed_fsyncs=0),
        ev("log_summary", 20, pid=300, interval_s=10.0, aof_size=1, aof_write_status="ok", keys=1,
           commands=50, cycles=40, fsyncs="five", fsync_seconds=0.25, slow_fsyncs=0, delayed_fsyncs=2),
        b'{"event": "log_summary", "pid": 300, "fsyncs": NaN, "commands": Infinity, "level": "info",'
        b' "actor": "log", "ts": "2026-01-01T00:00:21Z"}',
        ev("aof_fsync_slow", 11, pid=300, level="warning", seconds=2.5, slow_fsyncs=1),
        ev("rewrite_started", 12, pid=300, trigger="auto", fork_usec=700, child_pid=996, aof_size=10),
        ev("rewrite_switched", 13, pid=555, old_size=1, new_size=1, seconds=1, switch_ms=1),  # no start
        ev("aof_loaded", 14, pid=400, ts_is="ignored", records="many", entries=None, bytes=1, seconds=0),
        b'{"event": "actor_died", "ts": 17, "level": ["warning"], "role": {}, "child_pid": "x"}',
    ]
    return b"\n".join(lines)  # no newline after the last line


def check_junk_summary(r: dict) -> None:
    t = r["totals"]
    assert t["lines"] == 37
    assert t["blank_lines"] == 2
    assert t["non_json_lines"] == 3          # binary, truncated, too deeply nested
    assert t["json_lines"] == 32
    assert t["not_objects"] == 4 and t["without_event"] == 2
    assert t["events"] == 26
    assert t["unknown_events"] == 2
    assert t["unknown_event_names"] == {"mystery_event": 1, "another_unknown": 1}
    assert t["malformed_events"] == 5
    assert t["malformed_event_names"] == {"rewrite_started": 1, "log_summary": 2, "aof_loaded": 1,
                                          "actor_died": 1}
    assert t["unmatched_rewrite_events"] == 1
    assert t["first_ts"] == "2026-01-01T00:00:00.000Z" and t["span_s"] == 21.0

    rw = r["rewrites"]
    assert [(x["pid"], x["status"]) for x in rw] == [(100, "ok"), (100, "err"), (200, "incomplete"),
                                                     (300, "incomplete")]
    ok = rw[0]
    assert (ok["fork_ms"], ok["child_s"], ok["cow_mb"], ok["diff_bytes"], ok["slices"]) == (1.5, 0.5, 3.0, 10, 2)
    assert (ok["longest_slice_ms"], ok["total_s"], ok["longest_pause_ms"]) == (0.7, 1.2, 2.5)
    assert rw[1]["fork_ms"] is None and rw[1]["total_s"] == 2.0 and rw[1]["reason"] == "child exited 1"

    f = r["fsync"]
    assert f["log_summaries"] == 3
    assert f["fsyncs"] == 10 and f["commands"] == 150 and f["cycles"] == 130
    assert f["fsync_seconds"] == 0.75 and f["slow_fsyncs"] == 1 and f["delayed_fsyncs"] == 2
    assert f["slow_fsync_warnings"] == 1 and f["slowest_fsync_s"] == 2.5

    loads = r["aof_loads"]
    assert [(x["pid"], x["status"], x["records"]) for x in loads] == [(300, "ok", 12), (400, "ok", None)]
    assert loads[0]["truncations"] == [{"offset": 1000, "bytes_cut": 8, "reason": "partial payload"}]

    we = {(x["level"], x["event"]): x["count"] for x in r["warnings_errors"]}
    assert we == {("warning", "mystery_event"): 1, ("warning", "rewrite_failed"): 1, ("warning", "actor_died"): 1,
                  ("warning", "aof_truncated"): 1, ("warning", "aof_fsync_slow"): 1}
    roles = {x["role"]: x for x in r["actors"]["roles"]}
    assert roles["log"]["died"] == 1 and roles["log"]["returncodes"] == {"-9": 1}
    assert roles["log"]["restarts"] == 2 and roles["log"]["restarts_scheduled"] == 1
    assert r["actors"]["node_starts"] == 1


def test_junk_lines_are_counted_not_fatal(tmp_path):
    path = tmp_path / "junk.log"
    path.write_bytes(junk_log())
    check_junk_summary(summary_json(path))
    text = run_logs("summarize", path)
    assert text.returncode == 0, text.stderr.decode()
    assert "Rewrites (4)" in text.stdout.decode()


def test_summarize_reads_stdin():
    check_junk_summary(summary_json("-", stdin=junk_log()))
    assert run_logs("summarize", "-", stdin=b"").returncode == 0


def test_missing_file_exits_2(tmp_path):
    for cmd in (("summarize",), ("plot",)):
        proc = run_logs(*cmd, tmp_path / "nope.log", *(("-o", tmp_path / "x.png") if cmd == ("plot",) else ()))
        assert proc.returncode == 2
        assert b"nope.log" in proc.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("content", [junk_log(), b""], ids=["junk", "empty"])
def test_plot_writes_a_png(tmp_path, content):
    src, png = tmp_path / "in.log", tmp_path / "out.png"
    src.write_bytes(content)
    proc = run_logs("plot", src, "-o", png)
    assert proc.returncode == 0, proc.stderr.decode()
    assert_png(png)


def test_any_line_soup_yields_a_summary():
    """Property, with a fixed seed: lines cut, spliced and retyped from real ones never raise."""
    rng = random.Random(1234)
    seeds = junk_log().split(b"\n")
    values = [None, True, 0, -1, 2**70, 1.5, 1e308, "", "x" * 300, [], {}, [1, {"a": None}], "\ud800"]
    s = Summarizer(timeline=True)
    for _ in range(3000):
        line = rng.choice(seeds)
        roll = rng.random()
        if roll < 0.3:
            line = line[: rng.randrange(len(line) + 1)]
        elif roll < 0.45:
            line = bytes(b ^ (1 << rng.randrange(8)) if rng.random() < 0.05 else b for b in line)
        elif roll < 0.9:
            obj = {"event": rng.choice(list(EVENTS) + ["zz"]), "ts": rng.choice(
                ["2026-01-01T00:00:01Z", "2026-13-01", 5, "now", "2026-01-01T00:00:01+02:00"]),
                "level": rng.choice(["info", "warning", "error", 3]), "pid": rng.choice([1, 2, "p"])}
            for field in rng.sample(sorted({k for spec in EVENTS.values() for k in spec}), 6):
                obj[field] = rng.choice(values)
            line = json.dumps(obj).encode()
        s.feed(line)
    s.finish()
    result = s.result()
    json.dumps(result, allow_nan=False)
    render_text(result)
    t = result["totals"]
    assert t["lines"] == 3000 == t["json_lines"] + t["non_json_lines"] + t["blank_lines"]
    assert t["json_lines"] == t["not_objects"] + t["without_event"] + t["events"]


def test_overlong_line_is_skipped_not_held(monkeypatch):
    monkeypatch.setattr("aofnode.tools.logevents.MAX_LINE_BYTES", 64)
    data = b'{"event": "node_stopped"}\n' + b"x" * 1000 + b"\n" + b'{"event": "node_stopped"}'
    assert [line is None for line in read_lines(io.BytesIO(data))] == [False, True, False]
    t = summarize(io.BytesIO(data)).result()["totals"]
    assert (t["lines"], t["too_long_lines"], t["non_json_lines"], t["events"]) == (3, 1, 1, 2)


# -- the vocabulary ---------------------------------------------------------------------------

def test_every_event_the_node_writes_is_known_and_documented():
    written = set()
    for path in (ROOT / "node").rglob("*.py"):
        written |= set(re.findall(r'log\.(?:info|warning|error)\(\s*"([a-z_]+)"', path.read_text()))
    assert written, "the grep found no log calls"
    assert written - set(EVENTS) == set(), "add them to node/tools/logevents.py EVENTS"
    doc = (ROOT / "docs" / "logs.md").read_text()
    assert {name for name in EVENTS if f"`{name}`" not in doc} == set(), "add them to docs/logs.md"


# -- the plot's series ----------------------------------------------------------------------------

def _summarized(lines: list[bytes]) -> Summarizer:
    s = Summarizer(timeline=True)
    for line in lines:
        s.feed(line)
    s.finish()
    return s


def _summary(t, commands=10):
    return ev("log_summary", t, interval_s=10.0, aof_size=1, aof_write_status="ok", keys=1,
              commands=commands, cycles=1, fsyncs=1, fsync_seconds=0.1, slow_fsyncs=0, delayed_fsyncs=0)


def test_plot_breaks_its_lines_over_gaps_in_the_log():
    """A summary is written only when counters moved: 3.5 idle minutes are a gap in the log,
    not a ramp from the last busy interval to the next."""
    import math

    from aofnode.tools.logplot import summary_series
    s = _summarized([_summary(10), _summary(20), _summary(30), _summary(40.5), _summary(59.5)])
    # 10 s apart, then 19 s: a gap (no summary at 50 means nothing moved then)
    xs, fsyncs, commands = summary_series(s.summaries, s.first_t)
    assert [round(x, 1) if not math.isnan(x) else "gap" for x in xs] == [0, 10, 20, 30.5, "gap", 49.5]
    assert math.isnan(commands[4]) and math.isnan(fsyncs[4])


def test_plot_labels_each_rewrite_and_keeps_neighbours_apart(tmp_path):
    from aofnode.tools.logplot import rewrite_spans
    s = _summarized([
        ev("rewrite_started", 1, trigger="manual", fork_usec=1, child_pid=9, aof_size=1),
        ev("rewrite_switched", 2, old_size=1, new_size=1, seconds=1, switch_ms=1),
        ev("rewrite_started", 2, trigger="auto", fork_usec=1, child_pid=8, aof_size=1),
        ev("rewrite_failed", 3, level="warning", reason="x", consecutive_failures=1, auto_retry_in_s=60),
        ev("rewrite_started", 3, trigger="scheduled", fork_usec=1, child_pid=7, aof_size=1),
    ])
    spans = rewrite_spans(s, s.first_t)
    assert [(sp["label"], sp["status"]) for sp in spans] == [
        ("#1 manual", "ok"), ("#2 automatic", "err"), ("#3 manual (scheduled)", "incomplete")]
    assert [round(sp["x"], 3) for sp in spans] == [0, 1, 2]
    png = tmp_path / "plot.png"
    from aofnode.tools.logplot import plot_timeline
    plot_timeline(s, str(png))
    assert_png(png)
