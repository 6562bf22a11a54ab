"""Tests for node/aof_format.py: framing, scan classification, load repair and check-aof."""
from __future__ import annotations

import io
import os
import struct

import google_crc32c
import msgpack
import pytest

from node.aof import format as af
from node.aof.format import CorruptAOF, ScanResult, check_aof_main, load, scan

H = af.HEADER_SIZE


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def info(self, event: str, **kw) -> None:
        self.events.append(("info", event, kw))

    def warning(self, event: str, **kw) -> None:
        self.events.append(("warning", event, kw))

    def named(self, event: str) -> list[dict]:
        return [kw for _, name, kw in self.events if name == event]


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


def collect(path, **kw) -> tuple[ScanResult, list]:
    seen: list = []
    return scan(path, on_entries=seen.append, **kw), seen


# -- encoding -------------------------------------------------------------------------------------

def test_header_layout():
    h = af.encode_header()
    assert h == b"AOFNODE\x00" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x00"
    assert len(h) == af.HEADER_SIZE == 16


def test_record_matches_documented_hex_example():
    rec = af.encode_entries([[0, "SET", b"k", b"v"]])
    assert rec.hex(" ") == "00 00 00 0d 18 eb 99 5b 91 94 00 a3 53 45 54 c4 01 6b c4 01 76"


def test_record_crc_covers_length_and_payload():
    payload = msgpack.packb([[3, "DEL", b"x"]], use_bin_type=True)
    rec = af.encode_record(payload)
    length, crc = struct.unpack(">II", rec[:8])
    assert length == len(payload) and rec[8:] == payload
    assert crc == google_crc32c.value(rec[:4] + payload)
    assert crc != google_crc32c.value(payload)


@pytest.mark.parametrize("size", [0, af.MAX_RECORD_BYTES + 1])
def test_encode_record_rejects_bad_sizes(size):
    class Fake(bytes):
        def __len__(self):
            return size

    with pytest.raises(ValueError):
        af.encode_record(Fake())


# -- round trips ----------------------------------------------------------------------------------

def test_round_trip_many_records(tmp_path):
    p = tmp_path / "a.aof"
    batches = [batch(i, n=1 + i % 5) for i in range(2000)]
    write_aof(p, batches)
    res, seen = collect(p)
    assert seen == batches
    assert res.status == "ok" and res.problem is None and res.bad_offset is None
    assert res.records == 2000
    assert res.entries == sum(len(b) for b in batches)
    assert res.ok_up_to == res.file_size == p.stat().st_size


def test_round_trip_types(tmp_path):
    p = tmp_path / "a.aof"
    b = [[15, "PEXPIREAT", b"k", b"1700000000000"], [0, "FLUSHALL"], [2, "HSET", b"h", b"\xff\x00", b""]]
    write_aof(p, [b])
    res, seen = collect(p)
    assert seen == [b]
    assert type(seen[0][0][1]) is str and type(seen[0][0][2]) is bytes


def test_records_spanning_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "READ_CHUNK_BYTES", 7)
    p = tmp_path / "a.aof"
    batches = [batch(i, n=3) for i in range(50)]
    write_aof(p, batches)
    res, seen = collect(p)
    assert res.status == "ok" and seen == batches


def test_big_payloads_span_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "READ_CHUNK_BYTES", 64 * 1024)
    p = tmp_path / "a.aof"
    batches = [
        [[0, "SET", b"big%d" % i, os.urandom(300_000 + i)]] if i % 3 == 0 else batch(i)
        for i in range(12)
    ]
    write_aof(p, batches)
    res, seen = collect(p)
    assert res.status == "ok" and res.records == 12
    assert seen == batches


def test_header_only_file_is_ok(tmp_path):
    p = tmp_path / "a.aof"
    write_aof(p, [])
    res, seen = collect(p)
    assert (res.status, res.records, res.ok_up_to, seen) == ("ok", 0, H, [])


def test_progress_callback_fires(tmp_path):
    p = tmp_path / "a.aof"
    starts = write_aof(p, [batch(i) for i in range(5)])
    calls = []
    scan(p, progress=lambda *a: calls.append(a), progress_interval_s=0.0)
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5]
    assert [c[1] for c in calls] == starts[1:] + [p.stat().st_size]
    assert all(c[2] >= 0 for c in calls)


