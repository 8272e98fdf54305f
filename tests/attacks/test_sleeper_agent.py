"""Sleeper Agent: clean labels, target-class poisons within eps, a trigger kept out of the training set,
poison selection by gradient norm, surrogate retraining, and the record that lets validate measure ASR."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from poisonlab.attacks import BackdoorRecord, make_attack
from poisonlab.attacks.gradient_matching import gradient_alignment
from poisonlab.cli import main
from poisonlab.data import load_dataset, load_poisoned
from poisonlab.errors import PoisonlabError
from poisonlab.inference import extract_features, predict_logits
from poisonlab.training import TrainConfig, save_weights, train

TINY = dict(rate=0.05, target_class=1, source_class=7, steps=24, retrains=0, source_samples=40)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").subset(600, 200, seed=0)


@pytest.fixture(scope="module")
def surrogate(digits):
    return train(digits.x_train, digits.y_train, num_classes=digits.num_classes,
                 config=TrainConfig(epochs=4, seed=11), progress=False).model


@pytest.fixture(scope="module")
def poisoned(digits, surrogate):
    return make_attack("sleeper-agent", **TINY).poison(digits, seed=3, model=surrogate)


def test_clean_label_poisons_of_the_target_class_within_eps(digits, poisoned):
    np.testing.assert_array_equal(poisoned.y_train, digits.y_train)
    assert poisoned.n_poison == round(0.05 * len(digits.y_train))
    assert set(digits.y_train[poisoned.is_poison].tolist()) == {1}
    delta = poisoned.x_train.astype(np.int64) - digits.x_train.astype(np.int64)
    assert np.abs(delta).max() <= 16  # 16/255 is whole grey levels: rounding stays in the ball
    changed = np.abs(delta).reshape(len(delta), -1).max(axis=1) > 0
    assert not changed[~poisoned.is_poison].any() and changed[poisoned.is_poison].mean() > 0.9


def test_record_holds_the_trigger_and_the_attacked_class(digits, poisoned):
    record = BackdoorRecord.from_attack(poisoned.attack, required=True)
    assert (record.target_class, record.source_class) == (1, 7)
    trigger = record.trigger
    assert trigger.pattern.shape == (1, 4, 4)  # a quarter of the 16-pixel side
    assert (trigger.top, trigger.left) == (12, 12)  # bottom-right, no margin
    x_trig, index = record.triggered_test_set(digits.x_test, digits.y_test)
    assert set(digits.y_test[index].tolist()) == {7}  # ASR is measured on the source class only
    np.testing.assert_array_equal(x_trig[:, :, 12:, 12:], np.broadcast_to(trigger.pattern, x_trig[:, :, 12:, 12:].shape))
    # hidden trigger: no training image carries the patch
    region = poisoned.x_train[:, :, 12:, 12:]
    assert not (region == trigger.pattern).reshape(len(region), -1).all(axis=1).any()
    assert json.loads(json.dumps(poisoned.attack)) == poisoned.attack


def test_crafting_aligns_the_poisons_with_the_trigger_gradient(digits, surrogate, poisoned):
    record = BackdoorRecord.from_attack(poisoned.attack, required=True)
    sources = np.flatnonzero(digits.y_train == 7)
    triggered = record.trigger.apply(digits.x_train[sources])
    idx = np.flatnonzero(poisoned.is_poison)
    before = gradient_alignment(surrogate, digits.x_train[idx], digits.y_train[idx], triggered, 1)
    after = gradient_alignment(surrogate, poisoned.x_train[idx], digits.y_train[idx], triggered, 1)
    # the originals start well aligned (both gradients teach class 1); crafting takes a fifth of what is left
    assert 1 - after < 0.85 * (1 - before)
    history = poisoned.attack["alignment_loss_history"]
    assert len(history) == 24 and np.mean(history[-4:]) < np.mean(history[:4])


def test_gradient_norm_selection_takes_the_largest_head_gradients(digits, surrogate, poisoned):
    pool = np.flatnonzero(digits.y_train == 1)
    probs = torch.softmax(torch.from_numpy(predict_logits(surrogate, digits.x_train[pool])), dim=1).numpy()
    probs[:, 1] -= 1
    norms = np.linalg.norm(probs, axis=1) * np.linalg.norm(extract_features(surrogate, digits.x_train[pool]), axis=1)
    chosen = np.isin(pool, np.flatnonzero(poisoned.is_poison))
    assert norms[chosen].min() >= norms[~chosen].max()
    random = make_attack("sleeper-agent", **{**TINY, "selection": "random", "steps": 2}).poison(
        digits, seed=3, model=surrogate)
    assert set(digits.y_train[random.is_poison].tolist()) == {1}
    assert not np.array_equal(random.is_poison, poisoned.is_poison)


def test_retraining_and_same_seed_same_poisons(digits):
    params = {**TINY, "steps": 4, "retrains": 2, "surrogate_epochs": 1}
    first = make_attack("sleeper-agent", **params).poison(digits, seed=5)
    again = make_attack("sleeper-agent", **params).poison(digits, seed=5)
    assert len(first.attack["retrain_seconds"]) == 2 and first.attack["surrogate_model"] == "paper-cnn"
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.is_poison, again.is_poison)


@pytest.mark.parametrize("params", [dict(retrains=24), dict(eps=0), dict(selection="best"),
                                    dict(surrogate_model="no-such-net"), dict(precision="fp16"), dict(steps=0),
                                    dict(source_class=1), dict(size=17)])
def test_bad_parameters_raise(digits, params):
    with pytest.raises(PoisonlabError):
        make_attack("sleeper-agent", **{**TINY, **params}).poison(digits, seed=0)


def test_budget_larger_than_the_target_class_is_refused(digits):
    with pytest.raises(PoisonlabError, match="target class 1"):
        make_attack("sleeper-agent", **{**TINY, "rate": 0.5}).poison(digits, seed=0)


def test_cli_attack_then_validate_reports_asr(tmp_path, digits, surrogate, capsys):
    weights = tmp_path / "surrogate" / "model.safetensors"
    weights.parent.mkdir()
    save_weights(surrogate, weights)
    out = tmp_path / "sa.npz"
    assert main(["attack", "sleeper-agent", "--dataset", "digits", "--subset", "600", "200", "--rate", "0.05",
                 "--target-class", "1", "--source-class", "7", "--steps", "3", "--retrains", "0",
                 "--surrogate", str(weights), "--craft-precision", "bf16", "--seed", "0", "--out", str(out)]) == 0
    assert "sleeper-agent: poisoned 30 of 600" in capsys.readouterr().out
    poisoned = load_poisoned(out)
    assert poisoned.attack["params"]["precision"] == "bf16"
    report = tmp_path / "v.json"
    assert main(["validate", "--poisoned", str(out), "--runs", "1", "--epochs", "1", "--clean-control",
                 "--out", str(report), "--quiet"]) == 0
    result = json.loads(report.read_text())
    assert 0 <= result["attack_success_rate"] <= 1 and 0 <= result["clean_accuracy"] <= 1
    assert result["n_triggered"] == int((digits.y_test == 7).sum()) and result["target_class"] == 1
    assert 0 <= result["control"]["attack_success_rate"] <= 1  # the trigger's base rate without the poisons
    assert result["max_perturbation"] <= 16
