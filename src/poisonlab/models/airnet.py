"""A conv-pool net with a data-whitened first layer, after airbench: the fastest CIFAR-10 learner per FLOP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from poisonlab.models.resnet import CIFAR10_MEAN, CIFAR10_STD, check_image_size, check_widths, normalise_pixels

# airbench94's widths (64, 256, 256) at a half: a quarter of its multiply-adds, what 2 CPU cores train in minutes
AIRNET_WIDTHS: tuple[int, int, int] = (32, 128, 128)
# airbench94's own widths: airnet-wide
AIRNET_WIDE_WIDTHS: tuple[int, int, int] = (64, 256, 256)
# airbench trains the whitening layer's bias for the first passes only
WHITEN_BIAS_EPOCHS = 3
# airbench's output scaling (1/9): small logits for a high SGD learning rate
LOGIT_SCALE = 1 / 9
# the whitening layer's 2x2 patches and the images it is fitted on (a seeded sample of the training set)
WHITEN_KERNEL = 2
WHITEN_SAMPLES = 5000
WHITEN_EPS = 5e-4
# a 2x2 valid conv and three 2x2 pools: 16 -> 15 -> 7 -> 3 -> 1
MIN_IMAGE_SIZE = 16


class ConvGroup(nn.Module):
    """conv 3x3 -> max-pool 2x2 -> BN -> GELU -> conv 3x3 -> BN -> GELU: halves the spatial size;
    ``train_scale=False`` freezes the batch norms' scales at 1 (airbench)."""

    def __init__(self, in_planes: int, planes: int, train_scale: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        # airbench's batch-norm statistics: fast-moving (torch momentum 0.4), a tiny eps
        self.bn1 = nn.BatchNorm2d(planes, momentum=0.4, eps=1e-12)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=0.4, eps=1e-12)
        for bn in (self.bn1, self.bn2):  # airbench: the scales stay 1, only the shifts train
            bn.weight.requires_grad_(train_scale)
        self.act = nn.GELU()
        for conv in (self.conv1, self.conv2):  # identity on the first input channels: trains from step one
            nn.init.dirac_(conv.weight.data[:conv.in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class AirNet(nn.Module):
    """airbench's layout (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds on a single GPU", arXiv:2404.00498)
    at half width: a 2x2 patch-whitening conv fitted to the training images -> three
    :class:`ConvGroup` stages -> global max-pool -> linear head (no bias) scaled by :data:`LOGIT_SCALE`.

    Why: whitening the input patches and the conv-pool-BN ordering let a plain seven-layer net learn
    CIFAR-10 in a few epochs; at half of airbench's widths it fits a CPU budget.

    Takes pixels in [0, 1], shape (N, in_channels, image_size, image_size); ``(x - mean) / std`` happens
    inside (buffers). A 1-channel batch is repeated to ``in_channels``. The first layer's filters are a
    buffer, never trained: random until :meth:`fit_whitening` runs (``poisonlab.training.train`` calls
    it on a seeded sample of the training images); its bias trains.

    Parameters
    ----------
    in_channels : int
    image_size : int
        At least 16 (a 2x2 valid conv, three 2x2 pools); 32 for CIFAR-10.
    num_classes : int
    mean, std : float
        Input normalisation; the defaults are CIFAR-10's all-channel pixel statistics.
    widths : sequence of 3 ints
        Channels of the three stages; the penultimate features have ``widths[2]``.
    """

    model_name = "airnet"
    # airnet-wide's airbench details: a GELU after the whitening conv, batch-norm scales frozen at 1
    whiten_gelu = False
    train_bn_scale = True

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD,
                 widths: Sequence[int] = AIRNET_WIDTHS) -> None:
        super().__init__()
        check_image_size(self.model_name, image_size, MIN_IMAGE_SIZE)
        widths = check_widths(self.model_name, widths, 3)
        self.in_channels, self.widths = in_channels, widths
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        patch = in_channels * WHITEN_KERNEL * WHITEN_KERNEL
        # the whitening filters are a buffer, not a parameter: saved with the weights, never trained, and
        # out of every gradient (the optimizer's, and gradient matching's alignment of victim gradients)
        first = nn.Conv2d(in_channels, 2 * patch, WHITEN_KERNEL, padding=0, bias=True)
        self.register_buffer("whiten_weight", first.weight.detach().clone())
        self.whiten_bias = nn.Parameter(first.bias.detach().clone())
        scale = self.train_bn_scale
        self.layers = nn.Sequential(ConvGroup(2 * patch, widths[0], scale), ConvGroup(widths[0], widths[1], scale),
                                    ConvGroup(widths[1], widths[2], scale))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.linear = nn.Linear(widths[2], num_classes, bias=False)

    @torch.no_grad()
    def fit_whitening(self, x: torch.Tensor, eps: float = WHITEN_EPS) -> None:
        """Set the first conv's filters to the whitening of ``x``'s 2x2 patches (and its bias to zero).

        ``x``: float pixels in [0, 1], (N, C, H, W). Each eigenvector v of the patch covariance, scaled by
        1/sqrt(eigenvalue + eps), becomes two filters, v and -v (airbench: a GELU after them then passes
        both signs). Deterministic for a given ``x`` on a given machine.
        """
        x = normalise_pixels(x.float(), self.in_channels, self.mean, self.std)
        k = WHITEN_KERNEL
        patches = x.unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H', W', k, k)
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, self.in_channels * k * k).double()
        covariance = flat.T @ flat / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]).float()
        filters = filters.reshape(-1, self.in_channels, k, k)
        self.whiten_weight.copy_(torch.cat((filters, -filters)))
        self.whiten_bias.zero_()

    def whiten(self, x: torch.Tensor) -> torch.Tensor:
        """The first layer on normalised pixels: (N, C, H, W) -> (N, 8C, H - 1, W - 1)."""
        x = F.conv2d(x, self.whiten_weight.to(x.dtype), self.whiten_bias.to(x.dtype))
        return F.gelu(x) if self.whiten_gelu else x

    def start_epoch(self, epoch: int) -> None:
        """Under the airbench schedule, before pass ``epoch`` (0-based): the whitening bias trains for the
        first :data:`WHITEN_BIAS_EPOCHS` passes only."""
        self.whiten_bias.requires_grad_(epoch < WHITEN_BIAS_EPOCHS)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Globally max-pooled output of the last stage (N, widths[2])."""
        x = self.whiten(normalise_pixels(x, self.in_channels, self.mean, self.std))
        return torch.flatten(self.pool(self.layers(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.penultimate(x)) * LOGIT_SCALE


class AirNetWide(AirNet):
    """airbench94's network (Jordan 2024, arXiv:2404.00498) whole: :class:`AirNet` at its full widths
    :data:`AIRNET_WIDE_WIDTHS` = (64, 256, 256), a GELU after the whitening conv, batch-norm scales frozen
    at 1 (only the shifts train); 256-d penultimate features.

    Why: trained with airbench's schedule (``TrainConfig(schedule="airbench")``, ``RECIPES["airnet-wide"]``)
    it is the net that reaches 90% on CIFAR-10 within a CPU budget where the half-width airnet stops short.
    """

    model_name = "airnet-wide"
    whiten_gelu = True
    train_bn_scale = False

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10,
                 mean: float = CIFAR10_MEAN, std: float = CIFAR10_STD,
                 widths: Sequence[int] = AIRNET_WIDE_WIDTHS) -> None:
        super().__init__(in_channels, image_size, num_classes, mean, std, widths)


__all__ = ["AIRNET_WIDE_WIDTHS", "AIRNET_WIDTHS", "AirNet", "AirNetWide", "ConvGroup", "LOGIT_SCALE",
           "WHITEN_BIAS_EPOCHS"]
