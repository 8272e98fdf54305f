"""Image folders: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*``, PNG or JPEG, the ImageFolder layout.

Classes are the ``train`` subfolders in alphabetical order (what users of ImageFolder expect, and
CIFAR-10's label order for its JPEG copies); ``test`` must hold the same classes. Every image must have
the same size and mode (``L`` -> 1 channel, ``RGB`` -> 3); a file that does not decode, a class with no
image, or a class missing from ``test`` is one error naming it. Decoded images are cached as uint8
arrays keyed by the folder's listing (every file's relative path, size and modification time), so a
changed, added or removed file is a new key; nothing is cached when loading fails.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from poisonlab._io import save_cache
from poisonlab.data.dataset import Dataset
from poisonlab.data.npz import read_npz
from poisonlab.errors import PoisonlabError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
_CHANNELS = {"L": 1, "RGB": 3}


def is_image_folder(path: str | Path) -> bool:
    """Whether ``path`` looks like an image-folder dataset (a folder with ``train`` and ``test`` folders)."""
    path = Path(path)
    return path.is_dir() and all((path / split).is_dir() for split in SPLITS)


def load_image_folder(path: str | Path, *, cache_root: Path | None = None,
                      progress: Callable[[str], None] = lambda message: None) -> Dataset:
    """The images under ``path/train`` and ``path/test`` as a :class:`Dataset` named after the folder.

    ``cache_root``: a folder for the decoded arrays (``<key>.npz``, no pickles); ``None`` decodes every time.
    """
    path = Path(path)
    if not path.is_dir():
        raise PoisonlabError(f"{path}: no such folder")
    missing = [split for split in SPLITS if not (path / split).is_dir()]
    if missing:
        raise PoisonlabError(f"{path}: an image folder needs {path}/train/<class>/ and {path}/test/<class>/ "
                             f"(no {', '.join(missing)})")
    files = {split: _list(path / split) for split in SPLITS}
    classes = sorted(files["train"])
    if len(classes) < 2:
        raise PoisonlabError(f"{path}/train: needs at least 2 class folders, found {len(classes)}")
    for split in SPLITS:
        for name in classes:
            if name not in files[split]:
                raise PoisonlabError(f"{path}/{split}: no folder for class {name!r}")
            if not files[split][name]:
                raise PoisonlabError(f"{path}/{split}/{name}: no PNG or JPEG image")
    extra = sorted(set(files["test"]) - set(classes))
    if extra:
        raise PoisonlabError(f"{path}/test/{extra[0]}: class {extra[0]!r} has no training folder")
    key = _listing_key(path, files)
    cache = cache_root / f"{path.name}-{key}.npz" if cache_root is not None else None
    if cache is not None and cache.is_file():
        arrays = read_npz(cache)
        return Dataset(name=path.name, x_train=arrays["x_train"], y_train=arrays["y_train"],
                       x_test=arrays["x_test"], y_test=arrays["y_test"], classes=tuple(classes))
    # every header first (fast): a wrong size, mode or format fails before the long decode is announced
    shape_of: dict[str, object] = {}
    for split in SPLITS:
        for name in classes:
            for p in files[split][name]:
                _check_same(p, *_header(p), shape_of)
    progress(f"decoding the images under {path}")
    arrays = {}
    for split in SPLITS:
        x, y = _decode(files[split], classes)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    ds = Dataset(name=path.name, classes=tuple(classes), **arrays)
    if cache is not None and save_cache(cache, **{k: v for k, v in ds.arrays().items() if k != "classes"}):
        progress(f"cached the decoded images at {cache}")
    return ds


def _list(split_dir: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for every subfolder of ``split_dir``."""
    out = {}
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        out[folder.name] = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return out


def _listing_key(root: Path, files: dict[str, dict[str, list[Path]]]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for split in SPLITS:
        for name in sorted(files[split]):
            for p in files[split][name]:
                st = p.stat()
                h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _header(p: Path) -> tuple[str, tuple[int, int]]:
    """An image file's mode and size, read from its header only."""
    try:
        with Image.open(p) as img:
            return img.mode, img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise PoisonlabError(f"{p}: not a readable image ({type(exc).__name__}: {exc})") from None


def _check_same(p: Path, mode: str, size: tuple[int, int], shape_of: dict[str, object]) -> None:
    """Every image grey or RGB, and of the first one's size and mode."""
    if mode not in _CHANNELS:
        raise PoisonlabError(f"{p}: mode {mode}; images must be grey (L) or RGB")
    first_mode, first_size, first = shape_of.setdefault("first", (mode, size, p))  # type: ignore[misc]
    if (mode, size) != (first_mode, first_size):
        raise PoisonlabError(f"{p}: {mode} {size[0]}x{size[1]}, but {first} is {first_mode} "
                             f"{first_size[0]}x{first_size[1]}; every image must have the same size and mode")


def _decode(files: dict[str, list[Path]], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, C, H, W) images and int64 labels (their headers were checked: one size and mode)."""
    images, labels = [], []
    for label, name in enumerate(classes):
        for p in files[name]:
            try:
                with Image.open(p) as img:
                    pixels = np.asarray(img)
            except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
                raise PoisonlabError(f"{p}: not a readable image ({type(exc).__name__}: {exc})") from None
            images.append(pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1))
            labels.append(label)
    return np.ascontiguousarray(np.stack(images), dtype=np.uint8), np.asarray(labels, dtype=np.int64)


__all__ = ["IMAGE_SUFFIXES", "is_image_folder", "load_image_folder"]
