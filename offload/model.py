"""System model of energy-aware offloading of MDS-coded subtasks.

A master holds a task matrix with ``R`` rows. It splits it row-wise into ``K`` blocks of
``L = ceil(R / K)`` rows and MDS-encodes them into ``N`` coded subtasks, any ``K`` of which
recover the result. Each coded subtask runs either on the master (one after another) or on
one of ``W`` heterogeneous, straggling workers (one subtask each).

Units are SI throughout: seconds, hertz (CPU cycles per second), bits, watts, joules, metres.

Model (one dataclass per part):

* :class:`Task` -- subtask cost ``C = L * c_row`` cycles and ``D = L * b_row`` input bits.
* :class:`Master` -- local time ``t_loc = C / f_m`` and energy ``E_loc = kappa * f_m**2 * C``
  per subtask; it finishes at most ``m_max = floor(T * f_m / C)`` local subtasks by ``T``.
* :class:`Channel` -- rate to worker ``i``: ``r_i = B * log2(1 + P * g_i / N0)`` with path
  gain ``g_i = g0 * d_i**(-alpha)``; transmit time ``t_i = D / r_i``, master transmit energy
  ``E_i = P * t_i``.
* :class:`Workers` -- worker ``i`` computes in ``C / f_i + Exp(rate = mu_i * f_i / C)``
  seconds (shifted exponential), so ``p_i = P(t_i + C/f_i + Exp <= T)`` is closed form.
* :class:`Budget` -- deadline ``T`` and the probabilistic budget
  ``P(m + X_S >= K) >= 1 - eps`` (``X_S`` Poisson-binomial over the ``p_i`` of the chosen
  set ``S``), or a deterministic budget that tolerates a given number of stragglers.

Transmission assumption (the study's structure; it gives no numbers): the master reaches
every chosen worker over its own orthogonal (OFDMA) link of bandwidth ``B`` at that worker's
rate ``r_i``; all ``N - m`` transmissions start at time 0 and run in parallel, each at power
``P``. Local computing runs in parallel with transmitting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from coding._validate import check_int, check_real
from offload.errors import InstanceError

__all__ = ["Task", "Master", "Channel", "Workers", "Budget", "Instance", "WorkerModel",
           "check_instance", "completion_probability"]


@dataclass(frozen=True)
class Task:
    """The coded task.

    Parameters
    ----------
    R : int
        Rows of the task matrix.
    K : int
        Number of row blocks (any ``K`` coded subtasks recover the result).
    N : int
        Number of MDS-coded subtasks, ``K <= N``.
    c_row : float
        CPU cycles per row (cycles).
    b_row : float
        Input bits per row sent to a worker (bits).
    """

    R: int = 600
    K: int = 6
    N: int = 10
    c_row: float = 2.5e6
    b_row: float = 4.0e4

    def __post_init__(self):
        check_int("task.K", self.K, low=1)
        check_int("task.N", self.N, low=1)
        check_int("task.K", self.K, high=self.N, high_name="N")
        check_int("task.R", self.R, low=self.K, low_name="K")
        check_real("task.c_row", self.c_row, low=0.0, low_open=True)
        check_real("task.b_row", self.b_row, low=0.0, low_open=True)

    @property
    def L(self) -> int:
        """Rows per block, ``ceil(R / K)`` (the last block is zero-padded)."""
        return -(-self.R // self.K)

    @property
    def C(self) -> float:
        """CPU cycles of one coded subtask, ``L * c_row``."""
        return self.L * self.c_row

    @property
    def D(self) -> float:
        """Input bits of one coded subtask, ``L * b_row``."""
        return self.L * self.b_row


@dataclass(frozen=True)
class Master:
    """The master device.

    Parameters
    ----------
    f : float
        Master CPU frequency ``f_m`` (Hz).
    kappa : float
        Effective switched capacitance (J / (cycle * Hz**2)); energy per cycle is
        ``kappa * f**2``.
    power : float
        Transmit power ``P`` on each link (W).
    """

    f: float = 1.0e9
    kappa: float = 1.0e-27
    power: float = 0.5

    def __post_init__(self):
        check_real("master.f", self.f, low=0.0, low_open=True)
        check_real("master.kappa", self.kappa, low=0.0)
        check_real("master.power", self.power, low=0.0, low_open=True)


@dataclass(frozen=True)
class Channel:
    """The wireless channel from the master to the workers.

    Parameters
    ----------
    bandwidth : float
        Bandwidth ``B`` of each worker's link (Hz).
    noise : float
        Noise power ``N0`` (W).
    g0 : float
        Path gain at 1 m (dimensionless).
    alpha : float
        Path-loss exponent.
    """

    bandwidth: float = 1.0e6
    noise: float = 1.0e-13
    g0: float = 1.0e-3
    alpha: float = 3.0

    def __post_init__(self):
        check_real("channel.bandwidth", self.bandwidth, low=0.0, low_open=True)
        check_real("channel.noise", self.noise, low=0.0, low_open=True)
        check_real("channel.g0", self.g0, low=0.0, low_open=True)
        check_real("channel.alpha", self.alpha, low=0.0)


def _vector(name: str, values, *, low: float, low_open: bool) -> np.ndarray:
    arr = np.array(values, dtype=float).reshape(-1)
    for i, v in enumerate(arr):
        check_real(f"{name}[{i}]", float(v), low=low, low_open=low_open)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Workers:
    """The ``W`` heterogeneous workers (arrays of length ``W``).

    Parameters
    ----------
    distance : array_like
        Distance ``d_i`` from the master (m).
    f : array_like
        CPU frequency ``f_i`` (Hz).
    mu : array_like
        Straggling parameter ``mu_i`` (dimensionless): the exponential tail has rate
        ``mu_i * f_i / C`` per second, so smaller ``mu_i`` means heavier straggling.
    kappa : array_like
        Switched capacitance ``kappa_i`` of each worker (J / (cycle * Hz**2)); used only when
        :attr:`Instance.worker_energy` is on.
    """

    distance: np.ndarray
    f: np.ndarray
    mu: np.ndarray
    kappa: np.ndarray

    def __post_init__(self):
        d = _vector("workers.distance", self.distance, low=0.0, low_open=True)
        object.__setattr__(self, "distance", d)
        for name, low_open in (("f", True), ("mu", True), ("kappa", False)):
            arr = _vector(f"workers.{name}", getattr(self, name), low=0.0, low_open=low_open)
            if arr.shape != d.shape:
                raise InstanceError(
                    f"Field 'workers.{name}' must have {d.size} entries (one per worker), "
                    f"not {arr.size}."
                )
            object.__setattr__(self, name, arr)
        if d.size < 1:
            raise InstanceError("Field 'workers.distance' must list at least one worker.")

    @property
    def W(self) -> int:
        """Number of workers."""
        return int(self.distance.size)


@dataclass(frozen=True)
class Budget:
    """The latency budget.

    Parameters
    ----------
    deadline : float
        Deadline ``T`` (s).
    eps : float
        Allowed failure probability: the budget is met when ``P(m + X_S >= K) >= 1 - eps``.
    stragglers : int or None
        ``None`` (default) for the probabilistic budget above. An integer ``s`` selects the
        deterministic variant: each worker is taken to finish at its *mean* completion time
        ``t_i + C/f_i + C/(mu_i f_i)``, and the budget is met when ``K`` subtasks finish by
        ``T`` even if the ``s`` of the chosen workers fail.
    """

    deadline: float = 0.9
    eps: float = 0.05
    stragglers: int | None = None

    def __post_init__(self):
        check_real("budget.deadline", self.deadline, low=0.0, low_open=True)
        check_real("budget.eps", self.eps, low=0.0, high=1.0, high_open=True)
        if self.stragglers is not None:
            check_int("budget.stragglers", self.stragglers, low=0)


@dataclass(frozen=True, eq=False)
class WorkerModel:
    """Per-worker quantities derived from an :class:`Instance` (arrays of length ``W``).

    This is what a runtime needs to emulate the workers: worker ``i`` returns its result at
    ``t_tx[i] + shift[i] + Exp(rate[i])`` seconds after the start.

    Attributes
    ----------
    rate_bps : ndarray
        Link rate ``r_i`` (bit/s).
    t_tx : ndarray
        Transmit time ``t_i = D / r_i`` (s).
    e_tx : ndarray
        Master transmit energy ``E_i = P * t_i`` (J).
    e_work : ndarray
        Worker compute energy ``kappa_i * f_i**2 * C`` (J).
    cost : ndarray
        Energy charged to the placement per chosen worker: ``e_tx`` plus ``e_work`` when
        :attr:`Instance.worker_energy` is on (J).
    shift : ndarray
        Deterministic compute time ``C / f_i`` (s).
    exp_rate : ndarray
        Rate ``mu_i * f_i / C`` of the exponential straggling tail (1/s).
    p : ndarray
        ``P(worker i returns by T) = 1 - exp(-exp_rate * (T - t_tx - shift))`` when positive.
    mean_time : ndarray
        Mean completion time ``t_tx + shift + 1 / exp_rate`` (s).
    """

    rate_bps: np.ndarray
    t_tx: np.ndarray
    e_tx: np.ndarray
    e_work: np.ndarray
    cost: np.ndarray
    shift: np.ndarray
    exp_rate: np.ndarray
    p: np.ndarray
    mean_time: np.ndarray


@dataclass(frozen=True, eq=False)
class Instance:
    """One offloading problem: task, master, channel, workers and budget.

    Parameters
    ----------
    workers, task, master, channel, budget
        The parts of the model, see their classes.
    worker_energy : bool
        When true, each chosen worker's compute energy ``kappa_i * f_i**2 * C`` is added to
        the placement's energy (off by default, as in the study: the master's energy only).

    Raises
    ------
    InstanceError
        If ``N > W + m_max``: the ``N`` coded subtasks cannot all be placed.
    """

    workers: Workers
    task: Task = field(default_factory=Task)
    master: Master = field(default_factory=Master)
    channel: Channel = field(default_factory=Channel)
    budget: Budget = field(default_factory=Budget)
    worker_energy: bool = False

    def __post_init__(self):
        for name, cls in (("task", Task), ("master", Master), ("channel", Channel),
                          ("workers", Workers), ("budget", Budget)):
            if not isinstance(getattr(self, name), cls):
                raise InstanceError(
                    f"Field {name!r} must be a {cls.__name__}, "
                    f"not {type(getattr(self, name)).__name__}."
                )
        if not isinstance(self.worker_energy, bool):
            raise TypeError(f"Argument 'worker_energy' must be a bool, not {self.worker_energy!r}.")
        cap = self.W + self.m_max
        if self.task.N > cap:
            raise InstanceError(
                f"Argument 'task.N' must be at most W + m_max={cap} "
                f"(W={self.W}, m_max={self.m_max}), not {self.task.N}."
            )

    # -- scalar shortcuts -------------------------------------------------------------
    @property
    def K(self) -> int:
        """Subtasks needed to decode."""
        return self.task.K

    @property
    def N(self) -> int:
        """Coded subtasks to place."""
        return self.task.N

    @property
    def W(self) -> int:
        """Number of workers."""
        return self.workers.W

    @property
    def t_loc(self) -> float:
        """Local time per subtask, ``C / f_m`` (s)."""
        return self.task.C / self.master.f

    @property
    def e_loc(self) -> float:
        """Local energy per subtask, ``kappa * f_m**2 * C`` (J)."""
        return self.master.kappa * self.master.f ** 2 * self.task.C

    @property
    def m_max(self) -> int:
        """Most local subtasks finished by the deadline, ``floor(T f_m / C)``, capped at N."""
        # A relative nudge so that T f_m / C landing exactly on an integer is not lost to
        # rounding.
        raw = math.floor(self.budget.deadline * self.master.f / self.task.C * (1 + 1e-12))
        return int(min(raw, self.task.N))

    @property
    def m_min(self) -> int:
        """Fewest local subtasks a placement can use, ``max(0, N - W)``."""
        return max(0, self.task.N - self.W)

    # -- derived per-worker model -----------------------------------------------------
    @cached_property
    def model(self) -> WorkerModel:
        """Per-worker link, timing, energy and reliability (see :class:`WorkerModel`)."""
        t, m, ch, w, T = self.task, self.master, self.channel, self.workers, self.budget.deadline
        gain = ch.g0 * w.distance ** (-ch.alpha)
        rate = ch.bandwidth * np.log2(1.0 + m.power * gain / ch.noise)
        t_tx = t.D / rate
        e_tx = m.power * t_tx
        e_work = w.kappa * w.f ** 2 * t.C
        cost = e_tx + e_work if self.worker_energy else e_tx.copy()
        shift = t.C / w.f
        exp_rate = w.mu * w.f / t.C
        p = completion_probability(t_tx + shift, exp_rate, T)
        arrays = dict(rate_bps=rate, t_tx=t_tx, e_tx=e_tx, e_work=e_work, cost=cost,
                      shift=shift, exp_rate=exp_rate, p=p, mean_time=t_tx + shift + 1 / exp_rate)
        for a in arrays.values():
            a.setflags(write=False)
        return WorkerModel(**arrays)

    def completion_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-worker completion-time law for a runtime or simulator.

        Returns
        -------
        delay : ndarray
            Deterministic part ``t_i + C / f_i`` (s): transmit time plus compute shift.
        rate : ndarray
            Rate ``mu_i * f_i / C`` (1/s) of the exponential straggling tail.
        p : ndarray
            Closed-form ``P(delay_i + Exp(rate_i) <= T)``.
        """
        mod = self.model
        return mod.t_tx + mod.shift, mod.exp_rate.copy(), mod.p.copy()

    def worker_meets_deadline(self) -> np.ndarray:
        """Deterministic-budget view: does worker ``i``'s mean completion time meet ``T``?"""
        return self.model.mean_time <= self.budget.deadline * (1 + 1e-12)

    def replace(self, **changes) -> Instance:
        """Return a copy with top-level fields replaced (derived values are recomputed)."""
        kw = dict(task=self.task, master=self.master, channel=self.channel,
                  workers=self.workers, budget=self.budget, worker_energy=self.worker_energy)
        for key in changes:
            if key not in kw:
                raise InstanceError(f"Unknown instance field {key!r}; allowed: {', '.join(kw)}.")
        kw.update(changes)
        return Instance(**kw)


def completion_probability(delay, rate, deadline: float) -> np.ndarray:
    """``P(delay + Exp(rate) <= deadline)`` for a shifted exponential, elementwise.

    Parameters
    ----------
    delay : array_like
        Deterministic shift (s).
    rate : array_like
        Exponential rate (1/s), positive.
    deadline : float
        Deadline (s).
    """
    delay = np.asarray(delay, dtype=float)
    rate = np.asarray(rate, dtype=float)
    slack = np.maximum(deadline - delay, 0.0)
    return -np.expm1(-rate * slack)


def check_instance(instance: object) -> Instance:
    """Return ``instance`` if it is an :class:`Instance`, else raise ``TypeError``."""
    if not isinstance(instance, Instance):
        raise TypeError(
            f"Argument 'instance' must be an Instance, not {type(instance).__name__}."
        )
    return instance
