"""Label flipping: the attack the paper calls "gradient matching" (its Section 3.2.1).

The paper "randomly select[s] a small percentage (below 20%) of training data and misclassif[ies] their
labels". Pixels are never touched; only labels move. Two modes:

- **uniform** (no ``source_class``): ``round(rate * N)`` samples of the whole training set, each moved to
  a different class drawn uniformly from the other ``K - 1``.
- **targeted** (``source_class=S``): ``round(rate * n_S)`` samples of class ``S``, each moved to
  ``target_class=T`` when given, else to a random class other than ``S``.

Samples are chosen without replacement by the seed; the same seed gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from poisonlab.attacks.base import Attack, Log, PoisonPlan, check_rate, exact_count, quiet
from poisonlab.data.dataset import Dataset
from poisonlab.errors import PoisonlabError

# The scenario closest to the paper's Figure 2 (class 2 hit hardest), under the paper's 20% of the training
# set; how it was chosen and how it responds to the rate: docs/measurements.md.
# Use as ``LabelFlip(**LABEL_FLIP_PAPER_PRESET)``.
LABEL_FLIP_PAPER_PRESET: dict[str, Any] = dict(rate=0.48, source_class=2, target_class=8)

PRESETS: dict[str, dict[str, Any]] = {"paper": LABEL_FLIP_PAPER_PRESET}


@dataclass(frozen=True)
class LabelFlip(Attack):
    """Flip the labels of a fraction of the training set (uniform) or of one class (targeted).

    Parameters
    ----------
    rate : float
        Share in (0, 1] of the eligible samples to flip: of the whole training set (uniform) or of class
        ``source_class`` (targeted). Exactly ``round(rate * n_eligible)`` samples are flipped.
    source_class : int or None
        Targeted mode: only samples of this class are flipped.
    target_class : int or None
        Targeted mode: every flipped sample gets this label (needs ``source_class``, must differ from it);
        ``None`` draws a random class other than the source for each sample.

    Notes
    -----
    The result's ``is_poison`` is True exactly where the label changed; images are shared bytes-for-bytes
    with the input. ``attack`` records ``mode``, ``n_eligible`` and ``flips`` (a K x K count matrix,
    ``flips[i][j]`` = samples moved from class i to class j).
    """

    rate: float = 0.1
    source_class: int | None = None
    target_class: int | None = None

    name: ClassVar[str] = "label-flip"

    def params(self) -> dict[str, Any]:
        # plain ints: a class index taken from a NumPy array must still serialise to JSON
        return {k: int(v) if isinstance(v, np.integer) else v for k, v in super().params().items()}

    @property
    def mode(self) -> str:
        return "uniform" if self.source_class is None else "targeted"

    def check_params(self) -> "LabelFlip":
        check_rate(self.rate)
        for what, value in (("source_class", self.source_class), ("target_class", self.target_class)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise PoisonlabError(f"{what} must be a class index (an integer), got {value!r}")
        if self.target_class is not None and self.source_class is None:
            raise PoisonlabError("target_class needs source_class (a targeted flip moves one class to another)")
        if self.source_class is not None and self.source_class == self.target_class:
            raise PoisonlabError(f"source_class and target_class are both {self.source_class}; "
                                 "a flip must change the label")
        return self

    def check_dataset(self, dataset: Dataset) -> None:
        k = dataset.num_classes
        for what, value in (("source_class", self.source_class), ("target_class", self.target_class)):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < k:
                raise PoisonlabError(f"{what} must be a class index in 0..{k - 1}, got {value!r}")
        if self.source_class is not None and not np.any(dataset.y_train == self.source_class):
            raise PoisonlabError(f"source class {self.source_class} has no training samples")
        y = dataset.y_train
        eligible = y if self.source_class is None else y[y == self.source_class]
        exact_count(self.rate, len(eligible))

    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None,
               log: Log = quiet) -> PoisonPlan:
        y = dataset.y_train
        k = dataset.num_classes
        eligible = np.arange(len(y)) if self.source_class is None else np.flatnonzero(y == self.source_class)
        chosen = np.sort(rng.choice(eligible, size=exact_count(self.rate, len(eligible)), replace=False))
        if self.target_class is not None:
            new_labels = np.full(len(chosen), self.target_class, dtype=np.int64)
        else:
            # an offset in 1..K-1 (mod K) is uniform over the K-1 other classes and never the same class
            new_labels = (y[chosen] + rng.integers(1, k, size=len(chosen))) % k
        y_new = y.copy()
        y_new[chosen] = new_labels
        is_poison = np.zeros(len(y), dtype=bool)
        is_poison[chosen] = True
        flips = np.zeros((k, k), dtype=np.int64)
        np.add.at(flips, (y[chosen], new_labels), 1)
        extras = {"mode": self.mode, "n_eligible": int(len(eligible)), "n_poison": int(len(chosen)),
                  "flips": flips.tolist()}
        return PoisonPlan(x_train=dataset.x_train, y_train=y_new, is_poison=is_poison, extras=extras)


__all__ = ["LABEL_FLIP_PAPER_PRESET", "PRESETS", "LabelFlip"]
