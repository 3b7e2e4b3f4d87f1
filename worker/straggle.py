"""Straggler and fault injection rules: :class:`Straggle` and the ``--straggle`` syntax.

A run's ``straggle`` setting (:attr:`worker.config.RunConfig.straggle`) is a tuple of
:class:`Straggle` rules. :func:`parse_straggle` reads the command-line syntax
(``worker=1,delay=2.0;shiftexp:shift=0.5,rate=2``) and :func:`straggle_rules` every form a
config file or mapping may give (a string, a table, a list of either). :mod:`worker.faults`
applies the rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coding.validate import check_int, check_real
from worker.errors import ConfigError

__all__ = ["STRAGGLE_KINDS", "STRAGGLE_ROLES", "Straggle", "parse_straggle", "straggle_rules"]

STRAGGLE_KINDS = ("fixed", "shiftexp", "crash", "kill", "dead")
STRAGGLE_ROLES = ("trainer", "aggregator")


@dataclass(frozen=True)
class Straggle:
    """One straggler or fault injection rule, seeded per worker.

    Parameters
    ----------
    kind : {"fixed", "shiftexp", "crash", "kill", "dead"}
        ``fixed`` sleeps ``delay`` seconds before publishing; ``shiftexp`` sleeps
        ``shift + Exp(rate)`` seconds (the shifted-exponential model of Lee et al.,
        "Speeding up distributed machine learning using codes", 2018); ``crash`` makes the
        worker exit with status 3 with probability ``prob`` each round (the launcher
        restarts it and it rejoins from the latest complete round); ``kill`` makes a worker
        process send itself SIGKILL with probability ``prob`` each round, midway through its
        upload (after its first share is written, before its done marker; in-process
        workers raise an injected crash there instead); ``dead`` never publishes anything.
    worker : int or None
        The worker it applies to; ``None`` means every worker.
    delay, shift, rate, prob : float
        The parameters of the kind (others are ignored).
    role : {"trainer", "aggregator"}
        Which of the worker's jobs a delay holds back: ``trainer`` sleeps before
        publishing its update (what gradient codes tolerate), ``aggregator`` before
        combining its shard (what MDS codes tolerate).
    """

    kind: str = "fixed"
    worker: int | None = None
    delay: float = 0.0
    shift: float = 0.0
    rate: float = 1.0
    prob: float = 0.0
    role: str = "trainer"

    def __post_init__(self) -> None:
        if self.kind not in STRAGGLE_KINDS:
            raise ConfigError(
                f"Argument 'straggle.kind' must be one of {', '.join(STRAGGLE_KINDS)}, not {self.kind!r}."
            )
        if self.worker is not None:
            check_int("straggle.worker", self.worker, low=0)
        check_real("straggle.delay", self.delay, low=0.0)
        check_real("straggle.shift", self.shift, low=0.0)
        check_real("straggle.rate", self.rate, low=0.0, low_open=True)
        check_real("straggle.prob", self.prob, low=0.0, high=1.0)
        if self.role not in STRAGGLE_ROLES:
            raise ConfigError(f"Argument 'straggle.role' must be one of "
                              f"{', '.join(STRAGGLE_ROLES)}, not {self.role!r}.")

    def applies_to(self, worker: int) -> bool:
        """Whether this rule affects ``worker``."""
        return self.worker is None or self.worker == worker

    def to_spec(self) -> str:
        """The rule in the ``--straggle`` syntax (inverse of :func:`parse_straggle`)."""
        params = {"fixed": ("delay",), "shiftexp": ("shift", "rate"), "crash": ("prob",),
                  "kill": ("prob",), "dead": ()}[self.kind]
        parts = [] if self.worker is None else [f"worker={self.worker}"]
        parts += [f"{name}={getattr(self, name):g}" for name in params]
        if self.role != "trainer":
            parts.append(f"role={self.role}")
        return f"{self.kind}:{','.join(parts)}"


_STRAGGLE_ALIASES = {"p": "prob", "w": "worker"}


def parse_straggle(text: str) -> tuple[Straggle, ...]:
    """Parse straggler rules like ``worker=1,delay=2.0`` or ``shiftexp:shift=0.5,rate=2``.

    Several rules are separated by ``;``. A rule is ``[kind:]name=value,...``; without a
    kind it is ``fixed`` when ``delay`` is given, ``shiftexp`` when ``shift``/``rate`` is,
    and ``crash`` when ``prob`` (or ``p``) is. ``dead:worker=2`` silences worker 2.

    Parameters
    ----------
    text : str
        The rules.

    Returns
    -------
    tuple of Straggle
    """
    if not isinstance(text, str):
        raise TypeError(f"Argument 'straggle' must be a string, not {type(text).__name__}.")
    rules = []
    for chunk in filter(None, (c.strip() for c in text.split(";"))):
        kind, _, body = chunk.rpartition(":")
        values: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in body.split(","))):
            name, eq, raw = item.partition("=")
            name = _STRAGGLE_ALIASES.get(name.strip(), name.strip())
            if not eq or name not in ("worker", "delay", "shift", "rate", "prob", "role"):
                raise ConfigError(f"Argument 'straggle' has a malformed item {item!r} in {chunk!r}.")
            if name == "role":
                values[name] = raw.strip()
                continue
            try:
                values[name] = int(raw) if name == "worker" else float(raw)
            except ValueError:
                raise ConfigError(f"Argument 'straggle' has a non-numeric value in {item!r}.") from None
        kind = kind.strip() or _infer_kind(values, chunk)
        rules.append(Straggle(kind=kind, **values))
    return tuple(rules)


def _infer_kind(values: Mapping[str, Any], chunk: str) -> str:
    if "delay" in values:
        return "fixed"
    if "shift" in values or "rate" in values:
        return "shiftexp"
    if "prob" in values:
        return "crash"
    raise ConfigError(f"Argument 'straggle' rule {chunk!r} names no kind and no delay, shift, rate or prob.")


def straggle_rules(value: object) -> tuple[Straggle, ...]:
    """The rules of a ``straggle`` setting: a ``--straggle`` string, one :class:`Straggle`,
    or a list of strings, tables and :class:`Straggle` objects (a TOML ``[[straggle]]``)."""
    if isinstance(value, str):
        return parse_straggle(value)
    if isinstance(value, Straggle):
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"Argument 'straggle' must be a string or a list of rules, not {value!r}.")
    out: list[Straggle] = []
    for item in value:
        if isinstance(item, Straggle):
            out.append(item)
        elif isinstance(item, str):
            out.extend(parse_straggle(item))
        elif isinstance(item, Mapping):
            unknown = set(item) - {f.name for f in dataclasses.fields(Straggle)}
            if unknown:
                raise ConfigError(f"Argument 'straggle' has unknown field(s) {sorted(unknown)}.")
            out.append(Straggle(**item))
        else:
            raise ConfigError(f"Argument 'straggle' has a malformed rule {item!r}.")
    return tuple(out)
