"""The shared bandwidth / power budget (OFDMA sharing) of :class:`offload.world.LinkShare`:
closed form, Monte Carlo, optimality by brute force, the unchanged default, the file."""

import math

import numpy as np
import pytest

from offload.bounds import saa_bound
from offload.errors import InstanceError
from offload.generator import GeneratorConfig, generate, instance_from_dict, load_instance, to_toml
from offload.model import completion_probability
from offload.placement import evaluate, most_reliable
from offload.policies import IGP, LCP, POLICIES, Exact, get_policy
from offload.simulate import simulate
from offload.world import LinkShare
from tests.offload.test_policies import brute_force

REL = 1e-9


def _closed_form(inst, n):
    """``(t_tx, e_tx)`` of every worker with ``n`` uploads, straight from the equations."""
    ch, P = inst.channel, inst.master.power
    B_tot, P_tot = inst.share.bandwidth, inst.share.power
    b = min(ch.bandwidth, B_tot / n) if B_tot else ch.bandwidth
    p = min(P, P_tot / n) if P_tot else P
    g = ch.g0 * inst.workers.distance ** (-ch.alpha)
    rate = b * np.log2(1.0 + p * g / (ch.noise * b / ch.bandwidth))
    t = inst.task.D / rate
    return t, p * t


@pytest.mark.parametrize("bw, pw", [(4.0e6, 0.0), (0.0, 1.2), (3.0e6, 2.0)])
def test_upload_time_and_energy_match_the_equal_split(bw, pw):
    inst = generate(GeneratorConfig(bandwidth_total=bw, power_total=pw, worker_energy=True),
                    seed=2)
    prev = None
    for n in range(1, inst.N + 1):
        mod = inst.model_at(n)
        t, e = _closed_form(inst, n)
        np.testing.assert_allclose(mod.t_tx, t, rtol=1e-12)
        np.testing.assert_allclose(mod.e_tx, e, rtol=1e-12)
        np.testing.assert_allclose(mod.cost, e + mod.e_work + mod.e_ret, rtol=1e-12)
        want = completion_probability(t + mod.shift + mod.t_ret, mod.exp_rate, inst.results_by)
        np.testing.assert_allclose(mod.p, want, rtol=1e-12)
        if prev is not None:  # more links, smaller shares: slower, less reliable
            assert np.all(mod.t_tx >= prev.t_tx) and np.all(mod.p <= prev.p)
        prev = mod


def test_equal_split_numbers():
    # 8 links share 4 MHz and 2 W: 0.5 MHz and 0.25 W each (per-link caps 1 MHz, 0.5 W).
    share = LinkShare(bandwidth=4.0e6, power=2.0)
    assert share.link(8, 1.0e6, 0.5) == (0.5e6, 0.25)
    assert share.link(2, 1.0e6, 0.5) == (1.0e6, 0.5)  # the budget does not bind
    assert LinkShare().link(10, 1.0e6, 0.5) == (1.0e6, 0.5) and not LinkShare().active
    inst = generate(GeneratorConfig(bandwidth_total=4.0e6, power_total=2.0), seed=0)
    d, g = inst.workers.distance[0], inst.channel.g0 * inst.workers.distance[0] ** -3.0
    assert d > 0
    # Noise density N0 / B = 1e-19 W/Hz, so the 0.5 MHz sub-band carries 5e-14 W of noise.
    rate = 0.5e6 * math.log2(1 + 0.25 * g / 5e-14)
    assert inst.model_at(8).t_tx[0] == pytest.approx(inst.task.D / rate, rel=1e-12)
    assert inst.model_at(8).e_tx[0] == pytest.approx(0.25 * inst.task.D / rate, rel=1e-12)


