"""``kofn train``'s settings on the command line: one flag per setting, and the config they make.

:func:`add_setting_flags` adds one flag per :class:`~worker.config.RunConfig` field
(``--local-iters`` for ``local_iters``, ``--no-X`` for booleans); :func:`load_config`
builds the run config from ``--config``, ``--unset``, ``--set SETTING=VALUE`` and those
flags. :mod:`worker.commands.train` registers the command and runs the job.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import typing
from typing import Any

from exchange.codes import code_names
from worker.config import ConfigError, RunConfig
from worker.straggle import parse_straggle

__all__ = ["add_setting_flags", "load_config"]


# Help for the generated flags (a setting without an entry still gets its flag).
_HELP = {
    "job": "job name (default: MODEL-MODE-TIMESTAMP)",
    "store": "a path, file:///ABS/PATH or s3://BUCKET[/PREFIX]",
    "unsealed_shares": "allow a secure job whose shares cannot be sealed per aggregator (lambda)",
    "workers": "number of workers n",
    "mode": "the exchange code (see exchange.codes)",
    "k": "merged shards needed to decode (any k of n)",
    "s": "stragglers tolerated (backup, gradient)",
    "t": "colluding aggregators tolerated (secure)",
    "quorum": "contributors fixing a round (default n; fixed at n-s where the code says so)",
    "model": "model name (see worker.models.MODELS)",
    "task": "a training task of your own, PKG.MODULE:FACTORY (see worker.tasks.TrainingTask)",
    "device": "where a task trains: cpu, cuda, cuda:N or auto",
    "data": "PennFudanPed-layout folder (default: synthetic images)",
    "key_file": "encryption key file (else $KOFN_KEY)",
    "encrypt": "encrypt every stored object (--no-encrypt: in the clear)",
    "evaluate": "evaluate the final model (--no-evaluate: skip it)",
    "straggle": "e.g. worker=1,delay=2.0 | shiftexp:shift=0.5,rate=2 | crash:p=0.1 | dead:worker=2 "
                "(repeatable)",
    "grace": "seconds before taking over a missing aggregator",
    "poll_max": "longest pause (s) between looks while waiting: larger is fewer GETs, more latency",
    "weights": "starting weights: kofn .safetensors or torchvision .pth, full model or backbone "
               "only; a bare name is looked up in $TORCH_HOME/hub/checkpoints",
    "min_size": "detector resize: shorter side (px)",
    "max_size": "detector resize: cap on the longer side (px)",
}


def _choices(name: str) -> tuple[str, ...] | None:
    if name == "mode":
        return code_names()
    if name == "launcher":
        from worker.plugins import LAUNCHERS

        return LAUNCHERS.names()
    return None


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`RunConfig` field (``--local-iters`` for ``local_iters``), typed
    from its annotation, with choices from the registries; booleans get ``--no-X`` too."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        flag, hint = "--" + f.name.replace("_", "-"), hints[f.name]
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        kw: dict[str, Any] = {"dest": f.name, "default": None, "help": _HELP.get(f.name)}
        if f.name == "straggle":
            p.add_argument(flag, action="append", metavar="RULE", **kw)
        elif base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            p.add_argument(flag, type=base if base in (int, float) else str, choices=_choices(f.name), **kw)


def _toml_scalar(text: str) -> Any:
    """A ``--set`` value as TOML reads it (``3``, ``0.5``, ``true``, ``"x"``), else the text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {n: getattr(args, n) for n in RunConfig.field_names() if getattr(args, n, None) is not None}
    for item in args.set or ():
        name, eq, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or name not in RunConfig.field_names():
            raise ConfigError(f"Argument '--set' must be SETTING=VALUE with a known setting, not {item!r}.")
        out[name] = _toml_scalar(value.strip())
    if isinstance(out.get("straggle"), list) and all(isinstance(x, str) for x in out["straggle"]):
        out["straggle"] = parse_straggle(";".join(out["straggle"]))
    return out


def load_config(args: argparse.Namespace) -> RunConfig:
    """The run config: defaults, then ``--config``, less ``--unset``, then the other flags."""
    over = _overrides(args)
    unset = tuple(n.strip().replace("-", "_") for n in (args.unset or ()))
    if args.config:
        return RunConfig.from_toml(args.config, unset=unset, **over)
    unknown = [n for n in unset if n not in RunConfig.field_names()]
    if unknown:
        raise ConfigError(f"Unknown setting {unknown[0]!r} to unset.")
    return RunConfig().with_overrides(**over)
