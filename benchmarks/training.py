"""Training benchmark: coded rounds against plain under shifted-exponential stragglers.

    python -m benchmarks.training                 # small_cnn, N=5, 8 rounds, every mode
    python -m benchmarks.training --quick         # 4 rounds, fewer images (about 3 minutes)
    python -m benchmarks.training --model fasterrcnn_mobilenet_v3_large_320_fpn --rounds 4

Writes ``results/training/training.{json,md,png}``; ``--quick`` writes ``results/tmp/training/``
(ignored by git), so a quick check never overwrites the committed reference.

Each configuration is one real job: :func:`worker.trigger.trigger` uploads the synthetic
PennFudan-style data and the initial model to a fresh :class:`~exchange.stores.local.LocalStore`,
then ``N`` workers run :func:`worker.runner.run_worker` as threads of this process (the
in-process path of ``tests/worker/test_train_e2e.py``: same worker code as the launchers,
one torch import). A worker that times out is restarted and rejoins at the latest complete
round, as the local launcher does. Every mode runs twice with the same seeds:

* ``clean``: no injected delay;
* ``straggle``: every worker sleeps ``Exp(rate)`` seconds per round (seeded per worker and
  round) and the last ``slow`` workers sleep ``slow_shift + Exp(slow_rate)`` on top, the
  shifted-exponential model of Lee et al. (2018) with a heavy tail on a few workers.

Modes (``s = slow``): ``plain`` (waits for everybody); ``backup`` (first ``N - s``
contributions: the average of the members, approximate); ``mds`` with ``k = N - s`` and
``quorum = N - s`` (the quorum lets it close the round without a slow *trainer*; ``k``
lets it decode without a slow *aggregator*; the average is over the members, approximate);
``mds-exact`` with ``k = N - s`` and no quorum, its slow workers slow *aggregators* (the
straggler MDS codes tolerate; the sum is exact over all ``N``);
``gradient`` with ``s`` (each worker trains ``s + 1`` partitions; any ``N - s`` decode the
exact full average). A baseline trains one model on the full training set with no
exchange (``local_iters`` steps per round on batches of ``N * batch_size`` images).

Round ``r`` ends when the first worker has applied its average (the time the next round
can start); round time is the difference of consecutive ends, averaged over rounds ``2..R``
(round 1 also holds worker start-up). Loss is the held-out loss of each round's checkpoint
(:func:`worker.evaluate.mean_loss`, seeded), so it is comparable across modes. Targets (the
training-runtime issue): with stragglers, coded (mds, gradient) round time <= 1.2x the
straggler-free one and plain >= 1.5x; gradient's final loss equals plain's.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import machine_info, markdown_table, progress, write_results

MODES = ("plain", "backup", "mds", "mds-exact", "gradient")
CODED = ("mds", "mds-exact", "gradient")
#: Modes whose aggregate is the exact sum over all N workers, so their loss must equal plain's.
EXACT = ("plain", "mds-exact", "gradient")
NAME = "training"


@dataclass(frozen=True)
class Settings:
    """The benchmark's knobs (command-line flags)."""

    model: str = "small_cnn"
    workers: int = 5
    rounds: int = 8
    local_iters: int = 2
    batch_size: int = 2
    lr: float = 0.02
    images: int = 40
    size: int = 64
    seed: int = 0
    rate: float = 10.0
    slow: int = 1
    slow_shift: float = 2.0
    slow_rate: float = 1.0
    grace: float = 0.3
    round_timeout: float = 10.0
    gradient_mds: bool = True
    modes: tuple[str, ...] = MODES

    def straggle(self, slow_role: str = "trainer") -> str:
        """The straggling run's rules in ``--straggle`` syntax.

        ``slow_role="aggregator"`` holds the slow workers back before they combine their
        shard instead of before they publish: the straggler MDS codes are built for.
        """
        rules = [f"shiftexp:shift=0,rate={self.rate:g}"]
        role = "" if slow_role == "trainer" else f",role={slow_role}"
        rules += [f"shiftexp:worker={w},shift={self.slow_shift:g},rate={self.slow_rate:g}{role}"
                  for w in range(self.workers - self.slow, self.workers)]
        return ";".join(rules)


