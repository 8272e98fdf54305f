"""On-the-fly augmentation of uint8 image batches: the random crop and flip of the CIFAR recipe.

Why a module of its own: training, evaluation (flip test-time augmentation) and the attacks that craft
through the victims' augmentation all need the same choices and the same batch transform.
"""

from __future__ import annotations

import torch

# ``TrainConfig.augment``: random crop (4-pixel zero padding) and horizontal flip for colour images only
AUGMENTATIONS: tuple[str, ...] = ("auto", "none", "crop-flip")
CROP_PADDING = 4
# ``TrainConfig.tta``: test-time augmentation of evaluation, none or the mean of the image's and its mirror's logits
TTAS: tuple[str, ...] = ("auto", "none", "flip")


def random_crop_flip(xb: torch.Tensor, *, padding: int = CROP_PADDING,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of a batch (B, C, H, W) cropped at a random offset from its zero-padded copy and flipped
    left-right with probability 1/2; any dtype and device (the random draws are made on the CPU)."""
    b, c, h, w = xb.shape
    offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    rows = torch.arange(h).view(1, h) + offsets[:, :1]
    cols = torch.arange(w).view(1, w) + offsets[:, 1:]
    cols = torch.where(flips.view(b, 1), cols.flip(1), cols)
    padded = torch.nn.functional.pad(xb, (padding, padding, padding, padding))
    device = xb.device
    return padded[torch.arange(b, device=device).view(b, 1, 1, 1), torch.arange(c, device=device).view(1, c, 1, 1),
                  rows.to(device).view(b, 1, h, 1), cols.to(device).view(b, 1, 1, w)]


__all__ = ["AUGMENTATIONS", "CROP_PADDING", "TTAS", "random_crop_flip"]
