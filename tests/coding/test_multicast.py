"""Coded multicast for data shuffling: the two-worker example and random round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coding.multicast import coded_multicast


def test_two_worker_example_halves_the_load():
    # Worker 1 caches B and wants A; worker 2 caches A and wants B: one XOR serves both.
    rng = np.random.default_rng(0)
    blocks = {"A": rng.standard_normal((4, 3)), "B": rng.standard_normal((4, 3))}
    plan = coded_multicast({1: {"A"}, 2: {"B"}}, {1: {"B"}, 2: {"A"}})
    assert plan.uncoded_load == 2
    assert plan.load == 1
    assert plan.load * 2 == plan.uncoded_load
    assert plan.transmissions[0].blocks == ("A", "B")
    payloads = plan.encode(blocks)
    expected = (blocks["A"].view(np.uint8) ^ blocks["B"].view(np.uint8)).view(np.float64)
    np.testing.assert_array_equal(payloads[0].view(np.uint8), expected.view(np.uint8))
    got1 = plan.decode(1, payloads, {"B": blocks["B"]})
    got2 = plan.decode(2, payloads, {"A": blocks["A"]})
    np.testing.assert_array_equal(got1["A"], blocks["A"])
    np.testing.assert_array_equal(got2["B"], blocks["B"])
    assert set(got1) == {"A"} and set(got2) == {"B"}


def test_nothing_to_send_when_demands_are_cached():
    plan = coded_multicast({0: {1, 2}}, {0: {1, 2, 3}})
    assert plan.load == plan.uncoded_load == 0 and plan.encode({}) == []


def test_same_block_to_many_workers_is_sent_once():
    plan = coded_multicast({0: {"x"}, 1: {"x"}, 2: {"x"}}, {})
    assert (plan.load, plan.uncoded_load) == (1, 3)


def test_ring_of_pairs_is_optimal():
    # Worker i caches block i and wants block i^1: pairs exchange with one XOR each.
    demands = {i: {i ^ 1} for i in range(8)}
    side = {i: {i} for i in range(8)}
    plan = coded_multicast(demands, side)
    assert (plan.load, plan.uncoded_load) == (4, 8)


@settings(max_examples=60, deadline=None)
@given(
    workers=st.integers(1, 6),
    n_blocks=st.integers(1, 8),
    p_cache=st.floats(0.0, 1.0),
    p_want=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_instances_round_trip(workers, n_blocks, p_cache, p_want, seed):
    rng = np.random.default_rng(seed)
    dtype = rng.choice([np.uint8, np.int64, np.float32])
    blocks = {b: rng.integers(0, 100, (3, 2)).astype(dtype) for b in range(n_blocks)}
    side = {w: set(np.flatnonzero(rng.random(n_blocks) < p_cache).tolist()) for w in range(workers)}
    demands = {w: set(np.flatnonzero(rng.random(n_blocks) < p_want).tolist()) for w in range(workers)}
    plan = coded_multicast(demands, side)
    assert plan.load <= plan.uncoded_load
    assert plan.uncoded_load == sum(len(demands[w] - side[w]) for w in range(workers))
    payloads = plan.encode(blocks)
    for w in range(workers):
        got = plan.decode(w, payloads, {b: blocks[b] for b in side[w]})
        assert set(got) == demands[w] - side[w]
        for b, value in got.items():
            assert value.dtype == blocks[b].dtype
            np.testing.assert_array_equal(value, blocks[b])


def test_errors():
    with pytest.raises(TypeError, match="Argument 'demands' must be a mapping"):
        coded_multicast([("w", "A")], {})
    with pytest.raises(TypeError, match="Argument 'side_info' must be a mapping"):
        coded_multicast({}, None)
    plan = coded_multicast({1: {"A"}, 2: {"B"}}, {1: {"B"}, 2: {"A"}})
    with pytest.raises(KeyError, match="missing from 'blocks'"):
        plan.encode({"A": np.zeros(3)})
    with pytest.raises(ValueError, match="blocks XORed together must match"):
        plan.encode({"A": np.zeros(3), "B": np.zeros(4)})
    payloads = plan.encode({"A": np.zeros(3), "B": np.ones(3)})
    with pytest.raises(KeyError, match="needs cached block 'B'"):
        plan.decode(1, payloads, {})
    with pytest.raises(ValueError, match=r"one entry per transmission \(1\), not 0"):
        plan.decode(1, [], {"B": np.ones(3)})
