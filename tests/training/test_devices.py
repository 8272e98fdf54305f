"""Every place a model trains or runs, on every device this machine has: the CPU always, CUDA where a GPU is.

On a machine without a GPU the CUDA cases skip and the CPU cases still check the device plumbing (tensors
made where the model lives, draws from a CPU generator); on a GPU machine the same assertions hold on CUDA,
including same seed -> same weights and same poisons (cuDNN's deterministic algorithms).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from poisonlab.attacks import make_attack
from poisonlab.attacks.gradient_matching import brew_poisons, gradient_alignment
from poisonlab.data import Dataset
from poisonlab.seeding import deterministic_kernels
from poisonlab.training import TrainConfig, evaluate, extract_features, train

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                   reason="no CUDA GPU on this machine"))]


def _colour_set(n: int = 96, seed: int = 0) -> Dataset:
    """A learnable 3x32x32 set: each class is a brightness band plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.integers(0, 60, (n, 3, 32, 32)) + 80 * y[:, None, None, None]).astype(np.uint8)
    yt = np.arange(30) % 3
    xt = (rng.integers(0, 60, (30, 3, 32, 32)) + 80 * yt[:, None, None, None]).astype(np.uint8)
    return Dataset(name="bands", x_train=x, y_train=y, x_test=xt, y_test=yt, classes=("dark", "mid", "bright"))


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model", ["airnet", "resnet20"])
def test_training_on_a_device_is_deterministic_and_stays_there(device, model):
    ds = _colour_set()
    config = TrainConfig(epochs=2, batch_size=32, model=model, device=device, optimizer="sgd", lr=0.05)
    first, again = (train(ds.x_train, ds.y_train, num_classes=3, config=config, progress=False).model
                    for _ in range(2))
    assert next(first.parameters()).device.type == device
    assert torch.equal(_weights(first), _weights(again))
    metrics = evaluate(first, ds.x_test, ds.y_test, num_classes=3, precision=config.resolved_precision(), tta="flip")
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(metrics["per_class_accuracy"]) == 3
    features = extract_features(first, ds.x_test)
    assert isinstance(features, np.ndarray) and features.shape[0] == 30 and np.isfinite(features).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_brewing_on_a_device_is_bounded_deterministic_and_aligns(device, precision):
    ds = _colour_set()
    surrogate = train(ds.x_train, ds.y_train, num_classes=3, progress=False,
                      config=TrainConfig(epochs=2, batch_size=32, model="airnet", device="cpu")).model
    idx = np.flatnonzero(ds.y_train == 1)[:12]
    eps = 8 / 255

    def brew():
        return brew_poisons([surrogate], ds.x_train[idx], ds.y_train[idx], ds.x_test[:1], 1, eps=eps, steps=12,
                            restarts=2, max_shift=4, flip=True, generator=torch.Generator().manual_seed(3),
                            precision=precision, device=device)

    first, again = brew(), brew()
    assert first.poisons.dtype == np.uint8 and first.poisons.shape == ds.x_train[idx].shape
    assert np.abs(first.poisons.astype(np.int16) - ds.x_train[idx]).max() <= 8
    assert np.array_equal(first.poisons, again.poisons) and first.restart_losses == again.restart_losses
    # the kept restart lowers the loss it started from, and the uint8 poisons keep most of that alignment
    assert first.best_loss < first.best_history[0]
    before = gradient_alignment(surrogate, ds.x_train[idx], ds.y_train[idx], ds.x_test[:1], 1)
    after = gradient_alignment(surrogate, first.poisons, ds.y_train[idx], ds.x_test[:1], 1)
    assert after > before
    assert next(surrogate.parameters()).device.type == "cpu"  # crafting works on a copy


@pytest.mark.parametrize("device", DEVICES)
def test_attacks_that_craft_record_their_device(device):
    ds = _colour_set()
    gm = make_attack("gradient-matching", budget=0.05, targets=1, steps=4, surrogate_epochs=1, device=device)
    poisoned = gm.poison(ds, seed=0)
    assert poisoned.attack["crafting_device"] == device and poisoned.is_poison.sum() == 5
    sleeper = make_attack("sleeper-agent", rate=0.05, target_class=0, source_class=1, steps=4, retrains=1,
                          surrogate_model="airnet", surrogate_epochs=1, source_samples=8, device=device)
    poisoned = sleeper.poison(ds, seed=0)
    assert poisoned.attack["crafting_device"] == device
    assert np.array_equal(poisoned.y_train, ds.y_train)  # clean label


def test_device_is_checked_by_the_attacks():
    from poisonlab.errors import PoisonlabError
    for name, params in (("gradient-matching", {}), ("sleeper-agent", {"target_class": 0})):
        with pytest.raises(PoisonlabError, match="device must be one of"):
            make_attack(name, device="tpu", **params)


def test_deterministic_kernels_restores_the_settings():
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    with deterministic_kernels("cpu"):
        assert (cudnn.deterministic, cudnn.benchmark) == saved
    with deterministic_kernels("cuda"):  # only flags: no GPU needed to set them
        assert cudnn.deterministic and not cudnn.benchmark
    assert (cudnn.deterministic, cudnn.benchmark) == saved
