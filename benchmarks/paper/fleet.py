"""A fleet of N data-parallel workers, each measured alone, exchanging through a real store.

The paper's workers are Lambda functions, each with its own CPUs. Running N of them at
once on this 2-core machine would measure the machine's contention rather than the
fleet, so a fleet here runs its workers **one after another in this process**, timing
each one alone, and exchanges their updates through the real plain-mode
:class:`exchange.round.Exchange` on a :class:`~exchange.stores.local.LocalStore` wrapped in
a :class:`~exchange.stores.counting.CountingStore` (every worker publishes, every worker
aggregates its shard, every worker collects). A round is one epoch: each worker makes one
pass over its partition (``ceil(len / batch)`` SGD steps from the global model), then the
fleet averages the deltas. The times the figures use:

* **round time**: the slowest worker's training time plus the slowest worker's exchange
  time (publish + aggregate + collect), both measured;
* **start-up**: the slowest worker's model build (Lambda cold starts and reading the
  partition from S3 are not measured here);
* **training time**: the sum of the round times; **evaluation**: COCO AP on the held-out
  split; **total**: start-up + training + evaluation.

Each worker's **peak memory** is the process's peak resident set while that worker
trained (``VmHWM`` after resetting it through ``/proc/self/clear_refs``): torch, the model,
the optimiser and the activations, plus what this process holds besides (the other
partitions, the global model), so it errs high.
"""

from __future__ import annotations

import math
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import progress
from benchmarks.paper.settings import PaperSettings

__all__ = ["FleetRun", "load_dataset", "peak_mb", "run_fleet"]


def load_dataset(st: PaperSettings) -> tuple[list[Any], list[Any]]:
    """The training and held-out samples: ``st.data``, or synthetic PennFudan-style images."""
    from worker.data import PennFudanDataset, Sample, synth_sample, train_holdout_split
    from worker.data.pennfudan import boxes_from_masks, masks_from_ids

    if st.data is not None:
        samples = PennFudanDataset(st.data).samples()
    else:
        samples = []
        for i in range(st.images):
            image, ids = synth_sample(np.random.default_rng([st.seed, i]), st.image_size, st.image_size)
            masks = masks_from_ids(ids)
            boxes, keep = boxes_from_masks(masks)
            samples.append(Sample(image=image, masks=masks[keep], boxes=boxes,
                                  labels=np.ones(len(boxes), dtype=np.int64), image_id=i))
    train, hold = train_holdout_split(len(samples), st.holdout, st.seed)
    return [samples[i] for i in train], [samples[i] for i in hold]


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_mb() -> float:
    """The process's peak resident set (MB) since the last reset; nan where unknown."""
    try:
        with open("/proc/self/status") as fh:
            match = re.search(r"VmHWM:\s+(\d+)\s+kB", fh.read())
    except OSError:
        return float("nan")
    return int(match.group(1)) / 1024 if match else float("nan")


@dataclass
class FleetRun:
    """What one fleet (or the one machine, ``workers == 1``) measured."""

    label: str
    model: str
    workers: int
    batch_size: int
    pretrained: bool
    epoch_loss: list[float] = field(default_factory=list)
    round_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    ap: float = float("nan")
    ap50: float = float("nan")
    startup_s: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    puts: int = 0
    gets: int = 0
    lists: int = 0
    bytes_up: int = 0

    @property
    def total_s(self) -> float:
        """Start-up + training + evaluation."""
        return self.startup_s + self.train_s + self.eval_s

    @property
    def worker_seconds(self) -> float:
        """What Lambda bills: every worker lives from its start-up to the last round."""
        return self.workers * (self.startup_s + self.train_s)


def _trainer(st: PaperSettings, model: str, steps: int, batch: int, weights: Path | None) -> Any:
    from worker.local_train import LocalTrainer

    return LocalTrainer(model, lr=st.lr, momentum=st.momentum, weight_decay=st.weight_decay,
                        local_iters=steps, batch_size=batch, seed=st.seed, min_size=st.min_size,
                        max_size=st.max_size, weights_path=weights)


