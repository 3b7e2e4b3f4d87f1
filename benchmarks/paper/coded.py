"""Past the paper: the coded modes under stragglers, as real jobs through a store.

Each configuration is one :func:`benchmarks.training.run_job`: the trigger uploads the
data and the initial model, ``N`` workers run the real worker loop as threads of this
process, and every worker sleeps ``Exp(rate)`` seconds per round while the last one
sleeps ``shift + Exp(rate)`` on top (shifted-exponential stragglers, Lee et al. 2018).
Unlike the paper's fleets these workers share this machine's cores, so the round times
compare the modes with each other, not with the fleets of Fig 3.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._common import markdown_table
from benchmarks.paper.settings import PaperSettings

__all__ = ["CODED_RUNS", "run_coded"]

#: (mode, with stragglers): plain without and with stragglers, then the coded modes.
CODED_RUNS = (("plain", False), ("plain", True), ("mds", True), ("gradient", True))


def run_coded(st: PaperSettings) -> tuple[str, list[dict[str, Any]], str]:
    """Run :data:`CODED_RUNS`; return the markdown table, its rows and the settings line."""
    from benchmarks.training import Settings, round_times, run_job

    tst = Settings(model=st.coded_model, workers=st.coded_workers, rounds=st.coded_rounds,
                   images=st.coded_images, size=st.coded_size, seed=st.seed,
                   modes=tuple(dict.fromkeys(m for m, _ in CODED_RUNS)))
    rows = []
    for mode, straggle in CODED_RUNS:
        root = Path(tempfile.mkdtemp(prefix=f"kofn-paper-{mode}-"))
        try:
            out = run_job(tst, mode, straggle, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        rows.append({"config": out.label, "round_mean_s": float(np.mean(round_times(out.ends))),
                     "heldout_loss": out.heldout[-1], "ap": out.ap, "restarts": out.restarts,
                     "settings": out.settings})
    table = markdown_table(["config", "round mean (s)", "final held-out loss", "AP@[.5:.95]",
                            "restarts"],
                           [[r["config"], r["round_mean_s"], r["heldout_loss"], r["ap"],
                             r["restarts"]] for r in rows])
    line = (f"{tst.model}, {tst.workers} workers, {tst.rounds} rounds of {tst.local_iters} local "
            f"steps (batch {tst.batch_size}, lr {tst.lr}), {tst.images} synthetic images at "
            f"{tst.size} px; stragglers `{tst.straggle()}`; mds: k = quorum = N - 1; gradient: "
            f"s = 1. Round mean: rounds 2..R.")
    return table, rows, line
