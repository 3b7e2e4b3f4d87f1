"""``kofn offload`` command line."""

import json

import pytest

from worker.cli import main


def test_plan_generated(capsys):
    assert main(["offload", "plan", "--seed", "3", "--simulate", "2000"]) == 0
    out = capsys.readouterr().out
    assert "energy" in out and "success" in out and "simulated hit rate" in out


def test_plan_instance_file_json(tmp_path, capsys):
    path = tmp_path / "inst.toml"
    assert main(["offload", "example", "--seed", "1"]) == 0
    path.write_text(capsys.readouterr().out)
    assert main(["offload", "plan", "--instance", str(path), "--policy", "exact", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["placement"]["policy"] == "exact" and doc["placement"]["feasible"]


def test_plan_bad_instance_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text("[master]\npower = -1.0\n[workers]\ncount = 15\n")
    assert main(["offload", "plan", "--instance", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kofn: error:") and "'master.power'" in err and "\n" not in err


def test_plan_too_many_subtasks_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "big.toml"
    path.write_text("[task]\nN = 30\n[workers]\ncount = 15\n")
    assert main(["offload", "plan", "--instance", str(path)]) == 2
    assert "'task.N' must be at most W + m_max" in capsys.readouterr().err


def test_plan_unknown_policy(capsys):
    assert main(["offload", "plan", "--policy", "best"]) == 2
    assert "igp, rop, aop, lcp, exact" in capsys.readouterr().err


def test_sweep_writes_csv_json_png(tmp_path, capsys):
    rc = main(["offload", "sweep", "--x", "power", "--values", "0.1,0.9", "--seeds", "2",
               "--policies", "igp,aop,lcp", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("power=") == 2  # one progress line per value
    doc = json.loads((tmp_path / "sweep_power.json").read_text())
    assert {s["policy"] for s in doc["summary"]} == {"igp", "aop", "lcp"}
    assert (tmp_path / "sweep_power.png").stat().st_size > 1000
    lines = (tmp_path / "sweep_power.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * 2 * 3


@pytest.mark.parametrize("args, msg", [(["--x", "bandwidth"], "'--x'"),
                                       (["--x", "n", "--set", "nope=1"], "'--set'")])
def test_sweep_errors(args, msg, capsys):
    assert main(["offload", "sweep", *args]) == 2
    assert msg in capsys.readouterr().err


def test_plan_set_overrides_generator_and_instance_fields(tmp_path, capsys):
    assert main(["offload", "plan", "--seed", "2", "--set", "power=0.1", "--json"]) == 0
    low = json.loads(capsys.readouterr().out)["placement"]
    assert main(["offload", "plan", "--seed", "2", "--set", "power=1.5", "--json"]) == 0
    high = json.loads(capsys.readouterr().out)["placement"]
    assert low["energy_J"] < high["energy_J"]
    path = tmp_path / "inst.toml"
    assert main(["offload", "example", "--seed", "2"]) == 0
    path.write_text(capsys.readouterr().out)
    assert main(["offload", "plan", "--instance", str(path), "--set", "master.power=0.1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["placement"]["energy_J"] == pytest.approx(
        low["energy_J"])
    assert main(["offload", "plan", "--instance", str(path), "--set", "power=0.1"]) == 2
    assert "SECTION.FIELD=VALUE" in capsys.readouterr().err


def test_sweep_skips_an_invalid_value_with_a_note(tmp_path, capsys):
    rc = main(["offload", "sweep", "--x", "power", "--values", "0.5,-1", "--seeds", "2",
               "--policies", "igp,lcp", "--out", str(tmp_path)])
    assert rc == 0
    assert "note: skipped power=-1: Argument 'master.power'" in capsys.readouterr().out
    assert main(["offload", "sweep", "--x", "power", "--values", "-1", "--seeds", "1",
                 "--out", str(tmp_path)]) == 2
    assert "no valid value" in capsys.readouterr().err
