"""Models: the paper CNN and a registry by name."""

from __future__ import annotations

from torch import nn

from poisonlab.errors import PoisonlabError
from poisonlab.models.paper_cnn import PaperCNN, count_parameters

MODEL_NAMES = ("paper-cnn",)


def build_model(name: str = "paper-cnn", *, in_channels: int = 3, image_size: int = 28,
                num_classes: int = 10, mean: float | None = None, std: float | None = None) -> nn.Module:
    """A fresh, untrained model by name (weights come from the global torch seed)."""
    if name == "paper-cnn":
        kwargs = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
        return PaperCNN(in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs)
    raise PoisonlabError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")


__all__ = ["MODEL_NAMES", "PaperCNN", "build_model", "count_parameters"]
