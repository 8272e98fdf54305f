import numpy as np
import pytest
import torch
from torch import nn

from poisonlab.errors import PoisonlabError
from poisonlab.models import (MODEL_NAMES, MODELS, RECIPES, AirNet, AirNetWide, FastNet, FastNetWide, ResNet18, ResNet20,
                              build_model, count_parameters)
from poisonlab.models.resnet import CIFAR10_MEAN, CIFAR10_STD, BasicBlock
from poisonlab.training import TrainConfig, extract_features, train

# name -> (parameters on 3x32x32 with 10 classes, penultimate width)
CIFAR_MODELS = {"resnet18": (11_173_962, 512), "resnet20": (269_722, 64), "fastnet": (412_954, 128),
                "fastnet-wide": (1_646_122, 256), "airnet": (497_816, 128), "airnet-wide": (1_972_504, 256)}
# the smallest image each model downsamples (airnet: a 2x2 valid conv, then three 2x2 pools)
MIN_SIZE = {"airnet": 16, "airnet-wide": 16}


def conv_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the convolutions and linear layers for one image of ``x``'s shape."""
    total = [0]

    def hook(m, _inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out[0].numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
        elif isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(x[:1])
    for h in handles:
        h.remove()
    return total[0]


def test_registry_holds_the_cifar_models():
    assert set(CIFAR_MODELS) <= set(MODEL_NAMES) and MODEL_NAMES == tuple(MODELS)
    assert (MODELS["resnet18"], MODELS["resnet20"], MODELS["fastnet"], MODELS["fastnet-wide"], MODELS["airnet"],
            MODELS["airnet-wide"]) == (ResNet18, ResNet20, FastNet, FastNetWide, AirNet, AirNetWide)


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_parameter_counts_shapes_and_registry(name):
    params, width = CIFAR_MODELS[name]
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, image_size=32, num_classes=10)
    assert count_parameters(model) == params
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    assert model.penultimate(x).shape == (2, width)
    assert model.in_channels == 3
    assert (float(model.mean), float(model.std)) == pytest.approx((CIFAR10_MEAN, CIFAR10_STD))
    assert {"mean", "std"} <= set(dict(model.named_buffers()))


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_grey_28x28_is_repeated_to_three_channels(name):
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, image_size=28, num_classes=7, mean=0.13, std=0.31).eval()
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(out, model(x.expand(-1, 3, -1, -1)))
    assert out.shape == (2, 7)
    assert float(model.mean) == pytest.approx(0.13)


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_smallest_image_and_too_small_images(name):
    size = MIN_SIZE.get(name, 8)
    model = build_model(name, image_size=size, num_classes=3)
    assert model(torch.rand(2, 3, size, size)).shape == (2, 3)
    with pytest.raises(PoisonlabError, match=f"{name} needs images of at least {size}x{size}, got {size - 1}x{size - 1}"):
        build_model(name, image_size=size - 1)


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_channels_last_eval_forward_equals_contiguous(name):
    torch.manual_seed(0)
    model = build_model(name, image_size=32).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        fast = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_one_short_training_epoch_and_features(name):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, size=64)
    result = train(x, y, num_classes=10, progress=False,
                   config=TrainConfig(epochs=1, batch_size=32, model=name, precision="fp32", device="cpu"))
    assert result.steps == 2 and len(result.epoch_losses) == 1 and np.isfinite(result.epoch_losses[0])
    features = extract_features(result.model, x[:10])
    assert features.shape == (10, CIFAR_MODELS[name][1]) and np.isfinite(features).all()


@pytest.mark.parametrize("name", sorted(CIFAR_MODELS))
def test_same_seed_gives_identical_weights(name):
    rng = np.random.default_rng(1)
    size = MIN_SIZE.get(name, 8)
    x = rng.integers(0, 256, size=(16, 3, size, size), dtype=np.uint8)
    y = rng.integers(0, 3, size=16)
    config = TrainConfig(epochs=1, batch_size=8, model=name, precision="fp32", device="cpu", seed=3)
    first, second = (train(x, y, num_classes=3, config=config, progress=False).model.state_dict() for _ in range(2))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_resnet20_is_the_papers_0_27m_with_parameter_free_shortcuts():
    model = ResNet20()
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9 and all(b.shortcut is None for b in blocks)
    assert count_parameters(model) == 269_722
    # the 272,474 sometimes quoted is option B: 1x1 conv + BN projections at the two downsampling blocks
    projections = sum(count_parameters(BasicBlock(i, o, 2, "B")) - count_parameters(BasicBlock(i, o, 2, "A"))
                      for i, o in ((16, 32), (32, 64)))
    assert count_parameters(model) + projections == 272_474


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = BasicBlock(16, 32, 2, "A")
    x = torch.rand(2, 16, 7, 7)
    shortcut = block._identity(x)
    assert shortcut.shape == (2, 32, 4, 4) and block(x).shape == (2, 32, 4, 4)
    torch.testing.assert_close(shortcut[:, 8:24], x[:, :, ::2, ::2])
    assert not shortcut[:, :8].any() and not shortcut[:, 24:].any()


