"""Reading poisoned datasets written by :meth:`PoisonedDataset.save`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from poisonlab.data.dataset import PoisonedDataset
from poisonlab.data.npz import read_npz
from poisonlab.data.sources import load_npz_dataset
from poisonlab.errors import PoisonlabError


def load_poisoned(path: str | Path) -> PoisonedDataset:
    """Load a poisoned ``.npz`` (no pickles: the attack record is a JSON string)."""
    path = Path(path)
    arrays = read_npz(path)
    missing = [k for k in ("is_poison", "original_labels", "attack") if k not in arrays]
    if missing:
        raise PoisonlabError(f"{path}: not a poisoned dataset (missing {', '.join(missing)})")
    base = load_npz_dataset(path)
    try:
        attack = json.loads(str(arrays["attack"]))
    except json.JSONDecodeError as exc:
        raise PoisonlabError(f"{path}: attack record is not valid JSON: {exc}") from None
    is_poison = arrays["is_poison"]
    if is_poison.dtype != bool:
        raise PoisonlabError(f"{path}: is_poison must be boolean")
    try:
        return PoisonedDataset(name=base.name, x_train=base.x_train, y_train=base.y_train, x_test=base.x_test,
                               y_test=base.y_test, classes=base.classes, is_poison=is_poison,
                               original_labels=arrays["original_labels"].astype(np.int64), attack=attack,
                               original_pixels=arrays.get("original_pixels"))
    except PoisonlabError as exc:
        raise PoisonlabError(f"{path}: {exc}") from None
