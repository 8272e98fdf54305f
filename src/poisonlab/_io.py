"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from poisonlab.errors import PoisonlabError, PoisonlabWarning

# kernel filesystems: writable-looking, but no place for outputs
_VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600, and a writer may replace the file: give the result the usual permissions
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_output(path: str | os.PathLike, *, folder: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written, without creating anything.

    ``folder``: the output is a folder (it may exist); else a file (which must not be a folder). The
    nearest existing ancestor must be a writable folder outside ``/proc``, ``/sys`` and ``/dev``.
    """
    path = Path(path).expanduser()
    if folder and path.exists() and not path.is_dir():
        raise PoisonlabError(f"{path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise PoisonlabError(f"{path}: is a folder; give a file path")
    if not folder and path.name in ("", ".", ".."):
        raise PoisonlabError(f"{path}: not a file path")
    existing = path if folder and path.is_dir() else path.parent
    while not existing.exists():
        existing = existing.parent
    resolved = existing.resolve()
    if any(resolved == root or root in resolved.parents for root in _VIRTUAL_ROOTS):
        raise PoisonlabError(f"{path}: cannot write under {resolved}")
    if not existing.is_dir():
        raise PoisonlabError(f"{path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PoisonlabError(f"{path}: cannot write in {existing} (read-only or no permission)")
    return path


def save_cache(path: Path, **arrays: np.ndarray) -> bool:
    """Cache arrays at ``path`` when it can be written; otherwise warn once and go on (a cache is an aid,
    never a reason to fail). Whether it was written."""
    try:
        check_output(path)
        save_npz(path, **arrays)
        return True
    except (PoisonlabError, OSError) as exc:
        warnings.warn(f"not cached: {exc}", PoisonlabWarning, stacklevel=2)
        return False


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def save_npz(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> None:
    """Save arrays to ``.npz`` atomically (no object arrays: they would need pickle to read)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"refusing to save object array {key!r}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
