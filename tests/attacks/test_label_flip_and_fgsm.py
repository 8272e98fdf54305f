"""Label flipping and FGSM: exact counts, ground-truth masks, untouched samples, determinism, no mutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from poisonlab.attacks import ATTACKS, make_attack
from poisonlab.attacks.fgsm import FGSM
from poisonlab.training import pixel_stats
from poisonlab.attacks.label_flip import LABEL_FLIP_PAPER_PRESET, PRESETS, LabelFlip
from poisonlab.data import Dataset, PoisonedDataset, load_dataset, load_poisoned
from poisonlab.errors import PoisonlabError
from poisonlab.models import PaperCNN
from poisonlab.models.paper_cnn import MNIST_STD

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def synthetic(n_train: int, num_classes: int, *, seed: int = 0, side: int = 4,
              empty_class: int | None = None) -> Dataset:
    """Random uint8 images (n, 1, side, side) and labels; ``empty_class`` gets no training samples."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=n_train)
    if empty_class is not None:
        y[y == empty_class] = (empty_class + 1) % num_classes
    return Dataset(name="synthetic", x_train=rng.integers(0, 256, size=(n_train, 1, side, side), dtype=np.uint8),
                   y_train=y.astype(np.int64), x_test=rng.integers(0, 256, size=(8, 1, side, side), dtype=np.uint8),
                   y_test=rng.integers(0, num_classes, size=8).astype(np.int64),
                   classes=tuple(str(c) for c in range(num_classes)))


def snapshot(ds: Dataset) -> dict[str, bytes]:
    return {k: v.tobytes() for k, v in ds.arrays().items()}


class LinearModel(nn.Module):
    """A tiny differentiable classifier for fast FGSM properties: every pixel has a non-zero gradient."""

    def __init__(self, n_pixels: int, num_classes: int, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(n_pixels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))


# ------------------------------------------------------------------------------------------- label flip

label_flip_cases = st.fixed_dictionaries({
    "n_train": st.integers(1, 300),
    "num_classes": st.integers(2, 10),
    "rate": st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
    "seed": st.integers(0, 2**32 - 1),
    "mode": st.sampled_from(["uniform", "targeted-to-class", "targeted-random"]),
    "data_seed": st.integers(0, 1000),
})


def label_flip_params(case: dict, ds: Dataset) -> dict:
    params = {"rate": case["rate"]}
    if case["mode"] != "uniform":
        params["source_class"] = int(ds.y_train[0])  # a class that has samples
        if case["mode"] == "targeted-to-class":
            params["target_class"] = (params["source_class"] + 1) % ds.num_classes
    return params


@PROPERTY
@given(label_flip_cases)
def test_label_flip_properties(case):
    ds = synthetic(case["n_train"], case["num_classes"], seed=case["data_seed"])
    before = snapshot(ds)
    params = label_flip_params(case, ds)
    source = params.get("source_class")
    eligible = np.ones(len(ds.y_train), bool) if source is None else ds.y_train == source
    if round(case["rate"] * eligible.sum()) == 0:  # a rate that poisons nothing is refused, not a no-op
        with pytest.raises(PoisonlabError, match="poisons none"):
            make_attack("label-flip", **params).poison(ds, seed=case["seed"])
        return
    p = make_attack("label-flip", **params).poison(ds, seed=case["seed"])
    assert p.n_poison == round(case["rate"] * eligible.sum())
    assert not np.any(p.is_poison & ~eligible)
    # the label changes exactly where is_poison, and never to the same class
    np.testing.assert_array_equal(p.y_train != ds.y_train, p.is_poison)
    if "target_class" in params:
        assert np.all(p.y_train[p.is_poison] == params["target_class"])
    # untouched: every image, and the labels of every clean sample, bit for bit
    assert p.x_train.tobytes() == ds.x_train.tobytes()
    np.testing.assert_array_equal(p.y_train[~p.is_poison], ds.y_train[~p.is_poison])
    np.testing.assert_array_equal(p.original_labels, ds.y_train)
    assert p.y_train.dtype == np.int64 and p.y_train.min() >= 0 and p.y_train.max() < ds.num_classes
    flips = np.array(p.attack["flips"])
    assert np.trace(flips) == 0 and flips.sum() == p.n_poison
    assert p.attack["name"] == "label-flip" and p.attack["params"] == LabelFlip(**params).params()
    assert p.attack["seed"] == case["seed"]
    # same seed, same bytes; the input is left as it was
    again = make_attack("label-flip", **params).poison(ds, seed=case["seed"])
    assert again.y_train.tobytes() == p.y_train.tobytes() and again.is_poison.tobytes() == p.is_poison.tobytes()
    assert snapshot(ds) == before


