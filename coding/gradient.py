"""Gradient coding: the exact sum of n partial gradients from any n - s workers.

Tandon, Lei, Dimakis and Karampatziakis, "Gradient Coding: Avoiding Stragglers in
Distributed Learning", ICML 2017. The data is cut into ``n`` partitions with partial
gradients ``g_0 .. g_{n-1}``. Worker ``i`` holds ``s + 1`` partitions and sends
``f_i = sum_j B[i, j] g_j`` (``B[i, j]`` is zero off its partitions). For any set ``F`` of
``n - s`` finished workers there are weights ``a`` with ``a @ B[F] = 1``, so
``sum_{i in F} a_i f_i = sum_j g_j``.

Two assignments:

* ``"cyclic"``: worker ``i`` holds partitions ``i, i+1, ..., i+s (mod n)``. ``B`` comes
  from the paper's Algorithm 2: take an ``s x n`` matrix ``H`` with ``H @ 1 = 0``, and give
  each row of ``B`` a 1 on its own partition and the remaining ``s`` entries that put it in
  the null space of ``H``. The ``n`` rows then lie in that ``(n - s)``-dimensional space,
  which holds the all-ones vector, and any ``n - s`` of them span it. Candidates for
  ``H``: seeded random matrices whose rows sum to zero (the paper's), and, when ``n - s``
  is odd, the real parity checks of the cyclic MDS (BCH) code whose ``s`` consecutive
  frequencies sit symmetrically around ``n/2`` (Raviv, Tamo, Tandon and Dimakis, "Gradient
  coding from cyclic MDS codes and expander graphs", IEEE T-IT 2020); that ``B`` is real
  and its decoders are far smaller for small ``s``. Each candidate is scored on every
  contiguous run of finished workers *and* on random straggler sets, and the one whose
  decoders amplify rounding least wins (certified worst cases in ``docs/coding.md``).
* ``"fractional"``: ``(s + 1) | n``; the workers form ``n / (s + 1)`` groups of ``s + 1``,
  and every worker of group ``g`` holds partitions ``g(s+1) .. g(s+1)+s`` with weight 1.
  The decoder takes one finished worker from every group.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .errors import DuplicateIndexError, NotEnoughShardsError
from .validate import check_int

__all__ = ["GradientCode"]

_SCHEMES = ("cyclic", "fractional")
_CACHE_SIZE = 1024
#: Seeded random draws tried for the cyclic construction (each try is checked).
_TRIES = 8
#: Random straggler sets each candidate is scored on, besides every contiguous window.
_SCORE_SETS = 256


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
    """Tandon et al. Algorithm 2 on the best of a few candidate parity-check matrices.

    Each candidate is scored on every contiguous run of ``n - s`` finished workers plus
    :data:`_SCORE_SETS` seeded random sets; the smallest worst ``max|a| * max|B|`` wins,
    since the decoder weights multiply the workers' rounding errors.
    """
    if s == 0:
        return np.eye(n)
    rng = np.random.default_rng(seed)
    sets = _score_sets(n, s, np.random.default_rng([seed, n, s]))
    cands = [_from_H(_bch_H(n, s), n, s)] if (n - s) % 2 else []
    cands += [_cyclic_try(n, s, rng) for _ in range(_TRIES)]
    best, best_score = None, np.inf
    for B in cands:
        score = np.inf if B is None else _score(B, sets)
        if score < best_score:
            best, best_score = B, score
    if best is None:  # pragma: no cover - probability zero
        raise RuntimeError(f"could not build a cyclic gradient code for n={n}, s={s}")
    return best


def _bch_H(n: int, s: int) -> np.ndarray:
    """Real parity checks of the cyclic code with frequencies ``lo .. lo+s-1`` around n/2.

    The set is consecutive (so the complex code is MDS by the BCH bound), closed under
    ``f -> n - f`` (so the code is real; needs ``n - s`` odd) and excludes 0 (so the code
    holds the all-ones vector). Each pair ``f, n - f`` gives a cosine and a sine row.
    """
    j = np.arange(n)
    lo = (n - s + 1) // 2
    rows = []
    for f in range(lo, lo + s):
        if 2 * f < n:
            rows += [np.cos(2 * np.pi * f * j / n), np.sin(2 * np.pi * f * j / n)]
        elif 2 * f == n:
            rows.append(np.cos(np.pi * j))
    return np.array(rows)


def _from_H(H: np.ndarray, n: int, s: int) -> np.ndarray | None:
    """Rows with a 1 on their own partition, ``s`` more on the next ones, in ``null(H)``."""
    B = np.zeros((n, n))
    for i in range(n):
        others = (i + np.arange(1, s + 1)) % n
        M = H[:, others]
        if np.linalg.cond(M) > 1e8:
            return None
        B[i, i] = 1.0
        B[i, others] = np.linalg.solve(M, -H[:, i])
    return B


def _cyclic_try(n: int, s: int, rng: np.random.Generator) -> np.ndarray | None:
    H = rng.standard_normal((s, n))
    H[:, -1] = -H[:, :-1].sum(axis=1)  # H @ 1 = 0, so 1 is in null(H)
    return _from_H(H, n, s)


def _score_sets(n: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """Every contiguous run of ``n - s`` workers plus seeded random ``(n - s)``-subsets."""
    r = n - s
    windows = np.sort((np.arange(n)[:, None] + np.arange(r)[None, :]) % n, axis=1)
    rand = np.sort(np.argsort(rng.random((_SCORE_SETS, n)), axis=1)[:, :r], axis=1)
    return np.unique(np.vstack([windows, rand]), axis=0)


def batched_sum_weights(B: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """Least-squares ``a`` with ``a @ B[set] = 1`` for every row of ``sets`` (QR, batched)."""
    Q, R = np.linalg.qr(np.swapaxes(B[sets], 1, 2))
    rhs = Q.sum(axis=1)  # Q^T 1
    with np.errstate(all="ignore"):
        return np.linalg.solve(R, rhs[..., None])[..., 0]


def _score(B: np.ndarray, sets: np.ndarray) -> float:
    """Largest ``max|a| * max|B|`` over the sets' decoders; inf if one fails to decode."""
    a = batched_sum_weights(B, sets)
    scale = np.abs(B).max()
    resid = np.abs(np.einsum("br,brn->bn", a, B[sets]) - 1).max(axis=1)
    amax = np.abs(a).max(axis=1)
    if not np.all(np.isfinite(amax)) or np.any(resid > 1e-9 * np.maximum(1.0, amax * scale)):
        return np.inf
    return float(amax.max() * scale)
