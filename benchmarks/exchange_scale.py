"""Exchange at scale: requests, bytes and round time per round against the worker count N.

    python -m benchmarks.exchange_scale                  # N = 4..128 local, 4..32 on Ceph RGW
    python -m benchmarks.exchange_scale --quick          # N = 4, 8, 16, local only
    python -m benchmarks.exchange_scale --no-s3          # local only

Writes ``results/exchange/scale.{json,md,png}`` for the full run (``--quick`` or
``--no-s3``: ``results/tmp/exchange/``, never the committed reference), one progress line per
case on stderr.

Each case is one ``mds`` round (``k = N - ceil(N / 8)``: an eighth of the aggregators may
straggle) of ``N`` workers, each a thread with its own :class:`~exchange.round.Exchange`
running ``Exchange.run`` (publish, aggregate its own slot, collect) on an update of
``LENGTH`` float64 entries, over one store shared through a
:class:`~exchange.stores.counting.CountingStore`. A warm-up round comes first; the measured
round is the second, whose requests and bytes are counted alone. Round time is from the
first worker's start to the last worker holding the sum (threads of one process share
the GIL and two cores here, so it grows with ``N`` faster than on ``N`` machines; the
request and byte counts are what ``N`` machines would issue). Every worker checks its sum
against the exact one.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks._common import machine_info, markdown_table, progress, results_dir
from benchmarks.exchange import SERVER, new_store_spec, s3_setup, wipe
from exchange.codespec import CodeSpec
from exchange.round import Exchange, RoundConfig
from exchange.stores.counting import CountingStore

LENGTH = 1 << 15  # entries per update (256 KiB of float64)
LOCAL_N = (4, 8, 16, 32, 64, 128)
S3_N = (4, 8, 16, 32)


def code_for(n: int) -> CodeSpec:
    """The case's code: mds with an eighth of the aggregators allowed to straggle."""
    return CodeSpec("mds", n, k=n - math.ceil(n / 8))


def one_round(store: CountingStore, n: int, r: int, updates: np.ndarray) -> dict:
    """Round ``r`` of ``n`` worker threads; its time, request counts and worst error."""
    cfg = RoundConfig(job="scale", code=code_for(n), deadline_s=600.0, takeover_after_s=60.0,
                      poll_min_s=0.01, poll_max_s=0.2, keep_rounds=0, threads=2)
    want = updates.sum(0)
    ends, errs, fails = [0.0] * n, [0.0] * n, []
    start = threading.Barrier(n)

    def worker(w: int) -> None:
        try:
            with Exchange(store, cfg) as ex:
                start.wait()
                res = ex.run(r, w, updates[w])
                ends[w] = time.monotonic()
                errs[w] = float(np.max(np.abs(res.total - want)))
        except BaseException as err:  # noqa: BLE001 - reported below
            fails.append(f"worker {w}: {type(err).__name__}: {err}")

    store.reset()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if fails:
        raise RuntimeError(fails[0])
    st = store.reset()
    return {"round_s": max(ends) - t0, "puts": st.puts, "gets": st.gets, "lists": st.lists,
            "bytes_up": st.bytes_up, "bytes_down": st.bytes_down, "max_err": max(errs)}


def case(kind: str, bucket: str, n: int) -> dict:
    spec = new_store_spec(kind, bucket)
    updates = np.random.default_rng(n).normal(size=(n, LENGTH))
    try:
        with CountingStore(spec.open()) as store:
            one_round(store, n, 0, updates)  # warm-up: imports, connections, code objects
            row = one_round(store, n, 1, updates)
    finally:
        wipe(spec)
    code = code_for(n)
    row.update(store=kind, n=n, k=code.k, mb_moved=(row["bytes_up"] + row["bytes_down"]) / 1e6)
    progress(f"{kind} N={n}: {row['puts']} PUT, {row['gets']} GET, {row['lists']} LIST, "
             f"{row['mb_moved']:.1f} MB, round {row['round_s']:.2f} s, max err {row['max_err']:.1e}")
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for kind, marker in (("local", "o"), ("s3", "s")):
        sel = [r for r in rows if r["store"] == kind]
        if not sel:
            continue
        ns = [r["n"] for r in sel]
        label = "LocalStore" if kind == "local" else "Ceph RGW"
        axes[0].plot(ns, [r["puts"] for r in sel], marker=marker, label=f"PUT, {label}")
        axes[0].plot(ns, [r["gets"] for r in sel], marker=marker, ls="--", label=f"GET, {label}")
        axes[1].plot(ns, [r["mb_moved"] for r in sel], marker=marker, label=label)
        axes[2].plot(ns, [r["round_s"] for r in sel], marker=marker, label=label)
    ns = sorted({r["n"] for r in rows})
    axes[0].plot(ns, [3 * n + 1 for n in ns], color="grey", lw=0.8, label="3N + 1 (PUT formula)")
    for ax, title in zip(axes, ("requests per round", "MB moved per round", "round time (s)"),
                         strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("workers N")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.exchange_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 4, 8, 16 on LocalStore")
    parser.add_argument("--no-s3", action="store_true", help="LocalStore only")
    args = parser.parse_args(argv)
    full = not (args.quick or args.no_s3)
    local_n = (4, 8, 16) if args.quick else LOCAL_N
    use_s3 = full
    bucket = os.environ.get("KOFN_S3_BUCKET", "kofn-bench")
    started = s3_setup(bucket) if use_s3 else False
    t0 = time.monotonic()
    rows = []
    try:
        rows += [case("local", bucket, n) for n in local_n]
        if use_s3:
            rows += [case("s3", bucket, n) for n in S3_N]
    finally:
        if started:
            subprocess.run([str(SERVER), "stop"], check=False, timeout=120)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown_table(
        ["store", "N", "k", "PUT", "3N + 1 (least)", "GET", "LIST", "MB up", "MB down", "round s", "max err"],
        [[r["store"], r["n"], r["k"], r["puts"], 3 * r["n"] + 1, r["gets"], r["lists"],
          r["bytes_up"] / 1e6, r["bytes_down"] / 1e6, r["round_s"], r["max_err"]] for r in rows])
    md = (f"# Exchange at scale: one mds round of N worker threads\n\n"
          f"Command: `{' '.join(['python -m benchmarks.exchange_scale', command]).strip()}`; updates of {LENGTH} "
          f"float64 entries, k = N - ceil(N/8); {time.monotonic() - t0:.0f} s in all.\n\n"
          f"{table}\n\n![requests, bytes and round time against N](scale.png)\n")
    print(md)
    folder = results_dir("exchange", quick=not full)
    folder.mkdir(parents=True, exist_ok=True)
    import json

    (folder / "scale.json").write_text(json.dumps(
        {"machine": machine_info(), "length": LENGTH, "rows": rows}, indent=1, default=float) + "\n")
    (folder / "scale.md").write_text(md)
    plot(rows, folder / "scale.png")
    progress(f"wrote {folder}/scale.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
