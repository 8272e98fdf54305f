"""Retraining validation: success rate, clean accuracy, per-target results, clean control, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poisonlab.cli import main
from poisonlab.data import PoisonedDataset, load_dataset
from poisonlab.errors import PoisonlabError
from poisonlab.training import TrainConfig
from poisonlab.validation import attack_targets, validate_poisoned


@pytest.fixture(scope="module")
def fake_poisoned():
    """Digits with a hand-written targeted attack record (no crafting: validation only reads the record)."""
    ds = load_dataset("digits").subset(300, 80, seed=0)
    is_poison = np.zeros(len(ds.y_train), dtype=bool)
    is_poison[:12] = True
    targets = [0, 5, 9]
    adv = [(int(ds.y_test[t]) + 1) % 10 for t in targets]
    return PoisonedDataset(name=ds.name, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test,
                           classes=ds.classes, is_poison=is_poison, original_labels=ds.y_train.copy(),
                           attack={"name": "test", "targets": targets, "adversarial_classes": adv,
                                   "surrogate_seeds": [1]})


@pytest.fixture(scope="module")
def result(fake_poisoned):
    return validate_poisoned(fake_poisoned, runs=2, config=TrainConfig(epochs=3, batch_size=32, seed=0), clean_control=True)


def test_success_rate_is_consistent_with_per_target_results(result, fake_poisoned):
    assert result["seeds"] == [0, 1] and result["surrogate_seed_overlap"] == [1]
    per_run_hits = np.array([t["success"] for t in result["targets"]])  # (targets, runs)
    assert per_run_hits.shape == (3, 2)
    run_rates = per_run_hits.mean(axis=0)
    assert result["success_rate"] == pytest.approx(run_rates.mean())
    assert result["success_rate_std"] == pytest.approx(np.std(run_rates, ddof=1))
    for target in result["targets"]:
        assert target["success"] == [p == target["adversarial_class"] for p in target["predicted"]]
        assert target["true_label"] == fake_poisoned.y_test[target["index"]]
        assert all(0 <= p <= 1 for p in target["adversarial_probability"])


def test_clean_accuracy_and_control(result):
    accuracies = [r["clean_accuracy"] for r in result["per_run"]]
    assert result["clean_accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["clean_accuracy"] > 0.5  # ~30 steps on 300 digits learn something
    control = result["control"]
    assert control["n_train"] == 300 - 12 and control["seeds"] == [0, 1]
    assert 0 <= control["success_rate"] <= 1 and len(control["targets"]) == 3


def test_same_seed_same_result(fake_poisoned, result):
    again = validate_poisoned(fake_poisoned, runs=1, config=TrainConfig(epochs=3, batch_size=32, seed=0))
    assert again["per_run"][0]["clean_accuracy"] == result["per_run"][0]["clean_accuracy"]
    assert [t["predicted"][0] for t in again["targets"]] == [t["predicted"][0] for t in result["targets"]]


def test_untargeted_record_reports_accuracy_only(fake_poisoned):
    from dataclasses import replace

    plain = replace(fake_poisoned, attack={"name": "label-flip"})
    out = validate_poisoned(plain, runs=1, config=TrainConfig(epochs=1))
    assert out["success_rate"] is None and out["targets"] == [] and 0 <= out["clean_accuracy"] <= 1


def test_bad_records_raise(fake_poisoned):
    from dataclasses import replace

    with pytest.raises(PoisonlabError):
        attack_targets(replace(fake_poisoned, attack={"targets": [0], "adversarial_classes": []}))
    with pytest.raises(PoisonlabError):
        attack_targets(replace(fake_poisoned, attack={"targets": [10_000], "adversarial_classes": [1]}))
    with pytest.raises(PoisonlabError):
        validate_poisoned(fake_poisoned, runs=0)


def test_cli_writes_json(fake_poisoned, tmp_path, capsys):
    path = tmp_path / "p.npz"
    fake_poisoned.save(path)
    out = tmp_path / "v.json"
    code = main(["validate", "--poisoned", str(path), "--runs", "2", "--epochs", "1", "--out", str(out), "--quiet"])
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("success_rate", "success_rate_std", "clean_accuracy", "clean_accuracy_std", "targets", "per_run"):
        assert key in data
    assert len(data["per_run"]) == 2 and "attack success" in capsys.readouterr().err


def test_cli_missing_file_is_one_line_error(tmp_path, capsys):
    code = main(["validate", "--poisoned", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "v.json")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("poisonlab: error:")


def test_alignment_probes_follow_the_poison_indices(fake_poisoned):
    from dataclasses import replace

    from poisonlab.validation import poison_probes

    record = {**fake_poisoned.attack, "poison_indices": [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]}
    with_groups = replace(fake_poisoned, attack=record)
    probes = poison_probes(with_groups)
    assert [len(p["y"]) for p in probes] == [4, 4, 4] and "x_original" not in probes[0]
    np.testing.assert_array_equal(probes[1]["x"], fake_poisoned.x_train[4:8])
    out = validate_poisoned(with_groups, runs=1, config=TrainConfig(epochs=1, batch_size=32, seed=0))
    assert all(len(t["alignment"]) == 1 and "alignment_unperturbed" not in t for t in out["targets"])
    assert out["max_perturbation"] is None
    # after a filter removed a poison the indices no longer describe the training split: no probes
    keep = np.ones(len(fake_poisoned.y_train), dtype=bool)
    keep[2] = False
    assert poison_probes(with_groups.keep(keep)) is None
    # removing clean samples after the last poison leaves every index valid
    keep = np.ones(len(fake_poisoned.y_train), dtype=bool)
    keep[20:30] = False
    np.testing.assert_array_equal(poison_probes(with_groups.keep(keep))[2]["x"], fake_poisoned.x_train[8:12])
    assert poison_probes(fake_poisoned) is None  # no poison_indices in the record


def test_one_run_has_no_spread_and_prints(fake_poisoned, tmp_path, capsys):
    """A single run's standard deviation is unknown (None), as in results.json, and the CLI says so."""
    single = validate_poisoned(fake_poisoned, runs=1, config=TrainConfig(epochs=1, batch_size=32, seed=0))
    assert single["success_rate_std"] is None and single["clean_accuracy_std"] is None
    path = tmp_path / "p.npz"
    fake_poisoned.save(path)
    assert main(["validate", "--poisoned", str(path), "--runs", "1", "--epochs", "1", "--out",
                 str(tmp_path / "v.json"), "--quiet"]) == 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "attack success" in last and "±" not in last
    assert json.loads((tmp_path / "v.json").read_text())["clean_accuracy_std"] is None
