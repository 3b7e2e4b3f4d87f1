"""Gradient coding: the exact sum of n partial gradients from any n - s workers.

Tandon, Lei, Dimakis and Karampatziakis, "Gradient Coding: Avoiding Stragglers in
Distributed Learning", ICML 2017. The data is cut into ``n`` partitions with partial
gradients ``g_0 .. g_{n-1}``. Worker ``i`` holds ``s + 1`` partitions and sends
``f_i = sum_j B[i, j] g_j`` (``B[i, j]`` is zero off its partitions). For any set ``F`` of
``n - s`` finished workers there are weights ``a`` with ``a @ B[F] = 1``, so
``sum_{i in F} a_i f_i = sum_j g_j``.

Two assignments:

* ``"cyclic"``: worker ``i`` holds partitions ``i, i+1, ..., i+s (mod n)``. ``B`` comes
  from the paper's Algorithm 2: draw a random ``s x n`` matrix ``H`` whose rows sum to zero
  (so ``H @ 1 = 0``), and give each row of ``B`` a 1 on its own partition and the
  remaining ``s`` entries that put it in the null space of ``H``. The ``n`` rows then lie in
  that ``(n - s)``-dimensional space, which holds the all-ones vector, and any ``n - s`` of
  them span it (with probability one; checked at construction for small n).
* ``"fractional"``: ``(s + 1) | n``; the workers form ``n / (s + 1)`` groups of ``s + 1``,
  and every worker of group ``g`` holds partitions ``g(s+1) .. g(s+1)+s`` with weight 1.
  The decoder takes one finished worker from every group.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ._validate import check_int
from .errors import DuplicateIndexError, NotEnoughShardsError

__all__ = ["GradientCode"]

_SCHEMES = ("cyclic", "fractional")
_CACHE_SIZE = 1024
#: Seeds tried for the cyclic construction before giving up (each try is checked).
_TRIES = 8


class GradientCode:
    """Gradient code tolerating ``s`` stragglers among ``n`` workers.

    Parameters
    ----------
    n : int
        Number of workers and of data partitions, ``n >= 1``.
    s : int
        Number of stragglers tolerated, ``0 <= s < n``.
    scheme : {"cyclic", "fractional"}
        Partition assignment; ``"fractional"`` needs ``(s + 1)`` to divide ``n``.
    seed : int
        Seed of the random matrix of the cyclic construction.

    Examples
    --------
    >>> gc = GradientCode(5, 2)
    >>> g = np.arange(5.0)[:, None]                      # partial gradients, one per row
    >>> f = gc.B @ g                                     # what the workers send
    >>> done = [0, 2, 4]
    >>> float((gc.decoder(done) @ f[done])[0])           # == g.sum()
    10.0
    """

    def __init__(self, n: int, s: int, *, scheme: str = "cyclic", seed: int = 0):
        n = check_int("n", n, low=1)
        s = check_int("s", s, low=0, high=n - 1, high_name="n-1")
        seed = check_int("seed", seed)
        if scheme not in _SCHEMES:
            raise ValueError(f"Argument 'scheme' must be one of {_SCHEMES}, not {scheme!r}.")
        if scheme == "fractional" and n % (s + 1):
            raise ValueError(
                f"Argument 's' must satisfy (s+1) | n for scheme='fractional', "
                f"but s+1={s + 1} does not divide n={n}."
            )
        self._n, self._s, self._scheme = n, s, scheme
        support = np.zeros((n, n), dtype=np.int8)
        rows = np.arange(n)[:, None]
        if scheme == "cyclic":
            support[rows, (rows + np.arange(s + 1)) % n] = 1
            self._B = _cyclic_B(n, s, seed, support)
        else:
            group = rows // (s + 1)
            support[rows, group * (s + 1) + np.arange(s + 1)] = 1
            self._B = support.astype(np.float64)
        self._support = support
        self._support.flags.writeable = False
        self._B.flags.writeable = False
        self._cache: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    @property
    def n(self) -> int:
        """Number of workers (and data partitions)."""
        return self._n

    @property
    def s(self) -> int:
        """Number of stragglers tolerated."""
        return self._s

    @property
    def scheme(self) -> str:
        """``"cyclic"`` or ``"fractional"``."""
        return self._scheme

    @property
    def assignment(self) -> np.ndarray:
        """``(n, n)`` 0/1 int8 matrix: ``assignment[i, j] == 1`` iff worker i holds partition j."""
        return self._support

    @property
    def B(self) -> np.ndarray:
        """``(n, n)`` encoding matrix: worker i sends ``B[i] @ g`` (read-only)."""
        return self._B

    def __repr__(self) -> str:
        return f"GradientCode(n={self._n}, s={self._s}, scheme={self._scheme!r})"

    def partitions(self, worker: int) -> list[int]:
        """Sorted partitions that ``worker`` (``0 <= worker < n``) holds (``s + 1`` of them)."""
        w = check_int("worker", worker, low=0, high=self._n - 1)
        return np.flatnonzero(self._support[w]).tolist()

    def coefficients(self, worker: int) -> np.ndarray:
        """Weights of ``worker``'s partial gradients, in the order of :meth:`partitions`.

        Worker ``i`` sends ``f_i = sum_j coefficients(i)[j] * g[partitions(i)[j]]``.
        """
        w = check_int("worker", worker, low=0, high=self._n - 1)
        return self._B[w, np.flatnonzero(self._support[w])].copy()

    def decoder(self, done) -> np.ndarray:
        """Weights that turn the finished workers' messages into the full gradient sum.

        Parameters
        ----------
        done : sequence of int
            Distinct finished workers, at least ``n - s`` of them, in any order.

        Returns
        -------
        numpy.ndarray
            Float64 vector ``a`` of length ``len(done)``, aligned with ``done``:
            ``sum_t a[t] * f[done[t]] == sum_j g_j``. Workers beyond the first ``n - s``
            needed get weight 0 (cyclic uses the first ``n - s`` of ``done``).

        Raises
        ------
        DuplicateIndexError
            A worker appears twice.
        NotEnoughShardsError
            Fewer than ``n - s`` workers finished.
        ValueError
            A worker index is outside ``[0, n)``.
        """
        idx = [check_int("worker", w, low=0, high=self._n - 1)
               for w in np.asarray(done).reshape(-1).tolist()]
        seen: set[int] = set()
        for w in idx:
            if w in seen:
                raise DuplicateIndexError(w, what="worker")
            seen.add(w)
        need = self._n - self._s
        if len(idx) < need:
            raise NotEnoughShardsError(needed=need, got=len(idx), what="workers")
        key = tuple(idx)
        a = self._cache.get(key)
        if a is None:
            a = self._solve(idx)
            a.flags.writeable = False
            self._cache[key] = a
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return a

    def _solve(self, idx: list[int]) -> np.ndarray:
        a = np.zeros(len(idx))
        if self._scheme == "fractional":
            g = self._s + 1
            taken: set[int] = set()
            for t, w in enumerate(idx):
                if w // g not in taken:
                    taken.add(w // g)
                    a[t] = 1.0
            return a
        use = self._n - self._s
        a[:use] = _sum_weights(self._B[idx[:use]])
        return a


def _sum_weights(Bf: np.ndarray) -> np.ndarray:
    """Least-squares ``a`` with ``a @ Bf = 1``, plus one step of iterative refinement."""
    ones = np.ones(Bf.shape[1])
    a = np.linalg.lstsq(Bf.T, ones, rcond=None)[0]
    a += np.linalg.lstsq(Bf.T, ones - a @ Bf, rcond=None)[0]
    return a


def _cyclic_B(n: int, s: int, seed: int, support: np.ndarray) -> np.ndarray:
    """Tandon et al. Algorithm 2, best of a few seeded draws.

    Each draw is checked on every contiguous run of ``n - s`` finished workers (the worst
    case of the cyclic assignment); the draw whose decoders have the smallest largest
    weight wins, since the weights multiply the workers' rounding errors.
    """
    rng = np.random.default_rng(seed)
    best, best_score = None, np.inf
    for _ in range(_TRIES):
        B = _cyclic_try(n, s, rng)
        score = np.inf if B is None else _window_score(B, n, s)
        if score < best_score:
            best, best_score = B, score
    if best is None:  # pragma: no cover - probability zero
        raise RuntimeError(f"could not build a cyclic gradient code for n={n}, s={s}")
    return best


def _cyclic_try(n: int, s: int, rng: np.random.Generator) -> np.ndarray | None:
    if s == 0:
        return np.eye(n)
    B = np.zeros((n, n))
    H = rng.standard_normal((s, n))
    H[:, -1] = -H[:, :-1].sum(axis=1)  # H @ 1 = 0, so 1 is in null(H)
    for i in range(n):
        others = (i + np.arange(1, s + 1)) % n
        M = H[:, others]
        if np.linalg.cond(M) > 1e8:
            return None
        B[i, i] = 1.0
        B[i, others] = np.linalg.solve(M, -H[:, i])
    return B


def _window_score(B: np.ndarray, n: int, s: int) -> float:
    """Largest ``|a_i| * |B|`` over decoders of contiguous runs; inf if one fails."""
    worst = 0.0
    scale = np.abs(B).max()
    for start in range(n):
        Bf = B[(start + np.arange(n - s)) % n]
        a = _sum_weights(Bf)
        if np.abs(a @ Bf - 1).max() > 1e-11 * max(1.0, np.abs(a).max() * scale):
            return np.inf
        worst = max(worst, np.abs(a).max() * scale)
    return worst