def run_fleet(st: PaperSettings, model: str, workers: int, train: list[Any], holdout: list[Any],
              *, batch_size: int, weights: Path | None = None, root: Path,
              label: str = "") -> FleetRun:
    """Train ``model`` for ``st.epochs`` epochs on ``workers`` partitions of ``train``.

    ``workers == 1`` is the one machine: the whole training set, no exchange.
    """
    import torch

    from exchange import CodeSpec, CountingStore, Exchange, LocalStore, RoundConfig, unflatten
    from worker.data import split_indices

    torch.set_num_threads(1)
    label = label or f"{model} n={workers} b={batch_size}"
    out = FleetRun(label=label, model=model, workers=workers, batch_size=batch_size,
                   pretrained=weights is not None)
    parts = [[train[i] for i in idx] for idx in split_indices(len(train), workers, st.seed)]
    trainers: dict[int, Any] = {}
    starts = []
    for part in parts:  # one build per distinct epoch length; each timed as a worker's start
        steps = math.ceil(len(part) / batch_size)
        t0 = time.perf_counter()
        if steps not in trainers:
            trainers[steps] = _trainer(st, model, steps, batch_size, weights)
        starts.append(time.perf_counter() - t0)
    out.startup_s = max(starts)
    state = next(iter(trainers.values())).initial_weights()
    store = CountingStore(LocalStore(tempfile.mkdtemp(prefix="fleet-", dir=root)))
    exchange = None
    if workers > 1:
        exchange = Exchange(store, RoundConfig(job="paper", code=CodeSpec("plain", workers),
                                               poll_min_s=0.001, poll_max_s=0.01))
    peaks = [0.0] * workers
    try:
        for epoch in range(1, st.epochs + 1):
            losses, compute, comm = [], [], [0.0] * workers
            for w, part in enumerate(parts):
                reset = _reset_peak()
                t0 = time.perf_counter()
                res = trainers[math.ceil(len(part) / batch_size)].train(
                    state, part, round_index=epoch, partition=w)
                compute.append(time.perf_counter() - t0)
                peaks[w] = max(peaks[w], peak_mb() if reset else float("nan"))
                losses.append(res.mean_loss)
                if exchange is None:
                    delta = res.delta
                else:
                    t0 = time.perf_counter()
                    exchange.publish(epoch, w, res.delta)
                    comm[w] += time.perf_counter() - t0
            if exchange is not None:
                for j in range(workers):
                    t0 = time.perf_counter()
                    exchange.aggregate(epoch, j)
                    comm[j] += time.perf_counter() - t0
                for w in range(workers):  # every worker collects the average itself
                    t0 = time.perf_counter()
                    result = exchange.collect(epoch)
                    comm[w] += time.perf_counter() - t0
                delta = unflatten(result.mean, result.layout)
            state = {k: (v.astype(np.float64) + delta[k]).astype(v.dtype) for k, v in state.items()}
            out.epoch_loss.append(float(np.mean(losses)))
            out.round_s.append(max(compute) + max(comm))
            progress(f"{label}: epoch {epoch}/{st.epochs}  loss {out.epoch_loss[-1]:.4f}  "
                     f"round {out.round_s[-1]:.2f} s  peak {max(peaks):.0f} MB")
    finally:
        if exchange is not None:
            exchange.close()
    out.peak_mb = peaks
    out.train_s = float(sum(out.round_s))
    s = store.stats
    out.puts, out.gets, out.lists, out.bytes_up = s.puts, s.gets, s.lists, s.bytes_up
    t0 = time.perf_counter()
    out.ap, out.ap50 = _ap(st, model, state, holdout)
    out.eval_s = time.perf_counter() - t0
    return out


def _ap(st: PaperSettings, model: str, state: dict[str, np.ndarray], holdout: list[Any]
        ) -> tuple[float, float]:
    from worker.evaluate import evaluate
    from worker.models import build_model, load_numpy_state

    net = build_model(model, min_size=st.min_size, max_size=st.max_size)
    load_numpy_state(net, state)
    res = evaluate(net, holdout, with_loss=False)
    return float(res.bbox_ap), float(res.bbox_ap50)
