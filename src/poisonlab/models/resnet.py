"""CIFAR ResNets: the poisoning literature's ResNet-18 and He et al.'s ResNet-20, both on float pixels in [0, 1].

Both normalise their own input (scalar ``mean``/``std`` buffers, as :class:`~poisonlab.models.PaperCNN`),
repeat a 1-channel batch to ``in_channels``, end in global average pooling (so any image of at least
8x8 works) and expose ``penultimate(x)``, the pooled features before the linear head.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from poisonlab.errors import PoisonlabError

# CIFAR-10's training pixels (in [0, 1]) over all three channels together: one mean and one standard deviation
CIFAR10_MEAN, CIFAR10_STD = 0.4734, 0.2516
# these models halve the map up to three times (8x8 -> 1x1); a smaller image leaves a last stage nothing to downsample
MIN_IMAGE_SIZE = 8


def check_image_size(model: str, image_size: int, minimum: int = MIN_IMAGE_SIZE) -> None:
    """Raise :class:`PoisonlabError` when ``image_size`` is below what ``model`` can downsample."""
    if image_size < minimum:
        raise PoisonlabError(f"{model} needs images of at least {minimum}x{minimum}, got {image_size}x{image_size}")


def normalise_pixels(x: torch.Tensor, in_channels: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Pixels (N, C, H, W) in [0, 1] -> ``(x - mean) / std`` with a 1-channel batch repeated to ``in_channels``."""
    if x.shape[1] == 1 and in_channels != 1:
        x = x.expand(-1, in_channels, -1, -1)
    return (x - mean) / std


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut, ReLU after the sum (He et al. 2016, Fig. 2).

    ``shortcut="B"`` projects with a 1x1 conv and BN when the shape changes (Kuang Liu's ResNet-18);
    ``shortcut="A"`` subsamples by ``stride`` and zero-pads the new channels, without parameters (He et
    al.'s CIFAR nets, Sec. 4.2). Input (N, in_planes, H, W) -> (N, planes, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra_planes = stride, planes - in_planes
        reshapes = stride != 1 or in_planes != planes
        self.shortcut = (nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes)) if reshapes and shortcut == "B" else None)

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: every ``stride``-th pixel, the new channels split as zeros before and after."""
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_planes:
            front = self.extra_planes // 2
            x = F.pad(x, (0, 0, 0, 0, front, self.extra_planes - front))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.shortcut(x) if self.shortcut is not None else self._identity(x)))


def _stage(in_planes: int, planes: int, blocks: int, stride: int, shortcut: str) -> nn.Sequential:
    layers = [BasicBlock(in_planes, planes, stride, shortcut)]
    layers += [BasicBlock(planes, planes, 1, shortcut) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 images as in the data-poisoning literature (Kuang Liu's pytorch-cifar, used
    by Witches' Brew, Geiping et al. 2021): 3x3 stem conv (64, stride 1, no max-pool), BasicBlock stages
    [2, 2, 2, 2] of width 64/128/256/512 and stride 1/2/2/2 with 1x1 projection shortcuts, global average
    pooling, linear head.

    Takes pixels in [0, 1], shape (N, in_channels, image_size, image_size); ``(x - mean) / std`` happens
    inside (buffers, not parameters), so attacks work in pixel space. A 1-channel batch is repeated to
    ``in_channels``. PyTorch's default initialisation, as the reference code.

    Parameters
    ----------
    in_channels : int
    image_size : int
        Any size of at least 8 (global pooling); 32 for CIFAR-10.
    num_classes : int
    mean, std : float
        Input normalisation; the defaults are CIFAR-10's all-channel pixel statistics.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD) -> None:
        super().__init__()
        check_image_size("resnet18", image_size)
        self.in_channels = in_channels
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.conv1 = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = _stage(64, 64, 2, 1, "B")
        self.layer2 = _stage(64, 128, 2, 2, "B")
        self.layer3 = _stage(128, 256, 2, 2, "B")
        self.layer4 = _stage(256, 512, 2, 2, "B")
        self.linear = nn.Linear(512, num_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled ``layer4`` output (N, 512)."""
        x = F.relu(self.bn1(self.conv1(normalise_pixels(x, self.in_channels, self.mean, self.std))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.penultimate(x))


class ResNet20(nn.Module):
    """ResNet-20 for CIFAR (He et al. 2016, "Deep Residual Learning for Image Recognition", Sec. 4.2):
    3x3 conv (16), three stages of 3 BasicBlocks with 16/32/64 filters and stride 1/2/2, option-A
    shortcuts (identity, stride-2 subsampling and zero-padded channels: no parameters), global average
    pooling, linear head. He initialisation of the convs, as the paper.

    The paper's "0.27M" parameters are 269,722 exactly with option A for 10 classes; the 272,474 sometimes
    quoted counts option-B projections (1x1 conv + BN) at the two downsampling blocks.

    Takes pixels in [0, 1], shape (N, in_channels, image_size, image_size), normalised inside; a
    1-channel batch is repeated to ``in_channels``.

    Parameters
    ----------
    in_channels : int
    image_size : int
        Any size of at least 8 (global pooling); 32 for CIFAR-10.
    num_classes : int
    mean, std : float
        Input normalisation; the defaults are CIFAR-10's all-channel pixel statistics.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD) -> None:
        super().__init__()
        check_image_size("resnet20", image_size)
        self.in_channels = in_channels
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = _stage(16, 16, 3, 1, "A")
        self.layer2 = _stage(16, 32, 3, 2, "A")
        self.layer3 = _stage(32, 64, 3, 2, "A")
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Globally average-pooled ``layer3`` output (N, 64)."""
        x = F.relu(self.bn1(self.conv1(normalise_pixels(x, self.in_channels, self.mean, self.std))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.penultimate(x))
