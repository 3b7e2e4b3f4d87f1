"""The examples run as a user would run them (CI runs them too)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_digits_allreduce_every_worker_finishes_every_round():
    pytest.importorskip("sklearn")
    out = subprocess.run([sys.executable, "examples/digits_allreduce.py"], capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = re.findall(r"worker (\d): (\d+) rounds, test accuracy ([0-9.]+)", out.stdout)
    assert sorted(int(w) for w, _, _ in lines) == [0, 1, 2, 3, 4]  # the straggler too
    assert all(int(r) == 30 for _, r, _ in lines)
    accuracies = {a for _, _, a in lines}
    assert len(accuracies) == 1  # every worker holds the same model
    assert float(accuracies.pop()) > 0.3  # ten classes: far above chance


@pytest.mark.slow
def test_digits_task_through_kofn_train(tmp_path):
    pytest.importorskip("sklearn")
    cmd = [sys.executable, "-m", "worker.cli", "train", "--config", "examples/digits.toml",
           "--task", "examples.digits_task:task", "--rounds", "3", "--store", str(tmp_path / "store"),
           "--runs-dir", str(tmp_path / "runs")]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.findall(r"^round (\d)/3 ", out.stdout, re.M) == ["1", "2", "3"]
    accuracy = float(re.search(r"evaluation: accuracy ([0-9.]+)", out.stdout).group(1))
    assert accuracy > 0.3  # ten classes: far above chance
    reports = list((tmp_path / "runs").glob("*/report.md"))
    assert len(reports) == 1
    # the straggler finished every round too: one record per worker and round
    records = list((tmp_path / "store").rglob("stats/round-*/worker-*.json"))
    assert len(records) == 5 * 3