# Placements and predictions of the unshared model recorded before the budget existed
# (seed, config, policy -> m, workers, energy, success as float.hex), policy rng = seed.
GOLDEN = {
    (3, "default"): {
        "igp": (0, (0, 1, 4, 5, 6, 7, 9, 10, 11, 12), "0x1.9f0294dc6e050p+0",
                "0x1.f2048a5fa99d5p-1"),
        "lcp": (3, (0, 1, 4, 7, 9, 10, 12), "0x1.cbdfb350070b5p+0", "0x1.ff7250fad4c49p-1"),
        "rop": (3, (0, 1, 2, 8, 10, 11, 12), "0x1.0769fa1d640f4p+1", "0x1.ffa7b8539dd39p-1"),
    },
    (1, "p01"): {
        "exact": (2, (2, 4, 5, 7, 8, 9, 11, 14), "0x1.ad80d88da0478p-1",
                  "0x1.e885242cd0accp-1"),
        "aop": (0, (0, 2, 4, 5, 7, 8, 9, 11, 12, 14), "0x1.ba7762508d645p-2",
                "0x1.97a3f7c1b4c64p-1"),
    },
    (2, "we"): {
        "igp": (3, (3, 4, 6, 11, 12, 13, 14), "0x1.b11e4d92f84a6p+2", "0x1.ed11bddb16c4fp-1"),
        "aop": (0, (1, 3, 4, 6, 7, 8, 9, 11, 12, 14), "0x1.883ff62f47facp+3",
                "0x1.e80f722d0e8f8p-1"),
    },
    (1, "fail"): {
        "igp": (0, (0, 2, 4, 5, 7, 8, 9, 11, 12, 14), "0x1.b7a9c5a8c337bp+0",
                "0x1.f30376a8497e7p-1"),
        "lcp": (3, (2, 4, 5, 7, 9, 12, 14), "0x1.de3a7f562174bp+0", "0x1.fe29498b9eac6p-1"),
    },
}
GOLDEN_CFG = {
    "default": GeneratorConfig(),
    "p01": GeneratorConfig(power=0.1, f_w=1.5e9),
    "we": GeneratorConfig(worker_energy=True, power=0.2, result_bits_row=1.0e4),
    "fail": GeneratorConfig(fail_prob=0.08, law="pareto", shape=2.5),
}


@pytest.mark.parametrize("key", list(GOLDEN))
def test_default_reproduces_the_old_numbers_bit_for_bit(key):
    seed, name = key
    inst = generate(GOLDEN_CFG[name], seed)
    # A budget that never binds (N B and N P or more) runs the shared code paths and must
    # change nothing either.
    wide = generate(GOLDEN_CFG[name].replace(bandwidth_total=10.0e6,
                                             power_total=10.0 * inst.master.power), seed)
    assert not inst.share.active and wide.share.active
    for n in range(inst.N + 1):
        assert wide.model_at(n).p.tobytes() == inst.model.p.tobytes()
        assert wide.model_at(n).cost.tobytes() == inst.model.cost.tobytes()
    for policy, (m, workers, energy, success) in GOLDEN[key].items():
        for case in (inst, wide):
            pl = get_policy(policy).plan(case, rng=seed)
            assert (pl.m, pl.workers) == (m, workers)
            assert pl.energy == float.fromhex(energy) and pl.success == float.fromhex(success)


SHARED = [GeneratorConfig(bandwidth_total=5.0e6), GeneratorConfig(power_total=1.0),
          GeneratorConfig(bandwidth_total=6.0e6, power_total=2.0, fail_prob=0.05)]


def _hand_rolled_hit_rate(inst, pl, draws, rng):
    """K-th result by T, sampled from the equations alone (not from the model's arrays)."""
    ids = np.array(pl.workers, dtype=int)
    t, _ = _closed_form(inst, ids.size)
    w, C = inst.workers, inst.task.C
    times = (t[ids] + C / w.f[ids])[None, :] + rng.exponential(
        1.0, (draws, ids.size)) * (C / (w.mu[ids] * w.f[ids]))[None, :]
    times = np.where(rng.random(times.shape) < w.fail[ids][None, :], np.inf, times)
    local = np.broadcast_to(inst.t_loc * np.arange(1, pl.m + 1), (draws, pl.m))
    kth = np.sort(np.concatenate([local, times], axis=1), axis=1)[:, inst.K - 1]
    return float(np.mean(kth <= inst.results_by))


