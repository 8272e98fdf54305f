import numpy as np
import pytest

from poisonlab.data import Dataset


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, request):
    """Tests never touch the user's cache, except those that ask for the shared one (real MNIST)."""
    if "shared_cache" not in request.fixturenames:
        monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def shared_cache():
    """Use $POISONLAB_CACHE as set by the environment (CI points it at a folder that persists per run)."""


def make_synthetic(n_train: int = 200, n_test: int = 50, *, classes: int = 3, size: int = 16, seed: int = 0) -> Dataset:
    """Blobs of bright pixels at a class-specific place: easy to learn, tiny."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = np.arange(n) % classes
        x = rng.integers(0, 40, size=(n, 1, size, size)).astype(np.uint8)
        for c in range(classes):
            r = 2 + 4 * c
            x[y == c, 0, r:r + 3, r:r + 3] = 230
        return x, y.astype(np.int64)

    xtr, ytr = split(n_train)
    xte, yte = split(n_test)
    return Dataset(name="synthetic", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                   classes=tuple(str(c) for c in range(classes)))


@pytest.fixture
def synthetic() -> Dataset:
    return make_synthetic()
