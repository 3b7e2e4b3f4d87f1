"""System model: closed forms, validation messages and instance files."""

import math

import numpy as np
import pytest

from offload.errors import InstanceError
from offload.generator import (
    GeneratorConfig,
    generate,
    instance_from_dict,
    load_instance,
    to_toml,
)
from offload.model import Budget, Channel, Instance, Master, Task, Workers


def test_defaults_match_the_study():
    inst = generate(seed=0)
    assert (inst.K, inst.N, inst.W) == (6, 10, 15)
    assert inst.task.C == pytest.approx(2.5e8)
    assert inst.task.D == pytest.approx(4e6)
    assert inst.m_max == 3  # floor(0.9 * 1e9 / 2.5e8)
    assert inst.e_loc == pytest.approx(1e-27 * 1e18 * 2.5e8)
    assert inst.t_loc == pytest.approx(0.25)


def test_worker_closed_forms():
    inst = generate(seed=4)
    w, mod, P = inst.workers, inst.model, inst.master.power
    i = 7
    g = 1e-3 * w.distance[i] ** -3
    r = 1e6 * math.log2(1 + P * g / 1e-13)
    assert mod.rate_bps[i] == pytest.approx(r)
    assert mod.t_tx[i] == pytest.approx(4e6 / r)
    assert mod.e_tx[i] == pytest.approx(P * 4e6 / r)
    lam = w.mu[i] * w.f[i] / 2.5e8
    slack = 0.9 - 4e6 / r - 2.5e8 / w.f[i]
    assert mod.p[i] == pytest.approx(1 - math.exp(-lam * slack) if slack > 0 else 0.0)
    delay, rate, p = inst.completion_params()
    assert delay[i] == pytest.approx(4e6 / r + 2.5e8 / w.f[i])
    assert rate[i] == pytest.approx(lam)
    np.testing.assert_array_equal(p, mod.p)


def test_worker_energy_option_adds_compute_energy():
    on = generate(GeneratorConfig(worker_energy=True), seed=1)
    off = generate(seed=1)
    extra = 1e-27 * on.workers.f ** 2 * 2.5e8
    np.testing.assert_allclose(on.model.cost, off.model.cost + extra)


def test_same_seed_same_workers_across_parameters():
    a = generate(GeneratorConfig(power=0.1), seed=3)
    b = generate(GeneratorConfig(power=1.5), seed=3)
    np.testing.assert_array_equal(a.workers.distance, b.workers.distance)


def _workers(n=4, **kw):
    d = dict(distance=[50.0] * n, f=[2e9] * n, mu=[0.5] * n, kappa=[1e-27] * n)
    d.update(kw)
    return Workers(**d)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: Master(power=-1.0), "master.power"),
        (lambda: Master(f=0.0), "master.f"),
        (lambda: Master(kappa=-1e-27), "master.kappa"),
        (lambda: Task(K=12, N=10), "task.K"),
        (lambda: Task(N=0), "task.N"),
        (lambda: Task(c_row=-1.0), "task.c_row"),
        (lambda: Task(R=3, K=6), "task.R"),
        (lambda: Channel(noise=0.0), "channel.noise"),
        (lambda: Channel(bandwidth=-1.0), "channel.bandwidth"),
        (lambda: Budget(eps=1.0), "budget.eps"),
        (lambda: Budget(deadline=-0.1), "budget.deadline"),
        (lambda: Budget(stragglers=-1), "budget.stragglers"),
        (lambda: _workers(distance=[50.0, -1.0, 50.0, 50.0]), "workers.distance[1]"),
        (lambda: _workers(f=[2e9] * 3), "workers.f"),
        (lambda: _workers(mu=[0.5, 0.0, 0.5, 0.5]), "workers.mu[1]"),
        (lambda: Instance(workers=_workers(4), task=Task(K=6, N=10)), "task.N"),
        (lambda: GeneratorConfig(W=0), "W"),
    ],
)
def test_bad_fields_name_the_field(make, field):
    with pytest.raises(ValueError) as info:
        make()
    msg = str(info.value)
    assert f"'{field}'" in msg
    assert "\n" not in msg


def test_n_above_w_plus_m_max_message():
    with pytest.raises(InstanceError, match=r"'task.N' must be at most W \+ m_max=7"):
        Instance(workers=_workers(4), task=Task(K=6, N=10))


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="'task.K'"):
        Task(K=6.5)
    with pytest.raises(InstanceError, match="'workers'"):
        Instance(workers=[1, 2])


def test_toml_round_trip(tmp_path):
    inst = generate(GeneratorConfig(stragglers=1, worker_energy=True), seed=5)
    path = tmp_path / "inst.toml"
    path.write_text(to_toml(inst))
    back = load_instance(path)
    np.testing.assert_array_equal(back.model.p, inst.model.p)
    np.testing.assert_array_equal(back.model.cost, inst.model.cost)
    assert back.budget == inst.budget and back.task == inst.task
    assert back.worker_energy


def test_toml_generated_workers(tmp_path):
    path = tmp_path / "gen.toml"
    path.write_text("[master]\npower = 0.3\n[workers]\ncount = 15\nseed = 2\n")
    inst = load_instance(path)
    ref = generate(GeneratorConfig(power=0.3), seed=2)
    np.testing.assert_allclose(inst.workers.distance, ref.workers.distance)
    assert inst.master.power == 0.3


def test_toml_errors(tmp_path):
    with pytest.raises(InstanceError, match="'task.rows'"):
        instance_from_dict({"task": {"rows": 3}, "workers": {"count": 3}})
    with pytest.raises(InstanceError, match="'workers.mu'"):
        instance_from_dict({"workers": {"distance": [1.0], "f": [1e9]}})
    with pytest.raises(InstanceError, match="'workers'"):
        instance_from_dict({"task": {}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[master\n")
    with pytest.raises(InstanceError, match="not valid TOML"):
        load_instance(bad)
    with pytest.raises(FileNotFoundError):
        load_instance(tmp_path / "missing.toml")
    neg = tmp_path / "neg.toml"
    neg.write_text("[master]\npower = -2.0\n[workers]\ncount = 15\n")
    with pytest.raises(ValueError, match="'master.power' must be greater than 0.0, not -2.0"):
        load_instance(neg)
