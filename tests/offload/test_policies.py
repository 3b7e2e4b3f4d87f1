"""Policies: IGP against the baselines and the exact optimum; registry; purity."""

import itertools

import numpy as np
import pytest

from offload.errors import UnknownPolicyError
from offload.generator import GeneratorConfig, generate
from offload.placement import evaluate, most_reliable
from offload.policies import AOP, IGP, LCP, POLICIES, ROP, Exact, get_policy

REL = 1e-9

CONFIGS = [
    GeneratorConfig(),
    GeneratorConfig(power=0.1, f_w=1.5e9),
    GeneratorConfig(power=1.0, f_w=1.7e9),
    GeneratorConfig(power=0.3, deadline=0.7),
    GeneratorConfig(power=0.7, eps=0.01, f_w=1.6e9),
]


def brute_force(inst):
    """Cheapest feasible placement by full enumeration (None when infeasible)."""
    best = None
    for m in range(inst.m_min, inst.m_max + 1):
        for S in itertools.combinations(range(inst.W), inst.N - m):
            pl = evaluate(inst, m, S)
            if pl.feasible and (best is None or pl.energy < best.energy):
                best = pl
    return best


@pytest.mark.parametrize("cfg", CONFIGS)
def test_igp_no_worse_than_any_feasible_baseline(cfg):
    for seed in range(6):
        inst = generate(cfg, seed)
        igp = IGP().plan(inst, rng=seed)
        for base in (ROP(), AOP(), LCP(), AOP("reliable"), LCP("reliable"),
                     AOP(budget="blind"), LCP(budget="blind"), ROP(tries=1)):
            pl = base.plan(inst, rng=seed)
            if pl.feasible:
                assert igp.feasible
                assert igp.energy <= pl.energy * (1 + REL)


@pytest.mark.parametrize("cfg", CONFIGS + [GeneratorConfig(stragglers=1, f_w=1.5e9),
                                           GeneratorConfig(worker_energy=True, power=0.2)])
def test_igp_equals_exact_on_small_instances(cfg):
    cfg = cfg.replace(W=11, N=8, K=5)
    for seed in range(5):
        inst = generate(cfg, seed)
        a, b = IGP().plan(inst, rng=seed), Exact().plan(inst)
        assert a.feasible == b.feasible
        if b.feasible:
            assert a.energy == pytest.approx(b.energy, rel=REL)


@pytest.mark.parametrize("cfg", [GeneratorConfig(W=7, N=6, K=4, power=p, f_w=f)
                                 for p in (0.1, 0.6, 1.2) for f in (1.5e9, 2.5e9)])
def test_exact_matches_brute_force(cfg):
    for seed in range(3):
        inst = generate(cfg, seed)
        want, got = brute_force(inst), Exact().plan(inst)
        if want is None:
            assert not got.feasible
        else:
            assert got.feasible
            assert got.energy == pytest.approx(want.energy, rel=REL)


def test_infeasible_instance_is_a_result():
    inst = generate(GeneratorConfig(deadline=0.3, power=0.1), seed=0)
    assert not most_reliable(inst).feasible
    for name in POLICIES:
        pl = get_policy(name).plan(inst, rng=0)
        assert not pl.feasible
        assert pl.m + len(pl.workers) == inst.N


def test_placement_fields():
    inst = generate(seed=2)
    pl = IGP().plan(inst, rng=0)
    assert pl.policy == "igp"
    assert pl.m + pl.n_offloaded == inst.N
    assert list(pl.workers) == sorted(set(pl.workers))
    again = evaluate(inst, pl.m, pl.workers)
    assert again.energy == pytest.approx(pl.energy) and again.success == pytest.approx(pl.success)
    assert pl.to_dict()["feasible"] is True


def test_policies_are_pure_and_seeded():
    inst = generate(GeneratorConfig(power=0.6, f_w=1.6e9), seed=7)
    for name in POLICIES:
        pol = get_policy(name)
        assert pol.plan(inst, rng=3) == pol.plan(inst, rng=np.random.default_rng(3))
    assert IGP().plan(inst, rng=None) == IGP().plan(inst, rng=0)


def test_deterministic_budget_tolerates_stragglers():
    inst = generate(GeneratorConfig(stragglers=2), seed=1)
    pl = IGP().plan(inst, rng=0)
    ok = inst.worker_meets_deadline()
    assert pl.feasible
    assert pl.m + int(ok[list(pl.workers)].sum()) - 2 >= inst.K