@dataclass
class RunOutcome:
    """What one job measured."""

    label: str
    mode: str
    straggle: bool
    ends: list[float] = field(default_factory=list)
    heldout: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    final_state: dict[str, np.ndarray] | None = None
    ap: float = float("nan")
    ap50: float = float("nan")
    wall_s: float = 0.0
    per_round: dict[str, float] = field(default_factory=dict)
    cost_round: float = 0.0
    ec2_round: float = 0.0
    restarts: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


def run_config(st: Settings, mode: str, straggle: bool, store: Path) -> Any:
    """The :class:`~worker.config.RunConfig` of one job."""
    from worker.config import RunConfig
    from worker.straggle import parse_straggle

    size = {"min_size": st.size, "max_size": st.size} if st.model == "small_cnn" else {}
    code, role, settings = CASES[mode]
    rules = st.straggle(role)
    return RunConfig(
        job=f"{mode}-{'straggle' if straggle else 'clean'}", store=f"file://{store}",
        workers=st.workers, mode=code, model=st.model, rounds=st.rounds,
        local_iters=st.local_iters, batch_size=st.batch_size, lr=st.lr, synth_images=st.images,
        image_size=st.size, seed=st.seed, encrypt=False, grace=st.grace,
        round_timeout=st.round_timeout, max_restarts=3, evaluate=False,
        straggle=parse_straggle(rules) if straggle else (), **size, **settings(st))


#: Each benchmarked case: its code, the role its slow workers straggle in, its settings.
#: ``mds-exact`` is mds with no quorum: all N trainers count, and slow *aggregators* are
#: decoded around.
CASES: dict[str, tuple[str, str, Callable[[Settings], dict[str, Any]]]] = {
    "plain": ("plain", "trainer", lambda st: {}),
    "backup": ("backup", "trainer", lambda st: {"s": st.slow}),
    "mds": ("mds", "trainer", lambda st: {"k": st.workers - st.slow, "quorum": st.workers - st.slow}),
    "mds-exact": ("mds", "aggregator", lambda st: {"k": st.workers - st.slow}),
    "gradient": ("gradient", "trainer",
                 lambda st: {"s": st.slow, "k": st.workers - st.slow if st.gradient_mds else st.workers}),
}
#: The straggle/clean round-time target of a case: plain cannot hide a straggler, the
#: coded cases must.
ROUND_TARGETS = {"plain": (1.5, ">="), **{m: (1.2, "<=") for m in CODED}}


