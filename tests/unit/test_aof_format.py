"""Tests for node/aof/format.py and entries.py: framing, splitting, the entry rule, torn tails, load.

check-aof and the agreement of its verdict with load's are in tests/integration/test_check_aof.py."""
from __future__ import annotations

import os
import struct

import google_crc32c
import msgpack
import pytest

from aofnode.aof import format as af
from aofnode.aof.entries import check_entries
from aofnode.aof.format import CorruptAOF, ScanResult, load, scan

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


def test_partial_record_followed_by_zeros_past_its_end_is_torn(tmp_path):
    # Zeroed pages of the last write can reach past the last record's declared end: still torn,
    # nothing valid follows it.
    p = tmp_path / "a.aof"
    good = af.encode_entries(batch(9))
    starts = write_aof(p, [batch(0), batch(1)], tail=good[:11] + bytes(len(good)))
    res = scan(p)
    assert (res.status, res.records) == ("torn_tail", 2)
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
    assert "bad record length" in res.problem


def test_zero_length_record_is_never_valid(tmp_path):
    p = tmp_path / "a.aof"
    starts = write_aof(p, [batch(0)], tail=struct.pack(">II", 0, google_crc32c.value(bytes(4))))
    res = scan(p)
    bad_at = starts[0] + len(af.encode_entries(batch(0)))
    assert (res.status, res.bad_offset) == ("torn_tail", bad_at)
    assert "bad record length 0" in res.problem


