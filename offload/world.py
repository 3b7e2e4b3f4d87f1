"""Richer worlds: straggler laws, a result-return link with decoding time, worker failures,
and a total bandwidth / transmit-power budget shared by the parallel uploads.

Each part is selectable from the instance file (see :func:`offload.generator.instance_from_dict`)
and keeps the placement problem's shape: worker ``i`` returns its result by ``T`` with a
probability ``p_i`` that does not depend on *which* other workers are chosen, so every
policy works unchanged. (With a shared budget ``p_i`` and the energy depend on *how many*
are chosen, ``n = N - m``; the policies evaluate every ``m`` with its own per-worker model,
:meth:`offload.model.Instance.model_at`.)

**Straggler laws.** Worker ``i``'s compute time is ``C / f_i + X_i`` where the straggling
tail ``X_i >= 0`` has mean ``s_i = C / (mu_i f_i)`` under every law (so that ``mu_i`` keeps
its meaning, smaller is slower) and a shape set by the law:

=============  =====================================================  =============================
law            tail ``X_i``                                           ``P(X_i <= x)``
=============  =====================================================  =============================
``shiftexp``   exponential, mean ``s_i`` (the default)                ``1 - exp(-x / s_i)``
``pareto``     Lomax (Pareto II), shape ``a > 1``, scale ``s_i (a-1)``  ``1 - (1 + x / (s_i (a-1)))^-a``
``weibull``    shape ``k``, scale ``s_i / Gamma(1 + 1/k)``               ``1 - exp(-(x / scale)^k)``
``bimodal``    with prob. ``slow_prob`` exponential of mean               mixture of the two exponentials
               ``slow_factor * s_i * c``, else of mean ``s_i * c``;
               ``c = 1 / (1 - slow_prob + slow_prob * slow_factor)``
``trace``      ``s_i * t / mean(t)`` for ``t`` drawn from the               empirical CDF of the samples
               measured samples in a file (one time per line, s)
=============  =====================================================  =============================

**Result return and decoding.** With ``result_bits > 0`` each worker sends ``result_bits``
bits per row (``L * result_bits`` per subtask) back at rate
``B log2(1 + P_w g_i / N0)`` (its own link, transmit power ``P_w``), which adds
``t_ret_i`` to its completion; the worker's transmit energy ``P_w t_ret_i`` is charged with
the worker energy (``worker_energy = true``). Decoding takes ``decode_s`` seconds after the
``K``-th result, so results (local ones included) must be in by ``T - decode_s``.

**Failures.** Worker ``i`` dies before returning with probability ``fail_i``, independently
of its timing: ``p_i = (1 - fail_i) P(t_i + C/f_i + t_ret_i + X_i <= T - decode_s)``.

**Shared budget (OFDMA sharing).** Without it (the default) every chosen worker gets its own
link of bandwidth ``B`` at power ``P``, whatever their number. With a total bandwidth
``B_tot`` (``share.bandwidth``) and/or a total transmit power ``P_tot`` (``share.power``,
0 = no budget) the ``n = N - m`` uploads, which all start at time 0, split them equally::

    b_n = min(B, B_tot / n)            P_n = min(P, P_tot / n)
    r_i(n) = b_n log2(1 + P_n g_i / (N0 b_n / B))
    t_i(n) = D / r_i(n)                E_i(n) = P_n t_i(n)

``N0`` is the noise power over the reference bandwidth ``B`` (``channel.noise``), so the
noise power on a sub-band of width ``b_n`` is ``N0 b_n / B`` (constant noise density). ``B``
and ``P`` stay the most one link can use, so the budget binds only when ``n B > B_tot``
(``n P > P_tot``); at or above ``N B`` (``N P``) it changes nothing, and with ``b_n = B``,
``P_n = P`` the rate is today's ``B log2(1 + P g_i / N0)`` exactly. The split is static: a
link keeps its share for its whole transmission (no reallocation when a shorter one ends).
It is an equal split, not water-filling: water-filling would make each link's rate depend
on the gains of the other chosen workers, so ``p_i`` would depend on the whole set ``S``;
the equal split keeps it a function of ``i`` and ``n`` only. The result-return link (above)
keeps its own bandwidth ``B``: the budget covers the master's input uploads. Fewer links
means a larger share each, so every ``t_i(n)`` is non-decreasing and every ``p_i`` non-
increasing in ``n``; the most reliable placement is still ``m_max`` local subtasks plus the
most reliable workers. A smaller ``P_n`` lowers the energy per bit (and the rate), a
smaller ``b_n`` raises it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from coding.validate import check_real
from offload.errors import InstanceError

__all__ = ["LAWS", "Straggler", "ResultLink", "LinkShare", "load_trace"]

LAWS = ("shiftexp", "pareto", "weibull", "bimodal", "trace")


def load_trace(path) -> np.ndarray:
    """Read measured times (seconds, one per line; ``#`` comments and blanks skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Trace file not found: {path}")
    vals = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            vals.append(float(line.split(",")[0]))
        except ValueError as err:
            raise InstanceError(f"{path}:{n}: not a number: {line!r}") from err
    arr = np.array(vals, dtype=float)
    if arr.size < 2 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.mean() <= 0:
        raise InstanceError(f"{path}: a trace needs at least 2 finite times >= 0, not "
                            f"{arr.size} usable ones.")
    return np.sort(arr)


@dataclass(frozen=True, eq=False)
class Straggler:
    """The law of the straggling tail ``X_i`` (see module docstring).

    Parameters
    ----------
    law : str
        One of :data:`LAWS`.
    shape : float
        Pareto shape ``a`` (> 1) or Weibull shape ``k`` (> 0).
    slow_prob, slow_factor : float
        The bimodal law's share of slow runs and their mean over the fast runs' mean.
    trace : str
        Path of the trace file (law ``trace``).
    """

    law: str = "shiftexp"
    shape: float = 2.0
    slow_prob: float = 0.1
    slow_factor: float = 10.0
    trace: str = ""
    samples: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        if self.law not in LAWS:
            raise InstanceError(
                f"Field 'straggler.law' must be one of {', '.join(LAWS)}, not {self.law!r}.")
        low = 1.0 if self.law == "pareto" else 0.0
        check_real("straggler.shape", self.shape, low=low, low_open=True)
        check_real("straggler.slow_prob", self.slow_prob, low=0.0, high=1.0)
        check_real("straggler.slow_factor", self.slow_factor, low=0.0, low_open=True)
        if self.law == "trace" and self.samples is None:
            if not self.trace:
                raise InstanceError("Field 'straggler.trace' must name a file for law 'trace'.")
            object.__setattr__(self, "samples", load_trace(self.trace))
        if self.trace:  # absolute, so that an instance file written out reads back
            object.__setattr__(self, "trace", str(Path(self.trace).resolve()))
        if self.samples is not None:
            norm = np.sort(np.asarray(self.samples, dtype=float))
            norm = norm / norm.mean()
            norm.setflags(write=False)
            object.__setattr__(self, "samples", norm)

    def _bimodal_rates(self, rate):
        c = 1.0 / (1.0 - self.slow_prob + self.slow_prob * self.slow_factor)
        return rate / c, rate / (c * self.slow_factor)

    def cdf(self, x, rate) -> np.ndarray:
        """``P(X <= x)`` for tails of mean ``1 / rate`` (elementwise; 0 for ``x < 0``)."""
        x = np.maximum(np.asarray(x, dtype=float), 0.0)
        rate = np.asarray(rate, dtype=float)
        if self.law == "shiftexp":
            return -np.expm1(-rate * x)
        if self.law == "pareto":
            a = self.shape
            return 1.0 - (1.0 + rate * x / (a - 1.0)) ** (-a)
        if self.law == "weibull":
            g = math.gamma(1.0 + 1.0 / self.shape)
            return -np.expm1(-((rate * x * g) ** self.shape))
        if self.law == "bimodal":
            fast, slow = self._bimodal_rates(rate)
            return ((1.0 - self.slow_prob) * -np.expm1(-fast * x)
                    + self.slow_prob * -np.expm1(-slow * x))
        # trace: empirical CDF of the samples normalized to mean 1
        return np.searchsorted(self.samples, rate * x, side="right") / self.samples.size

    def sample(self, rng: np.random.Generator, rate, size) -> np.ndarray:
        """Draw tails of mean ``1 / rate`` (``rate`` broadcast to ``size``)."""
        rate = np.broadcast_to(np.asarray(rate, dtype=float), size)
        if self.law == "shiftexp":
            return rng.exponential(1.0, size=size) / rate
        if self.law == "pareto":
            a = self.shape
            return (a - 1.0) / rate * (rng.random(size) ** (-1.0 / a) - 1.0)
        if self.law == "weibull":
            g = math.gamma(1.0 + 1.0 / self.shape)
            return rng.weibull(self.shape, size) / (rate * g)
        if self.law == "bimodal":
            fast, slow = self._bimodal_rates(rate)
            slow_run = rng.random(size) < self.slow_prob
            return rng.exponential(1.0, size=size) / np.where(slow_run, slow, fast)
        return self.samples[rng.integers(0, self.samples.size, size)] / rate

    def to_dict(self) -> dict:
        """The instance-file fields of this law."""
        return {"law": self.law, "shape": self.shape, "slow_prob": self.slow_prob,
                "slow_factor": self.slow_factor, "trace": self.trace}


@dataclass(frozen=True)
class ResultLink:
    """Result return and decoding (see module docstring).

    Parameters
    ----------
    bits_row : float
        Result bits per row sent back by a worker (0: no return link).
    worker_power : float
        Worker transmit power ``P_w`` on the return link (W).
    decode_s : float
        Decoding time at the master after the ``K``-th result (s).
    """

    bits_row: float = 0.0
    worker_power: float = 0.1
    decode_s: float = 0.0

    def __post_init__(self):
        check_real("result.bits_row", self.bits_row, low=0.0)
        check_real("result.worker_power", self.worker_power, low=0.0, low_open=True)
        check_real("result.decode_s", self.decode_s, low=0.0)


@dataclass(frozen=True)
class LinkShare:
    """A total bandwidth and/or transmit-power budget shared equally by the ``n`` parallel
    uploads (see module docstring; 0 turns a budget off, the default for both).

    Parameters
    ----------
    bandwidth : float
        Total bandwidth ``B_tot`` of the master's uploads (Hz); each of ``n`` links gets
        ``min(B, B_tot / n)``.
    power : float
        Total transmit power ``P_tot`` of the master (W); each of ``n`` links gets
        ``min(P, P_tot / n)``.
    """

    bandwidth: float = 0.0
    power: float = 0.0

    def __post_init__(self):
        check_real("share.bandwidth", self.bandwidth, low=0.0)
        check_real("share.power", self.power, low=0.0)

    @property
    def active(self) -> bool:
        """Whether any budget is set."""
        return self.bandwidth > 0 or self.power > 0

    def link(self, n: int, bandwidth: float, power: float) -> tuple[float, float]:
        """``(b_n, P_n)``: one link's bandwidth and power when ``n`` uploads share the
        budget, for per-link values ``B = bandwidth`` and ``P = power``."""
        n = max(int(n), 1)
        b = min(bandwidth, self.bandwidth / n) if self.bandwidth > 0 else bandwidth
        p = min(power, self.power / n) if self.power > 0 else power
        return float(b), float(p)