def test_fastnet_costs_well_under_a_tenth_of_resnet18():
    x = torch.zeros(1, 3, 32, 32)
    assert conv_macs(FastNet(), x) * 20 < conv_macs(ResNet18(), x)
    # twice the widths: four times the multiply-adds, still a fifth of ResNet-18's
    assert conv_macs(FastNetWide(), x) == pytest.approx(4 * conv_macs(FastNet(), x), rel=0.01)
    assert conv_macs(FastNetWide(), x) * 5 < conv_macs(ResNet18(), x)
    assert conv_macs(ResNet20(), x) * 10 < conv_macs(ResNet18(), x)


def test_fastnet_widths_are_a_parameter():
    model = FastNet(widths=(8, 16, 32, 48), num_classes=4)
    assert model.penultimate(torch.rand(2, 3, 16, 16)).shape == (2, 48)
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(PoisonlabError, match="widths must be 4 positive integers"):
        FastNet(widths=(16, 32, 64))
    with pytest.raises(PoisonlabError, match="widths must be 4 positive integers"):
        FastNet(widths=(16, 0, 64, 128))


def test_every_model_has_a_valid_recipe():
    assert set(RECIPES) == set(MODEL_NAMES)
    for name, recipe in RECIPES.items():
        assert TrainConfig(model=name, **recipe).epochs == recipe["epochs"]


def test_airnet_whitening_decorrelates_the_patches_it_was_fitted_on_and_is_frozen():
    torch.manual_seed(0)
    # correlated colour channels: a shared grey component plus a little noise per channel
    grey = torch.rand(64, 1, 16, 16)
    x = (0.8 * grey + 0.2 * torch.rand(64, 3, 16, 16)).clamp(0, 1)
    model = AirNet(image_size=16, mean=0.5, std=0.25)
    model.fit_whitening(x)
    weight = model.whiten_weight
    assert weight.shape == (24, 3, 2, 2) and "whiten_weight" in dict(model.named_buffers())
    assert "whiten_weight" not in dict(model.named_parameters()) and model.whiten_bias.requires_grad
    torch.testing.assert_close(weight[12:], -weight[:12])  # each filter and its negative
    with torch.no_grad():
        out = model.whiten((x - 0.5) / 0.25)[:, :12]  # (N, 12, 15, 15): one response per eigenvector
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    second_moment = flat.T @ flat / len(flat)
    eigenvalues = torch.linalg.eigvalsh(second_moment)
    # whitened: off-diagonal moments near zero, each direction's variance lambda / (lambda + eps) <= 1
    off_diagonal = second_moment - torch.diag(torch.diag(second_moment))
    assert off_diagonal.abs().max() < 1e-6 and eigenvalues.max() <= 1 + 1e-6
    assert torch.diag(second_moment).max() > 0.9  # the large directions come out at unit variance


def test_training_fits_airnets_whitening_and_never_trains_it():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 3, 16, 16), dtype=np.uint8)
    y = rng.integers(0, 4, size=40)
    config = TrainConfig(epochs=2, batch_size=16, model="airnet", precision="fp32", device="cpu", seed=5)
    torch.manual_seed(5)
    untrained = AirNet(image_size=16, num_classes=4)
    model = train(x, y, num_classes=4, config=config, progress=False).model
    fitted = AirNet(image_size=16, num_classes=4, mean=float(model.mean), std=float(model.std))
    fitted.fit_whitening(torch.from_numpy(x).float() / 255)
    # the trained net's first layer is the whitening of its own training images, untouched by the optimizer
    torch.testing.assert_close(model.whiten_weight, fitted.whiten_weight)
    assert not torch.equal(model.whiten_weight, untrained.whiten_weight)
    # a model rebuilt from saved weights has the same filters (a buffer in the state dict)
    rebuilt = AirNet(image_size=16, num_classes=4)
    rebuilt.load_state_dict(model.state_dict())
    torch.testing.assert_close(rebuilt.whiten_weight, model.whiten_weight)


def test_airnet_widths_are_a_parameter():
    model = AirNet(widths=(8, 16, 24), num_classes=4, image_size=16)
    assert model.penultimate(torch.rand(2, 3, 16, 16)).shape == (2, 24)
    with pytest.raises(PoisonlabError, match="widths must be 3 positive integers"):
        AirNet(widths=(16, 32, 64, 128))



def test_airnet_wide_is_airbench94s_net():
    """airbench94's layout: full widths, a GELU after the whitening conv, batch-norm scales frozen at 1."""
    torch.manual_seed(0)
    wide = AirNetWide(image_size=16, num_classes=4)
    assert wide.widths == (64, 256, 256)
    frozen = sorted(n for n, p in wide.named_parameters() if not p.requires_grad)
    assert frozen == sorted(f"layers.{i}.bn{j}.weight" for i in range(3) for j in (1, 2))
    assert all(p.requires_grad for n, p in AirNet(image_size=16).named_parameters())
    x = torch.randn(3, 3, 16, 16)
    before = torch.nn.functional.conv2d(x, wide.whiten_weight, wide.whiten_bias)
    torch.testing.assert_close(wide.whiten(x), torch.nn.functional.gelu(before))
    half = AirNet(image_size=16)
    torch.testing.assert_close(half.whiten(x), torch.nn.functional.conv2d(x, half.whiten_weight, half.whiten_bias))
    # the airbench schedule trains the whitening bias for 3 passes only
    wide.start_epoch(2)
    assert wide.whiten_bias.requires_grad
    wide.start_epoch(3)
    assert not wide.whiten_bias.requires_grad
