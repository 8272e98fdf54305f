"""On-the-fly augmentation of uint8 image batches: the random crop and flip of the CIFAR recipe, and airbench's
reflected shift with alternating flips.

Why a module of its own: training, evaluation (flip test-time augmentation) and the attacks that craft
through the victims' augmentation all need the same choices and the same batch transform.
"""

from __future__ import annotations

import torch

# ``TrainConfig.augment``: random crop (4-pixel zero padding) and horizontal flip for colour images only, or
# airbench's 2-pixel reflected shift with alternating flips
AUGMENTATIONS: tuple[str, ...] = ("auto", "none", "crop-flip", "shift-flip")
CROP_PADDING = 4
# airbench's translation: up to 2 pixels each way, the border reflected
MAX_SHIFT = 2
# ``TrainConfig.tta``: test-time augmentation of evaluation: none, the mean of the image's and its mirror's
# logits, or that mean weighted 1/2 with 1/4 each of the same at a one-pixel shift up-left and down-right
TTAS: tuple[str, ...] = ("auto", "none", "flip", "flip-shift")


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


def reflect_index(i: torch.Tensor, size: int) -> torch.Tensor:
    """Indices ``i`` in [-size + 1, 2 * size - 2] folded into [0, size) by reflection at the borders (the
    border pixel itself not repeated: -1 -> 1, size -> size - 2), NumPy's and torch's "reflect" padding."""
    i = i.abs()
    return torch.where(i >= size, 2 * (size - 1) - i, i)


def shift_flip(xb: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Batch (B, C, H, W) of any dtype, image b moved by ``shifts[b] = (dy, dx)`` pixels with its border
    reflected (pixel (r, c) of the output is input pixel (r + dy, c + dx), reflected back inside) and then
    mirrored left-right where ``flips[b]``. ``shifts``: (B, 2) integers, ``flips``: (B,) bools, on any device."""
    b, c, h, w = xb.shape
    device = xb.device
    shifts, flips = shifts.to(device), flips.to(device)
    rows = reflect_index(torch.arange(h, device=device).view(1, h) + shifts[:, :1], h)
    cols = reflect_index(torch.arange(w, device=device).view(1, w) + shifts[:, 1:], w)
    cols = torch.where(flips.view(b, 1), cols.flip(1), cols)
    return xb[torch.arange(b, device=device).view(b, 1, 1, 1), torch.arange(c, device=device).view(1, c, 1, 1),
              rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def random_shift_flip(xb: torch.Tensor, flips: torch.Tensor, *, max_shift: int = MAX_SHIFT,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """airbench's augmentation (Jordan 2024, arXiv:2404.00498): each image of a batch (B, C, H, W) shifted by
    a uniform random (dy, dx) in [-max_shift, max_shift]^2 with reflected borders, and mirrored where ``flips``
    (B,) is true. The caller chooses the flips: airbench's *alternating* flip draws one random bit per
    training image once and inverts all of them every other epoch, so each image is seen both ways in any
    two epochs. Random draws on the CPU from ``generator``."""
    shifts = torch.randint(-max_shift, max_shift + 1, (len(xb), 2), generator=generator)
    return shift_flip(xb, shifts, flips)


__all__ = ["AUGMENTATIONS", "CROP_PADDING", "MAX_SHIFT", "TTAS", "random_crop_flip", "random_shift_flip",
           "reflect_index", "shift_flip"]
