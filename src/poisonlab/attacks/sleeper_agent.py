"""Sleeper Agent: a hidden-trigger, clean-label backdoor crafted by gradient matching, from scratch.

Souri, Fowl, Chellappa, Goldblum and Goldstein, "Sleeper Agent: Scalable Hidden Trigger Backdoors for
Neural Networks Trained from Scratch", NeurIPS 2022.

The poisons are ``round(rate * N)`` training images of the *target* class, labels untouched, with bounded
perturbations (``||delta||_inf <= eps``) and no trigger in them. They are crafted so that their training
gradient points the way of the gradient that would teach the backdoor: that of
``CE(f(x_s + trigger), y_target)`` over triggered training images ``x_s`` of the source class (or of every
class but the target). A victim trained from scratch on the poisoned set then classifies triggered source
images as the target, while the trigger never appears in its training data.

Three things set it apart from Witches' Brew (:mod:`poisonlab.attacks.gradient_matching`, whose crafting
loop it shares: signed Adam, step drops, projection, differentiable shifts and flips):

- the adversarial gradient is a mean over many triggered source images, not one test image;
- the poisons are the target-class images with the largest loss gradient on the surrogate (here the
  gradient with respect to the linear head, ``||softmax - onehot|| * ||penultimate||``, a cheap stand-in
  for the full parameter-gradient norm the paper ranks by), or random ones;
- the surrogate is retrained from scratch on the current poisoned set ``retrains`` times, evenly spaced
  over the crafting steps, so that the poisons keep working on models that have seen them.

The trigger is a patch (default: an 8x8 random-noise patch on 32x32 images, a quarter of the side, at the
bottom-right corner, as in the paper's CIFAR-10 experiments, which place it at random at test time); the
attack record's ``backdoor`` entry holds it, so ``poisonlab validate`` makes the triggered test images of
the attacked classes from the file alone and reports the attack success rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from poisonlab.attacks.backdoor import BackdoorRecord
from poisonlab.attacks.badnets import BadNets
from poisonlab.attacks.base import Log, PoisonPlan, check_int, check_number, exact_count, quiet
from poisonlab.attacks.gradient_matching import (CRAFT_PRECISIONS, alignment_loss, craft_delta, crafting_augmentation,
                                                 fp32_copy, target_gradient, to_uint8, unit_pixels)
from poisonlab.attacks.triggers import Trigger, make_trigger
from poisonlab.data.dataset import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.inference import extract_features, predict_logits
from poisonlab.models import MODELS, registered_name
from poisonlab.seeding import deterministic_kernels
from poisonlab.training import DEVICES, TrainConfig, resolve_device, train

SELECTIONS = ("gradient-norm", "random")


@dataclass(frozen=True)
class SleeperAgent(BadNets):
    """Clean-label hidden-trigger backdoor: target-class poisons whose gradient teaches the trigger.

    Parameters
    ----------
    rate : float
        Share in (0, 1] of the whole training split that becomes poisons: ``round(rate * N)`` images of
        ``target_class`` (the paper's budget: 1% on CIFAR-10, 500 images).
    target_class, source_class
        Triggered images of ``source_class`` (``None``: of every class but the target) should land in
        ``target_class``.
    trigger, pattern_seed, position, margin
        The patch, as in :class:`~poisonlab.attacks.badnets.BadNets` (default a ``noise`` patch at the
        bottom-right corner, no margin).
    size : int or None
        Patch side in pixels; ``None``: a quarter of the image side (8 on CIFAR-10, 7 on MNIST).
    eps : float
        L-infinity bound of the perturbation in [0, 1] pixel units (16/255, the paper's).
    steps, tau, augment, max_shift, precision
        The crafting loop, as in :class:`~poisonlab.attacks.gradient_matching.GradientMatching`.
    retrains : int
        Times the surrogate is retrained from scratch on the current poisons during crafting (the paper: 4).
    surrogate_model : str
        The registered model this attack trains when no surrogate is passed; a passed surrogate is
        retrained as its own kind.
    surrogate_epochs : int or None
        Epochs of every (re)trained surrogate; ``None``: the model's recipe (``poisonlab.models.RECIPES``).
    source_samples : int
        Triggered source training images the adversarial gradient is averaged over (fewer when the
        source has fewer).
    selection : {"gradient-norm", "random"}
        Which target-class images become poisons.
    device : {"auto", "cpu", "cuda"}
        Where the surrogates train and crafting runs (``"auto"``: CUDA when a GPU is present); the record's
        ``crafting_device`` says which.
    """

    trigger: str = "noise"
    position: str = "bottom-right"
    margin: int = 0
    eps: float = 16 / 255
    steps: int = 250
    tau: float = 0.1
    retrains: int = 4
    surrogate_model: str = "paper-cnn"
    surrogate_epochs: int | None = None
    source_samples: int = 1000
    selection: str = "gradient-norm"
    augment: bool = True
    max_shift: int | None = None
    precision: str = "fp32"
    device: str = "auto"

    name: ClassVar[str] = "sleeper-agent"
    uses_model: ClassVar[bool] = True

    def check_trigger_params(self) -> None:
        super().check_trigger_params()
        check_number(self.eps, "eps (in [0, 1] pixel units, i.e. E/255)", high=1.0)
        check_number(self.tau, "tau")
        for what in ("steps", "source_samples"):
            check_int(getattr(self, what), what)
        check_int(self.retrains, "retrains", minimum=0)
        if self.retrains >= self.steps:
            raise PoisonlabError(f"retrains ({self.retrains}) must be fewer than steps ({self.steps})")
        if self.surrogate_epochs is not None:
            check_int(self.surrogate_epochs, "surrogate_epochs")
        MODELS.check_name(self.surrogate_model)
        for what, value, allowed in (("selection", self.selection, SELECTIONS),
                                     ("precision", self.precision, CRAFT_PRECISIONS),
                                     ("device", self.device, DEVICES)):
            if value not in allowed:
                raise PoisonlabError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
        if not isinstance(self.augment, bool):
            raise PoisonlabError(f"augment must be true or false, got {self.augment!r}")
        if self.max_shift is not None:
            check_int(self.max_shift, "max_shift", minimum=0)

    def trigger_for(self, image_shape: tuple[int, ...]) -> Trigger:
        size = max(1, min(image_shape[1:]) // 4) if self.size is None else self.size
        return make_trigger(self.trigger, image_shape, size=size, position=self.position, margin=int(self.margin),
                            seed=int(self.pattern_seed))

    def _eligible(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y) == self.target_class  # clean label: the poisons are the target's own images

    def eligible_description(self) -> str:
        return f"target class {self.target_class}"

    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None,
               log: Log = quiet) -> PoisonPlan:
        device = torch.device(resolve_device(self.device))
        with deterministic_kernels(device):
            return self._craft_on(dataset, device, rng=rng, model=model, log=log)

    def _craft_on(self, dataset: Dataset, device: torch.device, *, rng: np.random.Generator, model: Any,
                  log: Log) -> PoisonPlan:
        start = time.perf_counter()
        name = self.surrogate_model if model is None else registered_name(model)
        if model is None:
            model = self._train_surrogate(dataset, dataset.x_train, name, int(rng.integers(10_000, 2**31)), log)
        surrogate_seconds = round(time.perf_counter() - start, 3)
        trigger = self.trigger_for(tuple(dataset.x_train.shape[1:]))
        poison_idx = self._pick_poisons(dataset, model, rng)
        record = BackdoorRecord(int(self.target_class), None if self.source_class is None else int(self.source_class),
                                trigger)
        sources = np.flatnonzero(record.attacked(dataset.y_train))
        sources = np.sort(rng.choice(sources, size=min(self.source_samples, len(sources)), replace=False))
        triggered = unit_pixels(trigger.apply(dataset.x_train[sources])).to(device)
        target_labels = torch.full((len(sources),), int(self.target_class), dtype=torch.int64, device=device)
        base = unit_pixels(dataset.x_train[poison_idx]).to(device)
        labels = torch.as_tensor(dataset.y_train[poison_idx], dtype=torch.int64).to(device)
        max_shift, flip = crafting_augmentation(dataset, augment=self.augment, max_shift=self.max_shift)
        retrain_at = {self.steps * k // (self.retrains + 1) for k in range(1, self.retrains + 1)}
        seeds = [int(s) for s in rng.integers(10_000, 2**31, size=self.retrains)]
        state: dict[str, Any] = {"model": fp32_copy(model, device), "retrain_seconds": []}

        def refresh(step: int, delta: torch.Tensor) -> tuple[list[nn.Module], list] | None:
            if step not in retrain_at:
                return None
            k = len(state["retrain_seconds"])
            x_now = dataset.x_train.copy()
            x_now[poison_idx] = to_uint8(base + delta)
            began = time.perf_counter()
            state["model"] = fp32_copy(self._train_surrogate(dataset, x_now, name, seeds[k], log), device)
            state["retrain_seconds"].append(round(time.perf_counter() - began, 3))
            return [state["model"]], [target_gradient(state["model"], triggered, target_labels)]

        log(f"sleeper-agent: {len(poison_idx)} poisons of class {self.target_class}, {len(sources)} triggered "
            f"source images, {self.steps} steps, {self.retrains} surrogate retraining(s)")
        began = time.perf_counter()
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        first = state["model"]
        delta, history = craft_delta([first], [target_gradient(first, triggered, target_labels)], base, labels,
                                     eps=self.eps, steps=self.steps, tau=self.tau, max_shift=max_shift,
                                     flip=flip, generator=generator, precision=self.precision,
                                     refresh=refresh)
        crafting_seconds = round(time.perf_counter() - began - sum(state["retrain_seconds"]), 3)
        last = state["model"]
        final = alignment_loss([last], [target_gradient(last, triggered, target_labels)], base + delta, labels,
                               max_shift=0, generator=None).item()
        log(f"sleeper-agent: alignment loss {final:.4f} on the last surrogate, {crafting_seconds:.1f} s crafting")
        x_new = dataset.x_train.copy()
        x_new[poison_idx] = to_uint8(base + delta)
        is_poison = np.zeros(len(x_new), dtype=bool)
        is_poison[poison_idx] = True
        extras = {"mode": self.mode, "n_poison": int(len(poison_idx)), "n_source_samples": int(len(sources)),
                  "surrogate_model": name, "final_alignment_loss": round(final, 6), "alignment_loss_history": history,
                  "crafting_augmentation": {"max_shift": int(max_shift), "flip": flip},
                  "surrogate_seconds": surrogate_seconds, "retrain_seconds": state["retrain_seconds"],
                  "crafting_seconds": crafting_seconds, "crafting_device": device.type, **record.to_record()}
        return PoisonPlan(x_train=x_new, y_train=dataset.y_train.copy(), is_poison=is_poison, extras=extras)

    def _train_surrogate(self, dataset: Dataset, x: np.ndarray, name: str, seed: int, log: Log) -> nn.Module:
        config = TrainConfig.from_recipe(name, in_channels=dataset.channels, epochs=self.surrogate_epochs, seed=seed,
                                         device=self.device)
        log(f"sleeper-agent: training a {name} surrogate ({config.epochs} epoch(s), seed {seed})")
        return train(x, dataset.y_train, num_classes=dataset.num_classes, config=config, progress=False,
                     desc="surrogate").model

    def _pick_poisons(self, dataset: Dataset, model: nn.Module, rng: np.random.Generator) -> np.ndarray:
        """``round(rate * N)`` target-class training indices (sorted), by ``selection``."""
        pool = np.flatnonzero(dataset.y_train == self.target_class)
        count = exact_count(self.rate, len(dataset.y_train))
        if self.selection == "random":
            return np.sort(rng.choice(pool, size=count, replace=False))
        x = dataset.x_train[pool]
        probs = torch.softmax(torch.from_numpy(predict_logits(model, x)), dim=1).numpy()
        probs[:, self.target_class] -= 1.0
        norms = np.linalg.norm(probs, axis=1) * np.linalg.norm(extract_features(model, x), axis=1)
        order = np.lexsort((pool, -norms))  # largest first, ties by index
        return np.sort(pool[order[:count]])


__all__ = ["SELECTIONS", "SleeperAgent"]
