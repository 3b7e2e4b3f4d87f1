"""``kofn train``: trigger a coded training job, launch its workers, follow it, report.

``kofn train --config FILE.toml [overrides]`` loads a :class:`~worker.config.RunConfig`,
checks it (:meth:`~worker.config.RunConfig.preflight`, before anything is uploaded),
uploads the partitions, held-out split, initial model and manifest
(:func:`worker.trigger.trigger`), starts the workers with the chosen launcher, prints one
line per round (loss, round time, workers and aggregators used), and writes the report
under ``runs/<job>/``. ``--resume JOB`` continues a job whose trigger was killed: the
workers rejoin at the latest complete round, and nothing already done is redone.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coding.errors import KofnError
from worker.commands.train_args import add_setting_flags, load_config
from worker.config import RunConfig

__all__ = ["JobResult", "register", "run_job"]

# Settings a resumed job takes from the command line rather than from its manifest.
_RESUME_OVERRIDES = ("launcher", "ray_address", "ray_cpus", "max_restarts", "runs_dir",
                     "key_file", "key_env", "store")


@dataclass
class JobResult:
    """What :func:`run_job` produced."""

    config: RunConfig
    rows: list[Any] = field(default_factory=list)
    report: Path | None = None
    final_state: dict[str, Any] | None = None
    launch: Any = None
    cost: Any = None


def run_job(cfg: RunConfig, *, resume: bool = False, log: Callable[[str], None] | None = None,
            poll_s: float = 0.2, verbose: bool = False, live: bool | None = None) -> JobResult:
    """Trigger (or resume) a job, launch its workers, follow the rounds and write the report.

    Parameters
    ----------
    cfg : RunConfig
        The run's settings; with ``resume`` only the launcher, store and key settings
        are taken from it, the rest from the job's manifest.
    resume : bool
        Continue job ``cfg.job`` from its latest complete round.
    log : callable, optional
        Receives the progress lines (default: the live view's console).
    poll_s : float
        Seconds between two looks at the store.
    verbose : bool
        Let Ray's own log lines through.
    live : bool, optional
        Show every worker's phase (:class:`worker.progress.LiveView`, from the local
        launcher's worker logs); default: when ``log`` is not given.

    Returns
    -------
    JobResult
    """
    if resume and not cfg.job:
        raise ValueError("Argument 'resume' needs a job name, not ''.")
    cfg.preflight()  # one-line errors before anything is uploaded
    if cfg.launcher == "lambda":
        from worker.aws import preflight_lambda

        preflight_lambda(cfg.store, cfg.lambda_function, cfg.region or None, encrypt=cfg.encrypt)
    cfg = cfg.with_job_name(time.strftime("%Y%m%d-%H%M%S"))
    want_live = live if live is not None else log is None
    return _open_and_run(cfg, resume, log or print, poll_s, verbose, want_live)


def _open_and_run(cfg: RunConfig, resume: bool, log: Callable[[str], None], poll_s: float, verbose: bool,
                  want_live: bool) -> JobResult:
    from exchange.stores.counting import CountingStore
    from worker.trigger import manifest_or_copy, open_job_store

    store = CountingStore(open_job_store(cfg))
    t0 = time.perf_counter()
    manifest = None
    if resume:
        manifest = manifest_or_copy(cfg, store, log)
        keep = {name: getattr(cfg, name) for name in _RESUME_OVERRIDES}
        cfg = manifest.config.with_overrides(**keep)
    view = None
    if want_live:
        from worker.progress import LiveView

        view = LiveView(cfg.workers, Path(cfg.runs_dir) / cfg.job / "logs"
                        if cfg.launcher == "local" else None)
        log = view.write
    try:
        return _run_job(cfg, resume, store, manifest, t0, log, poll_s, verbose, view)
    finally:
        if view is not None:
            view.close()


def _run_job(cfg: RunConfig, resume: bool, store: Any, manifest: Any, t0: float,
             log: Callable[[str], None], poll_s: float, verbose: bool, view: Any) -> JobResult:
    from worker.launchers import make_launcher
    from worker.runner import WorkerSpec, exchange_for, is_dead
    from worker.trigger import (
        ManifestError,
        keep_manifest_copy,
        read_manifest,
        repair_partitions,
        trigger,
    )

    if not resume:
        try:
            read_manifest(store, cfg.job)
        except ManifestError as err:
            if "no manifest" not in str(err):
                raise
        else:
            raise KofnError(f"Job {cfg.job!r} already exists in {cfg.store}; use --resume {cfg.job}.")
        log(f"job {cfg.job}: {cfg.task or cfg.model}, {cfg.workers} workers, mode {cfg.mode} (k={cfg.k}), "
            f"{cfg.rounds} rounds, launcher {cfg.launcher}, store {cfg.store}")
        with _keepalive(view, "preparing the job (data, upload, initial model)"):
            manifest = trigger(cfg, store, log=log)
    else:
        with _keepalive(view, "checking the job's data partitions"):
            repair_partitions(cfg, store, manifest, log=log)
    keep_manifest_copy(cfg, manifest)
    exchange = exchange_for(cfg, store, max_length=manifest.limits.get("update_elements"))
    start = exchange.latest_complete_round() or 0
    out_dir = Path(cfg.runs_dir) / cfg.job
    result = JobResult(config=cfg)
    if resume and start >= cfg.rounds and (out_dir / "report.md").exists():
        exchange.close()
        log(f"job {cfg.job} already finished all {cfg.rounds} rounds; nothing to do "
            f"(report: {out_dir / 'report.md'})")
        result.report = out_dir / "report.md"
        return result
    if resume:
        log(f"resuming job {cfg.job} after round {start}")
    launcher = make_launcher(cfg, log_dir=out_dir / "logs", verbose=verbose)
    agg_keys: list[str | None] = [None] * cfg.workers
    private = cfg.code_spec().private  # T-private shares: sealed per aggregator
    if private and cfg.launcher != "lambda":
        from worker.sealing import aggregator_key_files

        # each worker gets its own aggregator key: no worker opens another's shares
        agg_keys = [str(p.resolve()) for p in aggregator_key_files(out_dir / "keys", cfg.workers)]
    elif private:
        log("warning (--unsealed-shares): the Lambda launcher does not hand out per-aggregator "
            "keys yet; shares are "
            "protected by the job key only, so a fellow worker could open them (docs/security.md)")
    specs = [WorkerSpec(store=_absolute(cfg.store), job=cfg.job, worker=i, attempt=None, encrypt=cfg.encrypt,
                        key_file=cfg.key_file, key_env=cfg.key_env, agg_key_file=agg_keys[i])
             for i in range(cfg.workers)]
    expected = sum(not is_dead(cfg, i) for i in range(cfg.workers))
    timing = {"trigger (data, upload, initial model)": time.perf_counter() - t0}
    try:
        if start < cfg.rounds:
            t_launch = time.perf_counter()
            launcher.start(specs)
            result.rows, seen = _follow(cfg, store, exchange, launcher, start, expected, log, poll_s,
                                        view)
            with _keepalive(view, "waiting for the workers to exit"):
                result.launch = launcher.wait(timeout=0.0 if cfg.launcher == "lambda" else 60.0)
            if seen and result.rows:
                first = next((row for row in result.rows if row.round == start + 1), None)
                up = max(seen[0] - t_launch - (first.time_s if first else 0.0), 0.0)
                timing["worker start-up (launch to the first round's start)"] = up
                timing["rounds"] = seen[-1] - t_launch - up
        else:  # every round is done, only the report is missing
            from worker.report import summarize_rounds

            result.rows = summarize_rounds([rec for r in range(1, cfg.rounds + 1)
                                            for rec in _round_records(store, cfg.job, r)])
            log(f"job {cfg.job}: all {cfg.rounds} rounds are done; writing the report")
    finally:
        launcher.stop()
        exchange.close()
    with _keepalive(view, "evaluating and writing the report"):
        _finish(cfg, store, manifest, result, t0, timing, log)
    return result


def _keepalive(view: Any, what: str) -> Any:
    """The live view's keep-alive while the driver works, or nothing without a view."""
    import contextlib

    return contextlib.nullcontext() if view is None else view.keepalive(what)


def _absolute(store: str) -> str:
    """A plain relative store path made absolute, so workers in other folders find it."""
    return store if "://" in store else str(Path(store).expanduser().resolve())


def _round_records(store: Any, job: str, r: int) -> list[dict[str, Any]]:
    from worker.trigger import stats_prefix

    out = []
    for key in store.list(stats_prefix(job, r)):
        try:
            out.append(json.loads(store.get(key)))
        except (FileNotFoundError, ValueError):
            continue
    return out


class _RoundWatch:
    """Round ``r``'s statistics records, each GET by its exact key (no LIST)."""

    def __init__(self, store: Any, job: str, r: int, workers: int):
        from exchange.wait import KeyProbe
        from worker.trigger import stats_key

        def fetch(_w: int, key: str) -> dict[str, Any] | None:
            try:
                return json.loads(store.get(key))
            except (FileNotFoundError, ValueError):
                return None

        self.probe = KeyProbe([(w, stats_key(job, r, w)) for w in range(workers)], fetch)

    def records(self) -> list[dict[str, Any]]:
        self.probe.look()
        return list(self.probe.found.values())


def _follow(cfg: RunConfig, store: Any, exchange: Any, launcher: Any, start: int, expected: int,
            log: Callable[[str], None], poll_s: float, view: Any = None
            ) -> tuple[list[Any], list[float]]:
    """Print each round as it completes; return the round summaries (from round 1) and the
    ``perf_counter`` times at which this driver saw each new round complete.

    The report's round table is made of exactly these rows, so the loss the console
    printed for a round is the report's.
    """
    from worker.report import memory_warning, round_line, summarize_rounds

    rows = summarize_rounds([rec for r in range(1, start + 1)
                             for rec in _round_records(store, cfg.job, r)])
    seen: list[float] = []
    r = start + 1
    seen_complete: float | None = None
    warned = False
    # A round that shows no progress for one round timeout (plus a cold start before the
    # first) has lost its workers: Lambda invocations that died leave no exit status.
    patience = cfg.round_timeout + cfg.grace
    deadline = time.monotonic() + patience + _COLD_START_S
    progress = -1
    restarts = 0
    watch = _RoundWatch(store, cfg.job, r, cfg.workers)
    delay = poll_s
    while r <= cfg.rounds:
        finished = launcher.poll()
        if view is not None:
            view.poll()
        if launcher.report.restarts > restarts:
            restarts = launcher.report.restarts
            exits = {w: codes for w, codes in launcher.report.exits.items() if any(codes)}
            log(f"restarted a worker (restarts so far: {restarts}; exit statuses {exits})")
        broken = permanent_failure(cfg, store, launcher.report)
        if broken:
            raise KofnError(broken)
        try:
            recs = watch.records()
            latest = r if exchange.is_complete(r) else r - 1
            if latest >= r and r < cfg.rounds and exchange.is_complete(r + 1):
                latest = r + 1
        except (ConnectionError, TimeoutError) as err:
            # The driver's own store trouble is no reason to stop healthy workers: keep
            # following until the round deadline, which the workers share.
            if time.monotonic() > deadline:
                raise KofnError(f"Job {cfg.job!r}: the store stayed unreachable past round "
                                f"{r}'s deadline: {err}") from None
            time.sleep(max(poll_s, 1.0))
            continue
        if latest >= r and seen_complete is None:
            seen_complete = time.monotonic()
        settled = latest > r or (seen_complete is not None and time.monotonic() - seen_complete > 10)
        if recs and (len(recs) >= expected or settled or finished):
            rows.extend(summarize_rounds(recs))
            seen.append(time.perf_counter())
            log(round_line(rows[-1], cfg.rounds))
            warning = memory_warning(rows, cfg)
            if warning and not warned:
                log(warning)
                warned = True
            r, seen_complete, progress, delay = r + 1, None, -1, poll_s
            watch = _RoundWatch(store, cfg.job, r, cfg.workers)
            deadline = time.monotonic() + patience
            continue
        if len(recs) + latest != progress:
            progress, deadline = len(recs) + latest, time.monotonic() + patience
            delay = poll_s
        if finished:
            codes = launcher.report.exits
            raise KofnError(f"Job {cfg.job!r}: every worker exited before round {r} completed "
                            f"(exit statuses {dict(codes)}); see {cfg.runs_dir}/{cfg.job}/logs/.")
        if time.monotonic() > deadline:
            raise KofnError(stalled(cfg, store, r, recs))
        time.sleep(delay)  # backoff: a quiet store is looked at less and less often
        delay = min(2 * delay, max(poll_s, 2.0))
    return rows, seen


def permanent_failure(cfg: RunConfig, store: Any, report: Any) -> str | None:
    """One line naming a worker that failed permanently and why, if one did.

    A permanent failure (exit status 2: a bad key, a corrupt partition, a bad manifest)
    is not restarted, and no later round can succeed the same way, so the driver stops
    the job at once with the cause the worker wrote to its session record.
    """
    from worker.runner import PERMANENT_EXIT, session_prefix

    for w, codes in sorted(report.exits.items()):
        if not codes or codes[-1] != PERMANENT_EXIT:
            continue
        cause = "see its log"
        try:
            keys = sorted(store.list(session_prefix(cfg.job, w)))
            outcome = json.loads(store.get(keys[-1])).get("outcome", "") if keys else ""
            if isinstance(outcome, str) and outcome.startswith("error: "):
                cause = outcome[len("error: "):]
        except (OSError, ValueError, KofnError):
            pass
        return (f"Job {cfg.job!r}: worker {w} failed permanently (not restarted): {cause} "
                f"(log: {cfg.runs_dir}/{cfg.job}/logs/)")
    return None


#: Seconds a first round may take on top of the round timeout: Lambda pulls the image.
_COLD_START_S = 120.0


def stalled(cfg: RunConfig, store: Any, r: int, recs: list[dict[str, Any]]) -> str:
    """One line saying why round ``r`` stopped: what each silent worker's sessions say."""
    from worker.runner import is_dead, session_prefix

    reported = {int(rec["worker"]) for rec in recs}
    ended: dict[str, list[int]] = {}
    for w in range(cfg.workers):
        if w in reported or is_dead(cfg, w):
            continue
        last = "never reported"
        keys = sorted(store.list(session_prefix(cfg.job, w)))
        if keys:
            try:
                last = f"ended {json.loads(store.get(keys[-1])).get('outcome', '?')!r}"
            except (FileNotFoundError, ValueError):
                pass
        ended.setdefault(last, []).append(w)
    why = "; ".join(f"worker(s) {','.join(map(str, ws))} {what}" for what, ws in ended.items())
    hint = ("their invocations died (time, memory or import error: see the function's logs)"
            if cfg.launcher == "lambda" else f"see {cfg.runs_dir}/{cfg.job}/logs/")
    return (f"Job {cfg.job!r}: round {r} made no progress for {cfg.round_timeout + cfg.grace:.0f} s "
            f"(round_timeout + grace): {why or 'no worker is missing'}; {hint}.")


def _finish(cfg: RunConfig, store: Any, manifest: Any, result: JobResult, t0: float,
            timing: dict[str, float], log: Callable[[str], None]) -> None:
    from worker.checkpoints import load_checkpoint
    from worker.report import write_report
    from worker.runner import exchange_for
    from worker.trigger import checkpoint_key

    key = checkpoint_key(cfg.job, cfg.rounds)
    for _ in range(100):
        if store.exists(key):
            break
        time.sleep(0.1)
    exchange = exchange_for(cfg, store, max_length=manifest.limits.get("update_elements"))
    try:  # a damaged final checkpoint is rebuilt from the last round's merged shards
        result.final_state = load_checkpoint(store, cfg.job, cfg.rounds, exchange=exchange)
    finally:
        exchange.close()
    result.cost = _cost(cfg, store, time.perf_counter() - t0)
    evaluation, per_round = None, []
    if cfg.evaluate:
        t_eval = time.perf_counter()
        if cfg.task is None:  # a task keeps no per-round checkpoints and has its own metrics
            per_round = _ap_per_round(cfg, store, manifest, log)
        evaluation = _evaluate(cfg, store, manifest, result.final_state, log)
        if evaluation is not None and "bbox AP@[.5:.95]" in evaluation:
            per_round.append((cfg.rounds, float(evaluation["bbox AP@[.5:.95]"])))
        timing["evaluation"] = time.perf_counter() - t_eval
    timing["total"] = time.perf_counter() - t0
    notes = []
    from worker.report import memory_warning

    if memory_warning(result.rows, cfg):
        notes.append(memory_warning(result.rows, cfg).removeprefix("warning: "))
    if result.launch is not None and result.launch.restarts:
        notes.append(f"Workers restarted after a crash or timeout: {result.launch.restarts}.")
    result.report = write_report(Path(cfg.runs_dir) / cfg.job, cfg, result.rows, cost=result.cost,
                                 final_state=result.final_state, train_size=sum(manifest.partitions),
                                 evaluation=evaluation, notes=notes, ap_per_round=per_round,
                                 timing=timing)
    log("time: " + ", ".join(f"{k.split(' (')[0]} {v:.1f} s" for k, v in timing.items()))
    log(f"report: {result.report}")


def _cost(cfg: RunConfig, store: Any, wall_s: float) -> Any:
    from worker.cost import job_cost

    return job_cost(cfg, store, store.stats, wall_s)


def _eval_model(cfg: RunConfig) -> Any:
    import torch

    from worker.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_model(cfg.model, min_size=cfg.min_size, max_size=cfg.max_size)


def _ap_per_round(cfg: RunConfig, store: Any, manifest: Any,
                  log: Callable[[str], None]) -> list[tuple[int, float]]:
    """Held-out box AP of every round's checkpoint (round 0: the starting model)."""
    from worker.checkpoints import CheckpointError, decode_state
    from worker.evaluate import evaluate
    from worker.models import load_numpy_state
    from worker.trigger import checkpoint_key, read_holdout

    samples = read_holdout(store, manifest)
    if not samples:
        return []
    model, out = _eval_model(cfg), []
    for r in range(cfg.rounds):  # the last round is the final evaluation's
        key = checkpoint_key(cfg.job, r)
        try:
            load_numpy_state(model, decode_state(store.get(key), key=key))
        except FileNotFoundError:
            continue
        except CheckpointError as err:  # an old round's model: reported, not rebuilt
            log(f"evaluating round {r}/{cfg.rounds}: skipped ({err})")
            continue
        out.append((r, float(evaluate(model, samples, with_loss=False).bbox_ap)))
        log(f"evaluating round {r}/{cfg.rounds}: bbox AP@[.5:.95] {out[-1][1]:.4f}")
    return out


def _evaluate_task(cfg: RunConfig, state: dict[str, Any], log: Callable[[str], None]) -> dict[str, float]:
    """A task's own metrics of the final model (:meth:`TrainingTask.evaluate`)."""
    import torch

    from worker.bridge import from_numpy
    from worker.tasks import load_task

    task = load_task(cfg.task)
    torch.manual_seed(cfg.seed)
    model = task.build_model()
    model.load_state_dict(from_numpy(state, like=model))
    model.eval()
    with torch.no_grad():
        out = {str(k): float(v) for k, v in task.evaluate(model).items()}
    log("evaluation: " + ", ".join(f"{k} {v:.4f}" for k, v in out.items()))
    return out


def _evaluate(cfg: RunConfig, store: Any, manifest: Any, state: dict[str, Any],
              log: Callable[[str], None]) -> Any:
    """COCO box AP (and mask AP for Mask R-CNN) of the final model on the held-out split,
    or a task's own metrics."""
    if cfg.task is not None:
        return _evaluate_task(cfg, state, log)
    from worker.evaluate import evaluate
    from worker.models import load_numpy_state
    from worker.trigger import read_holdout

    samples = read_holdout(store, manifest)
    if not samples:
        return None
    model = _eval_model(cfg)
    load_numpy_state(model, state)
    res = evaluate(model, samples)
    out = {"bbox AP@[.5:.95]": res.bbox_ap, "bbox AP50": res.bbox_ap50}
    if res.segm_ap is not None:
        out.update({"segm AP@[.5:.95]": res.segm_ap, "segm AP50": res.segm_ap50})
    if res.mean_loss is not None:
        out["held-out loss"] = res.mean_loss
    log("evaluation: " + ", ".join(f"{k} {v:.4f}" for k, v in out.items()))
    return out


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.print_config:
        print(cfg.to_toml(), end="")
        return 0
    if args.resume:
        cfg = cfg.with_overrides(job=args.resume)
    run_job(cfg, resume=bool(args.resume), verbose=args.verbose)
    return 0


def register(subparsers: Any) -> None:
    """Add ``kofn train`` to the ``kofn`` command line."""
    p = subparsers.add_parser(
        "train", help="train a model with coded parameter exchange",
        description="Trigger a coded training job, run its workers and write runs/<job>/report.md.")
    p.add_argument("--config", metavar="FILE.toml", help="run config (flags below override it)")
    p.add_argument("--set", action="append", metavar="SETTING=VALUE",
                   help="override any setting, VALUE as in TOML (repeatable)")
    p.add_argument("--unset", action="append", metavar="SETTING",
                   help="drop a setting of the --config file, back to its default (repeatable)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resulting config as TOML and exit")
    add_setting_flags(p)
    p.add_argument("--resume", metavar="JOB", help="continue a killed job from its last complete round")
    p.add_argument("--verbose", action="store_true", help="let Ray's own log lines through")
    p.set_defaults(func=_run)
