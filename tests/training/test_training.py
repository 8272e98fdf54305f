import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from poisonlab.cli import main
from poisonlab.data import load_dataset
from poisonlab.errors import PoisonlabError
from poisonlab.models import PaperCNN
from poisonlab.training import (TrainConfig, evaluate, extract_features, load_weights, metrics_from_predictions,
                                predict_logits, random_crop_flip, save_weights, train)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_same_seed_same_model_and_metrics(synthetic):
    cfg = TrainConfig(epochs=2, batch_size=32, seed=7)
    a = train(synthetic.x_train, synthetic.y_train, num_classes=3, config=cfg, progress=False)
    b = train(synthetic.x_train, synthetic.y_train, num_classes=3, config=cfg, progress=False)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert a.epoch_losses == b.epoch_losses
    assert evaluate(a.model, synthetic.x_test, synthetic.y_test, num_classes=3) == \
        evaluate(b.model, synthetic.x_test, synthetic.y_test, num_classes=3)


def test_different_seed_different_model(synthetic):
    a = train(synthetic.x_train, synthetic.y_train, num_classes=3, config=TrainConfig(epochs=1, seed=0), progress=False)
    b = train(synthetic.x_train, synthetic.y_train, num_classes=3, config=TrainConfig(epochs=1, seed=1), progress=False)
    assert not torch.equal(a.model.fc2.weight, b.model.fc2.weight)


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_learns_digits(digits, precision):
    cfg = TrainConfig(epochs=6, batch_size=64, lr=3e-3, seed=0, precision=precision)
    res = train(digits.x_train, digits.y_train, num_classes=10, config=cfg, progress=False)
    m = evaluate(res.model, digits.x_test, digits.y_test, num_classes=10)
    assert m["accuracy"] >= 0.9
    assert res.epoch_losses[-1] < res.epoch_losses[0]


