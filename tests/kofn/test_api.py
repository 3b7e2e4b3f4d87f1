"""The public face: ``import kofn``, ``kofn --version``, ``python -m kofn``, the bridge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kofn

ROOT = Path(__file__).resolve().parents[2]


def test_public_names_resolve():
    for name in kofn.__all__:
        assert getattr(kofn, name) is not None, name
    assert (ROOT / "kofn" / "py.typed").exists()


def test_version_on_the_command_line(capsys):
    from worker.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"kofn {kofn.__version__}"


def test_python_dash_m_kofn_runs_the_cli():
    out = subprocess.run([sys.executable, "-m", "kofn", "--version"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"kofn {kofn.__version__}"


def test_one_worker_allreduce_of_numpy_and_torch(tmp_path):
    torch = pytest.importorskip("torch")
    with kofn.AllReduce(kofn.LocalStore(tmp_path), kofn.make_code("plain", 1), worker=0) as s:
        got = s.allreduce({"w": np.arange(3.0)})
        assert got["w"].tolist() == [0.0, 1.0, 2.0]
        model = torch.nn.Linear(2, 1)
        before = kofn.to_numpy(model)
        mean = s.allreduce({k: np.ones_like(v) for k, v in before.items()})
    kofn.add_(model, mean)
    after = kofn.to_numpy(model)
    assert all(np.allclose(after[k], before[k] + 1) for k in before)
    back = kofn.from_numpy(after, like=model)
    assert back["weight"].dtype == torch.float32
