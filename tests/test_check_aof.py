"""Tests for node/aof/check.py: check-aof's report and repair, and that its verdict is the one
``load`` (what the log actor calls at start) reaches, on a table of damaged files."""
from __future__ import annotations

import io
import os
import struct

import msgpack
import pytest

from node.aof import format as af
from node.aof.check import check_aof_main
from node.aof.format import CorruptAOF, load, scan

H = af.HEADER_SIZE


def batch(i: int, n: int = 2) -> list:
    return [[i % 16, "SET", b"key:%d:%d" % (i, j), b"v%d" % i] for j in range(n)]


def write_aof(path, batches, tail: bytes = b"") -> list[int]:
    """Write header + one record per batch (+ raw tail); return each record's start offset."""
    starts = []
    data = bytearray(af.encode_header())
    for b in batches:
        starts.append(len(data))
        data += af.encode_entries(b)
    data += tail
    path.write_bytes(bytes(data))
    return starts


class NullLog:
    def info(self, event: str, **kw) -> None:
        pass

    warning = error = info


# -- check-aof ------------------------------------------------------------------------------------

def run_check(path, fix=False, yes=False, answer=None):
    out = io.StringIO()
    prompts: list[str] = []

    def confirm(prompt: str) -> str:
        prompts.append(prompt)
        if answer is None:
            pytest.fail("confirm should not be called")
        return answer

    code = check_aof_main(str(path), fix=fix, yes=yes, out=out, confirm=confirm)
    lines = out.getvalue().splitlines()
    fields = dict(line.split(": ", 1) for line in lines if ": " in line)
    return code, fields, prompts, out.getvalue()


def make_torn(tmp_path):
    p = tmp_path / "a.aof"
    write_aof(p, [batch(i) for i in range(3)], tail=af.encode_entries(batch(3))[:9])
    return p, H + sum(len(af.encode_entries(batch(i))) for i in range(3))


def test_check_ok(tmp_path):
    p = tmp_path / "a.aof"
    write_aof(p, [batch(i) for i in range(3)])
    code, f, _, text = run_check(p)
    size = p.stat().st_size
    assert code == 0
    assert f == {"status": "ok", "records": "3", "entries": "6", "ok_up_to": str(size),
                 "file_size": str(size), "verdict": "the node loads every record"}
    assert "run:" not in text


def test_check_torn_without_fix_reports_and_hints(tmp_path):
    p, good_end = make_torn(tmp_path)
    size = p.stat().st_size
    code, f, _, _ = run_check(p)
    assert code == 1
    assert f["status"] == "torn_tail" and f["records"] == "3"
    assert f["ok_up_to"] == f["bad_offset"] == str(good_end) and f["file_size"] == str(size)
    assert "partial" in f["problem"]
    assert f["run"] == f"aofnode check-aof --fix {p}"
    assert p.stat().st_size == size


def test_check_fix_yes_truncates(tmp_path):
    p, good_end = make_torn(tmp_path)
    size = p.stat().st_size
    code, f, prompts, _ = run_check(p, fix=True, yes=True)
    assert code == 0 and prompts == []
    assert f["truncated"] == f"{size - good_end} bytes"
    assert p.stat().st_size == good_end
    assert run_check(p)[0] == 0


def test_check_fix_confirm_no_leaves_file(tmp_path):
    p, good_end = make_torn(tmp_path)
    before = p.read_bytes()
    code, f, prompts, _ = run_check(p, fix=True, answer="n")
    assert code == 1 and "truncated" not in f
    assert prompts == [
        f"Truncate {p} from {len(before)} to {good_end} bytes ({len(before) - good_end} bytes lost)? [y/N] "
    ]
    assert p.read_bytes() == before


def test_check_fix_confirm_empty_answer_leaves_file(tmp_path):
    p, _ = make_torn(tmp_path)
    before = p.read_bytes()
    assert run_check(p, fix=True, answer="")[0] == 1
    assert p.read_bytes() == before


def test_check_fix_confirm_yes_truncates(tmp_path):
    p, good_end = make_torn(tmp_path)
    code, _, prompts, _ = run_check(p, fix=True, answer="Yes")
    assert code == 0 and len(prompts) == 1
    assert p.stat().st_size == good_end


def test_check_fix_cuts_from_first_bad_record_on_corruption(tmp_path):
    p = tmp_path / "a.aof"
    starts = write_aof(p, [batch(i) for i in range(5)])
    data = bytearray(p.read_bytes())
    data[starts[2] + 9] ^= 0xFF
    p.write_bytes(bytes(data))
    code, f, _, _ = run_check(p)
    assert code == 1 and f["status"] == "corrupt" and f["bad_offset"] == str(starts[2])
    code, f, _, _ = run_check(p, fix=True, yes=True)
    assert code == 0 and f["truncated"] == f"{len(data) - starts[2]} bytes"
    assert p.stat().st_size == starts[2]
    seen: list = []
    res = scan(p, on_entries=seen.append)
    assert res.status == "ok" and seen == [batch(0), batch(1)]


def test_check_fix_empty_file(tmp_path):
    p = tmp_path / "a.aof"
    p.write_bytes(b"")
    code, f, _, _ = run_check(p, fix=True, yes=True)
    assert code == 0 and f["status"] == "torn_tail" and f["truncated"] == "0 bytes"


def test_check_fix_refuses_bad_header(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_bytes(b"this is not an aof file at all\n")
    code, f, _, _ = run_check(p, fix=True, yes=True)
    assert code == 1 and f["status"] == "corrupt" and f["bad_offset"] == "0"
    assert "refusing" in f["error"]
    assert p.read_bytes() == b"this is not an aof file at all\n"


def test_check_missing_file(tmp_path):
    code, f, _, text = run_check(tmp_path / "missing.aof", fix=True, yes=True)
    assert code == 2 and "error" in f and "status" not in f

