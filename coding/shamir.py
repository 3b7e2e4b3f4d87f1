"""Lagrange (packed Shamir) secret sharing over GF(p) for secure linear aggregation.

Shamir, "How to share a secret", CACM 1979, packed with ``k`` secrets per polynomial as in
Lagrange coded computing (Yu et al., AISTATS 2019) and secure aggregation over GF(p).
The message ``X`` of shape ``(k, ...)`` and ``t`` uniform masks ``Z`` define the unique
polynomial ``u`` of degree ``< k + t`` with

    u(beta_j) = X_j  (j < k),        u(beta_{k+j}) = Z_j  (j < t),

and worker ``i`` holds the share ``u(alpha_i)``. The points are fixed: ``alpha_i = i + 1``
(nonzero) for the ``n`` workers, and the ``k + t`` anchors are ``beta = (0, n + 1, n + 2,
...)``, so all are distinct, which needs ``n <= p - k - t``. With ``k = 1`` this is textbook
Shamir with the secret at ``u(0)``. The pieces ``X_j`` are never shares themselves.

* Any ``k + t`` shares determine ``u`` and so ``X`` (the threshold).
* Any ``t`` shares are uniform and independent of ``X``: for fixed ``X`` the map from ``Z``
  to those shares is ``diag(w(alpha_i)) Cauchy(alpha, beta_mask) diag(c_j)`` with
  ``w(a) = prod_m (a - beta_m)``, an invertible ``t x t`` matrix.
* Sharing is linear, so the sum of shares (mod p) is a share of the sum of messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .gfp import MAX_PRIME, as_gfp, galois_field, gfp_matmul, gfp_random, skinny_matmul
from .polynomial import _check_indices
from .validate import check_int, check_prime

__all__ = ["SecretShareCode", "lagrange_matrix"]


def lagrange_matrix(nodes: Sequence[int], targets: Sequence[int], p: int) -> np.ndarray:
    """Matrix ``L[i, j] = ell_j(targets[i])`` of the Lagrange basis on ``nodes`` mod p.

    ``L @ values`` evaluates at ``targets`` the polynomial of degree ``< len(nodes)`` that
    takes ``values`` on ``nodes``. Exact, with Python integers (for small matrices).

    Parameters
    ----------
    nodes : sequence of int
        Distinct points in ``[0, p)``.
    targets : sequence of int
        Points in ``[0, p)``.
    p : int
        The prime modulus.
    """
    p = check_prime("p", p, high=MAX_PRIME)
    nodes = [int(v) for v in as_gfp("nodes", list(nodes), p)]
    targets = [int(v) for v in as_gfp("targets", list(targets), p)]
    if len(set(nodes)) != len(nodes):
        raise ValueError("Argument 'nodes' must hold distinct points.")
    denom = []
    for j, bj in enumerate(nodes):
        d = 1
        for m, bm in enumerate(nodes):
            if m != j:
                d = d * (bj - bm) % p
        denom.append(pow(d, -1, p))
    L = np.zeros((len(targets), len(nodes)), dtype=np.int64)
    for i, a in enumerate(targets):
        for j in range(len(nodes)):
            num = denom[j]
            for m, bm in enumerate(nodes):
                if m != j:
                    num = num * (a - bm) % p
            L[i, j] = num
    return L


@lru_cache(maxsize=256)
def _cached_lagrange(nodes: tuple[int, ...], targets: tuple[int, ...], p: int) -> np.ndarray:
    return lagrange_matrix(nodes, targets, p)


class SecretShareCode:
    """Packed Shamir sharing: ``k`` message rows, ``t``-private, any ``k + t`` of ``n`` decode.

    Parameters
    ----------
    n : int
        Number of shares, ``k + t <= n <= p - k - t``.
    k : int
        Number of message pieces per polynomial, at least 1.
    t : int
        Number of shares that reveal nothing, at least 0 (``t = 0`` is a plain, non-private
        Reed-Solomon code in Lagrange form).
    p : int
        The prime modulus, at most ``2**31 - 1``.

    Examples
    --------
    >>> code = SecretShareCode(5, 2, 1, p=65521)
    >>> shares = code.encode([[1, 2], [3, 4]])
    >>> code.decode(shares[[0, 2, 4]], [0, 2, 4]).tolist()
    [[1, 2], [3, 4]]
    """

    def __init__(self, n: int, k: int, t: int, *, p: int):
        self._p = check_prime("p", p, high=MAX_PRIME)
        self._k = check_int("k", k, low=1)
        self._t = check_int("t", t, low=0)
        kt = self._k + self._t
        self._n = check_int("n", n, low=kt, low_name="k+t", high=self._p - kt,
                            high_name="p-k-t")
        self._alphas = tuple(range(1, self._n + 1))
        self._betas = (0,) + tuple(range(self._n + 1, self._n + kt))
        self._U = _cached_lagrange(self._betas, self._alphas, self._p)

    @property
    def n(self) -> int:
        """Number of shares."""
        return self._n

    @property
    def k(self) -> int:
        """Number of message pieces."""
        return self._k

    @property
    def t(self) -> int:
        """Privacy threshold: any ``t`` shares are independent of the message."""
        return self._t

    @property
    def p(self) -> int:
        """The prime modulus."""
        return self._p

    @property
    def threshold(self) -> int:
        """Shares needed to decode, ``k + t``."""
        return self._k + self._t

    @property
    def field(self) -> type:
        """The galois GF(p) class (built on first use, ~1 s)."""
        return galois_field(self._p)

    @property
    def alphas(self) -> tuple[int, ...]:
        """Share points ``alpha_i = i + 1``."""
        return self._alphas

    @property
    def betas(self) -> tuple[int, ...]:
        """Anchor points: the first ``k`` carry the message, the last ``t`` the masks."""
        return self._betas

    def __repr__(self) -> str:
        return f"SecretShareCode(n={self._n}, k={self._k}, t={self._t}, p={self._p})"

    def encode(self, message: object, *, rng: np.random.Generator | None = None) -> np.ndarray:
        """Split ``message`` (k, ...) into ``n`` shares (n, ...).

        Parameters
        ----------
        message : array_like of int, shape (k, ...)
            Entries in ``[0, p)``.
        rng : numpy.random.Generator, optional
            Only for reproducible tests; by default the masks come from ``os.urandom``.

        Returns
        -------
        numpy.ndarray of int64, shape (n, ...)
        """
        X = as_gfp("message", message, self._p)
        if X.ndim < 1 or X.shape[0] != self._k:
            raise ValueError(
                f"Argument 'message' must have k={self._k} rows (leading dimension), "
                f"not shape {X.shape}."
            )
        Z = gfp_random((self._t,) + X.shape[1:], self._p, rng)
        return self._encode_with_masks(X, Z)

    def _encode_with_masks(self, X: np.ndarray, Z: np.ndarray) -> np.ndarray:
        """Shares for message ``X`` and masks ``Z`` (known answers and privacy checks)."""
        XZ = np.concatenate([X, Z]).reshape(self._k + self._t, -1)
        return gfp_matmul(self._U, XZ, self._p).reshape((self._n,) + X.shape[1:])

    def decode(self, shares: object, indices: Sequence[int]) -> np.ndarray:
        """Recover the message (k, ...) from any ``k + t`` shares.

        Parameters
        ----------
        shares : array_like of int, shape (r, ...)
            Shares for the workers in ``indices``; extra shares beyond ``k + t`` are ignored.
        indices : sequence of int
            Distinct share indices in ``[0, n)``.

        Raises
        ------
        NotEnoughShardsError
            Fewer than ``k + t`` shares.
        DuplicateIndexError
            An index appears twice.
        """
        Y = as_gfp("shares", shares, self._p)
        if Y.ndim < 1:
            raise ValueError(f"Argument 'shares' must have at least 1 dimension, not {Y.shape}.")
        kt = self.threshold
        idx = _check_indices(indices, self._n, Y.shape[0], kt, "shares")[:kt]
        out = gfp_matmul(self._decoder(idx), Y[:kt].reshape(kt, -1), self._p)
        return out.reshape((self._k,) + Y.shape[1:])

    def _decoder(self, idx: Sequence[int]) -> np.ndarray:
        """The (k, k + t) matrix mapping the shares ``idx`` (checked) to the message."""
        nodes = tuple(self._alphas[i] for i in idx)
        return _cached_lagrange(nodes, self._betas[: self._k], self._p)

    # -- the streaming fast path of exchange.reduce (trusted inputs, preallocated output) --
    def _share_into(self, XZ: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out[...] = `` the shares of the stacked rows ``[X; Z]``, shape (k + t, m).

        ``XZ`` may be float64 holding integers in ``[0, p)`` (no conversion then) and
        ``out`` (n, m) any dtype holding ``[0, p)``; nothing is validated. Same values as
        :meth:`_encode_with_masks`.
        """
        return skinny_matmul(self._U, XZ, self._p, out)

    def _decode_into(self, Y: np.ndarray, indices: Sequence[int], out: np.ndarray) -> np.ndarray:
        """``out[...] = `` the message rows (k, m) from the first ``k + t`` rows of ``Y``.

        ``Y`` (r, m) holds shares in ``[0, p)`` (not validated, any integer dtype); the
        indices are checked as in :meth:`decode`, whose values this returns.
        """
        kt = self.threshold
        idx = _check_indices(indices, self._n, Y.shape[0], kt, "shares")[:kt]
        return skinny_matmul(self._decoder(idx), Y[:kt], self._p, out)