def test_metrics_from_predictions():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    m = metrics_from_predictions(y, pred, num_classes=3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_accuracy"] == [0.5, 1.0, 0.5]
    assert m["per_class_misclassification"] == [0.5, 0.0, 0.5]
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_features_are_penultimate_activations(synthetic):
    model = PaperCNN(in_channels=3, image_size=16, num_classes=3).eval()
    feats = extract_features(model, synthetic.x_train[:10])
    assert feats.shape == (10, 128) and (feats >= 0).all()


def test_bad_config_and_data():
    with pytest.raises(PoisonlabError):
        TrainConfig(epochs=0)
    with pytest.raises(PoisonlabError):
        TrainConfig(precision="fp8")
    with pytest.raises(PoisonlabError):
        train(np.zeros((0, 1, 16, 16), np.uint8), np.zeros(0, np.int64), num_classes=2, progress=False)


def test_train_cli_writes_metrics_and_weights(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--epochs", "2", "--seed", "3", "--out", str(out), "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "per_class_accuracy", "confusion_matrix", "params", "seconds", "epochs", "seed"):
        assert key in m
    assert 0 <= m["accuracy"] <= 1 and m["epochs"] == 2 and m["seed"] == 3
    assert len(m["per_class_accuracy"]) == 10 and np.array(m["confusion_matrix"]).sum() == 359
    model = load_weights(PaperCNN(image_size=16), out / "model.safetensors")
    ds = load_dataset("digits")
    # `poisonlab train` evaluates at the training's precision (bf16 where the CPU has it), the library's
    # evaluate in fp32 unless told
    precision = TrainConfig(epochs=2).resolved_precision()
    assert evaluate(model, ds.x_test, ds.y_test, num_classes=10, precision=precision)["accuracy"] == m["accuracy"]
    assert not list(out.glob(".*.tmp"))


def test_train_options_take_the_models_recipe_only_when_asked_and_explicit_options_win():
    import argparse

    from poisonlab.cli.common import add_train_options, train_config
    from poisonlab.models import RECIPES
    parser = argparse.ArgumentParser()
    add_train_options(parser, epochs=5)
    from poisonlab.errors import PoisonlabWarning
    with pytest.warns(PoisonlabWarning, match="add --recipe"):
        plain = train_config(parser.parse_args(["--model", "airnet-wide"]))
    assert (plain.epochs, plain.optimizer, plain.schedule, plain.lr) == (5, "adam", "one-cycle", TrainConfig.lr)
    recipe = train_config(parser.parse_args(["--model", "airnet-wide", "--recipe"]))
    assert all(getattr(recipe, k) == v for k, v in RECIPES["airnet-wide"].items())
    mixed = train_config(parser.parse_args(["--model", "airnet-wide", "--recipe", "--epochs", "2", "--tta", "flip"]))
    assert (mixed.epochs, mixed.tta, mixed.schedule, mixed.batch_size) == (2, "flip", "airbench", 1024)
    with pytest.raises(PoisonlabError, match="SGD"):  # a recipe's schedule with an optimizer it does not fit
        train_config(parser.parse_args(["--model", "airnet-wide", "--recipe", "--optimizer", "adam"]))


def test_train_cli_bad_input(tmp_path, capsys):
    assert main(["train", "--dataset", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "digits", "--epochs", "-1", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "--epochs" in capsys.readouterr().err


@pytest.mark.slow
def test_mnist_slice_trains_paper_cnn(shared_cache, tmp_path):
    """The paper's model on a real MNIST slice, through the CLI."""
    try:
        load_dataset("mnist")
    except PoisonlabError as exc:
        pytest.skip(f"MNIST not obtainable here: {exc}")
    out = tmp_path / "m"
    assert main(["train", "--dataset", "mnist", "--subset", "3000", "1000", "--epochs", "2", "--out", str(out),
                 "--quiet"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["params"] == 160202 and m["accuracy"] > 0.9


def test_step_budget_trains_exactly_that_many_steps(digits_slice):
    calls = []
    config = TrainConfig(epochs=1, batch_size=64, seed=0, steps=17)  # 400 images: 7 per pass
    result = train(digits_slice.x_train, digits_slice.y_train, num_classes=10, config=config, progress=False,
                   on_epoch=lambda e, n, loss, s: calls.append((e, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)] and len(result.epoch_losses) == 3
    with pytest.raises(PoisonlabError, match="steps"):
        TrainConfig(steps=0)


def test_bf16_inference_agrees_with_fp32(digits_slice):
    model = train(digits_slice.x_train, digits_slice.y_train, num_classes=10, config=TrainConfig(epochs=3, seed=0),
                  progress=False).model
    fp32 = predict_logits(model, digits_slice.x_test).argmax(1)
    bf16 = predict_logits(model, digits_slice.x_test, precision="bf16").argmax(1)
    assert (fp32 == bf16).mean() > 0.95
    assert evaluate(model, digits_slice.x_test, digits_slice.y_test, num_classes=10, precision="bf16")["n_test"] == 150
    with pytest.raises(PoisonlabError):
        predict_logits(model, digits_slice.x_test, precision="fp16")


@pytest.fixture(scope="module")
def digits_slice():
    return load_dataset("digits").subset(400, 150, seed=0)


def test_extract_features_from_any_module(digits_slice):
    """A user's own model: the input of its last nn.Linear by default, or any named layer's output."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x = digits_slice.x_train[:20]
    default = extract_features(net, x)
    assert default.shape == (20, 32) and default.dtype == np.float32 and (default >= 0).all()
    np.testing.assert_array_equal(default, extract_features(net, x, layer="2"))  # the ReLU feeding the head
    pre_relu = extract_features(net, x, layer=net[1])
    np.testing.assert_array_equal(np.maximum(pre_relu, 0), default)
    with torch.no_grad():
        expected = net[:3](torch.from_numpy(x.astype(np.float32) / 255)).numpy()
    np.testing.assert_allclose(default, expected, rtol=1e-6)
    with pytest.raises(PoisonlabError, match="no layer 'nope'.*1, 2"):
        extract_features(net, x, layer="nope")
    with pytest.raises(PoisonlabError, match="not a submodule"):
        extract_features(net, x, layer=nn.Linear(2, 2))
    with pytest.raises(PoisonlabError, match="no nn.Linear"):
        extract_features(nn.Sequential(nn.Flatten()), x)


def test_poisonlab_models_give_their_penultimate_layer(digits_slice):
    model = train(digits_slice.x_train, digits_slice.y_train, num_classes=10, config=TrainConfig(epochs=1, seed=0),
                  progress=False).model
    x = digits_slice.x_train[:30]
    with torch.no_grad():
        expected = model.penultimate(torch.from_numpy(x.astype(np.float32) / 255).contiguous(
            memory_format=torch.channels_last)).numpy()
    np.testing.assert_allclose(extract_features(model, x), expected, rtol=1e-5, atol=1e-6)


def test_weights_get_the_usual_permissions(digits_slice, tmp_path):
    """Every output is written atomically through a temporary file, and ends with the umask's permissions."""
    model = train(digits_slice.x_train, digits_slice.y_train, num_classes=10, config=TrainConfig(epochs=1),
                  progress=False).model
    save_weights(model, tmp_path / "model.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_crop_flip_moves_pixels_only_and_keeps_the_batch_order(digits_slice):
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.uint8).view(2, 3, 6, 6)
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    # every output pixel is an input pixel of the same image and channel, or padding
    for i in range(2):
        for c in range(3):
            assert set(out[i, c].flatten().tolist()) <= set(x[i, c].flatten().tolist()) | {0}
    unchanged = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(unchanged[i], x[i]) or torch.equal(unchanged[i], x[i].flip(-1)) for i in range(2))
    # grey data is never augmented by default; colour data is, and the same seed gives the same model
    assert TrainConfig().resolved_augment(1) == "none" and TrainConfig().resolved_augment(3) == "crop-flip"
    rng = np.random.default_rng(0)
    xc = rng.integers(0, 256, (64, 3, 16, 16), dtype=np.uint8)
    yc = rng.integers(0, 3, 64)
    runs = [train(xc, yc, num_classes=3, config=TrainConfig(epochs=1, batch_size=16, augment=a, precision="fp32"),
                  progress=False).model for a in ("crop-flip", "crop-flip", "none")]
    first, again, plain = (torch.cat([p.flatten() for p in m.parameters()]) for m in runs)
    assert torch.equal(first, again) and not torch.equal(first, plain)


def test_device_choices(digits_slice):
    assert TrainConfig(device="cpu").resolved_device() == "cpu"
    with pytest.raises(PoisonlabError, match="device"):
        TrainConfig(device="tpu")
    if not torch.cuda.is_available():
        assert TrainConfig().resolved_device() == "cpu"
        with pytest.raises(PoisonlabError, match="no CUDA GPU"):
            TrainConfig(device="cuda").resolved_device()


def test_progress_off_a_terminal_is_a_line_per_pass(digits_slice, capsys):
    train(digits_slice.x_train, digits_slice.y_train, num_classes=10, config=TrainConfig(epochs=2, batch_size=64),
          progress=True, desc="demo")
    err = capsys.readouterr().err
    assert "\r" not in err and err.count("poisonlab: demo epoch") == 2 and "epoch 2/2" in err


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": "lamb"}, "optimizer must be one of"), ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"label_smoothing": -0.1}, "label_smoothing"), ({"tta": "rotate"}, "tta must be one of"),
    ({"weight_decay": -1e-4}, "weight_decay")])
def test_recipe_settings_are_checked(changes, message):
    with pytest.raises(PoisonlabError, match=message):
        TrainConfig(**changes)


def test_sgd_and_label_smoothing_train_deterministically_and_differently(digits_slice):
    def weights(**changes):
        cfg = TrainConfig(epochs=1, batch_size=64, seed=3, precision="fp32", **changes)
        model = train(digits_slice.x_train, digits_slice.y_train, num_classes=10, config=cfg, progress=False).model
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    sgd = weights(optimizer="sgd", lr=0.05, weight_decay=5e-4)
    assert torch.equal(sgd, weights(optimizer="sgd", lr=0.05, weight_decay=5e-4))
    assert not torch.equal(sgd, weights(lr=0.05, weight_decay=5e-4))  # Adam
    assert not torch.equal(sgd, weights(optimizer="sgd", lr=0.05, weight_decay=5e-4, label_smoothing=0.2))


def test_flip_tta_is_the_mean_of_an_image_and_its_mirror(digits_slice):
    model = PaperCNN(in_channels=3, image_size=16, num_classes=10).eval()
    x = digits_slice.x_test[:20]
    plain = predict_logits(model, x)
    mirrored = predict_logits(model, np.ascontiguousarray(x[..., ::-1]))
    np.testing.assert_allclose(predict_logits(model, x, tta="flip"), (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)
    # flips are evaluated only where training flipped: colour images by default, never digits
    assert TrainConfig().resolved_tta(1) == "none" and TrainConfig().resolved_tta(3) == "flip"
    assert TrainConfig(augment="none").resolved_tta(3) == "none" and TrainConfig(tta="flip").resolved_tta(1) == "flip"
    with pytest.raises(PoisonlabError, match="tta"):
        predict_logits(model, x, tta="auto")


def test_from_recipe_takes_the_models_recipe_and_the_overrides():
    from poisonlab.models import RECIPES
    from poisonlab.training import TrainConfig

    recipe = RECIPES["airnet"]
    config = TrainConfig.from_recipe("airnet", in_channels=3, seed=7, precision="fp32")
    assert (config.model, config.in_channels, config.seed, config.precision) == ("airnet", 3, 7, "fp32")
    assert (config.epochs, config.batch_size, config.lr, config.optimizer, config.weight_decay,
            config.label_smoothing) == (recipe["epochs"], recipe["batch_size"], recipe["lr"], recipe["optimizer"],
                                        recipe["weight_decay"], recipe["label_smoothing"])
    assert TrainConfig.from_recipe("airnet", in_channels=3, epochs=2).epochs == 2
