"""CIFAR-10's official archive (on tiny archives in the same layout) and image folders: loading, checksums,
caching, and one clear line for every broken input."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poisonlab.cli import main
from poisonlab.data import load_dataset
from poisonlab.data.cifar import CIFAR10_FOLDER, load_cifar10
from poisonlab.data.folders import load_image_folder
from poisonlab.errors import PoisonlabError

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def batch(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    record = {b"batch_label": b"batch", b"labels": [int(v) for v in rng.integers(0, 10, n)],
              b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    return pickle.dumps(record, protocol=2)


def members(n: int = 4) -> dict[str, bytes]:
    out = {f"data_batch_{i}": batch(n, i) for i in range(1, 6)}
    out["test_batch"] = batch(n, 9)
    out["batches.meta"] = pickle.dumps({b"label_names": NAMES, b"num_cases_per_batch": n}, protocol=2)
    return out


def write_archive(path: Path, content: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in content.items():
            info = tarfile.TarInfo(f"{CIFAR10_FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.fixture
def archive(tmp_path) -> tuple[Path, str]:
    path = tmp_path / "cifar-10-python.tar.gz"
    return path, write_archive(path, members())


def test_archive_loads_checks_and_caches(archive, tmp_path):
    path, md5 = archive
    cache = tmp_path / "cache" / "cifar10.npz"
    ds = load_cifar10(data_dir=path, cache=cache, expected_md5=md5)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.classes[3] == "cat" and ds.y_train.dtype == np.int64
    first = pickle.loads(members()["data_batch_1"])
    np.testing.assert_array_equal(ds.x_train[:4], first[b"data"].reshape(4, 3, 32, 32))
    np.testing.assert_array_equal(ds.y_train[:4], first[b"labels"])
    again = load_cifar10(cache=cache, download=False)  # from the cache, no archive needed
    np.testing.assert_array_equal(again.x_train, ds.x_train) and np.testing.assert_array_equal(again.y_test, ds.y_test)
    assert again.classes == ds.classes


def test_extracted_folder_and_download_paths(archive, tmp_path):
    path, md5 = archive
    folder = tmp_path / "extracted"
    with tarfile.open(path) as tar:
        tar.extractall(folder, filter="data")
    from_folder = load_cifar10(data_dir=folder, expected_md5=md5)
    downloaded = load_cifar10(url=path.as_uri(), expected_md5=md5, cache=tmp_path / "c" / "cifar10.npz")
    np.testing.assert_array_equal(from_folder.x_train, downloaded.x_train)
    assert (tmp_path / "c" / "cifar10.npz").is_file()


@pytest.mark.parametrize("case, message", [
    ("checksum", "checksum mismatch"),
    ("truncated", "not a readable .tar.gz"),
    ("member", "no member cifar-10-batches-py/test_batch"),
    ("evil", "refusing to unpickle"),
    ("shape", "'data' must be a uint8 array (N, 3072)"),
    ("labels", "'labels' must be a list of 4 integers"),
    ("meta", "label_names"),
])
def test_broken_archives_are_one_error_and_cache_nothing(tmp_path, case, message):
    content = members()
    path = tmp_path / "cifar-10-python.tar.gz"
    if case == "member":
        del content["test_batch"]
    elif case == "evil":
        content["data_batch_3"] = pickle.dumps({b"data": Evil()}, protocol=2)
    elif case == "shape":
        content["data_batch_2"] = pickle.dumps({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})
    elif case == "labels":
        content["data_batch_2"] = pickle.dumps({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1]})
    elif case == "meta":
        content["batches.meta"] = pickle.dumps({b"label_names": NAMES[:3]})
    md5 = write_archive(path, content)
    if case == "checksum":
        md5 = "0" * 32
    elif case == "truncated":
        path.write_bytes(path.read_bytes()[:300])
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
    cache = tmp_path / "cache" / "cifar10.npz"
    with pytest.raises(PoisonlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_cifar10(data_dir=path, cache=cache, expected_md5=md5)
    assert not cache.parent.exists()


def test_the_real_checksum_guards_the_default(archive):
    path, _ = archive
    with pytest.raises(PoisonlabError, match="c58f30108f718f92721af3b95e74349a"):
        load_cifar10(data_dir=path)  # a test archive is not the official one


def test_data_info_reads_an_archive(archive, tmp_path, capsys, monkeypatch):
    path, md5 = archive
    monkeypatch.setattr("poisonlab.data.cifar.CIFAR10_MD5", md5)  # the test archive stands in for the official
    assert main(["data", "info", "cifar10", "--data-dir", str(path)]) == 0
    out = capsys.readouterr().out
    assert "cifar10: images 3x32x32" in out and "airplane" in out and "total" in out


# ------------------------------------------------------------------------------------------- folders

def make_folder(root: Path, *, classes=("cat", "airplane", "dog"), n=3, size=8, mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                shape = (size, size, 3) if mode == "RGB" else (size, size)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / split / name / f"{i}.png")
    return root


def test_image_folder_loads_in_alphabetical_class_order(tmp_path):
    root = make_folder(tmp_path / "pets")
    ds = load_image_folder(root, cache_root=tmp_path / "cache")
    assert ds.classes == ("airplane", "cat", "dog") and ds.name == "pets"
    assert ds.x_train.shape == (9, 3, 8, 8) and ds.x_train.dtype == np.uint8
    pixels = np.asarray(Image.open(root / "train" / "cat" / "0.png")).transpose(2, 0, 1)
    np.testing.assert_array_equal(ds.x_train[3], pixels)  # the first cat, after the three airplanes
    assert list(ds.y_train) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1
    again = load_image_folder(root, cache_root=tmp_path / "cache")
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / "dog" / "9.png")
    assert load_image_folder(root, cache_root=tmp_path / "cache").x_train.shape[0] == 10
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2  # a new listing is a new key


def test_grey_folders_and_load_dataset(tmp_path):
    root = make_folder(tmp_path / "grey", classes=("a", "b"), mode="L", size=16)
    ds = load_dataset(str(root))
    assert ds.x_train.shape == (6, 1, 16, 16)


@pytest.mark.parametrize("case, message", [
    ("size", "every image must have the same size and mode"),
    ("mode", "every image must have the same size and mode"),
    ("unreadable", "not a readable image"),
    ("empty", "no PNG or JPEG image"),
    ("missing", "no folder for class 'dog'"),
    ("extra", "has no training folder"),
    ("notest", "no test"),
])
def test_broken_folders_are_one_error_naming_the_file_and_cache_nothing(tmp_path, case, message):
    root = make_folder(tmp_path / "pets")
    if case == "size":
        Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "test" / "dog" / "5.png")
    elif case == "mode":
        Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(root / "train" / "cat" / "5.png")
    elif case == "unreadable":
        (root / "train" / "cat" / "bad.jpg").write_bytes(b"not an image")
    elif case == "empty":
        for p in (root / "test" / "cat").iterdir():
            p.unlink()
    elif case == "missing":
        for p in (root / "test" / "dog").iterdir():
            p.unlink()
        (root / "test" / "dog").rmdir()
    elif case == "extra":
        (root / "test" / "zebra").mkdir()
    elif case == "notest":
        for p in sorted((root / "test").rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        (root / "test").rmdir()
    with pytest.raises(PoisonlabError, match=message) as err:
        load_image_folder(root, cache_root=tmp_path / "cache")
    if case in ("size", "unreadable"):
        assert str(root) in str(err.value)  # names the file
    assert not (tmp_path / "cache").exists()


def test_data_info_on_a_folder_and_one_line_errors(tmp_path, capsys):
    root = make_folder(tmp_path / "pets")
    assert main(["data", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "pets: images 3x8x8" in out and "airplane" in out
    (root / "train" / "cat" / "bad.png").write_bytes(b"junk")
    assert main(["data", "info", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # headers are read before the decode is announced: one line, naming the file
    assert len(err) == 1 and err[0].startswith("poisonlab: error: ") and "bad.png" in err[0]
