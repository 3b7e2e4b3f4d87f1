"""RunConfig: defaults, TOML, overrides, straggler rules, and one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from worker.config import ConfigError, RunConfig
from worker.straggle import Straggle, parse_straggle


def test_defaults_and_mode_defaults_for_k():
    assert RunConfig().k == 4
    assert RunConfig(mode="plain").k == 5
    assert RunConfig(mode="gradient", s=2).k == 5
    assert RunConfig(mode="secure", workers=6).k == 5


def test_frozen():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.k = 3  # type: ignore[misc]


def test_toml_sections_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'job = "demo"\nmode = "mds"\nworkers = 5\nk = 4\n'
        '[train]\nrounds = 3\nlr = 0.05\n'
        '[[straggle]]\nkind = "fixed"\nworker = 1\ndelay = 2.0\n'
    )
    cfg = RunConfig.from_toml(path, rounds=7, k=None)
    assert (cfg.job, cfg.mode, cfg.workers, cfg.k, cfg.rounds, cfg.lr) == ("demo", "mds", 5, 4, 7, 0.05)
    assert cfg.straggle == (Straggle("fixed", worker=1, delay=2.0),)
    over = cfg.with_overrides(workers=3)
    assert (over.workers, over.k) == (3, 2)  # k re-derived when n changes
    assert cfg.with_overrides(mode="plain").k == 5


def test_round_trip_through_dict():
    cfg = RunConfig(job="x", straggle=parse_straggle("worker=1,delay=2;shiftexp:shift=0.5,rate=2"))
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("text, expected", [
    ("worker=1,delay=2.0", (Straggle("fixed", worker=1, delay=2.0),)),
    ("shiftexp:shift=0.5,rate=2", (Straggle("shiftexp", shift=0.5, rate=2.0),)),
    ("crash:worker=0,p=0.3", (Straggle("crash", worker=0, prob=0.3),)),
    ("dead:worker=2; delay=1", (Straggle("dead", worker=2), Straggle("fixed", delay=1.0))),
    ("", ()),
])
def test_parse_straggle(text, expected):
    assert parse_straggle(text) == expected
    assert parse_straggle(";".join(r.to_spec() for r in expected)) == expected


@pytest.mark.parametrize("text", ["worker=1", "fast:delay=1", "delay=abc", "shiftexp:rate=0",
                                  "crash:p=2", "worker=1,speed=3"])
def test_parse_straggle_rejects(text):
    with pytest.raises(ValueError):
        parse_straggle(text)


@pytest.mark.parametrize("kwargs, match", [
    ({"workers": 8, "k": 9}, "Argument 'k' must be at most n=8, not 9."),
    ({"mode": "secure", "workers": 5, "k": 3, "t": 3}, "Argument 't' must be at most k-1=2, not 3."),
    ({"mode": "secure", "workers": 5, "k": 3, "t": 4}, "Argument 't' must be at most k-1=2"),
    ({"mode": "plain", "k": 3}, "Argument 'k' must be n=5"),
    ({"mode": "fast"}, "Argument 'mode' must be one of"),
    ({"launcher": "slurm"}, "Argument 'launcher'"),
    ({"workers": 0}, "Argument 'workers' must be at least 1"),
    ({"s": 5}, "Argument 's' must be at most n-1=4, not 5."),
    ({"rounds": 0}, "Argument 'rounds'"),
    ({"lr": 0.0}, "Argument 'lr'"),
    ({"store": "http://x"}, "Argument 'store'"),
    ({"store": "file://relative/path"}, "Argument 'store'"),
    ({"job": "bad/name"}, "Argument 'job'"),
    ({"straggle": "worker=7,delay=1"}, "Argument 'straggle.worker' must be at most n-1=4"),
    ({"lambda_memory_mb": 64}, "Argument 'lambda_memory_mb'"),
])
def test_bad_values_give_one_line_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError)) as info:
        RunConfig(**kwargs)
    assert match in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_setting_in_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("workers = 3\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="Unknown setting.*'learning_rate'"):
        RunConfig.from_toml(path)
    with pytest.raises(FileNotFoundError):
        RunConfig.from_toml(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("workers = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.from_toml(tmp_path / "broken.toml")


def test_code_spec_mapping():
    assert RunConfig(mode="secure", workers=5, k=4, t=1).code_spec().merged_needed == 4
    assert RunConfig(mode="gradient", workers=4, s=1).code_spec().mode == "gradient"
    assert RunConfig(mode="gradient", workers=4, s=1, k=3).code_spec().mode == "gradient+mds"
    assert RunConfig(mode="mds", workers=5, k=3).code_spec().k == 3


def test_preflight_missing_data(tmp_path):
    pytest.importorskip("worker.models")
    cfg = RunConfig(data=str(tmp_path / "nope"), encrypt=False)
    with pytest.raises(FileNotFoundError, match="nope"):
        cfg.preflight()


def test_preflight_unknown_model():
    pytest.importorskip("worker.models")
    with pytest.raises(ConfigError, match="Argument 'model' must be one of"):
        RunConfig(model="resnet9000", encrypt=False).preflight()


def test_preflight_unreadable_key(tmp_path, monkeypatch):
    pytest.importorskip("exchange.crypto")
    from coding.errors import KofnError

    monkeypatch.delenv("KOFN_KEY", raising=False)
    monkeypatch.delenv("KOFN_KEY_FILE", raising=False)
    for cfg in (RunConfig(key_file=str(tmp_path / "missing.key")), RunConfig()):
        with pytest.raises(KofnError) as info:
            cfg.preflight()
        assert "\n" not in str(info.value)
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    bad.chmod(0o600)
    with pytest.raises(KofnError, match="bad.key"):
        RunConfig(key_file=str(bad)).preflight()
    monkeypatch.setenv("MY_KEY", "not base64!")
    with pytest.raises(KofnError, match="base64"):
        RunConfig(key_env="MY_KEY").preflight()


def test_preflight_accepts_a_good_key(tmp_path, monkeypatch):
    crypto = pytest.importorskip("exchange.crypto")
    path = crypto.write_key_file(tmp_path / "k.key", crypto.Keyring([crypto.new_key()]))
    assert len(RunConfig(key_file=str(path)).load_keyring()) == 1
    import base64

    monkeypatch.setenv("MY_KEY", base64.b64encode(crypto.new_key()).decode())
    assert len(RunConfig(key_env="MY_KEY").load_keyring()) == 1


def test_demo_config_loads():
    from pathlib import Path

    cfg = RunConfig.from_toml(Path(__file__).resolve().parents[2] / "configs" / "demo.toml")
    assert (cfg.workers, cfg.mode, cfg.k, cfg.encrypt) == (5, "mds", 4, True)
    assert cfg.model == "fasterrcnn_mobilenet_v3_large_320_fpn" and len(cfg.straggle) == 1


@pytest.mark.parametrize("args, message", [
    (["--workers", "8", "--k", "9"], "Argument 'k' must be at most n=8, not 9."),
    (["--mode", "secure", "--workers", "5", "--k", "3", "--t", "3"], "Argument 't' must be at most k-1=2"),
    (["--model", "resnet9000"], "Argument 'model' must be one of"),
    (["--data", "/nonexistent/PennFudanPed"], "does not exist"),
    (["--key-file", "/nonexistent/kofn.key"], "does not exist"),
    (["--straggle", "worker=1,speed=3"], "malformed item"),
])
def test_kofn_train_bad_config_is_one_line_and_uploads_nothing(tmp_path, capsys, args, message):
    pytest.importorskip("worker.models")
    pytest.importorskip("exchange.crypto")
    from worker.cli import main

    store = tmp_path / "store"
    rc = main(["train", "--store", str(store), "--runs-dir", str(tmp_path / "runs"), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("kofn: error: ") and err.count("\n") == 1 and message in err
    assert not store.exists() or not any(store.iterdir())
