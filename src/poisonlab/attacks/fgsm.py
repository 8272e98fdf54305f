"""FGSM poisoning: the paper's "adversarial training attack" (its Section 3.2.2, epsilon = 2.0).

A fraction of the training images is replaced by ``x + eps * sign(grad_x loss(model(x), y))`` computed
on a surrogate model (trained here on the clean data, or passed in), clamped to the pixel range [0, 1]
and rounded back to uint8. Labels are kept: the poisons are "clean-label" adversarial examples.

Units of epsilon
----------------
The paper gives epsilon = 2.0 without units. Its CNN, like ours, sees normalised inputs
``(x - mean) / std`` with MNIST's std 0.3081, so 2.0 in *normalised* units is
``2.0 * 0.3081 = 0.616`` in *pixel* units of [0, 1] (157 of 255 grey levels). ``eps_units="normalized"``
multiplies ``eps`` by a std: the ``std`` buffer of a surrogate passed in, or else the exact standard
deviation of the training pixels (MNIST: 0.3081, the paper's); ``eps_units="pixel"`` takes ``eps`` as a
fraction of the [0, 1] range as is. The defaults follow the data: grey images get the paper's reading
(2.0, normalised), colour images the usual setting of the adversarial-examples literature, 8/255 in pixel
units (Madry et al. 2018).

What that does to an image: at 0.616 every pixel with a non-zero gradient moves by 157 grey levels and is
then clamped, so the black background becomes a pattern of 0 and 157 and the white strokes 255 and 98;
the digit stays readable but the image is visibly noisy. Any ``eps >= 1`` in pixel units saturates
every such pixel to 0 or 255 by the sign of the gradient alone: the original image is gone.

Quantisation: the perturbed image is rounded to the nearest grey level, so a pixel differs from the
original by at most ``eps + 0.5/255`` (in [0, 1] units), and an ``eps`` below half a grey level would
change nothing (refused).

On MNIST at the paper's setting the attack has limited impact, as the paper reports (numbers:
docs/measurements.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from poisonlab.attacks.base import (Attack, Log, PoisonPlan, check_int, check_number, check_rate, exact_count,
                                    quiet)
from poisonlab.data.dataset import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.models.paper_cnn import MNIST_STD
from poisonlab.training import TrainConfig, bf16_supported, evaluate, pixel_stats, train

EPS_UNITS = ("auto", "normalized", "pixel")
# ``eps=None`` by units: the paper's 2.0 normalised (digits), the literature's 8/255 of the pixel range (colour)
DEFAULT_EPS: dict[str, float] = {"normalized": 2.0, "pixel": 8 / 255}


@dataclass(frozen=True)
class FGSM(Attack):
    """Replace a ``rate`` of the training images by their one-step FGSM adversarial examples.

    Parameters
    ----------
    rate : float
        Share in (0, 1] of the training set to perturb; exactly ``round(rate * N)`` samples, chosen
        without replacement by the seed.
    eps : float or None
        Step size; ``None``: 2.0 in normalised units (the paper's), 8/255 in pixel units (the usual setting
        for colour images).
    eps_units : {"auto", "normalized", "pixel"}
        ``"normalized"``: ``eps`` is in normalised-input units and is multiplied by the given model's
        ``std`` buffer, or without a model by the exact std of the training pixels (MNIST: 0.3081, so
        the paper's 2.0 becomes 0.616 of the [0, 1] pixel range); ``"pixel"``: ``eps`` is in [0, 1]
        pixel units; ``"auto"``: normalised for grey images, pixel for colour ones.
    surrogate_epochs : int
        Epochs of the surrogate PaperCNN trained on the clean data (seeded by the attack's seed) when
        ``poison`` gets no ``model``.
    batch_size : int
        Images per gradient computation (memory and speed; each image's gradient is its own loss's).

    Notes
    -----
    ``is_poison`` marks exactly the chosen samples; pixels change nowhere else, labels nowhere at all.
    The ``attack`` record holds ``eps_used`` and ``eps_units_used`` (the defaults resolved for the data),
    ``eps_pixel`` (the step actually used, in [0, 1] units), ``pixel_std``,
    ``surrogate`` (how it was obtained and its clean test accuracy) and the surrogate's accuracy on the
    chosen samples before and after the perturbation.
    """

    rate: float = 0.1
    eps: float | None = None
    eps_units: str = "auto"
    surrogate_epochs: int = 1
    batch_size: int = 500

    name: ClassVar[str] = "fgsm"
    uses_model: ClassVar[bool] = True

    def check_params(self) -> "FGSM":
        check_rate(self.rate)
        if self.eps is not None:
            check_number(self.eps, "eps")
        if self.eps_units not in EPS_UNITS:
            raise PoisonlabError(f"eps_units must be one of {', '.join(EPS_UNITS)}, got {self.eps_units!r}")
        check_int(self.surrogate_epochs, "surrogate_epochs")
        check_int(self.batch_size, "batch_size")
        return self

    def check_dataset(self, dataset: Dataset) -> None:
        exact_count(self.rate, len(dataset.y_train))

    def resolved_eps(self, channels: int) -> tuple[float, str]:
        """``(eps, units)`` for images with ``channels`` channels: ``"auto"`` units are normalised for grey
        and pixel for colour, and ``eps=None`` is :data:`DEFAULT_EPS` of those units."""
        units = ("normalized" if channels == 1 else "pixel") if self.eps_units == "auto" else self.eps_units
        return (DEFAULT_EPS[units] if self.eps is None else float(self.eps)), units

    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None,
               log: Log = quiet) -> PoisonPlan:
        if model is not None:
            _check_model(model, dataset)
        chosen = np.sort(rng.choice(len(dataset.y_train), size=exact_count(self.rate, len(dataset.y_train)),
                                    replace=False))
        eps, units = self.resolved_eps(dataset.channels)
        # a given model's own normalisation, else the data's exact std (the paper's 0.3081 on MNIST)
        pixel_std = _model_std(model) if model is not None else pixel_stats(dataset.x_train)[1]
        eps_pixel = eps * pixel_std if units == "normalized" else float(eps)
        if eps_pixel < 0.5 / 255:
            raise PoisonlabError(f"eps {eps} ({units}) is {eps_pixel:.5f} in pixel units, below half "
                                 "a grey level; rounding to uint8 would undo it")
        if model is None:
            config = TrainConfig(epochs=self.surrogate_epochs, seed=seed)
            log(f"fgsm: training a {self.surrogate_epochs}-epoch surrogate on the clean data")
            model = train(dataset.x_train, dataset.y_train, num_classes=dataset.num_classes, config=config,
                          progress=False, desc="fgsm surrogate",
                          on_epoch=lambda e, n, loss, s: log(f"fgsm: surrogate epoch {e}/{n}, loss {loss:.4f} "
                                                             f"({s:.1f} s)")).model
            surrogate = {"source": "trained on the clean training set", "epochs": self.surrogate_epochs}
        else:
            surrogate = {"source": "given"}
        # a record, not part of the poisons: bf16 inference where the CPU has it (about twice as fast)
        surrogate["test_accuracy"] = evaluate(model, dataset.x_test, dataset.y_test, num_classes=dataset.num_classes,
                                              precision="bf16" if bf16_supported() else "fp32")["accuracy"]
        x_adv, correct_before, correct_after = fgsm_images(model, dataset.x_train[chosen], dataset.y_train[chosen],
                                                           eps_pixel=eps_pixel, batch_size=self.batch_size)
        x_new = dataset.x_train.copy()
        x_new[chosen] = x_adv
        is_poison = np.zeros(len(dataset.y_train), dtype=bool)
        is_poison[chosen] = True
        n = max(len(chosen), 1)
        extras = {"eps_used": eps, "eps_units_used": units, "eps_pixel": eps_pixel, "pixel_std": pixel_std, "surrogate": surrogate,
                  "n_poison": int(len(chosen)),
                  "surrogate_accuracy_on_poisons_before": correct_before / n,
                  "surrogate_accuracy_on_poisons_after": correct_after / n}
        return PoisonPlan(x_train=x_new, y_train=dataset.y_train.copy(), is_poison=is_poison, extras=extras)


def fgsm_images(model: nn.Module, x: np.ndarray, y: np.ndarray, *, eps_pixel: float,
                batch_size: int = 500) -> tuple[np.ndarray, int, int]:
    """One FGSM step on uint8 images, in float32 and in pixel space.

    Parameters
    ----------
    model : nn.Module
        Takes float pixels in [0, 1], shape (B, C', H, W), and returns logits (B, K).
    x : np.ndarray (N, C, H, W) uint8
    y : np.ndarray (N,) int
        The labels the loss is computed against (the true ones: the step increases the loss).
    eps_pixel : float
        Step in [0, 1] pixel units.
    batch_size : int
        Images per gradient computation.

    Returns
    -------
    x_adv : np.ndarray (N, C, H, W) uint8
        ``round(255 * clamp(x/255 + eps_pixel * sign(grad), 0, 1))``.
    correct_before, correct_after : int
        How many of the N the model classifies correctly before and after the step.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    in_channels = getattr(model, "in_channels", x.shape[1])
    x_adv = np.empty_like(x)
    correct_before = correct_after = 0
    try:
        for start in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[start:start + batch_size].astype(np.float32) / 255.0).to(device)
            yb = torch.from_numpy(np.asarray(y[start:start + batch_size], dtype=np.int64)).to(device)
            xb.requires_grad_(True)
            logits = model(_to_channels(xb, in_channels))
            # summed, not averaged: each image's gradient is its own loss's, whatever the batch size
            loss = nn.functional.cross_entropy(logits.float(), yb, reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            with torch.no_grad():
                stepped = (xb + eps_pixel * grad.sign()).clamp_(0.0, 1.0)
                quantised = torch.round(stepped * 255.0)
                correct_before += int((logits.argmax(1) == yb).sum())
                after = model(_to_channels(quantised / 255.0, in_channels))
                correct_after += int((after.argmax(1) == yb).sum())
            x_adv[start:start + batch_size] = quantised.to(torch.uint8).cpu().numpy()
    finally:
        model.train(was_training)
    return x_adv, correct_before, correct_after


def _check_model(model: Any, dataset: Dataset) -> None:
    """Refuse a surrogate that is not a module or does not output one logit per class of ``dataset``."""
    if not isinstance(model, nn.Module):
        raise PoisonlabError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = next(model.parameters()).device
    probe = torch.from_numpy(dataset.x_train[:1].astype(np.float32) / 255.0).to(device)
    was_training = model.training
    model.eval()  # a probe in training mode would move batch-norm statistics
    try:
        with torch.no_grad():
            logits = model(_to_channels(probe, getattr(model, "in_channels", probe.shape[1])))
    except RuntimeError as exc:
        raise PoisonlabError(f"surrogate model cannot take images of shape {tuple(probe.shape[1:])}: "
                             f"{exc}") from None
    finally:
        model.train(was_training)
    if logits.ndim != 2 or logits.shape[1] != dataset.num_classes:
        raise PoisonlabError(f"surrogate returns logits of shape {tuple(logits.shape)}, "
                             f"expected (batch, {dataset.num_classes})")


def _to_channels(x: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Grayscale batches are repeated to the model's channels, as in training (gradients sum back)."""
    return x.expand(-1, in_channels, -1, -1) if x.shape[1] != in_channels else x


def _model_std(model: nn.Module) -> float:
    """The normalisation std a model applies to its [0, 1] input (MNIST's when it has no ``std`` buffer)."""
    std = getattr(model, "std", None)
    return float(std) if isinstance(std, torch.Tensor) and std.numel() == 1 else MNIST_STD


__all__ = ["EPS_UNITS", "FGSM", "fgsm_images"]
