"""The run report under ``runs/<job>/``: round table, cost table, plots and the final model.

Files written by :func:`write_report`:

* ``report.md``: settings, the round table (loss, round time and its split, workers and
  aggregators used), loss per epoch, evaluation, and the cost table;
* ``loss.png``: loss against round;
* ``round_time.png``: the round-time breakdown as stacked bars that add up to each
  round's time (:func:`stacked_phases`), legend outside the bars;
* ``ap.png``: held-out AP after each round, when the run evaluated every round;
* ``model.safetensors``: the final model's floating-point state, with its name, classes and
  image size in the metadata (``worker.models.load_model(path)`` rebuilds it for inference);
* ``rounds.json``: the per-round summary as data.

Time is split five ways, each the mean over the workers that reported the round:
*compute* (local SGD, the injected delay, applying the average), *upload*, *wait*
(back-off sleeps while polling), *download* and *decode* (all coding arithmetic: encoding
shares, reducing at the aggregator, decoding). *other* is what remains of the round's
wall time (listing requests, bookkeeping).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worker.config import RunConfig
from worker.cost import CostTable

__all__ = ["PHASES", "RoundSummary", "memory_warning", "peak_memory", "plot_ap", "plot_breakdown",
           "round_line", "stacked_phases",
           "summarize_rounds", "write_report"]

PHASES = ("compute", "upload", "wait", "download", "decode", "other")


@dataclass(frozen=True)
class RoundSummary:
    """One row of the round table.

    Attributes
    ----------
    round : int
        Round number (1-based).
    loss : float
        Mean training loss of the workers that reported.
    time_s : float
        Mean wall time of the round over reporting workers.
    phases : dict of str to float
        Mean seconds per phase (:data:`PHASES`).
    workers : tuple of int
        Workers whose contributions the round combined.
    aggregators : tuple of int
        Aggregators whose merged shards were decoded.
    reporters : tuple of int
        Workers that reported the round.
    takeovers : int
        Merged shards computed by a worker for another aggregator.
    peak_rss_mb : dict of int to float
        Each reporting worker's peak resident set size so far, in MiB.
    """

    round: int
    loss: float
    time_s: float
    phases: dict[str, float]
    workers: tuple[int, ...]
    aggregators: tuple[int, ...]
    reporters: tuple[int, ...]
    takeovers: int
    peak_rss_mb: dict[int, float] = field(default_factory=dict)


def summarize_rounds(records: Sequence[Mapping[str, Any]]) -> list[RoundSummary]:
    """Group the workers' per-round records (see :mod:`worker.runner`) into table rows."""
    by_round: dict[int, list[Mapping[str, Any]]] = {}
    for rec in records:
        by_round.setdefault(int(rec["round"]), []).append(rec)
    rows = []
    for r in sorted(by_round):
        recs = by_round[r]
        mean = {p: float(np.mean([rec.get(f"{p}_s", 0.0) for rec in recs])) for p in PHASES[:-1]}
        wall = float(np.mean([rec["wall_s"] for rec in recs]))
        mean["other"] = max(wall - sum(mean.values()), 0.0)
        losses = [rec["loss"] for rec in recs if rec.get("loss") is not None
                  and math.isfinite(rec["loss"])]
        rows.append(RoundSummary(
            round=r,
            loss=float(np.mean(losses)) if losses else float("nan"),
            time_s=wall,
            phases=mean,
            workers=tuple(sorted({w for rec in recs for w in rec.get("contributors", [])})),
            aggregators=tuple(sorted({a for rec in recs for a in rec.get("aggregators", [])})),
            reporters=tuple(sorted(int(rec["worker"]) for rec in recs)),
            takeovers=int(sum(rec.get("takeovers", 0) for rec in recs)),
            peak_rss_mb={int(rec["worker"]): float(rec["peak_rss_mb"]) for rec in recs
                         if rec.get("peak_rss_mb")},
        ))
    return rows


def round_line(row: RoundSummary, rounds: int) -> str:
    """One progress line: ``round 3/5  loss 1.234  time 2.10 s  workers 0,1,2  aggregators 0,1``."""
    return (f"round {row.round}/{rounds}  loss {row.loss:.4f}  time {row.time_s:.2f} s  "
            f"workers {_ids(row.workers)}  aggregators {_ids(row.aggregators)}"
            + (f"  takeovers {row.takeovers}" if row.takeovers else ""))


