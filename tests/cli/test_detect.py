"""``poisonlab detect``: the JSON contract, retraining, listing, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from poisonlab.cli import main
from poisonlab.data import PoisonedDataset, load_dataset, load_poisoned
from poisonlab.defenses import compute_features

CONTRACT_KEYS = ("precision", "recall", "f1", "roc_auc", "removed", "poisons_removed", "seconds_features",
                 "seconds_detect", "defense", "features", "flagged_indices")


@pytest.fixture(scope="module")
def poisoned_path(tmp_path_factory):
    ds = load_dataset("digits").subset(400, 100, seed=0)
    rng = np.random.default_rng(0)
    y = ds.y_train.copy()
    idx = rng.choice(len(y), 40, replace=False)
    y[idx] = (y[idx] + rng.integers(1, 10, len(idx))) % 10
    is_poison = np.zeros(len(y), dtype=bool)
    is_poison[idx] = True
    poisoned = PoisonedDataset(name=ds.name, x_train=ds.x_train, y_train=y, x_test=ds.x_test, y_test=ds.y_test,
                               classes=ds.classes, is_poison=is_poison, original_labels=ds.y_train.copy(),
                               attack={"name": "test-flip", "params": {"rate": 0.1}, "seed": 0})
    path = tmp_path_factory.mktemp("detect") / "P.npz"
    poisoned.save(path)
    return path


def test_detect_writes_the_contract(poisoned_path, tmp_path):
    out = tmp_path / "D.json"
    rc = main(["detect", "--poisoned", str(poisoned_path), "--defense", "pca+kmeans", "--features", "pixels",
               "--seed", "0", "--out", str(out)])
    assert rc == 0
    record = json.loads(out.read_text())
    for key in CONTRACT_KEYS:
        assert key in record, key
    assert record["defense"] == "pca+kmeans" and record["features"] == "pixels"
    assert record["removed"] == len(record["flagged_indices"])
    assert record["f1"] > 0.5 and record["attack"]["name"] == "test-flip"
    assert "metrics" not in record  # no retraining asked
    # threshold-free views: curves on the 0..1 grid in steps of 0.01, and the oracle F1 at the true rate
    assert len(record["pr_precision"]) == len(record["roc_tpr"]) == 101
    assert record["roc_tpr"][-1] == 1.0 and record["pr_precision"][0] == 1.0
    assert 0 <= record["f1_at_true_rate"] <= 1 and 0 <= record["average_precision"] <= 1


def test_detect_contamination_and_params(poisoned_path, tmp_path):
    out = tmp_path / "D.json"
    assert main(["detect", "--poisoned", str(poisoned_path), "--defense", "knn", "--features", "pca",
                 "--contamination", "0.05", "--param", "n_neighbors=5", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    # exactly round(0.05 * 400), although knn's votes out of 5 neighbours tie a lot
    assert record["removed"] == 20 and record["contamination"] == 0.05
    assert record["params"]["n_neighbors"] == 5


def test_detect_retrain_adds_test_metrics(poisoned_path, tmp_path):
    out = tmp_path / "D.json"
    assert main(["detect", "--poisoned", str(poisoned_path), "--defense", "kmeans", "--features", "activations",
                 "--epochs", "1", "--retrain", "--quiet", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert 0 <= record["metrics"]["accuracy"] <= 1
    assert len(record["metrics"]["per_class_accuracy"]) == 10
    assert record["retrain"]["n_train"] == 400 - record["removed"]
    assert record["feature_info"]["trained_here"] is True


def test_detect_list(capsys):
    assert main(["detect", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("pca", "kmeans", "pca+kmeans", "dbscan", "birch", "knn"):
        assert any(line.split()[0] == name for line in listed.splitlines()), name


@pytest.mark.parametrize("argv, message", [
    (["--defense", "nope"], "unknown defense 'nope'"),
    (["--defense", "knn", "--param", "n_neighbors"], "KEY=VALUE"),
    (["--defense", "knn", "--param", "no_such=1"], "defense 'knn'"),
])
def test_detect_user_errors_are_one_line(poisoned_path, tmp_path, capsys, argv, message):
    rc = main(["detect", "--poisoned", str(poisoned_path), "--features", "pixels",
               "--out", str(tmp_path / "D.json"), *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err and err.startswith("poisonlab: error:")
    assert not (tmp_path / "D.json").exists()


@pytest.mark.parametrize("argv", [
    ["--contamination", "0.9"], ["--contamination", "lots"], ["--features", "hog"],
])
def test_detect_bad_options_exit_2(poisoned_path, tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["detect", "--poisoned", str(poisoned_path), "--defense", "knn", "--out", str(tmp_path / "D.json"),
              *argv])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_detect_missing_inputs(tmp_path, capsys):
    assert main(["detect", "--defense", "knn", "--out", str(tmp_path / "D.json")]) == 2
    assert "--poisoned" in capsys.readouterr().err
    assert main(["detect", "--poisoned", str(tmp_path / "missing.npz"), "--defense", "knn",
                 "--out", str(tmp_path / "D.json")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_detect_refuses_to_retrain_without_a_class(poisoned_path, tmp_path, capsys):
    poisoned = load_poisoned(poisoned_path)
    y = poisoned.y_train
    # a lone sample of class 9: k-NN flags it, and retraining would never see a 9
    lone = poisoned.keep((y != 9) | (np.arange(len(y)) == np.flatnonzero(y == 9)[0]))
    path = tmp_path / "lone.npz"
    lone.save(path)
    out = tmp_path / "D.json"
    argv = ["detect", "--poisoned", str(path), "--defense", "knn", "--features", "pixels", "--out", str(out)]
    assert main([*argv, "--retrain"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "every training sample of class(es) [9]" in err
    assert not out.exists()
    assert main(argv) == 0  # without retraining the detection report is still valid, with a warning
    assert "poisonlab: warning: the defense would remove every training sample of class(es) [9]" in \
        capsys.readouterr().err
    assert out.exists()


def test_features_are_cached_by_content_and_reused(poisoned_path, tmp_path, capsys):
    """Two detectors on one file: the feature model trains once; the second run reads the cache."""
    base = ["detect", "--poisoned", str(poisoned_path), "--features", "activations", "--quiet"]
    argv = [*base, "--epochs", "1"]
    assert main([*argv, "--defense", "pca", "--out", str(tmp_path / "a.json")]) == 0
    assert "reused" not in capsys.readouterr().err
    cached = list((Path(os.environ["POISONLAB_CACHE"]) / "features").glob("*.npz"))
    assert len(cached) == 1
    assert main([*argv, "--defense", "pca", "--out", str(tmp_path / "b.json")]) == 0
    assert "reused from" in capsys.readouterr().err
    first, second = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert first["flagged_indices"] == second["flagged_indices"] and second["feature_info"]["cached"] is True
    # other training options are other features
    assert main([*base, "--epochs", "2", "--defense", "pca", "--out", str(tmp_path / "c.json")]) == 0
    assert len(list(cached[0].parent.glob("*.npz"))) == 2


def test_features_from_a_file_or_a_model(poisoned_path, tmp_path):
    poisoned = load_poisoned(poisoned_path)
    X = compute_features("pixels", poisoned.x_train, poisoned.y_train)[0]
    np.savez(tmp_path / "F.npz", features=X)
    out = tmp_path / "D.json"
    assert main(["detect", "--poisoned", str(poisoned_path), "--defense", "knn", "--features-from",
                 str(tmp_path / "F.npz"), "--out", str(out)]) == 0
    given = json.loads(out.read_text())
    assert main(["detect", "--poisoned", str(poisoned_path), "--defense", "knn", "--features", "pixels",
                 "--out", str(out)]) == 0
    assert given["flagged_indices"] == json.loads(out.read_text())["flagged_indices"]
    assert given["features"] == "features from F.npz"
    assert main(["train", "--poisoned", str(poisoned_path), "--epochs", "1", "--out", str(tmp_path / "m"),
                 "--quiet"]) == 0
    assert main(["detect", "--poisoned", str(poisoned_path), "--defense", "knn", "--features-from",
                 str(tmp_path / "m" / "model.safetensors"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["feature_info"]["dim"] == 128


def test_features_from_a_train_folder_must_match_the_file(poisoned_path, tmp_path, capsys):
    assert main(["train", "--poisoned", str(poisoned_path), "--epochs", "1", "--out", str(tmp_path / "m"),
                 "--quiet"]) == 0
    out = tmp_path / "D.json"
    assert main(["detect", "--poisoned", str(poisoned_path), "--defense", "knn", "--features-from",
                 str(tmp_path / "m"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["feature_info"]["dim"] == 128
    other = load_poisoned(poisoned_path).keep(np.arange(400) >= 10)
    other.save(tmp_path / "other.npz")
    capsys.readouterr()
    assert main(["detect", "--poisoned", str(tmp_path / "other.npz"), "--defense", "knn", "--features-from",
                 str(tmp_path / "m"), "--out", str(tmp_path / "E.json")]) == 2
    assert "trained on another dataset" in capsys.readouterr().err and not (tmp_path / "E.json").exists()
