"""bench/hist.py and the pure parts of the load generator, on synthetic timings with known answers."""
from __future__ import annotations

import random

import pytest

from aofnode.bench import hist, report, resp
from aofnode.bench.workload import LoadShape, OpGenerator, parse_ratio

REL = 1e-3  # three significant digits: a value is reported within 0.1%


def test_closed_loop_stall_corrected_synthesizes_the_missing_samples():
    """9000 replies of 1 ms, then one 1 s stall, with a 1 ms expected interval.

    The correction records 1 s, 999 ms, ..., 1 ms: 1000 samples for the stall, the ones a client
    sending every 1 ms would have waited. So 10 000 samples; p50 stays 1 ms, but p99 (rank 9900)
    is the 899th synthesized value above the 9001 at 1 ms: 900 ms.
    """
    h = hist.new_histogram()
    hist.record_latency(h, 1000, count=9000, expected_interval_us=1000)
    hist.record_latency(h, 1_000_000, expected_interval_us=1000)
    assert h.get_total_count() == 10_000
    s = hist.summary_ms(h)
    assert s["p50"] == pytest.approx(1.0, rel=REL)
    assert s["p99"] == pytest.approx(900.0, rel=REL)
    assert s["p999"] == pytest.approx(990.0, rel=REL)
    assert s["max"] == pytest.approx(1000.0, rel=REL)


def test_closed_loop_stall_uncorrected_hides_it():
    h = hist.new_histogram()
    hist.record_latency(h, 1000, count=9000)
    hist.record_latency(h, 1_000_000)
    assert h.get_total_count() == 9001
    s = hist.summary_ms(h)
    assert s["p99"] == pytest.approx(1.0, rel=REL)
    assert s["p999"] == pytest.approx(1.0, rel=REL)
    assert s["max"] == pytest.approx(1000.0, rel=REL)


def _simulate_open_loop(stall_at: float, stall_s: float, n: int, interval: float,
                        service: float) -> list[tuple[float, float, float]]:
    """One client, one request in flight, a schedule of one request per ``interval``.

    Returns (intended, sent, done) per request; the request sent at ``stall_at`` takes
    ``stall_s`` instead of ``service``.
    """
    out = []
    free_at = 0.0
    for i in range(n):
        intended = i * interval
        sent = max(intended, free_at)
        took = stall_s if intended == stall_at else service
        done = sent + took
        free_at = done
        out.append((intended, sent, done))
    return out


def test_open_loop_latency_counts_from_the_intended_send_time():
    assert hist.latency_us(done=1.201, sent=1.2, intended=1.0) == pytest.approx(201_000, abs=1)
    assert hist.latency_us(done=1.201, sent=1.2) == pytest.approx(1000, abs=1)

    # 2000 requests at 1 ms intervals, 0.1 ms service; the one at 0.5 s takes 1 s. The requests
    # intended during the stall are sent late, back to back: the j-th after the stall is sent at
    # 1.5 s + (j-1) * 0.1 ms and its latency from the intended time 0.5 s + j ms is
    # 1 s - j * 0.9 ms. That is >= 500 ms for j <= 555: 555 of them, plus the stalled one.
    timings = _simulate_open_loop(stall_at=0.5, stall_s=1.0, n=2000, interval=0.001,
                                  service=0.0001)
    open_h, closed_h = hist.new_histogram(), hist.new_histogram()
    for intended, sent, done in timings:
        hist.record_latency(open_h, hist.latency_us(done, sent, intended))
        hist.record_latency(closed_h, hist.latency_us(done, sent))
    assert open_h.get_total_count() == closed_h.get_total_count() == 2000
    over_500ms = sum(1 for i, s, d in timings if hist.latency_us(d, s, i) >= 500_000)
    assert over_500ms == 556
    latencies = sorted(hist.latency_us(d, s, i) for i, s, d in timings)
    # Rank 1980 of 2000 is the 21st largest, j = 20: 1 s - 20 * 0.9 ms.
    p99_exact = latencies[round(0.99 * len(latencies)) - 1] / 1000
    assert p99_exact == pytest.approx(982.0, abs=0.01)
    assert hist.summary_ms(open_h)["max"] == pytest.approx(1000.0, rel=2e-3)
    # Half of the requests are in the stall's shadow: the median is well above the service time.
    assert hist.summary_ms(open_h)["p50"] > 1.0
    assert hist.summary_ms(open_h)["p99"] == pytest.approx(p99_exact, rel=REL)
    # Measured from the actual send, only the one stalled request shows it.
    assert hist.summary_ms(closed_h)["p99"] < 1.0
    assert hist.summary_ms(closed_h)["max"] == pytest.approx(1000.0, rel=REL)