def _ids(ids: Sequence[int]) -> str:
    return ",".join(map(str, ids)) or "-"


def peak_memory(rows: Sequence[RoundSummary]) -> dict[int, float]:
    """Each worker's peak RSS over the rounds (MiB)."""
    peaks: dict[int, float] = {}
    for row in rows:
        for w, mb in row.peak_rss_mb.items():
            peaks[w] = max(peaks.get(w, 0.0), mb)
    return dict(sorted(peaks.items()))


def memory_warning(rows: Sequence[RoundSummary], cfg: RunConfig) -> str | None:
    """One line when a worker's peak RSS exceeds the configured Lambda memory size."""
    over = {w: mb for w, mb in peak_memory(rows).items() if mb > cfg.lambda_memory_mb}
    if not over:
        return None
    w, mb = max(over.items(), key=lambda item: item[1])
    return (f"warning: worker {w} peaked at {mb:.0f} MiB RSS, above the configured Lambda "
            f"memory of {cfg.lambda_memory_mb} MB ({len(over)} of {len(peak_memory(rows))} "
            f"workers over): raise lambda_memory_mb (at most 10240) or use a smaller model.")


def memory_table(rows: Sequence[RoundSummary], cfg: RunConfig) -> list[str]:
    """The peak-RSS table as Markdown lines (empty when no worker reported one)."""
    peaks = peak_memory(rows)
    if not peaks:
        return []
    out = ["## Memory", "", f"Peak resident set size per worker; Lambda memory is "
           f"{cfg.lambda_memory_mb} MB.", "", "| worker | peak RSS (MiB) | fits Lambda |",
           "|---:|---:|---|"]
    out += [f"| {w} | {mb:.0f} | {'yes' if mb <= cfg.lambda_memory_mb else 'NO'} |"
            for w, mb in peaks.items()]
    return out + [""]


