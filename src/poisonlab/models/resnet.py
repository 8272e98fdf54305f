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


def check_widths(model: str, widths, count: int) -> tuple[int, ...]:
    """``widths`` as a tuple of ``count`` positive integers (a net's channels per stage), else :class:`PoisonlabError`."""
    widths = tuple(widths)
    if len(widths) != count or not all(isinstance(w, int) and w > 0 for w in widths):
        raise PoisonlabError(f"{model} widths must be {count} positive integers, got {widths!r}")
    return widths


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


class CifarResNet(nn.Module):
    """A 3x3 stem conv and BN, stages of :class:`BasicBlock`, global average pooling and a linear head.

    Takes pixels in [0, 1], shape (N, in_channels, image_size, image_size); ``(x - mean) / std`` happens
    inside (buffers, not parameters), so attacks work in pixel space. A 1-channel batch is repeated to
    ``in_channels``. Subclasses fix the architecture in their class attributes.

    Parameters
    ----------
    in_channels : int
    image_size : int
        Any size of at least 8 (global pooling); 32 for CIFAR-10.
    num_classes : int
    mean, std : float
        Input normalisation; the defaults are CIFAR-10's all-channel pixel statistics.
    """

    name = ""
    widths: tuple[int, ...] = ()  # one per stage; the stem has the first
    strides: tuple[int, ...] = ()
    blocks = 2  # per stage
    shortcut = "B"
    he_init = False

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD) -> None:
        super().__init__()
        check_image_size(self.name, image_size)
        self.in_channels = in_channels
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.conv1 = nn.Conv2d(in_channels, self.widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.widths[0])
        previous = self.widths[0]
        for i, (width, stride) in enumerate(zip(self.widths, self.strides), start=1):
            setattr(self, f"layer{i}", _stage(previous, width, self.blocks, stride, self.shortcut))
            previous = width
        self.linear = nn.Linear(previous, num_classes)
        if self.he_init:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's output, globally average-pooled: (N, widths[-1])."""
        x = F.relu(self.bn1(self.conv1(normalise_pixels(x, self.in_channels, self.mean, self.std))))
        for i in range(1, len(self.widths) + 1):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.penultimate(x))


class ResNet18(CifarResNet):
    """ResNet-18 for 32x32 images as in the data-poisoning literature (Kuang Liu's pytorch-cifar, used
    by Witches' Brew, Geiping et al. 2021): 3x3 stem conv (64, stride 1, no max-pool), BasicBlock stages
    [2, 2, 2, 2] of width 64/128/256/512 and stride 1/2/2/2 with 1x1 projection shortcuts, global average
    pooling, linear head; PyTorch's default initialisation, as the reference code. See
    :class:`CifarResNet` for inputs and parameters."""

    name = "resnet18"
    widths = (64, 128, 256, 512)
    strides = (1, 2, 2, 2)
    blocks = 2
    shortcut = "B"


class ResNet20(CifarResNet):
    """ResNet-20 for CIFAR (He et al. 2016, "Deep Residual Learning for Image Recognition", Sec. 4.2):
    3x3 conv (16), three stages of 3 BasicBlocks with 16/32/64 filters and stride 1/2/2, option-A
    shortcuts (identity, stride-2 subsampling and zero-padded channels: no parameters), global average
    pooling, linear head; He initialisation of the convs, as the paper. See :class:`CifarResNet`.

    The paper's "0.27M" parameters are 269,722 exactly with option A for 10 classes; the 272,474 sometimes
    quoted counts option-B projections (1x1 conv + BN) at the two downsampling blocks."""

    name = "resnet20"
    widths = (16, 32, 64)
    strides = (1, 2, 2)
    blocks = 3
    shortcut = "A"
    he_init = True


__all__ = ["BasicBlock", "CIFAR10_MEAN", "CIFAR10_STD", "CifarResNet", "ResNet18", "ResNet20", "check_image_size",
           "check_widths", "normalise_pixels"]
