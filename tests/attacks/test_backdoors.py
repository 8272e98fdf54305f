"""BadNets and blend: trigger placement and size, mask exactness, labels, blend bounds, grey and colour,
image-file triggers, the record that rebuilds the trigger, and attack success measured on the right images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from poisonlab.attacks import BackdoorRecord, backdoor_metrics, make_attack
from poisonlab.attacks.triggers import Trigger, make_trigger, patch_side, trigger_pattern
from poisonlab.data import Dataset, load_poisoned
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.backdoor import backdoor_outcome
from poisonlab.experiment.store import StageStore
from poisonlab.training import TrainConfig


def colour_dataset(n_train: int = 120, n_test: int = 40, size: int = 32) -> Dataset:
    rng = np.random.default_rng(1)
    return Dataset(name="colour", x_train=rng.integers(0, 256, (n_train, 3, size, size), dtype=np.uint8),
                   y_train=(np.arange(n_train) % 4).astype(np.int64),
                   x_test=rng.integers(0, 256, (n_test, 3, size, size), dtype=np.uint8),
                   y_test=(np.arange(n_test) % 4).astype(np.int64), classes=("a", "b", "c", "d"))


def changed_pixels(before: np.ndarray, after: np.ndarray) -> set[tuple[int, int]]:
    """(row, column) of every pixel that differs in any image or channel."""
    return {tuple(p) for p in np.argwhere((before != after).any(axis=(0, 1)))}


@pytest.mark.parametrize("side, expected", [(16, 3), (28, 3), (32, 3), (64, 7), (224, 24)])
def test_patch_side_scales_with_the_image(side, expected):
    assert patch_side(side) == expected
    trigger = make_trigger("square", (1, side, side))
    assert trigger.pattern.shape == (1, expected, expected)
    assert (trigger.top, trigger.left) == (1, 1)  # the default: one pixel in from the top-left corner
    bottom = make_trigger("square", (1, side, side), position="bottom-right")
    assert (bottom.top, bottom.left) == (side - 1 - expected, side - 1 - expected)


@pytest.mark.parametrize("position, top, left", [("bottom-right", 12, 12), ("bottom-left", 12, 1),
                                                 ("top-right", 1, 12), ("top-left", 1, 1), ("center", 6, 6)])
def test_badnets_changes_exactly_the_patch(synthetic, position, top, left):
    poisoned = make_attack("badnets", rate=0.1, target_class=0, position=position).poison(synthetic, seed=0)
    patch = {(r, c) for r in range(top, top + 3) for c in range(left, left + 3)}
    assert changed_pixels(synthetic.x_train, poisoned.x_train) <= patch
    board = np.array([[255, 0, 255], [0, 255, 0], [255, 0, 255]], dtype=np.uint8)
    assert (poisoned.x_train[poisoned.is_poison][:, 0, top:top + 3, left:left + 3] == board).all()
    # outside the patch the poisons keep every pixel, and clean samples keep everything
    outside = np.ones((16, 16), dtype=bool)
    outside[top:top + 3, left:left + 3] = False
    assert np.array_equal(poisoned.x_train[:, :, outside], synthetic.x_train[:, :, outside])
    assert np.array_equal(poisoned.x_train[~poisoned.is_poison], synthetic.x_train[~poisoned.is_poison])


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.123, 0.5])
def test_mask_is_exact_and_labels_go_to_the_target(synthetic, rate):
    poisoned = make_attack("badnets", rate=rate, target_class=2).poison(synthetic, seed=3)
    n = len(synthetic.y_train)
    assert poisoned.n_poison == round(rate * n) == poisoned.attack["n_poison"]
    assert (poisoned.y_train[poisoned.is_poison] == 2).all()
    assert (synthetic.y_train[poisoned.is_poison] != 2).all()  # all-to-one: drawn from the other classes
    assert np.array_equal(poisoned.y_train != synthetic.y_train, poisoned.is_poison)
    assert np.array_equal(poisoned.original_labels, synthetic.y_train)
    assert poisoned.attack["mode"] == "all-to-one"


def test_source_to_target_draws_from_the_source_only(synthetic):
    poisoned = make_attack("blend", rate=0.1, target_class=0, source_class=1).poison(synthetic, seed=0)
    assert poisoned.n_poison == 20 and (synthetic.y_train[poisoned.is_poison] == 1).all()
    assert poisoned.attack["mode"] == "source-to-target" and poisoned.attack["n_eligible"] == 67
    with pytest.raises(PoisonlabError, match="has only 67 training samples"):
        make_attack("badnets", rate=0.5, target_class=0, source_class=1).poison(synthetic, seed=0)


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.7])
def test_blend_stays_within_its_bound_everywhere(synthetic, alpha):
    attack = make_attack("blend", rate=0.2, target_class=0, alpha=alpha)
    poisoned = attack.poison(synthetic, seed=0)
    pattern = trigger_pattern("noise", 1, 16, 16, seed=0).astype(np.float64)
    x = synthetic.x_train[poisoned.is_poison].astype(np.float64)
    moved = np.abs(poisoned.x_train[poisoned.is_poison] - x)
    assert (moved <= alpha * np.abs(pattern - x) + 0.5 + 1e-9).all()
    assert np.array_equal(poisoned.x_train[poisoned.is_poison],
                          np.rint((1 - alpha) * x + alpha * pattern).astype(np.uint8))
    assert len(changed_pixels(synthetic.x_train, poisoned.x_train)) > 200  # a whole-image trigger


def test_colour_images_get_colour_triggers():
    ds = colour_dataset()
    poisoned = make_attack("badnets", rate=0.1, target_class=0, trigger="noise",
                           position="bottom-right").poison(ds, seed=0)
    assert changed_pixels(ds.x_train, poisoned.x_train) <= {(r, c) for r in range(28, 31) for c in range(28, 31)}
    patch = poisoned.x_train[poisoned.is_poison][0, :, 28:31, 28:31]
    assert patch.shape == (3, 3, 3) and not (patch[0] == patch[1]).all()  # channels differ: colour noise
    blended = make_attack("blend", rate=0.1, target_class=0, trigger="checkerboard", alpha=1.0).poison(ds, seed=0)
    assert (blended.x_train[blended.is_poison] == trigger_pattern("checkerboard", 3, 32, 32)).all()


def test_an_image_file_is_resized_to_the_trigger(synthetic, tmp_path):
    picture = np.zeros((10, 10, 3), dtype=np.uint8)
    picture[:, 5:] = 255  # left half black, right half white
    Image.fromarray(picture).save(tmp_path / "t.png")
    attack = make_attack("badnets", rate=0.1, target_class=0, trigger=str(tmp_path / "t.png"), size=4,
                         position="bottom-right")
    poisoned = attack.poison(synthetic, seed=0)
    patch = poisoned.x_train[poisoned.is_poison][0, 0, 11:15, 11:15]
    assert (patch[:, 0] < 60).all() and (patch[:, -1] > 200).all()
    # the record keeps the pattern: the triggered test images need no file
    poisoned.save(tmp_path / "p.npz")
    (tmp_path / "t.png").unlink()
    record = BackdoorRecord.from_attack(load_poisoned(tmp_path / "p.npz").attack, required=True)
    assert np.array_equal(record.trigger.pattern[0], patch)


@pytest.mark.parametrize("trigger, message", [("nosuch", "neither a named pattern"),
                                              ("{tmp}/broken.png", "not a readable image")])
def test_bad_triggers_are_refused_before_any_data(tmp_path, trigger, message):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(PoisonlabError, match=message):
        make_attack("badnets", trigger=trigger.format(tmp=tmp_path))


@pytest.mark.parametrize("name, params, message", [
    ("badnets", {"target_class": 1, "source_class": 1}, "both 1"),
    ("badnets", {"target_class": -1}, "target_class must be a class index"),
    ("badnets", {"rate": 1.5}, "rate must be in"),
    ("badnets", {"position": "middle"}, "position must be one of"),
    ("badnets", {"size": 0}, "size must be a positive integer"),
    ("blend", {"alpha": 0}, "alpha must be in"),
    ("blend", {"alpha": 1.5}, "alpha must be in"),
])
def test_bad_parameters_are_refused_without_data(name, params, message):
    with pytest.raises(PoisonlabError, match=message):
        make_attack(name, **params)


def test_parameters_that_do_not_fit_the_data(synthetic):
    with pytest.raises(PoisonlabError, match=r"target_class must be a class index in 0\.\.2"):
        make_attack("badnets", target_class=5).poison(synthetic)
    with pytest.raises(PoisonlabError, match="does not fit 16x16 images"):
        make_attack("badnets", size=15).poison(synthetic)


def test_apply_trigger_and_the_record_agree(synthetic, tmp_path):
    for name in ("badnets", "blend"):
        attack = make_attack(name, rate=0.1, target_class=1, source_class=0)
        poisoned = attack.poison(synthetic, seed=0)
        poisoned.save(tmp_path / f"{name}.npz")
        record = BackdoorRecord.from_attack(load_poisoned(tmp_path / f"{name}.npz").attack, required=True)
        assert (record.target_class, record.source_class) == (1, 0)
        assert np.array_equal(record.trigger.apply(synthetic.x_test), attack.apply_trigger(synthetic.x_test))
        # the poisons are exactly their originals with the trigger applied
        assert np.array_equal(poisoned.x_train[poisoned.is_poison], attack.apply_trigger(poisoned.original_pixels))
    with pytest.raises(PoisonlabError, match="no 'backdoor' entry"):
        BackdoorRecord.from_attack({"name": "badnets"}, required=True)
    assert BackdoorRecord.from_attack({"name": "label-flip"}) is None


def test_triggered_test_set_holds_the_attacked_classes_only(synthetic):
    trigger = make_trigger("square", (1, 16, 16))
    all_to_one = BackdoorRecord(target_class=1, source_class=None, trigger=trigger)
    x, index = all_to_one.triggered_test_set(synthetic.x_test, synthetic.y_test)
    assert np.array_equal(index, np.flatnonzero(synthetic.y_test != 1))
    assert np.array_equal(x, trigger.apply(synthetic.x_test[index]))
    _, index = BackdoorRecord(1, 2, trigger).triggered_test_set(synthetic.x_test, synthetic.y_test)
    assert np.array_equal(index, np.flatnonzero(synthetic.y_test == 2))


def test_backdoor_metrics():
    y = np.array([1, 2, 2, 3])
    assert backdoor_metrics(np.zeros(4, int), y, 0) == {"attack_success_rate": 1.0, "robust_accuracy": 0.0,
                                                        "n_triggered": 4}
    assert backdoor_metrics(y, y, 0)["attack_success_rate"] == 0.0
    assert backdoor_metrics(np.array([0, 2, 0, 1]), y, 0)["robust_accuracy"] == 0.25
    with pytest.raises(PoisonlabError, match="target class"):
        backdoor_metrics(np.zeros(2, int), np.array([0, 1]), 0)


class AlwaysTarget(nn.Module):
    def __init__(self, target: int, classes: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.nn.functional.one_hot(torch.tensor(target), classes).float())

    def forward(self, x):
        return self.logits.expand(len(x), -1)


class IgnoresThePatch(nn.Module):
    """A fixed random linear classifier that never looks at the bottom-right corner."""

    def __init__(self, classes: int, side: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(side * side, classes)

    def forward(self, x):
        x = x.clone()
        x[..., -5:, -5:] = 0
        return self.head(x.flatten(1))


class Stub:
    """The part of a TrainedModel the backdoor stage reads."""

    def __init__(self, key: str, module: nn.Module) -> None:
        self.key, self._module = key, module
        self.train_config = TrainConfig(precision="fp32", tta="none")

    def model(self) -> nn.Module:
        return self._module


def test_attack_success_counts_the_attacked_test_images_only(synthetic, tmp_path):
    poisoned = make_attack("badnets", rate=0.1, target_class=0).poison(synthetic, seed=0)
    record = BackdoorRecord.from_attack(poisoned.attack, required=True)
    ignoring = IgnoresThePatch(synthetic.num_classes)
    scenarios = {"clean": {}, "attacked": {}}
    info = backdoor_outcome(record, {"clean": Stub("a", ignoring), "attacked": Stub("b", AlwaysTarget(0, 3))},
                            scenarios, synthetic, StageStore(tmp_path, reuse=False))
    assert info == {"target_class": 0, "source_class": None, "n_triggered": int((synthetic.y_test != 0).sum())}
    assert scenarios["attacked"] == {"attack_success_rate": 1.0, "robust_accuracy": 0.0}
    # a model blind to the trigger: its rate on triggered images is its rate on the clean ones (the base)
    others = synthetic.y_test != 0
    with torch.no_grad():
        clean_pred = ignoring(torch.from_numpy(synthetic.x_test[others] / 255.0).float()).argmax(1).numpy()
    assert scenarios["clean"]["attack_success_rate"] == pytest.approx(np.mean(clean_pred == 0))
    assert scenarios["clean"]["robust_accuracy"] == pytest.approx(np.mean(clean_pred == synthetic.y_test[others]))


def test_trigger_record_refuses_what_does_not_fit():
    with pytest.raises(PoisonlabError, match="does not fit"):
        Trigger(np.zeros((1, 3, 3), np.uint8), 14, 14, 1.0, (1, 16, 16))
    with pytest.raises(PoisonlabError, match="bad trigger"):
        Trigger.from_record({"pattern": [[[300]]], "top": 0, "left": 0, "alpha": 1, "image_shape": [1, 4, 4]})