def test_uniform_ten_percent_of_sixty_thousand_is_six_thousand():
    ds = synthetic(60_000, 10, side=1)
    p = LabelFlip(rate=0.1).poison(ds, seed=0)
    assert p.n_poison == 6000
    assert int((p.y_train != ds.y_train).sum()) == 6000


def test_uniform_flip_spreads_over_every_other_class():
    ds = synthetic(20_000, 4, side=1)
    flips = np.array(LabelFlip(rate=0.5).poison(ds, seed=1).attack["flips"])
    off_diagonal = flips[~np.eye(4, dtype=bool)]
    # each of the 12 (from, to) pairs expects about 10,000 / 12 = 833; 600 is > 8 standard deviations away
    assert off_diagonal.min() > 600


def test_targeted_random_flip_never_keeps_source_and_reaches_several_classes():
    ds = synthetic(5_000, 10, side=1)
    p = LabelFlip(rate=1.0, source_class=3).poison(ds, seed=0)
    assert p.n_poison == int((ds.y_train == 3).sum())
    assert 3 not in set(p.y_train[p.is_poison].tolist())
    assert len(set(p.y_train[p.is_poison].tolist())) == 9


def test_numpy_class_indices_serialise(tmp_path):
    ds = synthetic(100, 3, side=1)
    p = LabelFlip(rate=0.5, source_class=np.int64(1), target_class=np.int64(0)).poison(ds, seed=0)
    p.save(tmp_path / "p.npz")
    assert load_poisoned(tmp_path / "p.npz").attack["params"] == {"rate": 0.5, "source_class": 1, "target_class": 0}


def test_different_seeds_choose_different_samples():
    ds = synthetic(1000, 10, side=1)
    a, b = (LabelFlip(rate=0.1).poison(ds, seed=s).is_poison for s in (0, 1))
    assert a.sum() == b.sum() == 100 and not np.array_equal(a, b)


def test_paper_preset_is_a_valid_targeted_class_2_flip():
    assert PRESETS["paper"] is LABEL_FLIP_PAPER_PRESET
    assert LABEL_FLIP_PAPER_PRESET["source_class"] == 2
    ds = synthetic(500, 10, side=1)
    p = LabelFlip(**LABEL_FLIP_PAPER_PRESET).poison(ds, seed=0)
    assert p.n_poison == round(LABEL_FLIP_PAPER_PRESET["rate"] * (ds.y_train == 2).sum())
    assert set(ds.y_train[p.is_poison].tolist()) == {2}


