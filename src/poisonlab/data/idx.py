"""Reader for the IDX format of the MNIST family (raw or gzip-compressed)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from poisonlab.errors import PoisonlabError

_UBYTE = 0x08


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file of unsigned bytes.

    Returns
    -------
    np.ndarray uint8
        Shape ``(N,)`` for labels, ``(N, H, W)`` for images.

    Raises
    ------
    PoisonlabError
        On a missing, truncated, wrong-magic or not-unsigned-byte file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise PoisonlabError(f"{path}: no such file") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise PoisonlabError(f"{path}: not a readable (gzip) IDX file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise PoisonlabError(f"{path}: wrong magic number, not an IDX file")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != _UBYTE:
        raise PoisonlabError(f"{path}: IDX data type 0x{dtype_code:02x} is not unsigned byte")
    if ndim not in (1, 3):
        raise PoisonlabError(f"{path}: IDX file has {ndim} dimensions; expected 1 (labels) or 3 (images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise PoisonlabError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims))
    got = len(raw) - header
    if got != expected:
        raise PoisonlabError(f"{path}: IDX header says {expected} bytes of data {dims}, file has {got} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def find_idx(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder``, accepting both the ``-idx3-ubyte`` and ``.idx3-ubyte`` spellings."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in (".gz", ""):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None
