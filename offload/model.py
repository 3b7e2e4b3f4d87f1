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
* Richer worlds (:mod:`offload.world`): other straggler laws, a result-return link with a
  decoding time, worker failure probabilities, and a total bandwidth / power budget shared
  by the parallel uploads (:class:`~offload.world.LinkShare`).
* :class:`Budget` -- deadline ``T`` and the probabilistic budget
  ``P(m + X_S >= K) >= 1 - eps`` (``X_S`` Poisson-binomial over the ``p_i`` of the chosen
  set ``S``), or a deterministic budget that tolerates a given number of stragglers.

Transmission assumption (the study's structure; it gives no numbers): the master reaches
every chosen worker over its own orthogonal (OFDMA) link of bandwidth ``B`` at that worker's
rate ``r_i``; all ``N - m`` transmissions start at time 0 and run in parallel, each at power
``P``. Local computing runs in parallel with transmitting. With a shared budget
(``Instance.share``, off by default) the ``n = N - m`` links split a total bandwidth
``B_tot`` and/or power ``P_tot`` equally: each gets ``b_n = min(B, B_tot / n)`` and
``P_n = min(P, P_tot / n)``, and :meth:`Instance.model_at` gives the per-worker model at
``n`` (``r_i(n) = b_n log2(1 + P_n g_i / (N0 b_n / B))``, see :mod:`offload.world`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from coding.validate import check_real
from offload.errors import InstanceError
from offload.parts import Budget, Channel, Master, Task
from offload.world import LinkShare, ResultLink, Straggler

__all__ = ["Task", "Master", "Channel", "Workers", "Budget", "Instance", "WorkerModel",
           "check_instance", "completion_probability"]


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
    fail : array_like, optional
        Probability ``fail_i`` in ``[0, 1]`` that worker ``i`` dies before returning its
        result (zeros by default), see :mod:`offload.world`.
    """

    distance: np.ndarray
    f: np.ndarray
    mu: np.ndarray
    kappa: np.ndarray
    fail: np.ndarray = None

    def __post_init__(self):
        d = _vector("workers.distance", self.distance, low=0.0, low_open=True)
        object.__setattr__(self, "distance", d)
        if self.fail is None:
            object.__setattr__(self, "fail", np.zeros(d.size))
        for name, low_open in (("f", True), ("mu", True), ("kappa", False), ("fail", False)):
            arr = _vector(f"workers.{name}", getattr(self, name), low=0.0, low_open=low_open)
            if name == "fail" and arr.size and arr.max() > 1.0:
                i = int(np.argmax(arr))
                raise InstanceError(f"Argument 'workers.fail[{i}]' must be at most 1.0, "
                                    f"not {arr[i]}.")
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
        Master transmit energy ``E_i = P * t_i`` (J; ``P_n * t_i`` under a shared budget).
    e_work : ndarray
        Worker compute energy ``kappa_i * f_i**2 * C`` (J).
    cost : ndarray
        Energy charged to the placement per chosen worker: ``e_tx`` plus ``e_work`` when
        :attr:`Instance.worker_energy` is on (J).
    t_ret : ndarray
        Result return time ``L * result.bits_row / r_up_i`` (s; 0 without a return link).
    e_ret : ndarray
        Worker transmit energy of the return ``P_w * t_ret`` (J), charged with
        ``worker_energy``.
    shift : ndarray
        Deterministic compute time ``C / f_i`` (s).
    exp_rate : ndarray
        Rate ``mu_i * f_i / C`` of the exponential straggling tail (1/s).
    p : ndarray
        ``P(worker i returns by T - decode_s)``: ``(1 - fail_i)`` times the straggler law's
        CDF at ``T - decode_s - t_tx - shift - t_ret`` (for the default shifted exponential
        ``1 - exp(-exp_rate * slack)``).
    mean_time : ndarray
        Mean completion time ``t_tx + shift + t_ret + 1 / exp_rate`` (s), failures aside.
    """

    rate_bps: np.ndarray
    t_tx: np.ndarray
    e_tx: np.ndarray
    e_work: np.ndarray
    cost: np.ndarray
    t_ret: np.ndarray
    e_ret: np.ndarray
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
        When true, each chosen worker's compute energy ``kappa_i * f_i**2 * C`` (and its
        result-return energy) is added to the placement's energy (off by default: the
        master's energy only).
    straggler : Straggler
        The law of the straggling tail (shifted exponential by default), see
        :mod:`offload.world`.
    result : ResultLink
        Result-return link and decoding time (none by default), see :mod:`offload.world`.
    share : LinkShare
        Total bandwidth / transmit-power budget shared by the ``N - m`` parallel uploads
        (none by default), see :mod:`offload.world`.

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
    straggler: Straggler = field(default_factory=Straggler)
    result: ResultLink = field(default_factory=ResultLink)
    share: LinkShare = field(default_factory=LinkShare)

    def __post_init__(self):
        for name, cls in (("task", Task), ("master", Master), ("channel", Channel),
                          ("workers", Workers), ("budget", Budget), ("straggler", Straggler),
                          ("result", ResultLink), ("share", LinkShare)):
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
    def results_by(self) -> float:
        """Time by which the ``K`` results must be in: ``T - decode_s`` (s)."""
        return self.budget.deadline - self.result.decode_s

    @property
    def m_max(self) -> int:
        """Most local subtasks finished by ``T - decode_s``, ``floor((T - decode_s) f_m / C)``,
        capped at N."""
        # A relative nudge so that T f_m / C landing exactly on an integer is not lost to
        # rounding.
        raw = math.floor(self.results_by * self.master.f / self.task.C * (1 + 1e-12))
        return int(min(max(raw, 0), self.task.N))

    @property
    def m_min(self) -> int:
        """Fewest local subtasks a placement can use, ``max(0, N - W)``."""
        return max(0, self.task.N - self.W)

    # -- derived per-worker model -----------------------------------------------------
    @cached_property
    def model(self) -> WorkerModel:
        """Per-worker link, timing, energy and reliability (see :class:`WorkerModel`), each
        link at bandwidth ``B`` and power ``P``: the model of every placement without a
        shared budget. With one, placements use :meth:`model_at`."""
        return self._build(self.channel.bandwidth, self.master.power)

    @cached_property
    def _shared_models(self) -> dict:
        return {}

    def link_at(self, n: int) -> tuple[float, float]:
        """``(b_n, P_n)``: bandwidth (Hz) and power (W) of each of ``n`` parallel uploads."""
        return self.share.link(n, self.channel.bandwidth, self.master.power)

    def model_at(self, n: int) -> WorkerModel:
        """The per-worker model when ``n`` uploads run in parallel (``n = N - m``).

        Without a shared budget (or where it does not bind, ``b_n = B`` and ``P_n = P``)
        this is :attr:`model` itself, so the numbers are the unshared ones bit for bit.
        """
        if not self.share.active:
            return self.model
        key = self.link_at(n)
        if key == (float(self.channel.bandwidth), float(self.master.power)):
            return self.model
        if key not in self._shared_models:
            self._shared_models[key] = self._build(*key)
        return self._shared_models[key]

    def _build(self, bandwidth: float, power: float) -> WorkerModel:
        t, ch, w, res = self.task, self.channel, self.workers, self.result
        gain = ch.g0 * w.distance ** (-ch.alpha)
        # Constant noise density: a sub-band of width b carries noise N0 b / B.
        noise = ch.noise if bandwidth == ch.bandwidth else ch.noise * (bandwidth / ch.bandwidth)
        rate = bandwidth * np.log2(1.0 + power * gain / noise)
        t_tx = t.D / rate
        e_tx = power * t_tx
        if res.bits_row > 0:
            t_ret = t.L * res.bits_row / (ch.bandwidth * np.log2(
                1.0 + res.worker_power * gain / ch.noise))
        else:
            t_ret = np.zeros(w.W)
        e_ret = res.worker_power * t_ret
        e_work = w.kappa * w.f ** 2 * t.C
        cost = e_tx + e_work + e_ret if self.worker_energy else e_tx.copy()
        shift = t.C / w.f
        exp_rate = w.mu * w.f / t.C
        delay = t_tx + shift + t_ret
        if self.straggler.law == "shiftexp":
            p = completion_probability(delay, exp_rate, self.results_by)
        else:
            p = self.straggler.cdf(np.maximum(self.results_by - delay, 0.0), exp_rate)
        p = p * (1.0 - w.fail) if w.fail.any() else p
        arrays = dict(rate_bps=rate, t_tx=t_tx, e_tx=e_tx, e_work=e_work, cost=cost,
                      t_ret=t_ret, e_ret=e_ret, shift=shift, exp_rate=exp_rate, p=p,
                      mean_time=delay + 1 / exp_rate)
        for a in arrays.values():
            a.setflags(write=False)
        return WorkerModel(**arrays)

    def _at(self, n: int | None, what: str) -> WorkerModel:
        if n is None:
            if self.share.active:
                raise InstanceError(f"Instance.{what} needs n, the number of offloaded "
                                    f"subtasks, when a share budget is set.")
            return self.model
        return self.model_at(n)

    def completion_params(self, n: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-worker completion-time law for a runtime or simulator.

        Parameters
        ----------
        n : int, optional
            Uploads in parallel (``N - m`` of the placement); needed only with a shared
            budget (:attr:`share`), where the transmit times depend on it.

        Returns
        -------
        delay : ndarray
            Deterministic part ``t_i + C / f_i + t_ret_i`` (s): transmit time, compute shift
            and result return.
        rate : ndarray
            Rate ``mu_i * f_i / C`` (1/s): one over the mean of the straggling tail (the
            exponential's rate under the default law).
        p : ndarray
            The model's ``P(worker i returns by T - decode_s)``.
        """
        mod = self._at(n, "completion_params")
        return mod.t_tx + mod.shift + mod.t_ret, mod.exp_rate.copy(), mod.p.copy()

    def worker_meets_deadline(self, n: int | None = None) -> np.ndarray:
        """Deterministic-budget view: does worker ``i``'s mean completion time meet
        ``T - decode_s``? (A failure counts as one of the tolerated stragglers.) ``n`` as
        for :meth:`completion_params`."""
        return self._at(n, "worker_meets_deadline").mean_time <= self.results_by * (1 + 1e-12)

    def replace(self, **changes) -> Instance:
        """Return a copy with top-level fields replaced (derived values are recomputed)."""
        kw = dict(task=self.task, master=self.master, channel=self.channel,
                  workers=self.workers, budget=self.budget, worker_energy=self.worker_energy,
                  straggler=self.straggler, result=self.result, share=self.share)
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
