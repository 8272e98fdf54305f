"""Inference on in-memory uint8 images: logits, features from any layer, and test metrics.

Every poisonlab model, and any ``torch.nn.Module`` a user brings, is fed the way :func:`poisonlab.training.train`
feeds it: float pixels in [0, 1], batches sliced from one uint8 tensor, in the model's own memory format.
Kept apart from training so that detectors and reports that only read a model need not load the training loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from poisonlab.augment import shift_flip
from poisonlab.errors import PoisonlabError

# the arithmetic of a forward pass at inference (a resolved precision)
INFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> a uint8 tensor (a copy when ``x`` is read-only: torch wants writable memory)."""
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _batch(x_u8: torch.Tensor, idx: torch.Tensor | slice, in_channels: int, channels_last: bool) -> torch.Tensor:
    return _as_float(x_u8[idx], in_channels, channels_last)


def _as_float(xb_u8: torch.Tensor, in_channels: int, channels_last: bool) -> torch.Tensor:
    """A uint8 batch as the float pixels in [0, 1] a model takes, grey repeated to its channels."""
    xb = xb_u8.to(torch.float32).div_(255.0)
    if xb.shape[1] != in_channels:
        xb = xb.expand(-1, in_channels, -1, -1)
    return xb.contiguous(memory_format=torch.channels_last) if channels_last else xb.contiguous()


@torch.inference_mode()
def predict_logits(model: nn.Module, x: np.ndarray, *, batch_size: int = 500, precision: str = "fp32",
                   tta: str = "none") -> np.ndarray:
    """Logits (N, K) float32 for uint8 images (N, C, H, W); ``precision="bf16"`` runs under bf16 autocast
    (about twice as fast on CPUs with native bf16; what a model trained in bf16 saw).

    ``tta`` (for models trained with flips): ``"flip"``, the mean of the logits of each image and of its
    left-right mirror; ``"flip-shift"`` (airbench's), half that mean plus a quarter each of the same at a
    one-pixel shift up-left and down-right with reflected borders (six views).
    """
    if tta not in ("none", "flip", "flip-shift"):
        raise PoisonlabError(f"tta must be none, flip or flip-shift, got {tta!r}")
    return _run(model, x, batch_size, {"none": _plain, "flip": _mirrored, "flip-shift": _mirrored_shifted}[tta],
                precision)


def _plain(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return model(xb)


def _mirrored(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    return (model(xb) + model(xb.flip(3))) / 2


def _mirrored_shifted(model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    memory_format = torch.channels_last if xb.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format
    keep = torch.zeros(len(xb), dtype=torch.bool)
    logits = _mirrored(model, xb) / 2
    for d in (-1, 1):
        moved = shift_flip(xb, torch.full((len(xb), 2), d), keep).contiguous(memory_format=memory_format)
        logits = logits + _mirrored(model, moved) / 4
    return logits


@torch.inference_mode()
def extract_features(model: nn.Module, x: np.ndarray, *, layer: str | nn.Module | None = None, batch_size: int = 500,
                     precision: str = "fp32") -> np.ndarray:
    """Activations (N, D) float32 of uint8 images ``x`` (N, C, H, W), for any ``torch.nn.Module``.

    The model gets float pixels in [0, 1] (what :func:`train` feeds it; normalisation is the model's own
    business), a grey batch repeated to ``model.in_channels`` when the model has that attribute.

    Parameters
    ----------
    model : torch.nn.Module
    x : np.ndarray (N, C, H, W) uint8
    layer : str, torch.nn.Module or None
        Which activations:

        - ``None``: the model's ``penultimate(x)`` method when it has one (every poisonlab model: the
          layer before the classifier head), else the input of the model's last ``nn.Linear`` (the
          penultimate representation of a classifier that ends in a linear head).
        - a name from ``model.named_modules()`` (e.g. ``"layer4"``, ``"fc1"``) or a submodule itself: that
          module's output, flattened to (N, D).
    batch_size : int
    precision : {"fp32", "bf16"}
        The forward pass's arithmetic; bf16 is what a model trained with bf16 autocast saw.
    """
    if layer is None and callable(getattr(model, "penultimate", None)):
        return _run(model, x, batch_size, lambda m, xb: m.penultimate(xb), precision)
    if layer is None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise PoisonlabError(f"{type(model).__name__} has no penultimate() method and no nn.Linear layer; "
                                 "name the layer whose activations to take (layer=...)")
        module, take_input = linears[-1], True
    else:
        module, take_input = _find_layer(model, layer), False
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append(inputs[0] if take_input else output)

    def run(m: nn.Module, xb: torch.Tensor) -> torch.Tensor:
        captured.clear()
        m(xb)
        if not captured:
            raise PoisonlabError(f"layer {layer!r} did not run in the model's forward pass")
        return torch.flatten(captured[-1], 1)

    handle = module.register_forward_hook(hook)
    try:
        return _run(model, x, batch_size, run, precision)
    finally:
        handle.remove()


def _find_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """``layer`` as a submodule of ``model``: itself when it is one, else looked up by name."""
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in modules.values()):
            raise PoisonlabError(f"layer {type(layer).__name__} is not a submodule of {type(model).__name__}")
        return layer
    if layer not in modules or not layer:
        names = [n for n in modules if n]
        raise PoisonlabError(f"{type(model).__name__} has no layer {layer!r}; its layers: {', '.join(names[:20])}"
                             + (" ..." if len(names) > 20 else ""))
    return modules[layer]


def _run(model: nn.Module, x: np.ndarray, batch_size: int, fn, precision: str = "fp32") -> np.ndarray:
    if precision not in INFERENCE_PRECISIONS:
        raise PoisonlabError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    was_training = model.training
    model.eval()
    in_channels = getattr(model, "in_channels", x.shape[1])
    channels_last = next(model.parameters()).is_contiguous(memory_format=torch.channels_last) \
        if any(p.ndim == 4 for p in model.parameters()) else False
    x_u8 = to_tensor(x)
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        outs = [fn(model, _batch(x_u8, slice(i, i + batch_size), in_channels, channels_last).to(device)).float().cpu()
                for i in range(0, len(x_u8), batch_size)]
    model.train(was_training)
    return torch.cat(outs).numpy() if outs else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, *, num_classes: int,
             precision: str = "fp32", tta: str = "none") -> dict[str, Any]:
    """Accuracy, per-class accuracy and misclassification (fractions 0..1), and the confusion matrix.

    ``confusion_matrix[i][j]`` counts test samples of true class ``i`` predicted as ``j``; ``precision``
    and ``tta`` as in :func:`predict_logits`.
    """
    pred = predict_logits(model, x, precision=precision, tta=tta).argmax(axis=1)
    return metrics_from_predictions(np.asarray(y), pred, num_classes=num_classes)


def metrics_from_predictions(y: np.ndarray, pred: np.ndarray, *, num_classes: int) -> dict[str, Any]:
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)
    return {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
        "per_class_misclassification": [None if np.isnan(a) else float(1 - a) for a in per_class],
        "confusion_matrix": cm.tolist(),
        "n_test": int(cm.sum()),
    }


__all__ = ["INFERENCE_PRECISIONS", "evaluate", "extract_features", "metrics_from_predictions", "predict_logits",
           "to_tensor"]
