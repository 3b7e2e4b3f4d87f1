"""Per-aggregator keys of a secure job: each worker holds only its own private key.

In ``secure`` mode each contribution share is sealed to its aggregator
(:class:`exchange.share_keys.SealedShareStore`), so the job's shared AES key (which every
worker holds) opens no other aggregator's shares. The driver, trusted like the trigger,
makes the key pairs once per job, keeps them under ``{runs_dir}/{job}/keys/`` (mode 0600)
for ``--resume``, and hands worker ``w`` the file ``aggregator-{w}.json`` holding every
public key and private key ``w`` alone. Public keys travel with the private one, never
through the store, so a worker that can write the store cannot redirect shares to itself
by swapping public keys. See docs/security.md for the threat model.
"""

from __future__ import annotations

import os
from pathlib import Path

from exchange.errors import KeyFileError
from exchange.share_keys import AggregatorKeys, SealedShareStore
from exchange.stores.base import Store

__all__ = ["aggregator_key_files", "sealed_store"]


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def aggregator_key_files(directory: str | os.PathLike[str], n: int) -> list[Path]:
    """Worker ``w``'s key file for each ``w < n``: made on the first call, reused after."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    full = directory / "aggregators.json"
    if full.exists():
        keys = AggregatorKeys.from_json(full.read_text(), source=str(full))
        if keys.n != n or keys.held != tuple(range(n)):
            raise KeyFileError(f"Cannot use {full}: it holds keys for {keys.n} aggregators, "
                               f"the job has {n}")
    else:
        keys = AggregatorKeys.generate(n)
        _write_secret(full, keys.to_json())
    paths = []
    for w in range(n):
        path = directory / f"aggregator-{w}.json"
        if not path.exists():
            _write_secret(path, keys.only(w).to_json())
        paths.append(path)
    return paths


def sealed_store(store: Store, path: str | os.PathLike[str], worker: int) -> SealedShareStore:
    """``store`` with shares sealed per aggregator, opened with worker ``worker``'s key file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise KeyFileError(f"Cannot read aggregator key file {path}: {err.strerror or err}") from None
    keys = AggregatorKeys.from_json(text, source=str(path))
    if keys.held != (worker,):
        raise KeyFileError(f"Aggregator key file {path} holds the private keys of {list(keys.held)}, "
                           f"not of worker {worker} alone")
    return SealedShareStore(store, keys)
