"""Claims in README and docs/ checked against what the code does.

The doc's sentence is pinned next to the behaviour it describes, so changing one without the
other fails here. (Other docs are kept in step elsewhere: options in test_cli_options, log
events in test_logs_cli, modules in test_design_doc, the protocol's byte examples in
test_codec, the twemproxy example in test_twemproxy.)
"""
from __future__ import annotations

import re
import types
from pathlib import Path

import msgpack
import structlog

from aofnode.log import report
from aofnode import protocol as codec

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _table_row(doc: str, first_cell: str) -> str:
    [row] = [ln for ln in (DOCS / doc).read_text().splitlines() if ln.startswith(f"| {first_cell}")]
    return row


def test_select_holds_for_its_own_message_only():
    """Protocol 2 keeps no SELECT state per socket: commands.md must not say it does."""
    row = _table_row("commands.md", "`SELECT index`")
    assert "per ZeroMQ socket" not in row
    assert "rest of its own message" in row and "header" in row
    batch = msgpack.packb([{"db": 2}, [["SELECT", "5"], ["GET", "k"]]])
    message = codec.decode_message(batch)
    assert message.db == 2  # the next message starts from its own header again, not from 5


def test_header_keys_are_str_only():
    """protocol.md section 5: a bin key in the header (b"db") is an unknown field, PROTO."""
    row = _table_row("protocol.md", "map keys")
    assert "header: str only" in row
    assert codec.decode_message(msgpack.packb([{"db": 3}, ["PING"]])).db == 3
    refused = codec.decode_message(msgpack.packb([{b"db": 3}, ["PING"]]))
    assert refused.code == codec.PROTO and "unknown header field" in refused.message


def _reporter(log) -> report.Reporter:
    writer = types.SimpleNamespace(fsyncs=0, fsync_seconds=0.0, slow_fsyncs=0, delayed_fsyncs=0,
                                   size=16, status="ok")
    keyspace = types.SimpleNamespace(dbsize=lambda db: 0)
    stats = {"total_commands_processed": 0, "total_cycles": 0}
    return report.Reporter(None, log, stats, keyspace=keyspace, writer=writer, rewriter=None,
                           closer=None, meter=None, fronts=[], started=0.0)


def test_an_idle_node_logs_no_summary():
    """logs.md: log_summary only when one of its counters moved, "an idle node logs nothing",
    the first interval of a fresh node included."""
    assert "an idle node logs nothing" in re.sub(r"\s+", " ", (DOCS / "logs.md").read_text())
    log = structlog.get_logger()
    rep = _reporter(log)
    with structlog.testing.capture_logs() as logs:
        for _ in range(1, 4):
            rep.tick(rep._next_summary + 0.001)
        assert [e for e in logs if e["event"] == "log_summary"] == []
        rep.stats["total_commands_processed"] = 7
        rep.tick(rep._next_summary + 0.001)
        rep.tick(rep._next_summary + 0.001)
    [summary] = [e for e in logs if e["event"] == "log_summary"]
    assert summary["commands"] == 7


def test_the_rss_ratio_is_stated_once():
    """The RSS-to-used_memory range is measured in commands.md; limits.md quotes the same one."""
    measured = re.search(r"RSS grows \*\*(\d\.\d\d)–(\d\.\d\d)×\*\*", (DOCS / "commands.md").read_text())
    assert measured, "commands.md states the measured RSS range"
    low, high = measured.groups()
    assert f"RSS grows {low}-{high}x as much" in _table_row("limits.md", "`--maxmemory SIZE`")
