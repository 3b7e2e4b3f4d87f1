"""Coded multicast for data shuffling: send XORs that several workers decode at once.

In a shuffle round the master must deliver to each worker the blocks it wants and does not
yet cache. Unicast sends every (worker, block) request separately. When worker 1 caches
``B`` and wants ``A`` while worker 2 caches ``A`` and wants ``B``, one broadcast of
``A xor B`` serves both: each XORs out the block it holds (Maddah-Ali and Niesen,
"Fundamental limits of caching", 2014; the shuffling example of the edge coded-computing
study, where the coded load is half the uncoded one).

In general this is index coding: a transmission ``xor(S)`` of a block set ``S`` serves
every request ``(w, b)`` with ``b in S`` whose worker caches all of ``S - {b}``. Choosing
the fewest transmissions is a minimum clique cover of the side-information graph, which is
NP-hard, and non-XOR linear codes can do better still. :func:`coded_multicast` is
**greedy**: it takes the outstanding requests in a fixed order and grows each XOR with
every request compatible with all those already in it. It is optimal for pairwise
exchanges like the example above (and whenever the compatible groups are disjoint), and
never worse than unicast.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["MulticastPlan", "Transmission", "coded_multicast"]


@dataclass(frozen=True)
class Transmission:
    """One broadcast: the XOR of ``blocks``; ``serves`` maps each recipient to its block."""

    blocks: tuple[Hashable, ...]
    serves: tuple[tuple[Hashable, Hashable], ...]


@dataclass(frozen=True)
class MulticastPlan:
    """What the master broadcasts in one shuffle round.

    Attributes
    ----------
    transmissions : tuple of Transmission
        In broadcast order.
    uncoded_load : int
        Blocks unicast would send: one per (worker, wanted block not in its cache).
    """

    transmissions: tuple[Transmission, ...]
    uncoded_load: int

    @property
    def load(self) -> int:
        """Blocks broadcast (one per transmission; blocks are the same size)."""
        return len(self.transmissions)

    def encode(self, blocks: Mapping[Hashable, np.ndarray]) -> list[np.ndarray]:
        """Payloads to broadcast: the bytewise XOR of each transmission's blocks.

        Parameters
        ----------
        blocks : mapping of block id to numpy.ndarray
            Every block named in the plan; blocks XORed together must share shape and dtype.

        Returns
        -------
        list of numpy.ndarray
            One per transmission, with the shape and dtype of its blocks; the bytes are the
            XOR of the blocks' bytes (for float blocks the values are meaningless bit
            patterns, only for decoding).
        """
        out = []
        for tx in self.transmissions:
            payload = None
            for b in tx.blocks:
                if b not in blocks:
                    raise KeyError(f"Block {b!r} is named in the plan but missing from 'blocks'.")
                raw = _as_bytes(blocks[b], blocks[tx.blocks[0]], b)
                payload = raw.copy() if payload is None else np.bitwise_xor(payload, raw)
            first = np.asarray(blocks[tx.blocks[0]])
            out.append(payload.view(first.dtype).reshape(first.shape))
        return out

    def decode(
        self,
        worker: Hashable,
        payloads: list[np.ndarray],
        cache: Mapping[Hashable, np.ndarray],
    ) -> dict[Hashable, np.ndarray]:
        """Recover the blocks meant for ``worker`` from the broadcast and its cache.

        Parameters
        ----------
        worker : hashable
            The worker decoding.
        payloads : list of numpy.ndarray
            The output of :meth:`encode`, one per transmission.
        cache : mapping of block id to numpy.ndarray
            The worker's cached blocks; gives the shape and dtype of the blocks it decodes.

        Returns
        -------
        dict
            Block id to array, for every block this plan delivers to ``worker``.
        """
        if len(payloads) != len(self.transmissions):
            raise ValueError(
                f"Argument 'payloads' must have one entry per transmission "
                f"({len(self.transmissions)}), not {len(payloads)}."
            )
        got: dict[Hashable, np.ndarray] = {}
        for tx, payload in zip(self.transmissions, payloads, strict=True):
            for w, b in tx.serves:
                if w != worker:
                    continue
                others = [o for o in tx.blocks if o != b]
                missing = [o for o in others if o not in cache]
                if missing:
                    raise KeyError(f"Worker {worker!r} needs cached block {missing[0]!r}.")
                payload = np.asarray(payload)
                raw = np.ascontiguousarray(payload).reshape(-1).view(np.uint8).copy()
                for o in others:
                    raw ^= _as_bytes(cache[o], payload, o)
                got[b] = raw.view(payload.dtype).reshape(payload.shape)
        return got


def _as_bytes(block: np.ndarray, like: np.ndarray, name: Hashable) -> np.ndarray:
    arr = np.ascontiguousarray(block)
    if arr.shape != np.shape(like) or arr.dtype != np.asarray(like).dtype:
        raise ValueError(
            f"Block {name!r} has shape {arr.shape} and dtype {arr.dtype}, but blocks XORed "
            f"together must match {np.shape(like)} {np.asarray(like).dtype}."
        )
    return arr.reshape(-1).view(np.uint8)


def _check_map(name: str, value: object) -> dict[Hashable, frozenset]:
    if not isinstance(value, Mapping):
        raise TypeError(f"Argument {name!r} must be a mapping of worker to a set of block ids.")
    return {w: frozenset(v) for w, v in value.items()}


def coded_multicast(
    demands: Mapping[Hashable, set], side_info: Mapping[Hashable, set]
) -> MulticastPlan:
    """Plan XOR broadcasts that deliver every demanded block (greedy clique cover).

    Parameters
    ----------
    demands : mapping of worker to set of block ids
        The blocks each worker must hold after the round.
    side_info : mapping of worker to set of block ids
        The blocks each worker already caches (workers missing here cache nothing).

    Returns
    -------
    MulticastPlan
        ``load <= uncoded_load``; see the module docstring for what is optimal.

    Examples
    --------
    >>> plan = coded_multicast({1: {"A"}, 2: {"B"}}, {1: {"B"}, 2: {"A"}})
    >>> plan.load, plan.uncoded_load
    (1, 2)
    """
    demands = _check_map("demands", demands)
    side = _check_map("side_info", side_info)
    requests = sorted(
        ((w, b) for w, want in demands.items() for b in want - side.get(w, frozenset())),
        key=repr,
    )
    pending = list(requests)
    transmissions = []
    while pending:
        group = [pending.pop(0)]
        blocks = {group[0][1]}
        rest = []
        for w, b in pending:
            cache = side.get(w, frozenset())
            # Same block: w just needs the other blocks. New block: every member must cache it.
            joined = blocks | {b}
            fits = (joined - {b}) <= cache and all(
                (joined - {gb}) <= side.get(gw, frozenset()) for gw, gb in group
            )
            if fits:
                group.append((w, b))
                blocks = joined
            else:
                rest.append((w, b))
        pending = rest
        transmissions.append(Transmission(tuple(sorted(blocks, key=repr)), tuple(group)))
    return MulticastPlan(tuple(transmissions), len(requests))
