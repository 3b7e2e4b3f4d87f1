"""The trigger: split the training set, upload it encrypted, and write the job manifest.

A job lives under the store prefix ``{job}/``::

    {job}/manifest.json                 the job manifest (JSON, written last)
    {job}/data/part-NNNN.kpt            training partition j (a partition blob)
    {job}/data/holdout.kpt              the held-out evaluation split
    {job}/model/round-NNNNNN.safetensors  the model after round r (r = 0 is the initial model)
    {job}/stats/round-NNNNNN/worker-NNNN.json  one worker's loss and timings for round r
    {job}/round/...                     the exchange's shards and markers

Partitions are serialized with :func:`worker.data.partition.serialize_partition` (PNG
bytes plus JSON targets, never pickle) and models as safetensors, so a reader never runs
code from the store. When the run config asks for encryption the caller hands in an
:class:`exchange.crypto.EncryptedStore`, and every object, the manifest included, is
encrypted. The manifest is written last: a job with a manifest has all its data, and
re-running the trigger on a partial job skips what is already there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coding.errors import KofnError
from exchange.stores.base import Store
from worker.checkpoints import decode_state, encode_state
from worker.config import RunConfig

__all__ = [
    "JobManifest",
    "ManifestError",
    "assignments",
    "checkpoint_key",
    "decode_state",
    "encode_state",
    "holdout_key",
    "load_samples",
    "manifest_key",
    "open_job_store",
    "partition_key",
    "keep_manifest_copy",
    "manifest_or_copy",
    "read_holdout",
    "read_manifest",
    "read_partition_samples",
    "stats_key",
    "trigger",
]

FORMAT = "kofn-job"
VERSION = 1


class ManifestError(KofnError):
    """A job manifest is missing or malformed."""


def manifest_key(job: str) -> str:
    """Key of the job manifest."""
    return f"{job}/manifest.json"


def partition_key(job: str, j: int) -> str:
    """Key of training partition ``j``."""
    return f"{job}/data/part-{j:04d}.kpt"


def holdout_key(job: str) -> str:
    """Key of the held-out split."""
    return f"{job}/data/holdout.kpt"


def checkpoint_key(job: str, r: int) -> str:
    """Key of the model after round ``r`` (``r = 0``: the initial model)."""
    return f"{job}/model/round-{r:06d}.safetensors"


def stats_key(job: str, r: int, worker: int) -> str:
    """Key of worker ``worker``'s statistics for round ``r``."""
    return f"{job}/stats/round-{r:06d}/worker-{worker:04d}.json"


def stats_prefix(job: str, r: int) -> str:
    """Prefix of every worker's statistics for round ``r``."""
    return f"{job}/stats/round-{r:06d}/"


