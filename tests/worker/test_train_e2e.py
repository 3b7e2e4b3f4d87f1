"""End to end: the small CNN on synthetic data through the coded exchange, in every mode.

The mode matrix runs workers as threads in this process (one torch import, one thread each)
against a LocalStore, through the same :func:`worker.runner.run_worker` the launchers run.
The CLI test and the resume test go through ``kofn train`` with worker subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("worker.local_train")

from exchange.stores.local import LocalStore  # noqa: E402
from worker.config import RunConfig  # noqa: E402
from worker.runner import WorkerSpec, run_worker  # noqa: E402
from worker.straggle import parse_straggle  # noqa: E402
from worker.trigger import checkpoint_key, decode_state, trigger  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def small(tmp_path: Path, **kw) -> RunConfig:
    base = dict(job="e2e", store=f"file://{tmp_path / 'store'}", workers=3, rounds=2,
                model="small_cnn", min_size=64, max_size=64, image_size=64, synth_images=14,
                local_iters=2, batch_size=2, lr=0.02, encrypt=False, grace=0.3,
                round_timeout=120.0, seed=3)
    base.update(kw)
    return RunConfig(**base)


def run_threads(cfg: RunConfig, store: LocalStore) -> tuple[dict[int, list], dict[int, list]]:
    """Trigger, then run every worker as a thread; return records and averages per worker."""
    torch.set_num_threads(1)
    trigger(cfg, store)
    records: dict[int, list] = {i: [] for i in range(cfg.workers)}
    averages: dict[int, list] = {i: [] for i in range(cfg.workers)}
    errors: list[BaseException] = []

    def go(i: int) -> None:
        spec = WorkerSpec(store=cfg.store, job=cfg.job, worker=i, encrypt=False)
        try:
            run_worker(spec, store=store,
                       on_round=lambda rec, avg: (records[i].append(rec), averages[i].append(avg)))
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(cfg.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    if errors:
        raise errors[0]
    return records, averages


def flat(avg: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(avg[k], dtype=np.float64).ravel() for k in sorted(avg)])


@pytest.mark.slow
def test_coded_aggregates_equal_plain(tmp_path):
    """With identical seeds and nobody dropped, mds/gradient/secure decode plain's average."""
    ref = None
    for mode, extra in [("plain", {}), ("mds", {"k": 2}), ("gradient", {"s": 1}),
                        ("secure", {"k": 3, "t": 1})]:
        cfg = small(tmp_path, job=f"eq-{mode}", mode=mode, rounds=1, **extra)
        _, averages = run_threads(cfg, LocalStore(tmp_path / "store"))
        got = flat(averages[0][0])
        for i in range(1, cfg.workers):  # every worker decoded the same average
            np.testing.assert_allclose(flat(averages[i][0]), got, rtol=0, atol=1e-9 * np.abs(got).max())
        if ref is None:
            ref = got
            assert np.linalg.norm(ref) > 0
        else:
            rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
            assert rel < 1e-6, f"{mode}: relative difference {rel:.2e} from plain"


# (mode, extra settings, dead worker or None)
MATRIX = [
    ("plain", {}, None),
    ("backup", {"s": 1}, 2),
    ("mds", {"k": 2, "quorum": 2}, 1),
    ("gradient", {"s": 1}, 0),
    ("secure", {"k": 2, "t": 1, "quorum": 2}, 2),
]


@pytest.mark.parametrize("mode, extra, dead", MATRIX, ids=[m[0] for m in MATRIX])
def test_every_mode_completes_and_learns(tmp_path, mode, extra, dead):
    straggle = parse_straggle(f"dead:worker={dead}") if dead is not None else ()
    cfg = small(tmp_path, job=f"m-{mode}", mode=mode, rounds=4, straggle=straggle, **extra)
    store = LocalStore(tmp_path / "store")
    records, _ = run_threads(cfg, store)
    live = [i for i in range(cfg.workers) if i != dead]
    for i in live:
        assert [rec["round"] for rec in records[i]] == [1, 2, 3, 4]
    if dead is not None:
        assert records[dead] == []
        assert all(dead not in rec["contributors"] for i in live for rec in records[i])
    assert store.exists(checkpoint_key(cfg.job, cfg.rounds))
    loss = [np.mean([records[i][r]["loss"] for i in live]) for r in range(cfg.rounds)]
    assert loss[-1] < loss[0], f"loss did not fall: {loss}"