def test_progress_callback_respects_interval(tmp_path):
    p = tmp_path / "a.aof"
    write_aof(p, [batch(i) for i in range(50)])
    calls = []
    scan(p, progress=lambda *a: calls.append(a), progress_interval_s=3600.0)
    assert calls == []


# -- torn tails -----------------------------------------------------------------------------------

def test_empty_file_is_torn_tail(tmp_path):
    p = tmp_path / "a.aof"
    p.write_bytes(b"")
    res = scan(p)
    assert (res.status, res.ok_up_to, res.file_size) == ("torn_tail", 0, 0)


@pytest.mark.parametrize("n", [1, 5, 8, 12, 15])
def test_partial_file_header_is_torn_tail(tmp_path, n):
    p = tmp_path / "a.aof"
    p.write_bytes(af.encode_header()[:n])
    res = scan(p)
    assert (res.status, res.ok_up_to, res.records) == ("torn_tail", 0, 0)
    assert "partial header" in res.problem


def test_partial_non_header_bytes_are_corrupt(tmp_path):
    p = tmp_path / "a.aof"
    p.write_bytes(b"REDIS")
    res = scan(p)
    assert (res.status, res.bad_offset, res.ok_up_to) == ("corrupt", 0, 0)


def test_all_zero_file_is_torn_tail(tmp_path):
    p = tmp_path / "a.aof"
    p.write_bytes(bytes(4096))
    res = scan(p)
    assert (res.status, res.ok_up_to) == ("torn_tail", 0)


def torn_variants():
    good = af.encode_entries(batch(99))
    return {
        "partial_record_header": good[:5],
        "partial_payload": good[:-3],
        "header_only": good[:8],
        "zero_filled": bytes(10_000),
        # a page of the last write never reached the disk: the record's end is zeros, up to EOF
        "record_with_zeroed_end": good[:11] + bytes(len(good) - 11),
    }


@pytest.mark.parametrize("kind", sorted(torn_variants()))
def test_torn_tail_variants(tmp_path, kind):
    p = tmp_path / "a.aof"
    batches = [batch(i) for i in range(10)]
    write_aof(p, batches, tail=torn_variants()[kind])
    good_end = H + sum(len(af.encode_entries(b)) for b in batches)
    res, seen = collect(p)
    assert res.status == "torn_tail", res
    assert res.ok_up_to == res.bad_offset == good_end
    assert res.records == 10 and seen == batches
    assert res.file_size == p.stat().st_size > good_end


def test_partial_record_followed_by_zeros_past_its_end_is_corrupt(tmp_path):
    # The documented limit of the rule: the bytes from the record start are not all zero and the
    # declared end is before EOF, so this is not recognisably a torn tail.
    p = tmp_path / "a.aof"
    good = af.encode_entries(batch(9))
    starts = write_aof(p, [batch(0), batch(1)], tail=good[:11] + bytes(len(good)))
    res = scan(p)
    assert (res.status, res.records) == ("corrupt", 2)
    assert res.bad_offset == starts[1] + len(af.encode_entries(batch(1)))


def test_bad_crc_on_last_record_is_torn_tail(tmp_path):
    p = tmp_path / "a.aof"
    starts = write_aof(p, [batch(i) for i in range(4)])
    data = bytearray(p.read_bytes())
    data[-1] ^= 0x01
    p.write_bytes(bytes(data))
    res = scan(p)
    assert (res.status, res.ok_up_to, res.records) == ("torn_tail", starts[-1], 3)
    assert "crc" in res.problem


def test_absurd_length_at_tail_is_torn_tail(tmp_path):
    p = tmp_path / "a.aof"
    write_aof(p, [batch(0)], tail=b"\xff\xff\xff\xff" + b"junkjunk")
    res = scan(p)
    assert res.status == "torn_tail" and res.records == 1


def test_big_zero_tail_is_checked_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "READ_CHUNK_BYTES", 1024)
    p = tmp_path / "a.aof"
    write_aof(p, [batch(0)], tail=bytes(100_000))
    assert scan(p).status == "torn_tail"
    # one non-zero byte far into the tail makes the zeroed record a bad record in the middle
    write_aof(p, [batch(0)], tail=bytes(90_000) + b"\x01" + bytes(9_999))
    res = scan(p)
    assert res.status == "corrupt" and res.records == 1


