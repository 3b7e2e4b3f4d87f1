"""Table 1 (cost) and the markdown tables of the paper benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks._common import markdown_table
from benchmarks.paper.fleet import FleetRun

__all__ = ["BASELINE", "cost_rows", "fig3_tables", "fig4_table", "pretrained_table"]

#: The paper's EC2 baseline: the one-machine run on one on-demand t3.xlarge.
BASELINE = "t3.xlarge"


def _config(run: FleetRun) -> str:
    return "one machine" if run.workers == 1 else f"{run.workers} workers"


def fig3_tables(runs: Sequence[FleetRun]) -> str:
    """Fig 3a (loss per epoch), 3b (AP) and 3c (times) as one markdown table."""
    epochs = max(len(r.epoch_loss) for r in runs)
    head = ["model", "config", *[f"loss e{e + 1}" for e in range(epochs)], "AP@[.5:.95]", "AP50",
            "start-up (s)", "training (s)", "evaluation (s)", "total (s)"]
    rows = [[r.model, _config(r), *r.epoch_loss, r.ap, r.ap50, r.startup_s, r.train_s,
             r.eval_s, r.total_s] for r in runs]
    return markdown_table(head, rows)


def cost_rows(runs: Sequence[FleetRun], lambda_mb: int) -> tuple[str, list[dict[str, Any]]]:
    """Table 1: each fleet on Lambda (S3 requests included) against one t3.xlarge.

    The one-machine run of the same model is priced on one on-demand ``t3.xlarge`` for its
    start-up plus training time, the paper's baseline.
    """
    from worker.cost import Usage, estimate_cost, load_prices

    prices = load_prices()
    single = {r.model: r for r in runs if r.workers == 1}
    rows, data = [], []
    for r in runs:
        if r.workers == 1:
            continue
        usage = Usage(worker_seconds=r.worker_seconds, invocations=r.workers, puts=r.puts,
                      gets=r.gets, lists=r.lists, wall_seconds=r.startup_s + r.train_s,
                      workers=r.workers)
        table = estimate_cost(usage, prices, memory_mb=lambda_mb, ec2_instance=BASELINE)
        by = {ln.item.split(" (")[0]: ln.cost for ln in table.lines}
        s3 = by["S3 PUT"] + by["S3 GET"] + by["S3 LIST"]
        base = single.get(r.model)
        ec2 = float("nan")
        if base is not None:
            ec2 = prices.ec2_hourly[BASELINE] * (base.startup_s + base.train_s) / 3600
        rec = {"model": r.model, "workers": r.workers, "lambda_duration": by["Lambda duration"],
               "lambda_requests": by["Lambda requests"], "s3_requests": s3,
               "requests": r.puts + r.gets + r.lists, "serverless_total": table.serverless_total,
               "t3_xlarge_one_machine": ec2}
        data.append(rec)
        rows.append([r.model, r.workers, rec["lambda_duration"], rec["lambda_requests"],
                     rec["requests"], s3, rec["serverless_total"], ec2])
    head = ["model", "workers", f"Lambda {lambda_mb} MB (USD)", "Lambda requests (USD)",
            "S3 requests", "S3 requests (USD)", "serverless total (USD)",
            f"one machine, 1 x {BASELINE} (USD)"]
    src = prices.sources.get("lambda", "")
    note = (f"\n\nPrices: `worker/data/prices.toml` ({prices.region}, as of {prices.as_of}; "
            f"{src}); check them before quoting. Lambda bills every worker from its start-up "
            f"to the last round; the trigger's upload of the partitions is not included.")
    return markdown_table(head, rows) + note, data


def fig4_table(runs: Sequence[FleetRun], lambda_mb: int) -> str:
    """Fig 4: final loss and each worker's peak memory against the Lambda size, per batch."""
    head = ["batch", "final loss", "AP@[.5:.95]", "peak MB per worker", f"fits {lambda_mb} MB"]
    rows = []
    for r in runs:
        peaks = ", ".join(f"{p:.0f}" for p in r.peak_mb)
        fits = all(p <= lambda_mb for p in r.peak_mb)
        rows.append([r.batch_size, r.epoch_loss[-1], r.ap, peaks, "yes" if fits else "NO"])
    return markdown_table(head, rows)


def pretrained_table(pairs: Sequence[tuple[FleetRun, FleetRun | None]], reason: str = "") -> str:
    """AP from the pretrained backbone and from random weights, side by side."""
    head = ["model", "config", "AP random init", "AP pretrained backbone", "AP50 random",
            "AP50 pretrained", "final loss random", "final loss pretrained"]
    rows = []
    for rand, pre in pairs:
        if pre is None:
            rows.append([rand.model, _config(rand), rand.ap, f"not run: {reason}", rand.ap50, "-",
                         rand.epoch_loss[-1], "-"])
        else:
            rows.append([rand.model, _config(rand), rand.ap, pre.ap, rand.ap50, pre.ap50,
                         rand.epoch_loss[-1], pre.epoch_loss[-1]])
    return markdown_table(head, rows)