def test_merging_encoded_histograms_equals_one_histogram_of_all_values():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(7, 1.5)) + 1 for _ in range(20_000)]
    values.append(hist.HIGHEST_US + 5)  # clamped, still counted
    one, w1, w2 = hist.new_histogram(), hist.new_histogram(), hist.new_histogram()
    for i, v in enumerate(values):
        hist.record_latency(one, v)
        hist.record_latency(w1 if i % 2 else w2, v)
    merged = hist.merge_encoded([w1.encode(), w2.encode(), hist.new_histogram().encode()])
    assert merged.get_total_count() == one.get_total_count() == len(values)
    for p in (0, 10, 50, 90, 99, 99.9, 99.99, 100):
        assert merged.get_value_at_percentile(p) == one.get_value_at_percentile(p)
    assert merged.get_max_value() == one.get_max_value()
    assert merged.get_min_value() == one.get_min_value()
    assert all(merged.get_count_at_index(i) == one.get_count_at_index(i)
               for i in range(one.counts_len))


def test_summary_of_an_empty_histogram_is_none():
    assert hist.summary_ms(hist.new_histogram()) == {"p50": None, "p99": None, "p999": None,
                                                     "max": None}


@pytest.mark.parametrize("text, expected", [("1:0", (1, 0)), ("1:9", (1, 9)), ("0:1", (0, 1))])
def test_parse_ratio(text, expected):
    assert parse_ratio(text) == expected


@pytest.mark.parametrize("text", ["1", "a:b", "0:0", "-1:2", "1:2:3"])
def test_parse_ratio_rejects(text):
    with pytest.raises(ValueError):
        parse_ratio(text)


def test_op_generator_mix_and_keys():
    shape = LoadShape(keyspace=50, writes=1, reads=3, value_size=17)
    gen = OpGenerator(shape, seed=3)
    ops = [op for _ in range(100) for op in gen.batch(40)]
    sets = [op for op in ops if op[0] == "SET"]
    assert 0.2 < len(sets) / len(ops) < 0.3
    assert all(len(op[2]) == 17 for op in sets)
    assert {int(op[1].split(b":")[1]) for op in ops} <= set(range(50))
    assert all(op[0] == "SET" for op in OpGenerator(LoadShape(writes=1, reads=0)).batch(50))


def test_open_loop_schedule():
    shape = LoadShape(clients=4, pipeline=2, rate=1000)
    assert shape.batch_interval_s() == pytest.approx(0.008)  # 4 clients * 2 / 1000 per s
    assert shape.client_phase_s(2) == pytest.approx(0.004)
    assert LoadShape(rate=None).batch_interval_s() is None


def test_resp_parser_incremental():
    wire = b"+OK\r\n$3\r\nabc\r\n$-1\r\n:42\r\n-WRONGTYPE Operation against a key\r\n*2\r\n$1\r\nx\r\n:1\r\n"
    parser = resp.ReplyParser()
    got = []
    for i in range(len(wire)):  # byte by byte: every split point
        parser.feed(wire[i:i + 1])
        got.extend(parser.replies())
    assert got == ["OK", b"abc", None, 42,
                   resp.RespError("WRONGTYPE", "WRONGTYPE Operation against a key"), [b"x", 1]]
    assert resp.encode_command("SET", b"k", 5) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n"
    assert resp.parse_info(b"# Persistence\r\naof_rewrite_in_progress:1\r\n")[
        "aof_rewrite_in_progress"] == "1"


def test_report_ratio():
    a = {"throughput": 50.0, "latency_ms": {"p50": 2.0, "p99": 4.0, "p999": None, "max": 8.0}}
    r = {"throughput": 100.0, "latency_ms": {"p50": 1.0, "p99": 1.0, "p999": 1.0, "max": 0.0}}
    assert report.ratio(a, r) == {"throughput": 0.5, "latency_p50": 2.0, "latency_p99": 4.0,
                                  "latency_p999": None, "latency_max": None}
