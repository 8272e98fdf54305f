"""CIFAR-10 from the official python archive: checksum first, then a restricted unpickler, then a uint8 cache.

The archive ``cifar-10-python.tar.gz`` (Krizhevsky 2009) holds ``cifar-10-batches-py/`` with five
training batches, a test batch and ``batches.meta``, each a pickle of a dict: ``data`` (10000, 3072)
uint8 in channel-major order, ``labels`` (a list of ints), and ``label_names`` in the meta file. Sources,
in order: ``data_dir`` (the archive, or a folder holding it or its extracted ``cifar-10-batches-py``),
the cache, the official download. An archive is always MD5-checked before any of it is unpickled; an
extracted folder cannot be (the release publishes no per-file sums), so its pickles rely on the
restricted unpickler alone, which builds nothing but dicts, lists, strings and NumPy arrays.
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Callable

import numpy as np

from poisonlab._io import check_output, save_cache
from poisonlab.data.dataset import Dataset
from poisonlab.data.npz import read_npz
from poisonlab.data.safe_pickle import unpickle_verified
from poisonlab.errors import PoisonlabError

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_SIZE = 170_498_071
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
MEMBERS = (*TRAIN_BATCHES, "test_batch", "batches.meta")


def load_cifar10(*, data_dir: str | Path | None = None, cache: Path | None = None, download: bool = True,
                 url: str = CIFAR10_URL, expected_md5: str | None = None,
                 progress: Callable[[str], None] = lambda message: None) -> Dataset:
    """CIFAR-10 as uint8 (N, 3, 32, 32) images and int64 labels, 50,000 train / 10,000 test.

    Parameters
    ----------
    data_dir : path, optional
        The archive itself, or a folder with ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``.
    cache : path, optional
        Where the decoded arrays are kept (``.npz``, no pickles); read when present, written after a load.
    download : bool
        Whether the official archive may be fetched when nothing local has it.
    url, expected_md5 :
        The archive's address and MD5 (default the official ones; tests serve their own small archive).
    """
    expected_md5 = expected_md5 or CIFAR10_MD5
    if data_dir is not None:
        ds = _from_local(Path(data_dir), expected_md5, progress)
    elif cache is not None and cache.is_file():
        return _from_cache(cache)
    elif download:
        ds = _download(url, expected_md5, cache, progress)
    else:
        raise PoisonlabError("cifar10: not cached; pass --data-dir with the archive or its extracted folder")
    if cache is not None and save_cache(cache, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                                        y_test=ds.y_test, classes=np.asarray(ds.classes, dtype=str)):
        progress(f"cached CIFAR-10 at {cache}")
    return ds


def _from_local(path: Path, expected_md5: str, progress: Callable[[str], None]) -> Dataset:
    if path.is_file():
        return read_archive(path, expected_md5=expected_md5, progress=progress)
    if not path.is_dir():
        raise PoisonlabError(f"cifar10: {path}: no such file or folder")
    if (path / CIFAR10_ARCHIVE).is_file():
        return read_archive(path / CIFAR10_ARCHIVE, expected_md5=expected_md5, progress=progress)
    folder = path / CIFAR10_FOLDER if (path / CIFAR10_FOLDER).is_dir() else path
    missing = [m for m in MEMBERS if not (folder / m).is_file()]
    if missing:
        raise PoisonlabError(f"cifar10: {folder}: not the official archive's folder (missing {', '.join(missing)})")
    return _assemble({m: (folder / m).read_bytes() for m in MEMBERS}, str(folder))


def read_archive(path: Path, *, expected_md5: str = CIFAR10_MD5,
                 progress: Callable[[str], None] = lambda message: None) -> Dataset:
    """The dataset in an official-layout ``.tar.gz``, after its MD5 matched ``expected_md5``."""
    digest = _md5(path)
    if digest != expected_md5:
        raise PoisonlabError(f"cifar10: {path}: checksum mismatch (MD5 {digest}, expected {expected_md5}); "
                             "the file is damaged or not the official archive")
    progress(f"{path}: MD5 verified; reading the batches")
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {}
            for name in MEMBERS:
                try:
                    member = tar.getmember(f"{CIFAR10_FOLDER}/{name}")
                except KeyError:
                    raise PoisonlabError(f"cifar10: {path}: no member {CIFAR10_FOLDER}/{name}") from None
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is None:
                    raise PoisonlabError(f"cifar10: {path}: {CIFAR10_FOLDER}/{name} is not a file")
                members[name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise PoisonlabError(f"cifar10: {path}: not a readable .tar.gz ({type(exc).__name__}: {exc})") from None
    return _assemble(members, str(path))


def _assemble(members: dict[str, bytes], where: str) -> Dataset:
    """Train and test arrays from the batches' bytes, every field checked."""
    batches = {name: _batch(members[name], f"{where}: {name}") for name in (*TRAIN_BATCHES, "test_batch")}
    meta = _as_str_keys(unpickle_verified(members["batches.meta"], what=f"{where}: batches.meta"),
                        f"{where}: batches.meta")
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise PoisonlabError(f"cifar10: {where}: batches.meta holds no list of 10 'label_names'")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    x_train = np.concatenate([batches[b][0] for b in TRAIN_BATCHES])
    y_train = np.concatenate([batches[b][1] for b in TRAIN_BATCHES])
    x_test, y_test = batches["test_batch"]
    try:
        return Dataset(name="cifar10", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes)
    except PoisonlabError as exc:
        raise PoisonlabError(f"cifar10: {where}: {exc}") from None


def _batch(data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    record = _as_str_keys(unpickle_verified(data, what=what), what)
    x, y = record.get("data"), record.get("labels")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise PoisonlabError(f"cifar10: {what}: 'data' must be a uint8 array (N, 3072), got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
    if not isinstance(y, list) or len(y) != len(x) or any(isinstance(v, bool) or not isinstance(v, int) for v in y):
        raise PoisonlabError(f"cifar10: {what}: 'labels' must be a list of {len(x)} integers")
    return np.ascontiguousarray(x.reshape(-1, 3, 32, 32)), np.asarray(y, dtype=np.int64)


def _as_str_keys(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise PoisonlabError(f"cifar10: {what}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _from_cache(cache: Path) -> Dataset:
    arrays = read_npz(cache)
    try:
        return Dataset(name="cifar10", x_train=arrays["x_train"], y_train=arrays["y_train"].astype(np.int64),
                       x_test=arrays["x_test"], y_test=arrays["y_test"].astype(np.int64),
                       classes=tuple(str(c) for c in arrays["classes"]))
    except (KeyError, PoisonlabError) as exc:
        raise PoisonlabError(f"{cache}: a damaged CIFAR-10 cache ({exc}); delete it to load again") from None


def _download(url: str, expected_md5: str, cache: Path | None, progress: Callable[[str], None]) -> Dataset:
    folder = cache.parent if cache is not None else Path(tempfile.gettempdir())
    check_output(folder / CIFAR10_ARCHIVE)
    progress(f"downloading {url}")
    with tempfile.NamedTemporaryFile(dir=folder if folder.is_dir() else None, suffix=".tar.gz") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our fixed URL or a test's
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
        except OSError as exc:
            raise PoisonlabError(f"cifar10: cannot download {url} ({exc}); pass --data-dir with the archive") from None
        tmp.flush()
        return read_archive(Path(tmp.name), expected_md5=expected_md5, progress=progress)


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - the release publishes MD5; it checks integrity, not authenticity
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["CIFAR10_CLASSES", "CIFAR10_MD5", "load_cifar10", "read_archive"]
