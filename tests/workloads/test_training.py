"""Training workloads: seeded data, state bytes, and torch/JAX loops that agree."""

from __future__ import annotations

import numpy as np
import pytest

from vcompute.workloads.training import (
    StateFormatError,
    TrainSpec,
    augment,
    backend,
    batch_indices,
    dataset_of,
    decode_state,
    derive_seeds,
    encode_state,
    flat_params,
    init_state,
    make_training_job,
    synthetic,
)

SMALL = dict(dataset="synthetic", steps=8, checkpoint_every=2, hidden=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_batch_order_is_seeded_and_epochs_are_permutations():
    a = [batch_indices(s, n=20, batch_size=5, data_seed=3) for s in range(4)]
    b = [batch_indices(s, n=20, batch_size=5, data_seed=3) for s in range(4)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert sorted(np.concatenate(a).tolist()) == list(range(20))  # one epoch covers every example once
    assert not np.array_equal(batch_indices(0, n=20, batch_size=5, data_seed=4), a[0])


def test_augmentation_is_a_function_of_seed_and_step():
    x = np.zeros((3, 64), np.float32)
    assert np.array_equal(augment(x, 5, aug_seed=1, noise=0.1), augment(x, 5, aug_seed=1, noise=0.1))
    assert not np.array_equal(augment(x, 5, aug_seed=1, noise=0.1), augment(x, 6, aug_seed=1, noise=0.1))
    assert augment(x, 5, aug_seed=1, noise=0.0) is x


def test_digits_and_synthetic_datasets():
    d = dataset_of(make_training_job(dataset="digits", steps=2, checkpoint_every=2))
    assert d.x.shape == (1797, 64) and d.x.max() <= 1.0 and set(np.unique(d.y)) == set(range(10))
    s1, s2 = synthetic(64, seed=1), synthetic(64, seed=1)
    assert s1.hash == s2.hash and s1.hash != synthetic(64, seed=2).hash


def test_state_bytes_round_trip_and_reject_garbage():
    spec = TrainSpec(**SMALL)
    st = init_state(spec, 7)
    step, back = decode_state(encode_state(4, st))
    assert step == 4 and list(back) == list(st) and all(np.array_equal(back[k], st[k]) for k in st)
    blob = encode_state(4, st)
    for bad in (blob[:-3], blob + b"x", b"nonsense", blob[:20]):
        with pytest.raises(StateFormatError):
            decode_state(bad)


def test_spec_validation_says_what_is_wrong():
    with pytest.raises(ValueError, match="multiple of checkpoint_every"):
        TrainSpec(steps=10, checkpoint_every=3)
    with pytest.raises(ValueError, match="unknown model"):
        TrainSpec(model="resnet")
    with pytest.raises(ValueError, match="unknown training hyperparameters"):
        TrainSpec.from_dict({"nope": 1})


def test_seeds_bind_job_and_provider():
    assert derive_seeds("job", "a") == derive_seeds("job", "a")
    assert derive_seeds("job", "a") != derive_seeds("job", "b")
    assert derive_seeds("job", "a") != derive_seeds("job2", "a")


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_torch_and_jax_train_the_same_model(model):
    spec = TrainSpec(model=model, **SMALL)
    data = dataset_of(make_training_job(spec))
    st = init_state(spec, 1)
    out = {fw: backend(fw).run_steps(spec, st, 0, 6, data, data_seed=2, aug_seed=3) for fw in ("torch", "jax")}
    moved = np.linalg.norm(flat_params(out["torch"]) - flat_params(st))
    assert moved > 1e-3  # training actually changes the weights
    assert np.linalg.norm(flat_params(out["torch"]) - flat_params(out["jax"])) < 1e-4 * moved


@pytest.mark.parametrize("fw", ["torch", "jax"])
def test_segmented_training_is_bit_exact(fw):
    spec = TrainSpec(framework=fw, **SMALL)
    data = dataset_of(make_training_job(spec))
    run = backend(fw).run_steps
    st = init_state(spec, 1)
    whole = run(spec, st, 0, 6, data, data_seed=2, aug_seed=3)
    parts = run(spec, run(spec, st, 0, 2, data, data_seed=2, aug_seed=3), 2, 4, data, data_seed=2, aug_seed=3)
    assert all(np.array_equal(whole[k], parts[k]) for k in whole)