@pytest.mark.parametrize("cfg", SHARED)
def test_monte_carlo_hit_rate_matches_the_model(cfg):
    inst = generate(cfg, seed=3)
    for policy in (IGP(), LCP()):
        pl = policy.plan(inst, rng=0)
        assert pl.feasible
        sim = simulate(inst, pl, draws=10_000, rng=7)
        assert sim.agrees(points=0.02), (policy.name, sim)
        hand = _hand_rolled_hit_rate(inst, pl, 10_000, np.random.default_rng(11))
        assert abs(hand - pl.success) <= 0.02, (policy.name, hand, pl.success)


BRUTE = [GeneratorConfig(W=10, N=6, K=4, R=400, power=p, bandwidth_total=bw, power_total=pw)
         for p in (0.1, 0.6, 1.2) for bw, pw in ((3.0e6, 0.0), (0.0, 0.3), (4.0e6, 1.5))]
BRUTE += [GeneratorConfig(W=11, N=8, K=5, power=0.5, bandwidth_total=4.0e6),
          GeneratorConfig(W=11, N=8, K=5, power=0.5, bandwidth_total=5.0e6, stragglers=1,
                          f_w=2.5e9)]


def test_exact_and_igp_match_brute_force_with_a_budget():
    feasible = moved = 0
    for cfg in BRUTE:
        for seed in range(2):
            inst = generate(cfg, seed)
            want, got, igp = brute_force(inst), Exact().plan(inst), IGP().plan(inst, rng=seed)
            if want is None:
                assert not got.feasible and not igp.feasible
                continue
            feasible += 1
            assert got.feasible and igp.feasible
            assert got.energy == pytest.approx(want.energy, rel=REL)
            assert igp.energy == pytest.approx(want.energy, rel=REL)
            plain = Exact().plan(generate(cfg.replace(bandwidth_total=0.0, power_total=0.0),
                                          seed))
            moved += plain.m != want.m
            for name in POLICIES:  # every policy is scored by the same evaluation
                pl = get_policy(name).plan(inst, rng=seed)
                again = evaluate(inst, pl.m, pl.workers)
                assert (again.energy, again.success, again.feasible) == (
                    pl.energy, pl.success, pl.feasible)
                if pl.feasible:
                    assert pl.energy >= want.energy * (1 - REL)
    # The checks bite: most instances are feasible and the budget moves the optimum's m.
    assert feasible >= 12 and moved >= 3


@pytest.mark.parametrize("cfg", [
    GeneratorConfig(power_total=1.0),  # seed 6: the optimum needs one more, cheaper link
    GeneratorConfig(bandwidth_total=5.0e6, f_w=1.6e9, power=1.0),  # seed 5: at m_max
    GeneratorConfig(power_total=0.5, power=0.2),
    GeneratorConfig(bandwidth_total=7.0e6, power_total=2.0, worker_energy=True),
])
def test_igp_equals_exact_with_a_budget(cfg):
    for seed in range(8):
        inst = generate(cfg, seed)
        a, b = IGP().plan(inst, rng=seed), Exact(time_limit=None).plan(inst)
        assert a.feasible == b.feasible
        if b.feasible:
            assert a.energy == pytest.approx(b.energy, rel=REL), seed


def test_tighter_bandwidth_never_lowers_the_optimum_and_most_reliable_is_m_max():
    for seed in range(3):
        energies = []
        for bw in (10.0e6, 6.0e6, 4.0e6):
            inst = generate(GeneratorConfig(bandwidth_total=bw), seed)
            pl = Exact().plan(inst)
            energies.append(pl.energy if pl.feasible else math.inf)
            top = most_reliable(inst).success
            for m in range(inst.m_min, inst.m_max + 1):  # the most reliable set at each m
                n = inst.N - m
                best = np.argsort(-inst.model_at(n).p)[:n]
                assert evaluate(inst, m, best).success <= top + 1e-12
        assert energies[0] <= energies[1] * (1 + REL) <= energies[2] * (1 + REL) ** 2


