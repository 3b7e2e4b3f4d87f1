"""Monte-Carlo simulator against the model."""

import pytest

from offload.generator import GeneratorConfig, generate
from offload.placement import evaluate
from offload.policies import IGP, LCP, ROP
from offload.simulate import simulate


@pytest.mark.parametrize("cfg", [GeneratorConfig(), GeneratorConfig(power=0.2, f_w=1.5e9),
                                 GeneratorConfig(worker_energy=True)])
def test_hit_rate_and_energy_match_model(cfg):
    for seed in range(3):
        inst = generate(cfg, seed)
        for pol in (IGP(), ROP(), LCP()):
            pl = pol.plan(inst, rng=seed)
            res = simulate(inst, pl, draws=10_000, rng=100 + seed)
            assert abs(res.hit_rate - pl.success) <= 0.02
            assert res.energy == pytest.approx(pl.energy, rel=1e-12)
            assert res.agrees()


def test_low_success_placement_is_simulated_faithfully():
    inst = generate(GeneratorConfig(power=0.1, f_w=1.5e9), seed=0)
    pl = evaluate(inst, 0, range(10))  # all offloaded, first ten workers
    res = simulate(inst, pl, draws=10_000, rng=1)
    assert pl.success < 0.9
    assert abs(res.hit_rate - pl.success) <= 0.02


def test_simulate_errors():
    inst = generate(seed=0)
    pl = IGP().plan(inst, rng=0)
    with pytest.raises(ValueError, match="'draws'"):
        simulate(inst, pl, draws=0)
    with pytest.raises(TypeError, match="'placement'"):
        simulate(inst, None)
    other = generate(GeneratorConfig(N=8), seed=0)
    with pytest.raises(ValueError, match="placement.workers"):
        simulate(other, evaluate(inst, 0, range(10)))
