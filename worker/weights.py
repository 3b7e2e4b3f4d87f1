"""Starting weights from local files: kofn safetensors or torchvision ``.pth`` state dicts.

Nothing here downloads. A weights file is either

* a **full model**: the keys of the registry model's state dict (a kofn
  ``model.safetensors``, or torchvision's own detection ``.pth``). Class-count heads whose
  shapes differ (a COCO detector's 91-class predictor against PennFudan's 2) are left at
  their initialisation and named in the :class:`WeightsReport`;
* a **backbone only**: the keys of the model's backbone as saved on its own (``backbone.*``
  from a kofn file), or an ImageNet classifier's state dict such as torchvision's
  ``mobilenet_v2-b0353104.pth``, whose names are mapped onto the detector's backbone with
  the model's :class:`BackboneMap` (``features.3.conv.0.0.weight`` becomes
  ``backbone.3.conv.0.0.weight``); the classifier head is dropped.

``.pth`` files are read with ``torch.load(weights_only=True)``, which refuses anything but
tensors and plain containers, so loading never runs code from the file. A bare file name
that is not a path is looked up in torch's hub cache, ``$TORCH_HOME/hub/checkpoints/``
(``~/.cache/torch`` without ``$TORCH_HOME``), where torchvision keeps what it downloads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worker.models import StateMismatchError

__all__ = ["BackboneMap", "WeightsError", "WeightsReport", "apply_weights", "hub_checkpoints", "read_weights",
           "resolve_weights"]

#: Heads whose size depends on the number of classes; a full file may differ there.
CLASS_HEADS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")


class WeightsError(StateMismatchError):
    """A weights file cannot be read or does not fit the model."""


@dataclass(frozen=True)
class BackboneMap:
    """How an ImageNet classifier's state dict names map onto a detector's backbone.

    Parameters
    ----------
    source : str
        Prefix of the classifier's feature extractor (``"features."`` for MobileNets,
        ``""`` for ResNets).
    target : str
        Where it lives in the detector (``"backbone."`` or ``"backbone.body."``).
    drop : tuple of str
        Classifier prefixes with no place in the detector (``classifier.``, ``fc.``).
    """

    source: str
    target: str
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class WeightsReport:
    """What :func:`apply_weights` did.

    Attributes
    ----------
    kind : {"full", "backbone"}
        Which kind of file it was.
    loaded : int
        Tensors copied into the model.
    skipped : tuple of str
        File tensors left out (class-count heads of another shape, classifier heads).
    """

    kind: str
    loaded: int
    skipped: tuple[str, ...] = field(default_factory=tuple)

    def line(self, path: str | Path) -> str:
        """One line for a log: which file, which kind, how many tensors."""
        extra = f", {len(self.skipped)} left out" if self.skipped else ""
        return f"weights {path}: {self.kind}, {self.loaded} tensors loaded{extra}"


def hub_checkpoints() -> Path:
    """torch's hub cache of downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def resolve_weights(spec: str | Path) -> Path:
    """The weights file ``spec`` names: a path, or a bare file name in :func:`hub_checkpoints`.

    Raises
    ------
    FileNotFoundError
        Neither exists (the message names both places).
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.name == str(spec):
        cached = hub_checkpoints() / path.name
        if cached.is_file():
            return cached
        raise FileNotFoundError(f"Weights file {str(spec)!r} does not exist here or in {str(cached.parent)!r}.")
    raise FileNotFoundError(f"Weights file {str(spec)!r} does not exist.")


def read_weights(path: str | Path) -> dict[str, np.ndarray]:
    """Every floating tensor of a safetensors or ``.pth`` file, as numpy arrays.

    A ``.pth`` checkpoint that wraps its state dict under ``"state_dict"`` or ``"model"``
    is unwrapped. Integer tensors (BatchNorm's ``num_batches_tracked``) are dropped: kofn
    never averages or loads them.

    Raises
    ------
    WeightsError
        The file is neither format, or holds something other than tensors.
    """
    path = resolve_weights(path)
    with open(path, "rb") as fh:
        head = fh.read(2)
    # torch.save writes a zip archive ("PK") or, in the legacy format, a pickle (0x80).
    if head == b"PK" or head[:1] == b"\x80":
        return _read_pth(path)
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"Weights file {str(path)!r} is neither safetensors nor a torch "
                           f"state dict: {err}.") from None
    return {k: v for k, v in arrays.items() if np.issubdtype(v.dtype, np.floating)}


def _read_pth(path: Path) -> dict[str, np.ndarray]:
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"Weights file {str(path)!r} is not a torch state dict "
                           f"(weights_only load failed: {first}).") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"Weights file {str(path)!r} must hold a mapping of name to tensor.")
    return {k.removeprefix("module."): v.detach().cpu().float().numpy() if v.dtype == torch.bfloat16
            else v.detach().cpu().numpy()
            for k, v in obj.items() if v.is_floating_point()}


def apply_weights(model: Any, arrays: Mapping[str, np.ndarray],
                  backbone: BackboneMap | None = None) -> WeightsReport:
    """Copy a full-model or backbone-only state into ``model`` in place.

    Parameters
    ----------
    model : torch.nn.Module
        A registry model.
    arrays : mapping of str to numpy.ndarray
        What :func:`read_weights` returned.
    backbone : BackboneMap, optional
        The model's classifier-to-backbone name map (see :data:`worker.models.BACKBONES`);
        without it only full files and ``backbone.*`` files fit.

    Returns
    -------
    WeightsReport

    Raises
    ------
    WeightsError
        The names or shapes do not fit the model (the first few are named).
    """
    import torch

    state = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    if not arrays:
        raise WeightsError("Weights file holds no floating-point tensors.")
    if set(arrays) <= set(state):
        kind = "full" if set(arrays) >= {k for k in state if not k.startswith(CLASS_HEADS)} else "backbone"
        mapped, dropped = dict(arrays), []
    elif backbone is not None:
        kind = "backbone"
        mapped, dropped = _map_backbone(arrays, backbone)
    else:
        extra = sorted(set(arrays) - set(state))
        raise WeightsError(f"Weights do not fit the model: unexpected {extra[:3]}"
                           f"{'...' if len(extra) > 3 else ''}, and the model has no backbone map.")
    unknown = sorted(set(mapped) - set(state))
    if unknown:
        raise WeightsError(f"Weights do not fit the model: unexpected {unknown[:3]}"
                           f"{'...' if len(unknown) > 3 else ''}.")
    if kind == "backbone":
        prefix = backbone.target if backbone is not None else "backbone."
        missing = sorted(k for k in state if k.startswith(prefix) and k not in mapped)
        if missing:
            raise WeightsError(f"Weights do not cover the model's backbone: missing {missing[:3]}"
                               f"{'...' if len(missing) > 3 else ''}.")
    load: dict[str, np.ndarray] = {}
    for key, arr in mapped.items():
        want = tuple(state[key].shape)
        if tuple(arr.shape) == want:
            load[key] = arr
        elif kind == "full" and key.startswith(CLASS_HEADS):
            dropped.append(key)
        else:
            raise WeightsError(f"Weights do not fit the model: {key!r} has shape {tuple(arr.shape)}, "
                               f"the model expects {want}.")
    with torch.no_grad():
        for key, arr in load.items():
            state[key].copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(state[key].dtype))
    return WeightsReport(kind=kind, loaded=len(load), skipped=tuple(dropped))


def _map_backbone(arrays: Mapping[str, np.ndarray], bmap: BackboneMap
                  ) -> tuple[dict[str, np.ndarray], list[str]]:
    mapped, dropped = {}, []
    for key, arr in arrays.items():
        if bmap.drop and key.startswith(bmap.drop):
            dropped.append(key)
        elif key.startswith(bmap.source):
            mapped[bmap.target + key[len(bmap.source):]] = arr
        else:
            raise WeightsError(f"Weights do not fit the model's backbone: {key!r} is neither under "
                               f"{bmap.source!r} nor a classifier head.")
    return mapped, dropped
