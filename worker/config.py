"""A training run's settings: one frozen dataclass, loaded from TOML, overridden from the CLI.

:class:`RunConfig` holds everything a run needs (store, code, model, optimiser, straggler
injection, launcher, cost assumptions). It is built in three steps, as Flower builds its
run config: defaults, then a TOML file (:meth:`RunConfig.from_toml`), then command-line
overrides (:meth:`RunConfig.with_overrides`). Structural checks (``k <= n``, ``t < k``,
ranges) run in ``__post_init__``; checks that look at the outside world (the model name,
the data path, the key file) run in :meth:`RunConfig.preflight`, which ``kofn train`` calls
before anything is uploaded. Every failure is one ``ValueError``/``KofnError`` line.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coding.validate import check_int, check_real
from worker.errors import ConfigError
from worker.straggle import Straggle, straggle_rules

__all__ = [
    "MODES",
    "SECTIONS",
    "ConfigError",
    "RunConfig",
]

#: The built-in run modes (codes from :mod:`exchange.codes`; any registered name works).
MODES = ("plain", "backup", "mds", "gradient", "secure")

# Largest prime below 2^31: the default modulus of the secure (GF(p)) mode.
DEFAULT_PRIME = 2**31 - 1

_JOB_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_store_url(store: object) -> None:
    from exchange.stores.url import STORES

    scheme = store.partition("://")[0].lower() if isinstance(store, str) and "://" in store else ""
    if not isinstance(store, str) or not store or (scheme and scheme not in STORES) or (
            scheme == "file" and not store.startswith("file:///")):
        raise ConfigError(f"Argument 'store' must be a path, file:///ABS/PATH, s3://BUCKET[/PREFIX] "
                          f"or another registered scheme ({', '.join(STORES.names())}), not {store!r}.")
    if scheme == "memory":
        raise ConfigError(f"Argument 'store' is {store!r}, but a memory:// store lives in one process "
                          f"and kofn train's workers are separate processes; use a path or s3://.")


MAX_WORKERS = 1024
"""The most workers a job may have (every code's generator is at most this wide)."""
MAX_LOCAL_WORKERS = 128
"""The most worker processes the local launcher starts on one machine."""

@dataclass(frozen=True)
class RunConfig:
    """Every setting of one coded training run.

    Parameters
    ----------
    job : str
        Job name; the store prefix ``{job}/`` and the report folder ``runs/{job}/``. Empty
        means "make one up" (see :meth:`with_job_name`).
    store : str
        Store: a directory path, ``file:///ABS/PATH`` or ``s3://BUCKET[/PREFIX]``.
    workers : int
        Number of workers ``n``.
    mode : str
        The exchange's code: a name registered in :mod:`exchange.codes` (built in:
        ``plain``, ``backup``, ``mds``, ``gradient``, ``secure``).
    k : int, optional
        Merged shards (aggregators) needed to decode the sum: the "K" of "any K of N".
        Must be ``n`` in plain and backup mode (their default, and gradient's); defaults to
        ``n - 1`` in mds and secure mode. Gradient mode with ``k < n`` also MDS-codes the
        aggregation.
    s : int
        Stragglers tolerated among contributions by the backup and gradient modes; with
        gradient coding each worker trains on ``s + 1`` partitions. Ignored by plain and
        secure.
    t : int
        Secure mode: colluding aggregators that learn nothing; ``1 <= t < k``. Must be
        0 for the other built-in codes, but any value is accepted unless its code refuses it.
    p : int
        Secure mode: the prime modulus.
    quorum : int or None
        plain, mds and secure: done markers that fix a round's contributor set (default
        ``n``). ``n - 1`` tolerates a dead trainer; the round then averages the members.
        Must be unset in backup and gradient mode (fixed at ``n - s``).
    model : str
        A name from :data:`worker.models.MODELS`; the default is
        :data:`worker.models.DEFAULT_MODEL` (MobileNet-v3-320 Faster R-CNN).
    weights : str or None
        Starting weights: a kofn safetensors or torchvision ``.pth`` file, full model or
        backbone only; a bare file name is looked up in ``$TORCH_HOME/hub/checkpoints``
        (:mod:`worker.weights`). ``None``: the seeded random initialisation.
    task : str or None
        A user's training task, ``"pkg.module:factory"`` (:mod:`worker.tasks`); it brings
        its own model, data, loss and evaluation, and ``model``/``data`` are then unused.
    device : str
        Where a task trains: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when
        torch sees a GPU).
    min_size, max_size : int or None
        Override the detection model's internal resize (shorter side, longer-side cap).
    rounds, local_iters, batch_size : int
        Rounds of the exchange, local SGD steps per round, and the batch size.
    lr, momentum, weight_decay : float
        SGD hyper-parameters.
    data : str or None
        A PennFudan-style dataset folder; ``None`` means a synthetic set of
        ``synth_images`` images (``image_size`` pixels square) made by the trigger.
    holdout : float
        Fraction of the data kept back for evaluation.
    seed : int
        Seeds partitioning, models, local SGD and straggler delays.
    encrypt : bool
        Wrap the store in :class:`exchange.crypto.EncryptedStore`.
    key_file : str or None
        Key file for encryption; without one the key comes from ``key_env``.
    key_env : str
        Environment variable holding the base64 key when no ``key_file`` is given
        (``KOFN_KEY``, which also honours ``KOFN_KEY_FILE``).
    unsealed_shares : bool
        Accept a T-private (secure) job whose shares cannot be sealed per aggregator (the
        Lambda launcher cannot hand out per-aggregator keys yet): its shares are then
        protected by the job key alone, which every worker holds, so T-privacy holds
        against the store's operator but not against a fellow worker. Off by default:
        such a job is refused before anything is uploaded (docs/security.md).
    launcher : {"local", "ray", "lambda"}
        Where workers run.
    ray_address : str or None
        An existing Ray cluster; ``None`` starts a local one on 127.0.0.1.
    ray_cpus : float
        CPUs each Ray worker task reserves (fractions let ``n`` workers share fewer cores;
        all ``n`` must run at once).
    straggle : tuple of Straggle
        Straggler and fault injection rules.
    round_timeout : float
        Seconds a worker waits for a round before giving up.
    grace : float
        Seconds a worker waits for a missing aggregator before taking over its shard.
    poll_max : float
        The longest pause between two looks for the objects a worker waits for (the
        backoff starts at 0.01 s): larger is fewer GET requests, at up to that much latency
        per wait (docs/exchange.md measures the trade-off).
    max_restarts : int
        Restarts per worker the launcher allows after crashes.
    lambda_function, region : str
        The Lambda function name and AWS region of the ``lambda`` launcher (an empty
        region: ``AWS_REGION``, ``AWS_DEFAULT_REGION`` or the AWS profile's).
    lambda_memory_mb, lambda_ephemeral_mb : int
        Lambda memory and ephemeral storage sizes, for the launcher and the cost model.
    ec2_instance : str
        The EC2 instance type of the cost baseline (a key of ``prices.toml``).
    runs_dir : str
        Where reports go.
    evaluate : bool
        Evaluate the final model on the held-out split (COCO AP for detection models).
    """

    job: str = ""
    store: str = "runs/store"
    workers: int = 5
    mode: str = "mds"
    k: int | None = None
    s: int = 0
    t: int = 1
    p: int = DEFAULT_PRIME
    quorum: int | None = None
    model: str = "fasterrcnn_mobilenet_v3_large_320_fpn"  # worker.models.DEFAULT_MODEL
    weights: str | None = None
    task: str | None = None
    device: str = "cpu"
    min_size: int | None = None
    max_size: int | None = None
    rounds: int = 5
    local_iters: int = 2
    batch_size: int = 4
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    data: str | None = None
    synth_images: int = 40
    image_size: int = 64
    holdout: float = 0.2
    seed: int = 0
    encrypt: bool = True
    key_file: str | None = None
    key_env: str = "KOFN_KEY"
    unsealed_shares: bool = False
    launcher: str = "local"
    ray_address: str | None = None
    ray_cpus: float = 1.0
    straggle: tuple[Straggle, ...] = field(default_factory=tuple)
    round_timeout: float = 300.0
    grace: float = 2.0
    poll_max: float = 0.2
    max_restarts: int = 3
    lambda_function: str = "kofn-worker"
    region: str = ""
    lambda_memory_mb: int = 3008
    lambda_ephemeral_mb: int = 512
    ec2_instance: str = "c5.2xlarge"
    runs_dir: str = "runs"
    evaluate: bool = True

    def __post_init__(self) -> None:
        n = check_int("workers", self.workers, low=1, high=MAX_WORKERS)
        if self.launcher == "local" and n > MAX_LOCAL_WORKERS:
            raise ConfigError(f"Argument 'workers' is {n}: the local launcher runs at most "
                              f"{MAX_LOCAL_WORKERS} worker processes on one machine (use --launcher "
                              f"ray or lambda).")
        from worker.plugins import LAUNCHERS

        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"Argument 'launcher' must be one of {', '.join(LAUNCHERS.names())}, "
                              f"not {self.launcher!r}.")
        if self.job and not _JOB_RE.match(self.job):
            raise ConfigError(
                f"Argument 'job' must be 1-64 letters, digits, '.', '_' or '-', not {self.job!r}."
            )
        _check_store_url(self.store)
        check_int("s", self.s, low=0, high=n - 1, high_name="n-1")
        object.__setattr__(self, "straggle", straggle_rules(self.straggle))
        if self.k is not None:
            check_int("k", self.k, low=1, high=n, high_name="n")
        check_int("t", self.t, low=0)
        if self.task is not None and (not isinstance(self.task, str) or self.task.count(":") != 1):
            raise ConfigError(f"Argument 'task' must be 'pkg.module:factory', not {self.task!r}.")
        if not isinstance(self.device, str) or not re.match(r"^(cpu|auto|cuda(:\d+)?|mps)$", self.device):
            raise ConfigError(f"Argument 'device' must be cpu, cuda, cuda:N, mps or auto, not {self.device!r}.")
        self._check_numbers()
        code = self.code_spec()  # the code's own checks (k, s, t, field size, fixed point)
        object.__setattr__(self, "k", code.merged_needed)
        try:
            code.check_quorum(self.quorum)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def code_spec(self) -> Any:
        """The exchange's code object (:mod:`exchange.codes`) for this run.

        ``k`` here always counts the merged shards that decode the sum (the "K" of "any K
        of N"); each code translates it (:meth:`~exchange.codes.base.Code.from_settings`):
        secure's packed-Shamir code gets ``k - t`` message rows and ``t`` privacy rows, and
        gradient with ``k < n`` adds an MDS stage (``gradient+mds``).
        """
        from exchange.codes import code_class

        try:
            cls = code_class(self.mode)
            return cls.from_settings(self.workers, k=self.k, s=self.s, t=self.t, p=self.p, seed=self.seed)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def _check_numbers(self) -> None:
        check_int("p", self.p, low=3)
        check_int("rounds", self.rounds, low=1)
        check_int("local_iters", self.local_iters, low=1)
        check_int("batch_size", self.batch_size, low=1)
        check_int("synth_images", self.synth_images, low=2)
        check_int("image_size", self.image_size, low=32, high=4096)
        for name in ("min_size", "max_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), low=16, high=4096)
        check_real("ray_cpus", self.ray_cpus, low=0.0)
        check_int("seed", self.seed, low=0)
        check_int("max_restarts", self.max_restarts, low=0)
        check_int("lambda_memory_mb", self.lambda_memory_mb, low=128, high=10240)
        check_int("lambda_ephemeral_mb", self.lambda_ephemeral_mb, low=512, high=10240)
        check_real("lr", self.lr, low=0.0, low_open=True)
        check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_real("weight_decay", self.weight_decay, low=0.0)
        check_real("holdout", self.holdout, low=0.0, high=1.0, high_open=True)
        check_real("round_timeout", self.round_timeout, low=0.0, low_open=True)
        check_real("grace", self.grace, low=0.0)
        check_real("poll_max", self.poll_max, low=0.01, high=60.0)
        for rule in self.straggle:
            if rule.worker is not None:
                check_int("straggle.worker", rule.worker, low=0, high=self.workers - 1,
                          high_name="n-1")
        for name in ("encrypt", "evaluate"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Argument {name!r} must be a boolean, not {getattr(self, name)!r}.")

    # -- construction ------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The names of every setting, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, source: str = "config") -> RunConfig:
        """Build a config from a flat mapping; unknown keys are an error naming ``source``.

        TOML sub-tables (``[train]``, ``[aws]``, ...) are flattened first, so a file may
        group its settings in sections; ``straggle`` may be a string or an array of tables.
        """
        flat = _flatten_sections(values, source)
        unknown = sorted(set(flat) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"Unknown setting(s) {', '.join(map(repr, unknown))} in {source}.")
        return cls(**flat)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, unset: tuple[str, ...] = (),
                  **overrides: Any) -> RunConfig:
        """Load a TOML file, drop the settings named in ``unset`` (back to their defaults),
        then apply ``overrides`` (``None`` values are skipped)."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"Config file {str(path)!r} does not exist.") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"Config file {str(path)!r} is not valid TOML: {err}.") from None
        merged = _flatten_sections(data, str(path))
        for name in unset:
            if name not in cls.field_names():
                raise ConfigError(f"Unknown setting {name!r} to unset.")
            merged.pop(name, None)
        merged.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(merged, source=str(path))

    def with_overrides(self, **overrides: Any) -> RunConfig:
        """Return a copy with the given settings replaced (``None`` values are skipped).

        ``k`` is recomputed from its mode default when ``workers``, ``mode`` or ``s``
        changes and ``k`` is not given explicitly.
        """
        values = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(values) - set(self.field_names()))
        if unknown:
            raise ConfigError(f"Unknown setting(s) {', '.join(map(repr, unknown))}.")
        if "k" not in values and {"workers", "mode", "s"} & set(values):
            values["k"] = None
        if "quorum" not in values and self.quorum is not None:
            # an inherited quorum the new code refuses (say, a gradient code's fixed n - s)
            # is dropped rather than failing the override
            try:
                dataclasses.replace(self, **values)
            except ConfigError as err:
                if "'quorum'" not in str(err):
                    raise
                values["quorum"] = None
        return dataclasses.replace(self, **values)

    def with_job_name(self, stamp: str) -> RunConfig:
        """Return a copy with ``job`` set to ``{model}-{mode}-{stamp}`` if it is empty."""
        if self.job:
            return self
        what = self.model if self.task is None else re.sub(r"[^A-Za-z0-9._-]", "-", self.task)[-40:]
        return dataclasses.replace(self, job=f"{what}-{self.mode}-{stamp}")

    # -- serialisation -----------------------------------------------------------------

    def to_toml(self) -> str:
        """The settings as TOML, grouped in the sections of :data:`SECTIONS` (unset ones
        as comments); :meth:`from_toml` reads it back to an equal config."""
        by_section: dict[str, list[str]] = {}
        for f in dataclasses.fields(self):
            if f.name == "straggle":
                continue
            value = getattr(self, f.name)
            line = f"# {f.name} unset" if value is None else f"{f.name} = {_toml_value(value)}"
            by_section.setdefault(SECTIONS.get(f.name, ""), []).append(line)
        out = by_section.pop("", [])
        for section, lines in by_section.items():
            out += ["", f"[{section}]", *lines]
        for rule in self.straggle:
            out += ["", "[[straggle]]"] + [f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(rule).items()
                                           if v is not None]
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``straggle`` as a list of dicts); inverse of :meth:`from_dict`."""
        out = dataclasses.asdict(self)
        out["straggle"] = [dataclasses.asdict(r) for r in self.straggle]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Rebuild a config from :meth:`to_dict` output (for example a job manifest)."""
        return cls.from_mapping(dict(data), source="job manifest")

    # -- checks against the outside world ----------------------------------------------

    def preflight(self) -> None:
        """Check the model name, data path and key before anything is uploaded.

        Raises
        ------
        ConfigError
            Unknown model.
        FileNotFoundError
            Missing data path or key file.
        exchange.errors.KeyFileError or PermissionError
            Unreadable or malformed key.
        """
        if self.task is not None:
            from worker.tasks import load_task

            load_task(self.task)
        known = known_models()
        if self.task is None and self.model not in known:
            raise ConfigError(f"Argument 'model' must be one of {', '.join(known)}, not {self.model!r}.")
        if self.data is not None and not Path(self.data).expanduser().exists():
            raise FileNotFoundError(f"Data path {self.data!r} does not exist.")
        if self.weights is not None:
            from worker.weights import resolve_weights

            resolve_weights(self.weights)
        if self.encrypt:
            self.load_keyring()
        if self.launcher == "lambda" and self.code_spec().private and not self.unsealed_shares:
            raise ConfigError("A secure job on the lambda launcher cannot seal its shares per "
                              "aggregator yet, so a fellow worker could read them "
                              "(docs/security.md); use the local or ray launcher, or pass "
                              "--unsealed-shares to accept privacy against the store only.")

    def load_keyring(self) -> Any:
        """Load the encryption keyring from ``key_file`` or ``key_env``.

        Returns
        -------
        exchange.crypto.Keyring
        """
        from exchange.crypto import Keyring

        if self.key_file:
            return Keyring.from_file(self.key_file)
        if self.key_env == "KOFN_KEY":
            return Keyring.from_env()
        return Keyring.from_env({"KOFN_KEY": os.environ.get(self.key_env, "")})


#: The TOML section each setting is printed in (any section name is accepted on reading).
SECTIONS: dict[str, str] = {
    **dict.fromkeys(("mode", "k", "s", "t", "p", "quorum"), "code"),
    **dict.fromkeys(("task", "model", "min_size", "max_size", "rounds", "local_iters", "batch_size",
                     "lr", "momentum", "weight_decay", "seed", "device", "evaluate"), "train"),
    **dict.fromkeys(("data", "synth_images", "image_size", "holdout"), "data"),
    **dict.fromkeys(("store", "encrypt", "key_file", "key_env", "unsealed_shares"), "store"),
    **dict.fromkeys(("launcher", "ray_address", "ray_cpus", "round_timeout", "grace", "poll_max",
                     "max_restarts",
                     "lambda_function", "region", "runs_dir"), "launcher"),
    **dict.fromkeys(("lambda_memory_mb", "lambda_ephemeral_mb", "ec2_instance"), "cost"),
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    import json

    return json.dumps(str(value))  # a TOML basic string


def known_models() -> tuple[str, ...]:
    """Names of the models :func:`worker.models.build_model` accepts."""
    from worker.models import MODELS

    return MODELS.names()


def _flatten_sections(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"Argument 'config' must be a table of settings in {source}.")
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and key != "straggle":
            for sub, inner in value.items():
                if sub in flat:
                    raise ConfigError(f"Setting {sub!r} is given twice in {source}.")
                flat[sub] = inner
        else:
            if key in flat:
                raise ConfigError(f"Setting {key!r} is given twice in {source}.")
            flat[key] = value
    return flat
