"""Sweeps: paired comparison, no policy below the optimum, skipped values, committed figures."""

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from offload.experiments import sweep, write_outputs
from offload.generator import GeneratorConfig
from offload.policies import POLICIES

RESULTS = Path(__file__).resolve().parents[2] / "results" / "offload"
REL = 1e-9


def _check_no_policy_below_optimum(rows):
    by = defaultdict(dict)
    for r in rows:
        by[r["x"], r["seed"]][r["policy"]] = r
    for plans in by.values():
        opt = plans["exact"]
        for r in plans.values():
            if r["feasible"]:
                assert opt["feasible"]
                assert r["energy_J"] >= opt["energy_J"] * (1 - REL)
                if r["policy"] != "exact":
                    assert plans["igp"]["energy_J"] <= r["energy_J"] * (1 + REL)


@pytest.fixture(scope="module")
def result():
    return sweep("power", values=[0.1, 0.7, 1.3], seeds=6, policies=list(POLICIES),
                 config=GeneratorConfig(W=12))


def test_no_policy_below_the_optimum_in_a_sweep(result):
    _check_no_policy_below_optimum(result.rows)
    for s in result.summary:
        if s["feasible"]:
            assert s["energy_ratio_min"] >= 1 - REL


def test_energy_is_compared_on_common_seeds(result):
    for v in result.values:
        summ = {s["policy"]: s for s in result.summary if s["x"] == v}
        rows = [r for r in result.rows if r["x"] == v]
        common = {r["seed"] for r in rows} - {r["seed"] for r in rows if not r["feasible"]}
        assert all(s["common_seeds"] == len(common) for s in summ.values())
        if common:
            igp = summ["igp"]["energy_common_mean_J"]
            assert all(igp <= s["energy_common_mean_J"] * (1 + REL) for s in summ.values())
        assert all(s["runs"] == 6 and 0 <= s["feasible"] <= 6 for s in summ.values())


def test_common_random_numbers_across_values(result):
    # Same seed, same workers: LCP-blind's choice at fixed m does not depend on P's scale
    # only through the ordering of costs, which P scales uniformly.
    picks = defaultdict(set)
    for r in result.rows:
        if r["policy"] == "lcp-blind":
            picks[r["seed"]].add(r["workers"])
    assert all(len(p) == 1 for p in picks.values())


def test_invalid_value_is_skipped_with_a_note(tmp_path):
    notes = []
    res = sweep("power", values=[0.5, -1.0], seeds=2, policies=["igp", "lcp"],
                progress=notes.append)
    assert res.values == [0.5]
    assert res.skipped[0]["x"] == -1.0 and "'master.power'" in res.skipped[0]["reason"]
    assert any("skipped" in n for n in notes)
    paths = write_outputs(res, tmp_path)
    assert [p.suffix for p in paths] == [".csv", ".json", ".png"]


@pytest.mark.parametrize("stem", ["sweep_power", "sweep_cpu", "worlds/sweep_fail",
                                  "worlds/sweep_decode", "worlds/sweep_result",
                                  "worlds/sweep_pareto", "worlds/sweep_weibull",
                                  "worlds/sweep_bimodal", "worlds/sweep_trace",
                                  "share/sweep_share_bw", "share/sweep_share_power"])
def test_committed_figures_have_no_policy_below_the_optimum(stem):
    with (RESULTS / f"{stem}.csv").open() as fh:
        rows = [{**r, "energy_J": float(r["energy_J"]), "feasible": r["feasible"] == "True"}
                for r in csv.DictReader(fh)]
    assert {r["policy"] for r in rows} >= {"igp", "exact", "aop", "lcp", "rop"}
    _check_no_policy_below_optimum(rows)


def test_axis_seeds_are_feasible_for_every_policy_everywhere(result):
    bad = {r["seed"] for r in result.rows if not r["feasible"]}
    assert set(result.axis_seeds) == set(range(6)) - bad
    for s in result.summary:
        assert s["axis_seeds"] == len(result.axis_seeds)
