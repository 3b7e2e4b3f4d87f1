"""Seeded random instances and TOML instance files.

The defaults are kofn's own choice, not the study's (the study gives no numeric
parameters): ``K=6, N=10, W=15``, ``C=2.5e8`` cycles and ``D=4`` Mbit per subtask
(``R=600`` rows, ``c_row=2.5e6``, ``b_row=4e4``), ``f_m=1`` GHz, ``kappa=1e-27``,
``T=0.9`` s, ``eps=0.05``, ``P=0.5`` W, ``B=1`` MHz, ``N0=1e-13`` W, ``g0=1e-3``,
``alpha=3``, distances ``U[20, 300]`` m, ``f_i = f_w * U[0.5, 1.5]`` with ``f_w=2`` GHz and
``mu_i ~ U[0.1, 1]``. They were picked so that the optimum moves between all-offload, mixed
and local-first placements over the ranges the figures sweep (0.1-1.5 W, 1.5-2.7 GHz).

The random draws of a seed do not depend on the scalar parameters, so sweeping ``power`` or
``f_w`` with the same seed moves the same workers (common random numbers).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coding.validate import check_int, check_real
from offload.errors import InstanceError
from offload.model import Budget, Channel, Instance, Master, Task, Workers
from offload.world import LinkShare, ResultLink, Straggler

__all__ = ["GeneratorConfig", "generate", "load_instance", "instance_from_dict", "to_toml"]


@dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of the seeded instance generator (SI units, see module docstring)."""

    K: int = 6
    N: int = 10
    W: int = 15
    R: int = 600
    c_row: float = 2.5e6
    b_row: float = 4.0e4
    f_m: float = 1.0e9
    kappa: float = 1.0e-27
    power: float = 0.5
    deadline: float = 0.9
    eps: float = 0.05
    stragglers: int | None = None
    bandwidth: float = 1.0e6
    noise: float = 1.0e-13
    g0: float = 1.0e-3
    alpha: float = 3.0
    distance_min: float = 20.0
    distance_max: float = 300.0
    f_w: float = 2.0e9
    f_spread_min: float = 0.5
    f_spread_max: float = 1.5
    mu_min: float = 0.1
    mu_max: float = 1.0
    kappa_w: float = 1.0e-27
    worker_energy: bool = False
    law: str = "shiftexp"
    shape: float = 2.0
    slow_prob: float = 0.1
    slow_factor: float = 10.0
    trace: str = ""
    fail_prob: float = 0.0
    result_bits_row: float = 0.0
    worker_power: float = 0.1
    decode_s: float = 0.0
    bandwidth_total: float = 0.0
    power_total: float = 0.0

    def __post_init__(self):
        check_int("W", self.W, low=1)
        check_real("distance_min", self.distance_min, low=0.0, low_open=True)
        check_real("distance_max", self.distance_max, low=self.distance_min)
        check_real("f_spread_min", self.f_spread_min, low=0.0, low_open=True)
        check_real("f_spread_max", self.f_spread_max, low=self.f_spread_min)
        check_real("mu_min", self.mu_min, low=0.0, low_open=True)
        check_real("mu_max", self.mu_max, low=self.mu_min)
        check_real("f_w", self.f_w, low=0.0, low_open=True)
        check_real("kappa_w", self.kappa_w, low=0.0)

    def replace(self, **changes) -> GeneratorConfig:
        """Return a copy with some parameters changed."""
        return dataclasses.replace(self, **changes)


