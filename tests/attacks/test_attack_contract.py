"""The contract every registered attack keeps, checked for each of them (a new attack is covered by registering it)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from poisonlab.attacks import ATTACKS, Attack, TargetedRecord, make_attack
from poisonlab.cli.attack import ATTACK_COMMANDS
from poisonlab.data import PoisonedDataset, load_poisoned
from poisonlab.errors import PoisonlabError

# small, fast settings per attack; a registered attack missing here fails test_every_attack_has_settings
FAST = {
    "label-flip": {"rate": 0.2},
    "fgsm": {"rate": 0.2, "eps": 0.3, "eps_units": "pixel"},
    "gradient-matching": {"budget": 0.05, "targets": 2, "restarts": 1, "steps": 2, "surrogate_epochs": 1},
    "badnets": {"rate": 0.1, "target_class": 1},
    "blend": {"rate": 0.1, "target_class": 0, "source_class": 2},
    "sleeper-agent": {"rate": 0.05, "target_class": 1, "source_class": 2, "steps": 3, "retrains": 1,
                      "surrogate_epochs": 1, "source_samples": 20},
}
# a parameter value each attack must refuse without seeing data
BAD = {"label-flip": ("rate", 0), "fgsm": ("eps", -1.0), "gradient-matching": ("steps", 0),
       "badnets": ("trigger", "no-such-pattern"), "blend": ("alpha", 2.0), "sleeper-agent": ("retrains", -1)}


def test_every_attack_has_settings_and_a_command():
    assert set(FAST) == set(BAD) == set(ATTACKS) == set(ATTACK_COMMANDS)


@pytest.fixture(params=sorted(ATTACKS))
def name(request):
    return request.param


def _poison(name, ds, seed=0):
    return make_attack(name, **FAST[name]).poison(ds, seed=seed)


def test_params_are_checked_without_data(name):
    key, value = BAD[name]
    with pytest.raises(PoisonlabError, match=key):
        make_attack(name, **{**FAST[name], key: value})
    with pytest.raises(PoisonlabError, match="no_such_param"):
        make_attack(name, no_such_param=1)
    attack = ATTACKS[name](**FAST[name])
    assert isinstance(attack, Attack) and attack.check_params() is attack
    assert json.loads(json.dumps(attack.params())) == attack.params()


def test_poison_keeps_the_contract(name, synthetic, tmp_path):
    x_before, y_before = synthetic.x_train.copy(), synthetic.y_train.copy()
    poisoned = _poison(name, synthetic)
    assert isinstance(poisoned, PoisonedDataset)
    # the input is untouched, and the ground truth says exactly what changed
    assert np.array_equal(synthetic.x_train, x_before) and np.array_equal(synthetic.y_train, y_before)
    changed = (poisoned.x_train != x_before).reshape(len(x_before), -1).any(axis=1) | (poisoned.y_train != y_before)
    assert not (changed & ~poisoned.is_poison).any()
    assert poisoned.n_poison > 0 and np.array_equal(poisoned.original_labels, y_before)
    assert np.array_equal(poisoned.x_test, synthetic.x_test) and np.array_equal(poisoned.y_test, synthetic.y_test)
    assert poisoned.attack["name"] == name and poisoned.attack["seed"] == 0
    assert poisoned.attack["params"] == ATTACKS[name](**FAST[name]).params()
    if poisoned.original_pixels is not None:
        assert np.array_equal(poisoned.original_pixels, x_before[poisoned.is_poison])
    # the record a targeted attack leaves is read back whole
    targeted = TargetedRecord.from_attack(poisoned.attack, required=ATTACKS[name].targeted)
    assert (targeted is not None) == ATTACKS[name].targeted
    if targeted is not None:
        targeted.check_dataset(len(synthetic.y_test), synthetic.num_classes)
        assert len(targeted.targets) == FAST[name]["targets"]
    # the saved file holds the same dataset
    poisoned.save(tmp_path / "p.npz")
    loaded = load_poisoned(tmp_path / "p.npz")
    for key in ("x_train", "y_train", "is_poison", "original_labels", "x_test", "y_test"):
        assert np.array_equal(getattr(loaded, key), getattr(poisoned, key)), key
    assert loaded.attack == json.loads(json.dumps(poisoned.attack))


def test_same_seed_same_poisons(name, synthetic):
    first, second = _poison(name, synthetic), _poison(name, synthetic)
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_train, second.y_train)
    assert np.array_equal(first.is_poison, second.is_poison)
    other = _poison(name, synthetic, seed=1)
    assert not np.array_equal(first.is_poison, other.is_poison)


def test_an_attacked_set_is_not_attacked_again(name, synthetic):
    poisoned = make_attack("label-flip", rate=0.1).poison(synthetic, seed=0)
    with pytest.raises(PoisonlabError, match="already poisoned"):
        make_attack(name, **FAST[name]).poison(poisoned, seed=0)


def test_targeted_record_refuses_half_a_record():
    with pytest.raises(PoisonlabError, match="adversarial_classes"):
        TargetedRecord.from_attack({"name": "x", "targets": [1, 2]})
    with pytest.raises(PoisonlabError, match="targets"):
        TargetedRecord.from_attack({"name": "gradient-matching", "params": {}}, required=True)
    with pytest.raises(PoisonlabError, match="2 targets but 1 adversarial_classes"):
        TargetedRecord.from_attack({"targets": [1, 2], "adversarial_classes": [3]})
    assert TargetedRecord.from_attack({"name": "label-flip", "params": {}}) is None
    record = TargetedRecord(targets=(4,), adversarial_classes=(1,), poison_indices=((0, 2),))
    assert TargetedRecord.from_attack(record.to_record()) == record
