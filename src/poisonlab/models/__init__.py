"""Models by name. Every model takes float pixels in [0, 1] (N, C, H, W), normalises them itself, and
exposes ``penultimate(x)``: the activations before its classifier head (what the detectors work on)."""

from __future__ import annotations

from torch import nn

from poisonlab.models.fastnet import FastNet
from poisonlab.models.paper_cnn import PaperCNN, count_parameters
from poisonlab.models.resnet import ResNet18, ResNet20
from poisonlab.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", {"paper-cnn": PaperCNN, "resnet18": ResNet18, "resnet20": ResNet20,
                                                 "fastnet": FastNet})
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def build_model(name: str = "paper-cnn", *, in_channels: int = 3, image_size: int = 28,
                num_classes: int = 10, mean: float | None = None, std: float | None = None) -> nn.Module:
    """A fresh, untrained model by name (weights come from the global torch seed); ``mean`` and ``std``
    are its input normalisation (``None``: the model's default)."""
    kwargs = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    return MODELS.make(name, in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "MODEL_NAMES", "FastNet", "PaperCNN", "ResNet18", "ResNet20", "build_model", "count_parameters"]