@pytest.mark.parametrize("params, message", [
    ({"rate": 0.0}, "rate must be in (0, 1]"),
    ({"rate": 1.5}, "rate must be in (0, 1]"),
    ({"rate": -0.1}, "rate must be in (0, 1]"),
    ({"rate": float("nan")}, "rate must be in (0, 1]"),
    ({"rate": 0.1, "source_class": 10}, "source_class must be a class index in 0..9"),
    ({"rate": 0.1, "source_class": -1}, "source_class must be a class index"),
    ({"rate": 0.1, "source_class": 1, "target_class": 10}, "target_class must be a class index"),
    ({"rate": 0.1, "source_class": 2, "target_class": 2}, "a flip must change the label"),
    ({"rate": 0.1, "target_class": 2}, "target_class needs source_class"),
    ({"rate": 0.1, "source_class": 4}, "source class 4 has no training samples"),
])
def test_label_flip_rejects_bad_parameters(params, message):
    ds = synthetic(200, 10, side=1, empty_class=4)
    with pytest.raises(PoisonlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LabelFlip(**params).poison(ds, seed=0)


def test_unknown_attack_and_unknown_parameter_are_user_errors():
    with pytest.raises(PoisonlabError, match="unknown attack 'nope'"):
        make_attack("nope")
    with pytest.raises(PoisonlabError, match="label-flip"):
        make_attack("label-flip", strength=3)


def test_attacking_a_poisoned_dataset_is_refused():
    p = LabelFlip(rate=0.1).poison(synthetic(50, 3), seed=0)
    with pytest.raises(PoisonlabError, match="already poisoned"):
        LabelFlip(rate=0.1).poison(p, seed=0)


@pytest.mark.parametrize("name, params", [("label-flip", {"rate": 0.3, "source_class": 1}),
                                          ("fgsm", {"rate": 0.3, "eps": 0.1, "eps_units": "pixel"})])
def test_save_and_load_round_trip(tmp_path, name, params):
    ds = synthetic(60, 3, side=12)
    model = LinearModel(144, 3, seed=0) if name == "fgsm" else None
    p = make_attack(name, **params).poison(ds, seed=5, model=model)
    path = tmp_path / "p.npz"
    p.save(path)
    q = load_poisoned(path)
    assert isinstance(q, PoisonedDataset)
    for key in ("x_train", "y_train", "x_test", "y_test", "is_poison", "original_labels"):
        a, b = getattr(p, key), getattr(q, key)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), key
    assert q.classes == p.classes and q.attack == p.attack
    if name == "label-flip":  # no pixel changed: nothing to keep
        assert p.original_pixels is None and q.original_pixels is None and q.perturbation() is None
    else:  # the unperturbed poisons travel with the file, so the perturbation can be checked from it alone
        np.testing.assert_array_equal(q.original_pixels, ds.x_train[p.is_poison])
        delta = q.perturbation()
        np.testing.assert_array_equal(delta, q.x_train[q.is_poison].astype(np.int16) - ds.x_train[q.is_poison])
        assert np.abs(delta).max() <= round(0.1 * 255) and np.abs(delta).max() > 0
        kept = q.keep(np.arange(len(q.y_train)) % 2 == 0)  # a filter keeps each kept poison's original
        np.testing.assert_array_equal(kept.original_pixels, ds.x_train[::2][q.is_poison[::2]])


# ------------------------------------------------------------------------------------------------ FGSM

fgsm_cases = st.fixed_dictionaries({
    "n_train": st.integers(1, 120),
    "num_classes": st.integers(2, 5),
    "rate": st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
    "eps": st.one_of(st.floats(min_value=0.002, max_value=0.9), st.floats(min_value=1.0, max_value=4.0)),
    "seed": st.integers(0, 2**32 - 1),
    "data_seed": st.integers(0, 1000),
    "channels": st.sampled_from([1, 3]),
})


