"""Tests for node/aof/check.py: check-aof's report and repair, and that its verdict is the one
``load`` (what the log actor calls at start) reaches, on a table of damaged files."""
from __future__ import annotations

import io
import os
import struct

import msgpack
import pytest

from aofnode.aof import format as af
from aofnode.aof.check import check_aof_main
from aofnode.aof.format import CorruptAOF, load, scan
from tests.unit.test_aof_format import batch, write_aof

H = af.HEADER_SIZE




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



# -- the same verdict as load, on a table of damaged files ---------------------------------------

GOOD = [batch(i) for i in range(4)]
RECORDS = [af.encode_entries(b) for b in GOOD]
STARTS = [H + sum(map(len, RECORDS[:i])) for i in range(len(RECORDS))]
END = H + sum(map(len, RECORDS))

INVALID_ENTRIES = {  # CRC-valid records that load must refuse, as check-aof does
    "db_16": ([[16, "SET", b"k", b"v"]], "db 16"),
    "info": ([[0, "INFO"]], "read-only command"),
    "unknown_command": ([[0, "FROB", b"k"]], "not a known command"),
    "wrong_arity": ([[0, "SET", b"k"]], "wrong number of arguments"),
    "non_bytes_arg": ([[0, "SET", b"k", 7]], "not bytes"),
}


