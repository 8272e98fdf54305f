"""A small ResNet-9-style net that trains fast on a few CPU cores, for CIFAR-sized colour images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from poisonlab.models.resnet import CIFAR10_MEAN, CIFAR10_STD, check_image_size, check_widths, normalise_pixels

# Page's ResNet-9 widths (64, 128, 256, 512) at a quarter: under a twentieth of ResNet-18's multiply-adds
FASTNET_WIDTHS: tuple[int, int, int, int] = (16, 32, 64, 128)
# at half: four times the multiply-adds, for the accuracy a short CPU budget allows (docs/measurements.md)
FASTNET_WIDE_WIDTHS: tuple[int, int, int, int] = (32, 64, 128, 256)
# Page's output scaling: small logits let the net train at a high SGD learning rate without diverging
LOGIT_SCALE = 0.125


def _conv_bn(in_planes: int, planes: int, pool: bool) -> nn.Sequential:
    """3x3 conv (no bias: BN follows), optional 2x2 max-pool, BN, ReLU."""
    # pooling before BN and ReLU (as airbench) runs them on a quarter of the pixels
    layers: list[nn.Module] = [nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.BatchNorm2d(planes), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """``x + f(x)`` with ``f`` two conv-BN-ReLU layers of ``planes`` channels; shape-preserving."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(planes, planes, False), _conv_bn(planes, planes, False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FastNet(nn.Module):
    """ResNet-9 layout (Page 2018, "How to train your ResNet"; airbench and hlb-cifar10 descend from it)
    at reduced width: prep conv -> [conv, pool, residual] -> [conv, pool] -> [conv, pool, residual] ->
    global max-pool -> linear head scaled by :data:`LOGIT_SCALE`. Nine weight layers, every stage a plain ``Conv2d``/``MaxPool2d``/
    ``BatchNorm2d``/``ReLU`` (channels-last friendly).

    Why: the CIFAR-10 speed-training records come from a few conv-pool stages and two residual blocks;
    narrowed, that layout is cheap enough to train on CPU cores.

    Takes pixels in [0, 1], shape (N, in_channels, image_size, image_size); ``(x - mean) / std`` happens
    inside (buffers, not parameters). A 1-channel batch is repeated to ``in_channels``.

    Parameters
    ----------
    in_channels : int
    image_size : int
        Any size of at least 8 (three 2x2 pools, then global pooling); 32 for CIFAR-10.
    num_classes : int
    mean, std : float
        Input normalisation; the defaults are CIFAR-10's all-channel pixel statistics.
    widths : sequence of 4 ints
        Channels of the prep conv and of the three stages; the penultimate features have ``widths[3]``.
    """

    model_name = "fastnet"  # its registry name, for error messages

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD,
                 widths: Sequence[int] = FASTNET_WIDTHS) -> None:
        super().__init__()
        check_image_size(self.model_name, image_size)
        widths = check_widths(self.model_name, widths, 4)
        self.in_channels, self.widths = in_channels, widths
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        w0, w1, w2, w3 = widths
        self.prep = _conv_bn(in_channels, w0, False)
        self.layer1 = nn.Sequential(_conv_bn(w0, w1, True), Residual(w1))
        self.layer2 = _conv_bn(w1, w2, True)
        self.layer3 = nn.Sequential(_conv_bn(w2, w3, True), Residual(w3))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.linear = nn.Linear(w3, num_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Globally max-pooled ``layer3`` output (N, widths[3])."""
        x = self.prep(normalise_pixels(x, self.in_channels, self.mean, self.std))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.penultimate(x)) * LOGIT_SCALE


class FastNetWide(FastNet):
    """:class:`FastNet` at half of Page's ResNet-9 widths, ``FASTNET_WIDE_WIDTHS`` = (32, 64, 128, 256):
    256-d penultimate features, 1.65M parameters.

    Why: the quarter-width net underfits CIFAR-10 within a short budget; the wider one learns more per
    epoch at about a third of the images per second on a CPU.
    """

    model_name = "fastnet-wide"

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD,
                 widths: Sequence[int] = FASTNET_WIDE_WIDTHS) -> None:
        super().__init__(in_channels, image_size, num_classes, mean, std, widths)