@PROPERTY
@given(fgsm_cases)
def test_fgsm_properties(case):
    rng = np.random.default_rng(case["data_seed"])
    n, c, k = case["n_train"], case["channels"], case["num_classes"]
    ds = Dataset(name="synthetic", x_train=rng.integers(0, 256, size=(n, c, 5, 5), dtype=np.uint8),
                 y_train=rng.integers(0, k, size=n).astype(np.int64),
                 x_test=rng.integers(0, 256, size=(4, c, 5, 5), dtype=np.uint8),
                 y_test=rng.integers(0, k, size=4).astype(np.int64), classes=tuple("abcde"[:k]))
    before = snapshot(ds)
    model = LinearModel(c * 25, k, seed=case["data_seed"])
    attack = FGSM(rate=case["rate"], eps=case["eps"], eps_units="pixel", batch_size=16)
    if round(case["rate"] * n) == 0:  # a rate that poisons nothing is refused, not a no-op
        with pytest.raises(PoisonlabError, match="poisons none"):
            attack.poison(ds, seed=case["seed"], model=model)
        return
    p = attack.poison(ds, seed=case["seed"], model=model)

    assert p.n_poison == round(case["rate"] * n)
    assert p.x_train.dtype == np.uint8 and p.x_train.shape == ds.x_train.shape
    changed = np.any(p.x_train != ds.x_train, axis=(1, 2, 3))
    assert not np.any(changed & ~p.is_poison)  # pixels change only where is_poison
    # within eps after quantisation (rounding adds at most half a grey level; the bound asked is eps + 1/255)
    step = np.abs(p.x_train.astype(np.int16) - ds.x_train.astype(np.int16)) / 255.0
    assert step.max(initial=0) <= case["eps"] + 0.5 / 255 + 1e-6
    if case["eps"] >= 1.0:  # saturation: a linear model's gradient is non-zero at every pixel
        assert np.isin(p.x_train[p.is_poison], (0, 255)).all()
    np.testing.assert_array_equal(p.y_train, ds.y_train)  # labels are kept
    assert p.attack["eps_pixel"] == case["eps"] and p.attack["surrogate"]["source"] == "given"
    again = attack.poison(ds, seed=case["seed"], model=model)
    assert again.x_train.tobytes() == p.x_train.tobytes() and again.is_poison.tobytes() == p.is_poison.tobytes()
    assert snapshot(ds) == before


def test_fgsm_moves_each_pixel_by_the_sign_of_the_loss_gradient():
    ds = synthetic(30, 3, side=4)
    model = LinearModel(16, 3, seed=1)
    p = FGSM(rate=1.0, eps=10 / 255, eps_units="pixel").poison(ds, seed=0, model=model)
    x = torch.tensor(ds.x_train / 255.0, dtype=torch.float32, requires_grad=True)
    nn.functional.cross_entropy(model(x), torch.tensor(ds.y_train), reduction="sum").backward()
    expected = np.clip(ds.x_train.astype(int) + 10 * np.sign(x.grad.numpy()).astype(int), 0, 255)
    np.testing.assert_array_equal(p.x_train, expected)


def colour(ds: Dataset) -> Dataset:
    """``ds`` with its images repeated to three channels (a colour dataset of the same content)."""
    rep = lambda x: np.repeat(x, 3, axis=1)  # noqa: E731
    return Dataset(name=ds.name, x_train=rep(ds.x_train), y_train=ds.y_train, x_test=rep(ds.x_test),
                   y_test=ds.y_test, classes=ds.classes)


@pytest.mark.parametrize("units, grey, rgb", [
    ("auto", (2.0, "normalized"), (8 / 255, "pixel")),
    ("pixel", (8 / 255, "pixel"), (8 / 255, "pixel")),
    ("normalized", (2.0, "normalized"), (2.0, "normalized"))])
def test_fgsm_default_eps_follows_the_image_kind(units, grey, rgb):
    attack = FGSM(eps_units=units)
    assert attack.resolved_eps(1) == grey and attack.resolved_eps(3) == rgb
    assert FGSM(eps=0.05, eps_units=units).resolved_eps(3)[0] == 0.05  # a given eps is kept as given


