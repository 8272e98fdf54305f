"""Fast, deterministic training on in-memory uint8 images (evaluation and features: :mod:`poisonlab.inference`).

Batches are sliced from one uint8 tensor (no per-sample Python, no DataLoader workers), the model runs
in ``channels_last`` memory format, and Adam or Nesterov SGD follows a one-cycle learning-rate schedule, or
airbench's (:mod:`poisonlab.schedules`).
The same seed gives the same weights and metrics on the same machine and thread count, and on the same
GPU (cuDNN's deterministic algorithms while a model trains there).
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
from poisonlab.augment import AUGMENTATIONS, TTAS, random_crop_flip, random_shift_flip
from poisonlab.errors import PoisonlabError
from poisonlab.inference import (INFERENCE_PRECISIONS, _as_float, evaluate, extract_features,
                                 metrics_from_predictions, predict_logits, to_tensor)
from poisonlab.models import RECIPES, build_model, count_parameters
from poisonlab.models.airnet import WHITEN_SAMPLES
from poisonlab.schedules import SCHEDULES, Lookahead, airbench_rate, airbench_sgd, check_optimizer
from poisonlab.seeding import deterministic_kernels

# ``TrainConfig.precision``: bf16 autocast, plain float32, or bf16 where the CPU has native support
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
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
    schedule : {"one-cycle", "airbench"}
        ``"one-cycle"``: Smith's one-cycle schedule of the rate and momentum at peak ``lr``. ``"airbench"``
        (with ``optimizer="sgd"``; Jordan 2024): the rate warms up linearly from 0.2 to 1 of ``lr`` over
        23% of the steps and decays linearly to 0.07 of it; Nesterov momentum 0.85; batch-norm biases at
        64x the rate with 1/64 of the decay coefficient (the same decay per step); lookahead (every 5 steps
        the weights move to an exponential average of themselves, the final weights are that average); a
        model with a ``start_epoch(epoch)`` method is told each pass (airnet-wide freezes its whitening
        bias after 3). Why: the schedule that trains airbench's net to 94% in 10 epochs.
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
    augment : {"auto", "none", "crop-flip", "shift-flip"}
        On-the-fly augmentation of each uint8 batch. ``"crop-flip"``: a random crop of the image padded by 4
        pixels and a random horizontal flip (the standard CIFAR recipe); ``"shift-flip"``: airbench's random
        shift of up to 2 pixels with reflected borders and alternating flips (each image's random flip is
        inverted every other pass). ``"auto"``: crop-flip for colour images, none for grey ones (a flipped
        digit is another glyph). Its randomness has its own generator, so the batch order is the same with
        or without it.
    tta : {"auto", "none", "flip", "flip-shift"}
        Test-time augmentation where the model is evaluated (accuracy, predictions of targets):
        ``"flip"`` averages the logits of each image and of its mirror image; ``"flip-shift"`` adds the
        same at one-pixel shifts (:func:`poisonlab.inference.predict_logits`); ``"auto"``: flip when the
        training flipped, none otherwise. Features are never augmented.
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
    schedule: str = "one-cycle"

    def __post_init__(self) -> None:
        for name, value, choices in (("precision", self.precision, PRECISIONS), ("optimizer", self.optimizer, OPTIMIZERS),
                                     ("tta", self.tta, TTAS), ("schedule", self.schedule, SCHEDULES),
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
        check_optimizer(self.schedule, self.optimizer)

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data; a field newer than the stage keys and records already written is left
        out at its default, so those keys stay the same and old runs resume."""
        out = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if out[name] == default:
                del out[name]
        return out

    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        if self.resolved_device() == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if bf16_supported() else "fp32"

    def resolved_device(self) -> str:
        """``"cpu"`` or ``"cuda"`` (:func:`resolve_device`)."""
        return resolve_device(self.device)

    @classmethod
    def from_recipe(cls, model: str, *, in_channels: int, epochs: int | None = None, **changes: Any) -> "TrainConfig":
        """``model``'s training recipe (``poisonlab.models.RECIPES``: epochs, batch size, optimizer, learning
        rate, weight decay, label smoothing, and where a model needs them schedule, augmentation and TTA) for
        images of ``in_channels``; ``epochs`` (``None``: the recipe's) and any other field in ``changes``
        override it."""
        recipe = dict(RECIPES[model])
        recipe["epochs"] = int(epochs or recipe["epochs"])
        return cls(**{**recipe, **changes, "model": model, "in_channels": in_channels})

    def resolved_augment(self, channels: int) -> str:
        """``"crop-flip"``, ``"shift-flip"`` or ``"none"`` for images with ``channels`` channels."""
        if self.augment != "auto":
            return self.augment
        return "crop-flip" if channels == 3 else "none"

    def resolved_tta(self, channels: int) -> str:
        """``"flip"``, ``"flip-shift"`` or ``"none"``: the evaluation of a model trained on images with
        ``channels`` channels."""
        if self.tta != "auto":
            return self.tta
        return "none" if self.resolved_augment(channels) == "none" else "flip"


