"""airbench's recipe pieces: the reflected shift with alternating flips, the six-view TTA, the schedule,
the batch-norm bias group and lookahead, and airnet-wide trained by them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from poisonlab.augment import random_shift_flip, reflect_index, shift_flip
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.config import config_from_dict
from poisonlab.inference import predict_logits
from poisonlab.models import RECIPES, AirNetWide
from poisonlab.schedules import AIRBENCH_BIAS_SCALE, AIRBENCH_MOMENTUM, Lookahead, airbench_rate
from poisonlab.training import TrainConfig, make_optimizer, train


def test_reflect_index_matches_torch_reflect_padding():
    x = torch.arange(7.0).view(1, 1, 1, 7)
    padded = F.pad(x, (3, 3, 0, 0), mode="reflect")[0, 0, 0]
    assert torch.equal(x[0, 0, 0][reflect_index(torch.arange(-3, 10), 7)], padded)


@pytest.mark.parametrize("dy,dx", [(-2, 1), (0, 0), (2, -2), (1, 2)])
def test_shift_flip_is_a_reflected_translation_then_a_mirror(dy, dx):
    x = torch.randn(2, 3, 8, 8)
    r = 2
    padded = F.pad(x, (r,) * 4, mode="reflect")
    moved = padded[:, :, r + dy:r + dy + 8, r + dx:r + dx + 8]  # output (i, j) = input (i + dy, j + dx)
    shifts = torch.tensor([[dy, dx], [dy, dx]])
    out = shift_flip(x, shifts, torch.tensor([False, True]))
    torch.testing.assert_close(out[0], moved[0], rtol=0, atol=0)
    torch.testing.assert_close(out[1], moved[1].flip(-1), rtol=0, atol=0)
    # uint8 too (torch's reflect padding has no integer kernel), same pixels
    u8 = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(shift_flip(u8, shifts, torch.tensor([False, True])).float(),
                       shift_flip(u8.float(), shifts, torch.tensor([False, True])))


def test_random_shift_flip_keeps_pixels_within_two_and_follows_the_flips():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    flips = torch.rand(64, generator=torch.Generator().manual_seed(0)) < 0.5
    out = random_shift_flip(x, flips, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    same = random_shift_flip(x, flips, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, same)
    # each output equals one of the 25 reflected shifts of its own image, mirrored exactly where asked
    for i in range(64):
        views = [shift_flip(x[i:i + 1], torch.tensor([[a, b]]), flips[i:i + 1])[0]
                 for a in range(-2, 3) for b in range(-2, 3)]
        assert any(torch.equal(out[i], v) for v in views)


def test_flip_shift_tta_is_the_weighted_mean_of_six_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    xf = torch.from_numpy(x).float() / 255
    pad = F.pad(xf, (1,) * 4, mode="reflect")

    def mirrored(z):
        return (model(z) + model(z.flip(-1))) / 2

    with torch.no_grad():
        want = mirrored(xf) / 2 + mirrored(pad[:, :, :8, :8]) / 4 + mirrored(pad[:, :, 2:, 2:]) / 4
    got = predict_logits(model, x, tta="flip-shift")
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(PoisonlabError, match="tta"):
        predict_logits(model, x, tta="shift")


def test_airbench_rate_warms_up_and_decays_linearly():
    total = 100
    rates = [airbench_rate(s, total) for s in range(total)]
    assert rates[0] == pytest.approx(0.2) and rates[23] == pytest.approx(1.0)
    assert max(rates) == pytest.approx(1.0) and rates[-1] == pytest.approx(1 - 0.93 * 76 / 77)
    assert all(a < b for a, b in zip(rates[:23], rates[1:24]))
    assert all(a > b for a, b in zip(rates[23:], rates[24:]))


def test_airbench_optimizer_speeds_up_batch_norm_biases_and_leaves_frozen_scales_out():
    model = AirNetWide(image_size=16, num_classes=4)
    config = TrainConfig(model="airnet-wide", optimizer="sgd", schedule="airbench", lr=1.5, weight_decay=1e-3)
    opt = make_optimizer(model, config)
    biases, others = opt.param_groups
    bn_biases = [m.bias for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [id(p) for p in biases["params"]] == [id(p) for p in bn_biases]
    assert biases["lr"] == pytest.approx(1.5 * AIRBENCH_BIAS_SCALE)
    # the same decay per step: rate x coefficient
    assert biases["lr"] * biases["weight_decay"] == pytest.approx(others["lr"] * others["weight_decay"])
    assert all(p.requires_grad for p in others["params"]) and opt.defaults["momentum"] == AIRBENCH_MOMENTUM
    assert not any(p is m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)
                   for g in opt.param_groups for p in g["params"])
    with pytest.raises(PoisonlabError, match="SGD"):
        TrainConfig(schedule="airbench", optimizer="adam")
    with pytest.raises(PoisonlabError, match="schedule"):
        TrainConfig(schedule="cosine")


def test_lookahead_averages_every_fifth_step_and_ends_on_the_average():
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    total = 10
    look = Lookahead(model, total)
    history = []
    for step in range(1, total + 1):
        with torch.no_grad():
            model.weight.add_(1.0)
        history.append(model.weight.clone())
        look.step(model, step)
        if step % 5:  # between averaging steps the model is left alone
            assert torch.equal(model.weight, history[-1])
    # by hand: average a, at step 5 a <- a + (w - a)(1 - d5), w <- a; at step 10 the same with d10
    a = torch.zeros(1, 2)
    w = a.clone()
    for step in range(1, total + 1):
        w = w + 1
        if step % 5 == 0:
            decay = 0.95 ** 5 * (step / total) ** 3
            a = a + (w - a) * (1 - decay)
            w = a.clone()
    torch.testing.assert_close(model.weight, a)
    torch.testing.assert_close(look.average["weight"], a)


def test_airnet_wide_trains_deterministically_with_its_recipe_and_freezes_its_whitening_bias(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 3, 16, 16), dtype=np.uint8)
    y = rng.integers(0, 3, 96)
    config = TrainConfig.from_recipe("airnet-wide", in_channels=3, epochs=5, batch_size=32, precision="fp32",
                                     device="cpu", seed=3)
    assert (config.schedule, config.augment, config.tta, config.batch_size) == ("airbench", "shift-flip",
                                                                                "flip-shift", 32)
    seen = []
    original = AirNetWide.start_epoch

    def spy(self, epoch):
        original(self, epoch)
        seen.append((epoch, self.whiten_bias.requires_grad))

    monkeypatch.setattr(AirNetWide, "start_epoch", spy)
    a = train(x, y, num_classes=3, config=config, progress=False)
    assert seen == [(0, True), (1, True), (2, True), (3, False), (4, False)]
    monkeypatch.undo()
    b = train(x, y, num_classes=3, config=config, progress=False)
    for (name, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), name
    assert a.model.whiten_bias.requires_grad  # trainable again once training is done, as a rebuilt model
    assert a.steps == 15 and np.isfinite(a.epoch_losses).all()
    # the one-cycle schedule never calls start_epoch
    seen.clear()
    monkeypatch.setattr(AirNetWide, "start_epoch", spy)
    train(x, y, num_classes=3, config=TrainConfig(**{**config.to_dict(), "schedule": "one-cycle", "epochs": 1}),
          progress=False)
    assert seen == []
    # the recipe is airbench94's in mean-loss form
    recipe = RECIPES["airnet-wide"]
    assert recipe["lr"] == pytest.approx(11.5 / (1 + 1 / (1 - AIRBENCH_MOMENTUM)), rel=1e-3)
    assert recipe["lr"] * recipe["weight_decay"] == pytest.approx(0.0153 / (1 + 1 / (1 - AIRBENCH_MOMENTUM)), rel=1e-2)


def test_experiment_config_takes_the_schedule_and_checks_it_against_the_optimizer():
    base = {"dataset": "digits", "attacks": [{"name": "label-flip", "params": {"rate": 0.1}}], "defenses": ["pca"]}
    config = config_from_dict({**base, "optimizer": "sgd", "schedule": "airbench"})
    assert config.train_config(epochs=1, seed=0).schedule == "airbench"
    assert "schedule" not in config_from_dict(base).train_config(epochs=1, seed=0).to_dict()  # old keys kept
    with pytest.raises(PoisonlabError, match="'schedule'"):
        config_from_dict({**base, "schedule": "airbench"})
    with pytest.raises(PoisonlabError, match="schedule"):
        config_from_dict({**base, "schedule": "warm"})
