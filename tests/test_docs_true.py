"""Claims in README and docs/ that were found false once, each checked against what the code does.

The doc's sentence is pinned next to the behaviour it describes, so changing one without the
other fails here. (Other docs are kept in step elsewhere: options in test_cli_options, log
events in test_logs_cli, modules in test_design_doc, the protocol's byte examples in
test_codec, the twemproxy example in test_twemproxy.)
"""
from __future__ import annotations

import re
import types
from pathlib import Path

import structlog

from aofnode.log import report

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _table_row(doc: str, first_cell: str) -> str:
    [row] = [ln for ln in (DOCS / doc).read_text().splitlines() if ln.startswith(f"| {first_cell}")]
    return row


def _reporter(log) -> report.Reporter:
    writer = types.SimpleNamespace(fsyncs=0, fsync_seconds=0.0, slow_fsyncs=0, delayed_fsyncs=0,
                                   size=16, status="ok")
    keyspace = types.SimpleNamespace(dbsize=lambda db: 0)
    actor = types.SimpleNamespace(stats={"total_commands_processed": 0, "total_cycles": 0},
                                  writer=writer, log=log, executor=types.SimpleNamespace(keyspace=keyspace))
    return report.Reporter(actor)


def test_an_idle_node_logs_no_summary():
    """logs.md: log_summary only when one of its counters moved, "an idle node logs nothing",
    the first interval of a fresh node included."""
    assert "an idle node logs nothing" in re.sub(r"\s+", " ", (DOCS / "logs.md").read_text())
    log = structlog.get_logger()
    rep = _reporter(log)
    with structlog.testing.capture_logs() as logs:
        for i in range(1, 4):
            rep.tick(rep._next_summary + 0.001)
        assert [e for e in logs if e["event"] == "log_summary"] == []
        rep.actor.stats["total_commands_processed"] = 7
        rep.tick(rep._next_summary + 0.001)
        rep.tick(rep._next_summary + 0.001)
    [summary] = [e for e in logs if e["event"] == "log_summary"]
    assert summary["commands"] == 7
