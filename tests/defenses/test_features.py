"""Feature spaces: shapes, determinism, records, errors."""

from __future__ import annotations

import numpy as np
import pytest

from poisonlab.data import load_dataset
from poisonlab.defenses.features import FEATURE_KINDS, compute_features
from poisonlab.errors import PoisonlabError
from poisonlab.training import TrainConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").subset(300, 50, seed=0)


def test_pixels_are_flat_and_scaled(digits):
    X, info = compute_features("pixels", digits.x_train, digits.y_train)
    assert X.shape == (300, 256) and X.dtype == np.float32
    assert 0 <= X.min() and X.max() <= 1
    assert np.allclose(X[7], digits.x_train[7].reshape(-1) / 255.0)
    assert info["features"] == "pixels" and info["dim"] == 256 and info["seconds"] >= 0


def test_pca_is_seeded_and_capped(digits):
    a, info = compute_features("pca", digits.x_train, digits.y_train, seed=1, n_components=20)
    b, _ = compute_features("pca", digits.x_train, digits.y_train, seed=1, n_components=20)
    assert a.shape == (300, 20) and np.array_equal(a, b)
    assert 0 < info["explained_variance"] <= 1
    small, info = compute_features("pca", digits.x_train[:5], digits.y_train[:5], n_components=50)
    assert small.shape[1] == info["n_components"] == 5


def test_activations_train_a_model_and_record_it(digits):
    config = TrainConfig(epochs=1, seed=3, batch_size=64)
    X, info = compute_features("activations", digits.x_train, digits.y_train, num_classes=10, train_config=config)
    assert X.shape == (300, 128) and X.dtype == np.float32 and np.isfinite(X).all()
    assert X.min() >= 0  # penultimate ReLU
    assert info["trained_here"] is True and info["model_seed"] == 3 and info["train_config"]["epochs"] == 1
    assert info["model"]["params"] > 0
    again, _ = compute_features("activations", digits.x_train, digits.y_train, num_classes=10, train_config=config)
    assert np.array_equal(X, again)  # same seed, same features


def test_activations_of_a_given_model_skip_training(digits):
    from poisonlab.training import extract_features, train

    model = train(digits.x_train, digits.y_train, num_classes=10, config=TrainConfig(epochs=1, seed=0),
                  progress=False).model
    X, info = compute_features("activations", digits.x_train, digits.y_train, model=model)
    assert info["trained_here"] is False and "train_seconds" not in info
    assert np.array_equal(X, extract_features(model, digits.x_train))


@pytest.mark.parametrize("kind", FEATURE_KINDS)
def test_bad_input(kind, digits):
    with pytest.raises(PoisonlabError, match="labels"):
        compute_features(kind, digits.x_train, digits.y_train[:-1])
    with pytest.raises(PoisonlabError, match="uint8"):
        compute_features(kind, digits.x_train.astype(np.float32), digits.y_train)
    with pytest.raises(PoisonlabError, match="no training images"):
        compute_features(kind, digits.x_train[:0], digits.y_train[:0])


def test_unknown_kind(digits):
    with pytest.raises(PoisonlabError, match="unknown features 'hog'.*activations"):
        compute_features("hog", digits.x_train, digits.y_train)