def flipped(data: bytes, offset: int, bit: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def clean() -> bytes:
    return af.encode_header() + b"".join(RECORDS)


def corrupt_cases() -> dict:
    """name -> (file bytes, status, bad offset, words of the problem)."""
    def bad_record(entries):
        return af.encode_record(msgpack.packb(entries, use_bin_type=True))

    cases = {"clean": (clean(), "ok", None, None)}
    for name, (entries, words) in INVALID_ENTRIES.items():
        middle = af.encode_header() + RECORDS[0] + bad_record(entries) + b"".join(RECORDS[1:])
        cases[f"{name}_in_the_middle"] = (middle, "corrupt", STARTS[1], words)
        cases[f"{name}_last"] = (clean() + bad_record(entries), "corrupt", END, words)
    for bit in (0, 7, 12, 20, 31):  # a length bit flip with valid records after it
        mutated = flipped(clean(), STARTS[1] + 3 - bit // 8, bit % 8)
        cases[f"length_bit_{bit}_flipped_in_the_middle"] = (
            mutated, "corrupt", STARTS[1], "valid record after it")
    cases.update({
        "length_bit_flipped_in_the_last_record": (
            flipped(clean(), STARTS[3] + 3, 1), "torn_tail", STARTS[3], None),
        "zero_padding_at_the_tail": (clean() + bytes(4096), "torn_tail", END, None),
        "partial_record_then_zero_padding": (
            clean() + RECORDS[0][:12] + bytes(8192), "torn_tail", END, None),
        "garbage_appended": (clean() + b"\xff" + os.urandom(999), "torn_tail", END, None),
        "truncated_last_record": (clean()[:-5], "torn_tail", STARTS[3], "partial payload"),
        "partial_record_header_at_eof": (clean() + RECORDS[0][:5], "torn_tail", END, "header"),
        "bad_crc_last_record": (flipped(clean(), STARTS[3] + 5, 0), "torn_tail", STARTS[3], "crc"),
        "bad_crc_in_the_middle": (flipped(clean(), STARTS[2] + 5, 0), "corrupt", STARTS[2], "crc"),
        "payload_bit_flipped_in_the_middle": (
            flipped(clean(), STARTS[1] + 12, 3), "corrupt", STARTS[1], "crc"),
        "garbage_in_the_middle": (
            af.encode_header() + b"".join(RECORDS[:2]) + os.urandom(100) + b"".join(RECORDS[2:]),
            "corrupt", STARTS[2], "valid record after it"),
        "partial_record_then_a_whole_one": (
            clean() + RECORDS[0][:-3] + RECORDS[1], "corrupt", END, "valid record after it"),
        "zeroed_record_then_a_whole_one": (
            clean() + bytes(100) + RECORDS[1], "corrupt", END, "valid record after it"),
        "bad_header": (b"REDIS0011" + bytes(7) + b"".join(RECORDS), "corrupt", 0, "magic"),
        "bad_version": (
            af.MAGIC + struct.pack(">II", 9, 0) + b"".join(RECORDS), "corrupt", 0, "version"),
        "empty_file": (b"", "torn_tail", 0, "empty"),
        "partial_header": (af.encode_header()[:9], "torn_tail", 0, "partial header"),
        "all_zero_file": (bytes(4096), "torn_tail", 0, "zeroed header"),
        "zeroed_header_then_records": (bytes(H) + b"".join(RECORDS), "corrupt", 0, "zeroed header"),
    })
    return cases


def check_verdict(path) -> tuple[str, int | None, str, str | None]:
    code, f, _, _ = run_check(path)
    bad = int(f["bad_offset"]) if "bad_offset" in f else None
    assert code == (0 if f["status"] == "ok" else 1)
    return f["status"], bad, f["verdict"], f.get("problem")


def load_verdict(path) -> tuple[str, int | None, list]:
    """What the log actor gets from load(): the status, the bad offset and what was applied."""
    applied: list = []
    size = path.stat().st_size
    try:
        res = load(path, applied.append, NullLog())
    except CorruptAOF as exc:
        assert f"aofnode check-aof --fix {path}" in str(exc) and f"offset {exc.offset}" in str(exc)
        assert path.stat().st_size == size  # never cut
        return "corrupt", exc.offset, applied
    assert path.stat().st_size == res.ok_up_to  # a torn tail is cut, an ok file is left alone
    return res.status, res.bad_offset, applied


@pytest.mark.parametrize("name", sorted(corrupt_cases()))
def test_check_aof_and_load_reach_the_same_verdict(tmp_path, name):
    data, status, bad_offset, words = corrupt_cases()[name]
    path = tmp_path / "appendonly.aof"
    path.write_bytes(data)
    checked = check_verdict(path)
    loaded = load_verdict(path)
    assert checked[:2] == loaded[:2] == (status, bad_offset), (checked, loaded)
    if words is not None:
        assert words in checked[3]
    cut = len(data) - (bad_offset or 0)
    assert {"ok": "loads every record", "torn_tail": f"cuts the torn tail ({cut} bytes",
            "corrupt": "refuses to start (exit code 3)"}[status] in checked[2]
    if status != "corrupt":
        good = [b for b, start in zip(GOOD, STARTS) if bad_offset is None or start < bad_offset]
        assert loaded[2] == good  # every record before the cut, nothing after it


def test_zero_padding_longer_than_one_record_refuses_in_both(tmp_path, monkeypatch):
    # A longer zero run is more than a crash of one append can leave: refuse, name --fix.
    monkeypatch.setattr(af, "MAX_RECORD_BYTES", 4096)
    path = tmp_path / "appendonly.aof"
    path.write_bytes(clean() + bytes(8 + 4096))
    assert check_verdict(path)[:2] == load_verdict(path)[:2] == ("torn_tail", END)
    path.write_bytes(clean() + bytes(8 + 4097))
    status, bad, verdict, problem = check_verdict(path)
    assert (status, bad) == load_verdict(path)[:2] == ("corrupt", END)
    assert "more than one record" in problem


# -- mutations: no bit flip makes load silently drop a record that was valid ---------------------

def small_file() -> tuple[bytes, list[int], list]:
    batches = [batch(i, n=1 + i % 3) for i in range(5)]
    records = [af.encode_entries(b) for b in batches]
    starts = [H + sum(map(len, records[:i])) for i in range(len(records))]
    return af.encode_header() + b"".join(records), starts, batches


def assert_safe_outcome(tmp_path, data: bytes, starts: list[int], batches: list, where: str):
    path = tmp_path / "m.aof"
    path.write_bytes(data)
    checked = check_verdict(path)
    status, bad, applied = load_verdict(path)
    assert checked[:2] == (status, bad), where
    if status == "ok":
        assert applied == batches, where
    elif status == "torn_tail":  # only the last record may be cut
        assert (bad, applied) == (starts[-1], batches[:-1]), where
    else:
        assert status == "corrupt", where


def test_every_length_bit_flip_loads_all_cuts_the_last_or_refuses(tmp_path):
    data, starts, batches = small_file()
    for start in starts:
        for bit in range(32):
            mutated = flipped(data, start + 3 - bit // 8, bit % 8)
            assert_safe_outcome(tmp_path, mutated, starts, batches, f"record at {start}, bit {bit}")


def test_every_bit_flip_anywhere_loads_all_cuts_the_last_or_refuses(tmp_path):
    data, starts, batches = small_file()
    for offset in range(len(data)):
        for bit in range(8):
            assert_safe_outcome(tmp_path, flipped(data, offset, bit), starts, batches,
                                f"byte {offset}, bit {bit}")


# -- the real node -------------------------------------------------------------------------------

def test_serve_exits_3_naming_the_offset_of_an_invalid_entry(make_node):
    node = make_node()
    node.dir.mkdir(mode=0o700)
    bad_record = af.encode_record(msgpack.packb([[0, "INFO"]], use_bin_type=True))
    data = af.encode_header() + RECORDS[0] + bad_record + RECORDS[1]
    node.aof_path.write_bytes(data)
    os.chmod(node.aof_path, 0o600)
    node.start(wait=False)
    assert node.proc.wait(30) == 3
    (event,) = node.events("aof_corrupt")
    assert event["offset"] == STARTS[1]
    assert f"corrupt at offset {STARTS[1]}" in event["hint"] and "check-aof --fix" in event["hint"]
    assert "INFO" in event["reason"]
    assert "check-aof --fix" in node.stderr_path.read_text()
    assert node.aof_path.read_bytes() == data  # nothing cut
