"""The scalar parts of an offloading instance: task, master, channel and latency budget.

See :mod:`offload.model` for how they combine; :mod:`offload.model` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from coding.validate import check_int, check_real

__all__ = ["Task", "Master", "Channel", "Budget"]


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
