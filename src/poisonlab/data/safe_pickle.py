"""Read a pickle of NumPy arrays without running anything else: checksum first, then a restricted unpickler."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import pickle
from typing import Any

import numpy

from poisonlab.errors import PoisonlabError

try:
    from numpy._core import multiarray  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray  # type: ignore[no-redef]

# The only globals a pickle of plain NumPy arrays needs; anything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 spell bytes this way; it only encodes text
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise PoisonlabError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        if module == "_codecs":
            return codecs.encode
        if module.startswith("numpy.core") or module.startswith("numpy._core"):
            return getattr(multiarray, name)
        return getattr(numpy, name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_numpy_pickle(data: bytes, *, expected_sha256: str, what: str = "pickle") -> Any:
    """Unpickle ``data`` (optionally gzip-compressed) after checking its SHA-256, allowing NumPy arrays only.

    ``encoding="latin1"`` reads arrays pickled by Python 2, as the MNIST pickle was.
    """
    digest = sha256(data)
    if digest != expected_sha256:
        raise PoisonlabError(f"checksum mismatch for {what}: expected SHA-256 {expected_sha256}, got {digest}")
    return unpickle_verified(data, what=what)


def unpickle_verified(data: bytes, *, what: str = "pickle") -> Any:
    """Unpickle ``data`` (optionally gzip-compressed) whose integrity the caller has verified (a checksum of
    it or of the archive it came from), allowing plain containers and NumPy arrays only."""
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except PoisonlabError:
        raise
    except Exception as exc:  # a corrupt stream can raise almost anything
        raise PoisonlabError(f"corrupt {what}: {type(exc).__name__}: {exc}") from None