@pytest.mark.parametrize("garbage", ["zeros", "random", "stray_byte_in_zeros"])
def test_tail_of_one_record_or_less_is_torn_longer_is_corrupt(tmp_path, monkeypatch, garbage):
    # The rule's size bound: from the bad offset to EOF at most 8 + MAX_RECORD_BYTES bytes.
    monkeypatch.setattr(af, "MAX_RECORD_BYTES", 1000)
    p = tmp_path / "a.aof"
    limit = af.RECORD_HEADER_SIZE + 1000

    def tail(n):
        if garbage == "zeros":
            return bytes(n)
        if garbage == "random":
            return b"\xff" + os.urandom(n - 1)  # 0xff...: a length over the maximum
        return bytes(n // 2) + b"\x01" + bytes(n - n // 2 - 1)

    starts = write_aof(p, [batch(0), batch(1)], tail=tail(limit))
    good_end = p.stat().st_size - limit
    res = scan(p)
    assert (res.status, res.bad_offset, res.records) == ("torn_tail", good_end, 2), res
    write_aof(p, [batch(0), batch(1)], tail=tail(limit + 1))
    res = scan(p)
    assert (res.status, res.bad_offset, res.records) == ("corrupt", good_end, 2), res
    assert "more than one record" in res.problem and starts[1] < good_end


def later_record_shapes():
    """Records whose msgpack headers take each size: fixarray, array 16 and array 32."""
    return {
        "fixarray_fixarray": [[0, "SET", b"k", b"v"]],
        "array16_fixarray": [[1, "DEL", b"k%d" % i] for i in range(20)],
        "fixarray_array16": [[2, "MSET", *[b"x"] * 20]],
        "array32_fixarray": [[3, "DEL", b"k"]] * 70_000,
        "fixarray_array32": [[15, "MSET", *[b"y"] * 70_000]],
    }


@pytest.mark.parametrize("shape", sorted(later_record_shapes()))
@pytest.mark.parametrize("bad", ["partial_payload", "bad_crc", "zeros"])
def test_valid_record_after_a_bad_one_is_corrupt(tmp_path, shape, bad):
    # A bad record at the end of a write, then a whole later record: a crash does not leave
    # valid data after a damaged record, so this refuses the start instead of cutting.
    p = tmp_path / "a.aof"
    cut = af.encode_entries(batch(7))
    damaged = {"partial_payload": cut[:-4], "bad_crc": cut[:-1] + bytes([cut[-1] ^ 1]),
               "zeros": bytes(len(cut))}[bad]
    later = af.encode_entries(later_record_shapes()[shape])
    starts = write_aof(p, [batch(0)], tail=damaged + later)
    bad_at = starts[0] + len(af.encode_entries(batch(0)))
    res = scan(p)
    assert (res.status, res.bad_offset, res.records) == ("corrupt", bad_at, 1), res
    assert f"valid record after it at offset {bad_at + len(damaged)}" in res.problem
    # without the later record, the same damage is a torn tail
    write_aof(p, [batch(0)], tail=damaged)
    assert scan(p).status == "torn_tail"


def test_entries_inside_a_torn_record_are_not_taken_for_records(tmp_path):
    # A long partial record full of entries: the search for a later record sees their starts,
    # but no length and CRC around them match.
    p = tmp_path / "a.aof"
    entries = [[i % 16, "SET", b"key:%d" % i, os.urandom(i % 50)] for i in range(5000)]
    big = af.encode_entries(entries)
    write_aof(p, [batch(0)], tail=big[: len(big) * 2 // 3])
    assert scan(p).status == "torn_tail"


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
    assert "bad record length 2000" in res.problem


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
        msgpack.packb([[16, "SET", b"k", b"v"]], use_bin_type=True),  # db out of range
        msgpack.packb([[True, "SET", b"k", b"v"]], use_bin_type=True),  # db a bool
        msgpack.packb([[0, "INFO"]], use_bin_type=True),  # a read-only command
        msgpack.packb([[0, "FOO", b"k"]], use_bin_type=True),  # an unknown command
        msgpack.packb([[0, "set", b"k", b"v"]], use_bin_type=True),  # names are upper-case
        msgpack.packb([[0, "SET", b"k"]], use_bin_type=True),  # SET needs at least 2 args
        msgpack.packb([[0, "GETDEL"]], use_bin_type=True),  # GETDEL needs exactly 1
        msgpack.packb([[0, "RENAME", b"a", b"b", b"c"]], use_bin_type=True),
        msgpack.packb([[0, "SET", b"k", 5]], use_bin_type=True),  # an int arg
        msgpack.packb([[0, "SET", b"k", None]], use_bin_type=True),  # a nil arg
        msgpack.packb([[0, "SET", b"k", b"v"], [0, "BGREWRITEAOF"]], use_bin_type=True),
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
    # Never written (encode_entries([]) is no record at all), but harmless if an old file has one.
    assert af.encode_entries([]) == b""
    p = tmp_path / "a.aof"
    write_aof(p, [], tail=af.encode_record(msgpack.packb([])))
    res, seen = collect(p)
    assert (res.status, res.records, res.entries, seen) == ("ok", 1, 0, [[]])


@pytest.mark.parametrize(
    "entry,words",
    [
        ([0, "SET", b"k", b"v"], None),
        ([15, "PEXPIREAT", b"k", b"1"], None),
        ([0, "FLUSHALL"], None),
        ([3, "MSET", b"a", b"1", b"b", b"2"], None),
        ([16, "SET", b"k", b"v"], "db 16"),
        ([-1, "DEL", b"k"], "db -1"),
        ([0, "INFO"], "read-only command"),
        ([0, "GET", b"k"], "read-only command"),
        ([0, "NOPE"], "not a known command"),
        ([0, b"SET", b"k", b"v"], "not a known command"),
        ([0, "SET", b"k"], "wrong number of arguments for SET: 1"),
        ([0, "HINCRBY", b"h", b"f"], "wrong number of arguments for HINCRBY: 2"),
        ([0, "DEL", b"k", "x"], "a str, not bytes"),
        ([0], "not an array"),
        ("SET", "not an array"),
    ],
)
def test_check_entries_is_the_one_rule(entry, words):
    problem = check_entries([[0, "DEL", b"ok"], entry])
    if words is None:
        assert problem is None
    else:
        assert problem.startswith("entry 1: ") and words in problem, problem
    assert check_entries({"not": "a list"}).startswith("payload is a dict")


# -- records over the size limit ------------------------------------------------------------------

def test_a_cycle_over_the_record_limit_is_split_into_whole_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(af, "MAX_RECORD_BYTES", 1000)
    entries = [[i % 16, "SET", b"k%d" % i, os.urandom(i * 7 % 400)] for i in range(60)]
    entries += [[0, "DEL", b"d%d" % i] for i in range(200)]  # small: array 16 record headers
    data = af.encode_entries(entries)
    p = tmp_path / "a.aof"
    write_aof(p, [], tail=data)
    res, seen = collect(p)
    assert res.status == "ok" and res.records > 5
    assert [e for record in seen for e in record] == entries  # same entries, same order
    offset = H
    while offset < p.stat().st_size:  # every record within the limit
        (length,) = struct.unpack(">I", p.read_bytes()[offset:offset + 4])
        assert 0 < length <= 1000
        offset += 8 + length
    assert offset == p.stat().st_size


def test_a_cycle_within_the_limit_is_one_record():
    entries = [[0, "SET", b"k%d" % i, b"v"] for i in range(100)]
    assert af.encode_entries(entries) == af.encode_record(msgpack.packb(entries, use_bin_type=True))


def test_an_entry_alone_over_the_limit_is_a_bug(monkeypatch):
    monkeypatch.setattr(af, "MAX_RECORD_BYTES", 1000)
    with pytest.raises(ValueError, match="exceeds the record limit"):
        af.encode_entries([[0, "SET", b"k", b"v"], [0, "SET", b"k", bytes(1000)]])


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
    # records in chunks; the torn tail (at most one maximal record) in one last read
    assert sizes and all(0 <= n <= 4096 for n in sizes[:-1]) and sizes[-1] == 50_000
    assert len(sizes) > (p.stat().st_size - 50_000) // 4096


@pytest.mark.parametrize("usec, records, naps", [
    (100, [3, 1, 0], [300, 100]),       # usec per entry, after each record
    (-4, [3, 3, 3, 1, 6], [1, 1, 2]),   # 1 us every 4 entries: at the 4th, 8th, 12th and 16th
    (-1, [2], [2]),
])
def test_key_load_delay_sleeps_per_entry(monkeypatch, usec, records, naps):
    slept: list[float] = []
    monkeypatch.setattr(af.time, "sleep", slept.append)
    applied: list[int] = []
    apply = af.slowed(lambda entries: applied.append(len(entries)), usec)
    for n in records:
        apply([["0", "SET", b"k", b"v"]] * n)
    assert applied == records
    assert [round(s * 1e6) for s in slept] == naps
