"""Richer worlds against closed forms and Monte Carlo (hit rate within 2 points at 1e4)."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from offload.errors import InstanceError
from offload.generator import GeneratorConfig, generate, instance_from_dict, load_instance, to_toml
from offload.model import completion_probability
from offload.policies import IGP, LCP
from offload.simulate import simulate
from offload.world import LAWS, Straggler, load_trace

TRACE = Path(__file__).resolve().parents[1] / "data" / "offload" / "matmul_times.txt"
WORLDS = {
    "shiftexp": dict(law="shiftexp"),
    "pareto": dict(law="pareto", shape=2.5),
    "weibull": dict(law="weibull", shape=0.7),
    "bimodal": dict(law="bimodal", slow_prob=0.2, slow_factor=8.0),
    "trace": dict(law="trace", trace=str(TRACE)),
    "fail": dict(fail_prob=0.08),
    "return": dict(result_bits_row=2.0e4, worker_power=0.2, worker_energy=True),
    "decode": dict(decode_s=0.15),
}


def _law(name: str) -> Straggler:
    kw = {k: v for k, v in WORLDS[name].items() if k in ("law", "shape", "slow_prob",
                                                        "slow_factor", "trace")}
    return Straggler(**kw)


@pytest.mark.parametrize("name", [n for n in WORLDS if n in LAWS])
def test_law_sampler_matches_its_cdf_and_mean(name):
    law, rate = _law(name), 4.0
    x = law.sample(np.random.default_rng(1), rate, (40_000,))
    assert x.min() >= 0
    assert abs(x.mean() * rate - 1.0) < 0.06  # every law's tail has mean 1 / rate
    for q in (0.1, 0.5, 1.0, 2.0, 4.0):
        want = float(law.cdf(q / rate, rate))
        assert abs(np.mean(x <= q / rate) - want) < 0.01


@pytest.mark.parametrize("name", list(WORLDS))
def test_monte_carlo_agrees_with_the_model(name):
    inst = generate(GeneratorConfig(**WORLDS[name]), seed=3)
    for policy in (IGP(), LCP()):
        pl = policy.plan(inst, rng=0)
        sim = simulate(inst, pl, draws=10_000, rng=7)
        assert sim.agrees(points=0.02), (name, policy.name, sim)


def test_failures_scale_p_by_the_survival_probability():
    base, failing = generate(seed=2), generate(GeneratorConfig(fail_prob=0.1), seed=2)
    np.testing.assert_allclose(failing.model.p, 0.9 * base.model.p, rtol=1e-12)
    assert IGP().plan(failing, rng=0).energy >= IGP().plan(base, rng=0).energy


def test_return_link_and_decoding_closed_form():
    cfg = GeneratorConfig(result_bits_row=1.0e4, worker_power=0.2, decode_s=0.1,
                          worker_energy=True)
    inst, plain = generate(cfg, seed=4), generate(GeneratorConfig(worker_energy=True), seed=4)
    ch, w, t = inst.channel, inst.workers, inst.task
    gain = ch.g0 * w.distance ** (-ch.alpha)
    t_ret = t.L * 1.0e4 / (ch.bandwidth * np.log2(1 + 0.2 * gain / ch.noise))
    mod = inst.model
    np.testing.assert_allclose(mod.t_ret, t_ret, rtol=1e-12)
    np.testing.assert_allclose(mod.cost, plain.model.cost + 0.2 * t_ret, rtol=1e-12)
    want = completion_probability(mod.t_tx + mod.shift + t_ret, mod.exp_rate, 0.9 - 0.1)
    np.testing.assert_allclose(mod.p, want, rtol=1e-12)
    assert inst.m_max == math.floor(0.8 * inst.master.f / t.C) < plain.m_max + 1


def test_trace_law_reads_measured_times():
    samples = load_trace(TRACE)
    assert samples.size >= 100 and np.all(np.diff(samples) >= 0)
    law = Straggler(law="trace", trace=str(TRACE))
    assert law.samples.mean() == pytest.approx(1.0)
    # The empirical CDF steps at the normalized samples.
    u = law.samples[len(law.samples) // 2]
    assert float(law.cdf(u / 2.0, 2.0)) >= 0.5


def test_worlds_from_the_instance_file(tmp_path):
    shutil.copy(TRACE, tmp_path / "times.txt")
    text = to_toml(generate(seed=1)).replace('law = "shiftexp"', 'law = "trace"').replace(
        'trace = ""', 'trace = "times.txt"').replace("decode_s = 0.0", "decode_s = 0.05")
    (tmp_path / "inst.toml").write_text(text)
    inst = load_instance(tmp_path / "inst.toml")
    assert inst.straggler.law == "trace" and inst.result.decode_s == 0.05
    again = load_instance(_write(tmp_path / "again.toml", to_toml(inst)))
    np.testing.assert_array_equal(again.model.p, inst.model.p)
    gen = instance_from_dict({"workers": {"count": 8, "seed": 2, "fail": 0.1},
                              "straggler": {"law": "weibull", "shape": 1.5}})
    assert gen.W == 8 and np.all(gen.workers.fail == 0.1) and gen.straggler.shape == 1.5


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("kw, msg", [
    (dict(law="gamma"), "'straggler.law' must be one of shiftexp, pareto"),
    (dict(law="pareto", shape=1.0), "'straggler.shape' must be greater than 1.0"),
    (dict(law="trace"), "'straggler.trace' must name a file"),
    (dict(law="trace", trace="/no/such/file"), "Trace file not found"),
    (dict(law="bimodal", slow_prob=1.5), "'straggler.slow_prob'"),
])
def test_bad_laws_are_one_line_errors(kw, msg):
    with pytest.raises((InstanceError, ValueError, FileNotFoundError), match=msg):
        Straggler(**kw)


def test_bad_failure_probability():
    with pytest.raises(InstanceError, match=r"'workers.fail\[0\]' must be at most 1.0"):
        generate(GeneratorConfig(fail_prob=1.5), seed=0)
    with pytest.raises(InstanceError, match="Unknown field 'straggler.rate'"):
        instance_from_dict({"workers": {"count": 4}, "straggler": {"rate": 1.0}})
