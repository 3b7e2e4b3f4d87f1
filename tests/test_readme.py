"""The README's commands, as written.

The cheap ones run for real in a scratch folder that sees the checkout's ``configs/`` and
``examples/``; the training ones (a minute or more each) run with ``--print-config``, which
parses the line and builds and validates the whole configuration; ``kofn matmul --plan``
(hundreds of real runs) is left to ``python3 scripts/check_readme.py``, which runs every
command as written on a fresh clone.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _script():
    spec = importlib.util.spec_from_file_location("check_readme", ROOT / "scripts" / "check_readme.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


CHECK = _script()
COMMANDS = CHECK.commands((ROOT / "README.md").read_text())
RUNNABLE = [c for c in COMMANDS if not c.skip]


def test_the_readme_names_what_each_skipped_command_needs():
    assert len(RUNNABLE) >= 10
    for c in COMMANDS:
        assert not c.skip or c.skip == "the set-up itself" or c.skip.startswith("needs "), c


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    where = tmp_path_factory.mktemp("readme")
    for name in ("configs", "examples"):
        (where / name).symlink_to(ROOT / name)
    return where


EXPORTS: dict[str, str] = {}  # the README's `export` lines, for the commands after them


def _run(line: str, where: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(ROOT), **EXPORTS)
    return subprocess.run(["bash", "-c", line], cwd=where, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.mark.parametrize("cmd", RUNNABLE, ids=[c.shell[:60] for c in RUNNABLE])
def test_readme_command_runs_as_written(cmd, scratch):
    line = cmd.shell
    if cmd.export:
        EXPORTS[cmd.export[0]] = cmd.export[1]
        return
    if line.startswith("kofn train") and "--print-config" not in line:
        line += " --print-config"
    elif "--plan" in line or "fetch_weights" in line:
        pytest.skip("many real runs, or a download: scripts/check_readme.py runs it")
    res = _run(line, scratch)
    assert res.returncode == 0, (line, res.stderr[-2000:])
