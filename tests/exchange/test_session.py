"""The all-reduce session: means, any code, and a late worker that catches up instead of
timing out."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from exchange import LocalStore, make_code
from exchange.session import AllReduce

N, L = 4, 50


def _updates(r: int, w: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([r, w])
    return {"a": rng.normal(size=(5, 6)).astype(np.float32), "b": rng.normal(size=L - 30)}


def _run(store, code, rounds, *, slow=None, delay=0.0, quorum=None, deadline_s=30.0):
    """Every worker adds what each call returns to its model; returns models and results."""
    models, results, errors = {}, {}, {}

    def worker(w: int) -> None:
        try:
            with AllReduce(store, code, worker=w, job="ar", quorum=quorum, deadline_s=deadline_s) as s:
                model = {"a": np.zeros((5, 6)), "b": np.zeros(L - 30)}
                got = []
                while s.round < rounds:
                    if w == slow:
                        time.sleep(delay)
                    res = s.step(_updates(s.round, w))
                    for k, v in res.tensors.items():
                        model[k] = model[k] + v
                    got.append(res)
                models[w], results[w] = model, got
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors[w] = err

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(code.n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return models, results, errors


@pytest.mark.parametrize("mode, kw", [("plain", {}), ("mds", {"k": 3}), ("secure", {"k": 2, "t": 1})])
def test_allreduce_returns_the_mean_every_round(tmp_path, mode, kw):
    code = make_code(mode, N, **kw)
    models, results, errors = _run(LocalStore(tmp_path), code, 3)
    assert not errors
    want = {k: sum(_updates(r, w)[k].astype(np.float64) for r in range(3) for w in range(N)) / N
            for k in ("a", "b")}
    for w in range(N):
        assert [res.rounds for res in results[w]] == [(0,), (1,), (2,)]
        for k in want:
            np.testing.assert_allclose(models[w][k], want[k], rtol=1e-6, atol=1e-6)


def test_a_late_worker_catches_up_instead_of_timing_out(tmp_path):
    # quorum n-1: the fast workers close each round without the slow one, which falls
    # further behind every round; with a 3 s deadline it would time out without catch-up
    code = make_code("mds", N, k=3)
    models, results, errors = _run(LocalStore(tmp_path), code, 6, slow=1, delay=0.4, quorum=N - 1,
                                   deadline_s=3.0)
    assert not errors
    assert any(res.caught_up for res in results[1])
    covered = [r for res in results[1] for r in res.rounds]
    assert covered == list(range(6))  # every round, once
    for w in range(N):  # every model is initial + the sum of every round's mean
        for k in ("a", "b"):
            np.testing.assert_allclose(models[w][k], models[0][k], rtol=1e-9, atol=1e-9)


def test_a_late_starter_catches_up_on_its_first_call(tmp_path):
    store = LocalStore(tmp_path)
    code = make_code("plain", 2)
    box = {}

    def fast() -> None:
        with AllReduce(store, code, worker=0, job="late", quorum=1) as s:
            box[0] = [s.allreduce({"x": np.full(3, float(r + 1))})["x"][0] for r in range(4)]

    t = threading.Thread(target=fast)
    t.start()
    t.join()
    with AllReduce(store, code, worker=1, job="late", quorum=1) as s:
        res = s.step({"x": np.zeros(3)})
    assert res.caught_up and res.rounds == (0, 1, 2, 3) and s.round == 4
    np.testing.assert_allclose(res.tensors["x"], np.full(3, sum(box[0])))
