"""Shared helpers for the benchmarks: timing, tables, machine info and result files."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent.parent / "results"
#: Where quick modes write: ignored by git, so a quick check never overwrites a committed
#: reference result under ``results/<name>/``.
QUICK_RESULTS = RESULTS / "tmp"


def results_dir(name: str, *, quick: bool = False) -> Path:
    """``results/<name>/`` for a full run, ``results/tmp/<name>/`` for a quick one."""
    return (QUICK_RESULTS if quick else RESULTS) / name


def best_time(fn: Callable[[], object], *, repeat: int = 5, min_time: float = 0.0) -> float:
    """Best (minimum) wall time of ``fn`` over ``repeat`` runs after one warm-up.

    The minimum is the least noisy estimate on a shared machine: noise only adds time.
    """
    fn()
    best = float("inf")
    start = time.perf_counter()
    runs = 0
    while runs < repeat or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    info: dict[str, object] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table with right-aligned numbers."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
                return f"{v:.2e}"
            return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(out)


def write_results(name: str, payload: dict, markdown: str, *, quick: bool = False) -> Path:
    """Write ``<name>.json`` and ``.md`` into :func:`results_dir`; return the folder."""
    folder = results_dir(name, quick=quick)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    (folder / f"{name}.md").write_text(markdown + "\n")
    return folder


def progress(msg: str) -> None:
    """One progress line on stderr, so stdout stays a clean table."""
    import sys

    print(f"  .. {msg}", file=sys.stderr, flush=True)