# -- corruption -----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["length", "crc", "payload"])
def test_flipped_byte_in_middle_record_is_corrupt(tmp_path, where):
    p = tmp_path / "a.aof"
    batches = [batch(i) for i in range(6)]
    starts = write_aof(p, batches)
    data = bytearray(p.read_bytes())
    # length: low byte +1 keeps the record inside the file, so the crc catches it
    offset = {"length": starts[3] + 3, "crc": starts[3] + 5, "payload": starts[3] + 12}[where]
    data[offset] ^= 0x01
    p.write_bytes(bytes(data))
    res, seen = collect(p)
    assert res.status == "corrupt"
    assert res.bad_offset == res.ok_up_to == starts[3]
    assert res.records == 3 and seen == batches[:3]
    assert "middle" in res.problem


def test_absurd_length_in_middle_is_corrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "MAX_RECORD_BYTES", 1000)
    p = tmp_path / "a.aof"
    # a record of 2000 declared bytes fits inside the file but exceeds the (patched) maximum
    starts = write_aof(p, [batch(0)], tail=struct.pack(">II", 2000, 0) + os.urandom(3000))
    res = scan(p)
    assert (res.status, res.bad_offset) == ("corrupt", starts[0] + len(af.encode_entries(batch(0))))
    assert "absurd" in res.problem


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.packb({"a": 1}),  # a map, not an array
        msgpack.packb([[0, b"SET", b"k", b"v"]], use_bin_type=True),  # name as bin
        msgpack.packb([[0, "SET", "k", b"v"]], use_bin_type=True),  # arg as str
        msgpack.packb([["0", "SET", b"k"]], use_bin_type=True),  # db not an int
        msgpack.packb([[-1, "SET", b"k"]], use_bin_type=True),  # negative db
        msgpack.packb([[0]], use_bin_type=True),  # no name
        msgpack.packb([[0, "", b"k"]], use_bin_type=True),  # empty name
        msgpack.packb([7], use_bin_type=True),  # entry not a list
        msgpack.packb([[0, "SET", b"k"]], use_bin_type=True) + b"\x00",  # trailing bytes
        b"\xc1",  # never-used msgpack byte
        b"\x93\x01",  # truncated array
    ],
)
def test_valid_crc_with_bad_payload_is_corrupt(tmp_path, payload):
    p = tmp_path / "a.aof"
    # bad record last: with a valid crc it must still be corrupt, not torn
    starts = write_aof(p, [batch(0)], tail=af.encode_record(payload))
    res = scan(p)
    assert res.status == "corrupt", res
    assert res.bad_offset == starts[0] + len(af.encode_entries(batch(0)))
    assert "valid crc32c" in res.problem


def test_empty_entries_array_is_valid(tmp_path):
    p = tmp_path / "a.aof"
    write_aof(p, [[]])
    res, seen = collect(p)
    assert (res.status, res.records, res.entries, seen) == ("ok", 1, 0, [[]])


@pytest.mark.parametrize(
    "header,word",
    [
        (b"REDIS0009" + bytes(7), "magic"),
        (af.MAGIC + struct.pack(">II", 2, 0), "version"),
        (af.MAGIC + struct.pack(">II", 1, 5), "reserved"),
    ],
)
def test_bad_header_is_corrupt_at_zero(tmp_path, header, word):
    p = tmp_path / "a.aof"
    p.write_bytes(header + af.encode_entries(batch(0)))
    res, seen = collect(p)
    assert (res.status, res.bad_offset, res.ok_up_to, seen) == ("corrupt", 0, 0, [])
    assert word in res.problem


# -- load -----------------------------------------------------------------------------------------

def test_load_missing_file_is_empty_ok(tmp_path):
    log = RecordingLog()
    res = load(tmp_path / "nope.aof", lambda e: pytest.fail("apply called"), log)
    assert (res.status, res.records, res.file_size) == ("ok", 0, 0)
    assert not (tmp_path / "nope.aof").exists()


