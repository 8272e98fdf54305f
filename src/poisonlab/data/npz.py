"""Reading ``.npz`` files without pickles, with one clear error for every way a file can be wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from poisonlab.errors import PoisonlabError


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles); a missing, corrupt or pickle-holding file is a user error."""
    if not path.is_file():
        raise PoisonlabError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise PoisonlabError(f"{path}: not an .npz file (an .npz is a zip archive of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise PoisonlabError(f"{path}: holds pickled objects, which poisonlab will not load") from None
        raise PoisonlabError(f"{path}: not a readable .npz: {exc}") from None
    except Exception as exc:  # zipfile, OSError, EOFError ...
        raise PoisonlabError(f"{path}: not a readable .npz ({type(exc).__name__}: {exc})") from None


__all__ = ["read_npz"]
