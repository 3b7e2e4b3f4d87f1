"""The torch/numpy bridge: model weights and updates cross package boundaries as numpy.

Only :mod:`worker` imports torch; :mod:`exchange` and :mod:`coding` see ``dict[str,
numpy.ndarray]``. These helpers convert either way without the caller writing
``detach().cpu().numpy()`` by hand (re-exported as :func:`kofn.to_numpy` and
:func:`kofn.from_numpy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["add_", "from_numpy", "to_numpy"]


def to_numpy(tensors: Any) -> dict[str, np.ndarray]:
    """Named arrays from a ``torch.nn.Module`` (its state dict), a dict of torch tensors, or
    a dict of arrays (copied, on the CPU, in their own dtypes)."""
    if hasattr(tensors, "state_dict") and callable(tensors.state_dict):
        tensors = tensors.state_dict()
    if not isinstance(tensors, Mapping):
        raise TypeError(f"Argument 'tensors' must be a module or a mapping of name to tensor, "
                        f"not {type(tensors).__name__}.")
    out = {}
    for name, value in tensors.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[str(name)] = np.array(value, copy=True)
    return out


def from_numpy(arrays: Mapping[str, np.ndarray], *, like: Any = None) -> dict[str, Any]:
    """Torch tensors from named arrays, with the dtype and device of ``like``'s entries
    (a module or a dict of tensors) when given."""
    import torch

    ref = like.state_dict() if hasattr(like, "state_dict") else (like or {})
    out = {}
    for name, value in arrays.items():
        t = torch.from_numpy(np.array(value, copy=True))
        if name in ref:
            t = t.to(dtype=ref[name].dtype, device=ref[name].device)
        out[name] = t
    return out


def add_(module: Any, delta: Mapping[str, np.ndarray]) -> None:
    """Add named numpy arrays to a module's parameters and buffers in place (a decoded
    mean update), each cast to its tensor's dtype and device."""
    import torch

    state = module.state_dict()
    unknown = sorted(set(delta) - set(state))
    if unknown:
        raise KeyError(f"Argument 'delta' has tensors the module lacks: {unknown[:3]}.")
    with torch.no_grad():
        for name, value in delta.items():
            t = state[name]
            t.copy_((t.double() + torch.from_numpy(np.array(value, dtype=np.float64)).to(t.device)
                     .reshape(t.shape)).to(t.dtype))
