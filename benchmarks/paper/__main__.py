"""Reproduce the serverless training paper's figures: ``python -m benchmarks.paper``.

    python -m benchmarks.paper                       # the paper's settings, synthetic data
    python -m benchmarks.paper --data PennFudanPed   # the same on the real set
    python -m benchmarks.paper --quick               # shrunk (every change is printed)

Fig 3a (loss per epoch), 3b (AP@[.5:.95]) and 3c (training and total time) for the three
models with 5, 7 and 9 workers and one machine; Table 1 (the fleets' Lambda and S3 request
cost against one t3.xlarge); Fig 4 (loss against batch size, with each worker's measured
peak memory against the Lambda size); AP from the pretrained MobileNetV2 backbone beside
random weights; and, past the paper, the coded modes under stragglers. The paper's
settings: 3 epochs (one epoch = one pass over a worker's partition), batch 1, lr 0.005.
How the fleets are run and timed: :mod:`benchmarks.paper.fleet`.

Writes ``results/paper/`` (``--quick``: ``results/tmp/paper/``): ``paper.md``,
``paper.json``, ``fig3a.png``, ``fig3b.png``, ``fig3c.png`` and ``fig4.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import machine_info, progress, results_dir, write_results
from benchmarks.paper.fleet import FleetRun, load_dataset, run_fleet
from benchmarks.paper.settings import PaperSettings, quick_settings

NAME = "paper"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, not {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers, not {text!r}")
    return values


def parse_args(argv: list[str] | None) -> PaperSettings:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shrunk sizes, about a minute (CI)")
    p.add_argument("--data", help="PennFudanPed folder (default: synthetic images)")
    p.add_argument("--models", help="comma-separated registry models")
    p.add_argument("--workers", type=_ints, help="worker counts, e.g. 5,7,9")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--lr", type=float)
    p.add_argument("--images", type=int, help="synthetic images")
    p.add_argument("--image-size", type=int, dest="image_size")
    p.add_argument("--min-size", type=int, dest="min_size")
    p.add_argument("--max-size", type=int, dest="max_size")
    p.add_argument("--fig4-batches", type=_ints, dest="fig4_batches")
    p.add_argument("--weights", help="pretrained backbone file (default: scripts/fetch_weights.py's)")
    p.add_argument("--no-coded", action="store_true", help="skip the coded modes under stragglers")
    p.add_argument("--out", help="output folder (default results/paper, --quick results/tmp/paper)")
    args = p.parse_args(argv)
    st = PaperSettings(data=args.data, out=args.out)
    if args.quick:
        st = quick_settings(st)
    changes: dict[str, Any] = {k: getattr(args, k) for k in (
        "workers", "epochs", "batch_size", "lr", "images", "image_size", "min_size", "max_size",
        "fig4_batches", "weights") if getattr(args, k) is not None}
    if args.models:
        changes["models"] = tuple(m for m in args.models.split(",") if m)
    from worker.models import MODELS

    for model in changes.get("models", ()):
        if model not in MODELS:
            p.error(f"--models: {model!r} is not one of {', '.join(sorted(MODELS.names()))}")
    st = st.replace(**changes)
    return st.replace(coded_rounds=0) if args.no_coded else st


def pretrained_weights(st: PaperSettings) -> tuple[Path | None, str]:
    """The backbone file, fetched into the ignored cache if need be; or why there is none."""
    if st.weights is not None:
        from worker.weights import resolve_weights

        return resolve_weights(st.weights), ""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import fetch_weights
    finally:
        sys.path.pop(0)
    try:
        return fetch_weights.fetch(), ""
    except (OSError, SystemExit, Exception) as err:  # noqa: BLE001 - offline: say so, go on
        return None, f"no weights ({type(err).__name__}: run python3 scripts/fetch_weights.py)"


def _fits(model: str) -> bool:
    """Whether torchvision's ImageNet MobileNetV2 fits this model's backbone."""
    return model.startswith("fasterrcnn_mobilenet_v2")


def run_all(st: PaperSettings, root: Path) -> dict[str, Any]:
    """Every fleet of the figures, the pretrained comparison and the coded runs."""
    import torchvision.models.detection  # noqa: F401 - imported once, outside every start-up

    train, holdout = load_dataset(st)
    progress(f"data: {len(train)} training and {len(holdout)} held-out images")
    weights, reason = pretrained_weights(st)
    fleets: list[FleetRun] = []
    for model in st.models:
        w = weights if _fits(model) else None
        for n in (*st.workers, 1):
            fleets.append(run_fleet(st, model, n, train, holdout, batch_size=st.batch_size,
                                    weights=w, root=root))
    m4, n4 = st.models[0], st.workers[0]
    fig4 = []
    for b in st.fig4_batches:
        same = [r for r in fleets if r.model == m4 and r.workers == n4 and r.batch_size == b]
        fig4.append(same[0] if same else run_fleet(
            st, m4, n4, train, holdout, batch_size=b, weights=weights if _fits(m4) else None,
            root=root))
    pm = st.pretrained_model
    rand = run_fleet(st, pm, n4, train, holdout, batch_size=st.batch_size, root=root,
                     label=f"{pm} n={n4} random init")
    pre = None
    if weights is not None:
        done = [r for r in fleets if r.model == pm and r.workers == n4 and r.pretrained]
        pre = done[0] if done else run_fleet(st, pm, n4, train, holdout, batch_size=st.batch_size,
                                             weights=weights, root=root,
                                             label=f"{pm} n={n4} pretrained backbone")
    out: dict[str, Any] = {"fleets": fleets, "fig4": fig4, "pretrained": [(rand, pre)],
                           "pretrained_reason": reason, "weights": str(weights or ""),
                           "train_images": len(train), "holdout_images": len(holdout)}
    if st.coded_rounds:
        from benchmarks.paper.coded import run_coded

        out["coded"] = run_coded(st)
    return out


def report(st: PaperSettings, res: dict[str, Any], cmd: str, wall_s: float) -> tuple[str, dict]:
    """The markdown page and the JSON payload."""
    from dataclasses import asdict

    from benchmarks.paper.tables import cost_rows, fig3_tables, fig4_table, pretrained_table

    cost_md, cost_data = cost_rows(res["fleets"], st.lambda_mb)
    info = machine_info()
    data = st.data or f"{st.images} synthetic PennFudan-style images at {st.image_size} px"
    lines = [f"# The serverless training paper, reproduced{' (quick)' if st.quick else ''}", "",
             f"Command: `{cmd}` ({wall_s / 60:.1f} min on {info.get('cpu', '?')}, "
             f"{info.get('cpus')} CPUs, shared with other jobs; {info['date']}).", "",
             f"Data: {data}; {res['train_images']} training and {res['holdout_images']} "
             f"held-out images. Training: {st.epochs} epochs (one epoch = one pass over a "
             f"worker's partition, one exchange per epoch), batch {st.batch_size}, lr {st.lr}, "
             f"momentum {st.momentum}, weight decay {st.weight_decay}, resize "
             f"{st.min_size or 'default'}/{st.max_size or 'default'}. Workers run one after "
             "another in one process and are timed alone; their updates go through kofn's "
             "plain-mode exchange on a local store (see `benchmarks/paper/fleet.py`).", ""]
    if st.shrunk:
        lines += ["**Quick mode shrank:** " + "; ".join(st.shrunk) + ".", ""]
    if res["weights"]:
        lines += [f"Models with a MobileNetV2 backbone start from `{Path(res['weights']).name}` "
                  "(torchvision's ImageNet weights); the others from random weights.", ""]
    lines += ["## Fig 3: loss per epoch (3a), AP (3b), training and total time (3c)", "",
              fig3_tables(res["fleets"]), "", "![Fig 3a](fig3a.png)", "", "![Fig 3b](fig3b.png)",
              "", "![Fig 3c](fig3c.png)", "",
              "## Table 1: cost (Lambda, S3 requests) against one t3.xlarge", "", cost_md, "",
              f"## Fig 4: loss against batch size ({st.models[0]}, {st.workers[0]} workers)", "",
              fig4_table(res["fig4"], st.lambda_mb), "", "![Fig 4](fig4.png)", "",
              f"## Pretrained backbone against random weights ({st.workers[0]} workers)", "",
              pretrained_table(res["pretrained"], res["pretrained_reason"]), ""]
    if "coded" in res:
        table, _rows, line = res["coded"]
        lines += ["## Past the paper: coded modes under stragglers", "", line, "", table, ""]

    def run_dict(r: FleetRun | None) -> dict | None:
        return None if r is None else asdict(r) | {"total_s": r.total_s}

    payload = {"settings": asdict(st), "machine": info, "command": cmd, "wall_s": wall_s,
               "fleets": [run_dict(r) for r in res["fleets"]],
               "fig4": [run_dict(r) for r in res["fig4"]], "cost": cost_data,
               "pretrained": [[run_dict(a), run_dict(b)] for a, b in res["pretrained"]],
               "coded": res["coded"][1] if "coded" in res else None}
    return "\n".join(lines), payload


def main(argv: list[str] | None = None) -> int:
    st = parse_args(argv)
    cmd = "python -m benchmarks.paper " + " ".join(sys.argv[1:] if argv is None else argv)
    for note in st.shrunk:
        progress(f"quick: {note}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kofn-paper-") as tmp:
        res = run_all(st, Path(tmp))
    md, payload = report(st, res, cmd.strip(), time.perf_counter() - t0)
    folder = Path(st.out) if st.out else results_dir(NAME, quick=st.quick)
    folder.mkdir(parents=True, exist_ok=True)
    from benchmarks.paper.figures import plot_fig3, plot_fig4

    plot_fig3(res["fleets"], folder)
    plot_fig4(res["fig4"], st.lambda_mb, folder / "fig4.png")
    if st.out:
        (folder / f"{NAME}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
        (folder / f"{NAME}.md").write_text(md + "\n")
    else:
        write_results(NAME, payload, md, quick=st.quick)
    print(md)
    print(f"wrote {folder}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