@dataclass(frozen=True)
class JobManifest:
    """What a worker needs to know about its job, stored as JSON at :func:`manifest_key`.

    Parameters
    ----------
    job : str
        The job name.
    config : RunConfig
        The run's settings (the key itself is never stored).
    partitions : tuple of int
        Number of samples in each training partition ``j``.
    holdout : int
        Number of held-out samples.
    assignment : tuple of tuple of int
        The partitions each worker trains on: ``(i,)`` normally, the ``s + 1`` partitions
        of :meth:`coding.gradient.GradientCode.partitions` under gradient coding.
    created : float
        Unix time of the trigger.
    digests : tuple of str
        SHA-256 (hex) of each training partition's bytes as uploaded: workers check what
        they read against it, and ``--resume`` re-uploads a partition that fails it.
        Empty in manifests written before digests existed.
    holdout_digest : str
        SHA-256 (hex) of the held-out split's bytes, checked by :func:`read_holdout`.
    sizes : tuple of int
        Bytes of each training partition and, last, of the held-out split, as uploaded:
        readers refuse a larger object before reading it (``Store.get_bounded``).
    limits : dict of str to int
        The sizes every reader enforces before it allocates (:data:`LIMIT_NAMES`): the
        largest image side, masks per image and decoded partition bytes the trigger
        uploaded, the model update's element count and the worker count. A missing name
        falls back to the format's own cap.

    The JSON carries its own SHA-256 (``"sha256"``, over the canonical JSON of every other
    field), so a flipped byte in a plain manifest is refused rather than read as a
    different config.
    """

    job: str
    config: RunConfig
    partitions: tuple[int, ...]
    holdout: int
    assignment: tuple[tuple[int, ...], ...]
    created: float
    digests: tuple[str, ...] = ()
    limits: dict[str, int] = dataclasses.field(default_factory=dict)
    holdout_digest: str = ""
    sizes: tuple[int, ...] = ()

    def limit(self, name: str, default: int) -> int:
        """``limits[name]``, or ``default`` (the format's own cap) when the trigger set none."""
        return int(self.limits.get(name, default))

    def to_bytes(self) -> bytes:
        """The manifest as UTF-8 JSON, with its own SHA-256."""
        body = {
            "format": FORMAT, "version": VERSION, "job": self.job,
            "config": self.config.to_dict(), "partitions": list(self.partitions),
            "holdout": self.holdout, "assignment": [list(a) for a in self.assignment],
            "created": self.created, "digests": list(self.digests),
            "limits": dict(sorted(self.limits.items())), "holdout_digest": self.holdout_digest,
            "sizes": list(self.sizes),
        }
        return json.dumps({**body, "sha256": _body_digest(body)}, indent=1).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str = "manifest") -> JobManifest:
        """Parse :meth:`to_bytes` output; raise :class:`ManifestError` if malformed."""
        try:
            obj = json.loads(bytes(data).decode("utf-8"))
            if obj.get("format") != FORMAT or obj.get("version") != VERSION:
                raise ValueError("not a kofn-job manifest of version 1")
            claimed = obj.pop("sha256", None)
            if claimed is None:
                raise ValueError("it carries no SHA-256 of its contents")
            if claimed != _body_digest(obj):
                raise ManifestError(f"Job manifest {key!r} is damaged: its SHA-256 differs from "
                                    f"its contents (a flipped byte in the store)")
            manifest = cls(
                job=str(obj["job"]),
                config=RunConfig.from_dict(obj["config"]),
                partitions=tuple(int(x) for x in obj["partitions"]),
                holdout=int(obj["holdout"]),
                assignment=tuple(tuple(int(x) for x in a) for a in obj["assignment"]),
                created=float(obj["created"]),
                digests=tuple(_digest(x) for x in obj.get("digests", [])),
                limits=_limits(obj.get("limits", {})),
                holdout_digest=_digest(obj["holdout_digest"]) if obj.get("holdout_digest") else "",
                sizes=tuple(_size(x) for x in obj.get("sizes", [])),
            )
            for name, have in (("digests", len(manifest.digests)), ("sizes", len(manifest.sizes) - 1)):
                if have > 0 and have != len(manifest.partitions):
                    raise ValueError(f"{name} do not match the {len(manifest.partitions)} partitions")
            return manifest
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
            raise ManifestError(f"Job manifest {key!r} is malformed: {err}") from None


LIMIT_NAMES = ("image_side", "instances", "partition_bytes", "update_elements", "workers")


def _body_digest(body: dict[str, Any]) -> str:
    return sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def _limits(value: object) -> dict[str, int]:
    if not isinstance(value, dict) or any(k not in LIMIT_NAMES for k in value):
        raise ValueError(f"limits must map some of {', '.join(LIMIT_NAMES)} to integers")
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 1 << 50:
            raise ValueError(f"limits[{k!r}] must be a positive integer, not {v!r}")
    return dict(value)


def _size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 50:
        raise ValueError(f"sizes must be byte counts, not {value!r}")
    return value


