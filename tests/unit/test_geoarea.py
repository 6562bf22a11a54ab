"""node/store/geoarea.py and the helpers of node/store/geo.py it relies on: the table decoding
against the bit-by-bit one, the cast of odd scores, the distances' rounding, the partial sort's
guarantee, and the cells a search reads. (The searches' replies are compared with redis-server
byte for byte in tests/integration/test_geosearch.py.)"""
from __future__ import annotations

import random

import pytest

from aofnode.store.geo import distance_text, geo_decode, geo_encode, score_bits
from aofnode.store.geoarea import Shape, _position, order, search_boxes


def test_the_table_decodes_every_score_as_the_bit_by_bit_decoding():
    rng = random.Random(7)
    scores = [float(rng.randrange(1 << 52)) for _ in range(20_000)]
    scores += [0.0, 1.5, float((1 << 52) - 1), float(1 << 52), float((1 << 53) - 2)]
    for score in scores:
        assert _position(score) == geo_decode(score), score


@pytest.mark.parametrize("score,bits", [
    (float("inf"), 0), (1e300, 0), (float(1 << 64), 0), (-5.0, (1 << 64) - 5),
    (float("-inf"), 1 << 63), (-1e300, 1 << 63), (float(1 << 63), 1 << 63),
    (float((1 << 63) + 2048), (1 << 63) + 2048), (1.9, 1), (-0.5, 0),
])
def test_scores_read_as_the_x86_64_cast_to_uint64(score, bits):
    assert score_bits(score) == bits


@pytest.mark.parametrize("d,text", [
    (0.0, b"0.0000"), (-0.0, b"0.0000"), (1e-9, b"0.0000"), (0.00005, b"0.0000"),
    (0.00015, b"0.0001"), (0.00025, b"0.0002"), (0.5, b"0.5000"), (56.44125787015820, b"56.4413"),
    (12345.67894, b"12345.6789"), (20015086.796, b"20015086.7960"),
])
def test_distances_round_as_llrint_of_ten_thousand_times(d, text):
    assert distance_text(d) == text


@pytest.mark.parametrize("n,count", [(5, 2), (30, 3), (41, 10), (300, 1), (300, 45), (1000, 299)])
def test_the_partial_sort_puts_the_nearest_first_and_keeps_every_point(n, count):
    rng = random.Random(n * count)
    points = [(float(rng.randrange(20)), 0.0, b"m%d" % i, 0.0, 0.0) for i in range(n)]
    for desc in (False, True):
        got = list(points)
        order(got, desc, count)
        assert sorted(got) == sorted(points)
        want = sorted((p[0] for p in points), reverse=desc)[:count]
        assert [p[0] for p in got[:count]] == want


def test_a_small_radius_reads_the_centres_cell_and_neighbours_only():
    lon, lat = 13.361389, 38.115556
    boxes = search_boxes(Shape(lon, lat, 1000.0, radius=10.0))
    centre = boxes[0]
    assert centre is not None and len(boxes) == 9
    bits, step = centre
    assert 10 <= step <= 26
    assert geo_encode(lon, lat) >> (52 - 2 * step) == bits  # the centre's own cell
    kept = [b for b in boxes if b is not None]
    assert len(set(kept)) == len(kept) and all(b[1] == step for b in kept)


@pytest.mark.parametrize("box", [False, True])
def test_the_written_out_loops_agree_with_the_shapes_reference_test(box):
    """``candidates`` inlines the decoding and ``Shape.distance`` for speed: on random shapes,
    its points are exactly the members the plain functions put inside, with the same bits."""
    from aofnode.store.geoarea import candidates
    from aofnode.store.zsetcore import z_from_scores

    rng = random.Random(11 + box)
    z = z_from_scores({b"m%d" % i: float(geo_encode(rng.uniform(-180, 180), rng.uniform(-85, 85)))
                       for i in range(3000)})
    for _ in range(40):
        lon, lat = rng.uniform(-180, 180), rng.uniform(-85, 85)
        size = 10 ** rng.uniform(4, 7.3)
        shape = (Shape(lon, lat, 1.0, width=size, height=10 ** rng.uniform(4, 7.3), box=True) if box
                 else Shape(lon, lat, 1.0, radius=size))
        got = candidates(z, shape, 0)
        want = []
        for member, score in z[0].items():
            plon, plat = geo_decode(score)
            d = shape.distance(plon, plat)
            if d is not None:
                want.append((d, score, member, plon, plat))
        assert sorted(got) == sorted(want)
