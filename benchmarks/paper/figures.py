"""The paper's figures as PNGs: Fig 3a/3b/3c and Fig 4."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.paper.fleet import FleetRun

__all__ = ["plot_fig3", "plot_fig4"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _name(run: FleetRun) -> str:
    return "one machine" if run.workers == 1 else f"{run.workers} workers"


def plot_fig3(runs: Sequence[FleetRun], folder: Path) -> list[Path]:
    """fig3a.png (loss per epoch), fig3b.png (AP), fig3c.png (training and total time)."""
    plt = _plt()
    models = list(dict.fromkeys(r.model for r in runs))
    colours = plt.get_cmap("tab10").colors
    paths = [folder / "fig3a.png", folder / "fig3b.png", folder / "fig3c.png"]

    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        for i, r in enumerate(r for r in runs if r.model == model):
            ax.plot(range(1, len(r.epoch_loss) + 1), r.epoch_loss, marker="o",
                    color=colours[i % len(colours)], label=_name(r))
        ax.set(title=model, xlabel="epoch", ylabel="training loss")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    fig.suptitle("Fig 3a: loss per epoch")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    configs = list(dict.fromkeys(_name(r) for r in runs))
    x = np.arange(len(models))
    width = 0.8 / len(configs)
    fig, ax = plt.subplots(figsize=(max(5.0, 2.2 * len(models) + 2), 3.6))
    for i, cfg in enumerate(configs):
        ap = [next((r.ap for r in runs if r.model == m and _name(r) == cfg), np.nan) for m in models]
        ax.bar(x + (i - (len(configs) - 1) / 2) * width, ap, width, label=cfg,
               color=colours[i % len(colours)])
    ax.set_xticks(x, models, fontsize=8)
    ax.set(ylabel="bbox AP@[.5:.95]", title="Fig 3b: held-out AP")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models) + 1.5, 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        sel = [r for r in runs if r.model == model]
        xs = np.arange(len(sel))
        ax.bar(xs - 0.2, [r.train_s for r in sel], 0.4, label="training", color=colours[0])
        ax.bar(xs + 0.2, [r.total_s for r in sel], 0.4, label="total", color=colours[1])
        ax.set_xticks(xs, [_name(r) for r in sel], fontsize=8)
        ax.set(title=model, ylabel="seconds")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Fig 3c: training time and total time (start-up + training + evaluation)")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=120)
    plt.close(fig)
    return paths


def plot_fig4(runs: Sequence[FleetRun], lambda_mb: int, path: Path) -> Path:
    """fig4.png: final loss against batch size, and each worker's peak memory vs Lambda's."""
    plt = _plt()
    batches = [r.batch_size for r in runs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    fits = [all(p <= lambda_mb for p in r.peak_mb) for r in runs]
    ax1.plot(batches, [r.epoch_loss[-1] for r in runs], color="C0", marker="o")
    for b, r, ok in zip(batches, runs, fits):
        if not ok:
            ax1.scatter([b], [r.epoch_loss[-1]], marker="x", s=120, color="C3", zorder=3)
    ax1.set(xscale="log", xlabel="batch size", ylabel="final training loss",
            title="Fig 4: loss against batch size (x: over the Lambda size)")
    ax1.set_xticks(batches, [str(b) for b in batches])
    for i, r in enumerate(runs):
        ax2.scatter([r.batch_size] * len(r.peak_mb), r.peak_mb, color="C0", s=14,
                    label="each worker's peak" if i == 0 else None)
    ax2.axhline(lambda_mb, color="C3", ls="--", label=f"Lambda {lambda_mb} MB")
    ax2.set(xscale="log", xlabel="batch size", ylabel="peak resident memory (MB)")
    ax2.set_xticks(batches, [str(b) for b in batches])
    ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
