"""Online re-planning of dead workers' subtasks, against the no-re-planning simulator."""

import pytest

from offload.generator import GeneratorConfig, generate
from offload.placement import evaluate
from offload.policies import IGP
from offload.replan import simulate_replan
from offload.simulate import simulate


@pytest.fixture(scope="module")
def world():
    inst = generate(GeneratorConfig(fail_prob=0.1), seed=3)
    return inst, IGP().plan(inst, rng=0)


def test_without_replanning_it_is_the_plain_simulator(world):
    inst, pl = world
    none = simulate_replan(inst, pl, draws=4000, replan=False, rng=1)
    plain = simulate(inst, pl, draws=10_000, rng=2)
    assert abs(none.hit_rate - plain.hit_rate) < 0.02
    assert abs(none.hit_rate - pl.success) < 0.02
    assert none.replans == 0 and none.energy == pytest.approx(pl.energy)


def test_replanning_rescues_deadlines_and_pays_for_it(world):
    inst, pl = world
    none = simulate_replan(inst, pl, draws=3000, replan=False, rng=1)
    re = simulate_replan(inst, pl, draws=3000, replan=True, rng=1)
    assert re.hit_rate > none.hit_rate + 3 * none.hit_stderr
    assert re.replans > 0 and re.energy > pl.energy


def test_replanning_rescues_a_plan_that_ignored_failures():
    inst = generate(GeneratorConfig(fail_prob=0.2), seed=3)
    naive = IGP().plan(generate(seed=3), rng=0)  # planned as if nobody fails
    pl = evaluate(inst, naive.m, naive.workers)
    none = simulate_replan(inst, pl, draws=2000, replan=False, rng=4)
    re = simulate_replan(inst, pl, draws=2000, replan=True, rng=4)
    assert none.hit_rate < 1 - inst.budget.eps < re.hit_rate


def test_no_failures_means_nothing_to_replan():
    inst = generate(seed=3)
    pl = IGP().plan(inst, rng=0)
    re = simulate_replan(inst, pl, draws=500, rng=0)
    assert re.replans == 0 and re.energy == pytest.approx(pl.energy)
    with pytest.raises(ValueError, match="'detect_s'"):
        simulate_replan(inst, pl, detect_s=-1.0)
