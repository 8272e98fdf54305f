"""Content-addressed stage results on disk, so an interrupted run resumes and identical work is shared.

A stage's result lives under ``RUN/stages/<kind>-<key>/``: ``stage.json`` for its record,
``model.safetensors`` for weights, ``arrays.npz`` for masks, predictions and features; each written
atomically, and ``stage.json`` last, so a folder with ``stage.json`` is complete. ``key`` is
:func:`digest` of the stage's config and of its inputs' keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from poisonlab._io import save_npz, write_json
from poisonlab.errors import PoisonlabError
from poisonlab.training import save_weights


def digest(payload: Any) -> str:
    """A short content hash of JSON-able ``payload`` (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def array_fingerprint(*arrays: np.ndarray) -> str:
    """A content hash of arrays (shape, dtype and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


class StageStore:
    """Stage results under ``root/stages/<kind>-<key>/``; ``stage.json`` is written last and marks a
    complete stage. With ``reuse=False`` only stages written by this store are read back (so a fresh run
    still shares identical work inside itself)."""

    def __init__(self, root: Path, *, reuse: bool) -> None:
        self.root = root
        self.reuse = reuse
        self._written: set[str] = set()

    def folder(self, kind: str, key: str) -> Path:
        return self.root / "stages" / f"{kind}-{key}"

    def load(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record of a complete stage, or ``None`` (not there, or not to be reused)."""
        folder = self.folder(kind, key)
        if not (self.reuse or folder.name in self._written):
            return None
        try:
            return json.loads((folder / "stage.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, kind: str, key: str, record: dict[str, Any], *, arrays: dict[str, np.ndarray] | None = None,
             model: nn.Module | None = None) -> None:
        folder = self.folder(kind, key)
        if arrays:
            save_npz(folder / "arrays.npz", compressed=False, **arrays)
        if model is not None:
            save_weights(model, folder / "model.safetensors")
        write_json(folder / "stage.json", record)
        self._written.add(folder.name)

    def arrays(self, kind: str, key: str) -> dict[str, np.ndarray]:
        path = self.folder(kind, key) / "arrays.npz"
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise PoisonlabError(f"{path}: cannot read stage arrays ({exc}); rerun without --resume") from None

    def weights_path(self, kind: str, key: str) -> Path:
        return self.folder(kind, key) / "model.safetensors"


__all__ = ["StageStore", "array_fingerprint", "digest"]