def _digest(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("digests must be 64 lowercase hex digits")
    return value


def sha256(data: bytes | bytearray | memoryview) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_partition_checked(store: Store, manifest: JobManifest, j: int) -> bytes:
    """Partition ``j``'s bytes, checked against the manifest's digest.

    Raises
    ------
    KofnError
        The bytes differ from what the trigger uploaded (a permanent failure: ``kofn
        train --resume`` re-uploads the partition from the source data).
    """
    key = partition_key(manifest.job, j)
    blob = store.get_bounded(key, manifest.sizes[j]) if manifest.sizes else store.get(key)
    if manifest.digests and sha256(blob) != manifest.digests[j]:
        raise KofnError(f"Partition {key!r} is damaged: its SHA-256 differs from the manifest's "
                        f"(kofn train --resume re-uploads it)")
    return blob


def read_partition_samples(store: Store, manifest: JobManifest, j: int) -> list[Any]:
    """Partition ``j`` decoded, checked against its digest and the manifest's limits."""
    from worker.data import read_partition

    return read_partition(read_partition_checked(store, manifest, j), limits=manifest.limits)


def read_holdout(store: Store, manifest: JobManifest) -> list[Any]:
    """The held-out split decoded, checked against its digest and the manifest's limits.

    Raises
    ------
    KofnError
        The bytes differ from what the trigger uploaded, or exceed the limits.
    """
    from worker.data import read_partition

    key = holdout_key(manifest.job)
    blob = store.get_bounded(key, manifest.sizes[-1]) if manifest.sizes else store.get(key)
    if manifest.holdout_digest and sha256(blob) != manifest.holdout_digest:
        raise KofnError(f"Held-out split {key!r} is damaged: its SHA-256 differs from the manifest's")
    return read_partition(blob, limits=manifest.limits)


def manifest_or_copy(cfg: RunConfig, store: Store, log: Callable[[str], None]) -> JobManifest:
    """The job's manifest; a damaged one is restored from the driver's copy in the runs dir.

    The driver keeps ``runs/<job>/manifest.json`` (it holds no key). The store's copy is
    the one workers read, so a flipped byte there would stop the job for good; the local
    copy, checked by its own SHA-256, puts it back.
    """
    from exchange.crypto import DecryptionError

    try:
        return read_manifest(store, cfg.job)
    except (ManifestError, DecryptionError) as err:
        if isinstance(err, ManifestError) and "no manifest" in str(err):
            raise
        why = " ".join(str(err).split()).rstrip(".")
        copy = Path(cfg.runs_dir) / cfg.job / "manifest.json"
        if not copy.is_file():
            raise ManifestError(f"{why}; no copy to restore it from at {copy}") from None
        manifest = JobManifest.from_bytes(copy.read_bytes(), key=str(copy))
        if manifest.job != cfg.job:
            raise ManifestError(f"{copy} names job {manifest.job!r}, not {cfg.job!r}") from None
        store.put(manifest_key(cfg.job), manifest.to_bytes())
        log(f"the job's manifest in the store was damaged ({why}); restored it from {copy}")
        return manifest


def keep_manifest_copy(cfg: RunConfig, manifest: JobManifest) -> None:
    """Write the driver's copy of the manifest to ``runs/<job>/manifest.json`` (atomically)."""
    out = Path(cfg.runs_dir) / cfg.job
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "manifest.json.tmp"
    tmp.write_bytes(manifest.to_bytes())
    tmp.replace(out / "manifest.json")


def read_manifest(store: Store, job: str) -> JobManifest:
    """Fetch and parse a job's manifest.

    Raises
    ------
    ManifestError
        No manifest (the job does not exist, or its trigger died before finishing the
        upload), or a malformed one.
    """
    key = manifest_key(job)
    try:
        data = store.get(key)
    except FileNotFoundError:
        raise ManifestError(f"Job {job!r} has no manifest {key!r} in the store.") from None
    manifest = JobManifest.from_bytes(data, key=key)
    if manifest.job != job:
        raise ManifestError(f"Job manifest {key!r} names job {manifest.job!r}, not {job!r}.")
    return manifest


def open_job_store(cfg: RunConfig, *, keyring: Any = None) -> Store:
    """Open ``cfg.store``, wrapped in an :class:`~exchange.crypto.EncryptedStore` if asked.

    Parameters
    ----------
    cfg : RunConfig
        The run's settings.
    keyring : exchange.crypto.Keyring, optional
        The key; loaded with :meth:`RunConfig.load_keyring` when not given.
    """
    from exchange.stores.url import open_store

    store = open_store(cfg.store)
    if not cfg.encrypt:
        return store
    from exchange.crypto import EncryptedStore

    return EncryptedStore(store, keyring if keyring is not None else cfg.load_keyring())


def assignments(cfg: RunConfig) -> tuple[tuple[int, ...], ...]:
    """The partitions each worker trains on, as the run's code assigns them (its own one;
    ``s + 1`` under gradient coding)."""
    code = cfg.code_spec()
    return tuple(tuple(code.partitions(i)) for i in range(cfg.workers))


def load_samples(cfg: RunConfig) -> list[Any]:
    """The run's dataset as :class:`worker.data.Sample` objects.

    ``cfg.data`` is read with :class:`worker.data.PennFudanDataset`; without it,
    ``cfg.synth_images`` synthetic images are drawn in memory from ``cfg.seed``.
    """
    from worker.data import PennFudanDataset, Sample, synth_sample
    from worker.data.pennfudan import boxes_from_masks, masks_from_ids

    if cfg.data is not None:
        return list(PennFudanDataset(cfg.data).samples())
    out = []
    side = cfg.image_size
    for i in range(cfg.synth_images):
        image, ids = synth_sample(np.random.default_rng([cfg.seed, i]), side, side)
        masks = masks_from_ids(ids)
        boxes, keep = boxes_from_masks(masks)
        labels = np.ones(len(boxes), dtype=np.int64)  # PennFudan's one class, "person"
        out.append(Sample(image=image, masks=masks[keep], boxes=boxes, labels=labels, image_id=i))
    return out


def initial_state(cfg: RunConfig) -> dict[str, np.ndarray]:
    """The initial model state of ``cfg.model`` as numpy arrays: seeded, then ``cfg.weights``."""
    import torch

    from worker.models import build_model, state_to_numpy

    with torch.random.fork_rng(devices=[]):  # as worker.local_train.LocalTrainer seeds it
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, min_size=cfg.min_size, max_size=cfg.max_size,
                            weights_path=cfg.weights)
    return state_to_numpy(model)


