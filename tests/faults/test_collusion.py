"""T-privacy end to end: the store's operator plus T colluding aggregators learn nothing.

The colluders hold their own X25519 private keys, the job's shared AES key and full read
access to the store (the raw objects under every key). Each contribution share is sealed
to its aggregator alone (:class:`exchange.share_keys.SealedShareStore`), so what they can open
of a victim's contribution is their own T shares, which the chi-squared independence test
finds independent of the victim's update; T + 1 = k + T colluders (k = 1) decode it.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

import numpy as np
import pytest

from coding.privacy import independence_test
from exchange.crypto import EncryptedStore, Keyring, new_key
from exchange.errors import DecryptionError
from exchange.reduce import CodeSpec, decode_aggregate
from exchange.round import Exchange, RoundConfig
from exchange.shards import unpack_shard
from exchange.share_keys import AggregatorKeys, SealedShareStore
from exchange.stores.local import LocalStore
from tests.faults.table import record

# a small field so the colluders' joint view has few cells: one 2-bit limb, p = 13
SPEC = CodeSpec("secure", 4, k=1, t=2, p=13, frac_bits=0, int_bits=1, limb_bits=2)
VICTIM = 3


@pytest.fixture
def job(tmp_path):
    raw = LocalStore(tmp_path / "store")
    ring = Keyring([new_key()])
    keys = AggregatorKeys.generate(SPEC.n)
    stores = {w: SealedShareStore(EncryptedStore(raw, ring), keys.only(w)) for w in range(SPEC.n)}
    cfg = RoundConfig(job="j", code=SPEC, deadline_s=30.0, poll_max_s=0.02, takeover_after_s=0.05)
    return raw, ring, keys, stores, cfg


def _colluder_view(raw, ring, keys, colluders, r, cfg):
    """What the colluders can open of the victim's round-r shares: {j: share} for their j.

    They hold the job's AES key and their own private keys, so they read the victim's done
    marker and every part of its shares' object, and try to open each one.
    """
    mine = SealedShareStore(EncryptedStore(raw, ring), keys.only(*colluders))
    opened = {}
    with Exchange(mine, cfg) as ex:
        for j in range(SPEC.n):
            key, name, offset, length = ex.share_location(r, j, VICTIM)
            try:
                opened[j] = unpack_shard(mine.get_part(key, name, offset, length), key=name).payload
            except DecryptionError:
                assert j not in colluders
    assert sorted(opened) == sorted(colluders)
    return opened


def _sampler(job, colluders):
    raw, ring, keys, stores, cfg = job
    counter = itertools.count()

    def views(secret, rng, draws):
        r = next(counter)  # a fresh round per batch of draws
        with Exchange(stores[VICTIM], cfg) as ex:
            ex.publish(r, VICTIM, np.full(draws, secret), rng=rng)
        opened = _colluder_view(raw, ring, keys, colluders, r, cfg)
        return np.stack([opened[j] for j in colluders]).T

    return views


def test_t_colluders_see_shares_independent_of_the_update(job):
    for colluders in itertools.combinations(range(SPEC.n), SPEC.t):
        res = independence_test(_sampler(job, colluders), -1.0, 1.0, p=SPEC.p, draws=2000,
                                rng=np.random.default_rng(list(colluders)))
        assert res.passed, (colluders, res)
    record("T = 2 colluding aggregators + store operator read every share",
           "each share sealed to its aggregator: colluders open only their own 2, "
           "independent of the update (chi-squared test passes)", 0, "none (nothing leaks)",
           "Cannot decrypt object 'kofn/j/r00000000/contrib/0/3.<attempt>': sealed to aggregator 0, "
           "whose private key this party does not hold")


def test_t_plus_one_colluders_decode(job):
    colluders = (0, 1, 2)  # k + t = 3
    views = _sampler(job, colluders)
    secret = np.random.default_rng(4).choice([-1.0, 1.0], size=200)
    raw, ring, keys, stores, cfg = job
    with Exchange(stores[VICTIM], cfg) as ex:
        ex.publish(50, VICTIM, secret)
    opened = _colluder_view(raw, ring, keys, colluders, 50, cfg)
    got = decode_aggregate([opened[j] for j in colluders], list(colluders), SPEC,
                           length=secret.size, n_terms=1)
    np.testing.assert_array_equal(got, secret)
    leak = independence_test(views, -1.0, 1.0, p=SPEC.p, draws=2000, rng=np.random.default_rng(9))
    assert not leak.passed


def test_one_worker_cannot_open_another_aggregators_share(job):
    """The attack of the issue: one worker (AES key + its own key) reads a victim's shares."""
    raw, ring, keys, stores, cfg = job
    with Exchange(stores[VICTIM], cfg) as ex:
        ex.publish(0, VICTIM, np.ones(8))
    with Exchange(stores[0], cfg) as ex:
        where = [ex.share_location(0, j, VICTIM) for j in range(SPEC.n)]
    for j, (key, name, offset, length) in enumerate(where):
        if j == 0:
            stores[0].get_part(key, name, offset, length)
        else:
            with pytest.raises(DecryptionError, match="does not hold"):
                stores[0].get_part(key, name, offset, length)
    with pytest.raises(DecryptionError):  # nor the whole object at once
        stores[0].get(where[0][0])


def _round(stores, cfg, updates, skip_aggregation=()):
    out, errors = {}, {}

    def go(w):
        try:
            with Exchange(stores[w], cfg) as ex:
                ex.publish(0, w, updates[w], rng=np.random.default_rng(w))
                if w not in skip_aggregation:
                    ex.aggregate(0, w)
                out[w] = ex.collect(0)
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors[w] = err

    threads = [threading.Thread(target=go, args=(w,)) for w in range(len(updates))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errors


def test_sealed_round_equals_unsealed_and_takeover_is_an_erasure(job, tmp_path):
    raw, ring, keys, stores, cfg = job
    cfg = dataclasses.replace(cfg, code=CodeSpec("secure", 4, k=1, t=2))  # the default field
    updates = np.random.default_rng(1).normal(size=(SPEC.n, 50))
    plain = {w: LocalStore(tmp_path / "plain") for w in range(SPEC.n)}
    ref, errors = _round(plain, cfg, updates)
    assert not errors
    # aggregator 3 never aggregates; nobody else holds its key, so nobody can take it
    # over, and the round decodes from the other k + t = 3 merged shards
    got, errors = _round(stores, cfg, updates, skip_aggregation={3})
    assert not errors, errors
    for w in range(SPEC.n):
        np.testing.assert_array_equal(got[w].total, ref[w].total)
        assert 3 not in got[w].aggregators
