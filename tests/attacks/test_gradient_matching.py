"""Witches' Brew gradient matching: bounds, masks, labels, determinism, and a falling alignment loss."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from poisonlab.attacks import make_attack
from poisonlab.cli import attack, main
from poisonlab.attacks.gradient_matching import (GradientMatching, brew_poisons, gradient_alignment,
                                                 random_flip, random_translate)
from poisonlab.data import Dataset, load_dataset, load_poisoned
from poisonlab.errors import PoisonlabError
from poisonlab.training import TrainConfig, predict_logits, save_weights, train

EPS = 16 / 255
TINY = dict(budget=0.05, eps=EPS, targets=2, restarts=2, steps=6, surrogate_epochs=4)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").subset(300, 100, seed=0)


@pytest.fixture(scope="module")
def poisoned(digits):
    return make_attack("gradient-matching", **TINY).poison(digits, seed=3)


@pytest.fixture(scope="module")
def surrogate(digits):
    return train(digits.x_train, digits.y_train, num_classes=digits.num_classes,
                 config=TrainConfig(epochs=4, seed=11), progress=False).model


def test_perturbation_within_eps_and_only_on_poisons(digits, poisoned):
    delta = poisoned.x_train.astype(np.int64) - digits.x_train.astype(np.int64)
    # 16/255 is a whole number of grey levels, so rounding cannot leave the ball
    assert np.abs(delta).max() <= 16
    changed = np.abs(delta).reshape(len(delta), -1).max(axis=1) > 0
    assert not changed[~poisoned.is_poison].any()
    assert changed[poisoned.is_poison].mean() > 0.9  # crafting really moved the poisons
    assert poisoned.x_train.dtype == np.uint8  # uint8 is the valid 0..255 range by construction


def test_labels_unchanged_and_poisons_are_adversarial_class(digits, poisoned):
    record = poisoned.attack
    np.testing.assert_array_equal(poisoned.y_train, digits.y_train)
    np.testing.assert_array_equal(poisoned.original_labels, digits.y_train)
    per_target = round(0.05 * len(digits.y_train))
    assert poisoned.n_poison == 2 * per_target  # the budget is per target, in disjoint sets
    all_indices = np.concatenate([np.asarray(i) for i in record["poison_indices"]])
    assert len(set(all_indices.tolist())) == len(all_indices) == poisoned.n_poison
    np.testing.assert_array_equal(np.sort(all_indices), np.flatnonzero(poisoned.is_poison))
    assert [len(i) for i in record["poison_indices"]] == [per_target, per_target]
    for indices, y_adv, target, y_true in zip(record["poison_indices"], record["adversarial_classes"],
                                              record["targets"], record["target_true_labels"]):
        assert (digits.y_train[indices] == y_adv).all()
        assert y_adv != y_true == digits.y_test[target]


def test_record_has_losses_and_timings(poisoned):
    record = poisoned.attack
    assert len(record["targets"]) == 2
    for key in ("alignment_loss", "crafting_seconds", "alignment_loss_history", "alignment_loss_per_restart"):
        assert len(record[key]) == 2
    for best, per_restart, history in zip(record["alignment_loss"], record["alignment_loss_per_restart"],
                                          record["alignment_loss_history"]):
        assert len(per_restart) == 2 and best == min(per_restart)
        assert len(history) == 6
        assert 0 <= best <= 2
    assert record["params"]["eps"] == EPS


def test_same_seed_same_poisons(digits, poisoned):
    again = make_attack("gradient-matching", **TINY).poison(digits, seed=3)
    np.testing.assert_array_equal(again.x_train, poisoned.x_train)
    assert again.attack["targets"] == poisoned.attack["targets"]
    assert again.attack["alignment_loss"] == poisoned.attack["alignment_loss"]


@pytest.fixture(scope="module")
def brewed(digits, surrogate):
    """20 poisons of class 3 brewed (40 steps, no shifts) so that the first digits test 5 turns into a 3."""
    poison_idx = np.flatnonzero(digits.y_train == 3)[:20]
    target = int(np.flatnonzero(digits.y_test == 5)[0])
    brew = brew_poisons([surrogate], digits.x_train[poison_idx], digits.y_train[poison_idx],
                        digits.x_test[target:target + 1], 3, eps=EPS, steps=40, restarts=1, max_shift=0,
                        generator=torch.Generator().manual_seed(0))
    return brew, poison_idx, target


def test_gradient_alignment_is_what_crafting_maximises(digits, surrogate, brewed):
    brew, poison_idx, target = brewed
    args = (digits.y_train[poison_idx], digits.x_test[target:target + 1], 3)
    crafted = gradient_alignment(surrogate, brew.poisons, *args)
    # the crafting loss is 1 - this cosine, up to uint8 rounding of the poisons
    assert crafted == pytest.approx(1 - brew.best_loss, abs=0.03)
    assert crafted > gradient_alignment(surrogate, digits.x_train[poison_idx], *args) + 0.02
    assert -1 <= crafted <= 1


def test_alignment_loss_falls(brewed):
    brew = brewed[0]
    history = brew.best_history
    assert np.mean(history[-5:]) < np.mean(history[:5]) - 0.02
    assert brew.best_loss < history[0]


def test_bf16_crafting_aligns_like_fp32_and_keeps_the_bound(digits, surrogate, brewed):
    fp32, poison_idx, target = brewed
    brew = brew_poisons([surrogate], digits.x_train[poison_idx], digits.y_train[poison_idx],
                        digits.x_test[target:target + 1], 3, eps=EPS, steps=40, restarts=1, max_shift=0,
                        generator=torch.Generator().manual_seed(0), precision="bf16")
    delta = brew.poisons.astype(np.int64) - digits.x_train[poison_idx].astype(np.int64)
    assert np.abs(delta).max() <= 16
    # the same descent in lower precision: it falls as far as float32's (scored in float32 both times)
    assert np.mean(brew.best_history[-5:]) < np.mean(brew.best_history[:5]) - 0.02
    assert brew.best_loss == pytest.approx(fp32.best_loss, abs=0.05)


def test_fractional_eps_bound_after_rounding(digits, surrogate):
    eps = 5.3 / 255
    idx = np.flatnonzero(digits.y_train == 1)[:8]
    brew = brew_poisons([surrogate], digits.x_train[idx], digits.y_train[idx], digits.x_test[:1], 1, eps=eps,
                        steps=5, max_shift=1, generator=torch.Generator().manual_seed(1))
    delta = brew.poisons.astype(np.int64) - digits.x_train[idx].astype(np.int64)
    assert np.abs(delta).max() / 255 <= eps + 0.5 / 255


def test_ensemble_and_given_model(digits, surrogate):
    attack = GradientMatching(budget=0.05, targets=1, restarts=1, steps=2, ensemble=2, surrogate_epochs=1)
    out = attack.poison(digits, seed=0, model=surrogate)
    assert out.attack["surrogate_seeds"][0] == "given" and isinstance(out.attack["surrogate_seeds"][1], int)
    assert out.n_poison == round(0.05 * len(digits.y_train))


def test_low_margin_targets_are_the_surrogates_closest_calls(digits, surrogate):
    attack = GradientMatching(budget=0.02, targets=2, restarts=1, steps=1, target_selection="low-margin")
    record = attack.poison(digits, seed=0, model=surrogate).attack
    logits = predict_logits(surrogate, digits.x_test)
    truth = digits.y_test
    correct = logits.argmax(axis=1) == truth
    others = logits.copy()
    others[np.arange(len(truth)), truth] = -np.inf
    margin = logits[np.arange(len(truth)), truth] - others.max(axis=1)
    cutoff = np.quantile(margin[correct], 0.05)
    assert record["target_selection"] == "low-margin"
    for target, y_adv, recorded in zip(record["targets"], record["adversarial_classes"], record["target_margins"]):
        assert correct[target] and margin[target] <= cutoff
        assert y_adv == others[target].argmax()  # the runner-up class
        assert recorded == pytest.approx(margin[target], abs=1e-3)
    # the reference protocol is unchanged: random targets, margins recorded for them too
    random_record = GradientMatching(budget=0.02, targets=2, restarts=1, steps=1).poison(
        digits, seed=0, model=surrogate).attack
    assert random_record["target_selection"] == "random" and len(random_record["target_margins"]) == 2
    with pytest.raises(PoisonlabError, match="target_selection"):
        GradientMatching(target_selection="easy").poison(digits, seed=0, model=surrogate)


def test_random_translate_is_a_shift_and_differentiable():
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    assert torch.equal(random_translate(x, max_shift=0), x)
    shifted = random_translate(x, max_shift=2, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    # every output pixel is an input pixel or zero padding
    values = set(x.detach().flatten().tolist()) | {0.0}
    assert set(shifted.detach().flatten().tolist()) <= values
    shifted.sum().backward()
    assert x.grad is not None and x.grad.max() == 1


def test_random_flip_mirrors_some_images_and_is_differentiable():
    x = torch.rand(32, 3, 4, 4, requires_grad=True)
    flipped = random_flip(x, generator=torch.Generator().manual_seed(0))
    mirrored = [torch.equal(f, i.flip(2)) for f, i in zip(flipped.detach(), x.detach())]
    kept = [torch.equal(f, i) for f, i in zip(flipped.detach(), x.detach())]
    assert all(m or k for m, k in zip(mirrored, kept)) and 0 < sum(mirrored) < 32
    flipped.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def _rgb(ds: Dataset) -> Dataset:
    return Dataset(name=ds.name, x_train=np.repeat(ds.x_train, 3, axis=1), y_train=ds.y_train,
                   x_test=np.repeat(ds.x_test, 3, axis=1), y_test=ds.y_test, classes=ds.classes)


def test_crafting_augmentation_follows_the_image_kind(digits):
    rgb = _rgb(digits)
    assert GradientMatching().resolved_augmentation(digits) == (2, False)  # digits: translations only
    assert GradientMatching().resolved_augmentation(rgb) == (2, True)  # 16x16 colour: an eighth, and flips
    assert GradientMatching(max_shift=3).resolved_augmentation(rgb) == (3, True)
    assert GradientMatching(augment=False).resolved_augmentation(rgb) == (0, False)


def test_colour_brew_stays_within_eps_and_records_its_augmentation(digits):
    rgb = _rgb(digits)
    model = train(rgb.x_train, rgb.y_train, num_classes=rgb.num_classes, config=TrainConfig(epochs=2, seed=1),
                  progress=False).model
    p = GradientMatching(budget=0.02, eps=EPS, steps=4, targets=1).poison(rgb, seed=0, model=model)
    assert p.attack["crafting_augmentation"] == {"max_shift": 2, "flip": True}
    delta = np.abs(p.x_train.astype(int) - rgb.x_train.astype(int))
    assert delta.max() <= 16 and delta[~p.is_poison].max() == 0
    np.testing.assert_array_equal(p.y_train, rgb.y_train)  # clean label


@pytest.mark.parametrize("params", [dict(budget=0), dict(eps=0), dict(targets=0), dict(steps=0),
                                    dict(budget=0.001, targets=5), dict(budget=0.2, targets=3),
                                    dict(precision="fp16")])
def test_bad_parameters_raise(digits, params):
    with pytest.raises(PoisonlabError):
        make_attack("gradient-matching", **params).poison(digits, seed=0)


def _gm_parser() -> argparse.ArgumentParser:
    """The ``poisonlab attack`` group's parser (one path for every attack)."""
    parser = argparse.ArgumentParser()
    attack.register(parser.add_subparsers())
    return parser