def test_fgsm_on_colour_defaults_to_8_of_255_pixels():
    ds = colour(synthetic(20, 3, side=4))
    model = LinearModel(48, 3, seed=1)
    p = FGSM(rate=1.0).poison(ds, seed=0, model=model)
    assert (p.attack["eps_used"], p.attack["eps_units_used"]) == (8 / 255, "pixel")
    assert p.attack["eps_pixel"] == pytest.approx(8 / 255)
    step = np.abs(p.x_train.astype(int) - ds.x_train.astype(int))
    assert step.max() == 8  # every pixel of a linear model has a gradient: moved by 8 levels unless clamped


def test_fgsm_normalized_eps_uses_the_models_std():
    ds = synthetic(20, 10, side=16)
    model = PaperCNN(in_channels=3, image_size=16, num_classes=10)
    p = FGSM(rate=0.5, eps=2.0).poison(ds, seed=0, model=model)
    assert p.attack["pixel_std"] == pytest.approx(MNIST_STD)
    assert p.attack["eps_pixel"] == pytest.approx(2.0 * 0.3081)  # the paper's eps in [0, 1] pixel units
    step = np.abs(p.x_train.astype(int) - ds.x_train.astype(int))
    assert step.max() <= round(0.6162 * 255) + 1


def test_fgsm_trains_its_own_surrogate_and_fools_it():
    ds = load_dataset("digits").subset(600, 150, seed=0)
    before = snapshot(ds)
    attack = FGSM(rate=0.2, eps=0.3, eps_units="pixel", surrogate_epochs=2)
    p = attack.poison(ds, seed=0)
    assert p.n_poison == 120
    record = p.attack
    assert record["pixel_std"] == pytest.approx((ds.x_train / 255.0).std(), abs=1e-4)
    assert record["surrogate"]["source"] == "trained on the clean training set"
    assert record["surrogate"]["test_accuracy"] > 0.3  # trained, not random (10 classes)
    assert record["surrogate_accuracy_on_poisons_after"] < record["surrogate_accuracy_on_poisons_before"]
    again = attack.poison(ds, seed=0)  # surrogate training is seeded too: same seed, same bytes
    assert again.x_train.tobytes() == p.x_train.tobytes()
    assert snapshot(ds) == before


@pytest.mark.parametrize("params, message", [
    ({"rate": 0.0}, r"rate must be in \(0, 1\]"),
    ({"rate": 2.0}, r"rate must be in \(0, 1\]"),
    ({"eps": 0.0}, "eps must be a positive number"),
    ({"eps": -1.0}, "eps must be a positive number"),
    ({"eps": float("inf")}, "eps must be a positive number"),
    ({"eps_units": "grey"}, "eps_units must be one of"),
    ({"eps": 0.001, "eps_units": "pixel"}, "below half a grey level"),
    ({"surrogate_epochs": 0}, "surrogate_epochs must be a positive integer"),
])
def test_fgsm_rejects_bad_parameters(params, message):
    ds = synthetic(20, 3, side=4)
    with pytest.raises(PoisonlabError, match=message):
        FGSM(**params).poison(ds, seed=0, model=LinearModel(16, 3, seed=0))


@PROPERTY
@given(st.integers(1, 50), st.integers(0, 10_000))
def test_pixel_stats_are_exact(n, seed):
    x = np.random.default_rng(seed).integers(0, 256, size=(n, 1, 3, 3), dtype=np.uint8)
    mean, std = pixel_stats(x)
    assert mean == pytest.approx((x / 255.0).mean(), abs=6e-5)
    assert std == pytest.approx(max((x / 255.0).std(), 1e-3), abs=6e-5)


def test_fgsm_rejects_a_model_with_the_wrong_number_of_classes():
    with pytest.raises(PoisonlabError, match=r"expected \(batch, 3\)"):
        FGSM(rate=0.5, eps=0.1, eps_units="pixel").poison(synthetic(20, 3, side=4), seed=0,
                                                          model=LinearModel(16, 5, seed=0))


def test_both_attacks_are_registered():
    make_attack("label-flip")  # loads the registry
    assert ATTACKS["label-flip"] is LabelFlip and ATTACKS["fgsm"] is FGSM
