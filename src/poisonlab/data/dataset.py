"""The in-memory dataset types every stage passes around."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab._io import save_npz
from poisonlab.errors import PoisonlabError, PoisonlabWarning


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train and test images with integer labels.

    Attributes
    ----------
    x_train, x_test : np.ndarray (N, C, H, W) uint8
        Pixels in 0..255, channels first.
    y_train, y_test : np.ndarray (N,) int64
        Labels in ``0 .. len(classes) - 1``.
    classes : tuple of str
        Class names; their count is the number of classes.
    name : str
        Where the data came from ("mnist", "digits", a file name, ...).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        validate_arrays(self.x_train, self.y_train, self.x_test, self.y_test, len(self.classes))
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            arr.setflags(write=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x_train.shape[2])

    def class_counts(self, split: str = "train") -> np.ndarray:
        y = self.y_train if split == "train" else self.y_test
        return np.bincount(y, minlength=self.num_classes)

    def subset(self, n_train: int | None = None, n_test: int | None = None, *, seed: int = 0) -> "Dataset":
        """A class-stratified random slice (same seed, same slice); ``None`` keeps a split whole, and so
        does a size at least the split's (with a :class:`PoisonlabWarning` when it is larger)."""
        for split, n, y in (("train", n_train, self.y_train), ("test", n_test, self.y_test)):
            if n is not None and n > len(y):
                warnings.warn(f"asked for {n} {split} samples but {self.name} has {len(y)}; using all of them",
                              PoisonlabWarning, stacklevel=2)
        rng = np.random.default_rng(seed)
        tr = _stratified_indices(self.y_train, n_train, rng)
        te = _stratified_indices(self.y_test, n_test, rng)
        return Dataset(
            name=self.name,
            x_train=self.x_train[tr], y_train=self.y_train[tr],
            x_test=self.x_test[te], y_test=self.y_test[te],
            classes=self.classes,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test, "y_test": self.y_test,
                "classes": np.asarray(self.classes, dtype=str)}


@dataclass(frozen=True, eq=False)
class PoisonedDataset(Dataset):
    """A dataset whose training split was attacked, with the ground truth that travels with it.

    Attributes
    ----------
    is_poison : np.ndarray (N_train,) bool
        True where the attack changed a training sample (its pixels or its label).
    original_labels : np.ndarray (N_train,) int64
        The training labels before the attack.
    attack : dict
        ``{"name": ..., "params": {...}, "seed": ...}`` and any attack-specific extras (JSON-able).
    original_pixels : np.ndarray (N_poison, C, H, W) uint8 or None
        The poisons' images before the attack, in training-set order (row ``k`` belongs to the ``k``-th
        True of ``is_poison``); ``None`` when the attack changed no pixel (label flipping) or the file
        predates it. With it the perturbations can be checked and studied from the file alone.
    """

    is_poison: np.ndarray = field(default=None)  # type: ignore[assignment]
    original_labels: np.ndarray = field(default=None)  # type: ignore[assignment]
    attack: dict = field(default_factory=dict)
    original_pixels: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.y_train)
        if self.is_poison is None or self.original_labels is None:
            raise PoisonlabError("a poisoned dataset needs is_poison and original_labels")
        if self.is_poison.shape != (n,) or self.is_poison.dtype != bool:
            raise PoisonlabError(f"is_poison must be a bool array of length {n}")
        if self.original_labels.shape != (n,):
            raise PoisonlabError(f"original_labels must have length {n}")
        if n and (self.original_labels.min() < 0 or self.original_labels.max() >= self.num_classes):
            raise PoisonlabError("original_labels out of range")
        if self.original_pixels is not None:
            expected = (self.n_poison, *self.x_train.shape[1:])
            if self.original_pixels.dtype != np.uint8 or self.original_pixels.shape != expected:
                raise PoisonlabError(f"original_pixels must be a uint8 array {expected} (one image per poison), "
                                     f"got {self.original_pixels.dtype} {self.original_pixels.shape}")
            self.original_pixels.setflags(write=False)
        self.is_poison.setflags(write=False)
        self.original_labels.setflags(write=False)

    @property
    def n_poison(self) -> int:
        return int(self.is_poison.sum())

    def perturbation(self) -> np.ndarray | None:
        """Each poison's pixel change, ``poisoned - original`` as int16 (N_poison, C, H, W), or ``None``
        without :attr:`original_pixels`."""
        if self.original_pixels is None:
            return None
        return self.x_train[self.is_poison].astype(np.int16) - self.original_pixels.astype(np.int16)

    def keep(self, mask: np.ndarray) -> "PoisonedDataset":
        """Only the training samples where ``mask`` is True (a defense's filter)."""
        mask = np.asarray(mask, dtype=bool)
        pixels = None if self.original_pixels is None else self.original_pixels[mask[self.is_poison]]
        return replace(self, x_train=self.x_train[mask], y_train=self.y_train[mask],
                       is_poison=self.is_poison[mask], original_labels=self.original_labels[mask],
                       original_pixels=pixels)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` readable without pickle; the attack record is a JSON string."""
        arrays = self.arrays()
        arrays.update(is_poison=self.is_poison, original_labels=self.original_labels,
                      attack=np.asarray(json.dumps(self.attack, sort_keys=True)),
                      dataset_name=np.asarray(self.name))
        if self.original_pixels is not None:
            arrays["original_pixels"] = self.original_pixels
        save_npz(path, **arrays)


def validate_arrays(x_train: Any, y_train: Any, x_test: Any, y_test: Any, num_classes: int) -> None:
    """Raise :class:`PoisonlabError` unless the four arrays form a valid dataset."""
    for split, x in (("train", x_train), ("test", x_test)):
        if hasattr(x, "__len__") and len(x) == 0:
            raise PoisonlabError(f"the {split} split is empty")
    if num_classes < 2:
        raise PoisonlabError(f"a dataset needs at least 2 classes, got {num_classes}")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
            raise PoisonlabError(f"x_{split} must be a uint8 array (N, C, H, W), got "
                                 f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.ndim != 1:
            raise PoisonlabError(f"y_{split} must be an int64 array (N,)")
        if len(x) != len(y):
            raise PoisonlabError(f"x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise PoisonlabError(f"y_{split} has labels outside 0..{num_classes - 1} "
                                 f"(min {y.min()}, max {y.max()})")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise PoisonlabError(f"train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ in shape")
    if x_train.shape[1] not in (1, 3):
        raise PoisonlabError(f"images must have 1 or 3 channels, got {x_train.shape[1]}")
    if x_train.shape[2] != x_train.shape[3]:
        raise PoisonlabError(f"images must be square (the models take H = W), "
                             f"got {x_train.shape[2]}x{x_train.shape[3]}")


def _stratified_indices(y: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    if n is None or n >= len(y):
        return np.arange(len(y))
    if n <= 0:
        raise PoisonlabError(f"a subset needs a positive size, got {n}")
    order = rng.permutation(len(y))
    # largest-remainder quotas keep each class's share as close to the full set's as integers allow
    by_class = [order[y[order] == c] for c in np.unique(y)]
    quota = np.array([len(b) for b in by_class]) * n / len(y)
    counts = np.floor(quota).astype(int)
    remainder_order = np.lexsort((rng.random(len(quota)), -(quota - counts)))
    counts[remainder_order[: n - counts.sum()]] += 1
    picked = np.concatenate([b[:k] for b, k in zip(by_class, counts)])
    return np.sort(picked)
