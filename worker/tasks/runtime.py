"""The training runtime of a user's task: rounds over :class:`exchange.session.AllReduce`.

Each round a worker starts from the shared model, takes ``local_iters`` SGD steps on each
partition its code gives it (:meth:`~exchange.codes.base.Code.partitions`, seeded by
``(seed, round, partition)`` so a partition trains alike on every worker that holds it),
publishes the combination of the partition updates that its code asks for
(:meth:`~exchange.codes.base.Code.coefficients`), and adds what the session returns: the
round's mean update, or after a catch-up the sum of the means it missed. The session owns
the aggregation duty and the catch-up; the straggler and crash rules of the run config
apply as in :mod:`worker.runner`, and the same per-round records and final checkpoint go
to the store, so ``kofn train`` follows and reports a task job like any other.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from coding.errors import KofnError
from exchange.session import AllReduce
from exchange.stores.counting import CountingStore
from worker.tasks.base import load_task, resolve_device

__all__ = ["run_task_worker"]

log = logging.getLogger(__name__)


def _local_update(task: Any, model: Any, opt: Any, data: Any, steps: int, seed: int) -> float:
    """``steps`` SGD steps on one partition's batches; the mean loss."""
    losses = []
    batches = iter(task.batches(data, seed=seed))
    for _ in range(steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(task.batches(data, seed=seed + 1))
            batch = next(batches)
        opt.zero_grad()
        loss = task.loss(model, batch)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def run_task_worker(spec: Any, store: CountingStore, manifest: Any, attempt: int, *,
                    owner: Any = None) -> list[dict[str, Any]]:
    """Run worker ``spec.worker`` of a task job to its end; return this session's records.

    ``owner`` (a :class:`worker.owner.Ownership`) is checked before every round.
    """
    import torch

    from worker.bridge import add_, from_numpy, to_numpy
    from worker.faults import WorkerCrash, crashes, straggle_delay
    from worker.runner import _Round
    from worker.trigger import checkpoint_key, encode_state, stats_key

    cfg, w = manifest.config, spec.worker
    torch.set_num_threads(spec.threads)
    code = cfg.code_spec()
    task = load_task(cfg.task)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)  # every worker builds the same initial model
    model = task.build_model().to(device)
    parts, coefs = code.partitions(w), code.coefficients(w)
    data = {p: task.partition(p, cfg.workers) for p in parts}
    records: list[dict[str, Any]] = []
    session = AllReduce(store, code, worker=w, job="exchange", prefix=cfg.job, quorum=cfg.quorum,
                        deadline_s=cfg.round_timeout, takeover_after_s=cfg.grace, threads=4,
                        poll_min_s=0.01, poll_max_s=0.2, first_round=1)
    with session:
        while session.round <= cfg.rounds:
            r, t0 = session.round, time.perf_counter()
            if owner is not None:
                owner.check(r)
            before = to_numpy(model)
            update: dict[str, np.ndarray] = {}
            losses = []
            for p, c in zip(parts, coefs, strict=True):
                # a fresh optimizer and seed per (round, partition): a partition's update is
                # the same on every worker that holds it, as gradient codes need
                model.load_state_dict(from_numpy(before, like=model))
                opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                      weight_decay=cfg.weight_decay)
                seed = int(np.random.SeedSequence([cfg.seed, r, p]).generate_state(1)[0])
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    losses.append(_local_update(task, model, opt, data[p], cfg.local_iters, seed))
                for k, v in to_numpy(model).items():
                    d = v - before[k] if c == 1.0 and len(parts) == 1 else c * (v.astype(np.float64) - before[k])
                    update[k] = d if k not in update else update[k] + d
            delay = straggle_delay(cfg, w, r)
            time.sleep(delay)
            compute_s = time.perf_counter() - t0
            if crashes(cfg, w, r, attempt):
                raise WorkerCrash(f"worker {w} crashed (injected) in round {r}, attempt {attempt}")
            model.load_state_dict(from_numpy(before, like=model))
            before_stats = store.stats.snapshot()
            res = session.step(update)
            add_(model, res.tensors)
            used = store.stats - before_stats
            st = res.stats
            for q in res.rounds:  # one record per round this call covered
                rec = _Round(worker=w, round=q, attempt=attempt, loss=float(np.mean(losses)),
                             compute_s=compute_s, delay_s=delay, upload_s=st.upload_s, wait_s=st.wait_s,
                             download_s=st.download_s, decode_s=st.encode_s + st.reduce_s + st.decode_s,
                             wall_s=time.perf_counter() - t0, contributors=list(res.contributors),
                             aggregators=list(res.aggregators),
                             takeovers=st.takeovers, puts=used.puts + 1, gets=used.gets, lists=used.lists,
                             bytes_up=used.bytes_up, bytes_down=used.bytes_down)
                store.put(stats_key(cfg.job, q, w), json.dumps(asdict(rec)).encode())
                records.append(asdict(rec))
            if res.caught_up:
                log.info("worker %d caught up over rounds %s", w, res.rounds)
    final = checkpoint_key(cfg.job, cfg.rounds)
    try:
        store.put(final, encode_state(to_numpy(model)), if_absent=True)
    except FileExistsError:
        pass
    if not records:
        raise KofnError(f"Worker {w} ran no round of job {cfg.job!r}.")
    return records