def test_cli_subcommand_writes_poisoned_npz(tmp_path, surrogate):
    weights = tmp_path / "model.safetensors"
    save_weights(surrogate, weights)
    out = tmp_path / "p.npz"
    args = _gm_parser().parse_args(["attack", "gradient-matching", "--dataset", "digits", "--subset", "200", "60",
                                    "--budget", "0.05", "--eps", "8", "--targets", "2", "--restarts", "1",
                                    "--steps", "2", "--surrogate", str(weights), "--out", str(out)])
    assert args.func(args) == 0
    loaded = load_poisoned(out)
    assert loaded.n_poison == 2 * 10 and loaded.attack["params"]["eps"] == pytest.approx(8 / 255)
    assert len(loaded.attack["targets"]) == 2 and loaded.attack["surrogate_seeds"] == ["given"]


def test_cli_missing_surrogate_is_a_user_error(tmp_path):
    args = _gm_parser().parse_args(["attack", "gradient-matching", "--dataset", "digits", "--surrogate",
                                    str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "p.npz")])
    with pytest.raises(PoisonlabError, match="no such file"):
        args.func(args)


def test_public_cli_attack_then_validate(tmp_path, capsys):
    out, report = tmp_path / "p.npz", tmp_path / "v.json"
    assert main(["attack", "gradient-matching", "--dataset", "digits", "--subset", "200", "60", "--budget", "0.05",
                 "--eps", "16", "--targets", "1", "--restarts", "1", "--steps", "2", "--surrogate-epochs", "1",
                 "--seed", "0", "--out", str(out)]) == 0
    assert main(["validate", "--poisoned", str(out), "--runs", "2", "--epochs", "1", "--out", str(report),
                 "--clean-control", "--quiet"]) == 0
    printed = capsys.readouterr()
    assert "gradient-matching: poisoned 10 of 200" in printed.out
    assert load_poisoned(out).attack["name"] == "gradient-matching" and report.is_file()
    result = json.loads(report.read_text())
    assert 0 < result["max_perturbation"] <= 16
    # every victim and every control model is probed for the alignment of the poisons and of their originals
    for part in (result, result["control"]):
        for target in part["targets"]:
            assert len(target["alignment"]) == len(target["alignment_unperturbed"]) == 2
            assert all(-1 <= a <= 1 for a in target["alignment"] + target["alignment_unperturbed"])
    assert "on clean-control models" in printed.err and "(unperturbed" in printed.err
    assert "alignment on the surrogate" in printed.err
