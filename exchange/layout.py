"""Tensor layout: a dict of named arrays <-> one flat vector.

Weights cross package boundaries as ``dict[str, np.ndarray]`` or as one flat array with a
layout (see ``STYLE.md``). The coded round works on flat vectors, so a worker flattens its
update with :func:`flatten`, every shard header records the :class:`TensorLayout`, and the
collector rebuilds the dict with :func:`unflatten`.

The flat vector is float32 when float32 holds every entry exactly (the sliced codes carry it as is,
half the bytes of float64) and float64 otherwise; the coded arithmetic (real MDS codes,
fixed point over GF(p)) widens to double precision itself, and :func:`unflatten` casts
each slice back to its tensor's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["TensorSpec", "TensorLayout", "flatten", "unflatten"]

_NUMERIC_KINDS = "biuf"
_MAX_NDIM = 32  # numpy's own limit
_MAX_ELEMENTS = 1 << 40  # far above any model, far below int64 overflow


@dataclass(frozen=True)
class TensorSpec:
    """One tensor's place in the flat vector.

    Parameters
    ----------
    name : str
        The tensor's key in the dict.
    dtype : str
        Its NumPy dtype string (``"float32"``, ``"int64"``, ...).
    shape : tuple of int
        Its shape.
    offset : int
        Index of its first element in the flat vector.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class TensorLayout:
    """An ordered list of :class:`TensorSpec` covering a flat vector without gaps.

    Parameters
    ----------
    tensors : tuple of TensorSpec
        The tensors in flat order; offsets must be contiguous from 0.
    """

    tensors: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        offset = 0
        names = set()
        for spec in self.tensors:
            if not isinstance(spec, TensorSpec):
                raise TypeError(f"Argument 'tensors' must hold TensorSpec items, not {type(spec).__name__}.")
            if spec.name in names:
                raise ValueError(f"Argument 'tensors' must have distinct names, not {spec.name!r} twice.")
            if spec.offset != offset:
                raise ValueError(
                    f"Argument 'tensors' must be contiguous: {spec.name!r} must start at {offset}, "
                    f"not {spec.offset}."
                )
            names.add(spec.name)
            offset += spec.size

    @property
    def size(self) -> int:
        """Total number of elements in the flat vector."""
        return sum(spec.size for spec in self.tensors)

    def to_json(self) -> list[dict[str, object]]:
        """Return a JSON-ready list (used in shard headers)."""
        return [
            {"name": s.name, "dtype": s.dtype, "shape": list(s.shape), "offset": s.offset}
            for s in self.tensors
        ]

    @classmethod
    def from_json(cls, data: object) -> TensorLayout:
        """Rebuild a layout from :meth:`to_json` output; raise ``ValueError`` if malformed."""
        if not isinstance(data, list):
            raise ValueError(f"Argument 'data' must be a list of tensor entries, not {type(data).__name__}.")
        specs = []
        for pos, item in enumerate(data):
            if not isinstance(item, dict) or set(item) != {"name", "dtype", "shape", "offset"}:
                raise ValueError(f"Argument 'data' has a malformed tensor entry at {pos}.")
            name, dtype, shape, offset = item["name"], item["dtype"], item["shape"], item["offset"]
            ok = (type(name) is str and type(dtype) is str and len(dtype) <= 16
                  and type(shape) is list and len(shape) <= _MAX_NDIM
                  and all(type(d) is int and 0 <= d <= _MAX_ELEMENTS for d in shape)
                  and type(offset) is int and 0 <= offset <= _MAX_ELEMENTS)
            try:
                ok = ok and np.dtype(dtype).kind in _NUMERIC_KINDS
            except TypeError:
                ok = False
            if not ok or int(np.prod(np.array(shape, dtype=object), dtype=object)) > _MAX_ELEMENTS:
                raise ValueError(f"Argument 'data' has an invalid tensor entry at {pos}.")
            specs.append(TensorSpec(name, dtype, tuple(shape), offset))
        return cls(tuple(specs))


def _fits_float32(part: np.ndarray) -> bool:
    """Whether float32 holds ``part`` exactly: float32 data, or integers below 2**24."""
    if part.dtype.kind == "f":
        return part.dtype == np.float32
    return part.size == 0 or float(np.abs(part.astype(np.float64)).max()) <= 2.0**24


def flatten(tensors: Mapping[str, np.ndarray]) -> tuple[np.ndarray, TensorLayout]:
    """Concatenate named arrays into one vector, in the mapping's order.

    Parameters
    ----------
    tensors : mapping of str to array_like
        Numeric (bool, int or float) arrays.

    Returns
    -------
    flat : numpy.ndarray
        1-D vector of all elements: float32 when that holds every entry exactly (every
        floating tensor is float32 and every integer one below ``2**24`` in magnitude, as
        a model's BatchNorm step counters are), else float64.
    layout : TensorLayout
        Where each tensor lives in ``flat``.
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"Argument 'tensors' must be a mapping of name to array, not {type(tensors).__name__}.")
    specs, parts, offset = [], [], 0
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"Argument 'tensors' must have str keys, not {type(name).__name__}.")
        arr = np.asarray(value)
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise TypeError(f"Argument 'tensors' entry {name!r} must be numeric, not dtype {arr.dtype}.")
        specs.append(TensorSpec(name, arr.dtype.name, tuple(arr.shape), offset))
        parts.append(arr.reshape(-1))
        offset += arr.size
    dtype = np.float32 if parts and all(_fits_float32(p) for p in parts) else np.float64
    flat = np.concatenate([p.astype(dtype, copy=False) for p in parts]) if parts else np.zeros(0)
    return flat, TensorLayout(tuple(specs))


def unflatten(flat: np.ndarray, layout: TensorLayout, *, cast: bool = True) -> dict[str, np.ndarray]:
    """Split a flat vector back into named arrays with the layout's dtypes and shapes.

    Parameters
    ----------
    flat : numpy.ndarray
        1-D vector of ``layout.size`` elements.
    layout : TensorLayout
        The layout :func:`flatten` returned.
    cast : bool, optional
        Cast each part to its tensor's dtype (default). Without it the parts keep
        ``flat``'s dtype, as reshaped views (an average of integer counters stays exact).

    Returns
    -------
    dict of str to numpy.ndarray
        New arrays (copies), cast to each tensor's dtype (integers are rounded), or views.
    """
    if not isinstance(layout, TensorLayout):
        raise TypeError(f"Argument 'layout' must be a TensorLayout, not {type(layout).__name__}.")
    flat = np.asarray(flat)
    if flat.ndim != 1 or flat.size != layout.size:
        raise ValueError(f"Argument 'flat' must be 1-D with {layout.size} elements, not shape {flat.shape}.")
    out = {}
    for spec in layout.tensors:
        part = flat[spec.offset : spec.offset + spec.size]
        if not cast:
            out[spec.name] = part.reshape(spec.shape)
            continue
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "biu":
            part = np.rint(part)
        out[spec.name] = part.astype(dtype).reshape(spec.shape)
    return out