# fields added after stage keys were first written, with the default that keeps the older behaviour
_LATER_FIELDS: dict[str, Any] = {"schedule": "one-cycle"}


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a name in :data:`DEVICES` (``"auto"``: CUDA when a GPU is present); asking
    for CUDA where there is none is a user error."""
    if device == "cuda" and not torch.cuda.is_available():
        raise PoisonlabError("device 'cuda' asked for, but no CUDA GPU is available (use --device cpu or auto)")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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
    """The optimizer ``config.optimizer`` names, at ``config.lr`` (the schedule then sets the rate); under
    the airbench schedule :func:`poisonlab.schedules.airbench_sgd`."""
    if config.schedule == "airbench":
        return airbench_sgd(model, config.lr, config.weight_decay)
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
    with deterministic_kernels(device):
        return _train(model, x, y, config, device, progress=progress, desc=desc, on_epoch=on_epoch)


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, config: TrainConfig, device: torch.device, *,
           progress: bool, desc: str, on_epoch: Callable[[int, int, float, float], None] | None) -> TrainResult:
    """:func:`train`'s loop for a freshly built ``model``, run on ``device``."""
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    x_u8, y_t = to_tensor(x).to(device), torch.tensor(np.asarray(y), dtype=torch.int64, device=device)
    fit_data_dependent_init(model, x_u8, config)
    # augmentation draws from its own generator: the batch order is the same with or without it
    augment = config.resolved_augment(x.shape[1])
    augment_generator = torch.Generator().manual_seed(config.seed + 1) if augment != "none" else None
    n = len(x_u8)
    steps_per_epoch = epoch_steps(n, config.batch_size)
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    passes = (total_steps + steps_per_epoch - 1) // steps_per_epoch
    optimizer = make_optimizer(model, config)
    airbench = config.schedule == "airbench"
    if airbench:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: airbench_rate(step, total_steps))
        lookahead = Lookahead(model, total_steps)
    else:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps)
    # airbench's alternating flip: one random bit per image, all of them inverted every other pass
    base_flips = torch.rand(n, generator=augment_generator) < 0.5 if augment == "shift-flip" else None
    generator = torch.Generator().manual_seed(config.seed)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    use_bf16 = config.resolved_precision() == "bf16"
    bars = sys.stderr.isatty()  # progress as bars in a terminal, as lines anywhere else
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    seen = 0
    done = 0
    trainable = [p.requires_grad for p in model.parameters()]  # start_epoch may freeze some for a while
    for epoch in range(passes):
        if airbench and callable(getattr(model, "start_epoch", None)):
            model.start_epoch(epoch)
        order = torch.randperm(n, generator=generator)
        total = torch.zeros((), dtype=torch.float64, device=device)
        steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        bar = tqdm(range(steps), desc=f"{desc} epoch {epoch + 1}/{passes}", leave=False,
                   disable=not (progress and bars), mininterval=0.5)
        samples = 0
        for step in bar:
            idx = order[step * config.batch_size:(step + 1) * config.batch_size].to(device)
            xb_u8 = x_u8[idx]
            if augment == "crop-flip":
                xb_u8 = random_crop_flip(xb_u8, generator=augment_generator)
            elif augment == "shift-flip":
                flips = base_flips[idx.cpu()] ^ bool(epoch % 2)
                xb_u8 = random_shift_flip(xb_u8, flips, generator=augment_generator)
            xb = _as_float(xb_u8, config.in_channels, config.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(xb)
            loss = loss_fn(logits.float(), y_t[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            done += 1
            if airbench:
                lookahead.step(model, done)
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
    for p, flag in zip(model.parameters(), trainable):  # the trained model as a rebuilt one would be
        p.requires_grad_(flag)
    model.eval()
    return TrainResult(model=model, seconds=seconds, epoch_losses=losses,
                       images_per_second=seen / seconds if seconds > 0 else 0.0, steps=total_steps)


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


__all__ = ["AUGMENTATIONS", "DEVICES", "INFERENCE_PRECISIONS", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "TTAS",
           "TrainConfig", "TrainResult", "bf16_supported", "describe_model", "epoch_steps", "evaluate", "extract_features",
           "load_weights", "machine_info", "make_optimizer", "metrics_from_predictions", "pixel_stats",
           "predict_logits", "random_crop_flip", "rebuild_model", "resolve_device", "save_weights", "to_tensor", "train",
           "train_and_record"]
