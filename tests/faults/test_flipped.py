"""A flipped byte in every object kind, plain and encrypted: an erasure, a rebuild, or one line.

Contributions and merged shards are erasures the code decodes around. A data partition
fails its manifest digest (plain) or AES-GCM (encrypted), and ``--resume`` re-uploads it.
A checkpoint fails its own SHA-256 or AES-GCM and is rebuilt from the previous round's
model plus the round's merged shards; once its round is no longer kept the job stops with
one line. A manifest fails its own SHA-256 or AES-GCM and ``--resume`` restores it from
the driver's copy in the runs dir; without that copy the job stops with one line.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from exchange.codespec import CodeSpec
from exchange.crypto import EncryptedStore, Keyring, new_key, write_key_file
from exchange.round import Exchange, RoundConfig
from exchange.stores.local import LocalStore
from tests.faults.table import record

N = 4


def _flip(root: Path, key: str, pos: int | None = None, length: int | None = None) -> None:
    """Flip one bit of the object stored under ``key``: byte ``pos``, or the middle one of
    the ``length`` bytes from ``pos`` (a share's part of its worker's object)."""
    path = root.joinpath(*key.split("/"))
    data = bytearray(path.read_bytes())
    if length is not None:
        pos = (pos or 0) + length // 2
    data[len(data) // 2 if pos is None else pos] ^= 0x10
    path.write_bytes(bytes(data))


def _store(root: Path, encrypted: bool):
    raw = LocalStore(root)
    return EncryptedStore(raw, Keyring([new_key()])) if encrypted else raw


def _updates() -> np.ndarray:
    return np.random.default_rng(31).normal(size=(N, 257))


def _round(store, kind: str, flip_root: Path | None) -> tuple[np.ndarray, tuple[int, ...], list[str]]:
    cfg = RoundConfig(job="flip", code=CodeSpec("mds", N, k=2), deadline_s=30.0, takeover_after_s=0.05)
    ups = _updates()
    with Exchange(store, cfg) as ex:
        for w in range(N):
            ex.publish(0, w, ups[w])
        rp = ex.round_prefix(0)
        if flip_root is not None and kind == "contribution":
            key, _, offset, length = ex.share_location(0, 1, 2)  # worker 2's share for 1
            _flip(flip_root, key, offset, length)
        seen = []
        for j in range(N):
            try:
                ex.aggregate(0, j)
            except Exception as err:  # the aggregator whose input is damaged: an erasure
                assert kind == "contribution" and j == 1
                seen.append(f"round 0 worker 1: own aggregation failed: {err}")
        if flip_root is not None and kind == "merged shard":
            _flip(flip_root, f"{rp}merged/1")
        res = ex.collect(0)
    return np.asarray(res.total), res.aggregators, seen


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
@pytest.mark.parametrize("kind", ["contribution", "merged shard"])
def test_a_flipped_shard_is_an_erasure(tmp_path, kind, encrypted, caplog):
    clean, _, _ = _round(_store(tmp_path / "clean", encrypted), kind, None)
    with caplog.at_level(logging.WARNING):
        total, aggregators, seen = _round(_store(tmp_path / "bad", encrypted), kind, tmp_path / "bad")
    warnings = seen + [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings, "the erasure is reported"
    np.testing.assert_allclose(total, clean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(total, _updates().sum(0), rtol=1e-12, atol=1e-12)
    if kind == "contribution":
        assert 1 not in aggregators
    how = "fails AES-GCM" if encrypted else "fails its CRC-32"
    record(f"a flipped byte in a {kind} ({'encrypted' if encrypted else 'plain'})",
           f"the object {how}, so it is an erasure: "
           + ("aggregator 1 is dropped and the round decodes from the other 3"
              if kind == "contribution" else "the round decodes from the other merged shards"),
           0, "none", re.sub(r"\.[0-9a-f]{16}'", ".<attempt>'", warnings[0]))


# -- job objects: partitions, checkpoints, manifests ------------------------------------------

pytest.importorskip("torch")

from coding.errors import KofnError  # noqa: E402
from worker.checkpoints import CheckpointError, decode_state  # noqa: E402
from worker.commands.train import run_job  # noqa: E402
from worker.config import RunConfig  # noqa: E402
from worker.trigger import (  # noqa: E402
    ManifestError,
    checkpoint_key,
    manifest_key,
    partition_key,
    read_manifest,
    read_partition_checked,
    repair_partitions,
    sha256,
    trigger,
)

ROUNDS = 2


def _cfg(tmp_path: Path, encrypted: bool, job: str) -> RunConfig:
    key = write_key_file(tmp_path / "kofn.key", Keyring([new_key()])) if encrypted else None
    return RunConfig(job=job, store=f"file://{tmp_path / 'store'}", workers=3, rounds=ROUNDS,
                     mode="plain", model="small_cnn", min_size=64, max_size=64, image_size=64,
                     synth_images=12, local_iters=1, batch_size=2, encrypt=encrypted,
                     key_file=str(key) if key else None, evaluate=False, grace=0.3,
                     round_timeout=300.0, runs_dir=str(tmp_path / "runs"))


def _job_store(cfg: RunConfig):
    raw = LocalStore(Path(cfg.store.removeprefix("file://")))
    return EncryptedStore(raw, cfg.load_keyring()) if cfg.encrypt else raw


def test_a_flipped_plain_partition_fails_its_digest_and_is_repaired(tmp_path):
    cfg = _cfg(tmp_path, False, "part")
    store = _job_store(cfg)
    manifest = trigger(cfg, store)
    _flip(tmp_path / "store", partition_key("part", 1))
    with pytest.raises(KofnError) as err:
        read_partition_checked(store, manifest, 1)
    assert str(err.value) == ("Partition 'part/data/part-0001.kpt' is damaged: its SHA-256 differs from "
                              "the manifest's (kofn train --resume re-uploads it)")
    assert repair_partitions(cfg, store, manifest) == [1]
    assert sha256(store.get(partition_key("part", 1))) == manifest.digests[1]
    record("a flipped byte in a plain data partition",
           "its SHA-256 differs from the manifest's: the worker exits 2 (permanent) and the "
           "driver stops the job; --resume re-uploads it from the source data",
           "job stopped (no round timeout waited)", "none", str(err.value))


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_flipped_checkpoints_and_manifest_are_rebuilt_or_fail_in_one_line(tmp_path, encrypted, caplog):
    job = "enc" if encrypted else "plain"
    cfg = _cfg(tmp_path, encrypted, job)
    root = tmp_path / "store"
    run_job(cfg, live=False, log=lambda _m: None)  # the fault-free run
    store = _job_store(cfg)
    final = decode_state(store.get(checkpoint_key(job, ROUNDS)))
    report = tmp_path / "runs" / job / "report.md"
    kind = "encrypted" if encrypted else "plain"

    # the manifest and the last two checkpoints flipped: --resume restores the manifest from
    # the driver's copy, rebuilds round 1 from round 0 plus round 1's merged shards, then
    # round 2 from round 1, and the final model is the fault-free one, bit for bit
    for key in (manifest_key(job), checkpoint_key(job, ROUNDS), checkpoint_key(job, ROUNDS - 1)):
        _flip(root, key)
    report.unlink()
    lines: list[str] = []
    with caplog.at_level(logging.WARNING, logger="kofn.worker"):
        result = run_job(cfg, resume=True, live=False, log=lines.append)
    assert set(result.final_state) == set(final)
    for name in final:
        assert np.array_equal(result.final_state[name], final[name]), name
    restored = [m for m in lines if m.startswith("the job's manifest in the store was damaged")]
    assert len(restored) == 1, lines
    rebuilt = [r.getMessage() for r in caplog.records if "wrote it back" in r.getMessage()]
    assert len(rebuilt) == 2, rebuilt
    for key in (checkpoint_key(job, ROUNDS), checkpoint_key(job, ROUNDS - 1)):
        decode_state(store.get(key), key=key)  # written back whole
    read_manifest(store, job)
    record(f"a flipped byte in a checkpoint ({kind}; the last two rounds')",
           "the checkpoint fails " + ("AES-GCM" if encrypted else "its own SHA-256")
           + ": it is rebuilt from the previous round's model plus the round's merged shards "
           "and written back; the final model equals the fault-free run's bit for bit",
           0, "none", rebuilt[0].replace(str(tmp_path), "."))
    record(f"a flipped byte in the job manifest ({kind})",
           "the manifest fails " + ("AES-GCM" if encrypted else "its own SHA-256")
           + "; kofn train --resume restores it from the driver's copy (runs/JOB/manifest.json) "
           "and the job goes on", 0, "none", restored[0].replace(str(tmp_path), "."))

    # once a round's shards are deleted (keep_rounds), its checkpoint cannot be rebuilt
    for key in (checkpoint_key(job, ROUNDS), checkpoint_key(job, ROUNDS - 1)):
        _flip(root, key)
    LocalStore(root).delete(LocalStore(root).list(f"{job}/exchange/r{ROUNDS - 1:08d}/"))
    LocalStore(root).delete([f"{job}/exchange/complete/r{ROUNDS - 1:08d}"])
    report.unlink()
    with pytest.raises(CheckpointError) as err:
        run_job(cfg, resume=True, live=False, log=lambda _m: None)
    message = str(err.value)
    assert "\n" not in message and f"round {ROUNDS - 1}'s shards are no longer kept" in message, message
    record(f"a flipped byte in a checkpoint whose round is no longer kept ({kind})",
           "the job stops with one line naming the checkpoint (the store still holds every "
           "intact object)", "job stopped", "none (the damaged model is refused, never used)",
           message)

    # a damaged manifest without the driver's copy: one line
    _flip(root, manifest_key(job))
    (tmp_path / "runs" / job / "manifest.json").unlink()
    with pytest.raises(ManifestError) as err:
        run_job(cfg, resume=True, live=False, log=lambda _m: None)
    message = str(err.value)
    assert "\n" not in message and "no copy to restore it from" in message, message
    assert ("Cannot decrypt" if encrypted else "SHA-256 differs") in message, message
    record(f"a flipped byte in the job manifest, without the driver's copy ({kind})",
           "the job stops with one line naming the manifest", "job stopped", "none",
           message.replace(str(tmp_path), "."))
