"""The sweep figure: paired energy, energy ratio to the optimum, feasibility and success.

Four panels share the x axis:

1. energy, mean ± standard error over the seeds where every policy meets the budget at
   every value of the axis (the same instances along the whole curve); when fewer than
   :data:`MIN_AXIS_SEEDS` seeds qualify, over the seeds where every policy meets it at that
   value, with the count written under each point;
2. each policy's energy over the optimum's on the same seed, mean over the seeds where the
   policy meets the budget (1 is the optimum; nothing can lie below it);
3. the share of seeds on which each policy meets the budget;
4. the mean predicted deadline-success probability ``P(K results by T)``, with the target
   ``1 - eps`` as a dashed line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MIN_AXIS_SEEDS", "STYLE", "plot_sweep"]

MIN_AXIS_SEEDS = 3

STYLE = {"igp": ("C0", "o"), "exact": ("k", "x"), "rop": ("C2", "^"), "aop": ("C3", "s"),
         "lcp": ("C1", "D"), "aop-blind": ("C4", "v"), "lcp-blind": ("C5", "<"),
         "rop-once": ("C6", ">")}


def _series(result, name: str, key: str):
    from offload.experiments import AXES

    s = [r for r in result.summary if r["policy"] == name]
    xs = np.array([r["x"] for r in s], dtype=float) * AXES[result.x].scale
    return xs, np.array([np.nan if r[key] is None else r[key] for r in s], dtype=float), s


def plot_sweep(result, path) -> Path:
    """Draw the four panels of ``result`` (a :class:`~offload.experiments.SweepResult`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from offload.experiments import AXES

    axis = AXES[result.x]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.6), dpi=80, sharex=True)
    ax_e, ax_r, ax_f, ax_p = axes.ravel()
    ref = result.reference or "-"
    which = "axis" if len(result.axis_seeds) >= MIN_AXIS_SEEDS else "common"
    for name in result.policies:
        color, marker = STYLE.get(name, (None, "."))
        ls = ":" if name == ref else "-"
        kw = dict(color=color, marker=marker, ls=ls, ms=4, label=name.upper())
        xs, e, s = _series(result, name, f"energy_{which}_mean_J")
        _, sem, _ = _series(result, name, f"energy_{which}_sem_J")
        ax_e.errorbar(xs, e, yerr=sem, capsize=2, **kw)
        _, ratio, _ = _series(result, name, "energy_ratio_mean")
        ax_r.plot(xs, ratio, **kw)
        _, feas, _ = _series(result, name, "feasibility_rate")
        ax_f.plot(xs, feas, **kw)
        _, succ, _ = _series(result, name, "success_mean")
        ax_p.plot(xs, succ, **kw)
    if which == "common":
        xs, _, s = _series(result, result.policies[0], "common_seeds")
        for x, r in zip(xs, s):
            ax_e.annotate(f"n={r['common_seeds']}", (x, 0), xycoords=("data", "axes fraction"),
                          xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
        title = "Energy on seeds where all meet the budget at this x"
    else:
        title = (f"Energy on the {len(result.axis_seeds)} seeds where all meet the budget "
                 f"at every x")
    lows = [r["success_mean"] for r in result.summary if r["success_mean"] is not None]
    ax_p.set_ylim(min(0.9, min(lows, default=0.9) - 0.02), 1.005)
    eps = result.config.get("eps")
    if eps is not None:
        ax_p.axhline(1 - eps, color="grey", ls="--", lw=1, label=f"1 - eps = {1 - eps:g}")
    ax_r.axhline(1.0, color="grey", lw=0.8)
    ax_e.set(ylabel="Energy (J), mean ± s.e.", title=title)
    ax_r.set(ylabel=f"Energy / {ref.upper()} energy",
             title="Energy / optimum, same seed (mean where feasible)")
    ax_f.set(xlabel=axis.label, ylabel="Share of seeds", ylim=(-0.05, 1.05),
             title=f"Meets the budget ({result.seeds} seeds)")
    ax_p.set(xlabel=axis.label, ylabel="P(K results by T)",
             title="Predicted deadline-success probability (mean)")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    ax_e.legend(fontsize=7, ncol=2)
    ax_p.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