def _run_workers(cfg: Any, store: Any, label: str) -> tuple[dict[int, float], list, int, float]:
    """Run every worker as a thread; return round ends, records, restarts and start time."""
    from exchange.errors import RoundTimeoutError
    from worker.runner import WorkerSpec, run_worker

    lock = threading.Lock()
    ends: dict[int, float] = {}
    records: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    restarts = [0]
    t0 = time.perf_counter()

    def on_round(rec: dict[str, Any], _avg: Any) -> None:
        now = time.perf_counter() - t0
        with lock:
            records.append(rec)
            r = int(rec["round"])
            if r not in ends:  # the first worker to apply round r's average
                ends[r] = now
                progress(f"{label} round {r}/{cfg.rounds}  t {now:6.1f} s  "
                         f"train loss {rec['loss']:.4f}  workers {rec['contributors']}")

    def go(i: int) -> None:
        for attempt in range(cfg.max_restarts + 1):  # as LocalLauncher restarts timeouts
            spec = WorkerSpec(store=cfg.store, job=cfg.job, worker=i, attempt=attempt,
                              encrypt=False)
            try:
                run_worker(spec, store=store, on_round=on_round)
                return
            except RoundTimeoutError as err:
                with lock:
                    restarts[0] += 1
                progress(f"{label} worker {i} timed out ({err}); restarting")
            except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
                errors.append(err)
                return

    threads = [threading.Thread(target=go, args=(i,), daemon=True) for i in range(cfg.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=cfg.round_timeout * 4 * cfg.rounds + 600)
    if errors:
        raise errors[0]
    return ends, records, restarts[0], t0


def _traffic(records: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    """Requests and bytes of all workers, per round."""
    keys = ("bytes_up", "bytes_down", "puts", "gets", "lists")
    return {k: sum(float(rec.get(k, 0)) for rec in records) / rounds for k in keys}


def _cost(cfg: Any, store: Any, trigger_stats: Any, wall_s: float) -> Any:
    """The AWS cost table of one job, as ``kofn train`` prices it."""
    from worker.cost import job_cost

    return job_cost(cfg, store, trigger_stats, wall_s)


def _model(cfg: Any) -> Any:
    import torch

    from worker.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg.model, min_size=cfg.min_size, max_size=cfg.max_size)


def _heldout_curve(cfg: Any, states: list[dict[str, np.ndarray]], holdout: list) -> list[float]:
    """Seeded held-out loss of each checkpoint (round 0 = the initial model)."""
    from worker.evaluate import mean_loss
    from worker.models import load_numpy_state

    model = _model(cfg)
    out = []
    for state in states:
        load_numpy_state(model, state)
        out.append(float(mean_loss(model, holdout, seed=cfg.seed)))
    return out


def _box_ap(cfg: Any, state: dict[str, np.ndarray], holdout: list) -> tuple[float, float]:
    from worker.evaluate import evaluate
    from worker.models import load_numpy_state

    model = _model(cfg)
    load_numpy_state(model, state)
    res = evaluate(model, holdout, with_loss=False)
    return float(res.bbox_ap), float(res.bbox_ap50)


def run_job(st: Settings, mode: str, straggle: bool, root: Path) -> RunOutcome:
    """Trigger one job, run its workers, and measure it."""
    import torch

    from exchange.stores.counting import CountingStore
    from exchange.stores.local import LocalStore
    from worker.data import read_partition
    from worker.trigger import checkpoint_key, decode_state, holdout_key, trigger

    torch.set_num_threads(1)
    label = f"{mode:8s} {'straggle' if straggle else 'clean':8s}"
    cfg = run_config(st, mode, straggle, root / "store")
    store = LocalStore(root / "store")
    counting = CountingStore(store)
    t_job = time.perf_counter()
    trigger(cfg, counting)
    ends, records, restarts, _ = _run_workers(cfg, store, label)
    wall = time.perf_counter() - t_job
    states = [decode_state(store.get(checkpoint_key(cfg.job, r))) for r in range(cfg.rounds + 1)]
    holdout = read_partition(store.get(holdout_key(cfg.job)))
    out = RunOutcome(label=f"{mode} {'straggle' if straggle else 'clean'}", mode=mode,
                     straggle=straggle, restarts=restarts, wall_s=wall)
    out.ends = [ends[r] for r in range(1, cfg.rounds + 1)]
    out.train_loss = [float(np.mean([rec["loss"] for rec in records if rec["round"] == r]))
                      for r in range(1, cfg.rounds + 1)]
    out.heldout = _heldout_curve(cfg, states, holdout)
    out.final_state = states[-1]
    out.ap, out.ap50 = _box_ap(cfg, states[-1], holdout)
    out.per_round = _traffic(records, cfg.rounds)
    cost = _cost(cfg, store, counting.stats, wall)
    out.cost_round = cost.serverless_total / cfg.rounds
    out.ec2_round = cost.ec2.cost / cfg.rounds
    out.settings = {"k": cfg.k, "s": cfg.s, "quorum": cfg.quorum,
                    "straggle": [r.to_spec() for r in cfg.straggle]}
    progress(f"{label} done: wall {wall:.1f} s, held-out loss {out.heldout[-1]:.4f}, "
             f"AP {out.ap:.3f}, restarts {restarts}")
    return out


def run_single(st: Settings, root: Path) -> RunOutcome:
    """One worker on the whole training set, no exchange: the baseline."""
    import torch

    from exchange.stores.local import LocalStore
    from worker.cost import Usage, estimate_cost, load_prices
    from worker.data import read_partition
    from worker.local_train import LocalTrainer
    from worker.trigger import checkpoint_key, decode_state, holdout_key, partition_key, trigger

    torch.set_num_threads(1)
    cfg = run_config(st, "plain", False, root / "store").with_overrides(job="single")
    store = LocalStore(root / "store")
    trigger(cfg, store)
    train = [s for j in range(cfg.workers) for s in read_partition(store.get(partition_key(cfg.job, j)))]
    holdout = read_partition(store.get(holdout_key(cfg.job)))
    trainer = LocalTrainer(cfg.model, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           local_iters=cfg.local_iters, batch_size=cfg.batch_size * cfg.workers,
                           seed=cfg.seed, min_size=cfg.min_size, max_size=cfg.max_size)
    state = decode_state(store.get(checkpoint_key(cfg.job, 0)))
    states, out = [state], RunOutcome(label="single worker", mode="single", straggle=False)
    t0 = time.perf_counter()
    for r in range(1, cfg.rounds + 1):
        res = trainer.train(state, train, round_index=r, partition=0)
        state = {k: (state[k].astype(np.float64) + res.delta[k]).astype(state[k].dtype) for k in state}
        states.append(state)
        out.ends.append(time.perf_counter() - t0)
        out.train_loss.append(res.mean_loss)
        progress(f"single   full-data round {r}/{cfg.rounds}  t {out.ends[-1]:6.1f} s  "
                 f"train loss {res.mean_loss:.4f}")
    out.wall_s = out.ends[-1]
    out.heldout = _heldout_curve(cfg, states, holdout)
    out.final_state = state
    out.ap, out.ap50 = _box_ap(cfg, state, holdout)
    out.per_round = dict.fromkeys(("bytes_up", "bytes_down", "puts", "gets", "lists"), 0.0)
    cost = estimate_cost(Usage(worker_seconds=out.wall_s, invocations=1, puts=0, gets=0, lists=0,
                               wall_seconds=out.wall_s, workers=1), load_prices(),
                         memory_mb=cfg.lambda_memory_mb, ec2_instance=cfg.ec2_instance)
    out.cost_round = cost.serverless_total / cfg.rounds
    out.ec2_round = cost.ec2.cost / cfg.rounds
    out.settings = {"batch_size": cfg.batch_size * cfg.workers, "local_iters": cfg.local_iters}
    return out


# -- analysis -----------------------------------------------------------------------------

def round_times(ends: list[float]) -> np.ndarray:
    """Steady-state round times: differences of consecutive round ends, rounds 2..R."""
    e = np.asarray(ends, dtype=float)
    return np.diff(e) if e.size > 1 else e


def rel_diff(state: dict[str, np.ndarray], ref: dict[str, np.ndarray],
             init: dict[str, np.ndarray]) -> float:
    """``||state - ref|| / ||ref - init||`` over every floating tensor."""
    num = sum(float(np.sum((state[k].astype(np.float64) - ref[k]) ** 2)) for k in ref)
    den = sum(float(np.sum((ref[k].astype(np.float64) - init[k]) ** 2)) for k in ref)
    return float(np.sqrt(num / den)) if den > 0 else float("nan")


def time_to(out: RunOutcome, target: float) -> float:
    """Seconds until the first round whose held-out loss is at most ``target`` (nan: never)."""
    for r, loss in enumerate(out.heldout[1:]):
        if loss <= target:
            return out.ends[r]
    return float("nan")


def summarize(st: Settings, outs: list[RunOutcome], init: dict[str, np.ndarray]) -> dict[str, Any]:
    """Rows per configuration and the target checks."""
    by = {o.label: o for o in outs}
    ref = by["plain clean"]
    target = ref.heldout[-1] * 1.05
    rows = []
    for o in outs:
        rt = round_times(o.ends)
        rows.append({
            "config": o.label, "mode": o.mode, "straggle": o.straggle, "settings": o.settings,
            "round_mean_s": float(rt.mean()), "round_p90_s": float(np.percentile(rt, 90)),
            "round_times_s": rt.tolist(), "round_ends_s": o.ends,
            "time_to_target_s": time_to(o, target), "final_heldout_loss": o.heldout[-1],
            "heldout_loss": o.heldout, "train_loss": o.train_loss,
            "final_rel_diff_vs_plain": rel_diff(o.final_state, ref.final_state, init),
            "bbox_ap": o.ap, "bbox_ap50": o.ap50, "wall_s": o.wall_s, "restarts": o.restarts,
            **{f"{k}_per_round": v for k, v in o.per_round.items()},
            "cost_per_round_usd": o.cost_round, "ec2_per_round_usd": o.ec2_round,
        })
    return {"target_loss": target, "rows": rows, "checks": checks(st, {r["config"]: r for r in rows})}


def checks(st: Settings, rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and met/missed."""
    out = []
    base_plain = rows["plain clean"]["round_mean_s"]
    for mode in st.modes:
        if f"{mode} straggle" not in rows:
            continue
        slow = rows[f"{mode} straggle"]["round_mean_s"]
        own = slow / rows[f"{mode} clean"]["round_mean_s"]
        if mode in ROUND_TARGETS:
            limit, op = ROUND_TARGETS[mode]
            met = own >= limit if op == ">=" else own <= limit
            out.append({"target": f"{mode}: straggle/clean round time {op} {limit}", "value": own,
                        "vs_plain_clean": slow / base_plain, "met": bool(met)})
    ref = rows["plain clean"]["final_heldout_loss"]
    for label in ("gradient straggle", "gradient clean", "mds-exact straggle", "mds-exact clean",
                  "mds straggle", "mds clean", "backup straggle", "backup clean",
                  "plain straggle"):
        if label in rows:
            got = rows[label]
            dl = abs(got["final_heldout_loss"] - ref) / abs(ref)
            entry = {"target": f"{label}: final loss equals plain clean's", "value": dl,
                     "param_rel_diff": got["final_rel_diff_vs_plain"]}
            if label.split()[0] in EXACT:
                entry["met"] = bool(dl <= 1e-4)
            out.append(entry)
    return out


def report(st: Settings, summary: dict[str, Any], cmd: str) -> str:
    """The markdown table, target lines and settings."""
    head = ["config", "round mean (s)", "round p90 (s)", "to target (s)", "final loss",
            "rel. diff vs plain", "box AP", "AP50", "MB up/round", "MB down/round",
            "PUT/round", "GET/round", "LIST/round", "USD/round (Lambda+S3)", "USD/round (EC2)"]
    body = [[r["config"], r["round_mean_s"], r["round_p90_s"],
             "never" if np.isnan(r["time_to_target_s"]) else r["time_to_target_s"],
             round(r["final_heldout_loss"], 5), r["final_rel_diff_vs_plain"], r["bbox_ap"],
             r["bbox_ap50"], r["bytes_up_per_round"] / 1e6, r["bytes_down_per_round"] / 1e6,
             r["puts_per_round"], r["gets_per_round"], r["lists_per_round"],
             r["cost_per_round_usd"], r["ec2_per_round_usd"]] for r in summary["rows"]]
    lines = [f"# Training benchmark ({st.model}, N={st.workers}, {st.rounds} rounds)", "",
             f"Command: `{cmd}`", "",
             f"Straggling runs inject `{st.straggle()}` (for `mds-exact` the slow workers "
             f"are slow aggregators: `{st.straggle('aggregator')}`); clean runs inject "
             "nothing. `mds` closes rounds with a quorum of N - s trainers (approximate "
             "average); `mds-exact` sums all N trainers and decodes from any k = N - s "
             "aggregators. "
             f"Target loss = plain clean's final held-out loss x 1.05 = "
             f"{summary['target_loss']:.4f}.", "",
             markdown_table(head, body), "", "## Targets", ""]
    for c in summary["checks"]:
        verdict = "" if "met" not in c else (" **met**" if c["met"] else " **missed**")
        extra = (f" (vs plain clean: {c['vs_plain_clean']:.2f}x)" if "vs_plain_clean" in c
                 else f" (relative parameter difference {c['param_rel_diff']:.2e})")
        lines.append(f"- {c['target']}: {c['value']:.4g}{extra}{verdict}")
    lines += ["", "![training](training.png)"]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    """Round time bars (clean/straggle per mode) and held-out loss against wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {r["config"]: r for r in summary["rows"]}
    modes = [m for m in MODES if f"{m} clean" in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(modes))
    for off, kind in ((-0.2, "clean"), (0.2, "straggle")):
        mean = [rows[f"{m} {kind}"]["round_mean_s"] if f"{m} {kind}" in rows else 0 for m in modes]
        p90 = [rows[f"{m} {kind}"]["round_p90_s"] if f"{m} {kind}" in rows else 0 for m in modes]
        ax1.bar(x + off, mean, 0.4, label=f"{kind} (mean)")
        ax1.scatter(x + off, p90, marker="_", s=200, color="k")
    if "single worker" in rows:
        ax1.axhline(rows["single worker"]["round_mean_s"], color="gray", ls="--",
                    label="single worker, full data")
    ax1.set_xticks(x, modes)
    ax1.set_ylabel("seconds per round (bar: mean, tick: p90)")
    ax1.legend(fontsize=8)
    # tab20 pairs a dark and a light shade per mode: every series has its own colour, and
    # a mode's clean and straggling runs still read as a pair (solid and dashed).
    shades = plt.get_cmap("tab20").colors
    order = [*MODES, "single"]
    for r in summary["rows"]:
        i = order.index(r["config"].split()[0]) if r["config"].split()[0] in order else len(order)
        ax2.plot([0.0, *r["round_ends_s"]], r["heldout_loss"], marker=".",
                 color=shades[(2 * i + bool(r["straggle"])) % len(shades)],
                 ls="--" if r["straggle"] else "-", label=r["config"])
    ax2.axhline(summary["target_loss"], color="gray", lw=0.8)
    ax2.set_xlabel("wall time (s)")
    ax2.set_ylabel("held-out loss")
    ax2.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="4 rounds, 24 images")
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--workers", type=int, default=5)
    p.add_argument("--rounds", type=int)
    p.add_argument("--images", type=int)
    p.add_argument("--size", type=int, help="image side and model resize (default 64, 128 for "
                   "the detection models)")
    p.add_argument("--local-iters", type=int, dest="local_iters",
                   help="local SGD steps per round (default 4; 1 for the detection models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=10.0, help="every worker: Exp(rate) s per round")
    p.add_argument("--slow", type=int, default=1, help="slow workers (and s of backup/gradient)")
    p.add_argument("--slow-shift", type=float, default=2.0)
    p.add_argument("--slow-rate", type=float, default=1.0)
    p.add_argument("--grace", type=float, default=0.3)
    p.add_argument("--round-timeout", type=float, default=10.0)
    p.add_argument("--gradient-k-n", action="store_true",
                   help="gradient with k = N (sliced; a late aggregator's slice is taken over "
                        "after --grace) instead of k = N - slow (gradient+mds)")
    p.add_argument("--modes", default=",".join(MODES))
    args = p.parse_args(argv)
    detection = args.model != "small_cnn"
    st = Settings(model=args.model, workers=args.workers,
                  rounds=args.rounds or (4 if args.quick else 8),
                  local_iters=args.local_iters or (1 if detection else 4), lr=0.01 if detection else 0.02,
                  images=args.images or (24 if args.quick else 40),
                  size=args.size or (128 if detection else 64), seed=args.seed, rate=args.rate,
                  slow=args.slow, slow_shift=args.slow_shift, slow_rate=args.slow_rate,
                  grace=args.grace, round_timeout=args.round_timeout,
                  gradient_mds=not args.gradient_k_n,
                  modes=tuple(m for m in args.modes.split(",") if m))
    unknown = set(st.modes) - set(MODES)
    if unknown or "plain" not in st.modes:
        p.error(f"--modes must include plain and only name {', '.join(MODES)}")
    return st, args


def main(argv: list[str] | None = None) -> None:
    import sys

    st, args = parse_args(argv)
    cmd = "python -m benchmarks.training " + " ".join(sys.argv[1:] if argv is None else argv)
    outs: list[RunOutcome] = []
    init = None
    for mode in st.modes:
        for straggle in (False, True):
            root = Path(tempfile.mkdtemp(prefix=f"kofn-train-{mode}-"))
            try:
                outs.append(run_job(st, mode, straggle, root))
                if init is None:
                    from exchange.stores.local import LocalStore
                    from worker.trigger import checkpoint_key, decode_state

                    job = f"{mode}-{'straggle' if straggle else 'clean'}"
                    init = decode_state(LocalStore(root / "store").get(checkpoint_key(job, 0)))
            finally:
                shutil.rmtree(root, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix="kofn-train-single-"))
    try:
        outs.append(run_single(st, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = summarize(st, outs, init)
    md = report(st, summary, cmd)
    payload = {"settings": st.__dict__ | {"modes": list(st.modes), "straggle": st.straggle()},
               "machine": machine_info(), "command": cmd, **summary}
    folder = write_results(NAME, payload, md, quick=args.quick)
    plot(summary, folder / "training.png")
    print(md)


if __name__ == "__main__":
    main()
