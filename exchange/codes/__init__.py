"""Exchange codes as objects, and the registry that names them.

===================  =========================================  ========================
name                 class                                      merged shards needed
===================  =========================================  ========================
``plain``            :class:`~exchange.codes.sliced.Plain`       all ``n`` slices
``backup``           :class:`~exchange.codes.sliced.Backup`      all ``n`` slices
``mds``              :class:`~exchange.codes.mds.MDS`            any ``k``
``gradient``         :class:`~exchange.codes.gradient.Gradient`  all ``n`` slices
``gradient+mds``     :class:`~exchange.codes.gradient.GradientMDS`  any ``k``
``secure``           :class:`~exchange.codes.secure.Secure`      any ``k + t``
===================  =========================================  ========================

The registry maps a name to ``"module:Class"`` and imports the module only when the code
is first used (fsspec's ``registry.py`` shape), so a code with an optional dependency
costs nothing until it is asked for. Add a code with one line in :data:`CODES`, or from
anywhere with :func:`register_code`.
"""

from __future__ import annotations

import importlib
from typing import Any

from exchange.codes.base import LEGACY_RECORD, Code

__all__ = ["CODES", "Code", "code_class", "code_from_json", "code_names", "make_code", "register_code"]

#: Registered codes: name -> ``"module:Class"`` (or the class itself, once registered so).
CODES: dict[str, str | type[Code]] = {
    "plain": "exchange.codes.sliced:Plain",
    "backup": "exchange.codes.sliced:Backup",
    "mds": "exchange.codes.mds:MDS",
    "gradient": "exchange.codes.gradient:Gradient",
    "gradient+mds": "exchange.codes.gradient:GradientMDS",
    "secure": "exchange.codes.secure:Secure",
}

# A parameter of the built-in codes' header record that a code lacks is accepted at its
# neutral value (and ignored).
_NEUTRAL: dict[str, object] = {"k": None, **LEGACY_RECORD}


def register_code(name: str, target: str | type[Code], *, replace: bool = False) -> None:
    """Register a code under ``name``: a :class:`Code` subclass or ``"module:Class"``.

    Parameters
    ----------
    name : str
        The name runs and shard headers use.
    target : str or type
        The class, or where to import it from (imported on first use).
    replace : bool, optional
        Allow replacing an existing registration.
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"Argument 'name' must be a non-empty string without '/', not {name!r}.")
    if isinstance(target, str):
        if ":" not in target:
            raise ValueError(f"Argument 'target' must be 'module:Class', not {target!r}.")
    elif not (isinstance(target, type) and issubclass(target, Code)):
        raise TypeError(f"Argument 'target' must be a Code subclass or 'module:Class', not {target!r}.")
    if name in CODES and not replace and CODES[name] != target:
        raise ValueError(f"Argument 'name' is already registered as {CODES[name]!r}; pass replace=True.")
    CODES[name] = target


def code_names() -> tuple[str, ...]:
    """The registered code names, in registration order."""
    return tuple(CODES)


def code_class(name: str) -> type[Code]:
    """The class registered as ``name`` (imported now if it was named by string)."""
    if name not in CODES:
        raise ValueError(f"Argument 'mode' must be one of {', '.join(CODES)}, not {name!r}.")
    target = CODES[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as err:
            raise ImportError(f"Code {name!r} needs module {err.name!r}, which is not installed; "
                              f"install it (for example `uv add {err.name}`).") from None
        if not (isinstance(cls, type) and issubclass(cls, Code)):
            raise TypeError(f"Code {name!r} names {target!r}, which is not a Code subclass.")
        return cls
    return target


def make_code(name: str, n: int, **params: Any) -> Code:
    """Build the code registered as ``name`` with ``n`` parties and its parameters.

    A parameter of the built-in header record (``k``, ``s``, ``t``, ``p``, ...) that the
    class does not have is dropped at its neutral value and refused otherwise, with the
    galois-style one-line error (``Argument 't' must be 0 in mds mode, not 1.``).
    """
    cls = code_class(name)
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    kept: dict[str, Any] = {}
    for key, value in params.items():
        if key in fields:
            kept[key] = value
        elif key in _NEUTRAL and (value == _NEUTRAL[key] or (key == "k" and value == n)):
            continue
        elif key in _NEUTRAL:
            raise ValueError(f"Argument {key!r} must be {_NEUTRAL[key]} in {name} mode, not {value}.")
        else:
            raise TypeError(f"Argument {key!r} is not a parameter of the {name} code.")
    return cls(n, **kept)


def code_from_json(data: dict[str, object]) -> Code:
    """Rebuild a code from its :meth:`Code.to_json` dict."""
    if not isinstance(data, dict) or not isinstance(data.get("mode"), str):
        raise ValueError(f"Argument 'data' must be a code dict with a 'mode', not {data!r}.")
    fields = dict(data)
    name = str(fields.pop("mode"))
    cls = code_class(name)
    return cls.from_fields(fields) if hasattr(cls, "from_fields") else make_code(name, **fields)
