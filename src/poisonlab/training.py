"""Fast, deterministic training and evaluation on in-memory uint8 images.

Batches are sliced from one uint8 tensor (no per-sample Python, no DataLoader workers), the model runs
in ``channels_last`` memory format, and Adam or Nesterov SGD follows a one-cycle learning-rate schedule.
The same seed gives the same weights and metrics on the same machine and thread count.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from poisonlab import __version__
from poisonlab._io import atomic_path, write_json
from poisonlab.augment import AUGMENTATIONS, TTAS, random_crop_flip
from poisonlab.errors import PoisonlabError
from poisonlab.models import build_model, count_parameters
from poisonlab.models.airnet import WHITEN_SAMPLES

# ``TrainConfig.precision``: bf16 autocast, plain float32, or bf16 where the CPU has native support
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
# the arithmetic of a forward pass at inference (a resolved precision)
INFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
# ``TrainConfig.device``: CUDA when a GPU is present, or one named
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# ``TrainConfig.optimizer``: Adam, or SGD with Nesterov momentum (the CIFAR speed-training recipe)
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """How to train a victim model.

    Parameters
    ----------
    epochs : int
        Passes over the training set.
    batch_size : int
    lr : float
        Peak learning rate of the one-cycle schedule.
    weight_decay : float
        L2 penalty as the optimizer applies it (Adam's coupled form; SGD's usual one).
    optimizer : {"adam", "sgd"}
        Adam, or SGD with Nesterov momentum; the one-cycle schedule cycles Adam's beta1 or SGD's momentum
        between 0.85 and 0.95 (Smith 2018).
    label_smoothing : float
        In [0, 1): the cross-entropy target puts this much mass uniformly over the classes (Szegedy et al.
        2016); it helps short trainings on colour images.
    seed : int
        Seeds the initial weights and the batch order.
    model : str
        A name from :data:`poisonlab.models.MODEL_NAMES`.
    in_channels : int
        Channels the model sees (the paper repeats grayscale to 3).
    channels_last : bool
        NHWC memory format for the convolutions (faster on CPU).
    precision : str
        ``"bf16"``: bfloat16 autocast for the forward and backward passes, float32 weights and optimizer
        (faster on CPUs with AVX-512 BF16 or AMX, see docs/measurements.md); ``"fp32"``: plain float32; ``"auto"``: bf16
        where the CPU has native support, else fp32. :func:`evaluate` and :func:`extract_features` take the
        same choice (``precision=config.resolved_precision()``); they default to float32.
    steps : int or None
        Total optimizer steps; ``None`` means ``epochs`` passes. With ``steps`` the batches run through
        fresh permutations of the data until that many steps are done (``epochs`` is then ignored), so
        trainings on sets of different sizes can get the same budget of updates.
    augment : {"auto", "none", "crop-flip"}
        On-the-fly augmentation of each uint8 batch: a random crop of the image padded by 4 pixels and a
        random horizontal flip (the standard CIFAR recipe). ``"auto"``: crop-flip for colour images, none
        for grey ones (a flipped digit is another glyph). Its randomness has its own generator, so the
        batch order is the same with or without it.
    tta : {"auto", "none", "flip"}
        Test-time augmentation where the model is evaluated (accuracy, predictions of targets):
        ``"flip"`` averages the logits of each image and of its mirror image; ``"auto"``: flip when the
        training flipped (``augment`` resolves to crop-flip), none otherwise. Features are never augmented.
    device : {"auto", "cpu", "cuda"}
        Where the model trains and runs; ``"auto"`` is CUDA when a GPU is present. The same seed gives
        the same numbers on the same device (and thread count), not across devices.
    """

    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    model: str = "paper-cnn"
    in_channels: int = 3
    channels_last: bool = True
    precision: str = "auto"
    steps: int | None = None
    augment: str = "auto"
    device: str = "auto"
    optimizer: str = "adam"
    label_smoothing: float = 0.0
    tta: str = "auto"

    def __post_init__(self) -> None:
        for name, value, choices in (("precision", self.precision, PRECISIONS), ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("tta", self.tta, TTAS),
                                     ("augment", self.augment, AUGMENTATIONS), ("device", self.device, DEVICES)):
            if value not in choices:
                raise PoisonlabError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        if self.epochs < 1:
            raise PoisonlabError(f"epochs must be >= 1, got {self.epochs}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise PoisonlabError(f"steps must be a positive integer or None, got {self.steps!r}")
        if self.batch_size < 1:
            raise PoisonlabError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise PoisonlabError(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise PoisonlabError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise PoisonlabError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        if self.resolved_device() == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if bf16_supported() else "fp32"

    def resolved_device(self) -> str:
        """``"cpu"`` or ``"cuda"``; asking for CUDA where there is none is a user error."""
        if self.device == "cuda" and not torch.cuda.is_available():
            raise PoisonlabError("device 'cuda' asked for, but no CUDA GPU is available (use --device cpu or auto)")
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def resolved_augment(self, channels: int) -> str:
        """``"crop-flip"`` or ``"none"`` for images with ``channels`` channels."""
        if self.augment != "auto":
            return self.augment
        return "crop-flip" if channels == 3 else "none"

    def resolved_tta(self, channels: int) -> str:
        """``"flip"`` or ``"none"``: the evaluation of a model trained on images with ``channels`` channels."""
        if self.tta != "auto":
            return self.tta
        return "flip" if self.resolved_augment(channels) == "crop-flip" else "none"


def bf16_supported() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass
class TrainResult:
    model: nn.Module
    seconds: float
    epoch_losses: list[float] = field(default_factory=list)
    images_per_second: float = 0.0
    steps: int = 0  # optimizer steps taken


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


def epoch_steps(n: int, batch_size: int) -> int:
    """Optimizer steps in one pass over ``n`` samples (the last batch may be short)."""
    return (n + batch_size - 1) // batch_size


def pixel_stats(x: np.ndarray) -> tuple[float, float]:
    """Exact mean and (population) standard deviation of all pixels, in [0, 1] units (rounded to 4
    decimals). uint8 images go through a 256-bin histogram: exact, and cheaper than float64 sums, which
    every training pays."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        counts = np.bincount(x.reshape(-1), minlength=256).astype(np.float64)
        values = np.arange(256, dtype=np.float64)
        n = max(counts.sum(), 1.0)
        mean = float((counts * values).sum() / n)
        std = float(np.sqrt((counts * (values - mean) ** 2).sum() / n))
    else:
        flat = x.reshape(-1).astype(np.float64)
        mean, std = float(flat.mean()), float(flat.std())
    return round(mean / 255.0, 4), round(max(std / 255.0, 1e-3), 4)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, at ``config.lr`` (the schedule then sets the rate)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                               weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def fit_data_dependent_init(model: nn.Module, x_u8: torch.Tensor, config: TrainConfig) -> None:
    """Let a model with a ``fit_whitening(x)`` method (airnet) fit its first layer to a sample of the training
    images: ``WHITEN_SAMPLES`` drawn with ``config.seed`` (a class-sorted folder's first images are one class)."""
    fit = getattr(model, "fit_whitening", None)
    if fit is None:
        return
    idx = torch.randperm(len(x_u8), generator=torch.Generator().manual_seed(config.seed + 2))[:WHITEN_SAMPLES]
    fit(_as_float(x_u8[idx.to(x_u8.device)], config.in_channels, False))


