"""Gradient matching ("Witches' Brew"): clean-label targeted poisoning.

Geiping et al., "Witches' Brew: Industrial Scale Data Poisoning via Gradient Matching", ICLR 2021.

For each target test image ``x_t`` (true class ``y_t``) the attack picks an adversarial class
``y_adv != y_t`` and a few training images of class ``y_adv`` (the poisons). It adds bounded
perturbations ``delta`` (``||delta||_inf <= eps``) to the poisons, labels untouched, so that the
training gradient of the poisons points the same way as the gradient of the adversarial loss
``CE(f(x_t), y_adv)`` on a surrogate model trained on clean data:

    alignment loss = 1 - cos(grad_theta CE(f(x_p + delta), y_p), grad_theta CE(f(x_t), y_adv))

over all parameters ``theta``. A victim that trains on the poisons then takes steps that also lower
the adversarial loss of the target, so it tends to classify ``x_t`` as ``y_adv``.

The optimiser follows the reference implementation ("forest"): Adam fed the sign of the gradient,
learning rate ``tau * eps``, ``steps`` steps with x0.1 drops at 3/8, 5/8 and 7/8 of them, a projection
onto the eps-ball and the valid pixel range after every step, several random restarts keeping the
lowest final loss, and differentiable random translations during crafting so the poisons do not
depend on pixel-exact alignment. With ``ensemble > 1`` the loss is the mean over several surrogates.

Crafting runs in float32 by default; ``precision="bf16"`` runs the forward pass and both backward passes
of each step under bfloat16 autocast (faster on CPUs with native bf16 kernels and on GPUs), while the
target's gradient and the score of every restart stay float32. It runs on ``device`` (CUDA when a GPU is
present, by default); the random draws (start, shifts, flips) come from a CPU generator on every device, so
a seed draws the same augmentations everywhere, and on one device it gives the same poisons.

Pixels are rounded to uint8 at the end. When ``eps * 255`` is an integer (the CLI's ``--eps 16`` is
16/255) rounding keeps ``||delta||_inf <= eps`` exactly; in general ``||delta||_inf <= eps + 0.5/255``.
All pixels stay in 0..255.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from poisonlab.attacks.base import Attack, Log, PoisonPlan, check_int, check_number, check_rate, quiet
from poisonlab.attacks.targeted import TargetedRecord
from poisonlab.data.dataset import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.seeding import deterministic_kernels
from poisonlab.training import DEVICES, TrainConfig, predict_logits, resolve_device, to_tensor, train


# called before every crafting step with (step, current delta): new (surrogates, target gradients), or None
Refresh = Callable[[int, torch.Tensor], "tuple[list[nn.Module], list] | None"]
TARGET_SELECTIONS = ("random", "low-margin")
CRAFT_PRECISIONS = ("fp32", "bf16")
LOW_MARGIN_SHARE = 0.05  # "low-margin" targets: the lowest 5% of logit margins among correct test images


@dataclass(frozen=True)
class GradientMatching(Attack):
    """Witches' Brew gradient matching: poisons of class ``y_adv`` whose gradient mimics a target's.

    Parameters
    ----------
    budget : float
        Share of the training set that becomes poisons for *each* target (the reference's budget for a
        single brew); ``targets`` targets poison ``targets * budget`` of the set in all, in disjoint sets.
    eps : float
        L-infinity bound of the perturbation in [0, 1] pixel units (16/255 by default).
    targets : int
        Number of target test images; each gets its own brewing and its own poisons.
    restarts : int
        Random restarts per target; the one with the lowest final alignment loss is kept (the reference
        uses 8; on MNIST more restarts did not help, see the README).
    steps : int
        Signed-Adam steps per restart.
    tau : float
        Adam learning rate in units of ``eps`` (the reference's ``tau``).
    ensemble : int
        Surrogate models the alignment loss is averaged over.
    surrogate_epochs : int
        Epochs for each surrogate this attack trains itself (when no ``model`` is passed).
    augment : bool
        Differentiable augmentation of the poisons during crafting, as the victims see it: random
        translations (zero-filled, a padded random crop) and, for colour images, random horizontal flips
        (the reference protocol; :func:`poisonlab.training.train` crops and flips colour images and
        leaves digits alone, so digits get translations only).
    max_shift : int or None
        Largest translation in pixels, each direction; ``None``: 2 for grey images, an eighth of the
        image side for colour ones (4 on CIFAR-10, the crop padding victims train with).
    target_selection : {"random", "low-margin"}
        ``"random"`` (the reference's protocol): seeded random test images the surrogate classifies
        correctly, each with a random wrong class. ``"low-margin"``: an attacker who picks easy targets:
        seeded random images among the correctly classified test images whose surrogate logit margin
        (true class minus runner-up) is in the lowest 5%, each with its runner-up class as the
        adversarial class. Such targets are sometimes misclassified by clean victims too, so judge them
        against :func:`poisonlab.validation.validate_poisoned`'s clean control.
    precision : {"fp32", "bf16"}
        The arithmetic of each crafting step: float32, or bfloat16 autocast (faster where the CPU has
        native bf16; the target gradient and the restart scores stay float32).
    device : {"auto", "cpu", "cuda"}
        Where the surrogates this attack trains train and where crafting runs (a passed surrogate is
        copied there); ``"auto"``: CUDA when a GPU is present. The record's ``crafting_device`` says which.
    """

    budget: float = 0.01
    eps: float = 16 / 255
    targets: int = 1
    restarts: int = 1
    steps: int = 250
    tau: float = 0.1
    ensemble: int = 1
    surrogate_epochs: int = 3
    augment: bool = True
    max_shift: int | None = None
    target_selection: str = "random"
    precision: str = "fp32"
    device: str = "auto"

    name: ClassVar[str] = "gradient-matching"
    uses_model: ClassVar[bool] = True
    targeted: ClassVar[bool] = True

    def check_params(self) -> "GradientMatching":
        check_rate(self.budget, "budget")
        check_number(self.eps, "eps (in [0, 1] pixel units, i.e. E/255)", high=1.0)
        for what in ("targets", "restarts", "steps", "ensemble", "surrogate_epochs"):
            check_int(getattr(self, what), what)
        check_number(self.tau, "tau")
        if self.target_selection not in TARGET_SELECTIONS:
            raise PoisonlabError(f"target_selection must be one of {', '.join(TARGET_SELECTIONS)}, "
                                 f"got {self.target_selection!r}")
        if self.precision not in CRAFT_PRECISIONS:
            raise PoisonlabError(f"precision must be one of {', '.join(CRAFT_PRECISIONS)}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise PoisonlabError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not isinstance(self.augment, bool):
            raise PoisonlabError(f"augment must be true or false, got {self.augment!r}")
        if self.max_shift is not None:
            check_int(self.max_shift, "max_shift", minimum=0)
        return self

    def resolved_augmentation(self, dataset: Dataset) -> tuple[int, bool]:
        """``(max_shift, flip)`` used while crafting on ``dataset``; ``(0, False)`` without ``augment``."""
        return crafting_augmentation(dataset, augment=self.augment, max_shift=self.max_shift)

    def check_dataset(self, dataset: Dataset) -> None:
        per_target = int(round(self.budget * len(dataset.y_train)))
        if per_target < 1:
            raise PoisonlabError(f"budget {self.budget} gives no poison on {len(dataset.y_train)} training images; "
                                 "each target needs at least one")

    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None,
               log: Log = quiet) -> PoisonPlan:
        device = resolve_device(self.device)
        start = time.perf_counter()
        surrogates, surrogate_seeds = self._surrogates(dataset, rng, model, log)
        surrogate_seconds = round(time.perf_counter() - start, 3)
        targets, true_labels, adv_classes, margins = self._pick_targets(dataset, rng, surrogates[0])
        poison_sets = self._pick_poisons(dataset, rng, adv_classes)

        max_shift, flip = self.resolved_augmentation(dataset)
        x_new = dataset.x_train.copy()
        is_poison = np.zeros(len(x_new), dtype=bool)
        losses, restart_losses, histories, seconds = [], [], [], []
        for k, (target, y_adv, poison_idx) in enumerate(zip(targets, adv_classes, poison_sets)):
            # one torch seed per (attack seed, target) keeps each brewing reproducible on its own
            generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
            start = time.perf_counter()
            brew = brew_poisons(
                surrogates, dataset.x_train[poison_idx], dataset.y_train[poison_idx],
                dataset.x_test[target:target + 1], int(y_adv), eps=self.eps, steps=self.steps,
                restarts=self.restarts, tau=self.tau, max_shift=max_shift, flip=flip, generator=generator,
                precision=self.precision, device=device)
            seconds.append(round(time.perf_counter() - start, 3))
            x_new[poison_idx] = brew.poisons
            is_poison[poison_idx] = True
            losses.append(brew.best_loss)
            restart_losses.append(brew.restart_losses)
            histories.append(brew.best_history)
            log(f"gradient-matching: target {k + 1}/{len(targets)} (test #{target}, class {true_labels[k]} -> "
                f"{y_adv}, surrogate margin {margins[k]:.2f}): {len(poison_idx)} poisons, alignment loss "
                f"{brew.best_loss:.4f}, {seconds[-1]:.1f} s")

        targeted = TargetedRecord(
            targets=tuple(int(t) for t in targets), adversarial_classes=tuple(int(c) for c in adv_classes),
            true_labels=tuple(int(c) for c in true_labels),
            poison_indices=tuple(tuple(int(i) for i in idx) for idx in poison_sets),
            alignment_loss=tuple(losses), surrogate_seeds=tuple(surrogate_seeds))
        extras = {
            **targeted.to_record(),
            "target_selection": self.target_selection,
            "crafting_augmentation": {"max_shift": max_shift, "flip": flip},
            "target_margins": [round(float(m), 4) for m in margins],
            "alignment_loss_per_restart": restart_losses,
            "alignment_loss_history": histories,
            "crafting_seconds": seconds,
            "surrogate_seconds": surrogate_seconds,
            "crafting_device": device,
        }
        return PoisonPlan(x_train=x_new, y_train=dataset.y_train.copy(), is_poison=is_poison, extras=extras)

    def _surrogates(self, dataset: Dataset, rng: np.random.Generator, model: Any,
                    log: Log = quiet) -> tuple[list[nn.Module], list]:
        """The passed-in model (if any) plus freshly trained ones up to ``ensemble``."""
        models: list[nn.Module] = [] if model is None else [model]
        seeds: list[Any] = [] if model is None else ["given"]
        while len(models) < self.ensemble:
            # seeds far from the small ones ``validate`` uses, so victims never share the surrogate's init
            seed = int(rng.integers(10_000, 2**31))
            config = TrainConfig(epochs=self.surrogate_epochs, seed=seed, device=self.device)
            log(f"gradient-matching: training surrogate {len(models) + 1}/{self.ensemble} "
                f"({self.surrogate_epochs} epoch(s), seed {seed})")
            models.append(train(dataset.x_train, dataset.y_train, num_classes=dataset.num_classes,
                                config=config, progress=False, desc="surrogate").model)
            seeds.append(seed)
        return models, seeds

    def _pick_targets(self, dataset: Dataset, rng: np.random.Generator,
                      surrogate: nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Targets, their true labels, adversarial classes and surrogate logit margins (true class minus
        the best other class), by ``target_selection``."""
        order = rng.permutation(len(dataset.y_test))
        if self.target_selection == "random":
            candidates = order[: max(20 * self.targets, 200)]
        else:  # the whole test split: low-margin images are rare
            candidates = order
        logits = predict_logits(surrogate, dataset.x_test[candidates])
        truth = dataset.y_test[candidates]
        correct = logits.argmax(axis=1) == truth
        others = logits.copy()
        others[np.arange(len(candidates)), truth] = -np.inf
        runner_up = others.argmax(axis=1)
        margin = logits[np.arange(len(candidates)), truth] - others.max(axis=1)
        if self.target_selection == "low-margin":
            cutoff = np.quantile(margin[correct], LOW_MARGIN_SHARE) if correct.any() else -np.inf
            eligible = correct & (margin <= cutoff)
        else:
            eligible = correct
        picked = np.flatnonzero(eligible)[: self.targets]  # candidates are in seeded random order
        if len(picked) < self.targets:
            raise PoisonlabError(f"only {len(picked)} of {len(candidates)} sampled test images qualify as "
                                 f"{self.target_selection} targets; {self.targets} needed")
        targets, true_labels = candidates[picked], truth[picked]
        if self.target_selection == "low-margin":
            adv_classes = runner_up[picked]
        else:
            adv_classes = (true_labels + rng.integers(1, dataset.num_classes, size=self.targets)) % dataset.num_classes
        return targets, true_labels, adv_classes, margin[picked]

    def _pick_poisons(self, dataset: Dataset, rng: np.random.Generator, adv_classes: np.ndarray) -> list[np.ndarray]:
        """Disjoint random training images of each target's adversarial class, ``budget`` of the set each."""
        per_target = np.full(self.targets, int(round(self.budget * len(dataset.y_train))))
        pools = {int(c): list(rng.permutation(np.flatnonzero(dataset.y_train == c))) for c in np.unique(adv_classes)}
        sets = []
        for y_adv, count in zip(adv_classes, per_target):
            pool = pools[int(y_adv)]
            if len(pool) < count:
                raise PoisonlabError(f"class {y_adv} has too few training images left for {count} poisons")
            sets.append(np.sort(np.array(pool[:count], dtype=np.int64)))
            del pool[:count]
        return sets


@dataclass
class Brew:
    """One target's result: the poisoned images and the alignment losses seen."""

    poisons: np.ndarray  # (P, C, H, W) uint8
    best_loss: float
    restart_losses: list[float]
    best_history: list[float]  # alignment loss at every step of the kept restart


def brew_poisons(surrogates: list[nn.Module], x_poison: np.ndarray, y_poison: np.ndarray, x_target: np.ndarray,
                 y_adv: int, *, eps: float, steps: int = 250, restarts: int = 1, tau: float = 0.1,
                 max_shift: int = 2, flip: bool = False, generator: torch.Generator | None = None,
                 precision: str = "fp32", device: str | torch.device | None = None) -> Brew:
    """Craft perturbations for one target by gradient matching.

    Parameters
    ----------
    surrogates : list of nn.Module
        Trained models on clean data (not modified; float32 copies are used).
    x_poison : np.ndarray (P, C, H, W) uint8
        The base images of the poisons.
    y_poison : np.ndarray (P,) int
        Their (unchanged) labels.
    x_target : np.ndarray (1, C, H, W) uint8
        The target test image.
    y_adv : int
        The class the target should be classified as.
    eps, steps, restarts, tau, max_shift, generator
        As in :class:`GradientMatching`; ``generator`` seeds the initialisation and the augmentation.
    flip : bool
        Also flip each poison left-right with probability 1/2 at every step (colour images).
    precision : {"fp32", "bf16"}
        The arithmetic of each step (bf16: autocast); the final score of each restart is float32.
    device : str, torch.device or None
        Where to craft (``None``: the first surrogate's device); the surrogates are copied there.

    Returns
    -------
    Brew
        ``poisons`` (P, C, H, W) uint8 within ``eps`` (+ rounding) of ``x_poison``.
    """
    device = torch.device(device) if device is not None else next(surrogates[0].parameters()).device
    models = [fp32_copy(m, device) for m in surrogates]
    base, target = unit_pixels(x_poison).to(device), unit_pixels(x_target).to(device)
    labels = torch.tensor(np.asarray(y_poison), dtype=torch.int64, device=device)
    adv_label = torch.full((len(target),), int(y_adv), dtype=torch.int64, device=device)
    best: tuple[float, torch.Tensor, list[float]] | None = None
    restart_losses = []
    with deterministic_kernels(device):
        target_grads = [target_gradient(m, target, adv_label) for m in models]
        for _ in range(restarts):
            delta, history = craft_delta(models, target_grads, base, labels, eps=eps, steps=steps, tau=tau,
                                        max_shift=max_shift, flip=flip, generator=generator, precision=precision)
            # score the final delta without augmentation so restarts compare on the same footing
            final = alignment_loss(models, target_grads, base + delta, labels, max_shift=0, generator=None).item()
            restart_losses.append(round(final, 6))
            if best is None or final < best[0]:
                best = (final, delta, history)
    assert best is not None
    poisons = to_uint8(base + best[1])
    return Brew(poisons=poisons, best_loss=round(best[0], 6), restart_losses=restart_losses, best_history=best[2])


def crafting_augmentation(dataset: Dataset, *, augment: bool, max_shift: int | None) -> tuple[int, bool]:
    """``(max_shift, flip)`` of crafting on ``dataset``: random shifts up to ``max_shift`` pixels (``None``: an
    eighth of the side for colour images, 2 for grey ones) and, for colour images, flips; ``(0, False)`` without
    ``augment``. Why: the poisons must keep their alignment under the victim's own augmentation."""
    if not augment:
        return 0, False
    colour = dataset.channels == 3
    default = dataset.x_train.shape[-1] // 8 if colour else 2
    return (default if max_shift is None else int(max_shift)), colour


def gradient_alignment(model: nn.Module, x_poison: np.ndarray, y_poison: np.ndarray, x_target: np.ndarray,
                       y_adv: int) -> float:
    """Cosine, over all of ``model``'s parameters, between the poisons' training gradient and the gradient of
    the target's adversarial loss: the quantity crafting maximises (1 - alignment loss), measured on any
    model. On models the poisons were not crafted on it shows how well the alignment transfers; on the
    unperturbed images it gives the baseline the attack starts from.

    ``x_poison`` (P, C, H, W) and ``x_target`` (1, C, H, W) are uint8 images; ``y_poison`` their labels.
    """
    copied = fp32_copy(model)
    device = next(copied.parameters()).device
    with deterministic_kernels(device):
        target_grad = target_gradient(copied, unit_pixels(x_target).to(device),
                                      torch.full((len(x_target),), int(y_adv), dtype=torch.int64, device=device))
        labels = torch.tensor(np.asarray(y_poison), dtype=torch.int64, device=device)
        loss = alignment_loss([copied], [target_grad], unit_pixels(x_poison).to(device), labels, max_shift=0,
                               generator=None, create_graph=False)
    return float(1.0 - loss.item())


def craft_delta(models, target_grads, base: torch.Tensor, labels: torch.Tensor, *, eps: float, steps: int,
                tau: float, max_shift: int, flip: bool, generator: torch.Generator | None,
                precision: str = "fp32", refresh: Refresh | None = None) -> tuple[torch.Tensor, list[float]]:
    """One restart of signed Adam from a random start; returns delta (P, C, H, W) and the loss per step.

    ``refresh`` (Sleeper Agent's surrogate retraining) may swap the surrogates and their target gradients
    before any step; the perturbation, Adam's state and the step schedule carry on across the swap.
    Runs on ``base``'s device (the models and gradients must be there); the draws come from ``generator``
    on the CPU.
    """
    delta = (torch.randn(base.shape, generator=generator) * eps).clamp_(-eps, eps).to(base.device)
    delta = (torch.clamp(base + delta, 0, 1) - base).requires_grad_(True)
    optimizer = torch.optim.Adam([delta], lr=tau * eps)
    milestones = [steps * 3 // 8, steps * 5 // 8, steps * 7 // 8]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    history = []
    for step in range(steps):
        fresh = None if refresh is None else refresh(step, delta.detach())
        if fresh is not None:
            models, target_grads = fresh
        with torch.autocast(base.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = alignment_loss(models, target_grads, base + delta, labels, max_shift=max_shift, flip=flip,
                                   generator=generator)
        optimizer.zero_grad(set_to_none=False)
        (grad,) = torch.autograd.grad(loss, delta)
        delta.grad = grad.sign()  # the reference feeds Adam the gradient's sign ("signAdam")
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            delta.clamp_(-eps, eps)
            delta.copy_(torch.clamp(base + delta, 0, 1) - base)
        history.append(round(loss.item(), 6))
    return delta.detach(), history


def alignment_loss(models, target_grads, x: torch.Tensor, labels: torch.Tensor, *, max_shift: int,
                    generator: torch.Generator | None, flip: bool = False, create_graph: bool = True) -> torch.Tensor:
    """Mean over surrogates of ``1 - cos(poison gradient, target gradient)``, differentiable in ``x``."""
    if max_shift > 0:
        x = random_translate(x, max_shift=max_shift, generator=generator)
    if flip:
        x = random_flip(x, generator=generator)
    total = x.new_zeros(())
    for model, (target_grad, target_norm) in zip(models, target_grads):
        params = [p for p in model.parameters() if p.requires_grad]
        poison_loss = F.cross_entropy(model(x), labels)
        # create_graph: the loss must be differentiated again, through these gradients, w.r.t. x
        poison_grad = torch.autograd.grad(poison_loss, params, create_graph=create_graph)
        dot = sum((g.float() * t).sum() for g, t in zip(poison_grad, target_grad))
        poison_norm = torch.sqrt(sum(g.float().pow(2).sum() for g in poison_grad))
        total = total + 1 - dot / (poison_norm * target_norm)
    return total / len(models)


def target_gradient(model: nn.Module, target: torch.Tensor, adv_label: torch.Tensor) -> tuple[list, torch.Tensor]:
    """Gradient of the mean ``CE(f(x_t), y_adv)`` over the targets (T, C, H, W) and all parameters (detached),
    and its norm: one test image for Witches' Brew, the triggered source images for Sleeper Agent."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(F.cross_entropy(model(target), adv_label), params)
    grads = [g.detach() for g in grads]
    return grads, torch.sqrt(sum(g.pow(2).sum() for g in grads))


def random_translate(x: torch.Tensor, *, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image (N, C, H, W) by a random whole number of pixels in ``[-max_shift, max_shift]``
    per axis, filling with zeros (MNIST's background); differentiable in ``x`` (zero padding + crop)."""
    n, _, h, w = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    rows = (torch.arange(h).view(1, h) + max_shift - shifts[:, :1]).view(n, 1, h, 1)
    cols = (torch.arange(w).view(1, w) + max_shift - shifts[:, 1:]).view(n, 1, 1, w)
    batch = torch.arange(n).view(n, 1, 1, 1)
    channel = torch.arange(x.shape[1]).view(1, -1, 1, 1)
    index = [t.to(x.device) for t in (batch, channel, rows, cols)]  # drawn on the CPU, used where x lives
    return padded[index[0], index[1], index[2], index[3]]


def random_flip(x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image (N, C, H, W) mirrored left-right with probability 1/2; differentiable in ``x``."""
    flips = (torch.rand(x.shape[0], generator=generator) < 0.5).view(-1, 1, 1, 1).to(x.device)
    return torch.where(flips, x.flip(3), x)


def unit_pixels(x: np.ndarray) -> torch.Tensor:
    """uint8 images (N, C, H, W) as float32 in [0, 1]."""
    return to_tensor(x).to(torch.float32).div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float pixels in [0, 1] (N, C, H, W) -> uint8 images, rounded (the inverse of :func:`unit_pixels`)."""
    return x.detach().mul(255.0).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def fp32_copy(model: nn.Module, device: str | torch.device | None = None) -> nn.Module:
    """A float32, contiguous-format, eval-mode copy on ``device`` (``None``: the model's own), parameters
    requiring gradients (crafting differentiates through them twice, in float32 unless autocast says so)."""
    device = next(model.parameters()).device if device is None else torch.device(device)
    copied = copy.deepcopy(model).to(device).float().to(memory_format=torch.contiguous_format).eval()
    for p in copied.parameters():
        p.requires_grad_(True)
    return copied
