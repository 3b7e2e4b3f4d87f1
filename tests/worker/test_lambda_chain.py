"""Jobs longer than one invocation: the handler stops at a round boundary when its
context's time runs out and the job goes on in a fresh invocation, to the same model; the
trigger names dead invocations in one line within about one round timeout."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from exchange.stores.local import LocalStore
from worker.config import RunConfig
from worker.launchers import Launcher, LaunchReport
from worker.runner import WorkerSpec

N, ROUNDS = 2, 3


def _cfg(job: str, url: str) -> RunConfig:
    return RunConfig(job=job, store=url, workers=N, mode="mds", k=N, rounds=ROUNDS,
                     model="small_cnn", min_size=64, max_size=64, image_size=64,
                     synth_images=10, local_iters=1, batch_size=2, encrypt=False, grace=0.3,
                     round_timeout=120.0)


class RunsOutAfter:
    """A Lambda context whose time runs out once round ``rounds`` is checkpointed."""

    def __init__(self, store: LocalStore, job: str, rounds: int):
        from worker.trigger import checkpoint_key

        self.store, self.key = store, checkpoint_key(job, rounds)
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kofn-worker"

    def get_remaining_time_in_millis(self) -> int:
        return 1_000 if self.store.exists(self.key) else 900_000


class Plenty:
    """A context with all the time in the world."""

    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:kofn-worker"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _run_all(store: LocalStore, cfg: RunConfig, first_context) -> dict[int, list[dict]]:
    """Every worker through the handler; continuations run as fresh 'invocations' (threads)."""
    from worker.lambda_handler import handler

    results: dict[int, list[dict]] = {i: [] for i in range(N)}
    threads: list[threading.Thread] = []
    lock = threading.Lock()

    def invoke(event, _context) -> None:  # Lambda's async invoke: no service here
        t = threading.Thread(target=go, args=(event, Plenty()))
        with lock:
            threads.append(t)
        t.start()

    def go(event, context) -> None:
        results[event["worker"]].append(handler(event, context, invoke=invoke))

    for i in range(N):
        event = WorkerSpec(store=cfg.store, job=cfg.job, worker=i, attempt=None,
                           encrypt=False).to_event()
        t = threading.Thread(target=go, args=(event, first_context(i) if first_context
                                              else Plenty()))
        with lock:
            threads.append(t)
        t.start()
    while True:
        with lock:
            alive = [t for t in threads if t.is_alive()]
        if not alive:
            break
        alive[0].join(timeout=600)
    return results


@pytest.mark.slow
def test_a_job_outlives_its_invocations_with_the_same_model(tmp_path):
    pytest.importorskip("worker.local_train")
    import torch

    from worker.trigger import checkpoint_key, decode_state, trigger

    torch.set_num_threads(1)
    store = LocalStore(tmp_path)
    url = f"file://{tmp_path}"
    chained, whole = _cfg("chained", url), _cfg("whole", url)
    trigger(chained, store)
    trigger(whole, store)

    ref = _run_all(store, whole, None)
    assert all(out == [{"worker": i, "rounds": [1, 2, 3], "status": "done"}]
               for i, out in ref.items()), ref

    got = _run_all(store, chained, lambda _i: RunsOutAfter(store, "chained", 2))
    for i, outs in got.items():
        assert outs[0] == {"worker": i, "rounds": [1, 2], "status": "continued", "next_round": 3}
        assert outs[1] == {"worker": i, "rounds": [3], "status": "done"}
    sessions = [store.get(k) for k in store.list("chained/sessions/worker-0000/")]
    assert [b'"continued"' in s for s in sessions] == [True, False]

    a = decode_state(store.get(checkpoint_key("chained", ROUNDS)))
    b = decode_state(store.get(checkpoint_key("whole", ROUNDS)))
    start = decode_state(store.get(checkpoint_key("chained", 0)))
    assert a.keys() == b.keys()
    assert any(not np.array_equal(a[k], start[k]) for k in a)  # it trained
    for k in a:  # same seeds, same contributors: the same model, up to decode rounding
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


class _Silent(Launcher):
    """Invocations that were accepted and then died: nothing ever reaches the store."""

    def __init__(self):
        self._report = LaunchReport()

    def start(self, specs) -> None:
        self._report.exits = {s.worker: [] for s in specs}

    def poll(self) -> bool:
        return False  # asynchronous invocations: exits are never seen

    @property
    def report(self) -> LaunchReport:
        return self._report


def test_the_trigger_names_dead_invocations_in_one_line(tmp_path, monkeypatch):
    import json

    from coding.errors import KofnError
    from worker.commands import train
    from worker.runner import exchange_for, session_prefix

    monkeypatch.setattr(train, "_COLD_START_S", 0.0)
    cfg = _cfg("dead", f"file://{tmp_path}").with_overrides(round_timeout=1.0, grace=0.2,
                                                            launcher="lambda")
    store = LocalStore(tmp_path)
    # worker 1 timed out in an earlier invocation; worker 0's never started
    store.put(f"{session_prefix('dead', 1)}attempt-000.json",
              json.dumps({"worker": 1, "outcome": "timeout"}).encode())
    launcher = _Silent()
    launcher.start([WorkerSpec(store=cfg.store, job="dead", worker=i) for i in range(N)])
    exchange = exchange_for(cfg, store)
    try:
        with pytest.raises(KofnError) as err:
            train._follow(cfg, store, exchange, launcher, 0, N, lambda _m: None, 0.05)
    finally:
        exchange.close()
    msg = str(err.value)
    assert "\n" not in msg
    assert "round 1 made no progress for 1 s" in msg
    assert "worker(s) 0 never reported" in msg and "worker(s) 1 ended 'timeout'" in msg
    assert "function's logs" in msg