def test_registry_and_errors():
    assert set(POLICIES) == {"igp", "rop", "aop", "lcp", "exact", "aop-blind", "lcp-blind",
                             "rop-once"}
    assert get_policy("aop-blind").plan(generate(seed=0)).policy == "aop-blind"
    assert isinstance(get_policy("IGP"), IGP)
    with pytest.raises(UnknownPolicyError, match="igp, rop, aop, lcp, exact, .*not 'best'"):
        get_policy("best")
    with pytest.raises(TypeError, match="'rng'"):
        IGP().plan(generate(seed=0), rng="x")
    with pytest.raises(TypeError, match="'instance'"):
        Exact().plan(None)
    with pytest.raises(ValueError, match="'W' must be at most"):
        Exact(max_workers=10).plan(generate(seed=0))
    with pytest.raises(ValueError, match="'rounds'"):
        IGP(rounds=-1)
    with pytest.raises(ValueError, match="'workers'"):
        AOP("nearest")
    with pytest.raises(ValueError, match="'budget' must be one of repair, blind"):
        LCP(budget="maybe")
    with pytest.raises(ValueError, match="'tries'"):
        ROP(tries=0)


def test_evaluate_rejects_bad_placements():
    inst = generate(seed=0)
    with pytest.raises(ValueError, match="'m' must be at most m_max=3"):
        evaluate(inst, 4, range(6))
    with pytest.raises(ValueError, match="N - m=10"):
        evaluate(inst, 0, range(9))
    with pytest.raises(ValueError, match="distinct"):
        evaluate(inst, 3, [1, 1, 2, 3, 4, 5, 6])


@pytest.mark.parametrize("cfg", CONFIGS)
def test_baselines_keep_their_m_and_respect_the_budget(cfg):
    for seed in range(6):
        inst = generate(cfg, seed)
        feasible = most_reliable(inst).feasible
        lcp, aop = LCP().plan(inst), AOP().plan(inst)
        assert lcp.m == inst.m_max and aop.m == inst.m_min
        # Local-first is as reliable as any placement can be: feasible on feasible instances.
        assert lcp.feasible == feasible
        # Repairing only ever helps: feasible wherever the budget-blind pick was.
        assert aop.feasible or not AOP(budget="blind").plan(inst).feasible
        assert lcp.feasible or not LCP(budget="blind").plan(inst).feasible
        # An all-offload placement meets the budget exactly when the most reliable one does.
        best_all = evaluate(inst, inst.m_min, np.argsort(-inst.model.p)[: inst.N - inst.m_min])
        assert aop.feasible == best_all.feasible


def test_rop_redraws_until_feasible():
    inst = generate(GeneratorConfig(f_w=1.6e9), seed=0)
    once = [ROP(tries=1).plan(inst, rng=r) for r in range(30)]
    again = [ROP().plan(inst, rng=r) for r in range(30)]
    assert sum(p.feasible for p in again) == 30 > sum(p.feasible for p in once)
    # The first draw of the redrawing policy is the single-draw policy's.
    for a, b in zip(once, again):
        if a.feasible:
            assert (a.m, a.workers) == (b.m, b.workers)
    hard = generate(GeneratorConfig(deadline=0.3, power=0.1), seed=0)
    pl = ROP(tries=5).plan(hard, rng=0)
    assert not pl.feasible and pl.m + len(pl.workers) == hard.N


HARD = GeneratorConfig(W=30, N=12, K=7, R=700, power=0.7, f_w=1.6e9)  # ~2000 B&B nodes


def test_exact_reports_a_proven_optimum():
    inst = generate(HARD, 2)
    res = Exact(time_limit=None).solve(inst)
    assert res.optimal and res.nodes > 256
    assert res.lower_bound == res.placement.energy and res.gap == 0
    assert res.placement == Exact().plan(inst)
    assert IGP().plan(inst, rng=0).energy >= res.placement.energy * (1 - REL)


def test_exact_time_limit_returns_incumbent_and_a_valid_bound():
    inst = generate(HARD, 2)
    opt = Exact(time_limit=None).solve(inst).placement.energy
    res = Exact(time_limit=1e-9).solve(inst)
    assert not res.optimal
    assert res.placement.feasible  # at worst the most reliable placement
    assert res.lower_bound <= opt * (1 + REL) <= res.placement.energy * (1 + REL)
    assert res.gap >= 0


def test_exact_has_no_worker_cap_by_default():
    inst = generate(GeneratorConfig(W=60), 0)
    res = Exact().solve(inst)
    assert res.optimal and res.placement.feasible
    assert IGP().plan(inst, rng=0).energy == pytest.approx(res.placement.energy, rel=REL)
    with pytest.raises(ValueError, match="'time_limit'"):
        Exact(time_limit=0)
