"""Local SGD on a worker: loss falls, deltas are reproducible, per-partition deltas."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from worker.data import (  # noqa: E402
    PennFudanDataset,
    deserialize_partition,
    serialize_partition,
    write_synthetic,
)
from worker.evaluate import mean_loss  # noqa: E402
from worker.local_train import LocalTrainer, NonFiniteLossError  # noqa: E402
from worker.models import load_numpy_state, state_to_numpy  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("lt")
    write_synthetic(root, 8, (96, 96), seed=0)
    return PennFudanDataset(root).samples()


@pytest.fixture(scope="module")
def trainer():
    return LocalTrainer("small_cnn", lr=0.02, momentum=0.9, local_iters=3, batch_size=2, seed=0,
                        min_size=96, max_size=96)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_local_training_lowers_the_loss(samples):
    trainer = LocalTrainer("small_cnn", lr=0.02, momentum=0.9, local_iters=15, batch_size=2,
                           seed=0, min_size=96, max_size=96)
    weights = trainer.initial_weights()
    load_numpy_state(trainer.model, weights)
    before = mean_loss(trainer.model, samples)
    result = trainer.train(weights, samples)
    load_numpy_state(trainer.model, {k: weights[k] + result.delta[k] for k in weights})
    after = mean_loss(trainer.model, samples)
    assert after < 0.95 * before
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert len(result.losses) == 15 and result.n_samples == 8
    assert result.mean_loss == pytest.approx(np.mean(result.losses))


def test_delta_is_reproducible_and_covers_batchnorm(trainer, samples):
    weights = trainer.initial_weights()
    snapshot = {k: v.copy() for k, v in weights.items()}
    a = trainer.train(weights, samples)
    b = trainer.train(weights, samples)
    assert _equal(a.delta, b.delta) and a.losses == b.losses
    assert _equal(weights, snapshot)  # the caller's weights are not modified
    assert list(a.delta) == list(weights)
    assert all(a.delta[k].dtype == weights[k].dtype and a.delta[k].shape == weights[k].shape
               for k in weights)
    running = [k for k in a.delta if k.endswith("running_mean")]
    assert running and all(np.any(a.delta[k] != 0) for k in running)
    # A fresh trainer with the same seed gives the same initial weights and delta.
    again = LocalTrainer("small_cnn", lr=0.02, momentum=0.9, local_iters=3, batch_size=2, seed=0,
                         min_size=96, max_size=96)
    assert _equal(again.initial_weights(), weights)
    assert _equal(again.train(weights, samples).delta, a.delta)


def test_seed_round_and_partition_change_the_batches(trainer, samples):
    weights = trainer.initial_weights()
    base = trainer.train(weights, samples).delta
    assert not _equal(trainer.train(weights, samples, round_index=1).delta, base)
    assert not _equal(trainer.train(weights, samples, partition=1).delta, base)


def test_train_accepts_blobs_and_pairs(trainer, samples):
    weights = trainer.initial_weights()
    from_samples = trainer.train(weights, samples[:4]).delta
    pairs = deserialize_partition(serialize_partition(samples[:4]))
    assert _equal(trainer.train(weights, pairs).delta, from_samples)


def test_partition_deltas_match_single_partition_training(trainer, samples):
    weights = trainer.initial_weights()
    parts = [samples[:3], samples[3:6], samples[6:]]
    results = trainer.partition_deltas(weights, parts, round_index=2, partition_ids=[4, 0, 7])
    assert len(results) == 3
    single = trainer.train(weights, parts[2], round_index=2, partition=7)
    assert _equal(results[2].delta, single.delta)
    assert results[2].n_samples == 2
    with pytest.raises(ValueError, match="Argument 'partition_ids'"):
        trainer.partition_deltas(weights, parts, partition_ids=[0])


def test_training_leaves_global_rng_alone(trainer, samples):
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    trainer.train(trainer.initial_weights(), samples[:2])
    assert torch.equal(torch.rand(3), expected)


def test_nan_weights_raise_non_finite_loss(trainer, samples):
    weights = trainer.initial_weights()
    key = next(k for k in weights if k.startswith("roi_heads.box_predictor.cls_score.weight"))
    weights[key] = np.full_like(weights[key], np.nan)
    with pytest.raises(NonFiniteLossError, match="diverged"):
        trainer.train(weights, samples[:2])


@pytest.mark.parametrize("kwargs", [
    {"lr": 0.0}, {"momentum": 1.0}, {"weight_decay": -1.0}, {"local_iters": 0},
    {"batch_size": 0}, {"seed": -1}, {"clip_norm": 0.0},
])
def test_trainer_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="Argument"):
        LocalTrainer("small_cnn", **kwargs)


def test_train_rejects_bad_inputs(trainer, samples):
    with pytest.raises(ValueError, match="at least 1 sample"):
        trainer.train(trainer.initial_weights(), [])
    with pytest.raises(ValueError, match="Argument 'round_index'"):
        trainer.train(trainer.initial_weights(), samples, round_index=-1)
    with pytest.raises(TypeError, match="Expected a Sample"):
        trainer.train(trainer.initial_weights(), [3])
    bad = state_to_numpy(trainer.model)
    bad.pop(next(iter(bad)))
    with pytest.raises(ValueError, match="missing"):
        trainer.train(bad, samples)


def test_bad_device_is_rejected():
    with pytest.raises(ValueError, match="Argument 'device'"):
        LocalTrainer("small_cnn", device="gpu9")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_matches_its_own_rerun_and_returns_numpy(samples):
    from worker.evaluate import evaluate

    trainer = LocalTrainer("small_cnn", lr=0.02, local_iters=3, seed=0, min_size=96,
                           max_size=96, device="cuda")
    weights = trainer.initial_weights()
    a = trainer.train(weights, samples)
    b = trainer.train(weights, samples)
    assert all(isinstance(v, np.ndarray) for v in a.delta.values())
    assert a.losses == b.losses
    assert all(np.allclose(a.delta[k], b.delta[k], atol=1e-6) for k in a.delta)
    result = evaluate(trainer.model, samples[:2])
    assert 0.0 <= result.bbox_ap <= 1.0


def test_on_step_reports_every_step_with_its_loss(trainer, samples):
    seen = []
    res = trainer.train(trainer.initial_weights(), samples,
                        on_step=lambda i, n, loss: seen.append((i, n, loss)))
    assert [(i, n) for i, n, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert tuple(loss for *_, loss in seen) == res.losses