def test_one_round_mds_in_process(tmp_path):
    """Fast check: one mds round with a fixed straggler; the checkpoint moves by the average."""
    cfg = small(tmp_path, mode="mds", rounds=1, straggle=parse_straggle("worker=1,delay=0.2"))
    store = LocalStore(tmp_path / "store")
    records, averages = run_threads(cfg, store)
    rec = records[0][0]
    assert rec["contributors"] == [0, 1, 2] and len(rec["aggregators"]) >= cfg.k
    assert records[1][0]["compute_s"] >= 0.2
    before = decode_state(store.get(checkpoint_key(cfg.job, 0)))
    after = decode_state(store.get(checkpoint_key(cfg.job, 1)))
    for key in before:
        expect = (before[key].astype(np.float64) + averages[0][0][key]).astype(before[key].dtype)
        np.testing.assert_allclose(after[key], expect, rtol=1e-6, atol=1e-6)


def kofn(*args: str, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "worker.cli", *args], cwd=popen.pop("cwd"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


TRAIN_ARGS = ["train", "--workers", "3", "--mode", "mds", "--k", "2", "--model", "small_cnn",
              "--synth-images", "12", "--image-size", "64", "--local-iters", "1",
              "--batch-size", "2", "--no-encrypt", "--no-evaluate", "--grace", "0.3"]


@pytest.mark.slow
def test_kofn_train_cli_writes_report(tmp_path):
    cfg = tmp_path / "run.toml"
    # 128 MB, Lambda's smallest size: a torch worker's measured peak RSS is above it
    cfg.write_text('min_size = 64\nmax_size = 64\nlambda_memory_mb = 128\n')
    proc = kofn(*TRAIN_ARGS, "--config", str(cfg), "--rounds", "2", "--job", "cli",
                "--store", f"file://{tmp_path / 'store'}", "--runs-dir", str(tmp_path / "runs"),
                "--straggle", "worker=1,delay=0.5", cwd=tmp_path)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    assert "round 1/2" in out and "round 2/2" in out and "aggregators" in out
    run = tmp_path / "runs" / "cli"
    for name in ("report.md", "loss.png", "round_time.png", "model.safetensors"):
        assert (run / name).is_file(), name
    text = (run / "report.md").read_text()
    assert "| round |" in text and "S3 PUT" in text and "EC2 baseline" in text
    # each worker's peak RSS is in the report, and the trigger warned once, in one line
    assert [line for line in out.splitlines() if line.startswith("warning:")] == [
        next(line for line in out.splitlines() if "above the configured Lambda memory of 128 MB"
             in line)]
    assert "## Memory" in text and text.count("| NO |") == 3
    rounds = json.loads((run / "rounds.json").read_text())
    assert all(set(r["peak_rss_mb"]) == {"0", "1", "2"} for r in rounds)
    assert all(128 < mb < 64 * 1024 for r in rounds for mb in r["peak_rss_mb"].values())


@pytest.mark.slow
def test_resume_after_killing_the_trigger(tmp_path):
    store_url = f"file://{tmp_path / 'store'}"
    common = [*TRAIN_ARGS, "--rounds", "4", "--store", store_url, "--runs-dir", str(tmp_path / "runs")]
    (tmp_path / "run.toml").write_text('min_size = 64\nmax_size = 64\n')
    proc = kofn(*common, "--config", str(tmp_path / "run.toml"), "--job", "res", cwd=tmp_path,
                start_new_session=True)
    store = LocalStore(tmp_path / "store")
    deadline = time.monotonic() + 600
    while not store.exists(checkpoint_key("res", 1)):  # wait until round 1 is done
        assert proc.poll() is None, proc.stdout.read()
        if time.monotonic() > deadline:
            pytest.fail("round 1 did not complete within the 600 s guard")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the trigger and its workers, as a machine loss would
    proc.wait()
    assert not store.exists(checkpoint_key("res", 4))
    again = kofn("train", "--resume", "res", "--store", store_url, "--no-encrypt",
                 "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out
    assert "resuming job res after round" in out and "round 4/4" in out
    assert store.exists(checkpoint_key("res", 4))
    assert (tmp_path / "runs" / "res" / "report.md").is_file()