def train(x: np.ndarray, y: np.ndarray, *, num_classes: int, config: TrainConfig = TrainConfig(),
          progress: bool = True, desc: str = "train",
          on_epoch: Callable[[int, int, float, float], None] | None = None) -> TrainResult:
    """Train a fresh model on uint8 images ``x`` (N, C, H, W) and labels ``y`` (N,).

    ``on_epoch(epoch, epochs, mean_loss, seconds_so_far)`` is called after every pass (1-based ``epoch``).
    ``progress``: bars in a terminal, a line per pass on stderr otherwise.
    Returns the trained model (in eval mode) and timings (``epoch_losses`` has one mean loss per pass).
    """
    if len(x) == 0:
        raise PoisonlabError("cannot train on an empty training set")
    if len(x) != len(y):
        raise PoisonlabError(f"{len(x)} images but {len(y)} labels")
    torch.manual_seed(config.seed)
    mean, std = pixel_stats(x)
    model = build_model(config.model, in_channels=config.in_channels, image_size=x.shape[-1],
                        num_classes=num_classes, mean=mean, std=std)
    device = torch.device(config.resolved_device())
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x_u8, y_t = to_tensor(x).to(device), torch.tensor(np.asarray(y), dtype=torch.int64, device=device)
    fit_data_dependent_init(model, x_u8, config)
    # augmentation draws from its own generator: the batch order is the same with or without it
    augment = config.resolved_augment(x.shape[1]) == "crop-flip"
    augment_generator = torch.Generator().manual_seed(config.seed + 1) if augment else None
    n = len(x_u8)
    steps_per_epoch = epoch_steps(n, config.batch_size)
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    passes = (total_steps + steps_per_epoch - 1) // steps_per_epoch
    optimizer = make_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    generator = torch.Generator().manual_seed(config.seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    use_bf16 = config.resolved_precision() == "bf16"
    bars = sys.stderr.isatty()  # progress as bars in a terminal, as lines anywhere else
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    seen = 0
    for epoch in range(passes):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), dtype=torch.float64, device=device)
        steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        bar = tqdm(range(steps), desc=f"{desc} epoch {epoch + 1}/{passes}", leave=False,
                   disable=not (progress and bars), mininterval=0.5)
        samples = 0
        for step in bar:
            idx = order[step * config.batch_size:(step + 1) * config.batch_size].to(device)
            xb_u8 = x_u8[idx]
            if augment:
                xb_u8 = random_crop_flip(xb_u8, generator=augment_generator)
            xb = _as_float(xb_u8, config.in_channels, config.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(xb)
            loss = loss_fn(logits.float(), y_t[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach() * len(idx)
            samples += len(idx)
        seen += samples
        losses.append(float(total) / samples)
        if progress and not bars:  # a log, not a terminal: a line per pass, no carriage returns
            print(f"poisonlab: {desc} epoch {epoch + 1}/{passes}, loss {losses[-1]:.4f} "
                  f"({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
        if on_epoch is not None:
            on_epoch(epoch + 1, passes, losses[-1], time.perf_counter() - start)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model=model, seconds=seconds, epoch_losses=losses,
                       images_per_second=seen / seconds if seconds > 0 else 0.0, steps=total_steps)


@torch.inference_mode()
def predict_logits(model: nn.Module, x: np.ndarray, *, batch_size: int = 500, precision: str = "fp32",
                   tta: str = "none") -> np.ndarray:
    """Logits (N, K) float32 for uint8 images (N, C, H, W); ``precision="bf16"`` runs under bf16 autocast
    (about twice as fast on CPUs with native bf16; what a model trained in bf16 saw); ``tta="flip"``: the
    mean of the logits of each image and of its left-right mirror (for models trained with flips)."""
    if tta not in ("none", "flip"):
        raise PoisonlabError(f"tta must be none or flip, got {tta!r}")
    if tta == "flip":
        return _run(model, x, batch_size, lambda m, xb: (m(xb) + m(xb.flip(3))) / 2, precision)
    return _run(model, x, batch_size, lambda m, xb: m(xb), precision)


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


def describe_model(model: nn.Module) -> dict[str, Any]:
    return {"name": type(model).__name__, "params": count_parameters(model)}


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Write the state dict as safetensors, atomically (no pickle in the file)."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load safetensors weights (no pickle) into ``model``; a missing or mismatched file is a user error."""
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:
        raise PoisonlabError(f"{path}: cannot load weights: {exc}") from None
    return model


def rebuild_model(config: TrainConfig, image_shape: tuple[int, ...], num_classes: int,
                  weights: Mapping[str, np.ndarray] | str | Path) -> nn.Module:
    """The model :func:`train` builds with ``config`` for images of ``image_shape`` (C, H, W), holding
    ``weights`` (a state dict of NumPy arrays, or a ``.safetensors`` file), on ``config``'s device, in
    eval mode.

    The one way a trained model is brought back: from a worker's result, a stage on disk or a surrogate file.
    """
    model = build_model(config.model, in_channels=config.in_channels, image_size=image_shape[-1],
                        num_classes=num_classes)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if isinstance(weights, Mapping):
        model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()})
    else:
        if not Path(weights).is_file():
            raise PoisonlabError(f"{weights}: no such file")
        load_weights(model, weights)
    return model.to(config.resolved_device()).eval()


def machine_info(precision: str = "auto") -> dict[str, Any]:
    """Where numbers were measured: platform, CPU model, cores, torch threads, Python, resolved precision."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "python": sys.version.split()[0],
            "precision": TrainConfig(precision=precision).resolved_precision()}


def train_and_record(ds, config: TrainConfig, out: Path, *, progress: bool = True) -> dict[str, Any]:
    """Train on ``ds``, evaluate on its test split, write ``out/metrics.json`` and ``out/model.safetensors``."""
    result = train(ds.x_train, ds.y_train, num_classes=ds.num_classes, config=config, progress=progress)
    metrics = evaluate(result.model, ds.x_test, ds.y_test, num_classes=ds.num_classes,
                       precision=config.resolved_precision(), tta=config.resolved_tta(ds.channels))
    metrics.update(
        params=count_parameters(result.model), seconds=round(result.seconds, 3), epochs=config.epochs,
        seed=config.seed, images_per_second=round(result.images_per_second, 1), epoch_losses=result.epoch_losses,
        dataset=ds.name, n_train=int(len(ds.y_train)), classes=list(ds.classes), config=config.to_dict(),
        precision=config.resolved_precision(), poisonlab_version=__version__, torch_version=torch.__version__,
        machine=machine_info(config.precision),
    )
    if getattr(ds, "attack", None):
        metrics["attack"] = ds.attack
        metrics["n_poison"] = int(ds.is_poison.sum())
    save_weights(result.model, out / "model.safetensors")
    write_json(out / "metrics.json", metrics)
    return metrics


__all__ = ["AUGMENTATIONS", "DEVICES", "INFERENCE_PRECISIONS", "OPTIMIZERS", "PRECISIONS", "TTAS", "TrainConfig",
           "TrainResult", "bf16_supported", "describe_model", "epoch_steps", "evaluate", "extract_features",
           "load_weights", "machine_info", "make_optimizer", "metrics_from_predictions", "pixel_stats",
           "predict_logits", "random_crop_flip", "rebuild_model", "save_weights", "to_tensor", "train",
           "train_and_record"]
