"""INFO latencystats' histograms and the CONFIG values that shape them (node/log/latencystats.py)."""
from __future__ import annotations

import pytest

from aofnode.log.latencystats import LatencyStats, parse_percentiles, percentile_text


@pytest.mark.parametrize("p, text", [(50.0, "50"), (99.9, "99.9"), (0.0, "0"), (100.0, "100"),
                                     (12.5, "12.5")])
def test_percentile_text_is_redis_trimmed_f(p, text):
    assert percentile_text(p) == text


@pytest.mark.parametrize("raw, want", [(b"0.0 50.0 100.0", (0.0, 50.0, 100.0)), (b"", ()),
                                       (b" 99.9 ", (99.9,))])
def test_parse_percentiles(raw, want):
    assert parse_percentiles(raw) == want


@pytest.mark.parametrize("raw", [b"10.0 50.0 a", b"10.0 50.0 101.0", b"-1", b"nan"])
def test_bad_percentiles_are_refused(raw):
    with pytest.raises(ValueError):
        parse_percentiles(raw)


def test_percentiles_are_the_top_of_the_bucket_holding_that_rank():
    stats = LatencyStats()
    for ns in [1000] * 98 + [50_000, 2_000_000]:
        stats.record("SET", ns)
    fields = stats.section()["latency_percentiles_usec_set"]
    assert fields["p50"] == "1.007"  # 1000 ns sits in the 8 ns wide bucket 1000..1007
    assert float(fields["p99"]) == pytest.approx(50.0, rel=0.02)
    assert float(fields["p99.9"]) == pytest.approx(2000.0, rel=0.02)
    stats.percentiles = (0.0, 100.0)
    assert list(stats.section()["latency_percentiles_usec_set"]) == ["p0", "p100"]


def test_buckets_stay_bounded_whatever_the_times():
    stats = LatencyStats()
    for ns in range(1, 5_000_000, 37):
        stats.record("GET", ns)
    assert len(stats.histograms["GET"]) < 64 * 64
    stats.reset()
    assert stats.section() == {}


def test_the_fronts_histograms_are_added_by_lower_case_name():
    """The RESP front's histograms (node/runtime/latency.py) merge with the log actor's."""
    from aofnode.runtime import latency

    stats = LatencyStats()
    stats.record("SET", 1000)
    front_set: dict[int, int] = {}
    front_id: dict[int, int] = {}
    for _ in range(3):
        latency.record(front_set, 50_000)
    latency.record(front_id, 2000)
    section = stats.section({"set": front_set, "client|id": front_id, "never": {}})
    assert set(section) == {"latency_percentiles_usec_set", "latency_percentiles_usec_client|id"}
    assert float(section["latency_percentiles_usec_set"]["p50"]) == pytest.approx(50.0, rel=0.02)
    assert section["latency_percentiles_usec_set"]["p50"] != stats.section()["latency_percentiles_usec_set"]["p50"]
    assert stats.histograms == {"SET": {1000: 1}}  # the log actor's own are left as they were


def test_a_fronts_flat_histogram_keeps_only_pairs_of_counts():
    from aofnode.runtime import latency

    hist = {1000: 2, 1 << 20: 1}
    assert latency.unflatten(latency.flatten(hist)) == hist
    assert latency.unflatten([1, 2, "x", 3, -1, 5, 4, 0, 7]) == {1: 2}
    assert latency.unflatten({"a": 1}) == {}
