"""``poisonlab attack label-flip|fgsm``: files that ``train --poisoned`` reads, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poisonlab.attacks.label_flip import LABEL_FLIP_PAPER_PRESET
from poisonlab.cli import main
from poisonlab.data import load_dataset, load_poisoned
from poisonlab.training import TrainConfig, save_weights, train


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
    """A small digits slice as a dataset file (16x16, 10 classes) so the CLI loads it by path."""
    ds = load_dataset("digits").subset(300, 100, seed=0)
    path = tmp_path_factory.mktemp("data") / "digits_small.npz"
    np.savez(path, **ds.arrays())
    return path, ds


@pytest.fixture
def empty_class_npz(tmp_path):
    """Classes 0..3 with no training sample of class 2."""
    rng = np.random.default_rng(0)
    y = rng.choice([0, 1, 3], size=40)
    path = tmp_path / "gap.npz"
    np.savez(path, x_train=rng.integers(0, 256, (40, 1, 16, 16), dtype=np.uint8), y_train=y,
             x_test=rng.integers(0, 256, (8, 1, 16, 16), dtype=np.uint8), y_test=rng.choice([0, 1, 2, 3], 8),
             classes=np.array(["0", "1", "2", "3"]))
    return path


def run(argv, capsys):
    """(exit code, stdout, stderr) of ``poisonlab argv``, whether it returns or raises SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_uniform_label_flip_writes_a_poisoned_file(digits_npz, tmp_path, capsys):
    path, ds = digits_npz
    out = tmp_path / "P.npz"
    code, stdout, _ = run(["attack", "label-flip", "--dataset", path, "--rate", "0.1", "--seed", "0", "--out", out],
                          capsys)
    assert code == 0
    assert stdout.count("\n") == 1 and "label-flip: poisoned 30 of 300" in stdout and str(out) in stdout
    p = load_poisoned(out)
    assert p.n_poison == 30 and p.attack["name"] == "label-flip" and p.attack["params"]["rate"] == 0.1
    np.testing.assert_array_equal(p.original_labels, ds.y_train)
    np.testing.assert_array_equal(p.y_train != ds.y_train, p.is_poison)
    assert p.x_train.tobytes() == ds.x_train.tobytes()


def test_same_seed_same_file_contents(digits_npz, tmp_path, capsys):
    path, _ = digits_npz
    files = [tmp_path / f"{name}.npz" for name in ("a", "b", "c")]
    for out, seed in zip(files, (3, 3, 4)):
        assert run(["attack", "label-flip", "--dataset", path, "--rate", "0.2", "--seed", seed, "--out", out],
                   capsys)[0] == 0
    a, b, c = (load_poisoned(f) for f in files)
    assert a.y_train.tobytes() == b.y_train.tobytes() and a.is_poison.tobytes() == b.is_poison.tobytes()
    assert not np.array_equal(a.is_poison, c.is_poison)


def test_targeted_flip_and_paper_preset(digits_npz, tmp_path, capsys):
    path, ds = digits_npz
    n_class2 = int((ds.y_train == 2).sum())
    out = tmp_path / "t.npz"
    code, stdout, _ = run(["attack", "label-flip", "--dataset", path, "--rate", "0.5", "--source-class", "2",
                           "--target-class", "7", "--out", out], capsys)
    assert code == 0 and "from class 2 to 7" in stdout
    p = load_poisoned(out)
    assert p.n_poison == round(0.5 * n_class2)
    assert set(ds.y_train[p.is_poison].tolist()) == {2} and set(p.y_train[p.is_poison].tolist()) == {7}

    code, stdout, _ = run(["attack", "label-flip", "--dataset", path, "--preset", "paper", "--out", out], capsys)
    assert code == 0
    p = load_poisoned(out)
    assert p.attack["params"] == {**{"source_class": None, "target_class": None}, **LABEL_FLIP_PAPER_PRESET}
    assert p.n_poison == round(LABEL_FLIP_PAPER_PRESET["rate"] * n_class2)

    # an explicit option overrides the preset's value
    assert run(["attack", "label-flip", "--dataset", path, "--preset", "paper", "--rate", "1", "--out", out],
               capsys)[0] == 0
    assert load_poisoned(out).n_poison == n_class2


def test_fgsm_then_train_on_the_poisoned_file(digits_npz, tmp_path, capsys):
    path, ds = digits_npz
    out = tmp_path / "f.npz"
    code, stdout, _ = run(["attack", "fgsm", "--dataset", path, "--rate", "0.1", "--eps", "0.2", "--eps-units", "pixel",
                           "--surrogate-epochs", "1", "--out", out], capsys)
    assert code == 0 and "fgsm: poisoned 30 of 300" in stdout and "0.2000 in [0, 1] pixels" in stdout
    p = load_poisoned(out)
    changed = np.any(p.x_train != ds.x_train, axis=(1, 2, 3))
    assert not np.any(changed & ~p.is_poison) and changed.sum() > 0
    assert np.abs(p.x_train.astype(int) - ds.x_train.astype(int)).max() <= round(0.2 * 255) + 1
    np.testing.assert_array_equal(p.y_train, ds.y_train)

    run_dir = tmp_path / "run"
    code, _, _ = run(["train", "--poisoned", out, "--epochs", "1", "--seed", "0", "--quiet", "--out", run_dir], capsys)
    assert code == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["attack"]["name"] == "fgsm" and metrics["n_poison"] == 30 and metrics["n_train"] == 300