def trigger(
    cfg: RunConfig,
    store: Store,
    *,
    samples: Sequence[Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> JobManifest:
    """Partition the data, upload partitions, holdout and initial model, then the manifest.

    Objects that already exist are kept (a re-run after a killed trigger finishes the
    upload without changing what workers may have read). Call
    :meth:`RunConfig.preflight` first: this function uploads.

    Parameters
    ----------
    cfg : RunConfig
        The run's settings; ``cfg.job`` must be set.
    store : Store
        The job's store (encrypting if the run asks for it).
    samples : sequence of Sample, optional
        The dataset; default :func:`load_samples`.
    log : callable, optional
        Receives one progress line per upload step.

    Returns
    -------
    JobManifest
    """
    if not cfg.job:
        raise ValueError("Argument 'cfg.job' must be set before triggering, not ''.")
    say = log or (lambda _msg: None)
    try:
        return read_manifest(store, cfg.job)
    except ManifestError as err:
        if "no manifest" not in str(err):
            raise
    if cfg.task is not None:  # a task brings its own data and model: only the manifest
        manifest = JobManifest(job=cfg.job, config=cfg, partitions=tuple(0 for _ in range(cfg.workers)),
                               holdout=0, assignment=assignments(cfg), created=time.time(),
                               limits={"workers": cfg.workers})
        store.put(manifest_key(cfg.job), manifest.to_bytes())
        say(f"task {cfg.task}: wrote the manifest under {cfg.job}/ (each worker loads its own data)")
        return manifest
    from worker.data import serialize_partition, split_indices, train_holdout_split

    if samples is None:
        say(f"loading {'data from ' + cfg.data if cfg.data else 'synthetic images'}")
    data = list(load_samples(cfg) if samples is None else samples)
    n = cfg.workers
    if len(data) < n + 1:
        from worker.config import ConfigError

        raise ConfigError(f"The data holds {len(data)} images, but {n} workers need at least {n + 1} "
                          f"(one partition each and a held-out split); use fewer workers or more data.")
    train, hold = train_holdout_split(len(data), cfg.holdout, cfg.seed)
    parts = split_indices(len(train), n, cfg.seed)
    digests, sizes = [], []
    for j, part in enumerate(parts):
        say(f"uploading partition {j + 1}/{n} ({len(part)} images)")
        blob = serialize_partition(data[int(train[i])] for i in part)
        digests.append(sha256(blob))
        sizes.append(len(blob))
        _put_verified(store, partition_key(cfg.job, j), blob)
    held = serialize_partition(data[int(i)] for i in hold)
    _put_verified(store, holdout_key(cfg.job), held)
    say(f"building the initial {cfg.model}" + (f" from {cfg.weights}" if cfg.weights else ""))
    state = initial_state(cfg)  # seeded: a re-run after a killed trigger builds the same model
    _put_once(store, checkpoint_key(cfg.job, 0), lambda: encode_state(state))
    say(f"uploaded {n} partitions ({len(train)} images), {len(hold)} held-out images and the "
        f"initial {cfg.model} under {cfg.job}/")
    manifest = JobManifest(job=cfg.job, config=cfg, partitions=tuple(len(p) for p in parts),
                           holdout=len(hold), assignment=assignments(cfg), created=time.time(),
                           digests=tuple(digests), holdout_digest=sha256(held),
                           sizes=(*sizes, len(held)), limits=data_limits(cfg, data, parts, train, hold, state))
    store.put(manifest_key(cfg.job), manifest.to_bytes())
    return manifest


def data_limits(cfg: RunConfig, data: Sequence[Any], parts: Sequence[np.ndarray], train: np.ndarray,
                hold: np.ndarray, state: dict[str, np.ndarray]) -> dict[str, int]:
    """The manifest's limits: the largest sizes this job really holds (what readers enforce)."""
    from worker.data import as_sample
    from worker.data.partition import decoded_bytes

    samples = [as_sample(s) for s in data]
    groups = [[samples[int(train[i])] for i in p] for p in parts] + [[samples[int(i)] for i in hold]]
    return {"image_side": max(max(s.image.shape[:2]) for s in samples),
            "instances": max(max(len(s.boxes) for s in samples), 1),
            "partition_bytes": max(max(decoded_bytes(g) for g in groups), 1),
            "update_elements": sum(int(np.asarray(v).size) for v in state.values()),
            "workers": cfg.workers}


def _put_verified(store: Store, key: str, blob: bytes) -> None:
    """Upload ``blob`` unless ``key`` already holds exactly it, then read it back.

    A re-run after a killed trigger keeps an object that is already right; one that is
    missing or differs (a half-written or damaged upload) is written again.
    """
    want = sha256(blob)
    try:
        if sha256(store.get(key)) == want:
            return
    except (FileNotFoundError, KofnError):  # missing, or fails to decrypt
        pass
    store.put(key, blob)
    if sha256(store.get(key)) != want:
        raise KofnError(f"Uploaded {key!r} but it reads back differently; the store is damaging objects")


def repair_partitions(cfg: RunConfig, store: Store, manifest: JobManifest, *,
                      samples: Sequence[Any] | None = None,
                      log: Callable[[str], None] | None = None) -> list[int]:
    """Re-upload every training partition that is missing or fails its digest.

    The partitions are rebuilt from the source data with the manifest's split (the same
    seed), so a repaired partition is byte-identical to the original. Returns the
    partitions repaired.
    """
    if not manifest.digests or manifest.config.task is not None:
        return []
    bad = []
    for j in range(len(manifest.partitions)):
        try:
            read_partition_checked(store, manifest, j)
        except (FileNotFoundError, KofnError):
            bad.append(j)
    if not bad:
        return []
    from worker.data import serialize_partition, split_indices, train_holdout_split

    cfg = manifest.config
    data = list(load_samples(cfg) if samples is None else samples)
    train, _hold = train_holdout_split(len(data), cfg.holdout, cfg.seed)
    parts = split_indices(len(train), cfg.workers, cfg.seed)
    for j in bad:
        blob = serialize_partition(data[int(train[i])] for i in parts[j])
        if sha256(blob) != manifest.digests[j]:
            raise KofnError(f"Cannot repair partition {j}: the source data no longer gives the "
                            f"bytes the job was started with")
        (log or (lambda _m: None))(f"re-uploading damaged partition {j} from the source data")
        _put_verified(store, partition_key(cfg.job, j), blob)
    return bad


def _put_once(store: Store, key: str, make: Callable[[], bytes]) -> None:
    if store.exists(key):
        return
    try:
        store.put(key, make(), if_absent=True)
    except FileExistsError:
        pass


def with_config(manifest: JobManifest, **changes: Any) -> JobManifest:
    """A copy of ``manifest`` with its config's settings replaced."""
    return dataclasses.replace(manifest, config=manifest.config.with_overrides(**changes))
