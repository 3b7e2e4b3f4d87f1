"""A secure ``kofn train`` job seals every share to its aggregator, end to end.

The attack of the issue, on a real job: a fellow worker holds the job's AES key and can
read every object in the store. In a secure job each worker process gets only its own
aggregator key file (:mod:`worker.sealing`), so with the AES key alone every share it
does not aggregate is an opaque sealed blob, and its own key opens exactly its own.
"""

from __future__ import annotations

import re
import stat

import pytest

pytest.importorskip("torch")

from exchange.crypto import (  # noqa: E402
    EncryptedStore,
    Keyring,
    new_key,
    write_key_file,
)
from exchange.errors import NotKeyHolderError  # noqa: E402
from exchange.round_reads import share_parts  # noqa: E402
from exchange.share_keys import SEAL_MAGIC, share_aggregator  # noqa: E402
from exchange.stores.local import LocalStore  # noqa: E402
from tests.faults.table import record  # noqa: E402
from worker.commands.train import run_job  # noqa: E402
from worker.config import RunConfig  # noqa: E402
from worker.sealing import sealed_store  # noqa: E402


def test_secure_job_shares_open_only_for_their_aggregator(tmp_path):
    key = write_key_file(tmp_path / "kofn.key", Keyring([new_key()]))
    cfg = RunConfig(job="sec", store=f"file://{tmp_path / 'store'}", workers=3, rounds=2, mode="secure",
                    k=2, t=1, model="small_cnn", min_size=64, max_size=64, image_size=64,
                    synth_images=12, local_iters=1, batch_size=2, encrypt=True, key_file=str(key),
                    evaluate=False, grace=0.3, round_timeout=300.0, runs_dir=str(tmp_path / "runs"))
    result = run_job(cfg, log=lambda _line: None, live=False)
    assert result.report is not None
    keys_dir = tmp_path / "runs" / "sec" / "keys"
    for path in keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    aes_only = EncryptedStore(LocalStore(tmp_path / "store"), cfg.load_keyring())
    dones = [k for k in aes_only.list("sec/") if re.search(r"/r\d{8}/done/\d+$", k)]
    parts = [part for k in dones
             for part in share_parts(aes_only, k.rsplit("done/", 1)[0], int(k.rsplit("/", 1)[1]))]
    assert len(parts) >= 2 * 3 * 3  # the last two rounds are kept: 3 workers x 3 shares each
    for key, name, offset, length in parts:  # what a fellow worker with the AES key sees
        assert aes_only.get_part(key, name, offset, length)[:4] == SEAL_MAGIC
    worker0 = sealed_store(aes_only, keys_dir / "aggregator-0.json", 0)
    for key, name, offset, length in parts:
        if share_aggregator(name) == 0:
            assert worker0.get_part(key, name, offset, length)[:8] == b"KOFNSHRD"
        else:
            with pytest.raises(NotKeyHolderError):
                worker0.get_part(key, name, offset, length)
    record("a fellow worker (holding the job's AES key) reads another worker's shares in a "
           "secure kofn train job",
           "each worker process holds only its own aggregator key; every other share is sealed",
           0, "none (nothing leaks)",
           "Cannot decrypt object '.../contrib/1/2.<attempt>': sealed to aggregator 1, whose "
           "private key this party does not hold")


def test_a_secure_lambda_job_is_refused_unless_unsealed_shares_are_accepted():
    from worker.config import ConfigError, RunConfig

    cfg = RunConfig(launcher="lambda", mode="secure", workers=4, model="small_cnn", encrypt=False,
                    store="s3://bucket/jobs")
    with pytest.raises(ConfigError) as err:
        cfg.preflight()
    assert "\n" not in str(err.value) and "--unsealed-shares" in str(err.value)
    cfg.with_overrides(unsealed_shares=True).preflight()  # the user accepted store-only privacy
    RunConfig(launcher="lambda", mode="mds", workers=4, model="small_cnn", encrypt=False,
              store="s3://bucket/jobs").preflight()  # not T-private: nothing to seal
    record("a secure job on the Lambda launcher (which cannot hand out per-aggregator keys yet)",
           "refused before anything is uploaded, unless --unsealed-shares accepts privacy "
           "against the store only", "job not started", "none", str(err.value))