def test_fgsm_with_a_given_surrogate_and_the_papers_eps(digits_npz, tmp_path, capsys):
    path, ds = digits_npz
    model = train(ds.x_train, ds.y_train, num_classes=10, config=TrainConfig(epochs=1, seed=0), progress=False).model
    weights = tmp_path / "model.safetensors"
    save_weights(model, weights)
    out = tmp_path / "g.npz"
    code, stdout, _ = run(["attack", "fgsm", "--dataset", path, "--rate", "0.05", "--surrogate", weights,
                           "--out", out], capsys)
    assert code == 0
    p = load_poisoned(out)
    assert p.attack["surrogate"]["source"] == "given" and p.attack["params"]["eps"] is None
    assert (p.attack["eps_used"], p.attack["eps_units_used"]) == (2.0, "normalized")  # grey: the paper's default
    # normalized units: the paper's 2.0 times the surrogate's own std
    assert p.attack["eps_pixel"] == pytest.approx(2.0 * float(model.std))


@pytest.mark.parametrize("argv, message", [
    (["label-flip", "--rate", "0"], "expected a number in (0, 1]"),
    (["label-flip", "--rate", "1.5"], "expected a number in (0, 1]"),
    (["label-flip", "--rate", "-0.2"], "expected a number in (0, 1]"),
    (["fgsm", "--rate", "0"], "expected a number in (0, 1]"),
    (["fgsm", "--eps", "0"], "expected a positive number"),
    (["fgsm", "--eps-units", "grey"], "invalid choice"),
    (["label-flip", "--source-class", "2", "--target-class", "2"], "a flip must change the label"),
    (["label-flip", "--source-class", "10"], "source_class must be a class index in 0..9"),
    (["label-flip", "--source-class", "-1"], "source_class must be a class index in 0..9"),
    (["label-flip", "--source-class", "1", "--target-class", "12"], "target_class must be a class index in 0..9"),
    (["label-flip", "--target-class", "3"], "target_class needs source_class"),
    (["gradient-magic"], "invalid choice: 'gradient-magic'"),
    (["fgsm", "--surrogate", "missing.safetensors"], "no such file"),
])
def test_user_errors_are_one_line_with_exit_code_2(digits_npz, tmp_path, capsys, argv, message):
    path, _ = digits_npz
    out = tmp_path / "never.npz"
    code, stdout, stderr = run(["attack", *argv, "--dataset", path, "--out", out], capsys)
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_empty_source_class_is_an_error(empty_class_npz, tmp_path, capsys):
    out = tmp_path / "never.npz"
    code, _, stderr = run(["attack", "label-flip", "--dataset", empty_class_npz, "--source-class", "2",
                           "--out", out], capsys)
    assert code == 2
    assert stderr == "poisonlab: error: source class 2 has no training samples\n"
    assert not out.exists()


def test_missing_dataset_is_an_error(tmp_path, capsys):
    code, _, stderr = run(["attack", "label-flip", "--dataset", tmp_path / "nope.npz", "--out", tmp_path / "p.npz"],
                          capsys)
    assert code == 2 and stderr.startswith("poisonlab: error:") and stderr.count("\n") == 1


@pytest.mark.parametrize("name, extra", [("badnets", ["--trigger", "square", "--position", "top-left"]),
                                         ("blend", ["--alpha", "0.3", "--source-class", "3"])])
def test_backdoor_attack_then_validate_reports_attack_success(digits_npz, tmp_path, capsys, name, extra):
    path, ds = digits_npz
    out = tmp_path / "P.npz"
    code, stdout, _ = run(["attack", name, "--dataset", path, "--rate", "0.1", "--target-class", "1", *extra,
                           "--out", out], capsys)
    assert code == 0 and f"{name}: poisoned 30 of 300" in stdout
    poisoned = load_poisoned(out)
    assert poisoned.n_poison == 30 and (poisoned.y_train[poisoned.is_poison] == 1).all()
    report = tmp_path / "v.json"
    code, _, err = run(["validate", "--poisoned", out, "--runs", "1", "--epochs", "1", "--batch-size", "32",
                        "--clean-control", "--quiet", "--out", report], capsys)
    assert code == 0 and "attack success rate" in err, err
    result = json.loads(report.read_text())
    attacked = ds.y_test == 3 if name == "blend" else ds.y_test != 1
    assert result["n_triggered"] == int(attacked.sum()) and result["target_class"] == 1
    assert 0 <= result["attack_success_rate"] <= 1 and 0 <= result["robust_accuracy"] <= 1
    assert 0 <= result["clean_accuracy"] <= 1 and result["success_rate"] is None
    assert result["per_run"][0]["attack_success_rate"] == result["attack_success_rate"]
    assert 0 <= result["control"]["attack_success_rate"] <= 1
