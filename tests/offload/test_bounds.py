"""The sample-average MILP bound against the exact optimum."""

import math

import pytest
from scipy.stats import binom

from offload.bounds import allowed_misses, saa_bound
from offload.generator import GeneratorConfig, generate
from offload.policies import Exact


@pytest.mark.parametrize("seed", range(4))
def test_saa_bound_is_below_the_optimum(seed):
    inst = generate(GeneratorConfig(W=10, N=6, K=4, R=400, power=0.1 + 0.3 * seed), seed)
    opt = Exact(time_limit=None).solve(inst)
    b = saa_bound(inst, scenarios=200, rng=seed)
    assert opt.optimal and opt.placement.feasible and b.solved
    assert b.value <= opt.placement.energy * (1 + 1e-9)
    # Not a vacuous bound: within 25 % of the optimum on these small instances.
    assert b.value >= 0.75 * opt.placement.energy


def test_saa_bound_is_exact_for_the_deterministic_budget():
    inst = generate(GeneratorConfig(W=10, N=6, K=4, R=400, stragglers=1), 1)
    opt = Exact(time_limit=None).plan(inst)
    b = saa_bound(inst, scenarios=5)
    assert opt.feasible and b.confidence == 1.0
    assert b.value == pytest.approx(opt.energy, rel=1e-9)


def test_saa_bound_infeasible_and_arguments():
    inst = generate(GeneratorConfig(deadline=0.3, power=0.1), 0)
    assert math.isnan(saa_bound(inst, scenarios=10).value)
    k = allowed_misses(300, 0.05, 0.99)
    assert binom.cdf(k, 300, 0.05) >= 0.99 > binom.cdf(k - 1, 300, 0.05)
    with pytest.raises(ValueError, match="'confidence'"):
        saa_bound(inst, confidence=1.0)
    with pytest.raises(ValueError, match="'scenarios'"):
        saa_bound(inst, scenarios=0)
