import json
from importlib import resources

import pytest
import torch
from torch import nn

from poisonlab.errors import PoisonlabError
from poisonlab.models import PaperCNN, build_model, count_parameters


def _figure1():
    return json.loads(resources.files("poisonlab").joinpath("resources/paper_numbers.json").read_text())["model"]


def test_paper_cnn_matches_figure_1_layer_by_layer():
    model = PaperCNN()
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.append([type(mod).__name__, list(out.shape[1:]),
                                                                          count_parameters(mod)]))
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.Linear))]
    model(torch.zeros(2, 3, 28, 28))
    for h in hooks:
        h.remove()
    figure = _figure1()
    assert shapes == figure["layers"]
    assert count_parameters(model) == figure["total_params"] == 160202


def test_grayscale_is_repeated_to_three_channels():
    model = PaperCNN().eval()
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(model(x), model(x.expand(-1, 3, -1, -1)))


def test_normalisation_buffers_are_not_parameters():
    model = PaperCNN(mean=0.5, std=0.25)
    assert count_parameters(model) == 160202
    assert float(model.state_dict()["mean"]) == 0.5


@pytest.mark.parametrize("size, channels", [(16, 1), (32, 3)])
def test_other_sizes_and_channels(size, channels):
    model = PaperCNN(in_channels=channels, image_size=size, num_classes=7)
    assert model(torch.zeros(2, channels, size, size)).shape == (2, 7)
    assert model.penultimate(torch.zeros(2, channels, size, size)).shape == (2, 128)


def test_too_small_images_and_unknown_model():
    with pytest.raises(PoisonlabError, match="at least 16x16"):
        PaperCNN(image_size=15)
    with pytest.raises(PoisonlabError, match="unknown model"):
        build_model("resnet-9000")


def test_paper_cnn_pools_before_relu_without_changing_the_function():
    torch.manual_seed(0)
    model = build_model("paper-cnn", image_size=28, num_classes=10).eval()
    x = torch.rand(8, 1, 28, 28)

    def relu_then_pool(m, x):
        x = (x.expand(-1, 3, -1, -1) - m.mean) / m.std
        x = m.pool1(torch.relu(m.conv1(x)))
        x = m.pool2(torch.relu(m.conv2(x)))
        x = m.pool3(torch.relu(m.conv3(x)))
        return m.fc2(torch.relu(m.fc1(torch.flatten(x, 1))))

    with torch.no_grad():
        torch.testing.assert_close(model(x), relu_then_pool(model, x))
