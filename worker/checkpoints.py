"""Model checkpoints in the store: self-verifying, and rebuilt when one is damaged.

Every round's model is written once, as safetensors, under
:func:`worker.trigger.checkpoint_key`. Its metadata carries the SHA-256 of its tensors
(names, dtypes, shapes and bytes, :func:`state_digest`), so a flipped byte anywhere in a
plain checkpoint is caught on read; an encrypted one fails AES-GCM first. Either way the
checkpoint is an erasure, not a wrong model: round ``r``'s model is the model of round
``r - 1`` plus round ``r``'s decoded update, and the exchange keeps the last
``keep_rounds`` rounds' merged shards, so :func:`load_checkpoint` rebuilds it from
there and writes it back. A checkpoint whose round is no longer kept cannot be rebuilt,
and the error says so in one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from coding.errors import KofnError
from exchange.stores.base import Store

__all__ = ["CheckpointError", "apply_update", "decode_state", "encode_state", "load_checkpoint",
           "state_digest"]

log = logging.getLogger("kofn.worker")

DIGEST_KEY = "kofn-sha256"
_MAX_HEADER = 64 << 20


class CheckpointError(KofnError):
    """A stored checkpoint is damaged (and, from :func:`load_checkpoint`, cannot be rebuilt)."""


def state_digest(state: dict[str, np.ndarray]) -> str:
    """SHA-256 (hex) of a model state: every tensor's name, dtype, shape and bytes, by name."""
    h = hashlib.sha256()
    for name in sorted(state):
        arr = np.ascontiguousarray(state[name])
        h.update(json.dumps([name, arr.dtype.str, list(arr.shape)]).encode("utf-8"))
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def encode_state(state: dict[str, np.ndarray], meta: dict[str, str] | None = None) -> bytes:
    """A model state (name -> array) as safetensors bytes, with its digest in the metadata."""
    from safetensors.numpy import save

    arrays = {k: np.ascontiguousarray(v) for k, v in state.items()}
    return save(arrays, metadata={**(meta or {}), DIGEST_KEY: state_digest(arrays)})


def decode_state(data: bytes, *, key: str = "checkpoint") -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_state` (safetensors: no code runs while loading).

    Raises
    ------
    CheckpointError
        The bytes do not parse, carry no digest, or differ from their digest.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    data = bytes(data)
    try:
        (n,) = struct.unpack_from("<Q", data, 0)
        if n > min(_MAX_HEADER, len(data) - 8):
            raise ValueError(f"header length {n} exceeds the object")
        meta = json.loads(data[8:8 + n].decode("utf-8")).get("__metadata__") or {}
        state = dict(load(data))
    except (SafetensorError, ValueError, struct.error, UnicodeDecodeError, AttributeError) as err:
        raise CheckpointError(f"Checkpoint {key!r} is damaged: it does not parse ({_short(err)})") from None
    want = meta.get(DIGEST_KEY) if isinstance(meta, dict) else None
    if want is None:
        raise CheckpointError(f"Checkpoint {key!r} is damaged: it carries no digest")
    if state_digest(state) != want:
        raise CheckpointError(f"Checkpoint {key!r} is damaged: its tensors differ from their SHA-256")
    return state


def apply_update(state: dict[str, np.ndarray], delta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``state + delta`` in float64, cast back to each tensor's dtype (every party's step)."""
    return {k: (state[k].astype(np.float64) + delta[k]).astype(state[k].dtype) for k in state}


def load_checkpoint(store: Store, job: str, r: int, *, exchange: Any = None,
                    initial: Callable[[], dict[str, np.ndarray]] | None = None,
                    depth: int = 8) -> dict[str, np.ndarray]:
    """The model after round ``r``, rebuilt and written back if its checkpoint is damaged.

    Parameters
    ----------
    store : Store
        The job's (decrypting) store.
    job : str
        The job name.
    r : int
        The round (0: the initial model).
    exchange : exchange.round.Exchange, optional
        The job's exchange: round ``r``'s merged shards rebuild a damaged checkpoint
        from round ``r - 1``'s (while the exchange keeps round ``r``).
    initial : callable, optional
        Builds the initial model again (the trigger's seeded build) for a damaged round 0.
    depth : int, optional
        How many damaged checkpoints in a row may be rebuilt.

    Raises
    ------
    FileNotFoundError
        No checkpoint for round ``r``.
    CheckpointError
        Damaged, and it cannot be rebuilt (its round's shards are gone); one line.
    """
    from exchange.crypto import DecryptionError
    from worker.trigger import checkpoint_key

    key = checkpoint_key(job, r)
    try:
        return decode_state(store.get(key), key=key)
    except (CheckpointError, DecryptionError) as err:
        damage = err
    state = _rebuild(store, job, r, damage, exchange=exchange, initial=initial, depth=depth)
    log.warning("%s; rebuilt it from %s and wrote it back", " ".join(str(damage).split()).rstrip("."),
                "the seeded initial model" if r == 0 else f"round {r}'s merged shards")
    store.delete([key])
    try:
        store.put(key, encode_state(state), if_absent=True)
    except FileExistsError:  # another party rebuilt it first: either copy is the same model
        pass
    return state


def _rebuild(store: Store, job: str, r: int, damage: Exception, *, exchange: Any,
             initial: Callable[[], dict[str, np.ndarray]] | None, depth: int) -> dict[str, np.ndarray]:
    why = " ".join(str(damage).split()).rstrip(".")
    if r == 0:
        if initial is None:
            raise CheckpointError(f"{why}; the initial model cannot be rebuilt here") from None
        try:
            return initial()
        except Exception as err:  # e.g. the weights file lives only on the trigger's machine
            raise CheckpointError(f"{why}; rebuilding the initial model failed: {_short(err)}") from None
    if exchange is None or depth <= 0:
        raise CheckpointError(f"{why}; it cannot be rebuilt here") from None
    if not exchange.is_complete(r):  # rounds older than keep_rounds are deleted
        raise CheckpointError(f"{why}; round {r}'s shards are no longer kept, so it cannot be "
                              f"rebuilt") from None
    from exchange.layout import unflatten

    before = load_checkpoint(store, job, r - 1, exchange=exchange, initial=initial, depth=depth - 1)
    result = exchange.collect(r)
    return apply_update(before, unflatten(result.mean, result.layout, cast=False))


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 160 else text[:157] + "..."
