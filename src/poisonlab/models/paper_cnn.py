"""The paper's CNN (its Figure 1): 3 conv, 3 max-pool, 2 linear; 160,202 parameters on 3x28x28 input."""

from __future__ import annotations

import torch
from torch import nn

from poisonlab.errors import PoisonlabError

# Per-channel statistics of MNIST's training pixels (in [0, 1]); the model normalises its own input.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class PaperCNN(nn.Module):
    """Conv(32, 3x3, pad 1) -> pool -> Conv(64, 3x3, pad 1) -> pool -> Conv(128, 3x3) -> pool -> FC 128 -> FC.

    Takes pixels in [0, 1], shape (N, in_channels, image_size, image_size); normalisation
    ``(x - mean) / std`` happens inside (buffers, not parameters), so attacks work in pixel space.
    A 1-channel batch is repeated to ``in_channels`` (the paper feeds grayscale MNIST as 3 channels).

    Parameters
    ----------
    in_channels : int
        3 in the paper.
    image_size : int
        28 for MNIST; at least 16 (the third, unpadded conv needs a 4x4 map after two pools to leave one to pool).
    num_classes : int
    mean, std : float
        Input normalisation.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 28, num_classes: int = 10,
                 mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        side = ((image_size // 2) // 2 - 2) // 2
        if side < 1:
            raise PoisonlabError(f"PaperCNN needs images of at least 16x16, got {image_size}x{image_size}")
        self.in_channels = in_channels
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(64, 128, 3)
        self.pool3 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(128 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, 128): the output of ``fc1`` after ReLU."""
        if x.shape[1] == 1 and self.in_channels != 1:
            x = x.expand(-1, self.in_channels, -1, -1)
        x = (x - self.mean) / self.std
        # relu(pool(.)) is pool(relu(.)) (ReLU is monotone), with a quarter of the ReLU work
        x = torch.relu(self.pool1(self.conv1(x)))
        x = torch.relu(self.pool2(self.conv2(x)))
        x = torch.relu(self.pool3(self.conv3(x)))
        return torch.relu(self.fc1(torch.flatten(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.penultimate(x))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
