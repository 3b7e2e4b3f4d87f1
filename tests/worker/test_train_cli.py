"""``kofn train``'s generated flags: every setting overridable, --set, --unset, --print-config."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from worker.cli import main
from worker.config import RunConfig

DEMO = str(Path(__file__).resolve().parents[2] / "configs" / "demo.toml")


def _printed(capsys, *args: str) -> dict:
    assert main(["train", *args, "--print-config"]) == 0
    return tomllib.loads(capsys.readouterr().out)


def test_readme_gradient_line_on_the_demo_config(capsys):
    # README: kofn train --config configs/demo.toml --mode gradient --s 1 --straggle ...
    cfg = _printed(capsys, "--config", DEMO, "--mode", "gradient", "--s", "1",
                   "--straggle", "shiftexp:shift=0.5,rate=2")
    assert cfg["code"]["mode"] == "gradient" and cfg["code"]["quorum"] == 4  # n - s: accepted
    assert [r["kind"] for r in cfg["straggle"]] == ["shiftexp"]


def test_unset_and_set_any_setting(capsys):
    cfg = _printed(capsys, "--config", DEMO, "--unset", "quorum", "--set", "lr=0.05",
                   "--set", "ec2_instance='m5.large'", "--no-evaluate", "--lambda-memory-mb", "1024")
    assert "quorum" not in cfg["code"]
    assert cfg["train"]["lr"] == 0.05 and cfg["train"]["evaluate"] is False
    assert cfg["cost"]["ec2_instance"] == "m5.large" and cfg["cost"]["lambda_memory_mb"] == 1024


def test_printed_config_reads_back_equal(tmp_path, capsys):
    assert main(["train", "--config", DEMO, "--workers", "6", "--print-config"]) == 0
    path = tmp_path / "printed.toml"
    path.write_text(capsys.readouterr().out)
    want = RunConfig.from_toml(DEMO, workers=6)
    assert RunConfig.from_toml(path) == want


@pytest.mark.parametrize("args, message", [
    (["--set", "learning_rate=1"], "'--set' must be SETTING=VALUE with a known setting"),
    (["--unset", "nope"], "Unknown setting 'nope' to unset"),
])
def test_bad_set_and_unset_are_one_line(capsys, args, message):
    assert main(["train", "--config", DEMO, *args, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