def round_table(rows: Sequence[RoundSummary]) -> str:
    """The round table as Markdown."""
    head = ["round", "loss", "time (s)", *[f"{p} (s)" for p in PHASES], "workers used",
            "aggregators used", "takeovers"]
    out = ["| " + " | ".join(head) + " |", "|" + "---:|" * 3 + "---:|" * len(PHASES) + "---|---|---:|"]
    for row in rows:
        cells = [str(row.round), f"{row.loss:.4f}", f"{row.time_s:.2f}",
                 *[f"{row.phases[p]:.2f}" for p in PHASES], _ids(row.workers), _ids(row.aggregators),
                 str(row.takeovers)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def epoch_losses(rows: Sequence[RoundSummary], cfg: RunConfig, train_size: int) -> list[tuple[int, float]]:
    """Mean loss per epoch: an epoch is ``train_size`` samples across all workers."""
    per_round = cfg.workers * cfg.local_iters * cfg.batch_size
    out: dict[int, list[float]] = {}
    for row in rows:
        epoch = (row.round - 1) * per_round // max(train_size, 1) + 1
        if math.isfinite(row.loss):
            out.setdefault(epoch, []).append(row.loss)
    return [(e, float(np.mean(v))) for e, v in sorted(out.items())]


def plot_loss(rows: Sequence[RoundSummary], path: Path) -> None:
    """Loss against round, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r.round for r in rows], [r.loss for r in rows], marker="o")
    ax.set_xticks([r.round for r in rows])
    ax.set_xlabel("round")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def stacked_phases(row: RoundSummary) -> dict[str, float]:
    """The round's phases as the round-time plot stacks them: they add up to ``time_s``.

    A worker's aggregation duty runs beside its collect, so the measured phases of a
    round can add up to more than its wall time. Then every phase is scaled down by the
    same factor (``other`` is already 0), so the bar is the round time and each
    segment keeps its share.
    """
    total = sum(row.phases[p] for p in PHASES)
    if total <= 0:
        return {p: 0.0 for p in PHASES}
    scale = min(1.0, row.time_s / total)
    return {p: row.phases[p] * scale for p in PHASES}


def plot_breakdown(rows: Sequence[RoundSummary], path: Path) -> None:
    """Round-time breakdown as stacked bars adding up to each round's time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    x = np.array([r.round for r in rows])
    bottom = np.zeros(len(rows))
    stacks = [stacked_phases(r) for r in rows]
    colours = plt.get_cmap("tab10").colors
    for i, phase in enumerate(PHASES):
        h = np.array([st[phase] for st in stacks])
        ax.bar(x, h, bottom=bottom, label=phase, color=colours[i])
        bottom += h
    ax.scatter(x, [r.time_s for r in rows], marker="_", s=300, color="k", zorder=3,
               label="round time")
    ax.set_xticks(x)
    ax.set_xlabel("round")
    ax.set_ylabel("seconds (mean over workers)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_ap(points: Sequence[tuple[int, float]], path: Path, *, label: str = "bbox AP@[.5:.95]") -> None:
    """Held-out AP against round (round 0: the starting model), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r for r, _ in points], [v for _, v in points], marker="o")
    ax.set_xticks([r for r, _ in points])
    ax.set_xlabel("round")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(
    out_dir: str | Path,
    cfg: RunConfig,
    rows: Sequence[RoundSummary],
    *,
    cost: CostTable | None,
    final_state: Mapping[str, np.ndarray] | None,
    train_size: int,
    evaluation: Mapping[str, float] | None = None,
    notes: Sequence[str] = (),
    ap_per_round: Sequence[tuple[int, float]] = (),
    timing: Mapping[str, float] | None = None,
) -> Path:
    """Write ``report.md``, the plots, ``rounds.json`` and the final model into ``out_dir``.

    ``ap_per_round`` holds ``(round, AP)`` pairs for ``ap.png``; ``timing`` the job's
    seconds by stage (for example start-up, rounds, evaluation, total) for the time table.

    Returns
    -------
    pathlib.Path
        The path of ``report.md``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        plot_loss(rows, out / "loss.png")
        plot_breakdown(rows, out / "round_time.png")
    if ap_per_round:
        plot_ap(ap_per_round, out / "ap.png")
    if final_state is not None:
        from worker.models import save_model

        save_model(final_state, out / "model.safetensors", cfg.task or cfg.model, min_size=cfg.min_size,
                   max_size=cfg.max_size, job=cfg.job)
    (out / "rounds.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    lines = [f"# kofn training run `{cfg.job}`", "",
             f"{cfg.task or cfg.model}, {cfg.workers} workers, mode `{cfg.mode}` (k={cfg.k}, s={cfg.s}"
             f"{f', t={cfg.t}' if hasattr(cfg.code_spec(), 't') else ''}), "
             f"{cfg.rounds} rounds of {cfg.local_iters} local steps (batch {cfg.batch_size}, lr {cfg.lr}), "
             f"launcher `{cfg.launcher}`, store `{cfg.store}`"
             f"{' (encrypted)' if cfg.encrypt else ''}.", ""]
    if cfg.straggle:
        lines += ["Injected: " + "; ".join(r.to_spec() for r in cfg.straggle) + ".", ""]
    lines += ["## Rounds", "", round_table(rows), "",
              "![loss](loss.png) ![round time](round_time.png)", ""]
    if ap_per_round:
        lines += ["Held-out AP after each round: " + ", ".join(
            f"round {r}: {v:.4f}" for r, v in ap_per_round) + ".", "", "![AP per round](ap.png)", ""]
    if timing:
        lines += ["## Time", "", "| stage | seconds |", "|---|---:|"]
        lines += [f"| {k} | {v:.1f} |" for k, v in timing.items()] + [""]
    epochs = epoch_losses(rows, cfg, train_size)
    if epochs:
        lines += ["Loss per epoch: " + ", ".join(f"epoch {e}: {v:.4f}" for e, v in epochs) + ".", ""]
    if evaluation:
        lines += ["## Evaluation (held-out split)", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in evaluation.items()] + [""]
    lines += memory_table(rows, cfg)
    if cost is not None:
        lines += ["## Cost estimate", "", cost.to_markdown(), ""]
    lines += [f"- {note}" for note in notes]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