def generate(config: GeneratorConfig | None = None, seed: int = 0) -> Instance:
    """Draw a random instance.

    Parameters
    ----------
    config : GeneratorConfig, optional
        Parameters; the defaults when omitted.
    seed : int
        Seed of the draws (distances, CPU spread, straggling parameters).

    Returns
    -------
    Instance
    """
    config = GeneratorConfig() if config is None else config
    if not isinstance(config, GeneratorConfig):
        raise TypeError(
            f"Argument 'config' must be a GeneratorConfig, not {type(config).__name__}."
        )
    seed = check_int("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    c = config
    u = rng.random((3, c.W))
    workers = Workers(
        distance=c.distance_min + (c.distance_max - c.distance_min) * u[0],
        f=c.f_w * (c.f_spread_min + (c.f_spread_max - c.f_spread_min) * u[1]),
        mu=c.mu_min + (c.mu_max - c.mu_min) * u[2],
        kappa=np.full(c.W, c.kappa_w),
        fail=np.full(c.W, c.fail_prob),
    )
    return Instance(
        workers=workers,
        task=Task(R=c.R, K=c.K, N=c.N, c_row=c.c_row, b_row=c.b_row),
        master=Master(f=c.f_m, kappa=c.kappa, power=c.power),
        channel=Channel(bandwidth=c.bandwidth, noise=c.noise, g0=c.g0, alpha=c.alpha),
        budget=Budget(deadline=c.deadline, eps=c.eps, stragglers=c.stragglers),
        worker_energy=c.worker_energy,
        straggler=_straggler(c),
        result=ResultLink(bits_row=c.result_bits_row, worker_power=c.worker_power,
                          decode_s=c.decode_s),
        share=LinkShare(bandwidth=c.bandwidth_total, power=c.power_total),
    )


_TRACES: dict[str, np.ndarray] = {}


def _straggler(c: GeneratorConfig) -> Straggler:
    if c.law != "trace":
        return Straggler(law=c.law, shape=c.shape, slow_prob=c.slow_prob,
                         slow_factor=c.slow_factor)
    if c.trace not in _TRACES:  # a sweep builds many instances from one file
        _TRACES[c.trace] = Straggler(law="trace", trace=c.trace).samples
    return Straggler(law="trace", trace=c.trace, samples=_TRACES[c.trace])


_SECTIONS = {"task": Task, "master": Master, "channel": Channel, "budget": Budget,
             "result": ResultLink, "share": LinkShare}
_STRAGGLER = ("law", "shape", "slow_prob", "slow_factor", "trace")
_WORKER_ARRAYS = ("distance", "f", "mu", "kappa", "fail")
_WORKER_GEN = {"count": "W", "seed": None, "distance_min": "distance_min",
               "distance_max": "distance_max", "f_w": "f_w", "f_spread_min": "f_spread_min",
               "f_spread_max": "f_spread_max", "mu_min": "mu_min", "mu_max": "mu_max",
               "kappa": "kappa_w", "fail": "fail_prob"}


def _check_keys(where: str, got: dict, allowed) -> None:
    for key in got:
        if key not in allowed:
            raise InstanceError(
                f"Unknown field '{where}{key}'; allowed: {', '.join(sorted(allowed))}."
            )


def instance_from_dict(data: dict, base=None) -> Instance:
    """Build an instance from the dictionary form of a TOML instance file.

    Sections ``task``, ``master``, ``channel``, ``budget``, ``result`` and ``share`` take the
    fields of the classes of the same name (all optional; ``result`` is
    :class:`~offload.world.ResultLink`, ``share`` is :class:`~offload.world.LinkShare`:
    ``bandwidth`` and ``power``, the totals shared by the parallel uploads, 0 for none).
    ``straggler`` takes ``law`` (``shiftexp``, ``pareto``, ``weibull``, ``bimodal`` or
    ``trace``), ``shape``, ``slow_prob``, ``slow_factor`` and ``trace`` (a file path,
    relative to ``base``, the instance file's folder). ``workers`` either lists the arrays ``distance``, ``f``, ``mu`` (and optionally
    ``kappa`` and ``fail``, each a list or one number), or asks for random workers with
    ``count`` and ``seed`` plus optional generator fields (``f_w``, ``distance_min``,
    ``fail``, ...).
    """
    if not isinstance(data, dict):
        raise InstanceError("An instance must be a table of sections.")
    _check_keys("", data, {*_SECTIONS, "straggler", "workers", "worker_energy"})
    parts = {}
    for name, cls in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, dict):
            raise InstanceError(f"Field {name!r} must be a table.")
        _check_keys(f"{name}.", section, {f.name for f in dataclasses.fields(cls)})
        parts[name] = cls(**section)
    parts["straggler"] = _straggler_from_dict(data.get("straggler", {}), base)
    if "workers" not in data or not isinstance(data["workers"], dict):
        raise InstanceError("Field 'workers' must be a table (arrays, or count and seed).")
    parts["workers"] = _workers_from_dict(data["workers"], parts)
    return Instance(worker_energy=data.get("worker_energy", False), **parts)


def _straggler_from_dict(sec, base) -> Straggler:
    if not isinstance(sec, dict):
        raise InstanceError("Field 'straggler' must be a table.")
    _check_keys("straggler.", sec, _STRAGGLER)
    sec = dict(sec)
    if sec.get("trace") and base is not None and not Path(sec["trace"]).is_absolute():
        sec["trace"] = str(Path(base) / sec["trace"])
    return Straggler(**sec)


def _workers_from_dict(sec: dict, parts: dict) -> Workers:
    if "count" in sec:
        _check_keys("workers.", sec, _WORKER_GEN)
        t, m = parts["task"], parts["master"]
        kw = {v: sec[k] for k, v in _WORKER_GEN.items() if v and k in sec}
        cfg = GeneratorConfig(K=t.K, N=t.N, R=t.R, c_row=t.c_row, b_row=t.b_row, f_m=m.f,
                              **kw)
        return generate(cfg, sec.get("seed", 0)).workers
    _check_keys("workers.", sec, _WORKER_ARRAYS)
    for key in ("distance", "f", "mu"):
        if key not in sec:
            raise InstanceError(f"Field 'workers.{key}' is missing (or give count and seed).")
    n = len(sec["distance"])
    kappa, fail = sec.get("kappa", 1.0e-27), sec.get("fail", 0.0)
    kappa = kappa if isinstance(kappa, list) else [kappa] * n
    fail = fail if isinstance(fail, list) else [fail] * n
    return Workers(distance=sec["distance"], f=sec["f"], mu=sec["mu"], kappa=kappa, fail=fail)


def load_instance(path) -> Instance:
    """Load an instance from a TOML file (see :func:`instance_from_dict` for the layout)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Instance file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise InstanceError(f"{path}: not valid TOML: {err}") from err
    return instance_from_dict(data, base=path.parent)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, int | np.integer):
        return str(int(v))
    return repr(float(v))


def to_toml(instance: Instance) -> str:
    """Serialize an instance as TOML text that :func:`load_instance` reads back exactly."""
    lines = [f"worker_energy = {_fmt(instance.worker_energy)}"]
    for name in _SECTIONS:
        part = getattr(instance, name)
        lines.append(f"\n[{name}]")
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            if value is not None:
                lines.append(f"{f.name} = {_fmt(value)}")
    lines.append("\n[straggler]")
    for key, value in instance.straggler.to_dict().items():
        lines.append(f"{key} = {_fmt(value)}")
    lines.append("\n[workers]")
    for key in _WORKER_ARRAYS:
        arr = getattr(instance.workers, key)
        lines.append(f"{key} = [{', '.join(_fmt(v) for v in arr)}]")
    return "\n".join(lines) + "\n"