def test_load_applies_and_logs_loaded(tmp_path):
    p = tmp_path / "a.aof"
    batches = [batch(i) for i in range(7)]
    write_aof(p, batches)
    applied: list = []
    log = RecordingLog()
    res = load(p, applied.append, log)
    assert applied == batches and res.status == "ok"
    (loaded,) = log.named("aof_loaded")
    assert loaded["records"] == 7 and loaded["entries"] == 14
    assert loaded["bytes"] == p.stat().st_size
    assert "seconds" in loaded
    assert log.named("aof_truncated") == []


def test_load_truncates_torn_tail_and_logs_once(tmp_path):
    p = tmp_path / "a.aof"
    batches = [batch(i) for i in range(5)]
    tail = af.encode_entries(batch(5))[:-4]
    write_aof(p, batches, tail=tail)
    size_before = p.stat().st_size
    applied: list = []
    log = RecordingLog()
    res = load(p, applied.append, log)
    assert res.status == "torn_tail" and applied == batches
    assert p.stat().st_size == res.ok_up_to == size_before - len(tail)
    warnings = [e for e in log.events if e[0] == "warning"]
    assert len(warnings) == 1
    _, event, kw = warnings[0]
    assert event == "aof_truncated"
    assert kw["bytes_cut"] == len(tail) and kw["offset"] == res.ok_up_to
    assert "partial payload" in kw["reason"]
    # a second load finds a clean file and warns about nothing
    log2 = RecordingLog()
    assert load(p, lambda e: None, log2).status == "ok"
    assert log2.named("aof_truncated") == []


def test_load_torn_header_truncates_to_zero(tmp_path):
    p = tmp_path / "a.aof"
    p.write_bytes(af.MAGIC[:6])
    log = RecordingLog()
    res = load(p, lambda e: None, log)
    assert res.status == "torn_tail" and p.stat().st_size == 0
    assert log.named("aof_truncated")[0]["bytes_cut"] == 6


def test_load_corrupt_raises_with_offset_and_repair_command(tmp_path):
    p = tmp_path / "a.aof"
    batches = [batch(i) for i in range(4)]
    starts = write_aof(p, batches)
    data = bytearray(p.read_bytes())
    data[starts[1] + 10] ^= 0x40
    p.write_bytes(bytes(data))
    size = len(data)
    applied: list = []
    with pytest.raises(CorruptAOF) as info:
        load(p, applied.append, RecordingLog())
    err = info.value
    assert err.offset == starts[1] and err.path == str(p) and "middle" in err.reason
    assert str(starts[1]) in str(err)
    assert f"aofnode check-aof --fix {p}" in str(err)
    assert applied == batches[:1]  # records before the bad one were applied: caller discards
    assert p.stat().st_size == size  # corruption is never truncated automatically


def test_load_logs_progress(tmp_path, monkeypatch):
    p = tmp_path / "a.aof"
    write_aof(p, [batch(i) for i in range(3)])
    ticks = iter(range(0, 1000, 2))  # each time.monotonic() call advances 2 s
    monkeypatch.setattr(af.time, "monotonic", lambda: float(next(ticks)))
    log = RecordingLog()
    load(p, lambda e: None, log)
    progress = log.named("aof_load_progress")
    assert [e["records"] for e in progress] == [1, 2, 3]
    assert progress[-1]["bytes"] == p.stat().st_size
    assert all(e["seconds"] > 0 for e in progress)


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
                 "file_size": str(size)}
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
    res, seen = collect(p)
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


def test_scan_reads_in_bounded_chunks(tmp_path, monkeypatch):
    # A multi-GiB file must never be read whole: every read is at most one chunk (or one record).
    monkeypatch.setattr(af, "READ_CHUNK_BYTES", 4096)
    p = tmp_path / "a.aof"
    write_aof(p, [batch(i, n=4) for i in range(3000)], tail=bytes(50_000))
    sizes: list[int] = []
    real_open = open

    class Spy:
        def __init__(self, f):
            self._f = f

        def read(self, n=-1):
            sizes.append(n)
            return self._f.read(n)

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    monkeypatch.setattr(af, "open", lambda *a, **k: Spy(real_open(*a, **k)), raising=False)
    res = scan(p)
    assert res.status == "torn_tail" and res.records == 3000
    assert sizes and all(0 <= n <= 4096 for n in sizes)
    assert len(sizes) > p.stat().st_size // 4096
