"""Models by name. Every model takes float pixels in [0, 1] (N, C, H, W), normalises them itself, and
exposes ``penultimate(x)``: the activations before its classifier head (what the detectors work on)."""

from __future__ import annotations

from torch import nn

from poisonlab.models.airnet import AirNet, AirNetWide
from poisonlab.models.fastnet import FastNet, FastNetWide
from poisonlab.models.paper_cnn import PaperCNN, count_parameters
from poisonlab.models.resnet import ResNet18, ResNet20
from poisonlab.errors import PoisonlabError
from poisonlab.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", {"paper-cnn": PaperCNN, "resnet18": ResNet18, "resnet20": ResNet20,
                                                 "fastnet": FastNet, "fastnet-wide": FastNetWide, "airnet": AirNet,
                                                 "airnet-wide": AirNetWide})
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)

# The training recipe each model needs (``TrainConfig`` settings; one-cycle schedule at peak ``lr``).
# paper-cnn: the settings of ``poisonlab reproduce`` on MNIST. fastnet: Page's ResNet-9 recipe (Nesterov SGD,
# label smoothing 0.2, weight decay 5e-4, batch 512; output scaled by 1/8 in the model) with flip TTA,
# chosen on the CIFAR-10 JPEG copy (docs/measurements.md). airnet: the same at peak lr 0.8 (better than 0.4
# on a 10,000-image screen) for 16 epochs, what a quarter-hour of two CPU cores allows. resnet20, resnet18: the literature's SGD settings
# (He et al. 2016; the victims of Geiping et al. 2021 train ResNet-18 for 40 epochs), one-cycle instead of
# step decays, not tuned here.
RECIPES: dict[str, dict[str, object]] = {
    "paper-cnn": {"epochs": 1, "batch_size": 128, "lr": 5e-3, "optimizer": "adam", "weight_decay": 0.0,
                  "label_smoothing": 0.0},
    "fastnet": {"epochs": 12, "batch_size": 512, "lr": 0.4, "optimizer": "sgd", "weight_decay": 5e-4,
                "label_smoothing": 0.2},
    "fastnet-wide": {"epochs": 10, "batch_size": 512, "lr": 0.4, "optimizer": "sgd", "weight_decay": 5e-4,
                     "label_smoothing": 0.2},
    "airnet": {"epochs": 16, "batch_size": 512, "lr": 0.8, "optimizer": "sgd", "weight_decay": 5e-4,
               "label_smoothing": 0.2},
    # airbench94's hyperparameters in poisonlab's mean-loss form: its rate 11.5 per 1,024 examples at
    # momentum 0.85 is 1.5 here, its decay 0.0153 per 1,024 examples a coefficient of 1.33e-3 at that rate
    "airnet-wide": {"epochs": 10, "batch_size": 1024, "lr": 1.5, "optimizer": "sgd", "weight_decay": 1.33e-3,
                    "label_smoothing": 0.2, "schedule": "airbench", "augment": "shift-flip", "tta": "flip-shift"},
    "resnet20": {"epochs": 160, "batch_size": 128, "lr": 0.1, "optimizer": "sgd", "weight_decay": 1e-4,
                 "label_smoothing": 0.0},
    "resnet18": {"epochs": 40, "batch_size": 128, "lr": 0.1, "optimizer": "sgd", "weight_decay": 5e-4,
                 "label_smoothing": 0.0},
}


def registered_name(model: nn.Module) -> str:
    """The registry name of ``model``'s class (what :func:`build_model` takes to make another like it)."""
    for name in MODELS:
        if type(model) is MODELS[name]:
            return name
    raise PoisonlabError(f"{type(model).__name__} is not a poisonlab model; pass one of {', '.join(MODELS)}")


def build_model(name: str = "paper-cnn", *, in_channels: int = 3, image_size: int = 28,
                num_classes: int = 10, mean: float | None = None, std: float | None = None) -> nn.Module:
    """A fresh, untrained model by name (weights come from the global torch seed); ``mean`` and ``std``
    are its input normalisation (``None``: the model's default)."""
    kwargs = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    return MODELS.make(name, in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs)


__all__ = ["AirNet", "AirNetWide", "MODELS", "MODEL_NAMES", "RECIPES", "FastNet", "FastNetWide", "PaperCNN", "ResNet18", "ResNet20",
           "build_model", "count_parameters", "registered_name"]