def test_exact_time_limit_bound_and_saa_bound_hold_with_a_budget():
    inst = generate(GeneratorConfig(W=100, N=20, K=12, R=1200, bandwidth_total=14.0e6), 2)
    full = Exact(time_limit=None).solve(inst)
    quick = Exact(time_limit=0.01).solve(inst)
    assert full.optimal and quick.lower_bound <= full.placement.energy * (1 + REL)
    small = generate(GeneratorConfig(W=10, N=6, K=4, R=400, power=0.4, bandwidth_total=3.0e6), 1)
    opt = Exact(time_limit=None).plan(small)
    b = saa_bound(small, scenarios=200, rng=1)
    assert opt.feasible and b.solved
    assert 0.75 * opt.energy <= b.value <= opt.energy * (1 + REL)


def test_runtime_views_need_n_with_a_budget():
    inst = generate(GeneratorConfig(bandwidth_total=5.0e6), seed=0)
    with pytest.raises(InstanceError, match="needs n, the number of offloaded subtasks"):
        inst.completion_params()
    delay, _, p = inst.completion_params(7)
    mod = inst.model_at(7)
    np.testing.assert_array_equal(delay, mod.t_tx + mod.shift + mod.t_ret)
    np.testing.assert_array_equal(p, mod.p)
    plain = generate(seed=0)
    np.testing.assert_array_equal(plain.completion_params()[0], plain.completion_params(7)[0])


def test_share_round_trips_through_the_instance_file(tmp_path):
    inst = generate(GeneratorConfig(bandwidth_total=4.5e6, power_total=1.5), seed=5)
    assert "[share]\nbandwidth = 4500000.0\npower = 1.5" in to_toml(inst)
    path = tmp_path / "inst.toml"
    path.write_text(to_toml(inst))
    back = load_instance(path)
    assert back.share == inst.share == LinkShare(bandwidth=4.5e6, power=1.5)
    for n in (1, 7, 10):
        np.testing.assert_array_equal(back.model_at(n).p, inst.model_at(n).p)
        np.testing.assert_array_equal(back.model_at(n).cost, inst.model_at(n).cost)
    assert Exact().plan(back) == Exact().plan(inst)
    gen = instance_from_dict({"share": {"bandwidth": 6e6}, "workers": {"count": 15, "seed": 5}})
    assert gen.share == LinkShare(bandwidth=6e6) and gen.replace().share == gen.share
    # Absent means no budget, and a default instance file reads back without one.
    plain = instance_from_dict({"workers": {"count": 15, "seed": 5}})
    assert not plain.share.active
    assert not load_instance(_write(tmp_path / "p.toml", to_toml(plain))).share.active


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("section, msg", [
    ({"bandwidth": -1.0}, "Argument 'share.bandwidth' must be at least 0.0, not -1.0."),
    ({"power": float("inf")}, "Argument 'share.power' must be finite, not inf."),
    ({"bw": 1.0}, "Unknown field 'share.bw'; allowed: bandwidth, power."),
    ({"power": "2W"}, "Argument 'share.power' must be a real number, not str '2W'."),
])
def test_bad_share_values_are_one_line_errors(section, msg):
    with pytest.raises((InstanceError, ValueError, TypeError)) as err:
        instance_from_dict({"share": section, "workers": {"count": 4}})
    assert str(err.value) == msg


def test_bad_share_value_on_the_command_line(tmp_path, capsys):
    from worker.cli import main

    path = _write(tmp_path / "bad.toml", "[share]\nbandwidth = -2e6\n[workers]\ncount = 15\n")
    assert main(["offload", "plan", "--instance", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kofn: error:") and "'share.bandwidth'" in err and "\n" not in err
